//! The questions asked of the store: list, show, trend, compare, flaky.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{ResultsError, Store};

/// One plan run as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// Run id (`SUITE-RUN/plan` for a suite member).
    pub run_id: String,
    /// SHA-256 of the bundle's manifest (the store's key).
    pub bundle_sha256: String,
    /// Station (bench).
    pub station: String,
    /// Suite run, when part of one.
    pub suite_run_id: Option<String>,
    /// Plan id.
    pub plan: String,
    /// DUT fixture id.
    pub dut: String,
    /// DUT serial, when recorded.
    pub dut_serial: Option<String>,
    /// Firmware version, when known.
    pub firmware_version: Option<String>,
    /// Firmware image id, when known.
    pub firmware_id: Option<String>,
    /// Firmware image SHA-256, when known.
    pub firmware_sha256: Option<String>,
    /// Operator, when recorded.
    pub operator: Option<String>,
    /// Start (RFC 3339, UTC).
    pub started: String,
    /// Duration in seconds (simulated seconds on a paused clock).
    pub duration_s: f64,
    /// `passed`, `failed`, `aborted`, ...
    pub outcome: String,
    /// Run on the simulated bench.
    pub simulated: bool,
    /// Run on a paused clock.
    pub virtual_time: bool,
    /// Fingerprint of the signing key, None for an unsigned bundle.
    pub signed_by: Option<String>,
}

const RUN_COLUMNS: &str = "run_id, bundle_sha256, station, suite_run_id, plan, dut, dut_serial, \
    firmware_version, firmware_id, firmware_sha256, operator, started, duration_s, outcome, simulated, \
    virtual_time, signature_fingerprint";

fn run_row(r: &AnyRow) -> Result<RunRow, sqlx::Error> {
    Ok(RunRow {
        run_id: r.try_get("run_id")?,
        bundle_sha256: r.try_get("bundle_sha256")?,
        station: r.try_get("station")?,
        suite_run_id: r.try_get("suite_run_id")?,
        plan: r.try_get("plan")?,
        dut: r.try_get("dut")?,
        dut_serial: r.try_get("dut_serial")?,
        firmware_version: r.try_get("firmware_version")?,
        firmware_id: r.try_get("firmware_id")?,
        firmware_sha256: r.try_get("firmware_sha256")?,
        operator: r.try_get("operator")?,
        started: r.try_get("started")?,
        duration_s: r.try_get("duration_s")?,
        outcome: r.try_get("outcome")?,
        simulated: r.try_get::<i64, _>("simulated")? != 0,
        virtual_time: r.try_get::<i64, _>("virtual_time")? != 0,
        signed_by: r.try_get("signature_fingerprint")?,
    })
}

/// Filters of `results list` (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Station (bench) id.
    pub bench: Option<String>,
    /// Plan id.
    pub plan: Option<String>,
    /// Firmware version, image id or the start of its SHA-256.
    pub firmware: Option<String>,
    /// Runs started at or after this RFC 3339 time (or date).
    pub since: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
}

/// Plan runs matching `filter`, newest first.
pub async fn list(store: &Store, filter: &ListFilter) -> Result<Vec<RunRow>, ResultsError> {
    let mut sql = format!("SELECT {RUN_COLUMNS} FROM run WHERE 1 = 1");
    let mut binds = Vec::new();
    let mut param = |sql: &mut String, clause: &str, value: &str| {
        binds.push(value.to_string());
        sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some(b) = &filter.bench {
        param(&mut sql, " AND station = ?", b);
    }
    if let Some(p) = &filter.plan {
        param(&mut sql, " AND plan = ?", p);
    }
    if let Some(f) = &filter.firmware {
        param(&mut sql, " AND (firmware_version = ?", f);
        param(&mut sql, " OR firmware_id = ?", f);
        param(&mut sql, " OR firmware_sha256 LIKE ? || '%')", f);
    }
    if let Some(s) = &filter.since {
        param(&mut sql, " AND started >= ?", s);
    }
    sql.push_str(" ORDER BY started DESC, run_id");
    if let Some(n) = filter.limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    let rows = store.rows(&sql, &binds).await?;
    rows.iter()
        .map(run_row)
        .collect::<Result<_, _>>()
        .map_err(|e| store.err("reading runs", e))
}

/// One run in full: the run, its tests and their measurements.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    /// The run.
    pub run: RunRow,
    /// Tests in run order.
    pub tests: Vec<TestDetail>,
    /// Instruments with identity and calibration.
    pub instruments: Vec<BTreeMap<String, Option<String>>>,
}

/// One test of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TestDetail {
    /// Name unique in the run (`OV cell 5 #2`).
    pub name: String,
    /// The plan's test name.
    pub test: String,
    /// `pass`, `fail`, `inconclusive`, ...
    pub verdict: String,
    /// Why it failed without measurements.
    pub message: Option<String>,
    /// Its measurements.
    pub measurements: Vec<Point>,
}

/// One stored measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Criterion.
    pub criterion: String,
    /// `threshold`, `trip_time`, ...
    pub quantity: String,
    /// Value; None when not determinable.
    pub value: Option<f64>,
    /// Expanded uncertainty U.
    pub uncertainty: f64,
    /// Coverage factor of U.
    pub k: f64,
    /// Unit.
    pub unit: String,
    /// Acceptance interval low end.
    pub limit_low: Option<f64>,
    /// Acceptance interval high end.
    pub limit_high: Option<f64>,
    /// Verdict.
    pub verdict: String,
}

fn point(r: &AnyRow) -> Result<Point, sqlx::Error> {
    Ok(Point {
        criterion: r.try_get("criterion")?,
        quantity: r.try_get("quantity")?,
        value: r.try_get("value")?,
        uncertainty: r.try_get("uncertainty")?,
        k: r.try_get("k")?,
        unit: r.try_get("unit")?,
        limit_low: r.try_get("limit_low")?,
        limit_high: r.try_get("limit_high")?,
        verdict: r.try_get("verdict")?,
    })
}

/// The run named by a run id or the start of a bundle hash (at least 8 hex digits).
pub async fn find(store: &Store, given: &str) -> Result<RunRow, ResultsError> {
    let mut rows = store
        .rows(
            &format!("SELECT {RUN_COLUMNS} FROM run WHERE run_id = $1 ORDER BY started"),
            &[given.to_string()],
        )
        .await?;
    if rows.is_empty() && given.len() >= 8 && given.chars().all(|c| c.is_ascii_hexdigit()) {
        rows = store
            .rows(
                &format!("SELECT {RUN_COLUMNS} FROM run WHERE bundle_sha256 LIKE $1 || '%'"),
                &[given.to_ascii_lowercase()],
            )
            .await?;
    }
    match rows.as_slice() {
        [] => Err(ResultsError::NoRun(given.to_string())),
        [one] => run_row(one).map_err(|e| store.err("reading a run", e)),
        many => Err(ResultsError::Ambiguous {
            given: given.to_string(),
            count: many.len(),
        }),
    }
}

/// `results show RUN`.
pub async fn show(store: &Store, given: &str) -> Result<RunDetail, ResultsError> {
    let run = find(store, given).await?;
    let key = [run.bundle_sha256.clone()];
    let read = |e| store.err("reading a run", e);
    let tests = store
        .rows(
            "SELECT idx, test, name, verdict, message FROM test WHERE bundle_sha256 = $1 \
             ORDER BY idx",
            &key,
        )
        .await?;
    let points = store
        .rows(
            "SELECT test_idx, criterion, quantity, value, uncertainty, k, unit, limit_low, \
             limit_high, verdict FROM measurement WHERE bundle_sha256 = $1 ORDER BY test_idx, idx",
            &key,
        )
        .await?;
    let mut by_test: BTreeMap<i64, Vec<Point>> = BTreeMap::new();
    for p in &points {
        by_test
            .entry(p.try_get("test_idx").map_err(read)?)
            .or_default()
            .push(point(p).map_err(read)?);
    }
    let mut out = Vec::new();
    for t in &tests {
        let idx: i64 = t.try_get("idx").map_err(read)?;
        out.push(TestDetail {
            name: t.try_get("name").map_err(read)?,
            test: t.try_get("test").map_err(read)?,
            verdict: t.try_get("verdict").map_err(read)?,
            message: t.try_get("message").map_err(read)?,
            measurements: by_test.remove(&idx).unwrap_or_default(),
        });
    }
    let instruments = store
        .rows(
            "SELECT id, role, identity, serial, calibration_due, calibration_status FROM \
             instrument WHERE bundle_sha256 = $1 ORDER BY idx",
            &key,
        )
        .await?
        .iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            for c in [
                "id",
                "role",
                "identity",
                "serial",
                "calibration_due",
                "calibration_status",
            ] {
                m.insert(c.to_string(), r.try_get::<Option<String>, _>(c)?);
            }
            Ok(m)
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(read)?;
    Ok(RunDetail {
        run,
        tests: out,
        instruments,
    })
}

/// How `results trend` groups its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrendBy {
    /// One series per firmware version.
    Firmware,
    /// One series per station (bench).
    Bench,
}

/// One value of a criterion in one run.
#[derive(Debug, Clone, Serialize)]
pub struct TrendPoint {
    /// Run id.
    pub run_id: String,
    /// Run start.
    pub started: String,
    /// Station.
    pub station: String,
    /// Firmware version.
    pub firmware_version: Option<String>,
    /// Firmware image id.
    pub firmware_id: Option<String>,
    /// Test name.
    pub test: String,
    /// The measurement.
    #[serde(flatten)]
    pub point: Point,
}

/// One series of a trend.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// The firmware version or the bench.
    pub key: String,
    /// Values in time order.
    pub points: Vec<TrendPoint>,
    /// Values that were determinable.
    pub n: usize,
    /// Their mean.
    pub mean: Option<f64>,
    /// Their smallest.
    pub min: Option<f64>,
    /// Their largest.
    pub max: Option<f64>,
    /// Sample standard deviation of the values (None under two values).
    pub std_dev: Option<f64>,
}

/// The name of a firmware series: the image id, with the version unless the id has it.
pub fn firmware_key(id: Option<&str>, version: Option<&str>) -> String {
    match (id, version) {
        (Some(id), Some(v)) if id.contains(v) => id.to_string(),
        (Some(id), Some(v)) => format!("{id} {v}"),
        (Some(id), None) => id.to_string(),
        (None, Some(v)) => v.to_string(),
        (None, None) => "firmware unknown".into(),
    }
}

/// `results trend CRITERION`: a criterion's values over time, per firmware or bench.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    /// The criterion.
    pub criterion: String,
    /// How the series are grouped.
    pub by: String,
    /// Unit of the values (from the first point).
    pub unit: Option<String>,
    /// The series, ordered by their first run.
    pub series: Vec<Series>,
}

/// Values of `criterion` (optionally of one plan), grouped `by`.
pub async fn trend(
    store: &Store,
    criterion: &str,
    by: TrendBy,
    plan: Option<&str>,
) -> Result<Trend, ResultsError> {
    let mut sql = String::from(
        "SELECT r.run_id, r.started, r.station, r.firmware_version, r.firmware_id, t.name, m.criterion, \
         m.quantity, m.value, m.uncertainty, m.k, m.unit, m.limit_low, m.limit_high, m.verdict \
         FROM measurement m JOIN run r ON r.bundle_sha256 = m.bundle_sha256 JOIN test t ON \
         t.bundle_sha256 = m.bundle_sha256 AND t.idx = m.test_idx WHERE m.criterion = $1",
    );
    let mut binds = vec![criterion.to_string()];
    if let Some(p) = plan {
        sql.push_str(" AND r.plan = $2");
        binds.push(p.to_string());
    }
    sql.push_str(" ORDER BY r.started, r.run_id, m.test_idx, m.idx");
    let read = |e| store.err("reading a trend", e);
    let mut series: Vec<Series> = Vec::new();
    for r in store.rows(&sql, &binds).await? {
        let p = TrendPoint {
            run_id: r.try_get("run_id").map_err(read)?,
            started: r.try_get("started").map_err(read)?,
            station: r.try_get("station").map_err(read)?,
            firmware_version: r.try_get("firmware_version").map_err(read)?,
            firmware_id: r.try_get("firmware_id").map_err(read)?,
            test: r.try_get("name").map_err(read)?,
            point: point(&r).map_err(read)?,
        };
        let key = match by {
            TrendBy::Firmware => {
                firmware_key(p.firmware_id.as_deref(), p.firmware_version.as_deref())
            }
            TrendBy::Bench => p.station.clone(),
        };
        match series.iter_mut().find(|s| s.key == key) {
            Some(s) => s.points.push(p),
            None => series.push(Series {
                key,
                points: vec![p],
                n: 0,
                mean: None,
                min: None,
                max: None,
                std_dev: None,
            }),
        }
    }
    for s in &mut series {
        let values: Vec<f64> = s.points.iter().filter_map(|p| p.point.value).collect();
        s.n = values.len();
        if !values.is_empty() {
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            s.mean = Some(mean);
            s.min = values.iter().copied().reduce(f64::min);
            s.max = values.iter().copied().reduce(f64::max);
            if values.len() > 1 {
                let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
                s.std_dev = Some(var.sqrt());
            }
        }
    }
    let unit = series
        .first()
        .and_then(|s| s.points.first())
        .map(|p| p.point.unit.clone());
    Ok(Trend {
        criterion: criterion.to_string(),
        by: match by {
            TrendBy::Firmware => "firmware",
            TrendBy::Bench => "bench",
        }
        .into(),
        unit,
        series,
    })
}

/// One measurement of two runs side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// Test name (with repeat).
    pub test: String,
    /// Criterion.
    pub criterion: String,
    /// Quantity.
    pub quantity: String,
    /// Unit.
    pub unit: String,
    /// Value in run A.
    pub a: Option<f64>,
    /// Value in run B.
    pub b: Option<f64>,
    /// B - A.
    pub difference: Option<f64>,
    /// Expanded uncertainty of the difference at k = 2: `2·sqrt((U_a/k_a)² + (U_b/k_b)²)`
    /// (the two runs' measurements taken as uncorrelated).
    pub uncertainty: f64,
    /// Whether |B - A| exceeds that uncertainty: the value moved.
    pub moved: bool,
    /// Verdicts in A and B.
    pub verdicts: (String, String),
}

/// `results compare A B`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Run A.
    pub a: RunRow,
    /// Run B.
    pub b: RunRow,
    /// Measurements in both.
    pub differences: Vec<Difference>,
    /// Measurements only in A (test / criterion).
    pub only_a: Vec<String>,
    /// Measurements only in B.
    pub only_b: Vec<String>,
}

/// Coverage factor of the difference's expanded uncertainty.
pub const COMPARE_K: f64 = 2.0;

/// Compares every measurement two runs share (matched by test name, criterion and quantity).
pub async fn compare(store: &Store, a: &str, b: &str) -> Result<Comparison, ResultsError> {
    let (a, b) = (show(store, a).await?, show(store, b).await?);
    let flat = |d: &RunDetail| -> Vec<(String, Point)> {
        d.tests
            .iter()
            .flat_map(|t| t.measurements.iter().map(|m| (t.name.clone(), m.clone())))
            .collect()
    };
    let (pa, pb) = (flat(&a), flat(&b));
    let key = |(t, p): &(String, Point)| format!("{t} / {} {}", p.criterion, p.quantity);
    let mut differences = Vec::new();
    let mut only_a = Vec::new();
    for x in &pa {
        match pb.iter().find(|y| key(y) == key(x)) {
            None => only_a.push(key(x)),
            Some((_, q)) => {
                let p = &x.1;
                let std = |u: f64, k: f64| if k > 0.0 { u / k } else { u };
                let uncertainty = COMPARE_K
                    * (std(p.uncertainty, p.k).powi(2) + std(q.uncertainty, q.k).powi(2)).sqrt();
                let difference = p.value.zip(q.value).map(|(va, vb)| vb - va);
                differences.push(Difference {
                    test: x.0.clone(),
                    criterion: p.criterion.clone(),
                    quantity: p.quantity.clone(),
                    unit: p.unit.clone(),
                    a: p.value,
                    b: q.value,
                    difference,
                    uncertainty,
                    moved: difference.is_some_and(|d| d.abs() > uncertainty),
                    verdicts: (p.verdict.clone(), q.verdict.clone()),
                });
            }
        }
    }
    let only_b = pb
        .iter()
        .filter(|y| !pa.iter().any(|x| key(x) == key(y)))
        .map(key)
        .collect();
    Ok(Comparison {
        a: a.run,
        b: b.run,
        differences,
        only_a,
        only_b,
    })
}

/// A test whose verdict differs between runs of the same plan, firmware and bench.
#[derive(Debug, Clone, Serialize)]
pub struct Flaky {
    /// Plan id.
    pub plan: String,
    /// Test as named in the plan.
    pub test: String,
    /// Station.
    pub station: String,
    /// Firmware version (or "unknown").
    pub firmware: String,
    /// How often each verdict occurred (over every run and repeat).
    pub verdicts: BTreeMap<String, i64>,
}

/// `results flaky`: tests whose verdict is not the same on every run with the same plan,
/// firmware image and bench.
pub async fn flaky(store: &Store) -> Result<Vec<Flaky>, ResultsError> {
    let rows = store
        .rows(
            "SELECT r.plan, t.test, r.station, COALESCE(r.firmware_id, r.firmware_version, \
             'unknown') AS fw, \
             COALESCE(r.firmware_sha256, '') AS fw_sha, t.verdict, COUNT(*) AS n \
             FROM test t JOIN run r ON \
             r.bundle_sha256 = t.bundle_sha256 GROUP BY r.plan, t.test, r.station, \
             COALESCE(r.firmware_id, r.firmware_version, 'unknown'), \
             COALESCE(r.firmware_sha256, ''), \
             t.verdict ORDER BY r.plan, t.test, r.station, fw, t.verdict",
            &[],
        )
        .await?;
    let read = |e| store.err("reading verdicts", e);
    let mut groups: BTreeMap<(String, String, String, String, String), Flaky> = BTreeMap::new();
    for r in &rows {
        let plan: String = r.try_get("plan").map_err(read)?;
        let test: String = r.try_get("test").map_err(read)?;
        let station: String = r.try_get("station").map_err(read)?;
        let fw: String = r.try_get("fw").map_err(read)?;
        let sha: String = r.try_get("fw_sha").map_err(read)?;
        let verdict: String = r.try_get("verdict").map_err(read)?;
        let n: i64 = r.try_get("n").map_err(read)?;
        let g = groups
            .entry((plan.clone(), test.clone(), station.clone(), fw.clone(), sha))
            .or_insert(Flaky {
                plan,
                test,
                station,
                firmware: fw,
                verdicts: BTreeMap::new(),
            });
        g.verdicts.insert(verdict, n);
    }
    Ok(groups
        .into_values()
        .filter(|g| g.verdicts.len() > 1)
        .collect())
}

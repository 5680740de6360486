//! `results import`: find run bundles under a path, verify each, store it once.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use super::{ResultsError, Store};
use crate::report::manifest::{self, hash_bytes, Manifest, SignatureStatus};
use crate::report::RunResults;

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Accept bundles without a signature (stored as unsigned); tampered bundles are
    /// refused regardless.
    pub allow_unsigned: bool,
    /// Only accept signatures by this key.
    pub trusted: Option<VerifyingKey>,
}

/// One plan run imported (or found already present).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Imported {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Run id from `results.json`.
    pub run_id: String,
    /// SHA-256 of its `manifest.json`: the key in the store.
    pub bundle_sha256: String,
    /// False when the store already had it (nothing changed).
    pub new: bool,
    /// Test results stored.
    pub tests: usize,
    /// Measurements stored.
    pub measurements: usize,
    /// Signing key fingerprint, or None for an unsigned bundle.
    pub signed_by: Option<String>,
}

/// What an import of one path did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    /// Bundles stored or already present.
    pub imported: Vec<Imported>,
    /// Bundles refused, each with the reason.
    pub refused: Vec<String>,
}

/// The plan-run bundles at or under `path` (a directory holding `results.json` and
/// `manifest.json`; a suite directory or a reports directory is searched, `rejudge-*`
/// sub-bundles are not imported), sorted.
pub fn find_bundles(path: &Path) -> Result<Vec<PathBuf>, ResultsError> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), ResultsError> {
        if dir.join("results.json").is_file() && dir.join(manifest::MANIFEST).is_file() {
            out.push(dir.to_path_buf());
            return Ok(());
        }
        if depth == 0 {
            return Ok(());
        }
        let entries = std::fs::read_dir(dir).map_err(|error| ResultsError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        let mut children: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| !manifest::is_rejudge_dir(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        children.sort();
        for child in children {
            walk(&child, depth - 1, out)?;
        }
        Ok(())
    }
    if !path.is_dir() {
        return Err(ResultsError::Bundle {
            dir: path.to_path_buf(),
            reason: if path.exists() {
                "not a directory; give run, suite or reports directories".into()
            } else {
                "no such directory".into()
            },
        });
    }
    let mut out = Vec::new();
    walk(path, 4, &mut out)?;
    Ok(out)
}

/// Imports every bundle at or under `path`; refusals are reported, not fatal.
pub async fn import_path(
    store: &Store,
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, ResultsError> {
    let mut report = ImportReport::default();
    let bundles = find_bundles(path)?;
    if bundles.is_empty() {
        report.refused.push(format!(
            "{}: no run bundle (a directory with results.json and manifest.json) here or below",
            path.display()
        ));
    }
    for dir in bundles {
        match import_bundle(store, &dir, options).await {
            Ok(done) => report.imported.push(done),
            Err(e @ ResultsError::Bundle { .. }) => report.refused.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// Verifies one plan-run bundle and stores it unless the store has it already.
pub async fn import_bundle(
    store: &Store,
    dir: &Path,
    options: &ImportOptions,
) -> Result<Imported, ResultsError> {
    let refuse = |reason: String| ResultsError::Bundle {
        dir: dir.to_path_buf(),
        reason,
    };
    let check = manifest::verify(dir, options.trusted.as_ref());
    let problems = check.all_problems();
    if let Some(first) = problems.first() {
        return Err(refuse(format!(
            "not intact, refused: {} problem(s), first: {} {}",
            problems.len(),
            first.path,
            first.kind.word()
        )));
    }
    let signed_by = match &check.signature {
        SignatureStatus::Valid {
            trusted: Some(false),
            fingerprint,
        } => {
            return Err(refuse(format!(
                "signed by key {fingerprint}, not the trusted key; refused"
            )))
        }
        SignatureStatus::Valid { fingerprint, .. } => Some(fingerprint.clone()),
        SignatureStatus::Unsigned if options.allow_unsigned => None,
        SignatureStatus::Unsigned => {
            return Err(refuse(
                "unsigned bundle refused (sign runs with a station key, `hilrig keygen`, or \
                 pass --allow-unsigned)"
                    .into(),
            ))
        }
        SignatureStatus::Invalid | SignatureStatus::Unknown => {
            return Err(refuse("signature not valid; refused".into()))
        }
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|error| ResultsError::Io { path, error })
    };
    let manifest_bytes = read(manifest::MANIFEST)?;
    let bundle_sha256 = hash_bytes(&manifest_bytes);
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| refuse(format!("manifest.json: {e}")))?;
    let results: RunResults = serde_json::from_slice(&read("results.json")?)
        .map_err(|e| refuse(format!("results.json: {e}")))?;
    let new = store_run(
        store,
        &dir.display().to_string(),
        &bundle_sha256,
        &manifest,
        &results,
    )
    .await?;
    Ok(Imported {
        dir: dir.to_path_buf(),
        run_id: results.run_id.clone(),
        bundle_sha256,
        new,
        tests: results.tests.len(),
        measurements: results.tests.iter().map(|t| t.measurements.len()).sum(),
        signed_by,
    })
}

/// A value as the store keeps it: serde's snake_case word.
fn word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds a number that may be missing. sqlx 0.8.6 sends a NULL bound as `Option<f64>` to
/// PostgreSQL as a FLOAT4 NULL and one bound as `Option<f32>` as FLOAT8 (the two are swapped
/// in `sqlx-core/src/any/arguments.rs`), which PostgreSQL refuses for a DOUBLE PRECISION
/// column; a missing value is therefore bound through `Option<f32>`, which SQLite stores as
/// the same NULL.
fn bind_f64(q: AnyQuery<'_>, v: Option<f64>) -> AnyQuery<'_> {
    match v {
        Some(x) => q.bind(x),
        None => q.bind(None::<f32>),
    }
}

/// Stores one verified run in one transaction, keyed by `sha` (its manifest's SHA-256);
/// false when the store had it already. `source` says where it was imported from.
pub async fn store_run(
    store: &Store,
    source: &str,
    sha: &str,
    manifest: &Manifest,
    r: &RunResults,
) -> Result<bool, ResultsError> {
    let err = |e| store.err("storing a run", e);
    let err_test = |e| store.err("storing a test result", e);
    let err_m = |e| store.err("storing a measurement", e);
    let err_i = |e| store.err("storing an instrument record", e);
    let mut tx = store.pool().begin().await.map_err(err)?;
    let fw = r.firmware.as_ref();
    let inserted = sqlx::query(
        "INSERT INTO run (bundle_sha256, run_id, station, suite_run_id, plan, title, dut, \
         dut_serial, firmware_id, firmware_version, firmware_sha256, operator, started, \
         duration_s, outcome, simulated, virtual_time, limit_profile, decision_rule, \
         signature_fingerprint, signature_public_key, source, imported) VALUES ($1, $2, $3, \
         $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
         $22, $23) ON CONFLICT (bundle_sha256) DO NOTHING",
    )
    .bind(sha.to_string())
    .bind(r.run_id.clone())
    .bind(r.station.clone())
    .bind(r.context.suite_run_id.clone())
    .bind(r.plan.clone())
    .bind(r.title.clone())
    .bind(r.dut.clone())
    .bind(r.context.dut_serial.clone())
    .bind(fw.map(|f| f.id.clone()))
    .bind(fw.map(|f| f.version.clone()))
    .bind(fw.map(|f| f.sha256.clone()))
    .bind(r.context.operator.clone())
    .bind(r.clock_anchor.clone())
    .bind(r.duration_s)
    .bind(word(&r.outcome))
    .bind(i64::from(r.context.simulated))
    .bind(i64::from(r.context.virtual_time))
    .bind(r.limit_profile.clone())
    .bind(word(&r.decision_rule))
    .bind(manifest.signature.as_ref().map(|s| s.fingerprint.clone()))
    .bind(manifest.signature.as_ref().map(|s| s.public_key.clone()))
    .bind(source.to_string())
    .bind(crate::trace::rfc3339(std::time::SystemTime::now()))
    .execute(&mut *tx)
    .await
    .map_err(err)?
    .rows_affected();
    if inserted == 0 {
        tx.rollback().await.map_err(err)?;
        return Ok(false);
    }
    for (ti, t) in r.tests.iter().enumerate() {
        sqlx::query(
            "INSERT INTO test (bundle_sha256, idx, test, name, repeat_no, verdict, message) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(sha.to_string())
        .bind(ti as i64)
        .bind(if t.test.is_empty() {
            t.name.clone()
        } else {
            t.test.clone()
        })
        .bind(t.name.clone())
        .bind(i64::from(t.repeat))
        .bind(word(&t.verdict))
        .bind(t.message.clone())
        .execute(&mut *tx)
        .await
        .map_err(err_test)?;
        for (mi, m) in t.measurements.iter().enumerate() {
            let q = sqlx::query(
                "INSERT INTO measurement (bundle_sha256, test_idx, idx, criterion, quantity, \
                 uncertainty, k, unit, value, limit_low, limit_high, verdict, provenance, \
                 not_determinable) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                 $13, $14)",
            )
            .bind(sha.to_string())
            .bind(ti as i64)
            .bind(mi as i64)
            .bind(m.criterion.clone())
            .bind(m.quantity.clone())
            .bind(m.uncertainty)
            .bind(m.coverage_factor)
            .bind(m.unit.clone());
            let q = bind_f64(q, m.value.is_finite().then_some(m.value));
            let q = bind_f64(q, m.limit.low);
            let q = bind_f64(q, m.limit.high);
            q.bind(word(&m.verdict))
                .bind(serde_json::to_string(&m.provenance).unwrap_or_default())
                .bind(m.not_determinable.clone())
                .execute(&mut *tx)
                .await
                .map_err(err_m)?;
        }
    }
    for (ii, c) in r.context.calibration.iter().enumerate() {
        let identity = r.instruments.iter().find(|i| i.id == c.id);
        sqlx::query(
            "INSERT INTO instrument (bundle_sha256, idx, id, role, identity, serial, \
             calibration_due, calibration_status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(sha.to_string())
        .bind(ii as i64)
        .bind(c.id.clone())
        .bind(Some(c.role.clone()))
        .bind(identity.map(|i| i.idn.clone()))
        .bind(identity.map(|i| i.serial.clone()).or(c.serial.clone()))
        .bind(c.due.clone())
        .bind(Some(word(&c.status)))
        .execute(&mut *tx)
        .await
        .map_err(err_i)?;
    }
    tx.commit().await.map_err(err)?;
    Ok(true)
}

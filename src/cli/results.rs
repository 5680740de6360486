//! `hilrig results import|list|show|trend|compare|flaky|page [--db URL]`: the results store.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::stdio::{eprint, print};
use super::EXIT_ABORT;
use crate::results::query::{self, TrendBy};
use crate::results::{self as store, ImportOptions, ListFilter, Store, DEFAULT_DB};

/// Arguments of `hilrig results`.
#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// The store: `sqlite://PATH` or `postgres://USER@HOST/DB` (default: `$HILRIG_DB`, else
    /// `sqlite://reports/hilrig.db`).
    #[arg(long, global = true)]
    pub db: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: ResultsCommand,
}

/// `hilrig results` subcommands.
#[derive(Debug, Subcommand)]
pub enum ResultsCommand {
    /// Verify and store run bundles (run, suite or reports directories); idempotent.
    Import {
        /// Directories holding run bundles.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Store unsigned bundles too (as unsigned); tampered bundles are refused anyway.
        #[arg(long)]
        allow_unsigned: bool,
        /// Accept only signatures by this public key (hex or a `.pub` file).
        #[arg(long)]
        pubkey: Option<String>,
    },
    /// Plan runs, newest first.
    List {
        /// Only this station (bench).
        #[arg(long)]
        bench: Option<String>,
        /// Only this plan.
        #[arg(long)]
        plan: Option<String>,
        /// Only this firmware version (or the start of its SHA-256).
        #[arg(long)]
        firmware: Option<String>,
        /// Only runs started at or after this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// One run: its tests and measurements.
    Show {
        /// Run id or the start of the bundle hash (8 hex digits or more).
        run: String,
    },
    /// A criterion's values with their uncertainty over time.
    Trend {
        /// Criterion name (e.g. `ov_threshold`).
        criterion: String,
        /// One series per firmware version or per bench.
        #[arg(long, value_enum, default_value = "firmware")]
        by: TrendBy,
        /// Only this plan.
        #[arg(long)]
        plan: Option<String>,
    },
    /// Two runs measurement by measurement: which moved beyond their uncertainty.
    Compare {
        /// Run A (id or bundle hash start).
        a: String,
        /// Run B.
        b: String,
    },
    /// Tests whose verdict differs between runs of the same plan, firmware and bench.
    Flaky,
    /// Write a self-contained HTML page of trends.
    Page {
        /// Output file.
        #[arg(short, long, default_value = "reports/trends.html")]
        out: PathBuf,
        /// One series per firmware version or per bench.
        #[arg(long, value_enum, default_value = "firmware")]
        by: TrendBy,
        /// Criteria to plot (default: all).
        criteria: Vec<String>,
    },
}

/// The store URL: `--db`, else `$HILRIG_DB`, else the embedded default.
pub fn db_url(given: Option<String>) -> String {
    store::named_store(given).unwrap_or_else(|| DEFAULT_DB.to_string())
}

fn json<T: serde::Serialize>(v: &T) -> bool {
    match serde_json::to_string_pretty(v) {
        Ok(t) => print(&t),
        Err(e) => {
            eprint(&format!("error: cannot write JSON: {e}"));
            false
        }
    }
}

/// The firmware of a run as one name.
fn fw(r: &query::RunRow) -> String {
    query::firmware_key(r.firmware_id.as_deref(), r.firmware_version.as_deref())
}

/// `3.6508 ± 0.0019 V`, or "not determinable".
fn stated(v: Option<f64>, u: f64, unit: &str) -> String {
    v.map_or("not determinable".into(), |v| {
        crate::verdict::gum::stated(v, u, unit)
    })
}

fn num(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.6}"))
}

/// Run `hilrig results`; exit 0, 1 when compare finds a moved value, 2 on an error or a
/// refused bundle.
pub async fn results(a: ResultsArgs) -> i32 {
    let url = db_url(a.db);
    let db = match Store::open(&url).await {
        Ok(s) => s,
        Err(e) => {
            eprint(&format!("error: {e}"));
            return EXIT_ABORT;
        }
    };
    match command(&db, a.command, a.json).await {
        Ok(code) => code,
        Err(e) => {
            eprint(&format!("error: {e}"));
            EXIT_ABORT
        }
    }
}

async fn command(db: &Store, c: ResultsCommand, as_json: bool) -> Result<i32, store::ResultsError> {
    let ok = |printed: bool| if printed { 0 } else { EXIT_ABORT };
    match c {
        ResultsCommand::Import {
            dirs,
            allow_unsigned,
            pubkey,
        } => {
            let trusted = match pubkey {
                None => None,
                Some(p) => match crate::report::keys::parse_public(&p) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        eprint(&format!("error: --pubkey: {e}"));
                        return Ok(EXIT_ABORT);
                    }
                },
            };
            let options = ImportOptions {
                allow_unsigned,
                trusted,
            };
            let mut all = store::ImportReport::default();
            for d in &dirs {
                let r = store::import_path(db, d, &options).await?;
                all.imported.extend(r.imported);
                all.refused.extend(r.refused);
            }
            let new = all.imported.iter().filter(|i| i.new).count();
            if as_json {
                json(&all);
            } else {
                for i in &all.imported {
                    print(&format!(
                        "{} {} ({} tests, {} measurements, {})",
                        if i.new { "stored " } else { "present" },
                        i.run_id,
                        i.tests,
                        i.measurements,
                        i.signed_by
                            .as_deref()
                            .map_or("unsigned".to_string(), |f| format!("signed {f}"))
                    ));
                }
                print(&format!(
                    "{} bundle(s): {new} stored, {} already present, {} refused; store {}",
                    all.imported.len() + all.refused.len(),
                    all.imported.len() - new,
                    all.refused.len(),
                    db.url()
                ));
            }
            for r in &all.refused {
                eprint(&format!("refused: {r}"));
            }
            Ok(if all.refused.is_empty() {
                0
            } else {
                EXIT_ABORT
            })
        }
        ResultsCommand::List {
            bench,
            plan,
            firmware,
            since,
            limit,
        } => {
            let runs = store::list(
                db,
                &ListFilter {
                    bench,
                    plan,
                    firmware,
                    since,
                    limit,
                },
            )
            .await?;
            if as_json {
                return Ok(ok(json(&runs)));
            }
            let mut text = String::new();
            for r in &runs {
                text.push_str(&format!(
                    "{}  {:<8} {:<12} {:<18} {:<36} {}{}\n",
                    &r.bundle_sha256[..12.min(r.bundle_sha256.len())],
                    r.outcome,
                    r.station,
                    r.plan,
                    fw(r),
                    r.started,
                    if r.simulated { "  SIMULATED" } else { "" }
                ));
            }
            text.push_str(&format!("{} run(s)", runs.len()));
            Ok(ok(print(text.trim_end())))
        }
        ResultsCommand::Show { run } => {
            let d = store::show(db, &run).await?;
            if as_json {
                return Ok(ok(json(&d)));
            }
            let r = &d.run;
            let mut text = format!(
                "run {}\n  bundle {}\n  plan {} on {} · dut {} {}\n  firmware {} {}\n  \
                 started {} · {:.1} s · {}{}\n  operator {} · {}\n",
                r.run_id,
                r.bundle_sha256,
                r.plan,
                r.station,
                r.dut,
                r.dut_serial.as_deref().unwrap_or("(serial not recorded)"),
                fw(r),
                r.firmware_sha256.as_deref().unwrap_or(""),
                r.started,
                r.duration_s,
                r.outcome,
                if r.simulated { " · SIMULATED" } else { "" },
                r.operator.as_deref().unwrap_or("not recorded"),
                r.signed_by
                    .as_deref()
                    .map_or("unsigned".to_string(), |f| format!("signed {f}"))
            );
            for t in &d.tests {
                text.push_str(&format!("  {:<6} {}\n", t.verdict, t.name));
                for m in &t.measurements {
                    text.push_str(&format!(
                        "           {} {} = {} (k = {})\n",
                        m.criterion,
                        m.quantity,
                        stated(m.value, m.uncertainty, &m.unit),
                        m.k
                    ));
                }
                if let Some(msg) = &t.message {
                    text.push_str(&format!("           {msg}\n"));
                }
            }
            Ok(ok(print(text.trim_end())))
        }
        ResultsCommand::Trend {
            criterion,
            by,
            plan,
        } => {
            let t = store::trend(db, &criterion, by, plan.as_deref()).await?;
            if t.series.is_empty() {
                eprint(&format!(
                    "error: no values of criterion `{criterion}` in {}",
                    db.url()
                ));
                return Ok(EXIT_ABORT);
            }
            if as_json {
                return Ok(ok(json(&t)));
            }
            let unit = t.unit.clone().unwrap_or_default();
            let mut text = format!("{criterion} by {}\n", t.by);
            for s in &t.series {
                text.push_str(&format!(
                    "  {}: {} value(s), mean {} {unit}, min {}, max {}, s {}\n",
                    s.key,
                    s.n,
                    num(s.mean),
                    num(s.min),
                    num(s.max),
                    num(s.std_dev)
                ));
                for p in &s.points {
                    text.push_str(&format!(
                        "    {} {:<30} {} (k = {}) {}\n",
                        p.started,
                        p.test,
                        stated(p.point.value, p.point.uncertainty, &unit),
                        p.point.k,
                        p.point.verdict
                    ));
                }
            }
            Ok(ok(print(text.trim_end())))
        }
        ResultsCommand::Compare { a, b } => {
            let c = store::compare(db, &a, &b).await?;
            let moved = c.differences.iter().filter(|d| d.moved).count();
            if as_json {
                json(&c);
            } else {
                let mut text = format!(
                    "A {} (fw {})\nB {} (fw {})\n",
                    c.a.run_id,
                    fw(&c.a),
                    c.b.run_id,
                    fw(&c.b)
                );
                for d in &c.differences {
                    text.push_str(&format!(
                        "  {} {:<40} {} {}: B - A = {} {} (U = {:.6}, k = {}){}\n",
                        if d.moved { "MOVED" } else { "     " },
                        d.test,
                        d.criterion,
                        d.quantity,
                        num(d.difference),
                        d.unit,
                        d.uncertainty,
                        query::COMPARE_K,
                        if d.verdicts.0 != d.verdicts.1 {
                            format!(" verdict {} -> {}", d.verdicts.0, d.verdicts.1)
                        } else {
                            String::new()
                        }
                    ));
                }
                for k in &c.only_a {
                    text.push_str(&format!("  only in A: {k}\n"));
                }
                for k in &c.only_b {
                    text.push_str(&format!("  only in B: {k}\n"));
                }
                text.push_str(&format!(
                    "{moved} of {} shared measurement(s) moved beyond their uncertainty\n",
                    c.differences.len()
                ));
                print(text.trim_end());
            }
            Ok(if moved > 0 { 1 } else { 0 })
        }
        ResultsCommand::Flaky => {
            let f = store::flaky(db).await?;
            if as_json {
                return Ok(ok(json(&f)));
            }
            let mut text = String::new();
            for g in &f {
                let counts: Vec<String> =
                    g.verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
                text.push_str(&format!(
                    "{} / {} on {} fw {}: {}\n",
                    g.plan,
                    g.test,
                    g.station,
                    g.firmware,
                    counts.join(", ")
                ));
            }
            text.push_str(&format!("{} flaky test(s)\n", f.len()));
            Ok(ok(print(text.trim_end())))
        }
        ResultsCommand::Page { out, by, criteria } => {
            let html = store::page::render(db, &criteria, by).await?;
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    eprint(&format!("error: {}: {e}", dir.display()));
                    return Ok(EXIT_ABORT);
                }
            }
            if let Err(e) = crate::durable::write_atomic(&out, html.as_bytes()) {
                eprint(&format!("error: {}: {e}", out.display()));
                return Ok(EXIT_ABORT);
            }
            Ok(ok(print(&format!("trend page: {}", out.display()))))
        }
    }
}

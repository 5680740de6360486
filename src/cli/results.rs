//! `hilrig results import|list|show|trend|compare|flaky|page [--db URL]`: the results store
//! (`crate::results`; its text for people in `crate::results::text`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::stdio::{eprint, print};
use crate::exit::{Failure, EXIT_ABORT};
use crate::results::query::TrendBy;
use crate::results::{self as store, text, ImportOptions, ListFilter, Store, DEFAULT_DB};

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

/// Print `v` as JSON (`as_json`) or `text()`; exit 0, or 2 when stdout cannot be written.
fn out<T: serde::Serialize>(as_json: bool, v: &T, text: impl FnOnce() -> String) -> i32 {
    let printed = if as_json {
        match serde_json::to_string_pretty(v) {
            Ok(t) => print(&t),
            Err(e) => {
                eprint(&format!("error: cannot write JSON: {e}"));
                false
            }
        }
    } else {
        print(&text())
    };
    if printed {
        0
    } else {
        EXIT_ABORT
    }
}

/// Run `hilrig results`; exit 0, 1 when compare finds a moved value, 2 on an error or a
/// refused bundle.
pub async fn results(a: ResultsArgs) -> Result<i32, Failure> {
    let db = Store::open(&db_url(a.db)).await.map_err(Failure::abort)?;
    command(&db, a.command, a.json)
        .await
        .map_err(Failure::abort)?
}

async fn command(
    db: &Store,
    c: ResultsCommand,
    as_json: bool,
) -> Result<Result<i32, Failure>, store::ResultsError> {
    Ok(Ok(match c {
        ResultsCommand::Import {
            dirs,
            allow_unsigned,
            pubkey,
        } => {
            let trusted = match pubkey.map(|p| crate::report::keys::parse_public(&p)) {
                None => None,
                Some(Ok(k)) => Some(k),
                Some(Err(e)) => return Ok(Err(Failure::abort(format!("--pubkey: {e}")))),
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
            out(as_json, &all, || text::import(&all, db.url()));
            for r in &all.refused {
                eprint(&format!("refused: {r}"));
            }
            if all.refused.is_empty() {
                0
            } else {
                EXIT_ABORT
            }
        }
        ResultsCommand::List {
            bench,
            plan,
            firmware,
            since,
            limit,
        } => {
            let filter = ListFilter {
                bench,
                plan,
                firmware,
                since,
                limit,
            };
            let runs = store::list(db, &filter).await?;
            out(as_json, &runs, || text::list(&runs))
        }
        ResultsCommand::Show { run } => {
            let d = store::show(db, &run).await?;
            out(as_json, &d, || text::show(&d))
        }
        ResultsCommand::Trend {
            criterion,
            by,
            plan,
        } => {
            let t = store::trend(db, &criterion, by, plan.as_deref()).await?;
            if t.series.is_empty() {
                let url = db.url();
                let e = format!("no values of criterion `{criterion}` in {url}");
                return Ok(Err(Failure::abort(e)));
            }
            out(as_json, &t, || text::trend(&criterion, &t))
        }
        ResultsCommand::Compare { a, b } => {
            let c = store::compare(db, &a, &b).await?;
            let moved = c.differences.iter().filter(|d| d.moved).count();
            out(as_json, &c, || text::compare(&c, moved));
            if moved > 0 {
                1
            } else {
                0
            }
        }
        ResultsCommand::Flaky => {
            let f = store::flaky(db).await?;
            out(as_json, &f, || text::flaky(&f))
        }
        ResultsCommand::Page {
            out: file,
            by,
            criteria,
        } => {
            let html = store::page::render(db, &criteria, by).await?;
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
            let written = match dir.map(std::fs::create_dir_all) {
                Some(Err(e)) => Err(format!("{}: {e}", dir.unwrap_or(&file).display())),
                _ => crate::durable::write_atomic(&file, html.as_bytes())
                    .map_err(|e| format!("{}: {e}", file.display())),
            };
            if let Err(e) = written {
                return Ok(Err(Failure::abort(e)));
            }
            out(false, &(), || format!("trend page: {}", file.display()))
        }
    }))
}

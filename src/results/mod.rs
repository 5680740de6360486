//! Results across runs and benches: sealed run bundles imported into one store (SQLite by
//! default, PostgreSQL for a lab), and the questions a lab asks of it: what ran, trends of
//! a criterion by firmware or bench, the difference between two runs against their
//! uncertainty, and tests whose verdict flips on the same firmware and bench.
//!
//! Only verified bundles go in: each plan run's `manifest.json` must match its files and
//! carry a valid signature (unsigned bundles only when the caller allows them, and then
//! stored as unsigned). A plan run is keyed by the SHA-256 of its `manifest.json`, so
//! importing the same bundle twice, or from many importers at once, stores it once.

pub mod import;
pub mod page;
pub mod query;
pub mod store;
pub mod text;

use std::path::PathBuf;

pub use import::{import_path, store_run, ImportOptions, ImportReport, Imported};
pub use query::{
    compare, flaky, list, show, trend, Comparison, Flaky, ListFilter, RunRow, TrendBy,
};
pub use store::{Backend, Store};

/// The default store: an SQLite file beside the reports.
pub const DEFAULT_DB: &str = "sqlite://reports/hilrig.db";

/// Environment variable naming the results store.
pub const DB_ENV: &str = "HILRIG_DB";

/// The store named by `given` (`--db`), else by `$HILRIG_DB`; None when neither names one.
pub fn named_store(given: Option<String>) -> Option<String> {
    given.or_else(|| std::env::var(DB_ENV).ok().filter(|s| !s.is_empty()))
}

/// Everything that can go wrong with the results store.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The store URL is not understood.
    #[error("results store `{url}`: {reason}")]
    Url {
        /// The URL (password redacted).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The database refused or failed.
    #[error("results store `{url}`: {what}: {source}")]
    Db {
        /// The URL (password redacted).
        url: String,
        /// What was being done.
        what: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The store was written by a newer hilrig.
    #[error(
        "results store `{url}` has schema version {found}, this hilrig knows {known}; use a \
         newer hilrig"
    )]
    Newer {
        /// The URL.
        url: String,
        /// Version found.
        found: i64,
        /// Newest version known here.
        known: i64,
    },
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A bundle is not intact, not signed, or not a run bundle.
    #[error("{}: {reason}", dir.display())]
    Bundle {
        /// The bundle directory.
        dir: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// No run matches.
    #[error("no run `{0}` in the results store (give a run id or the start of a bundle hash)")]
    NoRun(String),
    /// Several runs match.
    #[error("`{given}` matches {count} runs; give more of the bundle hash")]
    Ambiguous {
        /// What was given.
        given: String,
        /// How many matched.
        count: usize,
    },
}

impl ResultsError {
    fn db(url: &str, what: &str, source: sqlx::Error) -> Self {
        ResultsError::Db {
            url: store::redact(url),
            what: what.to_string(),
            source,
        }
    }
}

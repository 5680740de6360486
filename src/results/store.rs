//! The results store: one schema and one query layer for SQLite and PostgreSQL through
//! `sqlx`'s `Any` driver (the same SQL text runs on both: `$N` placeholders, `ON CONFLICT`,
//! types both accept). Migrations are numbered and applied on open, under an advisory lock
//! on PostgreSQL (many benches may open the store at once) and a write transaction on SQLite.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::ResultsError;

/// The schema, one entry per version; each is applied once, in order, and recorded in
/// `hilrig_schema`. Never edit an applied entry: add the next one.
const MIGRATIONS: &[&str] = &[
    // 1: runs, tests, measurements, instruments.
    "CREATE TABLE run (
        bundle_sha256 TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        station TEXT NOT NULL,
        suite_run_id TEXT,
        plan TEXT NOT NULL,
        title TEXT NOT NULL,
        dut TEXT NOT NULL,
        dut_serial TEXT,
        firmware_id TEXT,
        firmware_version TEXT,
        firmware_sha256 TEXT,
        operator TEXT,
        started TEXT NOT NULL,
        duration_s DOUBLE PRECISION NOT NULL,
        outcome TEXT NOT NULL,
        simulated BIGINT NOT NULL,
        virtual_time BIGINT NOT NULL,
        limit_profile TEXT NOT NULL,
        decision_rule TEXT NOT NULL,
        signature_fingerprint TEXT,
        signature_public_key TEXT,
        source TEXT NOT NULL,
        imported TEXT NOT NULL
    );
    CREATE INDEX run_plan ON run (plan, started);
    CREATE INDEX run_station ON run (station, started);
    CREATE INDEX run_firmware ON run (firmware_version);
    CREATE TABLE test (
        bundle_sha256 TEXT NOT NULL REFERENCES run (bundle_sha256),
        idx BIGINT NOT NULL,
        test TEXT NOT NULL,
        name TEXT NOT NULL,
        repeat_no BIGINT NOT NULL,
        verdict TEXT NOT NULL,
        message TEXT,
        PRIMARY KEY (bundle_sha256, idx)
    );
    CREATE TABLE measurement (
        bundle_sha256 TEXT NOT NULL REFERENCES run (bundle_sha256),
        test_idx BIGINT NOT NULL,
        idx BIGINT NOT NULL,
        criterion TEXT NOT NULL,
        quantity TEXT NOT NULL,
        value DOUBLE PRECISION,
        uncertainty DOUBLE PRECISION NOT NULL,
        k DOUBLE PRECISION NOT NULL,
        unit TEXT NOT NULL,
        limit_low DOUBLE PRECISION,
        limit_high DOUBLE PRECISION,
        verdict TEXT NOT NULL,
        provenance TEXT NOT NULL,
        not_determinable TEXT,
        PRIMARY KEY (bundle_sha256, test_idx, idx)
    );
    CREATE INDEX measurement_criterion ON measurement (criterion);
    CREATE TABLE instrument (
        bundle_sha256 TEXT NOT NULL REFERENCES run (bundle_sha256),
        idx BIGINT NOT NULL,
        id TEXT NOT NULL,
        role TEXT,
        identity TEXT,
        serial TEXT,
        calibration_due TEXT,
        calibration_status TEXT,
        PRIMARY KEY (bundle_sha256, idx)
    )",
];

/// Longest wait for the first connection to the store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (`sqlite://path`): the embedded default.
    Sqlite,
    /// A PostgreSQL server (`postgres://user@host/db`).
    Postgres,
}

impl Backend {
    /// The backend of `url`, or an error naming the schemes accepted.
    pub fn of(url: &str) -> Result<Self, ResultsError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(ResultsError::Url {
                url: redact(url),
                reason: "expected sqlite://PATH or postgres://USER@HOST/DB".into(),
            }),
        }
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.split_once('@') {
        Some(parts) => parts,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// An open results store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
}

/// What the store answered when asked about one thing.
type Sql<T> = Result<T, ResultsError>;

impl Store {
    /// Opens (creating an SQLite file and its directory when needed) and migrates.
    pub async fn open(url: &str) -> Sql<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let connect_url = match backend {
            Backend::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite:")
                    .trim_start_matches("//")
                    .split('?')
                    .next()
                    .unwrap_or("");
                if path.is_empty() {
                    return Err(ResultsError::Url {
                        url: url.into(),
                        reason: "missing file path; expected sqlite://reports/hilrig.db".into(),
                    });
                }
                if let Some(dir) = std::path::Path::new(path).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|e| ResultsError::Io {
                            path: dir.to_path_buf(),
                            error: e,
                        })?;
                    }
                }
                format!("sqlite://{path}?mode=rwc")
            }
            Backend::Postgres => url.to_string(),
        };
        // One plain connection first: its error names the cause (refused, unknown host,
        // bad password), where a pool would only report that it timed out retrying.
        match tokio::time::timeout(
            CONNECT_TIMEOUT,
            <sqlx::AnyConnection as sqlx::Connection>::connect(&connect_url),
        )
        .await
        {
            Err(_) => {
                return Err(ResultsError::Url {
                    url: redact(url),
                    reason: format!(
                        "no connection within {CONNECT_TIMEOUT:?}; check the host and port"
                    ),
                })
            }
            Ok(Err(e)) => return Err(ResultsError::db(url, "cannot open the results store", e)),
            Ok(Ok(c)) => {
                let _ = sqlx::Connection::close(c).await;
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(60))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Many importers may write at once: wait for the lock, not fail.
                        sqlx::query("PRAGMA busy_timeout = 60000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&connect_url)
            .await
            .map_err(|e| ResultsError::db(url, "cannot open the results store", e))?;
        let store = Store {
            pool,
            backend,
            url: redact(url),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL, password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pool, for the query layer.
    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A database error in this store's words.
    pub(super) fn err(&self, what: &str, e: sqlx::Error) -> ResultsError {
        ResultsError::db(&self.url, what, e)
    }

    /// The schema version after opening.
    pub async fn schema_version(&self) -> Sql<i64> {
        let row = sqlx::query("SELECT MAX(version) AS v FROM hilrig_schema")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err("reading the schema version", e))?;
        Ok(row
            .try_get::<Option<i64>, _>("v")
            .ok()
            .flatten()
            .unwrap_or(0))
    }

    async fn migrate(&self) -> Sql<()> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.err("connecting", e))?;
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&mut *conn)
                .await
                .map_err(|e| self.err("switching to WAL", e))?;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(|e| self.err("starting the migration", e))?;
        if self.backend == Backend::Postgres {
            // Serialises concurrent openers; released at commit.
            sqlx::query("SELECT pg_advisory_xact_lock(7242019)")
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("locking for the migration", e))?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS hilrig_schema (version BIGINT PRIMARY KEY, \
             applied TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err("creating hilrig_schema", e))?;
        let done: i64 = sqlx::query("SELECT COUNT(*) AS n FROM hilrig_schema")
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get::<i64, _>("n"))
            .map_err(|e| self.err("reading hilrig_schema", e))?;
        if done as usize > MIGRATIONS.len() {
            return Err(ResultsError::Newer {
                url: self.url.clone(),
                found: done,
                known: MIGRATIONS.len() as i64,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(&format!("applying migration {}", i + 1), e))?;
            }
            sqlx::query("INSERT INTO hilrig_schema (version, applied) VALUES ($1, $2)")
                .bind(i as i64 + 1)
                .bind(crate::trace::rfc3339(std::time::SystemTime::now()))
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("recording the migration", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.err("committing the migration", e))
    }

    /// Rows of `sql` with `binds` (text parameters only).
    pub(super) async fn rows(&self, sql: &str, binds: &[String]) -> Sql<Vec<AnyRow>> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b.clone());
        }
        q.fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("querying", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("sqlite://reports/hilrig.db", Some(Backend::Sqlite))]
    #[case("postgres://u@h/db", Some(Backend::Postgres))]
    #[case("postgresql://u@h/db", Some(Backend::Postgres))]
    #[case("mysql://u@h/db", None)]
    #[case("reports/hilrig.db", None)]
    fn backends_by_scheme(#[case] url: &str, #[case] want: Option<Backend>) {
        assert_eq!(Backend::of(url).ok(), want);
    }

    #[rstest]
    #[case("postgres://lab:secret@db/hilrig", "postgres://lab:***@db/hilrig")]
    #[case("postgres://lab@db/hilrig", "postgres://lab@db/hilrig")]
    #[case("sqlite://x.db", "sqlite://x.db")]
    fn passwords_never_reach_messages(#[case] url: &str, #[case] want: &str) {
        assert_eq!(redact(url), want);
    }

    #[tokio::test]
    async fn opening_twice_migrates_once() {
        let dir = std::env::temp_dir().join(format!("hilrig-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/sub/r.db", dir.display());
        let a = Store::open(&url).await.unwrap();
        assert_eq!(a.schema_version().await.unwrap(), MIGRATIONS.len() as i64);
        let b = Store::open(&url).await.unwrap();
        assert_eq!(b.schema_version().await.unwrap(), MIGRATIONS.len() as i64);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

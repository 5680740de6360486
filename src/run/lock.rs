//! One run per bench: an OS file lock per station.
//!
//! The lock is `flock(2)` on `<lock dir>/<station>.lock`, so the kernel releases it when the
//! holding process ends in any way (including SIGKILL): there are no stale locks. The holder
//! writes who it is into the file for `hilrig lock status`. The lock directory is
//! `$HILRIG_LOCK_DIR`, or `hilrig-locks` in the system temporary directory.
//!
//! A simulated bench lives inside the process that runs it, so two simulated runs never
//! share instruments: without `$HILRIG_LOCK_DIR` their locks are per process and never
//! contend. With `$HILRIG_LOCK_DIR` set, simulated rigs share it like real ones.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Who holds a bench.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// User name.
    pub user: String,
    /// What it runs.
    pub what: String,
    /// When it took the lock (RFC 3339).
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ({}@{}) running {} since {}",
            self.pid, self.user, self.host, self.what, self.since
        )
    }
}

/// Lock errors.
#[derive(Debug, Error)]
pub enum LockError {
    /// Someone else holds the bench.
    #[error("bench `{station}` is busy: held by {holder}; use --wait DURATION to wait for it")]
    Busy {
        /// Station id.
        station: String,
        /// The holder, as written in the lock file (or `unknown`).
        holder: String,
    },
    /// Waited in vain.
    #[error("bench `{station}` is still held by {holder} after waiting {waited:.0} s")]
    Timeout {
        /// Station id.
        station: String,
        /// The holder.
        holder: String,
        /// Seconds waited.
        waited: f64,
    },
    /// The lock file could not be used.
    #[error("cannot use the lock file {path}: {source}")]
    Io {
        /// Lock file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// A held bench lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct BenchLock {
    file: File,
    path: PathBuf,
}

/// The lock directory in effect for a real (or, with `simulated`, a simulated) rig.
pub fn lock_dir(simulated: bool) -> PathBuf {
    match std::env::var_os("HILRIG_LOCK_DIR") {
        Some(dir) => PathBuf::from(dir),
        None if simulated => std::env::temp_dir()
            .join("hilrig-locks")
            .join(format!("sim-{}", std::process::id())),
        None => std::env::temp_dir().join("hilrig-locks"),
    }
}

/// The lock file of a station.
pub fn lock_path(station: &str, simulated: bool) -> PathBuf {
    let safe: String = station
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    lock_dir(simulated).join(format!("{safe}.lock"))
}

fn open(path: &Path) -> Result<File, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)
}

fn try_flock(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a valid, open file descriptor owned by `file`.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn read_holder(path: &Path) -> Option<Holder> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

fn holder_text(path: &Path) -> String {
    read_holder(path)
        .map(|h| h.to_string())
        .unwrap_or_else(|| "an unknown process".into())
}

impl BenchLock {
    /// Take the station's lock, waiting up to `wait` (zero: fail at once when busy).
    pub async fn acquire(
        station: &str,
        simulated: bool,
        what: &str,
        wait: Duration,
    ) -> Result<BenchLock, LockError> {
        let path = lock_path(station, simulated);
        let file = open(&path)?;
        let started = tokio::time::Instant::now();
        loop {
            match try_flock(&file) {
                Ok(true) => break,
                Ok(false) if wait.is_zero() => {
                    return Err(LockError::Busy {
                        station: station.into(),
                        holder: holder_text(&path),
                    });
                }
                Ok(false) if started.elapsed() >= wait => {
                    return Err(LockError::Timeout {
                        station: station.into(),
                        holder: holder_text(&path),
                        waited: started.elapsed().as_secs_f64(),
                    });
                }
                Ok(false) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(source) => return Err(LockError::Io { path, source }),
            }
        }
        let holder = Holder {
            pid: std::process::id(),
            host: hostname(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            what: what.to_string(),
            since: crate::trace::rfc3339(std::time::SystemTime::now()),
        };
        let mut lock = BenchLock { file, path };
        lock.write_holder(&holder)?;
        Ok(lock)
    }

    fn write_holder(&mut self, h: &Holder) -> Result<(), LockError> {
        let io = |source| LockError::Io {
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_string(h).unwrap_or_default();
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file.write_all(text.as_bytes()).map_err(io)?;
        self.file.flush().map_err(io)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The state of a station's lock.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LockStatus {
    /// Nobody holds it.
    Free {
        /// The lock file.
        path: PathBuf,
    },
    /// Held.
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, when readable.
        holder: Option<Holder>,
    },
}

/// Whether a station is locked, without taking the lock.
pub fn status(station: &str, simulated: bool) -> Result<LockStatus, LockError> {
    let path = lock_path(station, simulated);
    if !path.exists() {
        return Ok(LockStatus::Free { path });
    }
    let file = open(&path)?;
    match try_flock(&file) {
        Ok(true) => Ok(LockStatus::Free { path }),
        Ok(false) => Ok(LockStatus::Held {
            holder: read_holder(&path),
            path,
        }),
        Err(source) => Err(LockError::Io { path, source }),
    }
    // `file` drops here, which releases a lock taken only to probe.
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

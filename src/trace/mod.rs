//! The run's one clock and the streamed trace (`trace.csv`).
//!
//! Every sample is one row `t_s,channel,value,unit`: seconds since the run's clock origin
//! (a monotonic instant, anchored once to wall time in the results), the channel name, the
//! value in SI units and the unit. Rows are written as they arrive and flushed at least
//! every `FLUSH_EVERY` rows and at every step boundary, so an abort keeps what was recorded.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::time::Instant;

/// The run's clock: a monotonic origin and the wall time it corresponds to.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Monotonic origin.
    pub origin: Instant,
    /// Wall time at the origin.
    pub wall: SystemTime,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        Self {
            origin: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Seconds since the origin (negative before it).
    pub fn t(&self, at: Instant) -> f64 {
        if at >= self.origin {
            (at - self.origin).as_secs_f64()
        } else {
            -(self.origin - at).as_secs_f64()
        }
    }

    /// Seconds since the origin, now.
    pub fn now(&self) -> f64 {
        self.t(Instant::now())
    }
}

const FLUSH_EVERY: usize = 256;

struct Inner {
    out: BufWriter<File>,
    since_flush: usize,
    rows: u64,
    error: Option<String>,
}

impl Inner {
    /// Record the first write error and discard what is still buffered, so that nothing is
    /// appended after the row the fault cut (not even when the buffer is dropped).
    fn fail(&mut self, e: std::io::Error) {
        self.error.get_or_insert_with(|| e.to_string());
        if let Ok(f) = self.out.get_ref().try_clone() {
            let old = std::mem::replace(&mut self.out, BufWriter::new(f));
            let _ = old.into_parts();
        }
    }
}

/// The streaming trace writer, shared by every task of a run.
#[derive(Clone)]
pub struct Trace {
    clock: Clock,
    inner: Arc<Mutex<Inner>>,
    path: Arc<Path>,
}

impl Trace {
    /// Create `path` and write the header.
    pub fn create(path: &Path, clock: Clock) -> std::io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(out, "t_s,channel,value,unit")?;
        out.flush()?;
        Ok(Self {
            clock,
            path: Arc::from(path),
            inner: Arc::new(Mutex::new(Inner {
                out,
                since_flush: 0,
                rows: 0,
                error: None,
            })),
        })
    }

    /// The file the trace is written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Append one sample.
    pub fn record(&self, at: Instant, channel: &str, value: f64, unit: &str) {
        let t = self.clock.t(at);
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.error.is_some() {
            // After a failed write the file ends at the fault: appending later rows after
            // a cut one would corrupt it (the run is aborting).
            return;
        }
        let r = writeln!(g.out, "{t:.6},{channel},{value},{unit}");
        g.rows += 1;
        g.since_flush += 1;
        let r = r.and_then(|_| {
            if g.since_flush >= FLUSH_EVERY {
                g.out.flush()
            } else {
                Ok(())
            }
        });
        if g.since_flush >= FLUSH_EVERY {
            g.since_flush = 0;
        }
        if let Err(e) = r {
            g.fail(e);
        }
    }

    /// Flush what is buffered.
    pub fn flush(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.since_flush = 0;
        if g.error.is_some() {
            return;
        }
        if let Err(e) = g.out.flush() {
            g.fail(e);
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).rows
    }

    /// The first write error, if any.
    pub fn error(&self) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .error
            .clone()
    }
}

/// RFC 3339 UTC text for a wall time (second resolution plus milliseconds); times before
/// 1970 are written as 1970-01-01.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let at = jiff::Timestamp::UNIX_EPOCH
        .checked_add(jiff::SignedDuration::from_secs(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        ))
        .unwrap_or(jiff::Timestamp::MAX);
    let c = jiff::tz::Offset::UTC.to_datetime(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year(),
        c.month(),
        c.day(),
        c.hour(),
        c.minute(),
        c.second(),
        d.subsec_millis()
    )
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let mut now = rfc3339(SystemTime::now());
    now.truncate("YYYY-MM-DD".len());
    now
}

/// Parse `YYYY-MM-DD` into a day count since 1970-01-01 (proleptic Gregorian).
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let y: i16 = parts.next()?.parse().ok()?;
    let m: i8 = parts.next()?.parse().ok()?;
    let d: i8 = parts.next()?.parse().ok()?;
    let date = jiff::civil::Date::new(y, m, d).ok()?;
    let since = date.duration_since(jiff::civil::date(1970, 1, 1));
    Some(since.as_secs().div_euclid(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_round_trip_and_compare() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(
            parse_date("2025-03-01").unwrap() - parse_date("2025-02-28").unwrap(),
            1
        );
        assert!(parse_date("2025-02-30").is_none());
        assert!(parse_date("2025-13-01").is_none());
        assert!(parse_date("next week").is_none());
        assert_eq!(today().len(), 10);
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[tokio::test]
    async fn trace_rows_are_on_disk_after_flush() {
        let dir = std::env::temp_dir().join(format!("hilrig-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trace.csv");
        let trace = Trace::create(&path, Clock::start()).unwrap();
        trace.record(Instant::now(), "supply.v", 52.8, "V");
        trace.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("t_s,channel,value,unit"));
        assert!(lines.next().unwrap().ends_with(",supply.v,52.8,V"));
        assert_eq!(trace.rows(), 1);
        std::fs::remove_dir_all(dir).ok();
    }
}

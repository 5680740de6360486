//! Round-trip latency of a query (`hilrig instruments ping`).

use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;

use super::{Client, ScpiError};

/// Latency figures of a series of queries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Number of queries.
    pub count: usize,
    /// Fastest round trip.
    #[serde(serialize_with = "seconds")]
    pub min: Duration,
    /// Median round trip (the mean of the two middle ones for an even count).
    #[serde(serialize_with = "seconds")]
    pub median: Duration,
    /// 99th percentile (nearest rank).
    #[serde(serialize_with = "seconds")]
    pub p99: Duration,
    /// Slowest round trip.
    #[serde(serialize_with = "seconds")]
    pub max: Duration,
    /// Mean round trip.
    #[serde(serialize_with = "seconds")]
    pub mean: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Latency {
    /// Summarise round-trip times; None for an empty series.
    pub fn from_samples(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2
        };
        let rank = (n * 99).div_ceil(100).max(1);
        let total: Duration = samples.iter().sum();
        Some(Latency {
            count: n,
            min: samples[0],
            median,
            p99: samples[rank - 1],
            max: samples[n - 1],
            mean: total / n as u32,
        })
    }
}

/// Send `query` `count` times, one after the other, and time each round trip: from the
/// write to the end of the reply. The client's pause between commands (the dialect's
/// `inter_command_delay`) is waited out before the clock starts: it is hilrig's, not the
/// instrument's.
pub async fn ping(client: &mut Client, query: &str, count: usize) -> Result<Latency, ScpiError> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        client.wait_ready().await;
        let started = Instant::now();
        client.query(query).await?;
        samples.push(started.elapsed());
    }
    Latency::from_samples(samples).ok_or_else(|| ScpiError::BadReply {
        command: query.to_string(),
        reply: String::new(),
        reason: "no queries were sent (count 0)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn summary_of_an_odd_series() {
        let l = Latency::from_samples(ms(&[5, 1, 3])).unwrap();
        assert_eq!(
            (l.count, l.min, l.median, l.p99, l.max),
            (
                3,
                Duration::from_millis(1),
                Duration::from_millis(3),
                Duration::from_millis(5),
                Duration::from_millis(5)
            )
        );
        assert_eq!(l.mean, Duration::from_millis(3));
    }

    /// An instrument that answers 2 ms after each query, behind a client that pauses
    /// 50 ms between commands (paused clock): every round trip is the 2 ms, not 52 ms.
    #[tokio::test(start_paused = true)]
    async fn the_pause_between_commands_is_not_latency() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (near, far) = tokio::io::duplex(1 << 12);
        let options = crate::scpi::ClientOptions {
            inter_command_delay: Duration::from_millis(50),
            ..Default::default()
        };
        let mut client = Client::new(Box::new(near), options);
        tokio::spawn(async move {
            let (read, mut write) = tokio::io::split(far);
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(_)) = lines.next_line().await {
                tokio::time::sleep(Duration::from_millis(2)).await;
                if write.write_all(b"1\n").await.is_err() {
                    return;
                }
            }
        });
        let l = ping(&mut client, "*OPC?", 5).await.unwrap();
        assert_eq!(l.count, 5);
        assert!(l.max < Duration::from_millis(10), "{l:?}");
        assert!(l.min >= Duration::from_millis(2), "{l:?}");
    }

    #[test]
    fn median_of_an_even_series_and_p99_by_nearest_rank() {
        let mut samples: Vec<u64> = (1..=200).collect();
        samples.reverse();
        let l = Latency::from_samples(ms(&samples)).unwrap();
        assert_eq!(l.median, Duration::from_micros(100_500));
        assert_eq!(l.p99, Duration::from_millis(198));
        assert!(Latency::from_samples(Vec::new()).is_none());
    }
}

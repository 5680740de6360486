//! Adapter timestamps onto the host clock: the wrapping millisecond counter of `timestamps=1`
//! mapped onto the host's monotonic clock.

use std::time::Duration;

use tokio::time::Instant;

use super::TIMESTAMP_WRAP_MS;

/// Maps the adapter's wrapping millisecond counter onto the host's monotonic clock.
///
/// Wraps are counted with the help of the host time between frames, so a silence longer than
/// a minute does not lose a wrap. The offset between the clocks is the smallest seen
/// (the frame that reached the host fastest), allowed to grow by 500 ppm of elapsed time so
/// that an adapter clock running slow does not make frames lag more and more. A mapped
/// time is never later than the host time at which the frame was read.
#[derive(Debug, Clone, Default)]
pub struct AdapterClock {
    pub(super) state: Option<ClockState>,
}

#[derive(Debug, Clone)]
pub(super) struct ClockState {
    pub(super) first_host: Instant,
    pub(super) last_host: Instant,
    pub(super) last_stamp: u16,
    /// Adapter milliseconds since the first frame (wraps undone).
    pub(super) unwrapped_ms: u64,
    /// (host - first_host) - (adapter - first adapter), in nanoseconds; at most 0 at start.
    pub(super) offset_ns: i128,
}

/// How fast the clock offset may relax, in parts per million of elapsed time.
pub(super) const DRIFT_PPM: i128 = 500;

impl AdapterClock {
    /// A clock that has seen no frame yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The host time of a frame stamped `stamp_ms` by the adapter and read at `host`.
    pub fn map(&mut self, stamp_ms: u16, host: Instant) -> Instant {
        if stamp_ms >= TIMESTAMP_WRAP_MS {
            return host;
        }
        let Some(st) = self.state.as_mut() else {
            self.state = Some(ClockState {
                first_host: host,
                last_host: host,
                last_stamp: stamp_ms,
                unwrapped_ms: 0,
                offset_ns: 0,
            });
            return host;
        };
        let wrap = u64::from(TIMESTAMP_WRAP_MS);
        let step = (u64::from(stamp_ms) + wrap - u64::from(st.last_stamp)) % wrap;
        let host_ms = host.saturating_duration_since(st.last_host).as_millis();
        let host_ms = u64::try_from(host_ms).unwrap_or(u64::MAX);
        // Whole wraps hidden in the silence: round (host elapsed - step) to minutes.
        let wraps = host_ms.saturating_sub(step).saturating_add(wrap / 2) / wrap;
        st.unwrapped_ms = st
            .unwrapped_ms
            .saturating_add(step)
            .saturating_add(wraps.saturating_mul(wrap));

        let host_ns = i128::try_from(host.saturating_duration_since(st.first_host).as_nanos())
            .unwrap_or(i128::MAX);
        let since_last_ns = i128::try_from(host.saturating_duration_since(st.last_host).as_nanos())
            .unwrap_or(i128::MAX);
        let adapter_ns = i128::from(st.unwrapped_ms) * 1_000_000;
        let candidate = host_ns - adapter_ns;
        let relaxed = st
            .offset_ns
            .saturating_add(since_last_ns.saturating_mul(DRIFT_PPM) / 1_000_000);
        st.offset_ns = candidate.min(relaxed);
        st.last_host = host;
        st.last_stamp = stamp_ms;

        let at_ns = adapter_ns + st.offset_ns;
        let mapped = if at_ns >= 0 {
            u64::try_from(at_ns)
                .ok()
                .and_then(|ns| st.first_host.checked_add(Duration::from_nanos(ns)))
        } else {
            u64::try_from(-at_ns)
                .ok()
                .and_then(|ns| st.first_host.checked_sub(Duration::from_nanos(ns)))
        };
        mapped.map_or(host, |t| t.min(host))
    }
}

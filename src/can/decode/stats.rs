//! `stats` mode: what one signal's values were over the whole log, and the table or JSON
//! document written once the log has been read.

use std::io::Write as _;

use super::value::{csv_field, decimal_scaling, number};
use super::{format_id, DecodeSummary};
use crate::dbc::{Dbc, Signal};

/// What `stats` mode gathers: one entry per signal column, one count per message.
pub(super) struct Stats {
    pub(super) signals: Vec<SignalStats>,
    pub(super) frames: Vec<u64>,
}

/// The values one signal took.
#[derive(Debug, Clone, Copy)]
pub(super) struct SignalStats {
    pub(super) values: u64,
    pub(super) finite: u64,
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) sum: f64,
    pub(super) last: f64,
}

impl Default for SignalStats {
    fn default() -> Self {
        Self {
            values: 0,
            finite: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            last: f64::NAN,
        }
    }
}

impl SignalStats {
    /// Count a value; only finite ones enter min, max and mean.
    pub(super) fn add(&mut self, v: f64) {
        self.values += 1;
        self.last = v;
        if v.is_finite() {
            self.finite += 1;
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            self.sum += v;
        }
    }
}

/// A value of a signal rounded to the decimals of its factor and offset (so that it prints
/// as the exact decimal), unchanged for other scalings; `None` when not finite.
pub(super) fn stat_value(v: f64, s: &Signal) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    Some(match decimal_scaling(s.factor, s.offset) {
        Some((_, _, decimals)) => {
            let scale = 10f64.powi(decimals as i32);
            let r = (v * scale).round() / scale;
            if r.is_finite() {
                r
            } else {
                v
            }
        }
        None => v,
    })
}

/// The statistics table (CSV) or document (JSON), after the whole log.
pub(super) fn write_stats(
    out: &mut Vec<u8>,
    dbc: &Dbc,
    stats: &Stats,
    summary: &DecodeSummary,
    json: bool,
) {
    let mut column = 0;
    let mut messages = Vec::new();
    if !json {
        out.extend_from_slice(b"message,id,signal,unit,frames,values,min,max,mean,last\n");
    }
    for (m, &frames) in dbc.messages().iter().zip(&stats.frames) {
        let mut signals = Vec::new();
        for s in &m.signals {
            let st = stats.signals.get(column).copied().unwrap_or_default();
            column += 1;
            let seen = st.finite > 0;
            let min = seen.then(|| stat_value(st.min, s)).flatten();
            let max = seen.then(|| stat_value(st.max, s)).flatten();
            let last = stat_value(st.last, s);
            let mean = seen
                .then(|| st.sum / st.finite as f64)
                .filter(|v| v.is_finite());
            if json {
                signals.push(serde_json::json!({
                    "signal": s.name, "unit": s.unit, "values": st.values,
                    "min": min, "max": max, "mean": mean, "last": last,
                }));
            } else {
                let _ = write!(
                    out,
                    "{},{},{},{},{frames},{},",
                    csv_field(&m.name),
                    format_id(m.id, m.extended),
                    csv_field(&s.name),
                    csv_field(&s.unit),
                    st.values
                );
                for (i, v) in [min, max, mean, last].into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if let Some(v) = v {
                        number(out, v, false);
                    }
                }
                out.push(b'\n');
            }
        }
        if json {
            messages.push(serde_json::json!({
                "message": m.name, "id": m.id, "extended": m.extended,
                "frames": frames, "signals": signals,
            }));
        }
    }
    if json {
        let unknown: Vec<_> = summary
            .unknown
            .iter()
            .map(|((id, ext), u)| {
                serde_json::json!({"id": id, "extended": ext, "frames": u.frames, "first_line": u.first_line})
            })
            .collect();
        let doc = serde_json::json!({
            "lines": summary.lines,
            "decoded": summary.decoded,
            "skipped": summary.skipped,
            "problems": summary.problems,
            "unknown": unknown,
            "messages": messages,
        });
        let _ = serde_json::to_writer(&mut *out, &doc);
        out.push(b'\n');
    }
}

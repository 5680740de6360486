//! The live signal table: the latest value of every logical signal, fed by the DUT bus
//! monitor and the instrument samplers, with exact first-observation times for conditions.
//!
//! A waiter registers a condition; the table evaluates it after every update, so the
//! detection time is the receive timestamp of the very frame (or sample) that made the
//! condition true, however late the waiting task wakes up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::can::Bus;
use crate::dbc::Dbc;
use crate::plan::condition::Reading;
use crate::plan::{Condition, SignalSource};
use crate::trace::Trace;

struct Watcher {
    cond: Condition,
    tx: oneshot::Sender<Instant>,
}

#[derive(Default)]
struct Table {
    values: HashMap<String, (f64, Instant)>,
    watchers: Vec<Watcher>,
    last_bus_frame: Option<Instant>,
    last_setpoint: Option<String>,
    /// Per signal: the longest interval seen between two updates (s).
    longest_gap: HashMap<String, f64>,
    /// Every update of the signals [`keeps_history`] names, for the inverter checks.
    history: HashMap<String, Vec<(Instant, f64)>>,
    /// Whether the history is kept (a plan that judges inverter checks or has `soc` steps);
    /// off, a run's memory stays bounded however long it runs.
    keep_history: bool,
}

/// Signals whose every update is kept for the run (the inverter's announcements, and the
/// BMS's faults and FETs and the instruments' readings they are judged against; the SOC
/// reference integrates `supply.i` and `load.i`).
pub fn keeps_history(name: &str) -> bool {
    name.starts_with("inv.")
        || name.starts_with("bms.fault.")
        || matches!(
            name,
            "bms.chg_fet" | "bms.dsg_fet" | "supply.i" | "load.i" | "supply.v"
        )
}

/// Signals shown live to the operator, when the DUT fixture and rig provide them.
pub const KEY_SIGNALS: [&str; 6] = [
    "bms.state",
    "bms.chg_fet",
    "bms.dsg_fet",
    "supply.v",
    "supply.i",
    "load.i",
];

/// The shared signal table.
#[derive(Clone)]
pub struct Signals {
    inner: Arc<Mutex<Table>>,
    trace: Trace,
}

impl Signals {
    /// An empty table that records every update into `trace`.
    pub fn new(trace: Trace) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Table::default())),
            trace,
        }
    }

    /// Keep the history of the signals [`keeps_history`] names from now on (for a plan that
    /// judges inverter checks over it).
    pub fn keep_history(&self) {
        self.lock().keep_history = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Update several signals observed at the same instant, then fire satisfied watchers.
    pub fn update(&self, at: Instant, values: &[(&str, f64, &str)]) {
        for (name, v, unit) in values {
            self.trace.record(at, name, *v, unit);
        }
        let mut t = self.lock();
        for (name, v, _) in values {
            if let Some((_, before)) = t.values.get(*name) {
                let gap = at.saturating_duration_since(*before).as_secs_f64();
                let longest = t.longest_gap.entry((*name).to_string()).or_insert(0.0);
                *longest = longest.max(gap);
            }
            t.values.insert((*name).to_string(), (*v, at));
            if t.keep_history && keeps_history(name) {
                let series = t.history.entry((*name).to_string()).or_default();
                // The BMS's faults and FETs are states: a change is kept, a repeat of the
                // same value is not (the series reads as held between entries).
                let repeat = name.starts_with("bms.") && series.last().is_some_and(|l| l.1 == *v);
                if !repeat {
                    series.push((at, *v));
                }
            }
            if name.ends_with("_set") {
                t.last_setpoint = Some((*name).to_string());
            }
        }
        let Table {
            values: vals,
            watchers,
            ..
        } = &mut *t;
        let read = |s: &str| vals.get(s).map(|(v, _)| Reading { value: *v });
        let mut i = 0;
        while i < watchers.len() {
            if watchers[i].cond.eval(&read) == Some(true) {
                let w = watchers.swap_remove(i);
                let _ = w.tx.send(at);
            } else {
                i += 1;
            }
        }
    }

    /// The latest values of the signals an operator watches: BMS state and FETs, supply and
    /// load readings, and the setpoint last changed by a stimulus.
    pub fn key_values(&self) -> Vec<(String, f64)> {
        let t = self.lock();
        let mut names: Vec<&str> = KEY_SIGNALS.to_vec();
        if let Some(set) = &t.last_setpoint {
            names.push(set);
        }
        names
            .iter()
            .filter_map(|n| t.values.get(*n).map(|(v, _)| (n.to_string(), *v)))
            .collect()
    }

    /// The longest interval seen so far between two updates of a signal (its observed
    /// message cycle, jitter included), from the receive timestamps; `None` before two updates.
    pub fn longest_gap(&self, name: &str) -> Option<f64> {
        self.lock().longest_gap.get(name).copied()
    }

    /// Every update of a signal that [`keeps_history`] names, oldest first.
    pub fn history(&self, name: &str) -> Vec<(Instant, f64)> {
        self.lock().history.get(name).cloned().unwrap_or_default()
    }

    /// The latest value of a signal.
    pub fn get(&self, name: &str) -> Option<(f64, Instant)> {
        self.lock().values.get(name).copied()
    }

    /// Evaluate a condition on the current values.
    pub fn eval(&self, cond: &Condition) -> Option<bool> {
        let t = self.lock();
        cond.eval(&|s: &str| {
            t.values.get(s).map(|(v, _)| Reading {
                value: v.to_owned(),
            })
        })
    }

    /// Evaluate a condition on values received at or after `since` only: `None` while a
    /// signal it names has no value that fresh.
    pub fn eval_since(&self, cond: &Condition, since: Instant) -> Option<bool> {
        let t = self.lock();
        cond.eval(&|s: &str| {
            t.values
                .get(s)
                .filter(|(_, at)| *at >= since)
                .map(|(v, _)| Reading { value: *v })
        })
    }

    /// Resolve when the condition becomes true; immediately (with now) if it already is.
    pub fn watch(&self, cond: Condition) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        let mut t = self.lock();
        let already =
            cond.eval(&|s: &str| t.values.get(s).map(|(v, _)| Reading { value: *v })) == Some(true);
        if already {
            let _ = tx.send(Instant::now());
        } else {
            t.watchers.push(Watcher { cond, tx });
        }
        rx
    }

    /// When the last frame from the DUT bus arrived.
    pub fn last_bus_frame(&self) -> Option<Instant> {
        self.lock().last_bus_frame
    }

    fn touch_bus(&self, at: Instant) {
        self.lock().last_bus_frame = Some(at);
    }
}

/// Decode every frame on the DUT bus that carries a mapped signal, into the table.
pub fn spawn_monitor(
    bus: &dyn Bus,
    dbc: Arc<Dbc>,
    map: &std::collections::BTreeMap<String, SignalSource>,
    signals: Signals,
) -> JoinHandle<()> {
    // (message id, extended) -> [(signal name, logical name)]
    let mut by_msg: HashMap<(u32, bool), Vec<(String, String)>> = HashMap::new();
    for (logical, src) in map {
        if let SignalSource::Can { message, signal } = src {
            if let Some(m) = dbc.message(message) {
                by_msg
                    .entry((m.id, m.extended))
                    .or_default()
                    .push((signal.clone(), logical.clone()));
            }
        }
    }
    let mut rx = bus.subscribe();
    tokio::spawn(async move {
        loop {
            let r = match rx.recv().await {
                Ok(r) => r,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!("DUT bus monitor fell behind and lost {n} frames");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let key = (r.frame.id, r.frame.extended);
            if !r.frame.kind.carries_data() {
                continue;
            }
            let Some(wanted) = by_msg.get(&key) else {
                continue;
            };
            signals.touch_bus(r.at);
            let Some(msg) = dbc.message_by_id(key.0, key.1) else {
                continue;
            };
            let decoded = match msg.decode(&r.frame.data) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("cannot decode {} from the DUT: {e}", msg.name);
                    continue;
                }
            };
            let updates: Vec<(&str, f64, &str)> = wanted
                .iter()
                .filter_map(|(sig, logical)| {
                    decoded
                        .iter()
                        .find(|d| &d.name == sig)
                        .map(|d| (logical.as_str(), d.physical, d.unit.as_str()))
                })
                .collect();
            if !updates.is_empty() {
                signals.update(r.at, &updates);
            }
        }
    })
}

/// Read the BMS's Modbus register map every `period` into the table, stamped when the
/// whole map has been read. A failed read is logged when the link starts failing and when
/// it answers again; the gap it leaves in the signals is what the inverter checks judge.
pub fn spawn_modbus_poller(
    mut client: crate::modbus::Client,
    map: Arc<crate::modbus::RegisterMap>,
    period: std::time::Duration,
    link: String,
    signals: Signals,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match client.read_map(&map).await {
                Ok(values) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("Modbus link `{link}` answers again");
                    }
                    let updates: Vec<(&str, f64, &str)> = values
                        .iter()
                        .map(|(n, v, u)| (n.as_str(), *v, u.as_str()))
                        .collect();
                    signals.update(Instant::now(), &updates);
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("Modbus link `{link}`: {e}");
                }
                Err(_) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Clock;
    use std::time::Duration;

    #[test]
    fn eval_since_reads_only_values_received_at_or_after_the_instant() {
        let dir = std::env::temp_dir().join(format!("hilrig-signals-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trace = Trace::create(&dir.join("trace.csv"), Clock::start()).unwrap();
        let signals = Signals::new(trace);
        let standby = Condition::parse("bms.state == 0").unwrap();
        let t0 = Instant::now();
        let (before, request, after) = (
            t0,
            t0 + Duration::from_millis(10),
            t0 + Duration::from_millis(20),
        );
        signals.update(before, &[("bms.state", 0.0, "")]);
        assert_eq!(signals.eval(&standby), Some(true));
        assert_eq!(
            signals.eval_since(&standby, request),
            None,
            "a stale value counts for nothing"
        );
        signals.update(after, &[("bms.state", 3.0, "")]);
        assert_eq!(signals.eval_since(&standby, request), Some(false));
        signals.update(after, &[("bms.state", 0.0, "")]);
        assert_eq!(signals.eval_since(&standby, request), Some(true));
        assert_eq!(
            signals.eval_since(&standby, after),
            Some(true),
            "at the instant counts"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The history is kept only when asked for (a plan with inverter checks), and the BMS's
    /// states only when they change: a day of 10 Hz fault flags is a handful of entries.
    #[test]
    fn history_is_opt_in_and_states_keep_only_their_changes() {
        let dir = std::env::temp_dir().join(format!("hilrig-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trace = Trace::create(&dir.join("trace.csv"), Clock::start()).unwrap();
        let signals = Signals::new(trace);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        signals.update(at(0), &[("inv.ccl", 50.0, "A"), ("bms.fault.ov", 0.0, "")]);
        assert!(
            signals.history("inv.ccl").is_empty(),
            "not kept unless asked"
        );
        signals.keep_history();
        for ms in 1..=100 {
            let fault = if ms >= 60 { 1.0 } else { 0.0 };
            signals.update(
                at(ms),
                &[("inv.ccl", 50.0, "A"), ("bms.fault.ov", fault, "")],
            );
        }
        assert_eq!(signals.history("inv.ccl").len(), 100, "every announcement");
        assert_eq!(
            signals.history("bms.fault.ov"),
            vec![(at(1), 0.0), (at(60), 1.0)],
            "a state keeps its changes"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

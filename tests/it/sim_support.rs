//! Helpers for the simulated-bench tests: a paused (virtual-time) runtime, an in-memory
//! bench, a plan run on it, and frames in the project DBC.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use hilrig::can::Frame;
use hilrig::dbc::Dbc;
use hilrig::plan::LoadedPlan;
use hilrig::report::RunResults;
use hilrig::rig::Rig;
use hilrig::run::{execute, RunOptions};
use hilrig::sim::bench::FIRMWARE_DBC;
use hilrig::sim::{Bench, BenchOptions, ScpiExposure};
use hilrig::trace::Clock;
use tokio_util::sync::CancellationToken;

/// A current-thread runtime whose clock is paused: time jumps to the next timer whenever
/// every task is waiting.
pub fn virtual_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Start the bench for `rig` (whose file is `rig_path`) with in-memory SCPI.
pub async fn memory_bench(rig: &Rig, rig_path: &Path) -> Bench {
    let options = BenchOptions {
        scpi: ScpiExposure::InMemory,
        ..Default::default()
    };
    Bench::start_with(rig, rig_path, &options)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Run a plan on a started bench; returns the results and the run clock.
pub async fn run_plan(
    bench: &Bench,
    rig: &Rig,
    plan: Arc<LoadedPlan>,
    dir: &Path,
) -> (RunResults, Clock) {
    let clock = Clock::start();
    let options = RunOptions {
        dir: dir.to_path_buf(),
        run_id: "sim-test".into(),
        decision_rule: None,
        cancel: CancellationToken::new(),
        firmware: None,
        clock,
        on_event: Arc::new(|_| {}),
        refused: None,
        context: Default::default(),
        operator: Default::default(),
    };
    let results = execute(plan, &bench.resolve(rig), options).await.unwrap();
    (results, clock)
}

/// The project DBC the simulated BMS speaks.
pub fn firmware_dbc() -> Dbc {
    Dbc::parse(FIRMWARE_DBC, "sim-bms.dbc").unwrap()
}

/// A frame of `message` with `values`, in the project DBC.
pub fn frame(dbc: &Dbc, message: &str, values: &[(&str, f64)]) -> Frame {
    let m = dbc.message(message).unwrap();
    Frame::new(m.id, m.extended, &m.encode(values).unwrap()).unwrap()
}

/// A protection of the simulated firmware's configuration by its name in criteria (`ov`,
/// `uv`, `otc`, `otd`, `utc`, `occ`, `ocd`); with the scale from SI units to the AFE's
/// resolution (1 mV, 0.1 °C, 1 mA) and whether it trips above its level.
pub fn protection(
    config: &sim_bms::Config,
    name: &str,
) -> Option<(sim_bms::Protection, f64, bool)> {
    Some(match name {
        "ov" => (config.ov, 1000.0, true),
        "uv" => (config.uv, 1000.0, false),
        "otc" => (config.otc, 10.0, true),
        "otd" => (config.otd, 10.0, true),
        "utc" => (config.utc, 10.0, false),
        "occ" => (config.occ, 1000.0, true),
        "ocd" => (config.ocd, 1000.0, true),
        _ => return None,
    })
}

/// The physical level at which the firmware trips (`release`: false) or releases: it compares
/// the AFE's rounded reading strictly with its level, so the physical value acts half a
/// resolution step beyond it (the lowest cell voltage an OV trip acts on is trip + 0.5 mV).
pub fn level_truth(config: &sim_bms::Config, name: &str, release: bool) -> Option<f64> {
    let (p, scale, upper) = protection(config, name)?;
    let (level, beyond_upward) = if release {
        let level = if name == "ov" && config.defects.no_hysteresis {
            p.trip
        } else {
            p.release
        };
        (level, !upper)
    } else {
        (p.trip, upper)
    };
    let half = if beyond_upward { 0.5 } else { -0.5 };
    Some((level as f64 + half) / scale)
}

/// One event of the bench's ground truth (`truth.json`, or `Truth::events`), on the run's clock.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TruthEvent {
    /// Seconds since the run started.
    pub t: f64,
    /// `plant_crossed`, `chg_fet_open`, ...
    pub kind: String,
    /// The protection concerned, if any.
    pub protection: Option<String>,
    /// The value (the plant's true SOC in % for `soc` events).
    #[serde(default)]
    pub value: Option<f64>,
}

/// The plant's true state of charge (%) at `t`, interpolated between the `soc` events that
/// bracket it (the last one holds after it); None before the first.
pub fn soc_truth_at(events: &[TruthEvent], t: f64) -> Option<f64> {
    let soc: Vec<(f64, f64)> = events
        .iter()
        .filter(|e| e.kind == "soc")
        .filter_map(|e| e.value.map(|v| (e.t, v)))
        .collect();
    let after = soc.iter().position(|(at, _)| *at > t);
    match after {
        Some(0) => None,
        Some(i) => {
            let ((ta, va), (tb, vb)) = (soc[i - 1], soc[i]);
            Some(va + (vb - va) * (t - ta) / (tb - ta))
        }
        None => soc.last().map(|(_, v)| *v),
    }
}

/// The first event of `kind` for `protection` at or after `from` (s).
pub fn truth_after(events: &[TruthEvent], kind: &str, protection: &str, from: f64) -> Option<f64> {
    events
        .iter()
        .find(|e| {
            e.kind == kind && e.protection.as_deref() == Some(protection) && e.t >= from - 1e-9
        })
        .map(|e| e.t)
}

/// The real trip time of `protection` in a test that started at `started_s`: the first FET
/// opening it caused minus the last moment before it that the plant went beyond the
/// firmware's own level (the bench's ground truth).
pub fn trip_time_truth(events: &[TruthEvent], protection: &str, started_s: f64) -> Option<f64> {
    let opened = events
        .iter()
        .find(|e| {
            e.kind.ends_with("_fet_open")
                && e.protection.as_deref() == Some(protection)
                && e.t >= started_s - 1e-9
        })?
        .t;
    let crossed = events
        .iter()
        .rev()
        .find(|e| {
            e.kind == "plant_crossed"
                && e.protection.as_deref() == Some(protection)
                && e.t >= started_s - 1e-9
                && e.t <= opened + 1e-9
        })?
        .t;
    Some(opened - crossed)
}

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

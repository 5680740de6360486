//! Every way a run can end early leaves the instruments in their safe state, checked from the
//! simulated instruments' own state, with the cause recorded and the trace kept.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hilrig::plan::load_plan;
use hilrig::report::{Outcome, RunResults};
use hilrig::run::{execute, Event, EventHook};
use hilrig::sim::Bench;
use tokio_util::sync::CancellationToken;

/// Wait until the over-charge plan's trip step is ramping (supply on, a cell above 3.5 V).
async fn wait_for_ramp(bench: &Bench) {
    for _ in 0..400 {
        let s = bench.plant.snapshot();
        if s.supply.output && s.cells.iter().any(|v| *v > 3.5) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the trip step did not start");
}

/// The checks every fault must pass.
fn assert_aborted_safely(bench: &Bench, r: &RunResults, dir: &Path, cause: &str) {
    assert_eq!(r.outcome, Outcome::Aborted, "{r:#?}");
    let abort = r.abort.as_ref().expect("abort recorded");
    assert!(
        abort.cause.contains(cause),
        "cause `{}` lacks `{cause}`",
        abort.cause
    );
    let s = bench.plant.snapshot();
    assert!(
        !s.supply.output,
        "the simulated supply's output is still on"
    );
    assert!(!s.load.input, "the simulated load's input is still on");
    assert!(
        s.cells.iter().all(|v| (v - 3.30).abs() < 1e-3),
        "cells not back to nominal: {:?}",
        s.cells
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["outcome"], "aborted");
    let trace = std::fs::read_to_string(dir.join("trace.csv")).unwrap();
    assert!(
        trace.lines().count() > 20,
        "the trace up to the fault is kept"
    );
    assert_eq!(hilrig::report::Outcome::Aborted.exit_code(), 2);
}

/// Start the over-charge plan with the load input on as well.
async fn start(
    name: &str,
    on_event: Option<EventHook>,
) -> (
    Bench,
    CancellationToken,
    std::path::PathBuf,
    tokio::task::JoinHandle<RunResults>,
) {
    start_with(name, on_event, |rig| {
        plan("test-plans/overcharge.yaml", rig)
    })
    .await
}

/// As [`start`], with the plan `load` gives for the simulated rig.
async fn start_with(
    name: &str,
    on_event: Option<EventHook>,
    load: impl FnOnce(&hilrig::rig::Rig) -> Arc<hilrig::plan::LoadedPlan>,
) -> (
    Bench,
    CancellationToken,
    std::path::PathBuf,
    tokio::task::JoinHandle<RunResults>,
) {
    let rig = sim_rig(None);
    let bench = bench(&rig).await;
    bench.plant.lock().load.input = true;
    let plan = load(&rig);
    let dir = temp_dir(name);
    let cancel = CancellationToken::new();
    let mut opts = options(&dir, cancel.clone());
    if let Some(f) = on_event {
        opts.on_event = f;
    }
    let resolved = bench.resolve(&rig);
    let run = tokio::spawn(async move { execute(plan, &resolved, opts).await.unwrap() });
    (bench, cancel, dir, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_cancel_mid_step() {
    let (bench, cancel, dir, run) = start("cancel", None).await;
    wait_for_ramp(&bench).await;
    cancel.cancel();
    let r = run.await.unwrap();
    assert_aborted_safely(&bench, &r, &dir, "cancelled by the operator");
    assert!(r.safe_state_reached, "{:?}", r.safe_state);
}

/// The over-charge plan on a copy of the simulated fixture whose state request confirms
/// its standby with `confirm` (`None`: declares no `confirm`).
fn overcharge_confirmed_by(
    name: &str,
    confirm: Option<&str>,
    rig: &hilrig::rig::Rig,
) -> Arc<hilrig::plan::LoadedPlan> {
    let dir = temp_dir(name);
    let fixtures = root().join("fixtures");
    let shipped = "  confirm: bms.state == standby\n";
    let fixture = std::fs::read_to_string(fixtures.join("sim-bms-16s-lfp.yaml"))
        .unwrap()
        .replace(
            shipped,
            &confirm
                .map(|c| format!("  confirm: {c}\n"))
                .unwrap_or_default(),
        );
    let fixture = fixture_paths_absolute(&fixture);
    std::fs::write(dir.join("fixture.yaml"), fixture).unwrap();
    let plan = std::fs::read_to_string(root().join("test-plans/overcharge.yaml"))
        .unwrap()
        .replace("../fixtures/sim-bms-16s-lfp.yaml", "fixture.yaml")
        .replace(
            "limits: iec62619-bms",
            &format!(
                "limits: {}",
                fixtures.join("limits/iec62619-bms.yaml").display()
            ),
        );
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
    Arc::new(load_plan(&dir.join("plan.yaml"), Some(rig)).unwrap_or_else(|e| panic!("{e:?}")))
}

/// Cancel the over-charge plan mid-ramp and return its standby action.
async fn standby_after_cancel(
    name: &str,
    confirm: Option<&'static str>,
) -> (RunResults, hilrig::report::SafeStateAction) {
    let (bench, cancel, dir, run) = start_with(name, None, |rig| match confirm {
        Some("shipped") => plan("test-plans/overcharge.yaml", rig),
        c => overcharge_confirmed_by(name, c, rig),
    })
    .await;
    wait_for_ramp(&bench).await;
    cancel.cancel();
    let r = run.await.unwrap();
    assert_aborted_safely(&bench, &r, &dir, "cancelled by the operator");
    for off in r.safe_state.iter().filter(|a| a.action.contains("off")) {
        assert!(off.ok && off.confirmed, "read back: {off:?}");
    }
    let standby = r
        .safe_state
        .iter()
        .find(|a| a.action.contains("standby"))
        .expect("a standby request")
        .clone();
    (r, standby)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bms_confirms_the_standby_request_with_its_state() {
    let (r, standby) = standby_after_cancel("standby-confirmed", Some("shipped")).await;
    assert!(standby.ok && standby.confirmed, "{standby:?}");
    assert!(
        standby
            .action
            .contains("confirmed by `bms.state == standby`"),
        "{standby:?}"
    );
    assert!(r.safe_state_reached, "{:?}", r.safe_state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_confirm_that_never_holds_fails_with_the_last_values_seen() {
    let (r, standby) = standby_after_cancel("standby-never", Some("bms.state == fault")).await;
    assert!(!standby.ok && !standby.confirmed, "{standby:?}");
    let error = standby.error.as_deref().unwrap_or("");
    assert!(
        error.contains("`bms.state == fault` did not hold within 2 s of the request")
            && error.contains("last seen: bms.state = 0 (standby)")
            && !error.contains("before the request"),
        "{error}"
    );
    assert!(!r.safe_state_reached);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_request_without_a_confirm_is_sent_not_confirmed() {
    let (r, standby) = standby_after_cancel("standby-unconfirmed", None).await;
    assert!(standby.ok && !standby.confirmed, "{standby:?}");
    assert!(
        standby
            .action
            .contains("sent, not confirmed (the fixture declares no `confirm`)"),
        "{standby:?}"
    );
    assert!(standby.sent_not_confirmed());
    assert!(r.safe_state_reached, "{:?}", r.safe_state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_in_the_executor() {
    let hook: EventHook = Arc::new(|e: &Event| {
        if let Event::Step {
            phase: hilrig::run::Phase::Steps,
            index: 1,
            ..
        } = e
        {
            panic!("injected fault");
        }
    });
    let (bench, _cancel, dir, run) = start("panic", Some(hook)).await;
    let r = run.await.unwrap();
    assert_aborted_safely(&bench, &r, &dir, "internal error (panic): injected fault");
    assert!(r.safe_state_reached, "{:?}", r.safe_state);
    // The tests before the panic were recorded (the setup's step trip and the first ramp).
    assert_eq!(r.tests.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_instrument_connection() {
    let (bench, _cancel, dir, run) = start("lost", None).await;
    wait_for_ramp(&bench).await;
    bench.instrument("load").unwrap().drop_connections();
    let r = run.await.unwrap();
    assert_aborted_safely(&bench, &r, &dir, "lost instrument `load`");
    let load = r
        .safe_state
        .iter()
        .find(|a| a.instrument == "load")
        .unwrap();
    assert!(
        load.ok,
        "the load is switched off after reconnecting: {load:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_can_bus() {
    let (bench, _cancel, dir, run) = start("deadbus", None).await;
    wait_for_ramp(&bench).await;
    bench.halt_firmware();
    let r = run.await.unwrap();
    assert_aborted_safely(&bench, &r, &dir, "no frame from the DUT");
    safe_state_can_steps_on_a_dead_bus_are_sent_not_confirmed(&r);
}

/// With the DUT silent, a standby request over CAN cannot be confirmed: it is recorded as
/// sent, not as done, and the safe state is not claimed as reached.
fn safe_state_can_steps_on_a_dead_bus_are_sent_not_confirmed(r: &RunResults) {
    let standby = r
        .safe_state
        .iter()
        .find(|a| a.action.contains("standby"))
        .expect("a standby request");
    assert!(!standby.ok, "{standby:?}");
    assert!(
        standby
            .error
            .as_deref()
            .unwrap_or("")
            .contains("not confirmed"),
        "{standby:?}"
    );
    assert!(!r.safe_state_reached);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instrument_error_mid_step() {
    let (bench, _cancel, dir, run) = start("scpi-error", None).await;
    wait_for_ramp(&bench).await;
    bench
        .instrument("supply")
        .unwrap()
        .inject_error(-310, "System error");
    let r = run.await.unwrap();
    assert_aborted_safely(&bench, &r, &dir, "-310");
    assert!(r.safe_state_reached, "{:?}", r.safe_state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_the_bms_never_meets_is_a_failed_precondition() {
    let rig = sim_rig(None);
    let bench = bench(&rig).await;
    let dir = temp_dir("timeout");
    let text = std::fs::read_to_string(root().join("test-plans/overcharge.yaml"))
        .unwrap()
        .replace(
            "  - wait_for: {until: bms.chg_fet == closed, timeout: 5 s}",
            "  - wait_for: {until: bms.state == discharge, timeout: 1 s}",
        );
    let text = text.replace("../fixtures/", &format!("{}/fixtures/", root().display()));
    std::fs::write(dir.join("plan.yaml"), text).unwrap();
    let plan = Arc::new(load_plan(&dir.join("plan.yaml"), Some(&rig)).unwrap());
    let r = execute(
        plan,
        &bench.resolve(&rig),
        options(&dir.join("run"), CancellationToken::new()),
    )
    .await
    .unwrap();
    // The BMS never reached the state the plan needs while the bench was fine: a failed
    // precondition test, not an aborted run; the bench still ends in its safe state.
    assert_eq!(r.outcome, Outcome::Failed, "{r:#?}");
    assert!(r.abort.is_none());
    let pre = r
        .tests
        .iter()
        .find(|t| t.name.starts_with("precondition "))
        .expect("a precondition test");
    assert!(pre
        .message
        .as_deref()
        .unwrap()
        .contains("did not hold within 1.000 s"));
    assert!(!r.not_run.is_empty(), "{:?}", r.not_run);
    assert!(r.safe_state_reached, "{:?}", r.safe_state);
    let s = bench.plant.snapshot();
    assert!(!s.supply.output && !s.load.input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setpoint_beyond_the_envelope_is_never_sent() {
    let rig = sim_rig(None);
    let bench = bench(&rig).await;
    let dir = temp_dir("envelope");
    let text = std::fs::read_to_string(root().join("test-plans/overcharge.yaml"))
        .unwrap()
        .replace("voltage: 56.0 V", "voltage: 65.0 V")
        .replace("../fixtures/", &format!("{}/fixtures/", root().display()));
    std::fs::write(dir.join("plan.yaml"), text).unwrap();
    // Validation against the rig refuses the plan and names the line ...
    let errors = load_plan(&dir.join("plan.yaml"), Some(&rig)).unwrap_err();
    assert!(
        errors[0].to_string().contains("plan.yaml:9:"),
        "{}",
        errors[0]
    );
    // ... and a plan loaded without the rig is still stopped before anything is sent.
    let plan = Arc::new(load_plan(&dir.join("plan.yaml"), None).unwrap());
    let r = execute(
        plan,
        &bench.resolve(&rig),
        options(&dir.join("run"), CancellationToken::new()),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, Outcome::Aborted);
    assert!(
        r.abort
            .as_ref()
            .unwrap()
            .cause
            .contains("outside the rig's safety envelope"),
        "{:?}",
        r.abort
    );
    // Recorded as data: an envelope refusal while the steps ran, not a lost instrument.
    let abort = r.abort.as_ref().unwrap();
    assert_eq!(abort.kind, Some(hilrig::report::AbortKind::Envelope));
    assert_eq!(abort.stage, Some(hilrig::report::AbortStage::Steps));
    let log = bench.instrument("supply").unwrap().command_log();
    assert!(!log.iter().any(|c| c.contains("SOUR:VOLT 65")), "{log:?}");
    assert!(
        !log.iter()
            .any(|c| c.starts_with("SOUR:VOLT ") && !c.contains("PROT")),
        "no voltage setpoint at all: {log:?}"
    );
    assert!(!bench.plant.snapshot().supply.output);
}

/// Run the over-charge plan on the simulated bench with the resolved rig changed by `edit`.
async fn run_with_rig(name: &str, edit: impl FnOnce(&mut hilrig::rig::Rig)) -> (Bench, RunResults) {
    let rig = sim_rig(None);
    let bench = bench(&rig).await;
    let plan = plan("test-plans/overcharge.yaml", &rig);
    let mut resolved = bench.resolve(&rig);
    edit(&mut resolved);
    let dir = temp_dir(name);
    let r = execute(plan, &resolved, options(&dir, CancellationToken::new()))
        .await
        .unwrap();
    (bench, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_model_at_the_supply_address_is_refused_before_anything_is_sent() {
    let (bench, r) = run_with_rig("wrong-model", |rig| {
        let load = rig.instruments.iter().find(|i| i.id == "load").unwrap();
        let address = load.address.clone();
        rig.instruments
            .iter_mut()
            .find(|i| i.id == "supply")
            .unwrap()
            .address = address;
    })
    .await;
    assert_eq!(r.outcome, Outcome::Aborted);
    let abort = r.abort.unwrap();
    assert_eq!(abort.during.as_deref(), Some("connecting the bench"));
    assert_eq!(abort.stage, Some(hilrig::report::AbortStage::Connecting));
    assert_eq!(abort.kind, Some(hilrig::report::AbortKind::Instrument));
    assert!(
        abort.cause.contains("answers `*IDN?` with \"RIGOL"),
        "{}",
        abort.cause
    );
    // The load answered the identity query and nothing else reached it from the run.
    let log = bench.instrument("load").unwrap().command_log();
    assert!(log.iter().any(|c| c == "*IDN?"), "{log:?}");
    assert!(
        !log.iter()
            .any(|c| c.starts_with("SOUR:VOLT") || c.starts_with(":SOUR:VOLT")),
        "a supply command reached the load: {log:?}"
    );
    let s = bench.plant.snapshot();
    assert!(!s.supply.output && !s.load.input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supply_with_another_serial_number_is_refused_and_left_safe() {
    let (bench, r) = run_with_rig("wrong-serial", |rig| {
        rig.instruments
            .iter_mut()
            .find(|i| i.id == "supply")
            .unwrap()
            .serial = Some("PSB-CALIBRATED-7".into());
    })
    .await;
    assert_eq!(r.outcome, Outcome::Aborted);
    let cause = r.abort.unwrap().cause;
    assert!(
        cause.contains("reports serial number SIM-PSB-0001")
            && cause.contains("the rig file gives PSB-CALIBRATED-7"),
        "{cause}"
    );
    // It is in the results as it identified itself, and the safe state reached it.
    assert_eq!(r.instruments[0].id, "supply");
    assert_eq!(r.instruments[0].serial, "SIM-PSB-0001");
    assert!(
        r.safe_state
            .iter()
            .any(|a| a.instrument == "supply" && a.ok),
        "{:?}",
        r.safe_state
    );
    let log = bench.instrument("supply").unwrap().command_log();
    assert!(!log.iter().any(|c| c.starts_with("SOUR:VOLT 5")), "{log:?}");
    assert!(!bench.plant.snapshot().supply.output);
}

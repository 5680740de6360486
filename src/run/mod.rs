//! The executor: runs a validated plan on a connected bench, records everything into one
//! trace on one clock, judges trips, and ends every run (pass, fail, error, timeout,
//! cancel, panic, lost instrument, dead bus) with the plan's teardown and then the
//! instruments' safe state.

mod error;
pub mod inverter;
pub mod lock;
pub mod operator;
pub mod signals;
mod soc;
pub mod station;
mod steps;
pub mod suite;
pub mod trip;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use self::error::Stop;
pub use self::error::{Phase, RunError};
use self::signals::Signals;
use self::station::Station;
use self::steps::run_step;
use self::trip::DetectionPath;
use crate::plan::load::bind_condition;
use crate::plan::{LoadedPlan, SignalSource, Step, Target};
use crate::report::{
    Abort, AbortStage, FirmwareInfo, NotRun, Outcome, RunResults, TestResult, RESULTS_SCHEMA,
};
use crate::rig::Rig;
use crate::trace::{rfc3339, Clock, Trace};
use crate::verdict::{DecisionRule, Limit, Verdict};

/// Longest time the plan's teardown may take before the safe state takes over.
pub const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Progress events for operator output (serialised as JSON lines by `hilrig run --json`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step started.
    Step {
        /// `setup`, `steps` or `teardown`.
        phase: Phase,
        /// Index in its phase.
        index: usize,
        /// Repeat number (1-based; 0 for setup/teardown).
        repeat: u32,
        /// Step kind.
        kind: &'static str,
    },
    /// A test finished.
    Test(TestResult),
    /// A test's values as revised by the end-of-plan check of assumed delays (final).
    TestRevised(TestResult),
    /// Live values of the key signals (about once a second while steps run).
    Signals {
        /// (signal, value) in SI units.
        values: Vec<(String, f64)>,
    },
    /// The run is aborting.
    Aborting {
        /// Why.
        cause: String,
    },
    /// A `prompt` step waits for the operator (terminal or live page).
    Prompt(operator::PendingPrompt),
    /// A `prompt` step was answered.
    PromptAnswered(crate::report::PromptRecord),
}

impl Event {
    /// The event as one JSON object: what `--json` prints and the live page's event stream
    /// carries.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .unwrap_or_else(|e| serde_json::json!({"event": "error", "error": e.to_string()}))
    }
}

/// A progress callback.
pub type EventHook = Arc<dyn Fn(&Event) + Send + Sync>;

/// How to run.
pub struct RunOptions {
    /// The run directory (created if missing).
    pub dir: PathBuf,
    /// Run id.
    pub run_id: String,
    /// Override the profile's decision rule.
    pub decision_rule: Option<DecisionRule>,
    /// Cancelled on Ctrl-C / SIGTERM.
    pub cancel: CancellationToken,
    /// Firmware identity, when known.
    pub firmware: Option<FirmwareInfo>,
    /// The run clock.
    pub clock: Clock,
    /// Progress callback.
    pub on_event: EventHook,
    /// Why the plan must not start (the firmware could not be flashed, say): the bench is
    /// then connected only to bring it to its safe state, and the run is recorded as aborted.
    pub refused: Option<String>,
    /// The item, the people, the conditions and the calibration, recorded in the results.
    pub context: crate::report::context::RunContext,
    /// Who stopped the run, and who answers its prompts.
    pub operator: operator::Operator,
}

/// Why a step could not go on.
#[derive(Debug)]
pub enum StepError {
    /// The bench failed (instrument error, envelope, lost connection): the run aborts.
    Bench(RunError),
    /// The DUT did not behave as the plan needs (a precondition it never met, a trip that
    /// already holds): a failed test is recorded and the plan stops, the bench being fine.
    Dut(String),
}

impl StepError {
    fn text(&self) -> String {
        match self {
            StepError::Bench(e) => e.to_string(),
            StepError::Dut(s) => s.clone(),
        }
    }

    fn context(self, label: &str) -> Self {
        match self {
            StepError::Bench(e) => StepError::Bench(e.context(label)),
            StepError::Dut(s) => StepError::Dut(format!("{label}: {s}")),
        }
    }
}

impl<E: Into<RunError>> From<E> for StepError {
    fn from(e: E) -> Self {
        StepError::Bench(e.into())
    }
}

struct Ctx {
    plan: Arc<LoadedPlan>,
    station: Arc<Station>,
    rule: DecisionRule,
    clock: Clock,
    tests: Arc<Mutex<Vec<TestResult>>>,
    during: Arc<Mutex<Option<String>>>,
    on_event: EventHook,
    /// Warnings for the results (a DBC cycle the bus contradicts, ...).
    warnings: Arc<Mutex<Vec<String>>>,
    /// Assumed delays of ramp estimates and the delays step trips measured.
    delays: Arc<Mutex<(Vec<trip::Assumption>, Vec<trip::DelayEvidence>)>>,
    /// Who answers prompts.
    operator: operator::Operator,
    /// The prompts answered so far.
    prompts: Arc<Mutex<Vec<crate::report::PromptRecord>>>,
    /// Where the state-of-charge reference started (`soc: {start: rest}`).
    soc: Arc<Mutex<Option<soc::Origin>>>,
}

/// Run a plan. Never panics; every ending is reported in the results, which are also
/// written to `results.json` and `junit.xml` in the run directory with the trace.
pub async fn execute(
    plan: Arc<LoadedPlan>,
    rig: &Rig,
    opts: RunOptions,
) -> std::io::Result<RunResults> {
    std::fs::create_dir_all(&opts.dir)?;
    let clock = opts.clock;
    let trace = Trace::create(&opts.dir.join("trace.csv"), clock)?;
    // Space for the results, held back so that a disk that fills during the run still
    // takes them (a file-size limit does not need it: each file has its own limit).
    // Under a file-size limit below the reserve, none is held: each file has its own limit.
    let reserve = match crate::durable::Reserve::create(&opts.dir, crate::durable::RESERVE_BYTES) {
        Ok(r) => Some(r),
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => None,
        Err(e) => {
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot hold back space for the results in the run directory: {e}"),
            ))
        }
    };
    let signals = Signals::new(trace.clone());
    // The inverter checks read the history of the announcements, the SOC reference that of
    // the currents; other plans keep none, so a long run's memory stays bounded.
    let p = &plan.plan.value;
    if p.setup
        .iter()
        .chain(&p.steps)
        .chain(&p.teardown)
        .any(|s| matches!(s.value, Step::Inverter(_) | Step::Soc(_)))
    {
        signals.keep_history();
    }
    let rule = opts
        .decision_rule
        .unwrap_or(plan.limits.value.decision_rule);
    let (station, connect_err) = Station::connect(rig, &plan, signals).await;
    let station = Arc::new(station);
    let tests = Arc::new(Mutex::new(Vec::new()));
    let during = Arc::new(Mutex::new(None));
    let ctx = Arc::new(Ctx {
        plan: plan.clone(),
        station: station.clone(),
        rule,
        clock,
        tests: tests.clone(),
        during: during.clone(),
        on_event: opts.on_event.clone(),
        delays: Arc::new(Mutex::new((Vec::new(), Vec::new()))),
        warnings: Arc::new(Mutex::new(Vec::new())),
        operator: opts.operator.clone(),
        prompts: Arc::new(Mutex::new(Vec::new())),
        soc: Arc::new(Mutex::new(None)),
    });

    let mut stop: Option<Stop> = connect_err
        .map(|e| Stop::at(AbortStage::Connecting, e))
        .or_else(|| {
            opts.refused
                .clone()
                .map(|cause| Stop::at(AbortStage::BeforeStart, RunError::Refused(cause)))
        });
    if stop.is_none() {
        if let Err(e) = station.program_protection().await {
            stop = Some(Stop::at(AbortStage::Protection, e));
        }
    }
    let mut dut_stop: Option<String> = None;
    if stop.is_none() {
        let mut faults =
            station.start_background(rig.sample_period.duration(), &plan.cell_currents_read());
        let ctx2 = ctx.clone();
        let mut body = tokio::spawn(async move { run_body(&ctx2).await });
        let live = {
            let (signals, on_event) = (station.signals.clone(), opts.on_event.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    on_event(&Event::Signals {
                        values: signals.key_values(),
                    });
                }
            })
        };
        let current = || during.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut body_done = false;
        stop = tokio::select! {
            r = &mut body => { body_done = true; match r {
                Ok(Ok(())) => None,
                Ok(Err(StepError::Dut(cause))) => { dut_stop = Some(cause); None }
                Ok(Err(StepError::Bench(e))) => Some(Stop::in_steps(current(), e)),
                Err(e) if e.is_panic() => Some(Stop::in_steps(current(), RunError::Internal(format!("internal error (panic): {}", panic_text(e.into_panic()))))),
                Err(e) => Some(Stop::in_steps(current(), RunError::Internal(format!("internal error: {e}")))),
            }},
            Some(fault) = faults.recv() => { body.abort(); Some(Stop::in_steps(current(), fault)) }
            fault = write_failure(&trace) => { body.abort(); Some(Stop::in_steps(current(), RunError::Trace(fault))) }
            _ = opts.cancel.cancelled() => {
                body.abort();
                let by = opts.operator.stopped_by().unwrap_or_else(|| "interrupt or terminate signal".into());
                Some(Stop { stopped_by: Some(by.clone()), ..Stop::in_steps(current(), RunError::Cancelled(format!("{} ({by})", suite::CANCELLED))) })
            }
        };
        live.abort();
        if !body_done {
            // Wait for the aborted body to release instrument locks.
            let _ = body.await;
        }
    }
    let abort_at = clock.now();
    if let Some(s) = &stop {
        (opts.on_event)(&Event::Aborting {
            cause: s.error.to_string(),
        });
    }

    // A run stopped mid-stimulus may have left the short-circuit switch closed: it is
    // opened now, before the teardown, not after it.
    if stop.is_some() && station.short.is_some() {
        match timeout(station::SAFE_STEP_TIMEOUT, station.open_short()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("opening the short-circuit switch: {e}"),
            Err(_) => tracing::error!("opening the short-circuit switch: no confirmation"),
        }
    }
    // The plan's teardown first (when the bench is usable), then the safe state, always.
    if stop.as_ref().is_none_or(|s| s.stage.after_start()) {
        let teardown = run_phase(&ctx, Phase::Teardown, 0);
        match timeout(TEARDOWN_TIMEOUT, teardown).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("teardown: {}", e.text()),
            Err(_) => tracing::warn!("teardown: teardown timed out"),
        }
    }
    let safe = station.safe_state().await;
    let safe_state_reached = !safe.is_empty() && safe.iter().all(|a| a.ok);
    // A clean end: the watchdog armed for the run is switched off before the instruments
    // are released; a failure to do so is a warning, not a safe-state failure (the outputs
    // are off either way).
    let watchdog = station.end_watchdog(safe_state_reached).await;
    if let Some(text) = watchdog
        .as_ref()
        .and_then(|w| watchdog_warning(w, safe_state_reached))
    {
        tracing::warn!("{text}");
        ctx.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text);
    }
    trace.flush();
    // A write error after the steps (during teardown or the safe state) still aborts.
    if stop.is_none() {
        if let Some(e) = trace.error() {
            stop = Some(Stop::at(
                AbortStage::TeardownAndSafeState,
                RunError::Trace(trace_fault(&opts.dir, &e)),
            ));
        }
    }

    let mut tests = tests.lock().unwrap_or_else(|e| e.into_inner()).clone();
    {
        let delays = ctx.delays.lock().unwrap_or_else(|e| e.into_inner());
        let before: Vec<Vec<(String, Verdict)>> = tests.iter().map(judgement).collect();
        trip::check_assumptions(&mut tests, &delays.0, &delays.1, rule);
        // Tests whose values the end-of-plan check changed are reported again, as final.
        for (t, b) in tests.iter().zip(&before) {
            if judgement(t) != *b {
                (opts.on_event)(&Event::TestRevised(t.clone()));
            }
        }
    }
    let reason = match (&stop, &dut_stop) {
        (Some(s), _) => Some(format!("not run: the run aborted ({})", s.error)),
        (None, Some(cause)) => Some(format!(
            "not run: the plan stopped after a failed test ({cause})"
        )),
        (None, None) => None,
    };
    let not_run = reason
        .map(|reason| not_run_tests(&plan, &tests, &reason))
        .unwrap_or_default();
    let outcome = match &stop {
        Some(_) => Outcome::Aborted,
        None => match tests.iter().map(|t| t.verdict).max() {
            Some(Verdict::Fail) => Outcome::Failed,
            Some(Verdict::Inconclusive) => Outcome::Inconclusive,
            _ => Outcome::Passed,
        },
    };
    let prompts = ctx
        .prompts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut context = opts.context.clone();
    let mut warnings = ctx
        .warnings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    warnings.extend(context.take_prompted_serial(&prompts));
    let results = RunResults {
        instruments: station.identities.clone(),
        duration_s: clock.now(),
        outcome,
        abort: stop.map(|s| Abort {
            cause: s.error.to_string(),
            during: s.during(),
            at_s: abort_at,
            kind: Some(s.error.kind()),
            stage: Some(s.stage),
            stopped_by: s.stopped_by,
        }),
        safe_state_reached,
        safe_state: safe,
        watchdog,
        statistics: crate::report::repeat_statistics(&tests),
        tests,
        trace_rows: trace.rows(),
        not_run,
        warnings,
        prompts,
        ..results_of(
            &plan,
            rig,
            &opts.run_id,
            rule,
            opts.firmware.clone(),
            &clock,
            context,
        )
    };
    drop(reserve);
    results.write(&opts.dir)?;
    crate::report::junit::write(&results, &opts.dir.join("junit.xml"))?;
    Ok(results)
}

/// The results of `plan` on `rig` as they stand before anything ran: what, where, by which
/// rule, in which context; no instrument, test or abort yet.
pub(crate) fn results_of(
    plan: &LoadedPlan,
    rig: &Rig,
    run_id: &str,
    rule: DecisionRule,
    firmware: Option<FirmwareInfo>,
    clock: &Clock,
    context: crate::report::context::RunContext,
) -> RunResults {
    RunResults {
        schema: RESULTS_SCHEMA.into(),
        run_id: run_id.to_string(),
        plan: plan.plan.value.plan.clone(),
        title: plan.plan.value.title.clone(),
        requirements: plan.plan.value.requirements.clone(),
        station: rig.station.clone(),
        dut: plan.fixture.value.dut.clone(),
        limit_profile: plan.limits.value.profile.clone(),
        decision_rule: rule,
        coverage_factor: crate::verdict::gum::DEFAULT_COVERAGE_FACTOR,
        firmware,
        instruments: Vec::new(),
        clock_anchor: rfc3339(clock.wall),
        duration_s: 0.0,
        outcome: Outcome::Aborted,
        abort: None,
        safe_state_reached: false,
        safe_state: Vec::new(),
        watchdog: None,
        statistics: Vec::new(),
        tests: Vec::new(),
        trace_rows: 0,
        parameters: plan.parameters.clone(),
        context,
        not_run: Vec::new(),
        warnings: Vec::new(),
        prompts: Vec::new(),
    }
}

/// The warning for a watchdog left armed after a confirmed safe state (its disarm failed);
/// None when it was disarmed, or deliberately left armed because the safe state was not
/// confirmed.
fn watchdog_warning(w: &crate::report::WatchdogRecord, safe_state_reached: bool) -> Option<String> {
    let why = w.left_armed.as_deref().filter(|_| safe_state_reached)?;
    Some(format!(
        "the I/O watchdog of supply `{}` is still armed ({} s) after the run: {why}; it \
         switches the output off after {} s without commands until it is disarmed",
        w.instrument, w.armed_s, w.armed_s
    ))
}

/// The cause recorded when the trace cannot be written (a full disk, a file-size limit).
fn trace_fault(dir: &std::path::Path, error: &str) -> String {
    format!(
        "cannot write {}: {error}; the stimulus was stopped and the trace kept up to the \
         fault",
        dir.join("trace.csv").display()
    )
}

/// Resolves with the abort cause once the trace has failed a write; checked every 100 ms
/// (the trace flushes at least every few hundred rows and at every step boundary).
async fn write_failure(trace: &Trace) -> String {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let dir = trace
        .path()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    loop {
        tick.tick().await;
        if let Some(e) = trace.error() {
            return trace_fault(&dir, &e);
        }
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// What a test's measurements state, for telling whether a later check changed them.
fn judgement(t: &TestResult) -> Vec<(String, Verdict)> {
    t.measurements
        .iter()
        .map(|m| (m.stated.clone(), m.verdict))
        .collect()
}

/// Every test the plan would report, by unique name, in order.
pub fn planned_tests(plan: &LoadedPlan) -> Vec<String> {
    let p = &plan.plan.value;
    let name = |step: &Step| step.test_name();
    let unique = |base: String, repeat: u32| {
        if p.repeat > 1 && repeat > 0 {
            format!("{base} #{repeat}")
        } else {
            base
        }
    };
    let mut out: Vec<String> = p.setup.iter().filter_map(|s| name(&s.value)).collect();
    for repeat in 1..=p.repeat {
        out.extend(
            p.steps
                .iter()
                .filter_map(|s| name(&s.value))
                .map(|n| unique(n, repeat)),
        );
    }
    out
}

/// The planned tests that have no result, each with `reason`.
fn not_run_tests(plan: &LoadedPlan, done: &[TestResult], reason: &str) -> Vec<NotRun> {
    planned_tests(plan)
        .into_iter()
        .filter(|n| !done.iter().any(|t| &t.name == n))
        .map(|name| NotRun {
            name,
            reason: reason.to_string(),
        })
        .collect()
}

async fn run_body(ctx: &Ctx) -> Result<(), StepError> {
    run_phase(ctx, Phase::Setup, 0).await?;
    for repeat in 1..=ctx.plan.plan.value.repeat {
        run_phase(ctx, Phase::Steps, repeat).await?;
    }
    Ok(())
}

async fn run_phase(ctx: &Ctx, phase: Phase, repeat: u32) -> Result<(), StepError> {
    let p = &ctx.plan.plan.value;
    let steps = match phase {
        Phase::Setup => &p.setup,
        Phase::Teardown => &p.teardown,
        Phase::Steps => &p.steps,
    };
    for (index, step) in steps.iter().enumerate() {
        let line = step.referenced.line();
        let label = format!(
            "{phase}[{index}] {} ({}:{line})",
            step.value.kind(),
            ctx.plan.plan.path.display()
        );
        *ctx.during.lock().unwrap_or_else(|e| e.into_inner()) = Some(label.clone());
        (ctx.on_event)(&Event::Step {
            phase,
            index,
            repeat,
            kind: step.value.kind(),
        });
        run_step(ctx, &step.value, phase, repeat)
            .await
            .map_err(|e| e.context(&label))?;
    }
    Ok(())
}

/// Seconds since an instant, for messages.
pub fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::WatchdogRecord;

    /// A watchdog left armed is a warning only when a disarm was due (the safe state was
    /// confirmed) and failed.
    #[rstest::rstest]
    #[case::disarmed(true, None, false)]
    #[case::the_disarm_failed(true, Some("disarming it failed: no reply"), true)]
    #[case::kept_armed_without_a_confirmed_safe_state(
        false,
        Some("the safe state was not confirmed"),
        false
    )]
    fn a_watchdog_left_armed_after_a_clean_end_is_a_warning(
        #[case] safe_state_reached: bool,
        #[case] left_armed: Option<&str>,
        #[case] warned: bool,
    ) {
        let w = WatchdogRecord {
            instrument: "psu".into(),
            armed_s: 5.0,
            disarmed: left_armed.is_none(),
            left_armed: left_armed.map(str::to_string),
        };
        let text = watchdog_warning(&w, safe_state_reached);
        assert_eq!(text.is_some(), warned, "{text:?}");
        if let Some(text) = text {
            assert!(
                text.starts_with("the I/O watchdog of supply `psu` is still armed (5 s) after the run: disarming it failed: no reply;"),
                "{text}"
            );
        }
    }
}

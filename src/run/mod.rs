//! The executor: runs a validated plan on a connected bench, records everything into one
//! trace on one clock, judges trips, and ends every run (pass, fail, error, timeout,
//! cancel, panic, lost instrument, dead bus) with the plan's teardown and then the
//! instruments' safe state.

pub mod inverter;
pub mod lock;
pub mod operator;
pub mod signals;
pub mod station;
pub mod suite;
pub mod trip;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use self::signals::Signals;
use self::station::Station;
use self::trip::DetectionPath;
use crate::plan::load::bind_condition;
use crate::plan::{LoadedPlan, SignalSource, Step, Target};
use crate::report::{Abort, FirmwareInfo, NotRun, Outcome, RunResults, TestResult, RESULTS_SCHEMA};
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
        phase: &'static str,
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

/// `during` of an abort while connecting the bench (no step ran: no teardown).
const CONNECTING: &str = "connecting the bench";
/// `during` of a refused run (no step ran: no teardown).
const BEFORE_START: &str = "before the first step";

/// Why the step sequence stopped early.
struct Stop {
    cause: String,
    during: Option<String>,
    stopped_by: Option<String>,
}

/// Why a step could not go on.
#[derive(Debug, Clone)]
pub enum StepError {
    /// The bench failed (instrument error, envelope, lost connection): the run aborts.
    Bench(String),
    /// The DUT did not behave as the plan needs (a precondition it never met, a trip that
    /// already holds): a failed test is recorded and the plan stops, the bench being fine.
    Dut(String),
}

impl StepError {
    fn text(&self) -> &str {
        match self {
            StepError::Bench(s) | StepError::Dut(s) => s,
        }
    }

    fn context(self, label: &str) -> Self {
        match self {
            StepError::Bench(s) => StepError::Bench(format!("{label}: {s}")),
            StepError::Dut(s) => StepError::Dut(format!("{label}: {s}")),
        }
    }
}

impl From<String> for StepError {
    fn from(s: String) -> Self {
        StepError::Bench(s)
    }
}

impl From<&str> for StepError {
    fn from(s: &str) -> Self {
        StepError::Bench(s.to_string())
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
    });

    let mut stop: Option<Stop> = connect_err
        .map(|cause| Stop {
            cause,
            during: Some(CONNECTING.into()),
            stopped_by: None,
        })
        .or_else(|| {
            opts.refused.clone().map(|cause| Stop {
                cause,
                during: Some(BEFORE_START.into()),
                stopped_by: None,
            })
        });
    if stop.is_none() {
        if let Err(cause) = station.program_protection().await {
            stop = Some(Stop {
                cause,
                during: Some("programming instrument protection".into()),
                stopped_by: None,
            });
        }
    }
    let mut dut_stop: Option<String> = None;
    if stop.is_none() {
        let mut faults = station.start_background(rig.sample_period.duration());
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
                Ok(Err(StepError::Bench(cause))) => Some(Stop { cause, during: current(), stopped_by: None }),
                Err(e) if e.is_panic() => Some(Stop { cause: format!("internal error (panic): {}", panic_text(e.into_panic())), during: current(), stopped_by: None }),
                Err(e) => Some(Stop { cause: format!("internal error: {e}"), during: current(), stopped_by: None }),
            }},
            Some(fault) = faults.recv() => { body.abort(); Some(Stop { cause: fault, during: current(), stopped_by: None }) }
            fault = write_failure(&trace) => { body.abort(); Some(Stop { cause: fault, during: current(), stopped_by: None }) }
            _ = opts.cancel.cancelled() => {
                body.abort();
                let by = opts.operator.stopped_by().unwrap_or_else(|| "interrupt or terminate signal".into());
                Some(Stop { cause: format!("{} ({by})", suite::CANCELLED), during: current(), stopped_by: Some(by) })
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
            cause: s.cause.clone(),
        });
    }

    // The plan's teardown first (when the bench is usable), then the safe state, always.
    if stop
        .as_ref()
        .is_none_or(|s| !matches!(s.during.as_deref(), Some(CONNECTING | BEFORE_START)))
    {
        let teardown = run_phase(&ctx, "teardown", 0);
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
            stop = Some(Stop {
                cause: trace_fault(&opts.dir, &e),
                during: Some("teardown and safe state".into()),
                stopped_by: None,
            });
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
        (Some(s), _) => Some(format!("not run: the run aborted ({})", s.cause)),
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
        schema: RESULTS_SCHEMA.into(),
        run_id: opts.run_id.clone(),
        plan: plan.plan.value.plan.clone(),
        title: plan.plan.value.title.clone(),
        requirements: plan.plan.value.requirements.clone(),
        station: rig.station.clone(),
        dut: plan.fixture.value.dut.clone(),
        limit_profile: plan.limits.value.profile.clone(),
        decision_rule: rule,
        coverage_factor: crate::verdict::gum::DEFAULT_COVERAGE_FACTOR,
        firmware: opts.firmware.clone(),
        instruments: station.identities.clone(),
        clock_anchor: rfc3339(clock.wall),
        duration_s: clock.now(),
        outcome,
        abort: stop.map(|s| Abort {
            cause: s.cause,
            during: s.during,
            at_s: abort_at,
            stopped_by: s.stopped_by,
        }),
        safe_state_reached,
        safe_state: safe,
        watchdog,
        statistics: crate::report::repeat_statistics(&tests),
        tests,
        trace_rows: trace.rows(),
        parameters: plan.parameters.clone(),
        context,
        not_run,
        warnings,
        prompts,
    };
    drop(reserve);
    results.write(&opts.dir)?;
    crate::report::junit::write(&results, &opts.dir.join("junit.xml"))?;
    Ok(results)
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
    run_phase(ctx, "setup", 0).await?;
    for repeat in 1..=ctx.plan.plan.value.repeat {
        run_phase(ctx, "steps", repeat).await?;
    }
    Ok(())
}

async fn run_phase(ctx: &Ctx, phase: &'static str, repeat: u32) -> Result<(), StepError> {
    let p = &ctx.plan.plan.value;
    let steps = match phase {
        "setup" => &p.setup,
        "teardown" => &p.teardown,
        _ => &p.steps,
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

async fn run_step(
    ctx: &Ctx,
    step: &Step,
    phase: &'static str,
    repeat: u32,
) -> Result<(), StepError> {
    let st = &ctx.station;
    let env = &st.envelope;
    let e = |x: &dyn std::fmt::Display| x.to_string();
    match step {
        Step::Supply(s) => {
            let sup = st.supply.as_ref().ok_or("the rig has no supply")?;
            // Check every value first, so nothing is sent when any is outside the envelope.
            if let Some(v) = s.voltage {
                env.check_supply_voltage(v.0).map_err(|x| e(&x))?;
            }
            if let Some(a) = s.current {
                env.check_supply_current(a.0).map_err(|x| e(&x))?;
            }
            let mut g = sup.lock().await;
            if let Some(v) = s.voltage {
                g.set_voltage(v.0).await.map_err(|x| e(&x))?;
            }
            if let Some(a) = s.current {
                g.set_current(a.0).await.map_err(|x| e(&x))?;
            }
            if let Some(on) = s.output {
                g.set_output(on.0).await.map_err(|x| e(&x))?;
            }
        }
        Step::Load(l) => {
            let load = st.load.as_ref().ok_or("the rig has no load")?;
            if let Some(a) = l.current {
                env.check_load_current(a.0).map_err(|x| e(&x))?;
            }
            let mut g = load.lock().await;
            if let Some(a) = l.current {
                g.set_current(a.0).await.map_err(|x| e(&x))?;
            }
            if let Some(on) = l.input {
                g.set_input(on.0).await.map_err(|x| e(&x))?;
            }
        }
        Step::Cells(c) => {
            let n = st.cells_in_series;
            let targets: Vec<(Target, f64)> = match (c.all, c.cell, c.voltage) {
                (Some(v), _, _) => (1..=n).map(|k| (Target::Cell(k), v.0)).collect(),
                (None, Some(k), Some(v)) => vec![(Target::Cell(k), v.0)],
                _ => return Err("cells: nothing to set".into()),
            };
            set_all(st, &targets).await?;
        }
        Step::Temperatures(t) => {
            let n = ctx.plan.fixture.value.ntcs;
            let targets: Vec<(Target, f64)> = match (t.all, t.sensor, t.temperature) {
                (Some(v), _, _) => (1..=n).map(|k| (Target::Ntc(k), v.0)).collect(),
                (None, Some(k), Some(v)) => vec![(Target::Ntc(k), v.0)],
                _ => return Err("temperatures: nothing to set".into()),
            };
            set_all(st, &targets).await?;
        }
        Step::Wait(d) => tokio::time::sleep(d.duration()).await,
        Step::BmsRequest(r) => st.send_state_request(&r.value).await?,
        Step::WaitFor(w) => {
            let cond = bind_condition(&ctx.plan, &w.until.value)?;
            let rx = st.signals.watch(cond);
            match timeout(w.timeout.duration(), rx).await {
                Ok(Ok(_)) => {}
                _ => {
                    let message = format!("`{}` did not hold within {}", w.until.value, w.timeout);
                    if phase == "teardown" {
                        return Err(message.into());
                    }
                    // The bench did what it was told; the BMS never reached the state the
                    // plan needs: a failed precondition test, and the plan stops.
                    let base = format!("precondition {}", w.until.value);
                    let mut result = trip::new_result(
                        &base,
                        &test_name(ctx, base.clone(), repeat),
                        repeat,
                        &ctx.plan.plan.value.requirements,
                        ctx.clock.now(),
                    );
                    result.verdict = Verdict::Fail;
                    result.message = Some(message.clone());
                    record(ctx, result);
                    return Err(StepError::Dut(message));
                }
            }
        }
        Step::Ramp(r) => {
            let (from, to) = (r.from.0.value, r.to.0.value);
            r.of.check_envelope(env, from).map_err(|x| e(&x))?;
            r.of.check_envelope(env, to).map_err(|x| e(&x))?;
            let span = (to - from).abs() / r.rate.0.value;
            trip::ramp(
                st,
                r.of,
                from,
                to,
                r.rate.0.value,
                None,
                Duration::from_secs_f64(span + 1.0),
            )
            .await?;
        }
        Step::Expect(x) => {
            let name = test_name(ctx, x.test_name(), repeat);
            let result = expect(ctx, x, &name, repeat).await?;
            record(ctx, result);
        }
        Step::Measure(m) => {
            let result = measure(ctx, m, repeat).await?;
            record(ctx, result);
        }
        Step::Declaration(d) => {
            let name = test_name(ctx, d.name.clone(), repeat);
            let result = declaration(ctx, d, &name, repeat);
            record(ctx, result);
        }
        Step::Inverter(i) => {
            let judged =
                inverter::run_step(&ctx.plan, &st.signals, &st.keepalive_switch, &ctx.clock, i);
            if let (Some(judged), Some(test)) = (judged, i.test_name()) {
                let name = test_name(ctx, test.clone(), repeat);
                let mut result = trip::new_result(
                    &test,
                    &name,
                    repeat,
                    &ctx.plan.plan.value.requirements,
                    ctx.clock.now(),
                );
                inverter::judge_into(&mut result, &ctx.plan, i, judged, ctx.rule);
                record(ctx, result);
            }
        }
        Step::Prompt(p) => {
            let step = ctx
                .during
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_else(|| format!("{phase} prompt"));
            (ctx.on_event)(&Event::Prompt(operator::PendingPrompt {
                step: step.clone(),
                text: p.text.clone(),
                entries: p.fields(),
            }));
            let answers = ctx.operator.ask(&step, p).await?;
            let rec = crate::report::PromptRecord {
                step,
                repeat,
                text: p.text.clone(),
                answers: answers.values,
                answered_by: answers.by.word().to_string(),
                at_s: ctx.clock.now(),
            };
            (ctx.on_event)(&Event::PromptAnswered(rec.clone()));
            ctx.prompts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(rec);
        }
        Step::Trip(t) => {
            let detect = bind_condition(&ctx.plan, &t.detect.value)?;
            let release_detect = t
                .release
                .as_ref()
                .map(|r| bind_condition(&ctx.plan, &r.detect.value))
                .transpose()?;
            let declared_delay = ctx.plan.declared_delay(&t.protection.value);
            let path = DetectionPath {
                sampling: ctx
                    .plan
                    .fixture
                    .value
                    .sampling_period
                    .map(|s| s.0)
                    .unwrap_or(0.0),
                cycle: observed_cycle(ctx, &detect),
            };
            let m = match trip::drive(
                st,
                t,
                &detect,
                release_detect.as_ref(),
                declared_delay,
                path,
            )
            .await
            {
                Ok(m) => m,
                Err(StepError::Dut(message)) => {
                    let mut result = trip::new_result(
                        &t.name,
                        &test_name(ctx, t.name.clone(), repeat),
                        repeat,
                        &ctx.plan.plan.value.requirements,
                        ctx.clock.now(),
                    );
                    result.verdict = Verdict::Fail;
                    result.message = Some(message.clone());
                    record(ctx, result);
                    return Err(StepError::Dut(message));
                }
                Err(e) => return Err(e),
            };
            let target = t.stimulus.value.target();
            let level = ctx
                .plan
                .fixture
                .value
                .protections
                .get(&t.protection.value)
                .map(|p| p.value.trip.0.value)
                .unwrap_or(0.0);
            let cx = trip::JudgeContext {
                fixture: &ctx.plan.fixture.value,
                profile: &ctx.plan.limits.value,
                rule: ctx.rule,
                path,
                accuracy: st.accuracy(target, level).await,
                step: st.update_period(target).await.as_secs_f64(),
                clock: &ctx.clock,
                requirements: &ctx.plan.plan.value.requirements,
            };
            let name = test_name(ctx, t.name.clone(), repeat);
            let result = trip::judge(&name, repeat, t, &m, &cx);
            {
                let mut d = ctx.delays.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(p) = ctx.plan.fixture.value.protections.get(&t.protection.value) {
                    d.0.extend(trip::assumptions(&result, t, &p.value));
                    d.1.extend(trip::release_evidence(
                        &name,
                        t,
                        &m,
                        path,
                        p.value.release.0.value,
                    ));
                }
                d.1.extend(trip::delay_evidence(&name, t, &m, path));
            }
            record(ctx, result);
        }
    }
    Ok(())
}

/// Check every setpoint against the envelope, then send them all.
async fn set_all(st: &Station, targets: &[(Target, f64)]) -> Result<(), String> {
    for (t, v) in targets {
        t.check_envelope(&st.envelope, *v)
            .map_err(|x| x.to_string())?;
    }
    for (t, v) in targets {
        st.set_target(*t, *v).await?;
    }
    Ok(())
}

fn test_name(ctx: &Ctx, base: String, repeat: u32) -> String {
    if ctx.plan.plan.value.repeat > 1 && repeat > 0 {
        format!("{base} #{repeat}")
    } else {
        base
    }
}

fn record(ctx: &Ctx, result: TestResult) {
    (ctx.on_event)(&Event::Test(result.clone()));
    ctx.tests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(result);
}

fn provenance_of<'a>(ctx: &'a Ctx, name: &str) -> Option<&'a crate::plan::limits::Criterion> {
    ctx.plan.limits.value.criteria.get(name).map(|c| &c.value)
}

async fn expect(
    ctx: &Ctx,
    x: &crate::plan::model::Expect,
    name: &str,
    repeat: u32,
) -> Result<TestResult, String> {
    let st = &ctx.station;
    let cond = bind_condition(&ctx.plan, &x.that.value)?;
    let test = x.test_name();
    let mut result = trip::new_result(
        &test,
        name,
        repeat,
        &ctx.plan.plan.value.requirements,
        ctx.clock.now(),
    );
    let within = x.within.map(|w| w.duration()).unwrap_or(Duration::ZERO);
    let first = if within.is_zero() {
        (st.signals.eval(&cond) == Some(true)).then(Instant::now)
    } else {
        timeout(within, st.signals.watch(cond.clone()))
            .await
            .ok()
            .and_then(Result::ok)
    };
    let mut failure = match first {
        None if within.is_zero() => Some(format!("`{}` does not hold", x.that.value)),
        None => Some(format!(
            "`{}` did not hold within {}",
            x.that.value,
            within.as_secs_f64()
        )),
        Some(at) => {
            result.detected_s = Some(ctx.clock.t(at));
            None
        }
    };
    if let (None, Some(hold)) = (&failure, x.hold) {
        let broken = crate::plan::Condition::Not(Box::new(cond.clone()));
        if let Ok(Ok(at)) = timeout(hold.duration(), st.signals.watch(broken)).await {
            let held = ctx.clock.t(at) - result.detected_s.unwrap_or(0.0);
            failure = Some(format!(
                "`{}` stopped holding after {held:.3} s (required {})",
                x.that.value, hold
            ));
        }
    }
    let held = failure.is_none();
    if let Some(j) = &x.judge {
        if let Some(c) = provenance_of(ctx, &j.value) {
            let mr = trip::judged(
                &j.value,
                trip::Measured {
                    quantity: "holds",
                    value: if held { 1.0 } else { 0.0 },
                    contributions: Vec::new(),
                    limit: Limit {
                        low: Some(1.0),
                        high: None,
                    },
                    unit: "",
                    budget: "pass/fail observation".into(),
                },
                &c.provenance,
                ctx.rule,
            );
            result.measurements.push(mr);
        }
    }
    if let Some(f) = failure {
        result.verdict = Verdict::Fail;
        result.message = Some(f);
    }
    Ok(result)
}

async fn measure(
    ctx: &Ctx,
    m: &crate::plan::model::Measure,
    repeat: u32,
) -> Result<TestResult, String> {
    let st = &ctx.station;
    let name = test_name(ctx, m.name.clone(), repeat);
    let mut result = trip::new_result(
        &m.name,
        &name,
        repeat,
        &ctx.plan.plan.value.requirements,
        ctx.clock.now(),
    );
    let signal = &m.signal.value;
    let value = match m.over {
        None => st.signals.get(signal).map(|(v, _)| v),
        Some(window) => {
            let end = Instant::now() + window.duration();
            let mut seen = Vec::new();
            let mut last = None;
            while Instant::now() < end {
                if let Some((v, at)) = st.signals.get(signal) {
                    if last != Some(at) {
                        seen.push(v);
                        last = Some(at);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (!seen.is_empty()).then(|| seen.iter().sum::<f64>() / seen.len() as f64)
        }
    };
    let Some(value) = value else {
        result.verdict = Verdict::Fail;
        result.message = Some(format!("no value of `{signal}` was observed"));
        return Ok(result);
    };
    let Some(c) = provenance_of(ctx, &m.judge.value) else {
        return Ok(result);
    };
    let crate::plan::Check::Range { min, max } = &c.check else {
        return Ok(result);
    };
    let limit = Limit {
        low: min.map(|q| q.0.value),
        high: max.map(|q| q.0.value),
    };
    let unit = min.or(*max).map(|q| q.0.dim.unit()).unwrap_or("");
    let (u, budget) = match st.measure_accuracy(signal, value).await {
        Some(u) => (
            u,
            "instrument measurement accuracy (dialect table)".to_string(),
        ),
        None => {
            let res = signal_resolution(&ctx.plan, signal);
            (
                res / 2.0,
                "half the DBC signal resolution (the BMS's own accuracy is not declared)"
                    .to_string(),
            )
        }
    };
    let mr = trip::judged(
        &m.judge.value,
        trip::Measured {
            quantity: "value",
            value,
            contributions: vec![crate::verdict::gum::Contribution::rectangular(
                budget.clone(),
                u,
            )],
            limit,
            unit,
            budget,
        },
        &c.provenance,
        ctx.rule,
    );
    result.verdict = mr.verdict;
    result.measurements.push(mr);
    Ok(result)
}

fn declaration(
    ctx: &Ctx,
    d: &crate::plan::model::Declaration,
    name: &str,
    repeat: u32,
) -> TestResult {
    let fx = &ctx.plan.fixture.value;
    let mut result = trip::new_result(
        &d.name,
        name,
        repeat,
        &ctx.plan.plan.value.requirements,
        ctx.clock.now(),
    );
    let Some(c) = provenance_of(ctx, &d.judge.value) else {
        return result;
    };
    let crate::plan::Check::EnergyCap { indoor, outdoor } = &c.check else {
        return result;
    };
    let cap = match fx.location.as_deref() {
        Some("indoor") => Ok(indoor.0.value),
        Some("outdoor") | Some("detached") => Ok(outdoor.0.value),
        Some(other) => Err(format!(
            "declared location `{other}` is not one of indoor, outdoor, detached"
        )),
        None => Err("the DUT fixture declares no `location:`".to_string()),
    };
    match (fx.energy, cap) {
        (Some(e), Ok(cap)) => {
            let basis = format!(
                "declared energy vs the cap for location `{}`",
                fx.location.as_deref().unwrap_or("")
            );
            let mr = trip::judged(
                &d.judge.value,
                trip::Measured {
                    quantity: "declared_energy",
                    value: e.0,
                    contributions: Vec::new(),
                    limit: Limit::at_most(cap),
                    unit: "Wh",
                    budget: basis,
                },
                &c.provenance,
                ctx.rule,
            );
            result.verdict = mr.verdict;
            result.measurements.push(mr);
        }
        (None, _) => {
            result.verdict = Verdict::Fail;
            result.message = Some("the DUT fixture declares no `energy:`".into());
        }
        (_, Err(msg)) => {
            result.verdict = Verdict::Fail;
            result.message = Some(msg);
        }
    }
    result
}

fn signal_resolution(plan: &LoadedPlan, signal: &str) -> f64 {
    match plan.signals.get(signal) {
        Some(SignalSource::Can { message, signal }) => plan
            .dbc
            .message(message)
            .and_then(|m| m.signal(signal))
            .map(|s| s.factor.abs())
            .unwrap_or(0.0),
        _ => 0.0,
    }
}

/// The longest message cycle among the CAN signals a condition reads (0 when unknown).
fn detect_cycle(plan: &LoadedPlan, cond: &crate::plan::Condition) -> f64 {
    cond.signals()
        .iter()
        .filter_map(|s| match plan.signals.get(*s) {
            Some(SignalSource::Can { message, .. }) => {
                plan.dbc.message(message).and_then(|m| m.cycle_time_ms)
            }
            _ => None,
        })
        .max()
        .map(|ms| ms as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// The detect message's cycle for the detection path: the longest of the DBC's
/// `GenMsgCycleTime` and the longest interval observed between updates of the condition's
/// CAN signals (receive timestamps). A DBC cycle that disagrees with the observed traffic
/// (by more than a quarter, or missing) is recorded as a run warning.
fn observed_cycle(ctx: &Ctx, cond: &crate::plan::Condition) -> f64 {
    let declared = detect_cycle(&ctx.plan, cond);
    let observed = cond
        .signals()
        .iter()
        .filter(|s| matches!(ctx.plan.signals.get(**s), Some(SignalSource::Can { .. })))
        .filter_map(|s| ctx.station.signals.longest_gap(s))
        .fold(0.0, f64::max);
    if observed > 0.0 && (declared <= 0.0 || (observed - declared).abs() > 0.25 * declared) {
        let text = format!(
            "the DBC declares a message cycle of {} for `{cond}`, but the bus showed updates up to {:.0} ms apart: the detection path uses {:.0} ms",
            if declared > 0.0 {
                format!("{:.0} ms", declared * 1e3)
            } else {
                "none (no GenMsgCycleTime)".to_string()
            },
            observed * 1e3,
            observed.max(declared) * 1e3
        );
        let mut w = ctx.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if !w.contains(&text) {
            tracing::warn!("{text}");
            w.push(text);
        }
    }
    declared.max(observed)
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

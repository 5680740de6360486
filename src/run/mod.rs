//! The executor: runs a validated plan on a connected bench, records everything into one
//! trace on one clock, judges trips, and ends every run (pass, fail, error, timeout,
//! cancel, panic, lost instrument, dead bus) with the plan's teardown and then the
//! instruments' safe state.

pub mod signals;
pub mod station;
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
use crate::plan::{LoadedPlan, SignalSource, Step};
use crate::report::{Abort, FirmwareInfo, Outcome, RunResults, TestResult, RESULTS_SCHEMA};
use crate::rig::Rig;
use crate::trace::{rfc3339, Clock, Trace};
use crate::verdict::{DecisionRule, Verdict};

/// Longest time the plan's teardown may take before the safe state takes over.
pub const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Progress events for operator output.
#[derive(Debug, Clone)]
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
    /// The run is aborting.
    Aborting(String),
}

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
    pub on_event: Arc<dyn Fn(&Event) + Send + Sync>,
}

/// Why the step sequence stopped early.
struct Stop {
    cause: String,
    during: Option<String>,
}

struct Ctx {
    plan: Arc<LoadedPlan>,
    station: Arc<Station>,
    rule: DecisionRule,
    clock: Clock,
    tests: Arc<Mutex<Vec<TestResult>>>,
    during: Arc<Mutex<Option<String>>>,
    on_event: Arc<dyn Fn(&Event) + Send + Sync>,
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
    });

    let mut stop: Option<Stop> = connect_err.map(|cause| Stop {
        cause,
        during: Some("connecting the bench".into()),
    });
    if stop.is_none() {
        if let Err(cause) = station.program_protection().await {
            stop = Some(Stop {
                cause,
                during: Some("programming instrument protection".into()),
            });
        }
    }
    if stop.is_none() {
        let mut faults = station.start_background(rig.sample_period.duration());
        let ctx2 = ctx.clone();
        let mut body = tokio::spawn(async move { run_body(&ctx2).await });
        let current = || during.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut body_done = false;
        stop = tokio::select! {
            r = &mut body => { body_done = true; match r {
                Ok(Ok(())) => None,
                Ok(Err(cause)) => Some(Stop { cause, during: current() }),
                Err(e) if e.is_panic() => Some(Stop { cause: format!("internal error (panic): {}", panic_text(e.into_panic())), during: current() }),
                Err(e) => Some(Stop { cause: format!("internal error: {e}"), during: current() }),
            }},
            Some(fault) = faults.recv() => { body.abort(); Some(Stop { cause: fault, during: current() }) }
            _ = opts.cancel.cancelled() => { body.abort(); Some(Stop { cause: "cancelled by the operator (interrupt or terminate signal)".into(), during: current() }) }
        };
        if !body_done {
            // Wait for the aborted body to release instrument locks.
            let _ = body.await;
        }
    }
    let abort_at = clock.now();
    if let Some(s) = &stop {
        (opts.on_event)(&Event::Aborting(s.cause.clone()));
    }

    // The plan's teardown first (when the bench is usable), then the safe state, always.
    if stop
        .as_ref()
        .is_none_or(|s| s.during.as_deref() != Some("connecting the bench"))
    {
        let teardown = run_phase(&ctx, "teardown", 0);
        if let Ok(Err(e)) | Err(e) = timeout(TEARDOWN_TIMEOUT, teardown)
            .await
            .map_err(|_| "teardown timed out".to_string())
        {
            tracing::warn!("teardown: {e}");
        }
    }
    let safe = station.safe_state().await;
    trace.flush();

    let tests = tests.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let outcome = match &stop {
        Some(_) => Outcome::Aborted,
        None => match tests.iter().map(|t| t.verdict).max() {
            Some(Verdict::Fail) => Outcome::Failed,
            Some(Verdict::Inconclusive) => Outcome::Inconclusive,
            _ => Outcome::Passed,
        },
    };
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
        firmware: opts.firmware.clone(),
        clock_anchor: rfc3339(clock.wall),
        duration_s: clock.now(),
        outcome,
        abort: stop.map(|s| Abort {
            cause: s.cause,
            during: s.during,
            at_s: abort_at,
        }),
        safe_state_reached: !safe.is_empty() && safe.iter().all(|a| a.ok),
        safe_state: safe,
        tests,
        trace_rows: trace.rows(),
    };
    results.write(&opts.dir)?;
    crate::report::junit::write(&results, &opts.dir.join("junit.xml"))?;
    Ok(results)
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

async fn run_body(ctx: &Ctx) -> Result<(), String> {
    run_phase(ctx, "setup", 0).await?;
    for repeat in 1..=ctx.plan.plan.value.repeat {
        run_phase(ctx, "steps", repeat).await?;
    }
    Ok(())
}

async fn run_phase(ctx: &Ctx, phase: &'static str, repeat: u32) -> Result<(), String> {
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
        run_step(ctx, &step.value, repeat)
            .await
            .map_err(|e| format!("{label}: {e}"))?;
    }
    Ok(())
}

async fn run_step(ctx: &Ctx, step: &Step, repeat: u32) -> Result<(), String> {
    let st = &ctx.station;
    let env = &st.envelope;
    match step {
        Step::Supply(s) => {
            let sup = st.supply.as_ref().ok_or("the rig has no supply")?;
            // Check every value first, so nothing is sent when any is outside the envelope.
            if let Some(v) = s.voltage {
                env.check_supply_voltage(v.0).map_err(|e| e.to_string())?;
            }
            if let Some(a) = s.current {
                env.check_supply_current(a.0).map_err(|e| e.to_string())?;
            }
            let mut g = sup.lock().await;
            if let Some(v) = s.voltage {
                g.set_voltage(v.0).await.map_err(|e| e.to_string())?;
            }
            if let Some(a) = s.current {
                g.set_current(a.0).await.map_err(|e| e.to_string())?;
            }
            if let Some(on) = s.output {
                g.set_output(on.0).await.map_err(|e| e.to_string())?;
            }
        }
        Step::Load(l) => {
            let load = st.load.as_ref().ok_or("the rig has no load")?;
            if let Some(a) = l.current {
                env.check_load_current(a.0).map_err(|e| e.to_string())?;
            }
            let mut g = load.lock().await;
            if let Some(a) = l.current {
                g.set_current(a.0).await.map_err(|e| e.to_string())?;
            }
            if let Some(on) = l.input {
                g.set_input(on.0).await.map_err(|e| e.to_string())?;
            }
        }
        Step::Cells(c) => {
            let cells: Vec<(u32, f64)> = match (c.all, c.cell, c.voltage) {
                (Some(v), _, _) => (1..=st.cells_in_series).map(|n| (n, v.0)).collect(),
                (None, Some(n), Some(v)) => vec![(n, v.0)],
                _ => return Err("cells: nothing to set".into()),
            };
            for (_, v) in &cells {
                env.check_cell_voltage(*v).map_err(|e| e.to_string())?;
            }
            for (n, v) in cells {
                st.set_cell(n, v).await?;
            }
        }
        Step::Wait(d) => tokio::time::sleep(d.duration()).await,
        Step::WaitFor(w) => {
            let cond = bind_condition(&ctx.plan, &w.until.value)?;
            let rx = st.signals.watch(cond);
            match timeout(w.timeout.duration(), rx).await {
                Ok(Ok(_)) => {}
                _ => {
                    return Err(format!(
                        "`{}` did not hold within {}",
                        w.until.value, w.timeout
                    ))
                }
            }
        }
        Step::Trip(t) => {
            let detect = bind_condition(&ctx.plan, &t.detect.value)?;
            let m = trip::drive(st, t, &detect).await?;
            let (accuracy, step) = {
                let c = st
                    .cells
                    .as_ref()
                    .ok_or("the rig has no cell simulator")?
                    .lock()
                    .await;
                (c.accuracy(), c.update_period().as_secs_f64())
            };
            let path = DetectionPath {
                sampling: ctx
                    .plan
                    .fixture
                    .value
                    .sampling_period
                    .map(|s| s.0)
                    .unwrap_or(0.0),
                cycle: detect_cycle(&ctx.plan, &detect),
            };
            let name = if ctx.plan.plan.value.repeat > 1 {
                format!("{} #{repeat}", t.name)
            } else {
                t.name.clone()
            };
            let result = trip::judge(
                &name,
                repeat,
                t,
                &m,
                &ctx.plan.fixture.value,
                &ctx.plan.limits.value,
                ctx.rule,
                &path,
                accuracy,
                step,
                &ctx.clock,
                &ctx.plan.plan.value.requirements,
            );
            (ctx.on_event)(&Event::Test(result.clone()));
            ctx.tests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(result);
        }
    }
    Ok(())
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

/// Seconds since an instant, for messages.
pub fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

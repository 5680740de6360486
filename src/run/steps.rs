//! One step of a plan on the station: setpoints (checked against the envelope first), waits,
//! state requests, ramps, prompts, and the steps that record tests (`expect`, `measure`,
//! `declaration`, `trip`, `soc`), with the detection path each trip's timing rests on.

use super::*;
use crate::plan::model::Trip;
use crate::plan::Stimulus;

pub(super) async fn run_step(
    ctx: &Ctx,
    step: &Step,
    phase: Phase,
    repeat: u32,
) -> Result<(), StepError> {
    let st = &ctx.station;
    let env = &st.envelope;
    match step {
        Step::Supply(s) => {
            // Every value is checked before anything is sent, and each is recorded.
            let targets: Vec<(Target, f64)> = [
                (Target::SupplyVoltage, s.voltage.map(|v| v.0)),
                (Target::SupplyCurrent, s.current.map(|a| a.0)),
            ]
            .into_iter()
            .filter_map(|(t, v)| Some((t, v?)))
            .collect();
            set_all(st, &targets).await?;
            if let Some(on) = s.output {
                st.require_supply()?.lock().await.set_output(on.0).await?;
            }
        }
        Step::Load(l) => {
            let targets: Vec<(Target, f64)> = l
                .current
                .map(|a| (Target::LoadCurrent, a.0))
                .into_iter()
                .collect();
            set_all(st, &targets).await?;
            if let Some(on) = l.input {
                st.require_load()?.lock().await.set_input(on.0).await?;
            }
        }
        Step::Cells(c) if c.release.is_some() => soc::release_cells(st).await?,
        Step::Cells(c) => {
            let n = st.cells_in_series;
            let targets: Vec<(Target, f64)> = match (c.all, c.cell, c.voltage) {
                (Some(v), _, _) => (1..=n).map(|k| (Target::Cell(k), v.0)).collect(),
                (None, Some(k), Some(v)) => vec![(Target::Cell(k), v.0)],
                _ => return Err(RunError::setup("cells: nothing to set").into()),
            };
            set_all(st, &targets).await?;
        }
        Step::Temperatures(t) => {
            let n = ctx.plan.fixture.value.ntcs;
            let targets: Vec<(Target, f64)> = match (t.all, t.sensor, t.temperature) {
                (Some(v), _, _) => (1..=n).map(|k| (Target::Ntc(k), v.0)).collect(),
                (None, Some(k), Some(v)) => vec![(Target::Ntc(k), v.0)],
                _ => return Err(RunError::setup("temperatures: nothing to set").into()),
            };
            set_all(st, &targets).await?;
        }
        Step::Wait(d) => tokio::time::sleep(d.duration()).await,
        Step::BmsRequest(r) => st.send_state_request(&r.value).await?,
        Step::WaitFor(w) => {
            let cond = bind_condition(&ctx.plan, &w.until.value).map_err(RunError::setup)?;
            let rx = st.signals.watch(cond);
            match timeout(w.timeout.duration(), rx).await {
                Ok(Ok(_)) => {}
                _ => {
                    let message = format!("`{}` did not hold within {}", w.until.value, w.timeout);
                    if phase == Phase::Teardown {
                        return Err(RunError::Timeout(message).into());
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
            r.of.check_envelope(env, from)?;
            r.of.check_envelope(env, to)?;
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
        Step::Soc(x) if x.start.is_some() => soc::start(ctx).await?,
        Step::Soc(x) => {
            let name = test_name(ctx, x.name.clone().unwrap_or_default(), repeat);
            let result = soc::checkpoint(ctx, x, &name, repeat).await?;
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
        Step::Trip(t) if t.detect.value.on_capture() => capture_trip(ctx, t, repeat).await?,
        Step::Trip(t) => {
            let detect = bind_condition(&ctx.plan, &t.detect.value).map_err(RunError::setup)?;
            let release_detect = t
                .release
                .as_ref()
                .map(|r| bind_condition(&ctx.plan, &r.detect.value))
                .transpose()
                .map_err(RunError::setup)?;
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
            let level = ctx.plan.declared_trip(&t.protection.value);
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

/// Points a capture trip's record aims at (the sample interval follows from its length).
const CAPTURE_POINTS: f64 = 2000.0;
/// How often a capture trip asks whether the acquisition is complete.
const CAPTURE_POLL: Duration = Duration::from_millis(1);

/// A trip timed on the scope's record (`detect: capture.i < 1 A`). A `step` holds `from`
/// for the settle time and triggers half-way between `from` and `to`; a `short` holds the
/// bench as it is for the settle time and triggers where the current rises through the
/// protection's declared trip level (time 0 is then the start of the front end's delay),
/// its full scale the closed path's prospective current at the envelope's highest pack
/// voltage. The scope is armed (100 µs before the trigger, after it four times the
/// declared delay plus 1 ms, about 2000 points), the stimulus applied, the acquisition
/// awaited (at most the trip's timeout, and for a short at most the rig's `max_closed`,
/// after which the switch is opened whatever happened), the first sample meeting the
/// condition timed and its `trip_time` criteria judged.
async fn capture_trip(ctx: &Ctx, t: &Trip, repeat: u32) -> Result<(), StepError> {
    let st = &ctx.station;
    let scope = st.scope.as_ref().ok_or_else(|| {
        RunError::setup(format!(
            "trip `{}` reads `capture.*`, but the rig has no scope",
            t.name
        ))
    })?;
    let delay = ctx.plan.declared_delay(&t.protection.value);
    let post = trip::capture::post_trigger_s(delay);
    let pre = trip::capture::PRE_TRIGGER_S;
    let mut within = t.timeout.duration();
    let (settle, level_a, rising, full_scale_a) = match &t.stimulus.value {
        Stimulus::Step(s) => {
            let (from, to) = (s.from.0.value, s.to.0.value);
            let settle = s.settle_or_twice(delay);
            let full = from.abs().max(to.abs()).max(1.0) * 1.25;
            (settle, (from + to) / 2.0, to > from, full)
        }
        Stimulus::Short(s) => {
            let (_, path) = st.require_short()?;
            within = within.min(path.max_closed.duration());
            let level = ctx.plan.declared_trip(&t.protection.value);
            let full = path.prospective_current(st.envelope.max_pack_voltage.0) * 1.25;
            (s.settle(), level, true, full.max(level * 1.25))
        }
        _ => {
            return Err(RunError::setup(format!(
                "trip `{}`: a detect on the scope's record needs a `step` or a `short` stimulus",
                t.name
            ))
            .into())
        }
    };
    let acq = crate::instrument::Acquisition {
        level_a,
        rising,
        full_scale_a,
        pre_s: pre,
        post_s: post,
        sample_interval_s: (pre + post) / CAPTURE_POINTS,
    };
    let name = test_name(ctx, t.name.clone(), repeat);
    let mut result = trip::new_result(
        &t.name,
        &name,
        repeat,
        &ctx.plan.plan.value.requirements,
        ctx.clock.now(),
    );
    if let Stimulus::Step(s) = &t.stimulus.value {
        st.set_target(s.of, s.from.0.value).await?;
    }
    tokio::time::sleep(settle).await;
    let mut g = scope.lock().await;
    g.arm(&acq).await.map_err(RunError::from)?;
    let cond = &t.detect.value;
    let detect = |i: f64| {
        cond.eval(&|name| {
            name.starts_with(crate::plan::condition::CAPTURE_PREFIX)
                .then_some(crate::plan::condition::Reading { value: i })
        }) == Some(true)
    };
    let k = crate::verdict::gum::DEFAULT_COVERAGE_FACTOR;
    let measured = match &t.stimulus.value {
        Stimulus::Step(s) => {
            st.set_target(s.of, s.to.0.value).await?;
            trip::capture::acquire_trip(g.as_mut(), detect, CAPTURE_POLL, within, k).await?
        }
        _ => {
            // The acquisition is awaited until `within` after the closing command was
            // issued (the switch's own timer opens it at `max_closed` after that instant,
            // whatever happens here); the switch is opened before the record is read.
            let acquired = match st.close_short().await {
                Ok(issued) => {
                    trip::capture::wait_acquired(
                        g.as_mut(),
                        CAPTURE_POLL,
                        issued + within,
                        "closing the short-circuit switch",
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            // Opened whatever happened: a failed close may have closed it all the same.
            let opened = st.open_short().await;
            match (acquired, opened) {
                (Ok(()), Ok(())) => trip::capture::timed_trip(g.as_mut(), detect, k).await?,
                (Err(e), Ok(())) | (Ok(()), Err(e)) => return Err(e.into()),
                (Err(a), Err(o)) => {
                    return Err(RunError::InstrumentText(format!(
                        "{a}; and opening the short-circuit switch afterwards: {o}"
                    ))
                    .into())
                }
            }
        }
    };
    drop(g);
    if let Some(m) = &measured {
        result.detected_s = Some(result.started_s + settle.as_secs_f64() + m.time_s);
    }
    trip::capture::judge_capture(
        &mut result,
        measured.as_ref(),
        t,
        pre + post,
        &ctx.plan.limits.value,
        delay,
        ctx.rule,
    );
    record(ctx, result);
    Ok(())
}

/// Check every setpoint against the envelope, then send them all.
async fn set_all(st: &Station, targets: &[(Target, f64)]) -> Result<(), RunError> {
    for (t, v) in targets {
        t.check_envelope(&st.envelope, *v)?;
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
) -> Result<TestResult, RunError> {
    let st = &ctx.station;
    let cond = bind_condition(&ctx.plan, &x.that.value).map_err(RunError::setup)?;
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
) -> Result<TestResult, RunError> {
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
            if crate::plan::load::cell_current_index(signal).is_some() {
                "cell-simulator current read-back accuracy (rig mapping or dialect table)"
            } else {
                "instrument measurement accuracy (dialect table)"
            }
            .to_string(),
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

/// The resolution of a CAN signal (its DBC factor), 0 when it is not a CAN signal.
pub(super) fn signal_resolution(plan: &LoadedPlan, signal: &str) -> f64 {
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

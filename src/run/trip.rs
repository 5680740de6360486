//! The `trip` step: drive a stimulus until the detect condition holds, then measure the
//! trip level, trip time, stimulus peak and release level and judge them.
//!
//! Timing model. The setpoint is updated every `step` (Δ, the cell simulator's update
//! period; instruments are set once). The BMS samples every `sampling` (declared by the
//! fixture), acts after its debounce delay D, and reports on CAN every `cycle` (from the
//! DBC). So the first observation `t_d` lies between `t_c + D` and
//! `t_c + D + sampling + cycle` after the moment `t_c` the applied value crossed the real
//! threshold, and that value is known to one setpoint step.
//!
//! - Ramp, trip level: the applied value at `t_d - D - (sampling + cycle)/2`, less half a
//!   setpoint step; uncertainty `rate * (sampling + cycle + Δ)/2 + accuracy`. It assumes the
//!   declared delay; a wrong delay shows in the trip time.
//! - Ramp, trip time: `t_d` minus the moment the applied value first went beyond the declared
//!   trip level; uncertainty `sampling + cycle + Δ`.
//! - Step, trip time: `t_d` minus the moment the step was applied; uncertainty
//!   `sampling + cycle`.
//! - Bisection, trip level: the middle of the final bracket; uncertainty half its width plus
//!   the accuracy. Each probe is held at least twice the declared delay plus the detection
//!   path, so the result does not depend on the delay.
//! - Release level (ramping back): the applied value at `t_r - R - (sampling + cycle)/2`,
//!   plus half a setpoint step back, where `R` is the declared release delay (`release_delay`,
//!   0 s when the fixture declares none); same uncertainty as the ramp trip level. It rests on
//!   `R`, which is checked like the trip delay: every step back to a rest value beyond the
//!   declared release level while the protection was tripped (a step trip's `rest`, a
//!   bisection's rest after a tripped probe) bounds the real release delay.
//! - Stimulus peak: the furthest value applied before detection.

use std::time::Duration;

use tokio::time::{sleep_until, timeout, Instant};

use super::station::Station;
use super::StepError;
use crate::plan::fixture::{DeclaredProtection, QuantityValue};
use crate::plan::limits::{Check, LimitProfile, Provenance};
use crate::plan::model::{Release, Stimulus, Target, Trip};
use crate::plan::{Condition, Fixture};
use crate::report::{MeasurementResult, TestResult};
use crate::verdict::gum::{clean, combined, stated, Contribution, DEFAULT_COVERAGE_FACTOR};
use crate::verdict::{decide, DecisionRule, Limit, Verdict};

/// The detection path: how late the BMS's reaction can be seen.
#[derive(Debug, Clone, Copy)]
pub struct DetectionPath {
    /// The BMS's sampling period (s).
    pub sampling: f64,
    /// The cycle time of the message carrying the detect signal (s).
    pub cycle: f64,
}

impl DetectionPath {
    /// Longest time between the BMS acting and the rig seeing it, plus sampling.
    pub fn latency(&self) -> f64 {
        self.sampling + self.cycle
    }
}

/// A ramp's record: setpoints sent and when the condition was first observed.
#[derive(Debug, Clone, Default)]
pub struct RampRecord {
    /// Applied setpoints (time, value).
    pub applied: Vec<(Instant, f64)>,
    /// First observation of the condition.
    pub detected: Option<Instant>,
}

/// One probe of a bisection.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// Value held.
    pub value: f64,
    /// Whether the BMS tripped.
    pub tripped: bool,
}

/// What a stimulus method measured.
#[derive(Debug, Clone)]
pub enum Record {
    /// Ramp method.
    Ramp(RampRecord),
    /// Step method: the record, the moment the step was issued, and how long the
    /// instrument took to accept it (the step took effect somewhere in between).
    Step(RampRecord, Instant, Duration),
    /// Bisection: the final bracket and the probes.
    Bisect {
        /// The last value that did not trip.
        low: f64,
        /// The last value that tripped.
        high: f64,
        /// Every probe in order.
        probes: Vec<Probe>,
    },
}

/// A step back to a rest value while the protection was tripped, and the release it brought.
#[derive(Debug, Clone)]
pub struct ReleaseStep {
    /// The rest value stepped back to.
    pub rest: f64,
    /// When the step back was issued.
    pub issued: Instant,
    /// How long the instrument took to accept it (the step took effect in between).
    pub accepted: Duration,
    /// First observation of the release.
    pub released: Instant,
}

/// Everything measured in one trip.
#[derive(Debug, Clone)]
pub struct TripMeasurement {
    /// When the stimulus started.
    pub started: Instant,
    /// The method's record.
    pub record: Record,
    /// The release ramp, when the plan asks for one.
    pub release: Option<RampRecord>,
    /// Steps back to a rest value from a tripped state (a step trip's `rest`, a bisection's
    /// rest after a tripped probe): evidence on the release delay.
    pub release_steps: Vec<ReleaseStep>,
    /// Why the trip could not be measured, when it could not.
    pub problem: Option<String>,
}

impl TripMeasurement {
    fn detected(&self) -> Option<Instant> {
        match &self.record {
            Record::Ramp(r) | Record::Step(r, ..) => r.detected,
            Record::Bisect { .. } => None,
        }
    }
}

/// Ramp `target` from `from` towards `to` at `rate` (positive), holding at `to`, until
/// `detect` is observed or `limit` elapses. Without a condition, the ramp ends at `to`.
pub async fn ramp(
    st: &Station,
    target: Target,
    from: f64,
    to: f64,
    rate: f64,
    detect: Option<&Condition>,
    limit: Duration,
) -> Result<RampRecord, String> {
    let period = st.update_period(target).await;
    let mut watch = detect.map(|c| st.signals.watch(c.clone()));
    let started = Instant::now();
    let deadline = started + limit;
    let dir = if to >= from { 1.0 } else { -1.0 };
    let mut rec = RampRecord::default();
    for k in 0u32.. {
        let t = period.as_secs_f64() * k as f64;
        let v = from + dir * rate * t;
        let v = if dir > 0.0 { v.min(to) } else { v.max(to) };
        if rec.applied.last().is_none_or(|(_, last)| *last != v) {
            let (issued, _) = st.set_target(target, v).await?;
            rec.applied.push((issued, v));
        }
        if watch.is_none() && v == to {
            break;
        }
        let next = started + period * (k + 1);
        match &mut watch {
            Some(rx) => tokio::select! {
                biased;
                at = rx => { rec.detected = at.ok(); break; }
                _ = sleep_until(deadline) => break,
                _ = sleep_until(next) => {}
            },
            None => sleep_until(next).await,
        }
    }
    Ok(rec)
}

/// Wait up to `limit` for a condition; the first observation time, if any.
async fn wait_detect(st: &Station, cond: &Condition, limit: Duration) -> Option<Instant> {
    timeout(limit, st.signals.watch(cond.clone()))
        .await
        .ok()
        .and_then(Result::ok)
}

/// Run the stimulus of a trip step. Errors are instrument or envelope errors (abort the run);
/// a trip that cannot be measured is reported in `problem`.
pub async fn drive(
    st: &Station,
    trip: &Trip,
    detect: &Condition,
    release_detect: Option<&Condition>,
    declared_delay: f64,
    path: DetectionPath,
) -> Result<TripMeasurement, StepError> {
    if st.signals.eval(detect) == Some(true) {
        return Err(StepError::Dut(format!(
            "detect condition `{detect}` already holds before the stimulus of `{}` started",
            trip.name
        )));
    }
    let started = Instant::now();
    let limit = trip.timeout.duration();
    let mut problem = None;
    let mut release_steps = Vec::new();
    let released = release_detect
        .cloned()
        .unwrap_or_else(|| Condition::Not(Box::new(detect.clone())));
    let record = match &trip.stimulus.value {
        Stimulus::Ramp(r) => Record::Ramp(
            ramp(
                st,
                r.of,
                r.from.0.value,
                r.to.0.value,
                r.rate.0.value,
                Some(detect),
                limit,
            )
            .await?,
        ),
        Stimulus::Step(s) => {
            let settle = s
                .settle
                .map(|d| d.duration())
                .unwrap_or(Duration::from_secs_f64(2.0 * declared_delay));
            let (issued, _) = st.set_target(s.of, s.from.0.value).await?;
            let mut rec = RampRecord {
                applied: vec![(issued, s.from.0.value)],
                detected: None,
            };
            if let Some(at) = wait_detect(st, detect, settle).await {
                problem = Some(format!(
                    "the BMS tripped during the {:.1} s settle at {} (before the step)",
                    settle.as_secs_f64(),
                    s.from.0
                ));
                rec.detected = Some(at);
                let t0 = rec.applied[0].0;
                Record::Step(rec, t0, Duration::ZERO)
            } else {
                let (t_step, accepted) = st.set_target(s.of, s.to.0.value).await?;
                rec.applied.push((t_step, s.to.0.value));
                rec.detected = wait_detect(st, detect, limit).await;
                if let (Some(rest), Some(_)) = (s.rest, rec.detected) {
                    release_steps.push(step_back(st, trip, s.of, rest, &released).await?);
                }
                Record::Step(rec, t_step, accepted - t_step)
            }
        }
        Stimulus::Bisect(b) => {
            let hold = Duration::from_secs_f64(
                b.hold
                    .map(|h| h.0)
                    .unwrap_or(0.0)
                    .max(2.0 * declared_delay + path.latency()),
            );
            let (mut low, mut high) = (b.no_trip.0.value, b.trips.0.value);
            let mut probes: Vec<Probe> = Vec::new();
            let mut probe = async |v: f64| -> Result<bool, StepError> {
                if probes.last().is_some_and(|p| p.tripped) {
                    // The BMS is tripped: the step back to rest is evidence on the release delay.
                    release_steps.push(step_back(st, trip, b.of, b.rest, &released).await?);
                } else {
                    st.set_target(b.of, b.rest.0.value).await?;
                    if wait_detect(st, &released, limit).await.is_none() {
                        return Err(not_released(b.rest, trip));
                    }
                }
                st.set_target(b.of, v).await?;
                let tripped = wait_detect(st, detect, hold).await.is_some();
                probes.push(Probe { value: v, tripped });
                Ok(tripped)
            };
            // Confirm the bracket first: the upper end trips, the lower end does not.
            if !probe(high).await? {
                problem = Some(format!(
                    "no trip at `trips: {}`: the threshold lies beyond it",
                    b.trips.0
                ));
            } else if probe(low).await? {
                problem = Some(format!(
                    "a trip at `no_trip: {}`: the threshold lies before it",
                    b.no_trip.0
                ));
            } else {
                while (high - low).abs() > b.resolution.0.value {
                    let mid = (low + high) / 2.0;
                    if probe(mid).await? {
                        high = mid;
                    } else {
                        low = mid;
                    }
                }
            }
            st.set_target(b.of, b.rest.0.value).await?;
            Record::Bisect { low, high, probes }
        }
    };
    let mut m = TripMeasurement {
        started,
        record,
        release: None,
        release_steps,
        problem,
    };
    if let (Some(rel), Some(rdet), Some(_)) = (&trip.release, release_detect, m.detected()) {
        m.release = Some(release_ramp(st, trip, rel, rdet, &m).await?);
    }
    Ok(m)
}

fn not_released(rest: QuantityValue, trip: &Trip) -> StepError {
    StepError::Dut(format!(
        "the BMS did not release at the rest value {} within {}",
        rest.0, trip.timeout
    ))
}

/// Step back to `rest` from a tripped state and wait (up to the trip's timeout) for the
/// release; not releasing there is a DUT failure.
async fn step_back(
    st: &Station,
    trip: &Trip,
    target: Target,
    rest: QuantityValue,
    released: &Condition,
) -> Result<ReleaseStep, StepError> {
    let (issued, accepted) = st.set_target(target, rest.0.value).await?;
    match wait_detect(st, released, trip.timeout.duration()).await {
        Some(at) => Ok(ReleaseStep {
            rest: rest.0.value,
            issued,
            accepted: accepted.saturating_duration_since(issued),
            released: at,
        }),
        None => Err(not_released(rest, trip)),
    }
}

async fn release_ramp(
    st: &Station,
    trip: &Trip,
    rel: &Release,
    detect: &Condition,
    m: &TripMeasurement,
) -> Result<RampRecord, String> {
    let target = trip.stimulus.value.target();
    let from = match &m.record {
        Record::Ramp(r) | Record::Step(r, ..) => r.applied.last().map(|(_, v)| *v),
        Record::Bisect { .. } => None,
    }
    .ok_or("no stimulus was applied")?;
    ramp(
        st,
        target,
        from,
        rel.to.0.value,
        rel.rate.0.value,
        Some(detect),
        rel.timeout.duration(),
    )
    .await
}

/// The ramp's own value at `t`: the last setpoint sent before it, moved on at `velocity`
/// (signed, units per second) for the time since, at most one setpoint `step` and never past
/// the ramp's `end`. Reading the ramp rather than the last setpoint removes the half-step lag
/// that a stepped ramp has on average.
fn ramp_at(
    applied: &[(Instant, f64)],
    t: Instant,
    velocity: f64,
    step: f64,
    end: f64,
) -> Option<f64> {
    let i = applied.iter().rposition(|(at, _)| *at <= t)?;
    let (t_i, v_i) = applied[i];
    let v = v_i + velocity * (t - t_i).as_secs_f64().min(step);
    Some(if velocity >= 0.0 {
        v.min(end.max(v_i))
    } else {
        v.max(end.min(v_i))
    })
}

/// The budget of a level read off a ramp: the detection path's phase and the setpoint step
/// (the estimate sits in the middle of each), and the setpoint accuracy; rectangular bounds.
fn ramp_budget(rate: f64, latency: f64, step: f64, accuracy: f64) -> Vec<Contribution> {
    vec![
        Contribution::rectangular(
            "detection path phase: rate x (sampling + message cycle)/2",
            rate * latency / 2.0,
        ),
        Contribution::rectangular("setpoint step: rate x update period/2", rate * step / 2.0),
        Contribution::rectangular("setpoint accuracy", accuracy),
    ]
}

fn secs_before(t: Instant, s: f64) -> Option<Instant> {
    t.checked_sub(Duration::from_secs_f64(s.max(0.0)))
}

fn unreachable_limit() -> Limit {
    Limit {
        low: None,
        high: None,
    }
}

/// What judging needs besides the measurement.
pub struct JudgeContext<'a> {
    /// The DUT fixture.
    pub fixture: &'a Fixture,
    /// The limit profile.
    pub profile: &'a LimitProfile,
    /// The decision rule.
    pub rule: DecisionRule,
    /// The detection path.
    pub path: DetectionPath,
    /// Setpoint accuracy of the stimulus (half-width, its unit).
    pub accuracy: f64,
    /// Setpoint update period (s).
    pub step: f64,
    /// The run clock.
    pub clock: &'a crate::trace::Clock,
    /// Requirement references.
    pub requirements: &'a [String],
}

/// A measured value before it is judged.
pub struct Measured<'a> {
    /// What was measured: `threshold`, `trip_time`, ...
    pub quantity: &'a str,
    /// Measured value (SI unit).
    pub value: f64,
    /// The uncertainty budget (standard uncertainties per contribution).
    pub contributions: Vec<Contribution>,
    /// Acceptance interval.
    pub limit: Limit,
    /// Unit.
    pub unit: &'a str,
    /// How the uncertainty was composed.
    pub budget: String,
}

/// A measured value judged against a criterion.
pub fn judged(
    criterion: &str,
    m: Measured<'_>,
    provenance: &Provenance,
    rule: DecisionRule,
) -> MeasurementResult {
    let k = DEFAULT_COVERAGE_FACTOR;
    let u_c = combined(&m.contributions);
    let limit = Limit {
        low: m.limit.low.map(clean),
        high: m.limit.high.map(clean),
    };
    MeasurementResult {
        criterion: criterion.to_string(),
        quantity: m.quantity.to_string(),
        value: m.value,
        uncertainty: k * u_c,
        coverage_factor: k,
        combined_standard_uncertainty: u_c,
        stated: stated(m.value, k * u_c, m.unit),
        budget: m.contributions,
        unit: m.unit.to_string(),
        limit,
        verdict: decide(m.value, k * u_c, limit, rule),
        not_determinable: None,
        uncertainty_budget: m.budget,
        provenance: provenance.clone(),
    }
}

/// A test result with no measurements yet.
pub fn new_result(
    test: &str,
    name: &str,
    repeat: u32,
    requirements: &[String],
    started_s: f64,
) -> TestResult {
    TestResult {
        test: test.to_string(),
        name: name.to_string(),
        repeat,
        verdict: Verdict::Pass,
        requirements: requirements.to_vec(),
        measurements: Vec::new(),
        message: None,
        started_s,
        detected_s: None,
    }
}

/// Judge a trip measurement. `name` is the test's unique name.
pub fn judge(
    name: &str,
    repeat: u32,
    trip: &Trip,
    m: &TripMeasurement,
    cx: &JudgeContext<'_>,
) -> TestResult {
    let stim = &trip.stimulus.value;
    let target = stim.target();
    let dim = target.dimension();
    let unit = dim.unit();
    let mut result = new_result(
        &trip.name,
        name,
        repeat,
        cx.requirements,
        cx.clock.t(m.started),
    );
    result.detected_s = m.detected().map(|t| cx.clock.t(t));
    let fail = |mut r: TestResult, msg: String| {
        r.verdict = Verdict::Fail;
        r.message = Some(msg);
        r
    };
    let Some(declared) = cx
        .fixture
        .protections
        .get(&trip.protection.value)
        .map(|p| &p.value)
    else {
        return fail(
            result,
            format!("protection `{}` is not declared", trip.protection.value),
        );
    };
    if let Some(p) = &m.problem {
        return fail(result, p.clone());
    }
    let trip_level = declared.trip.0.value;
    let delay = declared.delay.0;
    let latency = cx.path.latency();
    let lat_text = format!(
        "sampling {:.0} ms + message cycle {:.0} ms",
        cx.path.sampling * 1e3,
        cx.path.cycle * 1e3
    );
    let (rising, rate) = match stim {
        Stimulus::Ramp(r) => (r.to.0.value >= r.from.0.value, r.rate.0.value),
        Stimulus::Step(s) => (s.to.0.value >= s.from.0.value, 0.0),
        Stimulus::Bisect(b) => (b.trips.0.value >= b.no_trip.0.value, 0.0),
    };
    let sign = if rising { 1.0 } else { -1.0 };
    let ramp_rec = match &m.record {
        Record::Ramp(r) | Record::Step(r, ..) => Some(r),
        Record::Bisect { .. } => None,
    };
    if let Some(r) = ramp_rec {
        if r.detected.is_none() {
            let peak = r
                .applied
                .iter()
                .map(|(_, v)| *v)
                .fold(f64::NAN, if rising { f64::max } else { f64::min });
            return fail(
                result,
                format!(
                    "`{}` was not observed within {}; the stimulus reached {} (declared trip {})",
                    trip.detect.value,
                    trip.timeout,
                    crate::units::display(peak, dim),
                    declared.trip.0
                ),
            );
        }
    }

    for crit_name in &trip.judge {
        let Some(c) = cx.profile.criteria.get(&crit_name.value) else {
            continue;
        };
        let c = &c.value;
        let j = |quantity: &str,
                 value: f64,
                 u: Vec<Contribution>,
                 limit: Limit,
                 unit: &str,
                 budget: String| {
            judged(
                &crit_name.value,
                Measured {
                    quantity,
                    value,
                    contributions: u,
                    limit,
                    unit,
                    budget,
                },
                &c.provenance,
                cx.rule,
            )
        };
        let measured = match (&c.check, &m.record) {
            (Check::Threshold { .. } | Check::ThresholdWindow { .. }, _) => {
                let estimate = match &m.record {
                    Record::Ramp(r) => {
                        let t_d = r.detected.unwrap_or(m.started);
                        let t_est = secs_before(t_d, delay + latency / 2.0).unwrap_or(m.started);
                        let end = match stim {
                            Stimulus::Ramp(r) => r.to.0.value,
                            _ => f64::NAN,
                        };
                        let v = ramp_at(&r.applied, t_est, sign * rate, cx.step, end)
                            .unwrap_or(f64::NAN)
                            - sign * rate * cx.step / 2.0;
                        let u = ramp_budget(rate, latency, cx.step, cx.accuracy);
                        let budget = format!(
                            "ramp: rate x ({lat_text} + setpoint step {:.0} ms)/2 + setpoint accuracy; assumes the declared delay {delay:.3} s",
                            cx.step * 1e3
                        );
                        Some((v, u, budget))
                    }
                    Record::Bisect { low, high, .. } => Some((
                        (low + high) / 2.0,
                        vec![
                            Contribution::rectangular("half the final bracket", (high - low) / 2.0),
                            Contribution::rectangular("setpoint accuracy", cx.accuracy),
                        ],
                        "bisection: half the final bracket + setpoint accuracy".to_string(),
                    )),
                    Record::Step(..) => None,
                };
                let limit = match &c.check {
                    Check::Threshold { tolerance } => Limit::between(
                        trip_level - tolerance.0.value,
                        trip_level + tolerance.0.value,
                    ),
                    Check::ThresholdWindow { min, max } => Limit::between(min.0.value, max.0.value),
                    _ => unreachable_limit(),
                };
                estimate.map(|(v, u, budget)| {
                    let mut mr = j("threshold", v, u, limit, unit, budget);
                    if !v.is_finite() {
                        not_determinable(
                            &mut mr,
                            format!(
                                "the estimated crossing (the detection less the declared delay \
                                 {delay:.3} s and half the detection path) lies before the \
                                 stimulus started"
                            ),
                        );
                    }
                    mr
                })
            }
            (Check::TripTime { allowance }, Record::Ramp(r)) => {
                let t_d = r.detected.unwrap_or(m.started);
                let crossed = r.applied.iter().find(|(_, v)| {
                    if rising {
                        *v > trip_level
                    } else {
                        *v < trip_level
                    }
                });
                let value = match crossed {
                    Some((t_c, _)) if *t_c <= t_d => (t_d - *t_c).as_secs_f64(),
                    Some((t_c, _)) => -(*t_c - t_d).as_secs_f64(),
                    None => f64::NAN,
                };
                // A setpoint error of `accuracy` moves the crossing by accuracy / rate.
                let accuracy_time = if rate > 0.0 { cx.accuracy / rate } else { 0.0 };
                let mut mr = j(
                    "trip_time",
                    value,
                    vec![
                        Contribution::rectangular(
                            "detection path (sampling + message cycle)",
                            latency,
                        ),
                        Contribution::rectangular("setpoint step period", cx.step),
                        Contribution::rectangular("setpoint accuracy / rate", accuracy_time),
                    ],
                    Limit::between(0.0, delay + allowance.0),
                    "s",
                    format!(
                        "{lat_text} + setpoint step {:.0} ms + setpoint accuracy / rate {:.0} ms",
                        cx.step * 1e3,
                        accuracy_time * 1e3
                    ),
                );
                if crossed.is_none() {
                    not_determinable(
                        &mut mr,
                        format!(
                            "the stimulus never went beyond the declared trip level {} before the trip was observed: there is no crossing to count from",
                            declared.trip.0
                        ),
                    );
                }
                Some(mr)
            }
            (Check::TripTime { allowance }, Record::Step(r, t_s, accept)) => {
                // The step took effect between issuing and acceptance: count from the middle.
                let half = accept.as_secs_f64() / 2.0;
                let t_d = r.detected.unwrap_or(*t_s);
                Some(j(
                    "trip_time",
                    t_d.saturating_duration_since(*t_s).as_secs_f64() - half,
                    vec![
                        Contribution::rectangular(
                            "detection path (sampling + message cycle)",
                            latency,
                        ),
                        Contribution::rectangular("half the command round trip", half),
                    ],
                    Limit::between(0.0, delay + allowance.0),
                    "s",
                    format!(
                        "{lat_text} + half the command round trip {:.1} ms",
                        half * 2e3
                    ),
                ))
            }
            (Check::StimulusPeak { at_most }, Record::Ramp(r) | Record::Step(r, ..)) => {
                let t_d = r.detected.unwrap_or(m.started);
                let values = r
                    .applied
                    .iter()
                    .take_while(|(at, _)| *at <= t_d)
                    .map(|(_, v)| *v);
                let peak = if rising {
                    values.fold(f64::NEG_INFINITY, f64::max)
                } else {
                    values.fold(f64::INFINITY, f64::min)
                };
                let lim = cx
                    .fixture
                    .cell_limits
                    .get(at_most)
                    .map(|q| q.0.value)
                    .unwrap_or(f64::NAN);
                let limit = if rising {
                    Limit::at_most(lim)
                } else {
                    Limit {
                        low: Some(lim),
                        high: None,
                    }
                };
                Some(j(
                    "stimulus_peak",
                    peak,
                    vec![Contribution::rectangular("setpoint accuracy", cx.accuracy)],
                    limit,
                    unit,
                    "setpoint accuracy".into(),
                ))
            }
            (Check::Release { tolerance }, _) => {
                let release_level = declared.release.0.value;
                let tol = tolerance.0.value;
                let limit = Limit::between(release_level - tol, release_level + tol);
                match (&m.release, &trip.release) {
                    (Some(rec), Some(rel)) => match rec.detected {
                        Some(t_r) => {
                            let rate = rel.rate.0.value;
                            let release_delay = declared_release_delay(declared);
                            let t_est =
                                secs_before(t_r, release_delay + latency / 2.0).unwrap_or(t_r);
                            let v =
                                ramp_at(&rec.applied, t_est, -sign * rate, cx.step, rel.to.0.value)
                                    .unwrap_or(f64::NAN)
                                    + sign * rate * cx.step / 2.0;
                            let assumed = match declared.release_delay {
                                Some(_) => {
                                    format!("the declared release delay {release_delay:.3} s")
                                }
                                None => "a release delay of 0 s (the fixture declares none)".into(),
                            };
                            let mut mr = j(
                                "release",
                                v,
                                ramp_budget(rate, latency, cx.step, cx.accuracy),
                                limit,
                                unit,
                                format!("ramp back: rate x ({lat_text} + setpoint step {:.0} ms)/2 + setpoint accuracy; assumes {assumed}", cx.step * 1e3),
                            );
                            if !v.is_finite() {
                                not_determinable(
                                    &mut mr,
                                    format!(
                                        "the estimated release (the observation less {assumed} \
                                         and half the detection path) lies before the ramp \
                                         back started"
                                    ),
                                );
                            }
                            Some(mr)
                        }
                        None => {
                            result.message = Some(format!(
                                "`{}` was not observed within {} while ramping back",
                                rel.detect.value, rel.timeout
                            ));
                            result.verdict = Verdict::Fail;
                            None
                        }
                    },
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(mr) = measured {
            result.verdict = result.verdict.worst(mr.verdict);
            result.measurements.push(mr);
        }
    }
    result
}

/// Which of a protection's delays: before it trips, or before it releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayKind {
    /// The debounce before the BMS acts (`delay`).
    Trip,
    /// The debounce before the BMS releases (`release_delay`, 0 s when not declared).
    Release,
}

/// The declared release delay of a protection (s); 0 when the fixture declares none.
pub fn declared_release_delay(p: &DeclaredProtection) -> f64 {
    p.release_delay.map_or(0.0, |d| d.0)
}

/// A ramp-derived value that rests on an assumed delay: checked at the end of the plan
/// against the delays the plan's steps measured.
#[derive(Debug, Clone)]
pub struct Assumption {
    /// The test's unique name.
    pub test: String,
    /// The criterion of the measurement.
    pub criterion: String,
    /// The protection whose delay is assumed.
    pub protection: String,
    /// Which delay is assumed.
    pub kind: DelayKind,
    /// The ramp rate (unit per second).
    pub rate: f64,
    /// The delay the estimate used (s).
    pub delay: f64,
    /// Whether the fixture declares that delay (a release delay may be left out: then 0 s).
    pub declared: bool,
}

/// The interval one step puts the protection's real delay in (s).
#[derive(Debug, Clone)]
pub struct DelayEvidence {
    /// The protection.
    pub protection: String,
    /// Which delay the step bounds.
    pub kind: DelayKind,
    /// The unique name of the test that stepped.
    pub test: String,
    /// The shortest delay consistent with the observation.
    pub low: f64,
    /// The longest delay consistent with the observation.
    pub high: f64,
}

/// The assumptions a judged trip rests on: a ramp's threshold rests on the declared delay, a
/// release level read off the ramp back on the release delay (declared, or 0 s).
pub fn assumptions(
    result: &TestResult,
    trip: &Trip,
    declared: &DeclaredProtection,
) -> Vec<Assumption> {
    result
        .measurements
        .iter()
        .filter(|m| m.value.is_finite())
        .filter_map(|m| {
            let (kind, rate, delay, is_declared) = match (m.quantity.as_str(), &trip.stimulus.value)
            {
                ("threshold", Stimulus::Ramp(r)) => {
                    (DelayKind::Trip, r.rate.0.value, declared.delay.0, true)
                }
                ("release", _) => (
                    DelayKind::Release,
                    trip.release.as_ref()?.rate.0.value,
                    declared_release_delay(declared),
                    declared.release_delay.is_some(),
                ),
                _ => return None,
            };
            Some(Assumption {
                test: result.name.clone(),
                criterion: m.criterion.clone(),
                protection: trip.protection.value.clone(),
                kind,
                rate,
                delay,
                declared: is_declared,
            })
        })
        .collect()
}

/// What a step trip says about the protection's real delay: the detection came between
/// `D` and `D + detection path` after the step took effect, which was between issuing the
/// command and its acceptance.
pub fn delay_evidence(
    name: &str,
    trip: &Trip,
    m: &TripMeasurement,
    path: DetectionPath,
) -> Option<DelayEvidence> {
    let Record::Step(r, t_s, accept) = &m.record else {
        return None;
    };
    if m.problem.is_some() {
        return None;
    }
    let total = r.detected?.checked_duration_since(*t_s)?.as_secs_f64();
    Some(DelayEvidence {
        protection: trip.protection.value.clone(),
        kind: DelayKind::Trip,
        test: name.to_string(),
        low: total - path.latency() - accept.as_secs_f64(),
        high: total,
    })
}

/// What a trip's steps back to a rest value say about the protection's real release delay,
/// with the same model as [`delay_evidence`]: the release was seen between `R` and
/// `R + detection path` after the step back took effect, which was between issuing the
/// command and its acceptance. Only steps to a rest value beyond the declared release level
/// count (the release is then due at the step); rising trips release below that level.
pub fn release_evidence(
    name: &str,
    trip: &Trip,
    m: &TripMeasurement,
    path: DetectionPath,
    declared_release: f64,
) -> Vec<DelayEvidence> {
    let rising = match &trip.stimulus.value {
        Stimulus::Ramp(r) => r.to.0.value >= r.from.0.value,
        Stimulus::Step(s) => s.to.0.value >= s.from.0.value,
        Stimulus::Bisect(b) => b.trips.0.value >= b.no_trip.0.value,
    };
    m.release_steps
        .iter()
        .filter(|s| {
            if rising {
                s.rest < declared_release
            } else {
                s.rest > declared_release
            }
        })
        .filter_map(|s| {
            let total = s.released.checked_duration_since(s.issued)?.as_secs_f64();
            Some(DelayEvidence {
                protection: trip.protection.value.clone(),
                kind: DelayKind::Release,
                test: name.to_string(),
                low: total - path.latency() - s.accepted.as_secs_f64(),
                high: total,
            })
        })
        .collect()
}

/// The release delay an assumption used, in words.
fn assumed_release_delay(a: &Assumption) -> String {
    if a.declared {
        format!(
            "the declared release delay {:.3} s of `{}`",
            a.delay, a.protection
        )
    } else {
        format!(
            "a release delay of {:.3} s (`{}` declares no `release_delay`)",
            a.delay, a.protection
        )
    }
}

/// Mark a measurement not determinable: no value, verdict inconclusive, the reason in words.
pub fn not_determinable(m: &mut MeasurementResult, reason: String) {
    m.value = f64::NAN;
    m.stated = "not determinable".into();
    m.verdict = Verdict::Inconclusive;
    m.not_determinable = Some(reason);
}

/// Check every assumed delay against the delays the plan's steps measured (trip delays by
/// step trips, release delays by steps back to rest). Confirmed: the remaining doubt about
/// the delay (rate x the largest distance from the assumed delay to the measured interval's
/// ends) joins the uncertainty and the value is judged again. Contradicted, or not checked by
/// any step of the plan: the value is not determinable.
pub fn check_assumptions(
    tests: &mut [TestResult],
    assumed: &[Assumption],
    evidence: &[DelayEvidence],
    rule: DecisionRule,
) {
    for a in assumed {
        let Some(t) = tests.iter_mut().find(|t| t.name == a.test) else {
            continue;
        };
        let Some(m) = t
            .measurements
            .iter_mut()
            .find(|m| m.criterion == a.criterion)
        else {
            continue;
        };
        let ev: Vec<&DelayEvidence> = evidence
            .iter()
            .filter(|e| e.protection == a.protection && e.kind == a.kind)
            .collect();
        let lo = ev.iter().map(|e| e.low).fold(f64::NEG_INFINITY, f64::max);
        let hi = ev.iter().map(|e| e.high).fold(f64::INFINITY, f64::min);
        let tol = 1e-6;
        let (p, d) = (&a.protection, a.delay);
        let problem = if ev.is_empty() {
            Some(match a.kind {
                DelayKind::Trip => format!(
                    "the ramp estimate rests on the declared delay {d:.3} s of `{p}`, which no \
                     step trip of this plan checks (add a `step` trip of the same protection, \
                     or measure the level by `bisect`)"
                ),
                DelayKind::Release => format!(
                    "the release level read off the ramp back rests on {}, which no step back \
                     to rest of this plan checked (add a `step` trip of `{p}` with a `rest` \
                     value beyond the declared release level; it checks when it trips)",
                    assumed_release_delay(a)
                ),
            })
        } else if lo > hi + tol {
            Some(match a.kind {
                DelayKind::Trip => format!(
                    "the step trips of this plan disagree on the delay of `{p}` (from {lo:.3} s \
                     to {hi:.3} s): it is not constant, and a ramp cannot tell it from the level"
                ),
                DelayKind::Release => format!(
                    "the release level read off the ramp back rests on {}, but the steps back \
                     to rest of this plan disagree on the real release delay (from {lo:.3} s to \
                     {hi:.3} s): it is not constant, and a ramp back cannot tell it from the \
                     release level",
                    assumed_release_delay(a)
                ),
            })
        } else if d < lo - tol || d > hi + tol {
            Some(match a.kind {
                DelayKind::Trip => format!(
                    "the declared delay {d:.3} s of `{p}` is contradicted by the step trips of \
                     this plan (the real delay lies between {lo:.3} s and {hi:.3} s): a ramp \
                     cannot separate the level from the delay"
                ),
                DelayKind::Release => format!(
                    "the release level read off the ramp back assumes {}, but the steps back to \
                     rest of this plan put the real release delay between {lo:.3} s and \
                     {hi:.3} s: the level would be off by the rate times the difference \
                     (declare `release_delay` for `{p}` in the fixture)",
                    assumed_release_delay(a)
                ),
            })
        } else {
            None
        };
        if let Some(reason) = problem {
            not_determinable(m, reason);
        } else {
            let dev = (d - lo).max(hi - d).max(0.0);
            let (what, by) = match a.kind {
                DelayKind::Trip => ("delay", "step trip(s)"),
                DelayKind::Release => ("release delay", "step(s) back to rest"),
            };
            m.budget.push(Contribution::rectangular(
                format!(
                    "{what} as checked by the {}: rate x largest distance to the measured interval",
                    match a.kind {
                        DelayKind::Trip => "step trips",
                        DelayKind::Release => "step trips' steps back to rest",
                    }
                ),
                a.rate * dev,
            ));
            m.combined_standard_uncertainty = combined(&m.budget);
            m.uncertainty = m.coverage_factor * m.combined_standard_uncertainty;
            m.stated = stated(m.value, m.uncertainty, &m.unit);
            let assumed = if a.declared { "declared" } else { "assumed" };
            m.uncertainty_budget.push_str(&format!(
                "; {assumed} {what} checked by {} {by}: real {what} {lo:.3} .. {hi:.3} s, \
                 rate x {:.0} ms added",
                ev.len(),
                dev * 1e3
            ));
            m.verdict = decide(m.value, m.uncertainty, m.limit, rule);
        }
    }
    for t in tests.iter_mut() {
        let base = if t.message.is_some() {
            Verdict::Fail
        } else {
            Verdict::Pass
        };
        t.verdict = t.measurements.iter().fold(base, |v, m| v.worst(m.verdict));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// One test with one release measurement of 3.380 V ± (2 x 1 mV/√3), limit 3.38 ± 0.05 V.
    fn release_result() -> TestResult {
        let mut t = new_result("OV threshold", "OV threshold", 0, &[], 0.0);
        t.measurements.push(judged(
            "ov_release",
            Measured {
                quantity: "release",
                value: 3.380,
                contributions: vec![Contribution::rectangular("setpoint accuracy", 0.001)],
                limit: Limit::between(3.33, 3.43),
                unit: "V",
                budget: "ramp back".into(),
            },
            &Provenance {
                source: "test".into(),
                clause: None,
                basis: "test".into(),
                confidence: "high".into(),
            },
            DecisionRule::Simple,
        ));
        t
    }

    fn assumed(kind: DelayKind, delay: f64) -> Assumption {
        Assumption {
            test: "OV threshold".into(),
            criterion: "ov_release".into(),
            protection: "ov".into(),
            kind,
            rate: 0.05,
            delay,
            declared: false,
        }
    }

    fn evidence(protection: &str, kind: DelayKind, low: f64, high: f64) -> DelayEvidence {
        DelayEvidence {
            protection: protection.into(),
            kind,
            test: "OV trip time".into(),
            low,
            high,
        }
    }

    /// The release level rests on the assumed release delay: kept when the steps back to rest
    /// bound the real release delay around it (the bound in the budget), not determinable
    /// without such evidence (evidence on the trip delay or on another protection does not
    /// count) or when the evidence excludes it.
    #[rstest]
    #[case::no_evidence(vec![], Some("no step back"))]
    #[case::only_trip_delay_evidence(
        vec![evidence("ov", DelayKind::Trip, -0.1, 0.05)],
        Some("no step back")
    )]
    #[case::other_protection(
        vec![evidence("uv", DelayKind::Release, -0.1, 0.05)],
        Some("no step back")
    )]
    #[case::consistent(vec![evidence("ov", DelayKind::Release, -0.12, 0.03)], None)]
    #[case::consistent_intersection(
        vec![
            evidence("ov", DelayKind::Release, -0.12, 0.03),
            evidence("ov", DelayKind::Release, -0.05, 0.10),
        ],
        None
    )]
    #[case::contradicted(
        vec![evidence("ov", DelayKind::Release, 0.85, 1.0)],
        Some("real release delay between 0.850 s and 1.000 s")
    )]
    #[case::disagreeing(
        vec![
            evidence("ov", DelayKind::Release, -0.1, 0.05),
            evidence("ov", DelayKind::Release, 0.9, 1.0),
        ],
        Some("disagree")
    )]
    fn a_release_level_rests_on_a_checked_release_delay(
        #[case] ev: Vec<DelayEvidence>,
        #[case] reason: Option<&str>,
    ) {
        let mut tests = vec![release_result()];
        let before = tests[0].measurements[0].uncertainty;
        check_assumptions(
            &mut tests,
            &[assumed(DelayKind::Release, 0.0)],
            &ev,
            DecisionRule::Simple,
        );
        let m = &tests[0].measurements[0];
        match reason {
            Some(part) => {
                assert!(m.value.is_nan(), "{m:?}");
                assert_eq!(m.verdict, Verdict::Inconclusive);
                assert_eq!(tests[0].verdict, Verdict::Inconclusive);
                let why = m.not_determinable.as_deref().unwrap();
                assert!(why.contains(part), "{why}");
                assert!(why.contains("release delay of 0.000 s"), "{why}");
            }
            None => {
                assert_eq!(m.value, 3.380);
                assert!(m.not_determinable.is_none(), "{m:?}");
                assert_eq!(m.verdict, Verdict::Pass);
                assert!(m.uncertainty > before, "{m:?}");
                assert!(
                    m.budget
                        .iter()
                        .any(|c| c.name.contains("release delay as checked")),
                    "{:?}",
                    m.budget
                );
                assert!(
                    m.uncertainty_budget
                        .contains("assumed release delay checked by"),
                    "{}",
                    m.uncertainty_budget
                );
            }
        }
    }

    /// The trip delay and the release delay are checked by their own evidence: release
    /// evidence neither confirms nor contradicts a declared trip delay.
    #[rstest]
    #[case::trip_evidence(DelayKind::Trip, true)]
    #[case::release_evidence_only(DelayKind::Release, false)]
    fn a_ramp_threshold_is_checked_by_trip_delay_evidence_only(
        #[case] kind: DelayKind,
        #[case] determinable: bool,
    ) {
        let mut tests = vec![release_result()];
        let mut a = assumed(DelayKind::Trip, 2.0);
        a.declared = true;
        check_assumptions(
            &mut tests,
            &[a],
            &[evidence("ov", kind, 1.9, 2.05)],
            DecisionRule::Simple,
        );
        let m = &tests[0].measurements[0];
        assert_eq!(m.not_determinable.is_none(), determinable, "{m:?}");
        if !determinable {
            let why = m.not_determinable.as_deref().unwrap();
            assert!(why.contains("no step trip"), "{why}");
        }
    }
}

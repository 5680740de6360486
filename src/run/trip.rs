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
//! - Release level (ramping back): the applied value at `t_r - (sampling + cycle)/2`, plus
//!   half a setpoint step back; same uncertainty as the ramp trip level (no release delay is
//!   assumed).
//! - Stimulus peak: the furthest value applied before detection.

use std::time::Duration;

use tokio::time::{sleep_until, timeout, Instant};

use super::station::Station;
use super::StepError;
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

/// Everything measured in one trip.
#[derive(Debug, Clone)]
pub struct TripMeasurement {
    /// When the stimulus started.
    pub started: Instant,
    /// The method's record.
    pub record: Record,
    /// The release ramp, when the plan asks for one.
    pub release: Option<RampRecord>,
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
            let release = release_detect
                .cloned()
                .unwrap_or_else(|| Condition::Not(Box::new(detect.clone())));
            let mut probes = Vec::new();
            let mut probe = async |v: f64| -> Result<bool, StepError> {
                st.set_target(b.of, b.rest.0.value).await?;
                if wait_detect(st, &release, limit).await.is_none() {
                    return Err(StepError::Dut(format!(
                        "the BMS did not release at the rest value {} within {}",
                        b.rest.0, trip.timeout
                    )));
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
        problem,
    };
    if let (Some(rel), Some(rdet), Some(_)) = (&trip.release, release_detect, m.detected()) {
        m.release = Some(release_ramp(st, trip, rel, rdet, &m).await?);
    }
    Ok(m)
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
                            let t_est = secs_before(t_r, latency / 2.0).unwrap_or(t_r);
                            let v =
                                ramp_at(&rec.applied, t_est, -sign * rate, cx.step, rel.to.0.value)
                                    .unwrap_or(f64::NAN)
                                    + sign * rate * cx.step / 2.0;
                            Some(j(
                                "release",
                                v,
                                ramp_budget(rate, latency, cx.step, cx.accuracy),
                                limit,
                                unit,
                                format!("ramp back: rate x ({lat_text} + setpoint step {:.0} ms)/2 + setpoint accuracy; no release delay assumed", cx.step * 1e3),
                            ))
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

/// A ramp-derived value that rests on the declared delay: checked at the end of the plan
/// against the delays the plan's step trips measured.
#[derive(Debug, Clone)]
pub struct Assumption {
    /// The test's unique name.
    pub test: String,
    /// The criterion of the measurement.
    pub criterion: String,
    /// The protection whose delay is assumed.
    pub protection: String,
    /// The ramp rate (unit per second).
    pub rate: f64,
    /// The declared delay the estimate used (s).
    pub delay: f64,
}

/// The interval one step trip puts the protection's real delay in (s).
#[derive(Debug, Clone)]
pub struct DelayEvidence {
    /// The protection.
    pub protection: String,
    /// The step trip's unique name.
    pub test: String,
    /// The shortest delay consistent with the observation.
    pub low: f64,
    /// The longest delay consistent with the observation.
    pub high: f64,
}

/// The assumptions a judged trip rests on (a ramp's threshold rests on the declared delay).
pub fn assumptions(result: &TestResult, trip: &Trip, declared_delay: f64) -> Vec<Assumption> {
    let Stimulus::Ramp(r) = &trip.stimulus.value else {
        return Vec::new();
    };
    result
        .measurements
        .iter()
        .filter(|m| m.quantity == "threshold" && m.value.is_finite())
        .map(|m| Assumption {
            test: result.name.clone(),
            criterion: m.criterion.clone(),
            protection: trip.protection.value.clone(),
            rate: r.rate.0.value,
            delay: declared_delay,
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
        test: name.to_string(),
        low: total - path.latency() - accept.as_secs_f64(),
        high: total,
    })
}

/// Mark a measurement not determinable: no value, verdict inconclusive, the reason in words.
pub fn not_determinable(m: &mut MeasurementResult, reason: String) {
    m.value = f64::NAN;
    m.stated = "not determinable".into();
    m.verdict = Verdict::Inconclusive;
    m.not_determinable = Some(reason);
}

/// Check every assumed delay against the delays the plan's step trips measured. Confirmed:
/// the remaining doubt about the delay (rate x the largest distance from the declared delay
/// to the measured interval's ends) joins the uncertainty and the value is judged again.
/// Contradicted, or not checked by any step trip: the value is not determinable.
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
            .filter(|e| e.protection == a.protection)
            .collect();
        let lo = ev.iter().map(|e| e.low).fold(f64::NEG_INFINITY, f64::max);
        let hi = ev.iter().map(|e| e.high).fold(f64::INFINITY, f64::min);
        let tol = 1e-6;
        if ev.is_empty() {
            not_determinable(
                m,
                format!(
                    "the ramp estimate rests on the declared delay {:.3} s of `{}`, which no \
                     step trip of this plan checks (add a `step` trip of the same protection, \
                     or measure the level by `bisect`)",
                    a.delay, a.protection
                ),
            );
        } else if lo > hi + tol {
            not_determinable(
                m,
                format!(
                    "the step trips of this plan disagree on the delay of `{}` (from {lo:.3} s \
                     to {hi:.3} s): it is not constant, and a ramp cannot tell it from the level",
                    a.protection
                ),
            );
        } else if a.delay < lo - tol || a.delay > hi + tol {
            not_determinable(
                m,
                format!(
                    "the declared delay {:.3} s of `{}` is contradicted by the step trips of \
                     this plan (the real delay lies between {lo:.3} s and {hi:.3} s): a ramp \
                     cannot separate the level from the delay",
                    a.delay, a.protection
                ),
            );
        } else {
            let dev = (a.delay - lo).max(hi - a.delay).max(0.0);
            m.budget.push(Contribution::rectangular(
                "delay as checked by the step trips: rate x largest distance to the measured interval",
                a.rate * dev,
            ));
            m.combined_standard_uncertainty = combined(&m.budget);
            m.uncertainty = m.coverage_factor * m.combined_standard_uncertainty;
            m.stated = stated(m.value, m.uncertainty, &m.unit);
            m.uncertainty_budget.push_str(&format!(
                "; declared delay checked by {} step trip(s): real delay {lo:.3} .. {hi:.3} s, \
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

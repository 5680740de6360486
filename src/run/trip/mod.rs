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
use super::{RunError, StepError};
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
) -> Result<RampRecord, RunError> {
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
            let settle = s.settle_or_twice(declared_delay);
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
        Stimulus::Short(_) => {
            return Err(RunError::setup(format!(
                "trip `{}`: a `short` stimulus is timed on the scope's record (a `capture.*` \
                 detect), not on live signals",
                trip.name
            ))
            .into())
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
) -> Result<RampRecord, RunError> {
    let target = trip.stimulus.value.target();
    let from = match &m.record {
        Record::Ramp(r) | Record::Step(r, ..) => r.applied.last().map(|(_, v)| *v),
        Record::Bisect { .. } => None,
    }
    .ok_or_else(|| RunError::Internal("no stimulus was applied".into()))?;
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

pub mod capture;
mod delays;
mod judge;
pub use delays::*;
pub use judge::*;

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

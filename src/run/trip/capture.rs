//! Trip time on a captured waveform (oscilloscope or DAQ on the pack current or a FET
//! gate), for protection too fast to time through CAN: the hardware short-circuit
//! protection of the front end trips in hundreds of microseconds.
//!
//! The capture triggers on the stimulus (the current stepping through the trigger level),
//! so the trigger is time 0 of the record. The trip is the first sample that satisfies
//! the detect condition; the true instant lies somewhere in the interval since the sample
//! before it, so the estimate is the midpoint of that interval. The budget (GUM, all
//! rectangular, combined root-sum-square, expanded with the stated coverage factor):
//! - sample interval: half-width Δt/2 (where in the interval the trip happened);
//! - trigger placement: half-width of the trigger's time resolution (one sample interval
//!   for a trigger that is not interpolated; less when the scope interpolates);
//! - timebase: the time base's accuracy in ppm times the measured time.

use std::time::Duration;

use crate::instrument::Scope;
use crate::run::RunError;
use crate::scpi::waveform::Preamble;
use crate::scpi::ScopeDialect;
use crate::verdict::gum::{self, Contribution};

/// Seconds a capture trip records before its trigger.
pub const PRE_TRIGGER_S: f64 = 100e-6;

/// Seconds a capture trip records after its trigger, for a protection declared with a
/// delay of `delay` seconds: four times the delay plus 1 ms.
pub fn post_trigger_s(delay: f64) -> f64 {
    4.0 * delay + 1e-3
}

/// The timing properties of a capture instrument that enter the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptureTiming {
    /// Time resolution of the trigger point, in seconds (None: one sample interval).
    pub trigger_resolution_s: Option<f64>,
    /// Time base accuracy in parts per million.
    pub timebase_ppm: f64,
}

impl CaptureTiming {
    /// The timing a scope dialect declares (`timing:`).
    pub fn of(dialect: &ScopeDialect) -> Self {
        CaptureTiming {
            trigger_resolution_s: dialect.timing.trigger_resolution,
            timebase_ppm: dialect.timing.timebase_ppm,
        }
    }
}

/// A trip time measured on a capture, with its budget.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureTrip {
    /// Seconds from the trigger to the trip (midpoint estimate).
    pub time_s: f64,
    /// The budget's contributions.
    pub contributions: Vec<Contribution>,
    /// Combined standard uncertainty in seconds.
    pub combined_s: f64,
    /// Expanded uncertainty `k·u_c` in seconds.
    pub expanded_s: f64,
    /// The coverage factor used.
    pub coverage_factor: f64,
}

/// The index of the first sample at or after the trigger (time >= 0) that satisfies `cond`.
pub fn first_sample(
    preamble: &Preamble,
    values: &[f64],
    cond: impl Fn(f64) -> bool,
) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .find(|(i, v)| preamble.time(*i) >= 0.0 && cond(**v))
        .map(|(i, _)| i)
}

/// The trip time from the first sample `index` that satisfies the condition, and its
/// budget with coverage factor `k`. Refuses a record whose sample interval is not positive.
pub fn trip_time(
    preamble: &Preamble,
    index: usize,
    timing: &CaptureTiming,
    k: f64,
) -> Result<CaptureTrip, RunError> {
    let dt = preamble.xincrement;
    if !(dt > 0.0 && dt.is_finite()) {
        return Err(RunError::InstrumentText(format!(
            "capture sample interval {dt} s is not positive"
        )));
    }
    let t = (preamble.time(index) - dt / 2.0).max(0.0);
    let contributions = vec![
        Contribution::rectangular("sample interval", dt / 2.0),
        Contribution::rectangular(
            "trigger placement",
            timing.trigger_resolution_s.unwrap_or(dt) / 2.0,
        ),
        Contribution::rectangular("timebase", t * timing.timebase_ppm * 1e-6),
    ];
    let combined_s = gum::combined(&contributions);
    Ok(CaptureTrip {
        time_s: t,
        contributions,
        combined_s,
        expanded_s: k * combined_s,
        coverage_factor: k,
    })
}

/// After a stimulus on an armed scope ([`Scope::arm`]): wait for its single acquisition
/// (asking every `poll`, at most `within`), read the record and time the trip at the first
/// sample at or after the trigger that satisfies `detect` (on amperes), with coverage
/// factor `k`. `Ok(None)`: the record holds no such sample (the protection did not act
/// within it). An acquisition that never completes (the stimulus never crossed the
/// trigger level) is an error naming the scope.
pub async fn acquire_trip(
    scope: &mut dyn Scope,
    detect: impl Fn(f64) -> bool,
    poll: Duration,
    within: Duration,
    k: f64,
) -> Result<Option<CaptureTrip>, RunError> {
    let deadline = tokio::time::Instant::now() + within;
    wait_acquired(scope, poll, deadline, "arming").await?;
    timed_trip(scope, detect, k).await
}

/// Wait for an armed scope's single acquisition, asking every `poll`, until `deadline`
/// (each question bounded by it too); past it, an error naming the scope and what the
/// deadline counted from (`arming`, `closing the short-circuit switch`).
pub async fn wait_acquired(
    scope: &mut dyn Scope,
    poll: Duration,
    deadline: tokio::time::Instant,
    from: &str,
) -> Result<(), RunError> {
    let late = |scope: &dyn Scope| {
        RunError::InstrumentText(format!(
            "scope `{}`: no completed acquisition by the deadline after {from} (did the \
             stimulus cross the trigger level?)",
            scope.id()
        ))
    };
    loop {
        match tokio::time::timeout_at(deadline, scope.acquired()).await {
            Ok(r) => {
                if r? {
                    return Ok(());
                }
            }
            Err(_) => return Err(late(scope)),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(late(scope));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Read the completed record and time the trip at the first sample at or after the
/// trigger that satisfies `detect`, with coverage factor `k` (`Ok(None)`: no such sample).
pub async fn timed_trip(
    scope: &mut dyn Scope,
    detect: impl Fn(f64) -> bool,
    k: f64,
) -> Result<Option<CaptureTrip>, RunError> {
    let w = scope.fetch().await?;
    let timing = CaptureTiming::of(scope.dialect());
    match first_sample(&w.preamble, &w.amps, detect) {
        None => Ok(None),
        Some(i) => trip_time(&w.preamble, i, &timing, k).map(Some),
    }
}

/// Judge a trip timed on a capture against the plan's `trip_time` criteria: the value is
/// seconds from the trigger (the stimulus crossing the trigger level) to the first sample
/// meeting the detect condition, the limit `[0, declared delay + allowance]`. `trip` None:
/// no sample in the record met the condition, a failed test. Criteria of other kinds are
/// refused when the plan is loaded.
pub fn judge_capture(
    result: &mut crate::report::TestResult,
    trip: Option<&CaptureTrip>,
    step: &crate::plan::model::Trip,
    record_s: f64,
    profile: &crate::plan::limits::LimitProfile,
    declared_delay: f64,
    rule: crate::verdict::DecisionRule,
) {
    use crate::plan::limits::Check;
    use crate::verdict::{Limit, Verdict};
    let detect = &step.detect.value;
    let Some(trip) = trip else {
        result.verdict = Verdict::Fail;
        result.message = Some(format!(
            "no sample of the {:.2} ms record meets `{detect}`: the protection did not act \
             within it",
            record_s * 1e3
        ));
        return;
    };
    result.verdict = Verdict::Pass;
    for name in &step.judge {
        let Some(c) = profile.criteria.get(&name.value) else {
            continue;
        };
        let Check::TripTime { allowance } = &c.value.check else {
            continue;
        };
        let mr = super::judged(
            &name.value,
            super::Measured {
                quantity: "trip_time",
                value: trip.time_s,
                contributions: trip.contributions.clone(),
                limit: Limit::between(0.0, declared_delay + allowance.0),
                unit: "s",
                budget: format!(
                    "capture: first sample meeting `{detect}` after the trigger, midpoint of the \
                     sample interval before it; sample interval, trigger placement and time \
                     base, rectangular, k = {}",
                    trip.coverage_factor
                ),
            },
            &c.value.provenance,
            rule,
        );
        result.verdict = result.verdict.worst(mr.verdict);
        result.measurements.push(mr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preamble(dt: f64) -> Preamble {
        // 1200 points, the trigger at point 100.
        Preamble::parse(&format!("2,0,1200,1,{dt},0,100,1,0,0")).unwrap()
    }

    #[test]
    fn the_first_sample_after_the_trigger_counts() {
        let p = preamble(1e-6);
        let mut v = vec![-120.0; 1200];
        v[50] = 0.0; // before the trigger: ignored
        for x in v.iter_mut().skip(430) {
            *x = 0.0;
        }
        assert_eq!(first_sample(&p, &v, |i| i > -1.0), Some(430));
        assert_eq!(first_sample(&p, &v[..400], |i| i > -1.0), None);
    }

    #[test]
    fn one_megasample_gives_a_microsecond_budget() {
        let p = preamble(1e-6);
        let timing = CaptureTiming {
            trigger_resolution_s: None,
            timebase_ppm: 25.0,
        };
        let trip = trip_time(&p, 430, &timing, 2.0).unwrap();
        assert!((trip.time_s - 329.5e-6).abs() < 1e-12);
        // Two rectangular half-widths of 0.5 µs and a negligible timebase term.
        let u = (2.0 * (0.5e-6f64 / 3f64.sqrt()).powi(2)).sqrt();
        assert!((trip.combined_s - u).abs() < 1e-10, "{}", trip.combined_s);
        assert!(trip.expanded_s < 1e-3);
    }

    #[test]
    fn refuses_a_record_without_a_sample_interval() {
        let p = preamble(0.0);
        let timing = CaptureTiming {
            trigger_resolution_s: None,
            timebase_ppm: 0.0,
        };
        assert!(trip_time(&p, 1, &timing, 2.0).is_err());
    }
}

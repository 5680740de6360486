//! The `trip` step: drive a stimulus until the detect condition holds, then measure the
//! trip level and trip time and judge them against the limit profile.
//!
//! Ramp method. The cell simulator's setpoint follows `from + rate * t`, updated every
//! `update_period` (Δ). The BMS samples every `sampling_period` (declared by the fixture),
//! acts after its debounce delay D, and reports on CAN every `cycle` (from the DBC). So the
//! first observation `t_d` lies between `t_c + D` and `t_c + D + sampling + cycle` after the
//! moment `t_c` the applied value crossed the real threshold, and that value is known to Δ.
//!
//! - Trip level: the applied value at `t_d - D - (sampling + cycle)/2`, less half a setpoint
//!   step; expanded uncertainty `rate * (sampling + cycle + Δ)/2 + accuracy`. It assumes the
//!   declared delay; a wrong delay shows in the trip time.
//! - Trip time: `t_d` minus the moment the applied value crossed the declared trip level;
//!   uncertainty `sampling + cycle + Δ` (the detection path).
//! - Stimulus peak: the highest value applied before detection (the cell never went higher).

use tokio::time::{sleep_until, Instant};

use super::station::Station;
use crate::plan::limits::{Check, LimitProfile};
use crate::plan::model::{Stimulus, Trip};
use crate::plan::{Condition, Fixture};
use crate::report::{MeasurementResult, TestResult};
use crate::units::Dimension;
use crate::verdict::{decide, DecisionRule, Limit, Verdict};

/// What the trip step needs to know about the detection path.
pub struct DetectionPath {
    /// The BMS's sampling period (s).
    pub sampling: f64,
    /// The cycle time of the message carrying the detect signal (s).
    pub cycle: f64,
}

/// Everything measured in one trip.
#[derive(Debug, Clone)]
pub struct TripMeasurement {
    /// When the stimulus started.
    pub started: Instant,
    /// First observation of the detect condition.
    pub detected: Option<Instant>,
    /// Applied setpoints (time, value).
    pub applied: Vec<(Instant, f64)>,
}

/// Run the stimulus of a trip step. Errors are instrument or envelope errors (abort the run).
pub async fn drive(
    st: &Station,
    trip: &Trip,
    detect: &Condition,
) -> Result<TripMeasurement, String> {
    let Stimulus::Ramp(r) = &trip.stimulus;
    if st.signals.eval(detect) == Some(true) {
        return Err(format!(
            "detect condition `{}` already holds before the stimulus of `{}` started",
            detect, trip.name
        ));
    }
    let period = st
        .cells
        .as_ref()
        .ok_or("the rig has no cell simulator")?
        .lock()
        .await
        .update_period();
    let mut detected_rx = st.signals.watch(detect.clone());
    let started = Instant::now();
    let deadline = started + trip.timeout.duration();
    let dir = if r.to.0 >= r.from.0 { 1.0 } else { -1.0 };
    let mut applied = Vec::new();
    let mut detected = None;
    for k in 0u64.. {
        let t = k as f64 * period.as_secs_f64();
        let v = r.from.0 + dir * r.rate.0 * t;
        let v = if dir > 0.0 {
            v.min(r.to.0)
        } else {
            v.max(r.to.0)
        };
        if applied.last().is_none_or(|(_, last)| *last != v) {
            st.set_cell(r.cell, v).await?;
            applied.push((Instant::now(), v));
        }
        let next = started + period * (k as u32 + 1);
        tokio::select! {
            biased;
            at = &mut detected_rx => { detected = at.ok(); break; }
            _ = sleep_until(deadline) => break,
            _ = sleep_until(next) => {}
        }
    }
    Ok(TripMeasurement {
        started,
        detected,
        applied,
    })
}

/// The applied value at instant `t` (the last setpoint sent at or before it).
fn applied_at(applied: &[(Instant, f64)], t: Instant) -> Option<f64> {
    applied
        .iter()
        .take_while(|(at, _)| *at <= t)
        .last()
        .map(|(_, v)| *v)
}

/// Judge a trip measurement. `name` is the test's unique name.
#[allow(clippy::too_many_arguments)]
pub fn judge(
    name: &str,
    repeat: u32,
    trip: &Trip,
    m: &TripMeasurement,
    fixture: &Fixture,
    profile: &LimitProfile,
    rule: DecisionRule,
    path: &DetectionPath,
    accuracy: f64,
    step: f64,
    clock: &crate::trace::Clock,
    requirements: &[String],
) -> TestResult {
    let Stimulus::Ramp(r) = &trip.stimulus;
    let rising = r.to.0 >= r.from.0;
    let rate = r.rate.0;
    let mut result = TestResult {
        name: name.to_string(),
        repeat,
        verdict: Verdict::Pass,
        requirements: requirements.to_vec(),
        measurements: Vec::new(),
        message: None,
        started_s: clock.t(m.started),
        detected_s: m.detected.map(|t| clock.t(t)),
    };
    let Some(declared) = fixture
        .protections
        .get(&trip.protection.value)
        .map(|p| &p.value)
    else {
        result.verdict = Verdict::Fail;
        result.message = Some(format!(
            "protection `{}` is not declared",
            trip.protection.value
        ));
        return result;
    };
    let Some(t_d) = m.detected else {
        result.verdict = Verdict::Fail;
        let peak = m.applied.iter().map(|(_, v)| *v).fold(f64::NAN, f64::max);
        result.message = Some(format!(
            "`{}` was not observed within {:.1} s; the stimulus reached {:.4} V (declared trip {:.4} V)",
            trip.detect.value,
            trip.timeout.0,
            peak,
            declared.trip.0.value
        ));
        return result;
    };
    let trip_level = declared.trip.0.value;
    let delay = declared.delay.0;
    let latency = path.sampling + path.cycle;
    let unit = if declared.trip.0.dim == Dimension::Voltage {
        "V"
    } else {
        declared.trip.0.dim.unit()
    };

    for crit_name in &trip.judge {
        let Some(c) = profile.criteria.get(&crit_name.value) else {
            continue;
        };
        let c = &c.value;
        let (quantity, value, u, limit, unit, budget) = match &c.check {
            Check::Threshold { tolerance } => {
                let t_est = t_d
                    .checked_sub(std::time::Duration::from_secs_f64(delay + latency / 2.0))
                    .unwrap_or(m.started);
                let v = applied_at(&m.applied, t_est).unwrap_or(f64::NAN);
                let v = if rising {
                    v - rate * step / 2.0
                } else {
                    v + rate * step / 2.0
                };
                let u = rate * (latency + step) / 2.0 + accuracy;
                let tol = tolerance.0.value;
                (
                    "threshold",
                    v,
                    u,
                    Limit::between(trip_level - tol, trip_level + tol),
                    unit,
                    format!(
                        "rate {:.1} mV/s x (sampling {:.0} ms + message cycle {:.0} ms + setpoint step {:.0} ms)/2 + setpoint accuracy {:.1} mV; assumes the declared delay {:.3} s",
                        rate * 1e3,
                        path.sampling * 1e3,
                        path.cycle * 1e3,
                        step * 1e3,
                        accuracy * 1e3,
                        delay
                    ),
                )
            }
            Check::TripTime { allowance } => {
                // The declared level is where the fault starts: crossing means strictly beyond it.
                let crossed = m.applied.iter().find(|(_, v)| {
                    if rising {
                        *v > trip_level
                    } else {
                        *v < trip_level
                    }
                });
                let value = match crossed {
                    Some((t_c, _)) if *t_c <= t_d => (t_d - *t_c).as_secs_f64(),
                    Some((t_c, _)) => -(*t_c - t_d).as_secs_f64(),
                    None => -1.0,
                };
                (
                    "trip_time",
                    value,
                    latency + step,
                    Limit::between(0.0, delay + allowance.0),
                    "s",
                    format!(
                        "sampling {:.0} ms + message cycle {:.0} ms + setpoint step {:.0} ms",
                        path.sampling * 1e3,
                        path.cycle * 1e3,
                        step * 1e3
                    ),
                )
            }
            Check::StimulusPeak { at_most } => {
                let peak = m
                    .applied
                    .iter()
                    .take_while(|(at, _)| *at <= t_d)
                    .map(|(_, v)| *v)
                    .fold(f64::NEG_INFINITY, f64::max);
                let lim = fixture
                    .cell_limits
                    .get(at_most)
                    .map(|q| q.0.value)
                    .unwrap_or(f64::NAN);
                (
                    "stimulus_peak",
                    peak,
                    accuracy,
                    Limit::at_most(lim),
                    "V",
                    format!("setpoint accuracy {:.1} mV", accuracy * 1e3),
                )
            }
        };
        let verdict = decide(value, u, limit, rule);
        result.verdict = result.verdict.worst(verdict);
        result.measurements.push(MeasurementResult {
            criterion: crit_name.value.clone(),
            quantity: quantity.to_string(),
            value,
            uncertainty: u,
            unit: unit.to_string(),
            limit,
            verdict,
            uncertainty_budget: budget,
            provenance: c.provenance.clone(),
        });
    }
    result
}

//! Assumed and measured delays: the evidence steps leave, and the end-of-plan check that
//! revises ramp estimates resting on a declared delay the bench contradicts.

use super::*;

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
    let rising = trip.stimulus.value.rising();
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

//! Judging a trip measurement: the level, time and release against the limit profile, with
//! their uncertainty budgets and the decision rule.

use super::*;

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
    let rising = stim.rising();
    let rate = match stim {
        Stimulus::Ramp(r) => r.rate.0.value,
        _ => 0.0,
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

//! Limits, measurement uncertainty and decision rules (ILAC-G8 simple and guarded acceptance);
//! the state-of-charge reference and its budget in [`soc`].

pub mod gum;
pub mod soc;

use serde::{Deserialize, Serialize};

pub use crate::plan::DecisionRule;

/// The outcome of judging one value, one test or one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the limit.
    Pass,
    /// Inside the guard band: neither pass nor fail can be stated.
    Inconclusive,
    /// Outside the limit.
    Fail,
}

impl Verdict {
    /// Upper-case word for operator output.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Fail => "FAIL",
        }
    }

    /// The worse of two verdicts.
    pub fn worst(self, other: Verdict) -> Verdict {
        self.max(other)
    }
}

/// An acceptance interval; either bound may be open.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    /// Lowest acceptable value.
    pub low: Option<f64>,
    /// Highest acceptable value.
    pub high: Option<f64>,
}

impl Limit {
    /// Between two bounds.
    pub fn between(low: f64, high: f64) -> Self {
        Self {
            low: Some(low),
            high: Some(high),
        }
    }

    /// At most a bound.
    pub fn at_most(high: f64) -> Self {
        Self {
            low: None,
            high: Some(high),
        }
    }
}

/// Judge `value` with expanded uncertainty `u` (half-width, same unit) against `limit`.
///
/// Simple acceptance compares the value alone. Guarded acceptance passes only when the
/// whole interval `value ± u` lies inside the limit, fails only when it lies wholly outside,
/// and is inconclusive otherwise.
pub fn decide(value: f64, u: f64, limit: Limit, rule: DecisionRule) -> Verdict {
    if !value.is_finite() {
        return Verdict::Fail;
    }
    let u = u.abs();
    let inside = |x: f64| limit.low.is_none_or(|l| x >= l) && limit.high.is_none_or(|h| x <= h);
    match rule {
        DecisionRule::Simple => {
            if inside(value) {
                Verdict::Pass
            } else {
                Verdict::Fail
            }
        }
        DecisionRule::Guarded => {
            if inside(value - u) && inside(value + u) {
                Verdict::Pass
            } else if limit.low.is_some_and(|l| value + u < l)
                || limit.high.is_some_and(|h| value - u > h)
            {
                Verdict::Fail
            } else {
                Verdict::Inconclusive
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    // value, u, low, high, simple, guarded
    #[case(3.65, 0.005, 3.60, 3.70, Verdict::Pass, Verdict::Pass)]
    #[case(3.698, 0.005, 3.60, 3.70, Verdict::Pass, Verdict::Inconclusive)]
    #[case(3.702, 0.005, 3.60, 3.70, Verdict::Fail, Verdict::Inconclusive)]
    #[case(3.71, 0.005, 3.60, 3.70, Verdict::Fail, Verdict::Fail)]
    #[case(3.603, 0.005, 3.60, 3.70, Verdict::Pass, Verdict::Inconclusive)]
    #[case(3.594, 0.005, 3.60, 3.70, Verdict::Fail, Verdict::Fail)]
    #[case(3.65, 0.0, 3.60, 3.70, Verdict::Pass, Verdict::Pass)]
    #[case(3.70, 0.0, 3.60, 3.70, Verdict::Pass, Verdict::Pass)]
    #[case(3.65, 0.06, 3.60, 3.70, Verdict::Pass, Verdict::Inconclusive)]
    #[case(f64::NAN, 0.0, 3.60, 3.70, Verdict::Fail, Verdict::Fail)]
    fn decision_rules(
        #[case] value: f64,
        #[case] u: f64,
        #[case] low: f64,
        #[case] high: f64,
        #[case] simple: Verdict,
        #[case] guarded: Verdict,
    ) {
        let limit = Limit::between(low, high);
        assert_eq!(decide(value, u, limit, DecisionRule::Simple), simple);
        assert_eq!(decide(value, u, limit, DecisionRule::Guarded), guarded);
    }

    #[rstest]
    #[case(2.5, 0.15, Verdict::Pass)]
    #[case(2.9, 0.15, Verdict::Inconclusive)]
    #[case(3.2, 0.15, Verdict::Fail)]
    fn one_sided_limits(#[case] value: f64, #[case] u: f64, #[case] guarded: Verdict) {
        assert_eq!(
            decide(value, u, Limit::at_most(3.0), DecisionRule::Guarded),
            guarded
        );
    }

    #[test]
    fn worst_orders_pass_inconclusive_fail() {
        assert_eq!(
            Verdict::Pass.worst(Verdict::Inconclusive),
            Verdict::Inconclusive
        );
        assert_eq!(Verdict::Fail.worst(Verdict::Inconclusive), Verdict::Fail);
    }
}

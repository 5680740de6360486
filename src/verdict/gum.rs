//! Uncertainty per the GUM (JCGM 100:2008): each contribution as a standard uncertainty with
//! its distribution (a bound `a` of a rectangular distribution gives `a/√3`, of a triangular
//! one `a/√6`; a Type A evaluation from `n` repeats gives `s/√n`), combined root-sum-square
//! (uncorrelated inputs), expanded `U = k·u_c` with a stated coverage factor (k = 2 by
//! default, about 95 %). Stated results give `U` to two significant digits and the value to
//! the same decimal place.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The coverage factor used unless a profile says otherwise (about 95 % coverage).
pub const DEFAULT_COVERAGE_FACTOR: f64 = 2.0;

/// How a contribution's value is turned into a standard uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// A half-width bound, every value inside equally likely: `a/√3`.
    Rectangular,
    /// A half-width bound, values near the centre more likely: `a/√6`.
    Triangular,
    /// Already a standard uncertainty (normal distribution): the value itself.
    Normal,
    /// Type A: the standard deviation of the mean of the repeats, `s/√n`.
    TypeA,
}

impl Distribution {
    /// The divisor from the stated value to the standard uncertainty.
    pub fn divisor(self) -> f64 {
        match self {
            Distribution::Rectangular => 3f64.sqrt(),
            Distribution::Triangular => 6f64.sqrt(),
            Distribution::Normal | Distribution::TypeA => 1.0,
        }
    }
}

/// One line of an uncertainty budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Contribution {
    /// What it is (`detection path`, `setpoint accuracy`, ...).
    pub name: String,
    /// The stated value: the half-width bound, or the standard uncertainty (normal, Type A),
    /// in the measurement's unit.
    pub value: f64,
    /// Its distribution.
    pub distribution: Distribution,
    /// The standard uncertainty it contributes (same unit).
    pub standard_uncertainty: f64,
}

impl Contribution {
    /// A contribution of `value` with `distribution`.
    pub fn new(name: impl Into<String>, value: f64, distribution: Distribution) -> Self {
        let value = value.abs();
        Self {
            name: name.into(),
            value,
            distribution,
            standard_uncertainty: value / distribution.divisor(),
        }
    }

    /// A half-width bound with a rectangular distribution.
    pub fn rectangular(name: impl Into<String>, bound: f64) -> Self {
        Self::new(name, bound, Distribution::Rectangular)
    }
}

/// The combined standard uncertainty: the root sum of squares of the contributions.
pub fn combined(contributions: &[Contribution]) -> f64 {
    // An empty float sum is -0.0; `+ 0.0` makes an empty budget a plain 0 in the results.
    (contributions
        .iter()
        .map(|c| c.standard_uncertainty.powi(2))
        .sum::<f64>()
        + 0.0)
        .sqrt()
}

/// The Type A standard uncertainty of the mean of `values`: `s/√n` (0 for fewer than two).
pub fn type_a(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let s2 = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (s2 / n as f64).sqrt()
}

/// The decimal exponent of the last digit kept when `u` is given to two significant digits.
fn last_digit(u: f64) -> i32 {
    u.abs().log10().floor() as i32 - 1
}

/// `U` rounded to two significant digits (upwards would also be defensible; the GUM rounds
/// to the nearest) and the value rounded to the same decimal place; (value, U, decimals
/// after the point, 0 when the last digit kept is at or left of the units).
pub fn round_stated(value: f64, u: f64) -> (f64, f64, usize) {
    if !(u.is_finite() && u > 0.0) {
        return (value, u, 0);
    }
    let e = last_digit(u);
    let scale = 10f64.powi(-e);
    let r = |x: f64| (x * scale).round() / scale;
    (r(value), r(u), (-e).max(0) as usize)
}

/// A number without binary-representation noise (`3.6999999999999997` -> `3.7`): rounded to
/// nine decimals.
pub fn clean(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e9).round() / 1e9
    } else {
        x
    }
}

/// The value and expanded uncertainty as a laboratory states them: `3.6515 V ± 2.3 mV`
/// becomes `3.6515 ± 0.0023 V`; without uncertainty, the value alone without noise.
pub fn stated(value: f64, u: f64, unit: &str) -> String {
    let sep = if unit.is_empty() { "" } else { " " };
    if !value.is_finite() {
        return "not determinable".to_string();
    }
    if !(u.is_finite() && u > 0.0) {
        return format!("{}{sep}{unit}", clean(value));
    }
    let (v, u, d) = round_stated(value, u);
    format!("{v:.d$} ± {u:.d$}{sep}{unit}")
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_empty_budget_is_a_plain_zero() {
        let u = combined(&[]);
        assert!(u == 0.0 && u.is_sign_positive(), "{u:?}");
    }

    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(3.651_481_911_800_000_4, 0.002_3, "V", "3.6515 ± 0.0023 V")]
    #[case(3.690_7, 0.002_349, "V", "3.6907 ± 0.0023 V")]
    #[case(2.1, 0.150_000_000_000_000_02, "s", "2.10 ± 0.15 s")]
    #[case(55.123, 1.26, "°C", "55.1 ± 1.3 °C")]
    #[case(1234.0, 56.0, "Wh", "1234 ± 56 Wh")]
    #[case(1234.0, 560.0, "Wh", "1230 ± 560 Wh")]
    #[case(3.699_999_999_999_999_7, 0.0, "V", "3.7 V")]
    #[case(f64::NAN, 0.001, "V", "not determinable")]
    fn states_results_as_a_laboratory(
        #[case] v: f64,
        #[case] u: f64,
        #[case] unit: &str,
        #[case] text: &str,
    ) {
        assert_eq!(stated(v, u, unit), text);
    }

    #[test]
    fn rectangular_bounds_combine_root_sum_square() {
        let c = [
            Contribution::rectangular("a", 3f64.sqrt() * 3.0),
            Contribution::new("b", 4.0, Distribution::Normal),
        ];
        assert!((c[0].standard_uncertainty - 3.0).abs() < 1e-12);
        assert!((combined(&c) - 5.0).abs() < 1e-12);
        let t = Contribution::new("t", 6f64.sqrt(), Distribution::Triangular);
        assert!((t.standard_uncertainty - 1.0).abs() < 1e-12);
    }

    #[test]
    fn type_a_is_the_standard_deviation_of_the_mean() {
        // s = 1 (values 1, 2, 3), n = 3: s/sqrt(3).
        assert!((type_a(&[1.0, 2.0, 3.0]) - 1.0 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(type_a(&[2.0]), 0.0);
    }
}

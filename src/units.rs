//! Quantities with units as written in user files: "3.65 V", "10 mV/s", "2 s", "45 °C".
//!
//! Every quantity is parsed into SI base units (V, A, Ω, °C, s, V/s, °C/s, Ah, Wh) and
//! checked by dimension, so "2 V" where a duration is expected is an error that names both.
//! Temperatures are kept in °C (kelvin input is converted), because that is how limits are
//! written in BMS datasheets and standards.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Physical dimension of a quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Volts.
    Voltage,
    /// Amperes.
    Current,
    /// Ohms.
    Resistance,
    /// Degrees Celsius.
    Temperature,
    /// Seconds.
    Time,
    /// Volts per second.
    VoltageRate,
    /// Amperes per second.
    CurrentRate,
    /// Degrees Celsius per second.
    TemperatureRate,
    /// Ampere-hours.
    Charge,
    /// Watt-hours.
    Energy,
    /// Watts.
    Power,
}

impl Dimension {
    /// The SI unit symbol used when printing.
    pub fn unit(self) -> &'static str {
        match self {
            Dimension::Voltage => "V",
            Dimension::Current => "A",
            Dimension::Resistance => "Ohm",
            Dimension::Temperature => "°C",
            Dimension::Time => "s",
            Dimension::VoltageRate => "V/s",
            Dimension::CurrentRate => "A/s",
            Dimension::TemperatureRate => "°C/s",
            Dimension::Charge => "Ah",
            Dimension::Energy => "Wh",
            Dimension::Power => "W",
        }
    }

    /// A human name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Voltage => "a voltage",
            Dimension::Current => "a current",
            Dimension::Resistance => "a resistance",
            Dimension::Temperature => "a temperature",
            Dimension::Time => "a duration",
            Dimension::VoltageRate => "a voltage rate",
            Dimension::CurrentRate => "a current rate",
            Dimension::TemperatureRate => "a temperature rate",
            Dimension::Charge => "a charge",
            Dimension::Energy => "an energy",
            Dimension::Power => "a power",
        }
    }
}

/// Errors from parsing a quantity.
#[derive(Debug, Error, PartialEq)]
pub enum UnitError {
    /// Nothing that looks like a number.
    #[error("`{0}` is not a quantity: expected a number and a unit, such as `3.65 V`")]
    NotANumber(String),
    /// A bare number where a unit is required.
    #[error("`{text}` has no unit: write {} with its unit, such as `{text} {}`", .expected.name(), .expected.unit())]
    MissingUnit {
        /// The text as written.
        text: String,
        /// The dimension that was expected.
        expected: Dimension,
    },
    /// A unit this parser does not know.
    #[error("`{unit}` in `{text}` is not a known unit (known: mV V kV, mA A, mOhm Ohm kOhm, °C degC K, ms s min h, mV/s V/s, A/s, °C/s °C/min, mAh Ah, Wh kWh, W kW)")]
    UnknownUnit {
        /// The text as written.
        text: String,
        /// The unit part.
        unit: String,
    },
    /// A unit of another dimension than the field needs.
    #[error("`{text}` is {}, but {} is expected here", .found.name(), .expected.name())]
    WrongDimension {
        /// The text as written.
        text: String,
        /// What was found.
        found: Dimension,
        /// What the field needs.
        expected: Dimension,
    },
    /// A value outside what any field of its kind accepts.
    #[error("`{text}` {why}")]
    OutOfBounds {
        /// The text as written.
        text: String,
        /// Why it is refused.
        why: String,
    },
}

/// A value with its dimension, in SI base units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    /// Value in the dimension's base unit.
    pub value: f64,
    /// The dimension.
    pub dim: Dimension,
}

fn lookup_unit(unit: &str) -> Option<(Dimension, f64, f64)> {
    // (dimension, scale, offset): si = value * scale + offset
    use Dimension::*;
    let u = unit.trim();
    Some(match u {
        "uV" | "µV" => (Voltage, 1e-6, 0.0),
        "mV" => (Voltage, 1e-3, 0.0),
        "V" => (Voltage, 1.0, 0.0),
        "kV" => (Voltage, 1e3, 0.0),
        "uA" | "µA" => (Current, 1e-6, 0.0),
        "mA" => (Current, 1e-3, 0.0),
        "A" => (Current, 1.0, 0.0),
        "kA" => (Current, 1e3, 0.0),
        "mOhm" | "mΩ" | "mohm" => (Resistance, 1e-3, 0.0),
        "Ohm" | "Ω" | "ohm" => (Resistance, 1.0, 0.0),
        "kOhm" | "kΩ" | "kohm" => (Resistance, 1e3, 0.0),
        "MOhm" | "MΩ" => (Resistance, 1e6, 0.0),
        "°C" | "degC" | "C" => (Temperature, 1.0, 0.0),
        "K" => (Temperature, 1.0, -273.15),
        "us" | "µs" => (Time, 1e-6, 0.0),
        "ms" => (Time, 1e-3, 0.0),
        "s" => (Time, 1.0, 0.0),
        "min" => (Time, 60.0, 0.0),
        "h" => (Time, 3600.0, 0.0),
        "uV/s" | "µV/s" => (VoltageRate, 1e-6, 0.0),
        "mV/s" => (VoltageRate, 1e-3, 0.0),
        "V/s" => (VoltageRate, 1.0, 0.0),
        "mV/min" => (VoltageRate, 1e-3 / 60.0, 0.0),
        "V/min" => (VoltageRate, 1.0 / 60.0, 0.0),
        "mA/s" => (CurrentRate, 1e-3, 0.0),
        "A/s" => (CurrentRate, 1.0, 0.0),
        "A/min" => (CurrentRate, 1.0 / 60.0, 0.0),
        "°C/s" | "degC/s" | "K/s" => (TemperatureRate, 1.0, 0.0),
        "°C/min" | "degC/min" | "K/min" => (TemperatureRate, 1.0 / 60.0, 0.0),
        "mAh" => (Charge, 1e-3, 0.0),
        "Ah" => (Charge, 1.0, 0.0),
        "Wh" => (Energy, 1.0, 0.0),
        "kWh" => (Energy, 1e3, 0.0),
        "MWh" => (Energy, 1e6, 0.0),
        "mW" => (Power, 1e-3, 0.0),
        "W" => (Power, 1.0, 0.0),
        "kW" => (Power, 1e3, 0.0),
        _ => return None,
    })
}

fn split_number(text: &str) -> Option<(f64, &str)> {
    let (numeral, rest) = split_numeral(text);
    let number: f64 = numeral.parse().ok()?;
    if !number.is_finite() {
        return None;
    }
    Some((number, rest))
}

/// The leading number of `text` (trimmed) as written, and what follows it (trimmed):
/// `("3.65", "V")`. A sign only at the start or after an exponent marker; `e`/`E` only after
/// a digit or point and before a digit or sign, so `48 E` keeps its `E`.
pub fn split_numeral(text: &str) -> (&str, &str) {
    let t = text.trim();
    let bytes = t.as_bytes();
    let end = t
        .char_indices()
        .find(|&(i, c)| !match c {
            '0'..='9' | '.' => true,
            '+' | '-' => i == 0 || matches!(bytes[i - 1], b'e' | b'E'),
            'e' | 'E' => {
                i > 0
                    && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.')
                    && matches!(bytes.get(i + 1), Some(b'0'..=b'9' | b'+' | b'-'))
            }
            _ => false,
        })
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    (&t[..end], t[end..].trim())
}

/// A duration in the plans' syntax (`30 s`, `10 min`, `1.5 h`): one parser for every option
/// and file field that takes one. Negative, non-finite and unrepresentable durations are
/// refused with the text given.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let s = Quantity::parse_as(text, Dimension::Time).map_err(|e| e.to_string())?;
    if s < 0.0 {
        return Err(format!(
            "`{text}` is negative: give a duration of 0 s or more"
        ));
    }
    std::time::Duration::try_from_secs_f64(s)
        .map_err(|_| format!("`{text}` is too long to be a duration"))
}

/// A number as an instrument or a dialect file writes it, with the unit after it (if any).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitValue<'a> {
    /// The value, scaled by any SI prefix on the unit (`mV` -> volts).
    pub value: f64,
    /// The base unit without prefix, as written (`V`, `A`, `W`), or empty.
    pub unit: &'a str,
}

/// A number, bare or followed by a unit with an optional SI prefix (`48`, `+4.8E+01`,
/// `48.00 V`, `10.00A`, `250 mA`); when `expected_unit` is given a unit, if written, must be
/// it (any case). Unlike [`Quantity::parse`] the unit is not looked up: instruments write
/// their own.
pub fn parse_quantity<'a>(
    text: &'a str,
    expected_unit: Option<&str>,
) -> Result<UnitValue<'a>, String> {
    let trimmed = text.trim();
    let (number, unit_text) = split_numeral(trimmed);
    let value: f64 = number.parse().map_err(|_| {
        format!("`{trimmed}` is not a number (expected e.g. 48, 48.00, +4.8E+01 or 48.00 V)")
    })?;
    if !value.is_finite() {
        return Err(format!("`{trimmed}` is not a finite number"));
    }
    if unit_text.is_empty() {
        return Ok(UnitValue { value, unit: "" });
    }
    if !unit_text.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!(
            "`{trimmed}` has trailing text `{unit_text}` that is not a unit"
        ));
    }
    let (scale, unit) = split_prefix(unit_text, expected_unit);
    if let Some(expected) = expected_unit {
        if !unit.eq_ignore_ascii_case(expected) {
            return Err(format!("expected a value in {expected}, got `{trimmed}`"));
        }
    }
    Ok(UnitValue {
        value: value * scale,
        unit,
    })
}

/// Split an SI prefix from a unit. A unit equal to the expected one is never split, so `m`
/// alone is not taken for milli.
fn split_prefix<'a>(unit: &'a str, expected: Option<&str>) -> (f64, &'a str) {
    if let Some(expected) = expected {
        if unit.eq_ignore_ascii_case(expected) {
            return (1.0, unit);
        }
    }
    let mut chars = unit.chars();
    let prefix = chars.next();
    let base = chars.as_str();
    if base.is_empty() {
        return (1.0, unit);
    }
    let scale = match prefix {
        Some('m') => 1e-3,
        Some('u') => 1e-6,
        Some('n') => 1e-9,
        Some('k') => 1e3,
        Some('M') => 1e6,
        _ => return (1.0, unit),
    };
    if let Some(expected) = expected {
        if !base.eq_ignore_ascii_case(expected) {
            return (1.0, unit);
        }
    }
    (scale, base)
}

impl Quantity {
    /// Parse "3.65 V", "-20 °C", "10 mV/s" into SI units, any dimension.
    pub fn parse(text: &str) -> Result<Quantity, UnitError> {
        let (number, unit) =
            split_number(text).ok_or_else(|| UnitError::NotANumber(text.to_string()))?;
        if unit.is_empty() {
            return Err(UnitError::NotANumber(text.to_string()));
        }
        let (dim, scale, offset) = lookup_unit(unit).ok_or_else(|| UnitError::UnknownUnit {
            text: text.to_string(),
            unit: unit.to_string(),
        })?;
        let value = number * scale + offset;
        if !value.is_finite() {
            return Err(UnitError::OutOfBounds {
                text: text.to_string(),
                why: format!(
                    "is out of range: in {} it is not a finite number",
                    dim.unit()
                ),
            });
        }
        Ok(Quantity { value, dim })
    }

    /// Parse and require a dimension.
    pub fn parse_as(text: &str, expected: Dimension) -> Result<f64, UnitError> {
        if let Some((_, unit)) = split_number(text) {
            if unit.is_empty() {
                return Err(UnitError::MissingUnit {
                    text: text.trim().to_string(),
                    expected,
                });
            }
        }
        let q = Quantity::parse(text)?;
        if q.dim != expected {
            return Err(UnitError::WrongDimension {
                text: text.to_string(),
                found: q.dim,
                expected,
            });
        }
        Ok(q.value)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_si(f, self.value, self.dim)
    }
}

/// Write a value in its dimension's unit with a sensible number of digits.
pub fn format_si(f: &mut impl fmt::Write, value: f64, dim: Dimension) -> fmt::Result {
    match dim {
        Dimension::Voltage if value.abs() < 1.0 && value != 0.0 => {
            write!(f, "{:.1} mV", value * 1e3)
        }
        Dimension::Voltage => write!(f, "{value:.4} V"),
        // Below a second in ms, below a millisecond in µs, each to as many decimals as it
        // needs (at most 3 and 2): a 0.25 ms limit must not print as `0 ms`.
        Dimension::Time if value.abs() < 1e-3 && value != 0.0 => {
            write!(f, "{} µs", trimmed(value * 1e6, 2))
        }
        Dimension::Time if value.abs() < 1.0 && value != 0.0 => {
            write!(f, "{} ms", trimmed(value * 1e3, 3))
        }
        Dimension::Time => write!(f, "{value:.3} s"),
        Dimension::VoltageRate => write!(f, "{:.2} mV/s", value * 1e3),
        _ => write!(f, "{value:.4} {}", dim.unit()),
    }
}

/// `x` to `decimals` places without trailing zeros (`0.500` -> `0.5`, `250.00` -> `250`).
fn trimmed(x: f64, decimals: usize) -> String {
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Format a value of a dimension as text.
pub fn display(value: f64, dim: Dimension) -> String {
    let mut s = String::new();
    let _ = format_si(&mut s, value, dim);
    s
}

macro_rules! typed_quantity {
    ($(#[$doc:meta])* $name:ident, $dim:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
        pub struct $name(pub f64);

        impl $name {
            /// The dimension this type holds.
            pub const DIM: Dimension = $dim;
            /// Value in SI base units.
            pub fn si(self) -> f64 {
                self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = QuantityText::deserialize(d)?;
                Quantity::parse_as(&text.0, $dim)
                    .and_then(|v| check_bounds(v, $dim, &text.0))
                    .map($name)
                    .map_err(serde::de::Error::custom)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&display(self.0, $dim))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                format_si(f, self.0, $dim)
            }
        }
    };
}

/// Accepts a YAML string or a bare number (so "3.65" gets the "no unit" error, not a type error).
struct QuantityText(String);

impl<'de> Deserialize<'de> for QuantityText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = QuantityText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity with a unit, such as \"3.65 V\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<QuantityText, E> {
                Ok(QuantityText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<QuantityText, E> {
                Ok(QuantityText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<QuantityText, E> {
                Ok(QuantityText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<QuantityText, E> {
                Ok(QuantityText(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// The longest duration a file may give (one day): longer ones are typing slips (`1e12 s`)
/// that would hang a virtual-time run or overflow a timer.
pub const MAX_DURATION_S: f64 = 86_400.0;

/// Every value in a file is finite; durations are also not negative and at most a day.
fn check_bounds(v: f64, dim: Dimension, text: &str) -> Result<f64, UnitError> {
    let problem = if !v.is_finite() {
        Some("is not a finite number".to_string())
    } else if dim == Dimension::Time && v < 0.0 {
        Some("is negative; a duration is 0 s or more".to_string())
    } else if dim == Dimension::Time && v > MAX_DURATION_S {
        Some(format!(
            "is longer than {} h, the longest duration hilrig accepts",
            MAX_DURATION_S / 3600.0
        ))
    } else {
        None
    };
    match problem {
        Some(why) => Err(UnitError::OutOfBounds {
            text: text.trim().to_string(),
            why,
        }),
        None => Ok(v),
    }
}

typed_quantity!(
    /// A voltage in volts.
    Volts, Dimension::Voltage);
typed_quantity!(
    /// A current in amperes.
    Amps, Dimension::Current);
typed_quantity!(
    /// A resistance in ohms.
    Ohms, Dimension::Resistance);
typed_quantity!(
    /// A temperature in °C.
    Celsius, Dimension::Temperature);
typed_quantity!(
    /// A duration in seconds.
    Seconds, Dimension::Time);
typed_quantity!(
    /// A voltage rate in volts per second.
    VoltsPerSecond, Dimension::VoltageRate);
typed_quantity!(
    /// An energy in watt-hours.
    WattHours, Dimension::Energy);

impl Seconds {
    /// As a std Duration (negative values clamp to zero).
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0.max(0.0))
    }
}

/// Format a value given its SI unit symbol (as stored in results).
pub fn display_unit(value: f64, unit: &str) -> String {
    match unit {
        "V" => display(value, Dimension::Voltage),
        "s" => display(value, Dimension::Time),
        "A" => display(value, Dimension::Current),
        "°C" => display(value, Dimension::Temperature),
        _ => format!("{value} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0.5, "500 ms")]
    #[case(0.00025, "250 µs")]
    #[case(0.0005, "500 µs")]
    #[case(0.00025013, "250.13 µs")]
    #[case(0.0015, "1.5 ms")]
    #[case(0.15, "150 ms")]
    #[case(0.1234567, "123.457 ms")]
    #[case(-0.002, "-2 ms")]
    #[case(2.0, "2.000 s")]
    #[case(0.0, "0.000 s")]
    fn times_below_a_second_keep_their_digits(#[case] value: f64, #[case] text: &str) {
        assert_eq!(display(value, Dimension::Time), text);
    }

    #[rstest]
    #[case("3.65 V", 3.65, Dimension::Voltage)]
    #[case("3650 mV", 3.65, Dimension::Voltage)]
    #[case("10 mV/s", 0.01, Dimension::VoltageRate)]
    #[case("2 s", 2.0, Dimension::Time)]
    #[case("500ms", 0.5, Dimension::Time)]
    #[case("1.5 min", 90.0, Dimension::Time)]
    #[case("45 °C", 45.0, Dimension::Temperature)]
    #[case("-20 degC", -20.0, Dimension::Temperature)]
    #[case("300 K", 26.85, Dimension::Temperature)]
    #[case("6 °C/min", 0.1, Dimension::TemperatureRate)]
    #[case("10 kOhm", 10_000.0, Dimension::Resistance)]
    #[case("40 kWh", 40_000.0, Dimension::Energy)]
    #[case("1e-3 A", 0.001, Dimension::Current)]
    #[case("+2.5 A", 2.5, Dimension::Current)]
    fn parses(#[case] text: &str, #[case] value: f64, #[case] dim: Dimension) {
        let q = Quantity::parse(text).unwrap();
        assert_eq!(q.dim, dim);
        assert!((q.value - value).abs() < 1e-9, "{text} -> {}", q.value);
    }

    #[rstest]
    #[case("3.65", Dimension::Voltage, "has no unit")]
    #[case("3.65 V", Dimension::Time, "is a voltage, but a duration is expected")]
    #[case("3.65 furlongs", Dimension::Voltage, "not a known unit")]
    #[case("fast", Dimension::Time, "not a quantity")]
    #[case("", Dimension::Time, "not a quantity")]
    #[case("NaN V", Dimension::Voltage, "not a quantity")]
    fn rejects(#[case] text: &str, #[case] dim: Dimension, #[case] msg: &str) {
        let err = Quantity::parse_as(text, dim).unwrap_err().to_string();
        assert!(err.contains(msg), "{err}");
    }

    #[test]
    fn typed_quantities_round_trip_through_yaml() {
        #[derive(Deserialize, Serialize)]
        struct S {
            v: Volts,
            t: Seconds,
        }
        let s: S = serde_saphyr::from_str("v: 3650 mV\nt: 2 s\n").unwrap();
        assert_eq!(s.v, Volts(3.65));
        assert_eq!(s.t.duration(), std::time::Duration::from_secs(2));
        let err = serde_saphyr::from_str::<S>("v: 3.65\nt: 2 s\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("has no unit"), "{err}");
    }

    #[rstest]
    #[case::seconds("30 s", Ok(30.0))]
    #[case::minutes("10 min", Ok(600.0))]
    #[case::milliseconds("250ms", Ok(0.25))]
    #[case::zero("0 s", Ok(0.0))]
    #[case::bare_number("30", Err("unit"))]
    #[case::negative("-1 s", Err("negative"))]
    #[case::huge("1e300 s", Err("too long"))]
    #[case::not_time("5 V", Err("a duration is expected"))]
    fn durations_have_one_syntax(#[case] text: &str, #[case] want: Result<f64, &str>) {
        match (parse_duration(text), want) {
            (Ok(d), Ok(s)) => assert_eq!(d.as_secs_f64(), s, "{text}"),
            (Err(e), Err(part)) => assert!(e.contains(part), "{text}: {e}"),
            (got, want) => panic!("{text}: {got:?}, expected {want:?}"),
        }
    }
}

//! Dialects: what one instrument family's SCPI looks like, as data read from YAML.
//!
//! The shipped dialects live in `rig/dialects/*.yaml` and are compiled in; a lab adds a
//! model with [`Dialect::from_yaml`] without recompiling.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::reply::{format_setting, parse_quantity};
use super::ScpiError;

/// The dialect files shipped with hilrig, as `(id, yaml)`.
const BUILTIN: &[(&str, &str)] = &[
    ("ea-psb", include_str!("../../rig/dialects/ea-psb.yaml")),
    (
        "rigol-dl3000",
        include_str!("../../rig/dialects/rigol-dl3000.yaml"),
    ),
];

/// What an instrument is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A programmable DC supply (charger side).
    Supply,
    /// An electronic load (discharge side).
    Load,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Supply => "supply",
            Role::Load => "load",
        })
    }
}

/// How the instrument writes booleans in replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoolFormat {
    /// `1` / `0`.
    OneZero,
    /// `ON` / `OFF`.
    OnOff,
}

/// How the instrument writes numbers in replies (the client reads all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberFormat {
    /// `+4.800000E+01`.
    Nr3,
    /// `48.000`.
    Nr2,
    /// `48.00 V`.
    WithUnits,
}

/// A SCPI dialect: addressing, command templates, reply formats, ranges and accuracy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dialect {
    /// Short name used in rig files (`ea-psb`).
    pub id: String,
    /// Maker as it appears in the first `*IDN?` field (matched case-insensitively, as a substring).
    pub maker: String,
    /// Model as it appears in the second `*IDN?` field (matched case-insensitively, as a substring).
    pub model: String,
    /// Supply or load.
    pub role: Role,
    /// Raw-socket TCP port used when an address gives none.
    pub default_port: u16,
    /// Message terminator (`"\n"`).
    #[serde(default = "default_terminator")]
    pub terminator: String,
    /// Least time between two commands (`10 ms`).
    #[serde(default, deserialize_with = "de_duration")]
    pub inter_command_delay: Duration,
    /// Query that reads one error-queue entry.
    #[serde(default = "default_error_query")]
    pub error_query: String,
    /// Commands sent (and error-checked) right after connecting: clear, remote/lock, mode.
    #[serde(default)]
    pub on_connect: Vec<String>,
    /// The instrument refuses settings until a `SYST:LOCK` from `on_connect` has been sent.
    #[serde(default)]
    pub settings_require_lock: bool,
    /// Command templates; `{v}` is the value, `{ch}` the channel number.
    pub commands: Commands,
    /// Reply formats.
    pub replies: Replies,
    /// Largest settings the instrument accepts.
    pub ranges: Ranges,
    /// Accuracy of settings and readings.
    pub accuracy: Accuracy,
    /// Hardware I/O watchdog, if the model has one.
    #[serde(default)]
    pub watchdog: Option<Watchdog>,
    /// Where this dialect was read from (`builtin:ea-psb` or a file path).
    #[serde(skip)]
    pub origin: String,
}

/// Command templates. For loads, `input_on`/`input_off`/`input_query` may be written instead
/// of the `output_*` names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    /// Set the output voltage: `SOUR:VOLT {v}`.
    pub set_voltage: Option<String>,
    /// Set the current (supply limit or load sink setpoint): `SOUR:CURR {v}`.
    pub set_current: Option<String>,
    /// Enable the output or input: `OUTP ON`.
    #[serde(alias = "input_on")]
    pub output_on: Option<String>,
    /// Disable the output or input: `OUTP OFF`.
    #[serde(alias = "input_off")]
    pub output_off: Option<String>,
    /// Query the output or input state: `OUTP?`.
    #[serde(alias = "input_query")]
    pub output_query: Option<String>,
    /// Measure the terminal voltage: `MEAS:VOLT?`.
    pub measure_voltage: Option<String>,
    /// Measure the current: `MEAS:CURR?`.
    pub measure_current: Option<String>,
    /// Measure several quantities in one reply (`MEAS:ARR?`); positions in `replies.measure_all`.
    pub measure_all: Option<String>,
    /// Program over-voltage protection: `SOUR:VOLT:PROT {v}`.
    pub set_ovp: Option<String>,
    /// Program over-current protection: `SOUR:CURR:PROT {v}`.
    pub set_ocp: Option<String>,
    /// Clear a latched protection trip.
    pub clear_protection: Option<String>,
}

/// Reply formats.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replies {
    /// Boolean replies (`on_off` or `one_zero`).
    pub boolean: BoolFormat,
    /// Number replies (`nr3`, `nr2` or `with_units`).
    pub number: NumberFormat,
    /// Field positions in the `measure_all` reply.
    #[serde(default)]
    pub measure_all: Option<MeasureFields>,
}

/// Zero-based field positions in a multi-quantity measure reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureFields {
    /// Position of the voltage.
    pub voltage: usize,
    /// Position of the current.
    pub current: usize,
}

/// Largest settings the instrument accepts.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ranges {
    /// Highest voltage (`80 V`).
    #[serde(deserialize_with = "de_volts")]
    pub max_voltage: f64,
    /// Highest current (`60 A`).
    #[serde(deserialize_with = "de_amps")]
    pub max_current: f64,
}

/// Accuracy of one quantity: `gain * |value| + offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccuracySpec {
    /// Fraction of the reading or setting (0.001 = 0.1 %).
    pub gain: f64,
    /// Absolute part, in the quantity's unit.
    pub offset: f64,
}

impl AccuracySpec {
    /// The bound on the error of `value`.
    pub fn uncertainty(&self, value: f64) -> f64 {
        self.gain * value.abs() + self.offset
    }
}

/// Accuracy of setting and of measuring one quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantityAccuracy {
    /// Accuracy of the programmed value (None: the instrument does not set this quantity).
    pub set: Option<AccuracySpec>,
    /// Accuracy of the readback.
    pub measure: AccuracySpec,
}

/// Accuracy of voltage and current.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accuracy {
    /// Voltage accuracy (offsets in volts).
    #[serde(deserialize_with = "de_voltage_accuracy")]
    pub voltage: QuantityAccuracy,
    /// Current accuracy (offsets in amperes).
    #[serde(deserialize_with = "de_current_accuracy")]
    pub current: QuantityAccuracy,
}

/// Hardware I/O watchdog commands (the output switches off when the host goes quiet).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watchdog {
    /// Commands that arm it; `{v}` is the delay in seconds.
    pub arm: Vec<String>,
    /// Commands that disarm it.
    pub disarm: Vec<String>,
}

fn default_terminator() -> String {
    "\n".into()
}

fn default_error_query() -> String {
    super::client::DEFAULT_ERROR_QUERY.into()
}

impl Dialect {
    /// Read a dialect from YAML text; `origin` (a path or `builtin:<id>`) appears in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ScpiError> {
        let mut dialect: Dialect =
            serde_saphyr::from_str(text).map_err(|e| ScpiError::Dialect {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        dialect.origin = origin.to_string();
        dialect.validate().map_err(|message| ScpiError::Dialect {
            origin: origin.to_string(),
            message,
        })?;
        Ok(dialect)
    }

    /// Check what serde cannot: templates, placeholders and per-role required commands.
    fn validate(&self) -> Result<(), String> {
        if self.id.trim().is_empty() {
            return Err("`id` is empty; give the dialect a short name such as `ea-psb`".into());
        }
        if self.terminator.is_empty() {
            return Err("`terminator` is empty; instruments on a socket use \"\\n\"".into());
        }
        if self.ranges.max_voltage <= 0.0 || self.ranges.max_current <= 0.0 {
            return Err("`ranges.max_voltage` and `ranges.max_current` must be above zero".into());
        }
        let c = &self.commands;
        let mut required: Vec<(&str, &Option<String>)> = vec![
            ("set_current", &c.set_current),
            ("output_on", &c.output_on),
            ("output_off", &c.output_off),
            ("output_query", &c.output_query),
        ];
        if self.role == Role::Supply {
            required.push(("set_voltage", &c.set_voltage));
        }
        for (name, template) in required {
            if template.is_none() {
                return Err(format!(
                    "`commands.{name}` is missing; a {} needs it",
                    self.role
                ));
            }
        }
        if c.measure_all.is_none() && (c.measure_voltage.is_none() || c.measure_current.is_none()) {
            return Err(
                "give `commands.measure_all` or both `commands.measure_voltage` and `commands.measure_current`".into(),
            );
        }
        if c.measure_all.is_some() && self.replies.measure_all.is_none() {
            return Err(
                "`commands.measure_all` needs `replies.measure_all: {voltage: N, current: M}`"
                    .into(),
            );
        }
        for (name, template) in self.templates() {
            let takes_value = matches!(name, "set_voltage" | "set_current" | "set_ovp" | "set_ocp");
            check_template(&format!("commands.{name}"), template, takes_value)?;
        }
        for (i, command) in self.on_connect.iter().enumerate() {
            check_template(&format!("on_connect[{i}]"), command, false)?;
        }
        if let Some(w) = &self.watchdog {
            for (i, command) in w.arm.iter().enumerate() {
                check_template(
                    &format!("watchdog.arm[{i}]"),
                    command,
                    command.contains("{v}"),
                )?;
            }
            for (i, command) in w.disarm.iter().enumerate() {
                check_template(&format!("watchdog.disarm[{i}]"), command, false)?;
            }
        }
        Ok(())
    }

    /// Every command template present, with its field name.
    pub fn templates(&self) -> Vec<(&'static str, &str)> {
        let c = &self.commands;
        [
            ("set_voltage", &c.set_voltage),
            ("set_current", &c.set_current),
            ("output_on", &c.output_on),
            ("output_off", &c.output_off),
            ("output_query", &c.output_query),
            ("measure_voltage", &c.measure_voltage),
            ("measure_current", &c.measure_current),
            ("measure_all", &c.measure_all),
            ("set_ovp", &c.set_ovp),
            ("set_ocp", &c.set_ocp),
            ("clear_protection", &c.clear_protection),
        ]
        .into_iter()
        .filter_map(|(name, t)| t.as_deref().map(|t| (name, t)))
        .collect()
    }

    /// Does an `*IDN?` reply name this dialect's maker and model?
    pub fn matches_identity(&self, idn: &str) -> bool {
        let norm = |s: &str| {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_lowercase()
        };
        let mut fields = idn.split(',');
        let maker = norm(fields.next().unwrap_or(""));
        let model = norm(fields.next().unwrap_or(""));
        maker.contains(&norm(&self.maker)) && model.contains(&norm(&self.model))
    }

    /// The client options this dialect asks for, with the given timeout.
    pub fn client_options(&self, timeout: Duration) -> super::ClientOptions {
        super::ClientOptions {
            timeout,
            terminator: self.terminator.clone(),
            inter_command_delay: self.inter_command_delay,
        }
    }
}

/// Fill a command template: `{v}` with `value` (fixed-point), `{ch}` with `channel`.
pub fn render(template: &str, value: Option<f64>, channel: u32) -> String {
    let mut text = template.replace("{ch}", &channel.to_string());
    if let Some(v) = value {
        text = text.replace("{v}", &format_setting(v));
    }
    text
}

fn check_template(name: &str, template: &str, takes_value: bool) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err(format!("`{name}` is empty"));
    }
    if template.contains(['\n', '\r']) {
        return Err(format!(
            "`{name}` contains a line break; one command per entry"
        ));
    }
    let rest = template.replace("{v}", "").replace("{ch}", "");
    if rest.contains(['{', '}']) {
        return Err(format!(
            "`{name}`: `{template}` has an unknown placeholder; only {{v}} and {{ch}} exist"
        ));
    }
    if takes_value && !template.contains("{v}") {
        return Err(format!(
            "`{name}`: `{template}` needs a {{v}} where the value goes"
        ));
    }
    if !takes_value && template.contains("{v}") {
        return Err(format!(
            "`{name}`: `{template}` takes no value; remove {{v}}"
        ));
    }
    Ok(())
}

/// The shipped dialect with this id.
pub fn builtin_dialect(id: &str) -> Option<Dialect> {
    BUILTIN
        .iter()
        .find(|(builtin_id, _)| *builtin_id == id)
        .and_then(|(id, text)| Dialect::from_yaml(text, &format!("builtin:{id}")).ok())
}

/// All shipped dialects.
pub fn builtin_dialects() -> Vec<Dialect> {
    BUILTIN
        .iter()
        .filter_map(|(id, _)| builtin_dialect(id))
        .collect()
}

/// A YAML scalar that may be a number or text.
enum Scalar {
    Number(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a quantity such as `80 V`")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// A non-negative number, either bare or with `unit` (SI prefixes allowed: `80 mV`).
fn quantity<E: de::Error>(scalar: Scalar, unit: &str) -> Result<f64, E> {
    let value = match scalar {
        Scalar::Number(v) => v,
        Scalar::Text(text) => parse_quantity(&text, Some(unit)).map_err(E::custom)?.value,
    };
    if !value.is_finite() || value < 0.0 {
        return Err(E::custom(format!(
            "expected a value of zero or more {unit}, got {value}"
        )));
    }
    Ok(value)
}

fn de_volts<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    quantity(Scalar::deserialize(d)?, "V")
}

fn de_amps<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    quantity(Scalar::deserialize(d)?, "A")
}

/// A fraction: `0.001` or `0.1 %`.
fn fraction<E: de::Error>(scalar: Scalar) -> Result<f64, E> {
    let value = match scalar {
        Scalar::Number(v) => v,
        Scalar::Text(text) => match text.trim().strip_suffix('%') {
            Some(percent) => percent
                .trim()
                .parse::<f64>()
                .map(|p| p / 100.0)
                .map_err(|_| E::custom(format!("`{text}` is not a percentage such as `0.1 %`")))?,
            None => text.trim().parse::<f64>().map_err(|_| {
                E::custom(format!(
                    "`{text}` is not a fraction such as `0.001` or `0.1 %`"
                ))
            })?,
        },
    };
    if !value.is_finite() || value < 0.0 {
        return Err(E::custom(format!(
            "expected a fraction of zero or more, got {value}"
        )));
    }
    Ok(value)
}

/// A duration: `10 ms`, `0.5 s`, `200 us`, or a bare number of seconds.
fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let seconds = match Scalar::deserialize(d)? {
        Scalar::Number(v) => v,
        Scalar::Text(text) => {
            let t = text.trim();
            let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
            let (number, unit) = t.split_at(split);
            let scale = match unit.trim() {
                "s" | "" => 1.0,
                "ms" => 1e-3,
                "us" | "µs" => 1e-6,
                _ => {
                    return Err(de::Error::custom(format!(
                        "`{t}` is not a duration such as `10 ms` or `1 s`"
                    )))
                }
            };
            number
                .trim()
                .parse::<f64>()
                .map(|n| n * scale)
                .map_err(|_| {
                    de::Error::custom(format!("`{t}` is not a duration such as `10 ms` or `1 s`"))
                })?
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        de::Error::custom(format!(
            "expected a duration of zero or more, got {seconds} s"
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    gain: Scalar,
    offset: Scalar,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuantityAccuracy {
    #[serde(default)]
    set: Option<RawSpec>,
    measure: RawSpec,
}

fn quantity_accuracy<'de, D: Deserializer<'de>>(
    d: D,
    unit: &str,
) -> Result<QuantityAccuracy, D::Error> {
    let raw = RawQuantityAccuracy::deserialize(d)?;
    let spec = |raw: RawSpec| -> Result<AccuracySpec, D::Error> {
        Ok(AccuracySpec {
            gain: fraction(raw.gain)?,
            offset: quantity(raw.offset, unit)?,
        })
    };
    Ok(QuantityAccuracy {
        set: raw.set.map(spec).transpose()?,
        measure: spec(raw.measure)?,
    })
}

fn de_voltage_accuracy<'de, D: Deserializer<'de>>(d: D) -> Result<QuantityAccuracy, D::Error> {
    quantity_accuracy(d, "V")
}

fn de_current_accuracy<'de, D: Deserializer<'de>>(d: D) -> Result<QuantityAccuracy, D::Error> {
    quantity_accuracy(d, "A")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn every_builtin_dialect_loads() {
        for (id, text) in BUILTIN {
            let dialect = Dialect::from_yaml(text, &format!("builtin:{id}")).unwrap();
            assert_eq!(dialect.id, *id);
        }
        assert_eq!(builtin_dialects().len(), BUILTIN.len());
        assert!(builtin_dialect("no-such-model").is_none());
    }

    #[test]
    fn ea_psb_is_read_with_units() {
        let d = builtin_dialect("ea-psb").unwrap();
        assert_eq!(d.role, Role::Supply);
        assert_eq!(d.default_port, 5025);
        assert_eq!((d.ranges.max_voltage, d.ranges.max_current), (80.0, 60.0));
        assert!(d.settings_require_lock);
        assert!(d.on_connect.iter().any(|c| c == "SYST:LOCK 1"));
        assert_eq!(d.replies.number, NumberFormat::WithUnits);
        assert_eq!(
            d.replies.measure_all,
            Some(MeasureFields {
                voltage: 0,
                current: 1
            })
        );
        assert!(d.watchdog.is_none());
        assert_eq!(d.origin, "builtin:ea-psb");
    }

    #[test]
    fn rigol_dl3000_is_a_load_on_port_5555() {
        let d = builtin_dialect("rigol-dl3000").unwrap();
        assert_eq!(d.role, Role::Load);
        assert_eq!(d.default_port, 5555);
        assert_eq!((d.ranges.max_voltage, d.ranges.max_current), (150.0, 40.0));
        assert_eq!(d.commands.output_on.as_deref(), Some(":SOUR:INP:STAT ON"));
        assert!(d.on_connect.iter().any(|c| c == ":SOUR:FUNC CURR"));
        assert_eq!(d.inter_command_delay, Duration::from_millis(10));
        assert!(d.accuracy.voltage.set.is_none());
    }

    #[rstest]
    #[case(
        "EA Elektro-Automatik GmbH & Co. KG,PSB 9080-60 DT,2080460001,V2.12",
        "ea-psb",
        true
    )]
    #[case("ea elektro-automatik,psb  9080-60,1,2", "ea-psb", true)]
    #[case("EA Elektro-Automatik,PSB 9200-210,1,2", "ea-psb", false)]
    #[case(
        "RIGOL TECHNOLOGIES,DL3021A,DL3A204800001,00.01.02.00.01",
        "rigol-dl3000",
        true
    )]
    #[case("RIGOL TECHNOLOGIES,DP832,DP8C0001,00.01.14", "rigol-dl3000", false)]
    #[case("", "rigol-dl3000", false)]
    fn identity_matching(#[case] idn: &str, #[case] id: &str, #[case] matches: bool) {
        assert_eq!(builtin_dialect(id).unwrap().matches_identity(idn), matches);
    }

    #[test]
    fn accuracy_is_gain_plus_offset() {
        let spec = AccuracySpec {
            gain: 0.001,
            offset: 0.08,
        };
        assert!((spec.uncertainty(-50.0) - 0.13).abs() < 1e-12);
    }

    #[rstest]
    #[case("SOUR:VOLT {v}", Some(58.4), 1, "SOUR:VOLT 58.4")]
    #[case("VOLT {v},(@{ch})", Some(5.0), 2, "VOLT 5,(@2)")]
    #[case(":OUTP CH{ch},ON", None, 3, ":OUTP CH3,ON")]
    fn renders_templates(
        #[case] template: &str,
        #[case] v: Option<f64>,
        #[case] ch: u32,
        #[case] text: &str,
    ) {
        assert_eq!(render(template, v, ch), text);
    }

    const MINIMAL: &str = r#"
id: lab-supply
maker: ACME
model: PS-1
role: supply
default_port: 5025
inter_command_delay: 5 ms
commands:
  set_voltage: "VOLT {v}"
  set_current: "CURR {v}"
  output_on: "OUTP 1"
  output_off: "OUTP 0"
  output_query: "OUTP?"
  measure_voltage: "MEAS:VOLT?"
  measure_current: "MEAS:CURR?"
replies: {boolean: one_zero, number: nr3}
ranges: {max_voltage: 30, max_current: 3 A}
accuracy:
  voltage: {measure: {gain: 0.05 %, offset: 10 mV}}
  current: {measure: {gain: 0.001, offset: 0.002}}
"#;

    #[test]
    fn a_lab_dialect_loads_from_text() {
        let d = Dialect::from_yaml(MINIMAL, "rig/dialects/lab-supply.yaml").unwrap();
        assert_eq!(d.terminator, "\n");
        assert_eq!(d.error_query, "SYST:ERR?");
        assert_eq!(d.inter_command_delay, Duration::from_millis(5));
        assert_eq!(d.ranges.max_current, 3.0);
        assert!((d.accuracy.voltage.measure.gain - 0.0005).abs() < 1e-12);
        assert!((d.accuracy.voltage.measure.offset - 0.010).abs() < 1e-12);
        assert_eq!(d.origin, "rig/dialects/lab-supply.yaml");
    }

    #[rstest]
    #[case("set_voltage: \"VOLT {v}\"", "set_voltage: \"VOLT 5\"", "needs a {v}")]
    #[case("output_on: \"OUTP 1\"", "output_on: \"OUTP {v}\"", "takes no value")]
    #[case(
        "output_on: \"OUTP 1\"",
        "output_on: \"OUTP {x}\"",
        "unknown placeholder"
    )]
    #[case("  output_query: \"OUTP?\"\n", "", "output_query` is missing")]
    #[case("role: supply", "role: chamber", "role")]
    #[case("max_current: 3 A", "max_current: 3 V", "expected a value in A")]
    #[case("default_port: 5025", "default_port: 5025\nwatchdgo: null", "watchdgo")]
    #[case(
        "inter_command_delay: 5 ms",
        "inter_command_delay: 5 parsecs",
        "not a duration"
    )]
    fn bad_dialects_say_what_is_wrong(
        #[case] from: &str,
        #[case] to: &str,
        #[case] expected: &str,
    ) {
        let text = MINIMAL.replace(from, to);
        assert_ne!(text, MINIMAL, "test case does not change the text");
        let error = Dialect::from_yaml(&text, "lab.yaml").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("lab.yaml"), "{message}");
        assert!(message.contains(expected), "{message}");
    }
}

//! Oscilloscope dialects: how a scope family spells the commands of one triggered, single
//! acquisition and the waveform transfer, with the ranges every setting is checked against
//! before it is sent.
//!
//! A scope is not a supply or a load: it has no output to switch and no setpoint the
//! envelope bounds, so its dialect is its own shape (`role: scope`), read from the same
//! `rig/dialects/` directory. Templates take `{ch}` (the input channel), `{v}` (a number)
//! and `{slope}` (the word from `slopes:`).

use serde::Deserialize;

use super::yaml::de_names;
use super::{default_error_query, default_terminator, render, Role};
use crate::scpi::waveform::YScaling;
use crate::scpi::ScpiError;

/// The scope dialects shipped with hilrig, as `(id, yaml)`.
const BUILTIN: &[(&str, &str)] = &[
    (
        "rigol-ds1000z",
        include_str!("../../../rig/dialects/rigol-ds1000z.yaml"),
    ),
    (
        "keysight-infiniivision",
        include_str!("../../../rig/dialects/keysight-infiniivision.yaml"),
    ),
];

/// Which formula turns the preamble's y fields into values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalingFamily {
    /// Rigol DS1000Z.
    Rigol,
    /// Keysight InfiniiVision.
    Keysight,
}

impl ScalingFamily {
    /// The waveform scaling of this family.
    pub fn y_scaling(self) -> YScaling {
        match self {
            ScalingFamily::Rigol => YScaling::Rigol,
            ScalingFamily::Keysight => YScaling::Keysight,
        }
    }
}

/// Command templates of a scope.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeCommands {
    /// Vertical scale of a channel, in volts per division at the input.
    pub channel_scale: String,
    /// Vertical offset of a channel, in volts.
    pub channel_offset: String,
    /// Time base scale, seconds per division.
    pub timebase_scale: String,
    /// Time from the trigger to the screen centre, in seconds.
    pub timebase_offset: String,
    /// Edge trigger source.
    pub trigger_source: String,
    /// Edge trigger slope (`{slope}`).
    pub trigger_slope: String,
    /// Edge trigger level, in volts at the input.
    pub trigger_level: String,
    /// Start one acquisition that stops after its trigger.
    pub single: String,
    /// Query whether the single acquisition is complete (replies in `acquired`).
    pub trigger_status: String,
    /// Waveform source channel.
    pub waveform_source: String,
    /// Waveform mode (the raw acquisition memory).
    pub waveform_mode: String,
    /// Waveform format (BYTE).
    pub waveform_format: String,
    /// Number of points read.
    pub waveform_points: String,
    /// The ten-field preamble query.
    pub preamble: String,
    /// The data query (an IEEE 488.2 block).
    pub data: String,
}

/// The words of the two edge slopes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slopes {
    /// Rising edge.
    pub rising: String,
    /// Falling edge.
    pub falling: String,
}

/// A closed range of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span<T> {
    /// Smallest accepted.
    pub min: T,
    /// Largest accepted.
    pub max: T,
}

/// What a scope accepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRanges {
    /// Analog input channels, numbered from 1.
    pub channels: u32,
    /// Vertical scale, volts per division at the input.
    #[serde(deserialize_with = "de_volt_span")]
    pub channel_scale: Span<f64>,
    /// Time base scale, seconds per division.
    #[serde(deserialize_with = "de_second_span")]
    pub timebase_scale: Span<f64>,
    /// Largest time offset either side of the trigger, in seconds.
    #[serde(deserialize_with = "de_seconds")]
    pub timebase_offset: f64,
    /// Trigger level at most this many vertical divisions from the screen centre.
    pub trigger_level_divisions: f64,
    /// Most points one waveform read returns.
    pub max_points: usize,
}

/// Timing properties that enter a trip time's budget.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeTiming {
    /// Time base accuracy in parts per million.
    pub timebase_ppm: f64,
    /// Time resolution of the trigger point in seconds (absent: one sample interval).
    #[serde(default, deserialize_with = "de_opt_seconds")]
    pub trigger_resolution: Option<f64>,
}

/// An oscilloscope dialect.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeDialect {
    /// Short name used in rig files (`rigol-ds1000z`).
    pub id: String,
    /// Makers as in the first `*IDN?` field (any of them, as a substring, any case).
    #[serde(deserialize_with = "de_names")]
    pub maker: Vec<String>,
    /// Models as in the second `*IDN?` field.
    #[serde(deserialize_with = "de_names")]
    pub model: Vec<String>,
    /// Always `scope`.
    pub role: Role,
    /// Raw-socket TCP port used when an address gives none.
    pub default_port: u16,
    /// Message terminator.
    #[serde(default = "default_terminator")]
    pub terminator: String,
    /// Query that reads one error-queue entry.
    #[serde(default = "default_error_query")]
    pub error_query: String,
    /// Commands sent (and error-checked) right after connecting.
    #[serde(default)]
    pub on_connect: Vec<String>,
    /// How waveform codes are scaled.
    pub scaling: ScalingFamily,
    /// Horizontal divisions on the screen (the record spans this many time-base divisions).
    pub horizontal_divisions: u32,
    /// Command templates.
    pub commands: ScopeCommands,
    /// Slope words.
    pub slopes: Slopes,
    /// Replies of `trigger_status` that mean the single acquisition is complete.
    pub acquired: Vec<String>,
    /// Ranges every setting is checked against before it is sent.
    pub ranges: ScopeRanges,
    /// Timing properties for the budget.
    pub timing: ScopeTiming,
    /// Where this dialect was read from.
    #[serde(skip)]
    pub origin: String,
}

fn quantity<E: serde::de::Error>(text: &str, unit: &str) -> Result<f64, E> {
    crate::units::parse_quantity(text, Some(unit))
        .map(|q| q.value)
        .map_err(E::custom)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpan {
    min: String,
    max: String,
}

fn de_span<'de, D: serde::Deserializer<'de>>(d: D, unit: &str) -> Result<Span<f64>, D::Error> {
    let raw = RawSpan::deserialize(d)?;
    Ok(Span {
        min: quantity::<D::Error>(&raw.min, unit)?,
        max: quantity::<D::Error>(&raw.max, unit)?,
    })
}

fn de_volt_span<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Span<f64>, D::Error> {
    de_span(d, "V")
}

fn de_second_span<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Span<f64>, D::Error> {
    de_span(d, "s")
}

/// Seconds written with a unit (`5 ns`, `1 s`).
fn de_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    quantity::<D::Error>(&String::deserialize(d)?, "s")
}

fn de_opt_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    de_seconds(d).map(Some)
}

/// A setting of a scope that is outside the dialect's range: what, the value, the range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what} {value} is outside {range} of dialect `{dialect}`; nothing was sent")]
pub struct ScopeRangeError {
    /// Dialect id.
    pub dialect: String,
    /// Which setting.
    pub what: &'static str,
    /// The value.
    pub value: String,
    /// The accepted range, in words.
    pub range: String,
}

impl ScopeDialect {
    /// Read a scope dialect from YAML text; `origin` appears in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ScpiError> {
        let bad = |message: String| ScpiError::Dialect {
            origin: origin.to_string(),
            message,
        };
        let mut d: ScopeDialect = serde_saphyr::from_str(text).map_err(|e| bad(e.to_string()))?;
        d.origin = origin.to_string();
        d.validate().map_err(bad)?;
        Ok(d)
    }

    fn validate(&self) -> Result<(), String> {
        if self.role != Role::Scope {
            return Err(format!(
                "`role: {}`: an oscilloscope dialect has `role: scope`",
                self.role
            ));
        }
        if self.maker.is_empty() || self.model.is_empty() {
            return Err("`maker` and `model` need at least one name each".into());
        }
        let r = &self.ranges;
        if r.channels == 0 || r.max_points == 0 || self.horizontal_divisions == 0 {
            return Err(
                "`ranges.channels`, `ranges.max_points` and `horizontal_divisions` must be \
                 above zero"
                    .into(),
            );
        }
        if !(r.channel_scale.min > 0.0 && r.channel_scale.min <= r.channel_scale.max) {
            return Err("`ranges.channel_scale` needs 0 < min <= max".into());
        }
        if !(r.timebase_scale.min > 0.0 && r.timebase_scale.min <= r.timebase_scale.max) {
            return Err("`ranges.timebase_scale` needs 0 < min <= max".into());
        }
        if r.trigger_level_divisions.is_nan() || r.trigger_level_divisions <= 0.0 {
            return Err("`ranges.trigger_level_divisions` must be above zero".into());
        }
        if self.acquired.is_empty() {
            return Err(
                "`acquired` is empty: give the trigger-status replies that mean done".into(),
            );
        }
        if self.timing.timebase_ppm.is_nan() || self.timing.timebase_ppm < 0.0 {
            return Err("`timing.timebase_ppm` must be zero or more".into());
        }
        let c = &self.commands;
        for (name, t, query) in [
            ("trigger_status", &c.trigger_status, true),
            ("preamble", &c.preamble, true),
            ("data", &c.data, true),
            ("single", &c.single, false),
        ] {
            if super::is_query(t) != query {
                return Err(format!(
                    "`commands.{name}` (`{t}`) {} a query",
                    if query { "must be" } else { "must not be" }
                ));
            }
        }
        for (name, t) in [
            ("channel_scale", &c.channel_scale),
            ("channel_offset", &c.channel_offset),
            ("timebase_scale", &c.timebase_scale),
            ("timebase_offset", &c.timebase_offset),
            ("trigger_level", &c.trigger_level),
            ("waveform_points", &c.waveform_points),
        ] {
            if !t.contains("{v}") {
                return Err(format!("`commands.{name}` (`{t}`) has no `{{v}}`"));
            }
        }
        if !c.trigger_slope.contains("{slope}") {
            return Err("`commands.trigger_slope` has no `{slope}`".into());
        }
        Ok(())
    }

    /// Does an `*IDN?` reply name one of this dialect's makers and models?
    pub fn matches_identity(&self, idn: &str) -> bool {
        super::identity_matches(&self.maker, &self.model, idn)
    }

    /// Whether a `trigger_status` reply means the single acquisition is complete.
    pub fn is_acquired(&self, reply: &str) -> bool {
        let r = reply.trim().trim_matches('"');
        self.acquired.iter().any(|a| a.eq_ignore_ascii_case(r))
    }

    fn out_of_range(&self, what: &'static str, value: String, range: String) -> ScopeRangeError {
        ScopeRangeError {
            dialect: self.id.clone(),
            what,
            value,
            range,
        }
    }

    /// Check an input channel number.
    pub fn check_channel(&self, ch: u32) -> Result<(), ScopeRangeError> {
        if (1..=self.ranges.channels).contains(&ch) {
            Ok(())
        } else {
            Err(self.out_of_range(
                "channel",
                ch.to_string(),
                format!("1..={}", self.ranges.channels),
            ))
        }
    }

    /// Check a vertical scale (V/div at the input).
    pub fn check_channel_scale(&self, v: f64) -> Result<(), ScopeRangeError> {
        let s = self.ranges.channel_scale;
        within(v, s.min, s.max).map_err(|_| {
            self.out_of_range(
                "vertical scale (V/div)",
                format!("{v}"),
                format!("{}..={} V/div", s.min, s.max),
            )
        })
    }

    /// Check a time base scale (s/div).
    pub fn check_timebase_scale(&self, s: f64) -> Result<(), ScopeRangeError> {
        let r = self.ranges.timebase_scale;
        within(s, r.min, r.max).map_err(|_| {
            self.out_of_range(
                "time base scale (s/div)",
                format!("{s}"),
                format!("{}..={} s/div", r.min, r.max),
            )
        })
    }

    /// Check a time offset (s from the trigger to the screen centre).
    pub fn check_timebase_offset(&self, s: f64) -> Result<(), ScopeRangeError> {
        let m = self.ranges.timebase_offset;
        within(s, -m, m)
            .map_err(|_| self.out_of_range("time offset (s)", format!("{s}"), format!("±{m} s")))
    }

    /// Check a trigger level (V at the input) against the vertical scale and offset.
    pub fn check_trigger_level(
        &self,
        level: f64,
        scale: f64,
        offset: f64,
    ) -> Result<(), ScopeRangeError> {
        let half = self.ranges.trigger_level_divisions * scale;
        within(level, -half - offset, half - offset).map_err(|_| {
            self.out_of_range(
                "trigger level (V)",
                format!("{level}"),
                format!(
                    "±{} divisions of {scale} V/div around the offset {offset} V",
                    self.ranges.trigger_level_divisions
                ),
            )
        })
    }

    /// Check a number of points.
    pub fn check_points(&self, n: usize) -> Result<(), ScopeRangeError> {
        if (1..=self.ranges.max_points).contains(&n) {
            Ok(())
        } else {
            Err(self.out_of_range(
                "waveform points",
                n.to_string(),
                format!("1..={}", self.ranges.max_points),
            ))
        }
    }

    /// Fill a template: `{ch}`, `{v}` and `{slope}`.
    pub fn render(&self, template: &str, value: Option<f64>, ch: u32, rising: bool) -> String {
        let slope = if rising {
            &self.slopes.rising
        } else {
            &self.slopes.falling
        };
        render(template, value, ch).replace("{slope}", slope)
    }
}

fn within(v: f64, min: f64, max: f64) -> Result<(), ()> {
    // Each bound with a relative slack, so that a bound written with rounding still holds
    // and a small bound (5 ns) is not swamped by a large one (50 s).
    if v.is_finite() && v >= min - 1e-9 * min.abs() && v <= max + 1e-9 * max.abs() {
        Ok(())
    } else {
        Err(())
    }
}

/// The shipped scope dialect with this id.
pub fn builtin_scope_dialect(id: &str) -> Option<ScopeDialect> {
    BUILTIN
        .iter()
        .find(|(builtin_id, _)| *builtin_id == id)
        .and_then(|(id, text)| ScopeDialect::from_yaml(text, &format!("builtin:{id}")).ok())
}

/// All shipped scope dialects.
pub fn builtin_scope_dialects() -> Vec<ScopeDialect> {
    BUILTIN
        .iter()
        .filter_map(|(id, _)| builtin_scope_dialect(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn every_shipped_scope_dialect_loads() {
        for (id, text) in BUILTIN {
            let d = ScopeDialect::from_yaml(text, id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(d.id, *id);
        }
        assert_eq!(builtin_scope_dialects().len(), BUILTIN.len());
    }

    #[rstest]
    #[case::channel_zero("channel", 0.0)]
    #[case::channel_five("channel", 5.0)]
    #[case::scale_too_fine("scale", 1e-4)]
    #[case::scale_too_coarse("scale", 20.0)]
    #[case::timebase_too_fast("timebase", 1e-9)]
    #[case::offset_too_far("offset", 2.0)]
    #[case::level_off_screen("level", 3.0)]
    #[case::too_many_points("points", 300_000.0)]
    #[case::nan_scale("scale", f64::NAN)]
    fn refuses_settings_outside_the_ranges(#[case] what: &str, #[case] v: f64) {
        let d = builtin_scope_dialect("rigol-ds1000z").unwrap();
        let r = match what {
            "channel" => d.check_channel(v as u32),
            "scale" => d.check_channel_scale(v),
            "timebase" => d.check_timebase_scale(v),
            "offset" => d.check_timebase_offset(v),
            "level" => d.check_trigger_level(v, 0.5, 0.0),
            _ => d.check_points(v as usize),
        };
        let e = r.unwrap_err();
        assert!(e.to_string().contains("rigol-ds1000z"), "{e}");
    }

    #[test]
    fn accepts_settings_inside_the_ranges() {
        let d = builtin_scope_dialect("rigol-ds1000z").unwrap();
        d.check_channel(1).unwrap();
        d.check_channel_scale(0.5).unwrap();
        d.check_timebase_scale(200e-6).unwrap();
        d.check_timebase_offset(-1e-3).unwrap();
        d.check_trigger_level(0.9, 0.5, 0.0).unwrap();
        d.check_points(2400).unwrap();
        assert_eq!(
            d.render(&d.commands.trigger_slope, None, 1, true),
            ":TRIGger:EDGE:SLOPe POSitive"
        );
        assert!(d.is_acquired("STOP\n"));
        assert!(!d.is_acquired("WAIT"));
        assert!(d.matches_identity("RIGOL TECHNOLOGIES,DS1104Z,DS1ZA1,00.04.04"));
    }

    #[rstest]
    #[case::not_a_scope("role: scope", "role: load", "role: scope")]
    #[case::data_not_a_query("data: \":WAVeform:DATA?\"", "data: \":WAVeform:DATA\"", "query")]
    #[case::no_acquired("acquired: [STOP]", "acquired: []", "acquired")]
    fn bad_scope_dialects_say_what_is_wrong(
        #[case] from: &str,
        #[case] to: &str,
        #[case] expected: &str,
    ) {
        let text = BUILTIN[0].1.replace(from, to);
        assert_ne!(text, BUILTIN[0].1);
        let e = ScopeDialect::from_yaml(&text, "x.yaml").unwrap_err();
        assert!(e.to_string().contains(expected), "{e}");
    }
}

//! Dialects: what one instrument family's SCPI looks like, as data read from YAML.
//!
//! The shipped dialects live in `rig/dialects/*.yaml` and are compiled in; a lab adds a
//! model with [`Dialect::from_yaml`] (or [`resolve_dialect`] with a file path) without
//! recompiling.
//!
//! A command template is one command (`"VOLT {v},(@{ch})"`), a list of commands sent in
//! order (`["INST:NSEL {ch}", "VOLT {v}"]`), or, for settings whose range decides the
//! commands, `{ranges: [{up_to: 4 A, send: [...]}, {up_to: 40 A, send: [...]}]}`: the first
//! range whose `up_to` is at least the value is used. `{v}` is the value and `{ch}` the
//! channel (the cell, on a cell simulator). In a query template the entries ending in `?`
//! are queries whose replies are read; the others are written first (channel selection).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::reply::format_setting;
use super::transport::Address;
use super::ScpiError;
use check::{check_template, check_template_set};
use yaml::{
    de_amps, de_current_accuracy, de_duration, de_names, de_opt_amps, de_opt_volts, de_template,
    de_voltage_accuracy, de_volts,
};

mod check;
pub mod scope;
pub mod switch;
mod yaml;

/// The dialect files shipped with hilrig, as `(id, yaml)`.
const BUILTIN: &[(&str, &str)] = &[
    ("ea-psb", include_str!("../../../rig/dialects/ea-psb.yaml")),
    (
        "rigol-dl3000",
        include_str!("../../../rig/dialects/rigol-dl3000.yaml"),
    ),
    (
        "keysight-e36300",
        include_str!("../../../rig/dialects/keysight-e36300.yaml"),
    ),
    (
        "keysight-n6700",
        include_str!("../../../rig/dialects/keysight-n6700.yaml"),
    ),
    (
        "keysight-rp7900",
        include_str!("../../../rig/dialects/keysight-rp7900.yaml"),
    ),
    (
        "rigol-dp800",
        include_str!("../../../rig/dialects/rigol-dp800.yaml"),
    ),
    (
        "rs-hmp4040",
        include_str!("../../../rig/dialects/rs-hmp4040.yaml"),
    ),
    (
        "rs-nge100",
        include_str!("../../../rig/dialects/rs-nge100.yaml"),
    ),
    (
        "siglent-sdl1000x",
        include_str!("../../../rig/dialects/siglent-sdl1000x.yaml"),
    ),
    (
        "chroma-63600",
        include_str!("../../../rig/dialects/chroma-63600.yaml"),
    ),
    (
        "bloomy-abs",
        include_str!("../../../rig/dialects/bloomy-abs.yaml"),
    ),
];

pub use crate::rig::Role;

/// Does an `*IDN?` reply name one of `makers` in its first field and one of `models` in
/// its second (as substrings, any case, runs of white space as one space)?
pub fn identity_matches(makers: &[String], models: &[String], idn: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
    };
    let mut fields = idn.split(',');
    let maker = norm(fields.next().unwrap_or(""));
    let model = norm(fields.next().unwrap_or(""));
    makers.iter().any(|m| maker.contains(&norm(m)))
        && models.iter().any(|m| model.contains(&norm(m)))
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
    /// `4.800000E+01`.
    Nr3,
    /// `+4.800000E+01` (sign always written, as Keysight does).
    Nr3Signed,
    /// `48.000` (decimals from `replies.decimals`, 3 unless given).
    Nr2,
    /// `48.00 V`.
    WithUnits,
}

/// How over-current protection works on this model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OcpKind {
    /// A programmable trip level (`commands.set_ocp` takes `{v}`).
    #[default]
    Level,
    /// The output trips when it reaches its current setting (Keysight `CURR:PROT:STAT`,
    /// R&S electronic fuse). Arming it would trip a supply that charges in constant current,
    /// so protection programming leaves it off: the envelope-checked current setting is
    /// the bound.
    AtCurrentLimit,
    /// No over-current protection.
    None,
}

/// Protection facts of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protection {
    /// How over-current protection works.
    #[serde(default)]
    pub ocp: OcpKind,
}

/// A SCPI dialect: addressing, command templates, reply formats, ranges and accuracy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dialect {
    /// Short name used in rig files (`ea-psb`).
    pub id: String,
    /// Makers as they appear in the first `*IDN?` field (any of them, case-insensitively, as
    /// a substring); a single name or a list. The first is the canonical one.
    #[serde(deserialize_with = "de_names")]
    pub maker: Vec<String>,
    /// Models as they appear in the second `*IDN?` field (any of them, as for `maker`).
    #[serde(deserialize_with = "de_names")]
    pub model: Vec<String>,
    /// Supply, load or cell simulator.
    pub role: Role,
    /// Raw-socket TCP port used when an address gives none.
    pub default_port: u16,
    /// Message terminator (`"\n"`).
    #[serde(default = "default_terminator")]
    pub terminator: String,
    /// What differs on a serial line (RS-232, RS-485, USB virtual COM port).
    #[serde(default)]
    pub serial: Option<SerialLine>,
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
    /// Largest settings the instrument accepts (over all channels).
    pub ranges: Ranges,
    /// The channels and their own ranges; empty: one channel, 1, with `ranges`.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Accuracy of settings and readings (of channel 1 unless a channel gives its own).
    pub accuracy: Accuracy,
    /// Protection facts.
    #[serde(default)]
    pub protection: Protection,
    /// Hardware I/O watchdog, if the model has one.
    #[serde(default)]
    pub watchdog: Option<Watchdog>,
    /// Where this dialect was read from (`builtin:ea-psb` or a file path).
    #[serde(skip)]
    pub origin: String,
}

/// What differs when the instrument is reached over a serial line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialLine {
    /// Terminator on the serial line (`"\r\n"` where the model wants CR LF).
    #[serde(default)]
    pub terminator: Option<String>,
    /// Baud rate when the address gives none.
    #[serde(default)]
    pub baud: Option<u32>,
}

/// One output (supply), input (load) or cell (cell simulator) of a multi-channel model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Channel number as the instrument counts (`{ch}` in templates).
    pub number: u32,
    /// Highest voltage of this channel.
    #[serde(deserialize_with = "de_volts")]
    pub max_voltage: f64,
    /// Highest current of this channel.
    #[serde(deserialize_with = "de_amps")]
    pub max_current: f64,
    /// Highest over-voltage protection level the channel accepts (default: `max_voltage`).
    #[serde(default, deserialize_with = "de_opt_volts")]
    pub max_ovp: Option<f64>,
    /// Highest over-current protection level the channel accepts (default: `max_current`).
    #[serde(default, deserialize_with = "de_opt_amps")]
    pub max_ocp: Option<f64>,
    /// Smallest voltage step the channel programs.
    #[serde(default, deserialize_with = "de_opt_volts")]
    pub voltage_resolution: Option<f64>,
    /// Smallest current step the channel programs.
    #[serde(default, deserialize_with = "de_opt_amps")]
    pub current_resolution: Option<f64>,
    /// Accuracy of this channel, when it differs from the dialect's.
    #[serde(default)]
    pub accuracy: Option<Accuracy>,
}

/// One or more commands for one operation; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Commands sent in order (empty when `ranges` decide).
    pub steps: Vec<String>,
    /// Commands by value: the first range with `up_to >= value` is used.
    pub ranges: Vec<RangedSteps>,
}

/// The commands for values up to a limit.
#[derive(Debug, Clone, PartialEq)]
pub struct RangedSteps {
    /// Highest value for these commands.
    pub up_to: f64,
    /// Commands sent in order.
    pub steps: Vec<String>,
}

impl Template {
    /// A template of one command.
    pub fn one(command: &str) -> Self {
        Template {
            steps: vec![command.to_string()],
            ranges: Vec::new(),
        }
    }

    /// The unrendered commands used for `value` (the highest range when above them all).
    pub fn steps_for(&self, value: Option<f64>) -> &[String] {
        if self.ranges.is_empty() {
            return &self.steps;
        }
        let chosen = value.and_then(|v| self.ranges.iter().find(|r| v <= r.up_to));
        match chosen.or(self.ranges.last()) {
            Some(range) => &range.steps,
            None => &self.steps,
        }
    }

    /// The commands to send for `value` on `channel`, filled in.
    pub fn render(&self, value: Option<f64>, channel: u32) -> Vec<String> {
        self.steps_for(value)
            .iter()
            .map(|step| render(step, value, channel))
            .collect()
    }

    /// Every command of every range.
    pub fn all_steps(&self) -> impl Iterator<Item = &String> {
        self.steps
            .iter()
            .chain(self.ranges.iter().flat_map(|r| r.steps.iter()))
    }
}

/// Whether a command is a query (its header ends in `?`).
pub fn is_query(command: &str) -> bool {
    command
        .split_whitespace()
        .next()
        .is_some_and(|header| header.ends_with('?'))
}

/// Command templates. For loads, `input_on`/`input_off`/`input_query` may be written instead
/// of the `output_*` names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    /// Set the output voltage (the cell voltage on a cell simulator): `SOUR:VOLT {v}`.
    #[serde(default, deserialize_with = "de_template")]
    pub set_voltage: Option<Template>,
    /// Set the current (supply limit or load sink setpoint): `SOUR:CURR {v}`.
    #[serde(default, deserialize_with = "de_template")]
    pub set_current: Option<Template>,
    /// Enable the output or input: `OUTP ON`.
    #[serde(default, alias = "input_on", deserialize_with = "de_template")]
    pub output_on: Option<Template>,
    /// Disable the output or input: `OUTP OFF`.
    #[serde(default, alias = "input_off", deserialize_with = "de_template")]
    pub output_off: Option<Template>,
    /// Query the output or input state: `OUTP?`; with several queries, on only when all say on.
    #[serde(default, alias = "input_query", deserialize_with = "de_template")]
    pub output_query: Option<Template>,
    /// Measure the terminal voltage: `MEAS:VOLT?`.
    #[serde(default, deserialize_with = "de_template")]
    pub measure_voltage: Option<Template>,
    /// Measure the current: `MEAS:CURR?`.
    #[serde(default, deserialize_with = "de_template")]
    pub measure_current: Option<Template>,
    /// Measure several quantities in one reply (`MEAS:ARR?`); positions in `replies.measure_all`.
    #[serde(default, deserialize_with = "de_template")]
    pub measure_all: Option<Template>,
    /// Program over-voltage protection: `SOUR:VOLT:PROT {v}`.
    #[serde(default, deserialize_with = "de_template")]
    pub set_ovp: Option<Template>,
    /// Program over-current protection: `SOUR:CURR:PROT {v}`.
    #[serde(default, deserialize_with = "de_template")]
    pub set_ocp: Option<Template>,
    /// Clear a latched protection trip.
    #[serde(default, deserialize_with = "de_template")]
    pub clear_protection: Option<Template>,
    /// Whether a protection has tripped; with several queries, tripped when any says so.
    #[serde(default, deserialize_with = "de_template")]
    pub protection_query: Option<Template>,
    /// Cell simulator: highest current the cell may source: `SOUR{ch}:CURR:SRC {v}`.
    #[serde(default, deserialize_with = "de_template")]
    pub set_source_limit: Option<Template>,
    /// Cell simulator: highest current the cell may sink: `SOUR{ch}:CURR:SNK {v}`.
    #[serde(default, deserialize_with = "de_template")]
    pub set_sink_limit: Option<Template>,
    /// Cell simulator: remove an injected fault.
    #[serde(default, deserialize_with = "de_template")]
    pub fault_none: Option<Template>,
    /// Cell simulator: open the cell (broken sense wire).
    #[serde(default, deserialize_with = "de_template")]
    pub fault_open: Option<Template>,
    /// Cell simulator: short the cell.
    #[serde(default, deserialize_with = "de_template")]
    pub fault_short: Option<Template>,
    /// Cell simulator: reverse the cell's polarity.
    #[serde(default, deserialize_with = "de_template")]
    pub fault_polarity: Option<Template>,
}

/// Reply formats.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replies {
    /// Boolean replies (`on_off` or `one_zero`).
    pub boolean: BoolFormat,
    /// Number replies (`nr3`, `nr3_signed`, `nr2` or `with_units`).
    pub number: NumberFormat,
    /// Decimals of `nr2` and `with_units` numbers.
    #[serde(default)]
    pub decimals: Option<u8>,
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
    /// Highest over-voltage protection level (default: `max_voltage`).
    #[serde(default, deserialize_with = "de_opt_volts")]
    pub max_ovp: Option<f64>,
    /// Highest over-current protection level (default: `max_current`).
    #[serde(default, deserialize_with = "de_opt_amps")]
    pub max_ocp: Option<f64>,
    /// Smallest voltage step programmed.
    #[serde(default, deserialize_with = "de_opt_volts")]
    pub voltage_resolution: Option<f64>,
    /// Smallest current step programmed.
    #[serde(default, deserialize_with = "de_opt_amps")]
    pub current_resolution: Option<f64>,
}

impl Ranges {
    /// The highest OVP level this range accepts: `max_ovp`, else `max_voltage`.
    pub fn ovp_ceiling(&self) -> f64 {
        self.max_ovp.unwrap_or(self.max_voltage)
    }

    /// The highest OCP level this range accepts: `max_ocp`, else `max_current`.
    pub fn ocp_ceiling(&self) -> f64 {
        self.max_ocp.unwrap_or(self.max_current)
    }
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
    /// Commands that arm it; `{v}` is the delay in whole seconds.
    pub arm: Vec<String>,
    /// Commands that disarm it.
    pub disarm: Vec<String>,
    /// Shortest delay the model accepts.
    #[serde(default = "default_min_delay", deserialize_with = "de_duration")]
    pub min_delay: Duration,
    /// Longest delay the model accepts.
    #[serde(default = "default_max_delay", deserialize_with = "de_duration")]
    pub max_delay: Duration,
}

impl Watchdog {
    /// The delay to program for `timeout`: whole seconds, rounded up, within the model's range.
    pub fn delay_for(&self, timeout: Duration) -> Duration {
        let whole = Duration::from_secs(timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0));
        whole.clamp(self.min_delay, self.max_delay.max(self.min_delay))
    }
}

fn default_min_delay() -> Duration {
    Duration::from_secs(1)
}

fn default_max_delay() -> Duration {
    Duration::from_secs(3600)
}

pub(super) fn default_terminator() -> String {
    "\n".into()
}

pub(super) fn default_error_query() -> String {
    super::client::DEFAULT_ERROR_QUERY.into()
}

/// The template names that take a value (`{v}`).
const VALUE_TEMPLATES: &[&str] = &[
    "set_voltage",
    "set_current",
    "set_ovp",
    "set_ocp",
    "set_source_limit",
    "set_sink_limit",
];

/// The template names that are queries.
const QUERY_TEMPLATES: &[&str] = &[
    "output_query",
    "measure_voltage",
    "measure_current",
    "measure_all",
    "protection_query",
];

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

    /// Read a dialect file (a lab's own model).
    pub fn from_file(path: &Path) -> Result<Self, ScpiError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScpiError::Dialect {
            origin: origin.clone(),
            message: format!("cannot read it: {e}"),
        })?;
        Self::from_yaml(&text, &origin)
    }

    /// Check what serde cannot: templates, placeholders, channels and per-role commands.
    fn validate(&self) -> Result<(), String> {
        if self.id.trim().is_empty() {
            return Err("`id` is empty; give the dialect a short name such as `ea-psb`".into());
        }
        if self.maker.is_empty() || self.model.is_empty() {
            return Err("`maker` and `model` need at least one name each".into());
        }
        if self.terminator.is_empty() {
            return Err("`terminator` is empty; instruments on a socket use \"\\n\"".into());
        }
        if let Some(t) = self.serial.as_ref().and_then(|s| s.terminator.as_deref()) {
            if t.is_empty() {
                return Err("`serial.terminator` is empty; use \"\\n\" or \"\\r\\n\"".into());
            }
        }
        if self.ranges.max_voltage <= 0.0 || self.ranges.max_current <= 0.0 {
            return Err("`ranges.max_voltage` and `ranges.max_current` must be above zero".into());
        }
        let mut seen = Vec::new();
        for ch in &self.channels {
            if ch.number == 0 || seen.contains(&ch.number) {
                return Err(format!(
                    "`channels`: channel number {} is zero or given twice",
                    ch.number
                ));
            }
            seen.push(ch.number);
            if ch.max_voltage > self.ranges.max_voltage * (1.0 + 1e-9)
                || ch.max_current > self.ranges.max_current * (1.0 + 1e-9)
            {
                return Err(format!(
                    "`channels`: channel {} goes beyond `ranges`; `ranges` is the largest of all \
                     channels",
                    ch.number
                ));
            }
        }
        let c = &self.commands;
        let mut required: Vec<(&str, &Option<Template>)> = vec![
            ("output_on", &c.output_on),
            ("output_off", &c.output_off),
            ("output_query", &c.output_query),
        ];
        match self.role {
            Role::Supply => {
                required.push(("set_voltage", &c.set_voltage));
                required.push(("set_current", &c.set_current));
            }
            Role::Load => required.push(("set_current", &c.set_current)),
            Role::CellSim => required.push(("set_voltage", &c.set_voltage)),
            Role::Chamber | Role::Scope | Role::Short => {
                return Err(format!(
                    "`role: {}`: this dialect shape is for a supply, a load or a cell \
                     simulator (a scope's or a switch's dialect has its own fields)",
                    self.role
                ))
            }
        }
        for (name, template) in required {
            if template.is_none() {
                return Err(format!(
                    "`commands.{name}` is missing; a {} needs it",
                    self.role
                ));
            }
        }
        if self.role != Role::CellSim
            && c.measure_all.is_none()
            && (c.measure_voltage.is_none() || c.measure_current.is_none())
        {
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
            check_template_set(name, template)?;
        }
        if self.protection.ocp == OcpKind::AtCurrentLimit && c.set_ocp.is_some() {
            return Err(
                "`commands.set_ocp` sets a level, but `protection.ocp` is `at_current_limit`; \
                 remove one of them"
                    .into(),
            );
        }
        for (i, command) in self.on_connect.iter().enumerate() {
            check_template(&format!("on_connect[{i}]"), command, false)?;
        }
        if let Some(w) = &self.watchdog {
            if w.arm.is_empty() {
                return Err("`watchdog.arm` is empty; give the commands that arm it".into());
            }
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
            if w.min_delay > w.max_delay {
                return Err("`watchdog.min_delay` is above `watchdog.max_delay`".into());
            }
        }
        Ok(())
    }

    /// Every command template present, with its field name.
    pub fn templates(&self) -> Vec<(&'static str, &Template)> {
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
            ("protection_query", &c.protection_query),
            ("set_source_limit", &c.set_source_limit),
            ("set_sink_limit", &c.set_sink_limit),
            ("fault_none", &c.fault_none),
            ("fault_open", &c.fault_open),
            ("fault_short", &c.fault_short),
            ("fault_polarity", &c.fault_polarity),
        ]
        .into_iter()
        .filter_map(|(name, t)| t.as_ref().map(|t| (name, t)))
        .collect()
    }

    /// The channel numbers, in the order declared (`[1]` for a single-channel model).
    pub fn channel_numbers(&self) -> Vec<u32> {
        if self.channels.is_empty() {
            vec![1]
        } else {
            self.channels.iter().map(|c| c.number).collect()
        }
    }

    /// Ranges of one channel (None: the model has no such channel).
    pub fn channel_ranges(&self, channel: u32) -> Option<Ranges> {
        if self.channels.is_empty() {
            return (channel == 1).then_some(self.ranges);
        }
        self.channels
            .iter()
            .find(|c| c.number == channel)
            .map(|c| Ranges {
                max_voltage: c.max_voltage,
                max_current: c.max_current,
                max_ovp: c.max_ovp,
                max_ocp: c.max_ocp,
                voltage_resolution: c.voltage_resolution.or(self.ranges.voltage_resolution),
                current_resolution: c.current_resolution.or(self.ranges.current_resolution),
            })
    }

    /// This dialect narrowed to one channel: `ranges` and `accuracy` become that channel's.
    pub fn for_channel(&self, channel: u32) -> Option<Dialect> {
        let ranges = self.channel_ranges(channel)?;
        let mut narrowed = self.clone();
        narrowed.ranges = ranges;
        if let Some(accuracy) = self
            .channels
            .iter()
            .find(|c| c.number == channel)
            .and_then(|c| c.accuracy)
        {
            narrowed.accuracy = accuracy;
        }
        Some(narrowed)
    }

    /// Does an `*IDN?` reply name one of this dialect's makers and models?
    pub fn matches_identity(&self, idn: &str) -> bool {
        identity_matches(&self.maker, &self.model, idn)
    }

    /// The makers as text for messages: `HAMEG or Rohde&Schwarz`.
    pub fn maker_text(&self) -> String {
        self.maker.join(" or ")
    }

    /// The models as text for messages.
    pub fn model_text(&self) -> String {
        self.model.join(" or ")
    }

    /// The client options this dialect asks for, with the given timeout.
    pub fn client_options(&self, timeout: Duration) -> super::ClientOptions {
        super::ClientOptions {
            timeout,
            terminator: self.terminator.clone(),
            inter_command_delay: self.inter_command_delay,
        }
    }

    /// The client options for `address`: on a serial line, the serial terminator applies.
    pub fn client_options_for(&self, address: &Address, timeout: Duration) -> super::ClientOptions {
        let mut options = self.client_options(timeout);
        if address.is_serial() {
            if let Some(t) = self.serial.as_ref().and_then(|s| s.terminator.clone()) {
                options.terminator = t;
            }
        }
        options
    }

    /// The terminator used on a serial line.
    pub fn serial_terminator(&self) -> &str {
        self.serial
            .as_ref()
            .and_then(|s| s.terminator.as_deref())
            .unwrap_or(&self.terminator)
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

/// The dialect a rig names: a shipped id (`ea-psb`), or a YAML file path, relative to
/// `base` (the rig file's directory) unless absolute. A lab's own file wins over a
/// shipped dialect only when written as a path (`dialects/my-psu.yaml`).
pub fn resolve_dialect(name: &str, base: &Path) -> Result<Dialect, ScpiError> {
    if let Some(d) = builtin_dialect(name) {
        return Ok(d);
    }
    let looks_like_path = name.ends_with(".yaml") || name.ends_with(".yml") || name.contains('/');
    if looks_like_path {
        let path = Path::new(name);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        };
        return Dialect::from_file(&path);
    }
    let known: Vec<&str> = BUILTIN.iter().map(|(id, _)| *id).collect();
    Err(ScpiError::Dialect {
        origin: name.to_string(),
        message: format!(
            "no shipped dialect has this id; shipped: {}; or give the path of a dialect file \
             (e.g. dialects/my-supply.yaml, relative to the rig file)",
            known.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests;

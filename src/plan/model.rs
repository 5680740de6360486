//! Test plans and suites as written in YAML.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use super::condition::Condition;
use super::fixture::QuantityValue;
use crate::units::{Amps, Celsius, Dimension, Seconds, Volts};

/// A test plan file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Plan id, used in result names.
    pub plan: String,
    /// Human title.
    pub title: String,
    /// Requirement references, e.g. `IEC 62619:2022 8.2.2`.
    #[serde(default)]
    pub requirements: Vec<String>,
    /// DUT fixture path, relative to the plan file.
    pub dut: PathBuf,
    /// Limit profile: a name (looked up in `limits/` beside the fixture) or a path.
    pub limits: Spanned<String>,
    /// Parameters and their defaults; `${name}` in the plan is replaced by the value.
    /// A suite or `--param name=value` may override them.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// How many times `steps` run (setup and teardown run once).
    #[serde(default = "one")]
    pub repeat: u32,
    /// Steps before the tests.
    #[serde(default)]
    pub setup: Vec<Spanned<Step>>,
    /// The test steps.
    pub steps: Vec<Spanned<Step>>,
    /// Steps that always run at the end, even after a failure or abort.
    #[serde(default)]
    pub teardown: Vec<Spanned<Step>>,
    /// Firmware image id (from the firmware manifest) to flash and verify before the tests.
    #[serde(default)]
    pub firmware: Option<String>,
}

fn one() -> u32 {
    1
}

/// A suite file: plans run one after the other.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// Suite id.
    pub suite: String,
    /// Human title.
    pub title: String,
    /// The plans, in order.
    pub plans: Vec<SuiteEntry>,
    /// Firmware image id to flash and verify before the first plan (wins over the plans').
    #[serde(default)]
    pub firmware: Option<String>,
}

/// One plan of a suite, with its parameter overrides.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteEntry {
    /// Plan path, relative to the suite file.
    pub plan: PathBuf,
    /// Parameter overrides.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// On or off, as written `on`/`off` or `true`/`false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnOff(pub bool);

impl<'de> Deserialize<'de> for OnOff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = OnOff;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`on` or `off`")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<OnOff, E> {
                Ok(OnOff(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OnOff, E> {
                match v {
                    "on" | "ON" | "On" => Ok(OnOff(true)),
                    "off" | "OFF" | "Off" => Ok(OnOff(false)),
                    _ => Err(E::custom(format!("`{v}` is neither `on` nor `off`"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// What a stimulus or setpoint acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One cell's voltage on the cell simulator (1-based).
    Cell(u32),
    /// One temperature sensor on the cell simulator (1-based).
    Ntc(u32),
    /// The supply's current limit.
    SupplyCurrent,
    /// The supply's voltage.
    SupplyVoltage,
    /// The load's sink current.
    LoadCurrent,
    /// The rig's short-circuit switch (a `short` stimulus only; its quantity is the closed
    /// path's prospective current).
    Short,
}

impl Target {
    /// Parse `cell[5]` (or `cell 5`), `ntc[1]` (or `ntc 1`), `supply.current`,
    /// `supply.voltage`, `load.current`. (In a YAML flow mapping, `cell 5` needs no quotes.)
    pub fn parse(s: &str) -> Result<Target, String> {
        let s = s.trim();
        let indexed = |prefix: &str| -> Option<Result<u32, String>> {
            let after = s.strip_prefix(prefix)?;
            let rest = match after.strip_prefix('[') {
                Some(r) => r.strip_suffix(']')?,
                None => after.strip_prefix(' ')?.trim(),
            };
            Some(
                rest.parse::<u32>()
                    .map_err(|_| format!("`{rest}` in `{s}` is not a 1-based index")),
            )
        };
        match s {
            "supply.current" => Ok(Target::SupplyCurrent),
            "supply.voltage" => Ok(Target::SupplyVoltage),
            "load.current" => Ok(Target::LoadCurrent),
            _ => {
                if let Some(n) = indexed("cell") {
                    return n.map(Target::Cell);
                }
                if let Some(n) = indexed("ntc") {
                    return n.map(Target::Ntc);
                }
                Err(format!(
                    "`{s}` is not a stimulus target (known: cell[N] or cell N, ntc[N] or ntc N, supply.current, supply.voltage, load.current)"
                ))
            }
        }
    }

    /// The dimension of the target's setpoint.
    pub fn dimension(self) -> Dimension {
        match self {
            Target::Cell(_) | Target::SupplyVoltage => Dimension::Voltage,
            Target::Ntc(_) => Dimension::Temperature,
            Target::SupplyCurrent | Target::LoadCurrent | Target::Short => Dimension::Current,
        }
    }

    /// The dimension of a rate of change of the setpoint.
    pub fn rate_dimension(self) -> Dimension {
        match self.dimension() {
            Dimension::Voltage => Dimension::VoltageRate,
            Dimension::Temperature => Dimension::TemperatureRate,
            _ => Dimension::CurrentRate,
        }
    }

    /// The trace channel of the setpoint.
    pub fn channel(self) -> String {
        match self {
            Target::Cell(n) => format!("cells.cell[{n}].v_set"),
            Target::Ntc(n) => format!("cells.ntc[{n}].t_set"),
            Target::SupplyCurrent => "supply.i_set".into(),
            Target::SupplyVoltage => "supply.v_set".into(),
            Target::LoadCurrent => "load.i_set".into(),
            Target::Short => "short.closed".into(),
        }
    }
}

impl Target {
    /// Check a setpoint for this target against the rig's envelope.
    pub fn check_envelope(
        self,
        env: &crate::rig::Envelope,
        value: f64,
    ) -> Result<(), crate::rig::EnvelopeViolation> {
        match self {
            Target::Cell(_) => env.check_cell_voltage(value),
            Target::Ntc(_) => env.check_temperature(value),
            Target::SupplyCurrent => env.check_supply_current(value),
            Target::SupplyVoltage => env.check_supply_voltage(value),
            Target::LoadCurrent => env.check_load_current(value),
            Target::Short => env.check_short_current(value),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Cell(n) => write!(f, "cell[{n}]"),
            Target::Ntc(n) => write!(f, "ntc[{n}]"),
            Target::SupplyCurrent => f.write_str("supply.current"),
            Target::SupplyVoltage => f.write_str("supply.voltage"),
            Target::LoadCurrent => f.write_str("load.current"),
            Target::Short => f.write_str("short"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("cell[5]", Ok(Target::Cell(5)))]
    #[case("cell 5", Ok(Target::Cell(5)))]
    #[case("ntc[2]", Ok(Target::Ntc(2)))]
    #[case(" ntc 3 ", Ok(Target::Ntc(3)))]
    #[case("supply.current", Ok(Target::SupplyCurrent))]
    #[case("load.current", Ok(Target::LoadCurrent))]
    #[case("cell[x]", Err("not a 1-based index"))]
    #[case("cel[5]", Err("not a stimulus target"))]
    #[case("cell[5", Err("not a stimulus target"))]
    fn targets(#[case] text: &str, #[case] expected: Result<Target, &str>) {
        match (Target::parse(text), expected) {
            (Ok(t), Ok(e)) => assert_eq!(t, e),
            (Err(msg), Err(e)) => assert!(msg.contains(e), "{msg}"),
            (got, want) => panic!("{text}: {got:?} vs {want:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Target::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One step of a plan.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Program the DC supply.
    Supply(SupplySet),
    /// Program the electronic load.
    Load(LoadSet),
    /// Set cell-simulator voltages.
    Cells(CellsSet),
    /// Set cell-simulator temperatures.
    Temperatures(TemperaturesSet),
    /// Send one state request to the BMS (a value-table name of the fixture's
    /// `state_request` signal, e.g. `standby` to reset latched faults); the cyclic run
    /// request continues afterwards.
    BmsRequest(Spanned<String>),
    /// Wait a fixed time.
    Wait(Seconds),
    /// Wait until a condition holds, or fail the run after the timeout.
    WaitFor(WaitFor),
    /// Ramp a setpoint without watching for a trip.
    Ramp(RampStimulus),
    /// A test: a condition holds now, or becomes true within a time, optionally for a window.
    Expect(Expect),
    /// A test: a signal's value judged against a limit.
    Measure(Measure),
    /// A test: drive a stimulus until the BMS trips, and judge threshold and timing.
    Trip(Box<Trip>),
    /// A test of the DUT fixture's declarations (no stimulus), e.g. declared energy vs a cap.
    Declaration(Declaration),
    /// Ask the operator (terminal or live page) and record the answers.
    Prompt(Prompt),
    /// Act as the inverter: switch the keep-alive, or judge an inverter check.
    Inverter(super::inverter::InverterStep),
    /// Start the state-of-charge reference, or compare the BMS's SOC with it as a test.
    Soc(SocStep),
}

impl Step {
    /// Short name of the step kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Supply(_) => "supply",
            Step::Load(_) => "load",
            Step::Cells(_) => "cells",
            Step::Temperatures(_) => "temperatures",
            Step::BmsRequest(_) => "bms_request",
            Step::Wait(_) => "wait",
            Step::WaitFor(_) => "wait_for",
            Step::Ramp(_) => "ramp",
            Step::Expect(_) => "expect",
            Step::Measure(_) => "measure",
            Step::Trip(_) => "trip",
            Step::Declaration(_) => "declaration",
            Step::Prompt(_) => "prompt",
            Step::Inverter(_) => "inverter",
            Step::Soc(_) => "soc",
        }
    }

    /// The name a test step reports under (before ` #N` of a repeat); `None` for a step
    /// that is no test. An `expect` without `name:` is `expect <condition>`.
    pub fn test_name(&self) -> Option<String> {
        match self {
            Step::Expect(x) => Some(x.test_name()),
            Step::Measure(m) => Some(m.name.clone()),
            Step::Declaration(d) => Some(d.name.clone()),
            Step::Trip(t) => Some(t.name.clone()),
            Step::Inverter(i) => i.test_name(),
            Step::Soc(x) => x.name.clone(),
            _ => None,
        }
    }

    /// The limit-profile criteria a test step judges (empty for a step that is no test).
    pub fn criteria(&self) -> Vec<&str> {
        match self {
            Step::Expect(x) => x.judge.iter().map(|j| j.value.as_str()).collect(),
            Step::Measure(m) => vec![m.judge.value.as_str()],
            Step::Declaration(d) => vec![d.judge.value.as_str()],
            Step::Trip(t) => t.judge.iter().map(|j| j.value.as_str()).collect(),
            Step::Inverter(i) => i.judge.iter().map(|j| j.value.as_str()).collect(),
            Step::Soc(x) => x.judge.iter().map(|j| j.value.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// A question to the operator: free text and named entries, each with an optional default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    /// What the operator reads (e.g. `Connect the harness, then scan the DUT's serial`).
    pub text: String,
    /// The values asked for; none asks for one acknowledgement, recorded as `answer`.
    #[serde(default)]
    pub entries: Vec<Spanned<PromptEntry>>,
    /// The default of every entry that declares none (and of the acknowledgement).
    pub default: Option<String>,
}

/// One value a prompt asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptEntry {
    /// The answer's name in the results (`dut_serial`).
    pub name: String,
    /// Taken when nobody can answer (no terminal, no live page) or the operator leaves it empty.
    pub default: Option<String>,
}

/// The name of a prompt's single answer when it declares no entries.
pub const PROMPT_ACKNOWLEDGE: &str = "answer";

impl Prompt {
    /// The entries asked for, each with its effective default (its own, else the prompt's).
    pub fn fields(&self) -> Vec<(String, Option<String>)> {
        if self.entries.is_empty() {
            return vec![(PROMPT_ACKNOWLEDGE.to_string(), self.default.clone())];
        }
        self.entries
            .iter()
            .map(|e| {
                let d = e.value.default.clone().or_else(|| self.default.clone());
                (e.value.name.clone(), d)
            })
            .collect()
    }
}

/// Supply settings; absent fields are left as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplySet {
    /// Voltage setpoint.
    pub voltage: Option<Volts>,
    /// Current limit.
    pub current: Option<Amps>,
    /// Output state.
    pub output: Option<OnOff>,
}

/// Load settings; absent fields are left as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSet {
    /// Sink current (constant-current mode).
    pub current: Option<Amps>,
    /// Input state.
    pub input: Option<OnOff>,
}

/// Cell-simulator voltages: `all: V`, or `cell: N` with `voltage: V`, or `release: all`
/// (every channel lets go and the pack's own cells are seen again).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellsSet {
    /// Every cell to this voltage.
    pub all: Option<Volts>,
    /// One cell (1-based) ...
    pub cell: Option<u32>,
    /// ... to this voltage.
    pub voltage: Option<Volts>,
    /// Hand the cells back to the pack (the simulator's channels let go).
    pub release: Option<ReleaseCells>,
}

/// Which cell-simulator channels a `cells: {release: ...}` lets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseCells {
    /// Every channel.
    All,
}

/// The state-of-charge reference: `start: rest` starts it (the pack at rest, SOC from the
/// fixture's OCV curve at the load's voltage reading); a step with `name` and `judge`
/// compares the BMS's reported SOC (`signal`, default `bms.soc`) with it as a test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocStep {
    /// Start the reference here.
    pub start: Option<SocStart>,
    /// Test name of a checkpoint.
    pub name: Option<String>,
    /// The BMS's SOC signal (default `bms.soc`).
    pub signal: Option<Spanned<String>>,
    /// A `soc_accuracy` criterion of the limit profile.
    pub judge: Option<Spanned<String>>,
}

/// The signal a SOC checkpoint reads unless it names one.
pub const DEFAULT_SOC_SIGNAL: &str = "bms.soc";

impl SocStep {
    /// The BMS's SOC signal it reads.
    pub fn signal(&self) -> &str {
        self.signal
            .as_ref()
            .map_or(DEFAULT_SOC_SIGNAL, |s| s.value.as_str())
    }
}

/// Where the SOC reference starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocStart {
    /// The pack at rest: its voltage through the declared OCV curve.
    Rest,
}

/// Cell-simulator temperatures: `all: T`, or `sensor: N` with `temperature: T`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperaturesSet {
    /// Every sensor to this temperature.
    pub all: Option<Celsius>,
    /// One sensor (1-based) ...
    pub sensor: Option<u32>,
    /// ... to this temperature.
    pub temperature: Option<Celsius>,
}

/// Wait for a condition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    /// The condition.
    pub until: Spanned<Condition>,
    /// Give up (and abort the run) after this long.
    pub timeout: Seconds,
}

/// An expectation, judged as a test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Test name (default: the condition).
    pub name: Option<String>,
    /// The condition.
    pub that: Spanned<Condition>,
    /// Wait up to this long for the condition to become true (default: it must hold now).
    pub within: Option<Seconds>,
    /// Once true, it must stay true this long.
    #[serde(rename = "for")]
    pub hold: Option<Seconds>,
    /// A `holds` criterion of the limit profile that this expectation evidences.
    pub judge: Option<Spanned<String>>,
}

impl Expect {
    /// Its test name: `name:`, else `expect <condition>`.
    pub fn test_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("expect {}", self.that.value))
    }
}

/// A measured value, judged as a test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// Test name.
    pub name: String,
    /// Logical signal to read.
    pub signal: Spanned<String>,
    /// Average the signal's updates over this window (default: its latest value).
    pub over: Option<Seconds>,
    /// A `range` criterion of the limit profile.
    pub judge: Spanned<String>,
}

/// A declaration check, judged as a test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// Test name.
    pub name: String,
    /// An `energy_cap` criterion of the limit profile.
    pub judge: Spanned<String>,
}

/// A trip test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trip {
    /// Test name (unique within the plan).
    pub name: String,
    /// Which declared protection this exercises (`ov`, `uv`, ...).
    pub protection: Spanned<String>,
    /// How the stimulus is driven.
    pub stimulus: Spanned<Stimulus>,
    /// The condition that means "the BMS acted".
    pub detect: Spanned<Condition>,
    /// Fail the test if nothing is detected within this time (per probe for bisection).
    pub timeout: Seconds,
    /// After the trip, bring the stimulus back and measure where the BMS releases.
    pub release: Option<Release>,
    /// Criteria of the limit profile to judge.
    pub judge: Vec<Spanned<String>>,
}

/// Stimulus methods.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stimulus {
    /// A linear ramp: measures the trip level and the trip time.
    Ramp(RampStimulus),
    /// A step from just below to just above: measures the trip time.
    Step(StepStimulus),
    /// Bisection of held steps: measures the trip level independently of the delay.
    Bisect(BisectStimulus),
    /// Closing the rig's short-circuit switch: measures the trip time on the scope.
    Short(ShortStimulus),
}

impl Stimulus {
    /// The target it acts on.
    pub fn target(&self) -> Target {
        match self {
            Stimulus::Ramp(r) => r.of,
            Stimulus::Step(s) => s.of,
            Stimulus::Bisect(b) => b.of,
            Stimulus::Short(_) => Target::Short,
        }
    }

    /// Whether it drives its target upwards (a short's current rises).
    pub fn rising(&self) -> bool {
        match self {
            Stimulus::Ramp(r) => r.to.0.value >= r.from.0.value,
            Stimulus::Step(s) => s.to.0.value >= s.from.0.value,
            Stimulus::Bisect(b) => b.trips.0.value >= b.no_trip.0.value,
            Stimulus::Short(_) => true,
        }
    }

    /// The method's name.
    pub fn method(&self) -> &'static str {
        match self {
            Stimulus::Ramp(_) => "ramp",
            Stimulus::Step(_) => "step",
            Stimulus::Bisect(_) => "bisect",
            Stimulus::Short(_) => "short",
        }
    }
}

/// A linear ramp of a setpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RampStimulus {
    /// What is ramped.
    pub of: Target,
    /// Start value.
    pub from: QuantityValue,
    /// End value (the ramp holds here until the timeout).
    pub to: QuantityValue,
    /// Rate of change (positive).
    pub rate: QuantityValue,
}

/// A step stimulus.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepStimulus {
    /// What is stepped.
    pub of: Target,
    /// Value just short of the trip level (held for `settle` first; must not trip).
    pub from: QuantityValue,
    /// Value just beyond the trip level.
    pub to: QuantityValue,
    /// How long `from` is held first (default: twice the declared delay).
    pub settle: Option<Seconds>,
    /// After the trip, step back to this value (beyond the declared release level) and wait
    /// for the release: the time it takes bounds the release delay that release levels read
    /// off a ramp back rest on.
    pub rest: Option<QuantityValue>,
}

impl StepStimulus {
    /// How long `from` is held first: `settle`, or twice the protection's declared delay
    /// (`declared_delay`, seconds).
    pub fn settle_or_twice(&self, declared_delay: f64) -> std::time::Duration {
        self.settle
            .map(|s| s.duration())
            .unwrap_or(std::time::Duration::from_secs_f64(2.0 * declared_delay))
    }
}

/// Closing the rig's short-circuit switch (`short: {}`): the pack's terminals through the
/// switch's declared path, for the front end's hardware short-circuit protection. The
/// switch is opened again once the scope's record is complete, or after the rig's
/// `max_closed`, whichever comes first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortStimulus {
    /// How long the bench is held as it is before the switch closes (default: 100 ms).
    pub settle: Option<Seconds>,
}

impl ShortStimulus {
    /// The settle time, or its default of 100 ms.
    pub fn settle(&self) -> std::time::Duration {
        self.settle
            .map(|s| s.duration())
            .unwrap_or(std::time::Duration::from_millis(100))
    }
}

/// A threshold search by bisection of held steps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BisectStimulus {
    /// What is stepped.
    pub of: Target,
    /// A value that does not trip.
    pub no_trip: QuantityValue,
    /// A value that trips.
    pub trips: QuantityValue,
    /// Stop when the bracket is this narrow.
    pub resolution: QuantityValue,
    /// Value between probes, where the BMS releases.
    pub rest: QuantityValue,
    /// How long each probe is held (default and minimum: twice the declared delay plus the
    /// detection path).
    pub hold: Option<Seconds>,
}

/// Bringing the stimulus back after a trip, to measure the release level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Ramp back towards this value.
    pub to: QuantityValue,
    /// At this rate (positive).
    pub rate: QuantityValue,
    /// The condition that means "the BMS released".
    pub detect: Spanned<Condition>,
    /// Give up after this long.
    pub timeout: Seconds,
}

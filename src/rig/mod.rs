//! The bench description: station, instruments, buses, debug probe, safety envelope,
//! calibration.
//!
//! A rig file names endpoints only. `simulation:` marks a rig whose instruments are served
//! by the built-in simulated bench; the command line starts that bench and replaces the
//! `sim://NAME` addresses by the real loopback endpoints before the runner sees the rig.

pub mod choice;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::units::{Amps, Celsius, Ohms, Seconds, Volts};

/// A rig file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rig {
    /// Station id, recorded in every result.
    pub station: String,
    /// Present when the simulated bench serves this rig.
    pub simulation: Option<Simulation>,
    /// Instruments.
    pub instruments: Vec<InstrumentConfig>,
    /// CAN buses.
    #[serde(default)]
    pub buses: Vec<BusConfig>,
    /// Modbus links (TCP or RTU) to the BMS's inverter-facing register map.
    #[serde(default)]
    pub modbus: Vec<ModbusLink>,
    /// The safety envelope no command may leave.
    pub envelope: Envelope,
    /// How often instruments are sampled into the trace.
    #[serde(default = "default_sample_period")]
    pub sample_period: Seconds,
    /// Calibration records: instrument serial -> due date (YYYY-MM-DD).
    #[serde(default)]
    pub calibration: BTreeMap<String, String>,
    /// The debug probe that flashes the BMS, when the bench has one.
    #[serde(default)]
    pub probe: Option<ProbeConfig>,
}

/// The debug probe wired to the BMS's debug header.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Which probe: `VID:PID` or `VID:PID:SERIAL` in hex (`hilrig probe list` prints them);
    /// absent: the only probe connected.
    pub selector: Option<String>,
    /// Chip name from probe-rs's target list (`STM32G474RETx`); absent: the image's `chip`.
    pub chip: Option<String>,
    /// Wire protocol (`swd` or `jtag`); absent: SWD.
    pub protocol: Option<ProbeProtocol>,
    /// Debug clock (`4 MHz`, `1000 kHz`); absent: the probe's default.
    pub speed: Option<ProbeSpeed>,
}

/// Debug wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeProtocol {
    /// Serial Wire Debug.
    Swd,
    /// JTAG.
    Jtag,
}

/// A debug clock frequency, written `4 MHz`, `400 kHz` or `4000000 Hz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpeed(u32);

impl ProbeSpeed {
    /// The frequency in kHz (at least 1).
    pub fn khz(self) -> u32 {
        self.0
    }

    /// Parse `4 MHz`, `400 kHz`, `4000000 Hz`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a frequency such as `4 MHz` or `400 kHz`"))?;
        let khz = match unit.trim() {
            "MHz" => value * 1000.0,
            "kHz" => value,
            "Hz" => value / 1000.0,
            _ => {
                return Err(format!(
                    "`{s}`: write the debug clock with a unit, such as `4 MHz` or `400 kHz`"
                ))
            }
        };
        if !(1.0..=1_000_000.0).contains(&khz) {
            return Err(format!("`{s}` is outside 1 kHz .. 1 GHz"));
        }
        Ok(Self(khz.round() as u32))
    }
}

impl<'de> Deserialize<'de> for ProbeSpeed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn default_sample_period() -> Seconds {
    Seconds(0.1)
}

/// What the simulated bench runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simulation {
    /// Firmware image for the simulated BMS, relative to the rig file.
    pub firmware: PathBuf,
    /// Cell chemistry of the simulated pack (default `lfp`).
    #[serde(default)]
    pub chemistry: PackChemistry,
    /// Initial state of charge of every simulated cell, in percent (default 50).
    #[serde(default = "half_charge")]
    pub soc: Percent,
    /// Room ambient of the simulated pack (default 25 °C).
    #[serde(default = "room_temperature")]
    pub ambient: Celsius,
    /// Faults the simulated bench injects from the start (default none), to exercise how
    /// a run and a suite end when the bench misbehaves.
    #[serde(default)]
    pub faults: Vec<SimulatedFault>,
}

/// A fault of the simulated bench a rig can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimulatedFault {
    /// Every simulated supply, once its output is on, ignores `OUTP OFF`: the safe state
    /// cannot be confirmed.
    SupplyOutputStuckOn,
}

/// Cell chemistries the simulated pack can model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackChemistry {
    /// Lithium iron phosphate.
    #[default]
    #[serde(alias = "LFP")]
    Lfp,
    /// Lithium nickel manganese cobalt oxide.
    #[serde(alias = "NMC")]
    Nmc,
}

/// A percentage from 0 to 100 (written as a plain number).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if (0.0..=100.0).contains(&v) {
            Ok(Percent(v))
        } else {
            Err(serde::de::Error::custom(format!(
                "{v} is not a percentage from 0 to 100"
            )))
        }
    }
}

fn half_charge() -> Percent {
    Percent(50.0)
}

fn room_temperature() -> Celsius {
    Celsius(25.0)
}

/// Instrument roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Programmable DC supply (charges the pack).
    Supply,
    /// Electronic load (discharges the pack).
    Load,
    /// Cell simulator.
    CellSim,
    /// Thermal chamber.
    Chamber,
    /// Oscilloscope on the pack current (times trips too fast for CAN).
    Scope,
    /// A switch unit's relay channel that closes a contactor across the pack terminals
    /// through a declared resistance: the short-circuit stimulus.
    Short,
}

impl Role {
    /// The role as written in rig files (`cell_sim`).
    pub fn key(self) -> &'static str {
        match self {
            Role::Supply => "supply",
            Role::Load => "load",
            Role::CellSim => "cell_sim",
            Role::Chamber => "chamber",
            Role::Scope => "scope",
            Role::Short => "short",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Supply => "supply",
            Role::Load => "load",
            Role::CellSim => "cell simulator",
            Role::Chamber => "chamber",
            Role::Scope => "scope",
            Role::Short => "short-circuit switch",
        })
    }
}

/// One instrument.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentConfig {
    /// Id used in plans and results.
    pub id: String,
    /// Role.
    pub role: Role,
    /// SCPI dialect id (SCPI instruments).
    pub dialect: Option<String>,
    /// Address such as `tcp://10.0.0.5:5025` (SCPI instruments).
    pub address: Option<String>,
    /// CAN bus id (CAN instruments).
    pub bus: Option<String>,
    /// Serial number, for the calibration record.
    pub serial: Option<String>,
    /// Query timeout.
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    /// CAN message mapping (cell simulators on CAN).
    pub mapping: Option<CellSimMapping>,
    /// Cell simulators over SCPI: the pack's cells before this unit's channel 1, so that a
    /// pack split over several units maps channel n to cell `cell_offset + n` (default 0).
    #[serde(default)]
    pub cell_offset: u32,
    /// Scopes: the input channel and the current probe on the pack lead.
    #[serde(default)]
    pub capture: Option<CaptureInput>,
    /// Short-circuit switches: the relay channel and the path it closes.
    #[serde(default)]
    pub short: Option<ShortPath>,
}

/// What a short-circuit switch closes: a contactor across the pack terminals, its coil
/// driven by one relay channel of the switch unit, through a path of declared resistance
/// (contactor, shunt or power resistor, leads). The rig opens it again after `max_closed`
/// whatever the BMS did; a real rig keeps a fuse in the path as the last line.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortPath {
    /// The switch unit's channel that drives the contactor (`101`: slot 1, channel 01).
    pub channel: u32,
    /// Total resistance of the closed path outside the pack.
    pub resistance: Ohms,
    /// Longest time the path may stay closed in one stimulus.
    pub max_closed: Seconds,
}

impl ShortPath {
    /// The current the closed path would carry at `pack_volts`, the pack's own resistance
    /// neglected (an upper bound, the figure the envelope is checked with).
    pub fn prospective_current(&self, pack_volts: f64) -> f64 {
        pack_volts / self.resistance.0
    }
}

/// Where a scope sees the pack current: its input channel and the current probe's
/// sensitivity. The probe points into the load, so discharge current reads positive.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureInput {
    /// Input channel, from 1 (default 1).
    #[serde(default = "first_channel")]
    pub channel: u32,
    /// The probe's output per ampere, in volts (a 100 mV/A clamp: 0.1).
    pub volts_per_amp: f64,
}

fn first_channel() -> u32 {
    1
}

impl InstrumentConfig {
    /// Whether it is driven over SCPI: supplies and loads always, a cell simulator when it
    /// names a `dialect:` (else over CAN through its `mapping:`). The pre-flight and the
    /// instrument factory both decide by this.
    pub fn over_scpi(&self) -> bool {
        match self.role {
            Role::Supply | Role::Load | Role::Scope | Role::Short => true,
            Role::CellSim => self.dialect.is_some(),
            Role::Chamber => false,
        }
    }
}

fn default_timeout() -> Seconds {
    Seconds(2.0)
}

/// How a CAN cell simulator's setpoints map onto DBC messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellSimMapping {
    /// DBC file, relative to the rig file.
    pub dbc: PathBuf,
    /// Message that sets one cell's voltage.
    pub voltage_message: String,
    /// Signal carrying the 1-based cell index.
    pub index_signal: String,
    /// Signal carrying the voltage.
    pub voltage_signal: String,
    /// Setpoint accuracy (enters the measurement uncertainty).
    pub accuracy: Volts,
    /// How often a ramp updates its setpoint.
    pub update_period: Seconds,
    /// Message that sets one temperature sensor, when the simulator emulates NTCs.
    pub temperature: Option<TemperatureMapping>,
    /// How one channel's current is read back, when the simulator can (absent: reading a
    /// `cells.cell[N].i` signal is refused as not supported).
    #[serde(default)]
    pub current: Option<CurrentMapping>,
}

/// How a CAN cell simulator reports one channel's current: a request naming the cell, and a
/// reply carrying the cell index and the current (positive when the channel sources).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrentMapping {
    /// Message that asks for one channel's current.
    pub request: String,
    /// Message that answers it.
    pub reply: String,
    /// Signal carrying the 1-based cell index, in both messages.
    pub index_signal: String,
    /// Signal of the reply carrying the current in amperes.
    pub value_signal: String,
    /// Read-back accuracy (half-width).
    pub accuracy: Amps,
    /// How long to wait for the reply (default 200 ms).
    #[serde(default)]
    pub timeout: Option<Seconds>,
}

/// How a CAN cell simulator's temperature setpoints map onto a DBC message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureMapping {
    /// Message name.
    pub message: String,
    /// Signal carrying the 1-based sensor index.
    pub index_signal: String,
    /// Signal carrying the temperature in °C.
    pub value_signal: String,
    /// Setpoint accuracy.
    pub accuracy: Celsius,
}

/// CAN backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The in-process virtual bus.
    Virtual,
    /// Linux socketcan.
    Socketcan,
    /// SLCAN adapter on a serial port.
    Slcan,
}

/// One CAN bus.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Id used by instruments and the DUT.
    pub id: String,
    /// Backend.
    pub backend: Backend,
    /// Interface (`can0`), serial port, or virtual bus name.
    pub interface: String,
    /// Bit rate in bit/s.
    pub bitrate: u32,
    /// The BMS under test is on this bus.
    #[serde(default)]
    pub dut: bool,
}

impl BusConfig {
    /// The endpoint string `can::open` understands.
    pub fn endpoint(&self) -> String {
        match self.backend {
            Backend::Virtual => format!("virtual:{}", self.interface),
            Backend::Socketcan => format!("socketcan:{}", self.interface),
            // The bit rate goes with the adapter's options (`slcan:PORT?bitrate=N&...`).
            Backend::Slcan if self.interface.contains("bitrate=") => {
                format!("slcan:{}", self.interface)
            }
            Backend::Slcan => {
                let sep = if self.interface.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("slcan:{}{sep}bitrate={}", self.interface, self.bitrate)
            }
        }
    }
}

/// A Modbus link to the BMS: where its inverter-facing register map is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusLink {
    /// Id used in errors and results.
    pub id: String,
    /// `tcp://HOST[:PORT]` (Modbus TCP, default port 502) or `serial://PATH?baud=N` (RTU).
    pub address: String,
    /// Unit (slave) id; absent: the register map's.
    pub unit: Option<u8>,
    /// Bound on the connect and on every request.
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    /// The BMS under test answers on this link: its announcements are read here.
    #[serde(default)]
    pub dut: bool,
}

/// The safety envelope.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Highest supply voltage setpoint.
    pub max_pack_voltage: Volts,
    /// Highest supply current limit.
    pub max_charge_current: Amps,
    /// Highest load current.
    pub max_discharge_current: Amps,
    /// Lowest cell-simulator setpoint.
    pub cell_voltage_min: Volts,
    /// Highest cell-simulator setpoint.
    pub cell_voltage_max: Volts,
    /// Lowest temperature setpoint.
    pub temperature_min: Celsius,
    /// Highest temperature setpoint.
    pub temperature_max: Celsius,
    /// Highest prospective current of a short-circuit stimulus (absent: the rig may not
    /// close a short-circuit switch).
    #[serde(default)]
    pub max_short_current: Option<Amps>,
}

/// A command that would leave the envelope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what} {value} is outside the rig's safety envelope ({limit}); nothing was sent")]
pub struct EnvelopeViolation {
    /// What was commanded.
    pub what: String,
    /// The commanded value, formatted.
    pub value: String,
    /// The envelope bound, formatted.
    pub limit: String,
}

impl Envelope {
    /// A 60 V / 20 A charge / 30 A discharge envelope for tests.
    #[cfg(test)]
    pub(crate) fn example() -> Envelope {
        Envelope {
            max_pack_voltage: Volts(60.0),
            max_charge_current: Amps(20.0),
            max_discharge_current: Amps(30.0),
            cell_voltage_min: Volts(2.0),
            cell_voltage_max: Volts(4.0),
            temperature_min: Celsius(-20.0),
            temperature_max: Celsius(70.0),
            max_short_current: None,
        }
    }

    fn check(
        what: &str,
        value: f64,
        min: f64,
        max: f64,
        dim: crate::units::Dimension,
    ) -> Result<(), EnvelopeViolation> {
        use crate::units::display;
        if value.is_finite() && value >= min && value <= max {
            Ok(())
        } else {
            Err(EnvelopeViolation {
                what: what.to_string(),
                value: display(value, dim),
                limit: format!("{} .. {}", display(min, dim), display(max, dim)),
            })
        }
    }

    /// Check a supply voltage setpoint.
    pub fn check_supply_voltage(&self, v: f64) -> Result<(), EnvelopeViolation> {
        Self::check(
            "supply voltage",
            v,
            0.0,
            self.max_pack_voltage.0,
            Volts::DIM,
        )
    }

    /// Check a supply current limit.
    pub fn check_supply_current(&self, a: f64) -> Result<(), EnvelopeViolation> {
        Self::check(
            "supply current",
            a,
            0.0,
            self.max_charge_current.0,
            Amps::DIM,
        )
    }

    /// Check a load current.
    pub fn check_load_current(&self, a: f64) -> Result<(), EnvelopeViolation> {
        Self::check(
            "load current",
            a,
            0.0,
            self.max_discharge_current.0,
            Amps::DIM,
        )
    }

    /// Check a short-circuit stimulus's prospective current (refused when the envelope
    /// allows no short circuit).
    pub fn check_short_current(&self, a: f64) -> Result<(), EnvelopeViolation> {
        match self.max_short_current {
            Some(max) => Self::check("short-circuit current", a, 0.0, max.0, Amps::DIM),
            None => Err(EnvelopeViolation {
                what: "short-circuit current".into(),
                value: crate::units::display(a, Amps::DIM),
                limit: "none allowed: the envelope has no `max_short_current`".into(),
            }),
        }
    }

    /// Check a temperature setpoint.
    pub fn check_temperature(&self, t: f64) -> Result<(), EnvelopeViolation> {
        Self::check(
            "temperature",
            t,
            self.temperature_min.0,
            self.temperature_max.0,
            Celsius::DIM,
        )
    }

    /// Check a cell voltage setpoint.
    pub fn check_cell_voltage(&self, v: f64) -> Result<(), EnvelopeViolation> {
        Self::check(
            "cell voltage",
            v,
            self.cell_voltage_min.0,
            self.cell_voltage_max.0,
            Volts::DIM,
        )
    }
}

impl Rig {
    /// The instrument with a role (the first, when several).
    pub fn instrument(&self, role: Role) -> Option<&InstrumentConfig> {
        self.instruments.iter().find(|i| i.role == role)
    }

    /// The bus the DUT is on.
    pub fn dut_bus(&self) -> Option<&BusConfig> {
        self.buses.iter().find(|b| b.dut)
    }

    /// The Modbus link the DUT answers on.
    pub fn dut_modbus(&self) -> Option<&ModbusLink> {
        self.modbus.iter().find(|m| m.dut)
    }

    /// A bus by id.
    pub fn bus(&self, id: &str) -> Option<&BusConfig> {
        self.buses.iter().find(|b| b.id == id)
    }

    /// Replace simulated endpoints (`sim://supply`, virtual bus names) by real ones.
    pub fn resolve_endpoints(
        &mut self,
        addresses: &BTreeMap<String, String>,
        buses: &BTreeMap<String, String>,
    ) {
        for inst in &mut self.instruments {
            if let Some(real) = inst.address.as_ref().and_then(|a| addresses.get(a)) {
                inst.address = Some(real.clone());
            }
        }
        for link in &mut self.modbus {
            if let Some(real) = addresses.get(&link.address) {
                link.address = real.clone();
            }
        }
        for bus in &mut self.buses {
            if let Some(real) = buses.get(&bus.interface) {
                bus.interface = real.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope::example()
    }

    #[test]
    fn envelope_names_the_bound() {
        let e = envelope();
        assert!(e.check_supply_voltage(58.4).is_ok());
        let err = e.check_supply_voltage(61.0).unwrap_err().to_string();
        assert!(err.contains("supply voltage 61.0000 V"), "{err}");
        assert!(err.contains("60.0000 V"), "{err}");
        assert!(e.check_cell_voltage(f64::NAN).is_err());
        assert!(e.check_load_current(-1.0).is_err());
    }

    #[rstest::rstest]
    #[case(None, 100.0, false)]
    #[case(Some(300.0), 240.0, true)]
    #[case(Some(300.0), 301.0, false)]
    #[case(Some(300.0), f64::INFINITY, false)]
    #[case(Some(300.0), f64::NAN, false)]
    fn short_current_needs_the_envelope_to_allow_it(
        #[case] max: Option<f64>,
        #[case] current: f64,
        #[case] allowed: bool,
    ) {
        let mut e = envelope();
        e.max_short_current = max.map(Amps);
        let checked = e.check_short_current(current);
        assert_eq!(checked.is_ok(), allowed, "{checked:?}");
        if max.is_none() {
            let err = checked.unwrap_err().to_string();
            assert!(err.contains("max_short_current"), "{err}");
        }
    }

    #[test]
    fn probe_speeds_need_a_unit() {
        assert_eq!(ProbeSpeed::parse("4 MHz").unwrap().khz(), 4000);
        assert_eq!(ProbeSpeed::parse("400 kHz").unwrap().khz(), 400);
        assert_eq!(ProbeSpeed::parse("1000000 Hz").unwrap().khz(), 1000);
        assert!(ProbeSpeed::parse("4000").unwrap_err().contains("unit"));
        assert!(ProbeSpeed::parse("0 kHz").is_err());
    }
}

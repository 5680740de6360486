//! DUT fixtures: the BMS product under test and what its maker declares.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::condition::Condition;
use crate::units::{Dimension, Quantity, Seconds, Volts, WattHours};

/// A DUT fixture file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Fixture id.
    pub dut: String,
    /// Human title.
    pub title: String,
    /// Cell chemistry, e.g. `LFP`, `NMC`.
    pub chemistry: String,
    /// Cells in series.
    pub cells_in_series: u32,
    /// Number of NTC sensors.
    #[serde(default)]
    pub ntcs: u32,
    /// Nominal cell voltage (the safe state drives cells here).
    pub nominal_cell_voltage: Volts,
    /// Declared pack energy.
    pub energy: Option<WattHours>,
    /// Declared installation location: `indoor`, `outdoor` or `detached`.
    pub location: Option<String>,
    /// How often the BMS samples cell voltages and temperatures (enters the uncertainty).
    pub sampling_period: Option<Seconds>,
    /// The BMS's DBC, relative to the fixture file.
    pub dbc: PathBuf,
    /// Logical signal name -> `Message.Signal` in the DBC.
    pub signals: BTreeMap<String, Spanned<String>>,
    /// The cyclic state request the BMS needs to stay active.
    pub state_request: Option<StateRequest>,
    /// DBC message carrying the running firmware's version and image hash (default
    /// `BMS_Version`), read back after flashing.
    #[serde(default)]
    pub version_message: Option<String>,
    /// The maker's declared protection settings, by protection key (`ov`, `uv`, `otc`, ...).
    pub protections: BTreeMap<String, Spanned<DeclaredProtection>>,
    /// The cell maker's limits, by name (`upper_charge_voltage`, ...).
    #[serde(default)]
    pub cell_limits: BTreeMap<String, QuantityValue>,
    /// How the BMS speaks to an inverter (protocol DBC, keep-alive, declarations).
    #[serde(default)]
    pub inverter: Option<super::inverter::InverterInterface>,
    /// What the state-of-charge reference rests on: capacity and OCV curve.
    #[serde(default)]
    pub soc: Option<SocDeclaration>,
}

/// The pack's declarations the state-of-charge reference rests on (`verdict::soc`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocDeclaration {
    /// Rated capacity of the pack (Ah).
    pub capacity: QuantityValue,
    /// Half-width tolerance of the rated capacity (Ah).
    pub capacity_tolerance: QuantityValue,
    /// The cell maker's rest curve: `[percent, cell volts]` pairs, ascending.
    pub ocv: Vec<(f64, Volts)>,
    /// Half-width tolerance of the curve's voltages (per cell; hysteresis and temperature
    /// included).
    pub ocv_tolerance: Volts,
}

impl SocDeclaration {
    /// What is wrong with the declaration, one message per problem.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, q) in [
            ("capacity", self.capacity.0),
            ("capacity_tolerance", self.capacity_tolerance.0),
        ] {
            if q.dim != Dimension::Charge || q.value < 0.0 {
                out.push(format!("soc.{key}: a charge (Ah) of 0 or more expected"));
            }
        }
        if self.capacity.0.value <= 0.0 {
            out.push("soc.capacity: must be above 0 Ah".into());
        }
        if self.ocv.len() < 2 {
            out.push("soc.ocv: at least two [percent, volts] points expected".into());
        }
        if self.ocv.iter().any(|(p, _)| !(0.0..=100.0).contains(p)) {
            out.push("soc.ocv: percentages from 0 to 100 expected".into());
        }
        if self
            .ocv
            .windows(2)
            .any(|w| w[1].0 <= w[0].0 || w[1].1 .0 <= w[0].1 .0)
        {
            out.push("soc.ocv: percentages and voltages must both rise point to point".into());
        }
        if self.ocv_tolerance.0 < 0.0 {
            out.push("soc.ocv_tolerance: 0 V or more expected".into());
        }
        out
    }

    /// The OCV curve as the reference reads it.
    pub fn curve(&self) -> crate::verdict::soc::OcvCurve {
        crate::verdict::soc::OcvCurve(self.ocv.iter().map(|(p, v)| (*p, v.0)).collect())
    }
}

/// A fixture's text with its relative file references (`dbc/…`, `modbus/…`) resolved
/// against `dir`, for a copy of the fixture written elsewhere.
pub fn absolute_paths(text: &str, dir: &std::path::Path) -> String {
    text.replace(": dbc/", &format!(": {}/dbc/", dir.display()))
        .replace("map: modbus/", &format!("map: {}/modbus/", dir.display()))
}

/// The cyclic run request a BMS needs (foxBMS-style state request).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRequest {
    /// Message name in the DBC.
    pub message: String,
    /// Signal carrying the request.
    pub signal: String,
    /// Value-table name that requests running.
    pub run: String,
    /// Value-table name that requests standby (sent in the safe state).
    pub standby: String,
    /// Send period.
    pub cycle: Seconds,
    /// Condition over the BMS's signals that confirms the standby (`bms.state == standby`).
    ///
    /// Enum names are bound from the DBC's value tables; without it, the safe state records
    /// the standby request as sent, not confirmed.
    #[serde(default)]
    pub confirm: Option<Spanned<Condition>>,
}

/// One declared protection: trip level, release level, delays.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredProtection {
    /// Trip level.
    pub trip: QuantityValue,
    /// Release level.
    pub release: QuantityValue,
    /// Debounce delay before the BMS acts.
    pub delay: Seconds,
    /// Debounce delay before the BMS releases (default 0 s); release levels read off a ramp
    /// back rest on it, and step trips with a `rest` value check it.
    #[serde(default)]
    pub release_delay: Option<Seconds>,
    /// The fault stays latched until the BMS is reset (a standby request).
    #[serde(default)]
    pub latching: bool,
}

/// A quantity of any dimension, checked against what its context needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantityValue(pub Quantity);

impl<'de> Deserialize<'de> for QuantityValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Quantity::parse(&s)
            .map(QuantityValue)
            .map_err(serde::de::Error::custom)
    }
}

/// The dimension of a protection's levels, from its key.
pub fn protection_dimension(key: &str) -> Option<Dimension> {
    Some(match key {
        "ov" | "uv" => Dimension::Voltage,
        "otc" | "otd" | "utc" => Dimension::Temperature,
        "occ" | "ocd" | "scd" => Dimension::Current,
        _ => return None,
    })
}

/// Protection keys a fixture may declare (`scd`: the front end's hardware short-circuit
/// comparator, timed on the rig's scope).
pub const PROTECTION_KEYS: [&str; 8] = ["ov", "uv", "otc", "otd", "utc", "occ", "ocd", "scd"];

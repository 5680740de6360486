//! hilrig as the inverter: the DUT fixture's `inverter:` section (the protocol's DBC, the
//! keep-alive hilrig sends, what the BMS declares about its announcements), the inverter
//! checks a limit profile may name, and the plan's `inverter:` step.
//!
//! The protocol is data: the fixture names a DBC (`fixtures/dbc/pylon-lv-can.dbc` for
//! Pylontech low-voltage CAN), whose messages are added to the DUT's own DBC when a plan is
//! loaded, so the announced values are ordinary signals of the signal map (`inv.cvl`,
//! `inv.ccl`, `inv.charge_enable`, ...), decoded, traced and usable in conditions like
//! every other signal. The checks read these signals' history (see `run::inverter`).
//!
//! Logical names the checks read: `inv.cvl`, `inv.ccl`, `inv.dcl`, `inv.dvl`,
//! `inv.charge_enable`, `inv.discharge_enable`, `inv.pack_v`, `inv.pack_i`, and the
//! protection alarm bits `inv.alarm.ov|uv|ot|ut|occ|ocd`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::fixture::Fixture;
use super::model::OnOff;
use crate::dbc::Dbc;
use crate::modbus::RegisterMap;
use crate::units::{Amps, Seconds, Volts};

/// The fixture's `inverter:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InverterInterface {
    /// Protocol name, for the record (`pylon-lv-can`).
    pub protocol: String,
    /// The CAN protocol's DBC, relative to the fixture file.
    #[serde(default)]
    pub dbc: Option<PathBuf>,
    /// The BMS's inverter-facing Modbus register map, read where the rig wires a Modbus
    /// link to the BMS (`modbus:` entry with `dut: true`).
    #[serde(default)]
    pub modbus: Option<InverterModbus>,
    /// How often the BMS announces its values.
    pub period: Seconds,
    /// The keep-alive hilrig sends as the inverter.
    pub keepalive: Option<KeepAlive>,
    /// The BMS's declared reaction to a lost keep-alive.
    pub keepalive_loss: Option<KeepAliveLoss>,
    /// Which way the announced current counts positive.
    pub current_sign: CurrentSign,
    /// The declared lead: CCL (before OV) and DCL (before UV) start derating at least this
    /// long before the protection trips.
    pub derate_lead: Option<Seconds>,
    /// The pack's own discharge current limit (the DCL may never exceed it); default: the
    /// declared `ocd` trip level.
    pub max_discharge_current: Option<Amps>,
    /// The pack's own charge voltage limit; default: cells × the cell maker's
    /// `upper_charge_voltage`.
    pub max_charge_voltage: Option<Volts>,
}

/// The BMS's Modbus register map and how often hilrig reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InverterModbus {
    /// Register map file (`fixtures/modbus/*.yaml`), relative to the fixture file; its
    /// register names are logical signal names (`inv.cvl`, ...).
    pub map: PathBuf,
    /// How often hilrig reads the whole map.
    pub poll: Seconds,
}

/// The keep-alive message hilrig sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepAlive {
    /// Message name in the protocol's DBC (its signals are sent as 0).
    pub message: String,
    /// Send period.
    pub period: Seconds,
}

/// What the BMS declares it does without the keep-alive.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepAliveLoss {
    /// It reacts at most this long after the last keep-alive.
    pub within: Seconds,
    /// The reaction: `stop` (both current limits 0 and both enable flags cleared) or
    /// `none` (it declares it ignores the inverter).
    pub reaction: KeepAliveReaction,
}

/// Declared reaction to a lost keep-alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepAliveReaction {
    /// CCL = DCL = 0 and both enable flags cleared.
    Stop,
    /// No reaction declared.
    None,
}

/// Sign convention of the announced current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurrentSign {
    /// Passive sign convention: charging current into the pack is positive (Pylontech).
    ChargePositive,
    /// Discharging current out of the pack is positive.
    DischargePositive,
}

/// The inverter checks of a limit profile (`check: {announced_limits: {}}`, ...).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InverterCheck {
    /// CVL, CCL and DCL never above, DVL never below the pack's and cells' limits.
    AnnouncedLimits {},
    /// The current limit on the protection's side derates at least the fixture's declared
    /// `derate_lead` before the protection trips.
    DerateBeforeTrip {},
    /// After the trip: the enable flag cleared and the current limit 0 within `within`,
    /// and kept so while the fault lasts (never stale).
    DisabledAfterTrip {
        /// Bound after the fault.
        within: Seconds,
    },
    /// The protection's alarm bit set within `within` of the fault, and no protection bit
    /// set before any fault.
    AlarmBits {
        /// Bound after the fault.
        within: Seconds,
    },
    /// Every gap between announcements within the declared period ± tolerance, and the
    /// latest one no older than `stale_after`.
    AnnouncePeriod {
        /// Allowed deviation from the declared period.
        tolerance: Seconds,
        /// The latest announcement may be at most this old.
        stale_after: Seconds,
    },
    /// Announced pack voltage and current within tolerance of the instruments'
    /// measurement, with the fixture's sign convention.
    AnnouncedMeasurements {
        /// Allowed voltage deviation.
        voltage: Volts,
        /// Allowed current deviation.
        current: Amps,
    },
    /// After hilrig stops the keep-alive, the declared reaction within the declared time
    /// plus `allowance`.
    KeepaliveLoss {
        /// Allowed time beyond the declared `keepalive_loss.within`.
        allowance: Seconds,
    },
}

impl InverterCheck {
    /// The check's name as written.
    pub fn kind(&self) -> &'static str {
        match self {
            InverterCheck::AnnouncedLimits {} => "announced_limits",
            InverterCheck::DerateBeforeTrip {} => "derate_before_trip",
            InverterCheck::DisabledAfterTrip { .. } => "disabled_after_trip",
            InverterCheck::AlarmBits { .. } => "alarm_bits",
            InverterCheck::AnnouncePeriod { .. } => "announce_period",
            InverterCheck::AnnouncedMeasurements { .. } => "announced_measurements",
            InverterCheck::KeepaliveLoss { .. } => "keepalive_loss",
        }
    }

    /// Whether the check needs a `protection:` on its step.
    pub fn needs_protection(&self) -> bool {
        matches!(
            self,
            InverterCheck::DerateBeforeTrip {}
                | InverterCheck::DisabledAfterTrip { .. }
                | InverterCheck::AlarmBits { .. }
        )
    }
}

/// A plan's `inverter:` step: switch the keep-alive, or judge an inverter check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InverterStep {
    /// Test name (a test step when `judge:` is given).
    pub name: Option<String>,
    /// An inverter criterion of the limit profile.
    pub judge: Option<Spanned<String>>,
    /// The protection the check is about (`ov`, `uv`, ...), for trip-related checks.
    pub protection: Option<Spanned<String>>,
    /// Switch hilrig's keep-alive off (to test the BMS's reaction) or on again.
    pub keepalive: Option<OnOff>,
}

impl InverterStep {
    /// Its test name when it judges something: `name:`, else `inverter <judge>`.
    pub fn test_name(&self) -> Option<String> {
        let j = self.judge.as_ref()?;
        Some(
            self.name
                .clone()
                .unwrap_or_else(|| format!("inverter {}", j.value)),
        )
    }
}

/// The alarm signal of a protection.
pub fn alarm_signal(protection: &str) -> Option<&'static str> {
    Some(match protection {
        "ov" => "inv.alarm.ov",
        "uv" => "inv.alarm.uv",
        "otc" | "otd" => "inv.alarm.ot",
        "utc" => "inv.alarm.ut",
        "occ" => "inv.alarm.occ",
        "ocd" => "inv.alarm.ocd",
        _ => return None,
    })
}

/// The DUT's DBC with the inverter protocol's messages added, when the fixture has an
/// `inverter:` section.
pub fn with_inverter_dbc(fixture_path: &Path, fx: &Fixture, dbc: Dbc) -> Result<Dbc, String> {
    let Some(inv) = &fx.inverter else {
        return Ok(dbc);
    };
    if inv.dbc.is_none() && inv.modbus.is_none() {
        return Err(
            "inverter: give the protocol's `dbc:` (CAN), its `modbus:` register map, or both"
                .into(),
        );
    }
    let Some(inv_dbc) = &inv.dbc else {
        return Ok(dbc);
    };
    let path = super::load::relative(fixture_path, inv_dbc);
    let other =
        Dbc::from_file(&path).map_err(|e| format!("inverter.dbc {}: {e}", path.display()))?;
    dbc.merged(&other)
}

/// The fixture's inverter-facing Modbus register map, loaded and checked.
pub fn inverter_map(fixture_path: &Path, fx: &Fixture) -> Result<Option<RegisterMap>, String> {
    let Some(m) = fx.inverter.as_ref().and_then(|i| i.modbus.as_ref()) else {
        return Ok(None);
    };
    if !(m.poll.0.is_finite() && m.poll.0 >= 0.01) {
        return Err(format!(
            "inverter.modbus.poll {} s: poll at most every 10 ms",
            m.poll.0
        ));
    }
    let path = super::load::relative(fixture_path, &m.map);
    RegisterMap::load(&path)
        .map(Some)
        .map_err(|e| format!("inverter.modbus.map: {e}"))
}

/// Problems of an `inverter:` step against the fixture and the profile's check.
pub fn step_problems(
    step: &InverterStep,
    fx: &Fixture,
    check: Option<&InverterCheck>,
) -> Vec<String> {
    let mut out = Vec::new();
    let Some(inv) = &fx.inverter else {
        out.push("inverter: the DUT fixture has no `inverter:` section".into());
        return out;
    };
    if step.judge.is_none() && step.keepalive.is_none() {
        out.push("inverter: give `judge:` (a test) or `keepalive: on|off`".into());
    }
    if step.keepalive.is_some() && inv.keepalive.is_none() {
        out.push("inverter: the fixture declares no `inverter.keepalive` to switch".into());
    }
    if let Some(c) = check {
        match &step.protection {
            None if c.needs_protection() => out.push(format!(
                "inverter: a `{}` check needs `protection:` (ov, uv, ...)",
                c.kind()
            )),
            Some(p) if alarm_signal(&p.value).is_none() => {
                out.push(format!("inverter: `{}` is not a protection", p.value))
            }
            _ => {}
        }
        if matches!(c, InverterCheck::DerateBeforeTrip {}) && inv.derate_lead.is_none() {
            out.push(
                "inverter: `derate_before_trip` needs the fixture's `inverter.derate_lead`".into(),
            );
        }
        if matches!(c, InverterCheck::KeepaliveLoss { .. }) && inv.keepalive_loss.is_none() {
            out.push(
                "inverter: `keepalive_loss` needs the fixture's `inverter.keepalive_loss`".into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::limits::{Check, LimitProfile};
    use rstest::rstest;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// The shipped Pylontech high-voltage DBC decodes frames built by hand from the public
    /// layout (29-bit ids, little-endian; values from the layout's examples).
    #[rstest]
    #[case::total(0x4210, &[0x8C, 0x0E, 0xCE, 0xFF, 0xF6, 0x04, 75, 98],
        &[("PackVoltage", 372.4), ("PackCurrent", -5.0), ("Temperature", 27.0),
          ("StateOfCharge", 75.0), ("StateOfHealth", 98.0)])]
    #[case::limits(0x4220, &[0xA0, 0x0F, 0xB8, 0x0B, 0xFA, 0x00, 0x2C, 0x01],
        &[("ChargeCutoffVoltage", 400.0), ("DischargeCutoffVoltage", 300.0),
          ("MaxChargeCurrent", 25.0), ("MaxDischargeCurrent", 30.0)])]
    #[case::cells(0x4230, &[0xDF, 0x0C, 0xDA, 0x0C, 0x03, 0x00, 0x06, 0x00],
        &[("MaxCellVoltage", 3.295), ("MinCellVoltage", 3.290), ("MaxCellNumber", 3.0),
          ("MinCellNumber", 6.0)])]
    #[case::status_charge_balance(0x4250, &[0x11, 0, 0, 0, 0, 0, 0, 0],
        &[("BasicStatus", 1.0), ("ForceChargeRequest", 0.0), ("BalanceChargeRequest", 1.0)])]
    #[case::forbidden(0x4280, &[0xAA, 0x00, 0, 0, 0, 0, 0, 0],
        &[("ChargeForbidden", 170.0), ("DischargeForbidden", 0.0)])]
    #[case::request(0x4200, &[0x02, 0, 0, 0, 0, 0, 0, 0], &[("Request", 2.0)])]
    fn the_shipped_hv_dbc_decodes_frames_built_from_the_public_layout(
        #[case] id: u32,
        #[case] data: &[u8],
        #[case] want: &[(&str, f64)],
    ) {
        let dbc = Dbc::from_file(&root().join("fixtures/dbc/pylon-hv-can.dbc")).unwrap();
        assert!(
            dbc.message_by_id(id, false).is_none(),
            "{id:#X} is a 29-bit id"
        );
        let m = dbc.message_by_id(id, true).unwrap();
        let got = m.decode(data).unwrap();
        for (name, value) in want {
            let v = got
                .iter()
                .find(|d| d.name == *name)
                .unwrap_or_else(|| panic!("{name} not decoded"))
                .physical;
            assert!((v - value).abs() < 1e-9, "{name}: {v} != {value}");
        }
    }

    fn profile_problems(check: &str) -> Vec<String> {
        let dir = std::env::temp_dir().join(format!(
            "hilrig-inverter-check-{}-{}",
            std::process::id(),
            check.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.yaml");
        let text = format!(
            "profile: p\ntitle: P\ndecision_rule: simple\ncriteria:\n  c:\n    check: {check}\n    \
             provenance: {{source: s, basis: b, confidence: low}}\n"
        );
        std::fs::write(&path, text).unwrap();
        let lp = crate::plan::load::read_yaml::<LimitProfile>(&path).unwrap();
        let out = crate::plan::preflight::check_limits(&lp)
            .iter()
            .map(|e| e.to_string())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        out
    }

    #[rstest]
    #[case::limits("{announced_limits: {}}", "")]
    #[case::period("{announce_period: {tolerance: 0.2 s, stale_after: 2.5 s}}", "")]
    #[case::measurements("{announced_measurements: {voltage: 0.5 V, current: 0.5 A}}", "")]
    #[case::typo("{announced_limitz: {}}", "did you mean `announced_limits`?")]
    #[case::missing_field(
        "{disabled_after_trip: {}}",
        "check `disabled_after_trip` has a missing"
    )]
    #[case::no_unit("{keepalive_loss: {allowance: 1.5}}", "quantities need units")]
    #[case::old_typo("{threshhold: {tolerance: 50 mV}}", "did you mean `threshold`?")]
    fn inverter_checks_are_read_and_bad_ones_refused_in_words(
        #[case] check: &str,
        #[case] problem: &str,
    ) {
        let p = profile_problems(check);
        if problem.is_empty() {
            assert!(p.is_empty(), "{p:?}");
        } else {
            assert_eq!(p.len(), 1, "{p:?}");
            assert!(p[0].contains(problem), "{p:?}");
        }
    }

    #[test]
    fn the_shipped_profile_reads_every_inverter_check() {
        let lp = crate::plan::load::read_yaml::<LimitProfile>(
            &root().join("fixtures/limits/inverter-interface.yaml"),
        )
        .unwrap();
        let kinds: Vec<&str> = lp
            .value
            .criteria
            .values()
            .filter_map(|c| match &c.value.check {
                Check::Inverter(i) => Some(i.kind()),
                _ => None,
            })
            .collect();
        assert_eq!(kinds.len(), 7, "{kinds:?}");
    }

    #[test]
    fn an_inverter_dbc_whose_ids_clash_with_the_duts_is_refused() {
        let dut = Dbc::from_file(&root().join("fixtures/dbc/sim-bms.dbc")).unwrap();
        let pylon = Dbc::from_file(&root().join("fixtures/dbc/pylon-lv-can.dbc")).unwrap();
        let merged = dut.clone().merged(&pylon).unwrap();
        assert!(merged.message("Pylon_Limits").is_some());
        assert!(merged.message("BMS_Status").is_some());
        let e = dut.clone().merged(&dut).unwrap_err();
        assert!(e.contains("clashes with"), "{e}");
    }
}

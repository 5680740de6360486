//! The run-level facts an ISO/IEC 17025 7.8 report needs beside the measurements: the item
//! tested (DUT serial, where the firmware identity came from), the people (operator), the
//! conditions (ambient and its source), whether the bench was simulated or ran on virtual
//! time, and the calibration of every instrument with the traceability that follows from it.
//!
//! Choices where the issue is silent:
//! - The operator is `--operator`, else `$HILRIG_OPERATOR`; with neither, the run still
//!   runs but every output says "not recorded" (and `hilrig run` warns): no login name is
//!   taken silently as the person responsible.
//! - `traceable` is about calibration only: every instrument of the rig (the cell
//!   simulator included, whose setpoint becomes the measured threshold) has a calibration
//!   record that is in date on the run day. A simulated bench is marked separately
//!   (`simulated`); its records stand for the simulated units.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::calibration::{judge, Calibration, DUE_SOON_DAYS};
use crate::rig::{Rig, Role};

/// Environment variable naming the operator when `--operator` is not given.
pub const OPERATOR_ENV: &str = "HILRIG_OPERATOR";

/// Who ran what, under which conditions, with which instruments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunContext {
    /// Serial number of the item tested (the BMS), when recorded.
    #[serde(default)]
    pub dut_serial: Option<String>,
    /// Where the serial number came from (`--dut-serial`).
    #[serde(default)]
    pub dut_serial_source: Option<String>,
    /// Who ran the test, when recorded.
    #[serde(default)]
    pub operator: Option<String>,
    /// Where the operator's name came from (`--operator`, `HILRIG_OPERATOR`).
    #[serde(default)]
    pub operator_source: Option<String>,
    /// How the firmware identity was obtained (flashed and read back, read back, ...).
    #[serde(default)]
    pub firmware_source: Option<String>,
    /// Whether the bench was the built-in simulation (no physical pack or instruments).
    #[serde(default)]
    pub simulated: bool,
    /// Whether the run ran on a paused clock (its times are simulated seconds).
    #[serde(default)]
    pub virtual_time: bool,
    /// The tests of this plan that `run --test` chose (empty: the plan ran whole).
    #[serde(default)]
    pub selected_tests: Vec<String>,
    /// Ambient temperature during the run, when known.
    #[serde(default)]
    pub ambient: Option<Ambient>,
    /// Calibration of each instrument of the rig on the run day.
    #[serde(default)]
    pub calibration: Vec<InstrumentCalibration>,
    /// Whether every instrument's calibration was in date (None: not assessed, as in
    /// results written before this field existed).
    #[serde(default)]
    pub traceable: Option<bool>,
    /// Why the results are not traceable, one line per instrument.
    #[serde(default)]
    pub not_traceable_because: Vec<String>,
    /// The suite run this run belongs to, when it is a suite member.
    #[serde(default)]
    pub suite_run_id: Option<String>,
}

/// An ambient temperature and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ambient {
    /// Temperature in °C.
    pub temperature_c: f64,
    /// Its source (`simulated bench (rig simulation.ambient)`, `operator entry (--ambient)`).
    pub source: String,
}

/// Calibration state of an instrument on the run day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationStatus {
    /// In date.
    Valid,
    /// In date, due within `DUE_SOON_DAYS`.
    DueSoon,
    /// Past its due date.
    Expired,
    /// The rig has no record for its serial number (or it has none).
    NoRecord,
    /// The due date is not `YYYY-MM-DD`.
    Unreadable,
}

impl CalibrationStatus {
    /// Whether results measured with it are traceable.
    pub fn traceable(self) -> bool {
        matches!(self, CalibrationStatus::Valid | CalibrationStatus::DueSoon)
    }

    /// Words for reports.
    pub fn word(self) -> &'static str {
        match self {
            CalibrationStatus::Valid => "valid",
            CalibrationStatus::DueSoon => "due soon",
            CalibrationStatus::Expired => "EXPIRED",
            CalibrationStatus::NoRecord => "NO RECORD",
            CalibrationStatus::Unreadable => "UNREADABLE DUE DATE",
        }
    }
}

/// One instrument's calibration record as judged on the run day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InstrumentCalibration {
    /// Instrument id in the rig.
    pub id: String,
    /// Role (`supply`, `load`, `cell_sim`, `chamber`).
    pub role: String,
    /// Serial number from the rig file.
    pub serial: Option<String>,
    /// Calibration due date (`YYYY-MM-DD`), when recorded.
    pub due: Option<String>,
    /// State on the run day.
    pub status: CalibrationStatus,
    /// Days from the run day to the due date (negative: past it).
    pub days_left: Option<i64>,
}

/// The calibration of every measuring instrument of `rig` on `date` (`YYYY-MM-DD`); a
/// short-circuit switch measures nothing and is not listed.
pub fn calibration_of(rig: &Rig, date: &str) -> Vec<InstrumentCalibration> {
    rig.instruments
        .iter()
        .filter(|i| i.role != Role::Short)
        .map(|i| {
            let c = judge(&rig.calibration, i.serial.as_deref(), date);
            let (status, days_left) = match &c {
                Calibration::Valid { days_left, .. } => (
                    if days_left.is_some_and(|d| d < DUE_SOON_DAYS) {
                        CalibrationStatus::DueSoon
                    } else {
                        CalibrationStatus::Valid
                    },
                    *days_left,
                ),
                Calibration::Expired { days_over, .. } => {
                    (CalibrationStatus::Expired, Some(-days_over))
                }
                Calibration::NoRecord => (CalibrationStatus::NoRecord, None),
                Calibration::Unreadable { .. } => (CalibrationStatus::Unreadable, None),
            };
            InstrumentCalibration {
                id: i.id.clone(),
                role: role_name(i.role).into(),
                serial: i.serial.clone(),
                due: c.due().map(str::to_string),
                status,
                days_left,
            }
        })
        .collect()
}

fn role_name(r: Role) -> &'static str {
    r.key()
}

/// Whether results measured with these instruments are traceable, and why not.
pub fn traceability(cal: &[InstrumentCalibration]) -> (bool, Vec<String>) {
    let why: Vec<String> = cal
        .iter()
        .filter(|c| !c.status.traceable())
        .map(|c| {
            let serial = c.serial.as_deref().unwrap_or("no serial number");
            match (c.status, &c.due, c.days_left) {
                (CalibrationStatus::Expired, Some(due), Some(d)) => format!(
                    "{} ({serial}): calibration expired on {due}, {} days before the run",
                    c.id, -d
                ),
                (CalibrationStatus::Unreadable, Some(due), _) => format!(
                    "{} ({serial}): calibration due date `{due}` is not YYYY-MM-DD",
                    c.id
                ),
                _ => format!("{} ({serial}): no calibration record in the rig file", c.id),
            }
        })
        .collect();
    (why.is_empty(), why)
}

/// Who ran the run: `--operator`, else `$HILRIG_OPERATOR`; with the source.
pub fn operator(cli: Option<&str>) -> (Option<String>, Option<String>) {
    operator_from(cli, std::env::var(OPERATOR_ENV).ok().as_deref())
}

/// `operator` with the environment value given (for tests).
pub fn operator_from(cli: Option<&str>, env: Option<&str>) -> (Option<String>, Option<String>) {
    let clean = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(String::from);
    if let Some(o) = clean(cli) {
        return (Some(o), Some("--operator".into()));
    }
    if let Some(o) = clean(env) {
        return (Some(o), Some(OPERATOR_ENV.into()));
    }
    (None, None)
}

/// What the run knows before it starts.
#[derive(Debug, Clone, Default)]
pub struct ContextInput<'a> {
    /// `--dut-serial`.
    pub dut_serial: Option<&'a str>,
    /// `--operator`.
    pub operator: Option<&'a str>,
    /// `--ambient` in °C.
    pub ambient_c: Option<f64>,
    /// `--virtual-time`.
    pub virtual_time: bool,
    /// How the firmware identity was obtained.
    pub firmware_source: Option<String>,
    /// The run day, `YYYY-MM-DD`.
    pub date: &'a str,
}

impl RunContext {
    /// A `dut_serial` entry answered at a `prompt:` step names the item tested when
    /// `--dut-serial` did not (the first such answer); the source says which prompt and
    /// who answered. Returns a warning when an answer contradicts the serial already
    /// recorded (the recorded one is kept).
    pub fn take_prompted_serial(&mut self, prompts: &[super::PromptRecord]) -> Vec<String> {
        let mut warnings = Vec::new();
        for p in prompts {
            let Some(serial) = p.answers.get("dut_serial").map(|s| s.trim()) else {
                continue;
            };
            if serial.is_empty() {
                continue;
            }
            match self.dut_serial.as_deref() {
                None => {
                    self.dut_serial = Some(serial.to_string());
                    self.dut_serial_source = Some(format!(
                        "prompt \"{}\" at {} (answered by {})",
                        p.text, p.step, p.answered_by
                    ));
                }
                Some(known) if known != serial => warnings.push(format!(
                    "the DUT serial answered at {} ({serial}) differs from the one recorded \
                     ({known}, {}); the recorded one is kept",
                    p.step,
                    self.dut_serial_source.as_deref().unwrap_or("given")
                )),
                Some(_) => {}
            }
        }
        warnings
    }

    /// The context of a run on `rig` (the rig file as written, before endpoints resolve).
    pub fn for_run(rig: &Rig, input: ContextInput<'_>) -> RunContext {
        let (operator, operator_source) = operator(input.operator);
        let calibration = calibration_of(rig, input.date);
        let (traceable, why) = traceability(&calibration);
        let dut_serial = input
            .dut_serial
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from);
        let ambient = match (input.ambient_c, &rig.simulation) {
            (Some(t), _) => Some(Ambient {
                temperature_c: t,
                source: "operator entry (--ambient)".into(),
            }),
            (None, Some(sim)) => Some(Ambient {
                temperature_c: sim.ambient.0,
                source: "simulated bench (rig file simulation.ambient)".into(),
            }),
            (None, None) => None,
        };
        RunContext {
            dut_serial_source: dut_serial.as_ref().map(|_| "--dut-serial".into()),
            dut_serial,
            operator,
            operator_source,
            firmware_source: input.firmware_source,
            simulated: rig.simulation.is_some(),
            virtual_time: input.virtual_time,
            ambient,
            calibration,
            traceable: Some(traceable),
            not_traceable_because: why,
            suite_run_id: None,
            selected_tests: Vec::new(),
        }
    }

    /// The context of one member of the suite run `suite_run_id` (or of a single run).
    pub fn member_of(&self, suite_run_id: Option<&str>) -> RunContext {
        RunContext {
            suite_run_id: suite_run_id.map(String::from),
            ..self.clone()
        }
    }

    /// This context with the tests `run --test` chose in this plan.
    pub fn with_selection(self, selected_tests: Vec<String>) -> RunContext {
        RunContext {
            selected_tests,
            ..self
        }
    }

    /// The selection for display: the chosen tests, or that the plan ran whole.
    pub fn selection_text(&self) -> String {
        if self.selected_tests.is_empty() {
            "all tests of the plan".into()
        } else {
            format!("only {} (run --test)", self.selected_tests.join(", "))
        }
    }

    /// The operator for display: the name, or what to do.
    pub fn operator_text(&self) -> String {
        match (&self.operator, &self.operator_source) {
            (Some(o), Some(s)) => format!("{o} (from {s})"),
            (Some(o), None) => o.clone(),
            _ => format!("not recorded (give --operator or set {OPERATOR_ENV})"),
        }
    }

    /// The DUT serial for display.
    pub fn dut_serial_text(&self) -> String {
        self.dut_serial
            .clone()
            .unwrap_or_else(|| "not recorded (give --dut-serial)".into())
    }

    /// The ambient for display.
    pub fn ambient_text(&self) -> String {
        match &self.ambient {
            Some(a) => format!("{:.1} °C, {}", a.temperature_c, a.source),
            None => "not recorded (give --ambient)".into(),
        }
    }

    /// Traceability for display.
    pub fn traceable_text(&self) -> &'static str {
        match self.traceable {
            Some(true) => "traceable (every instrument's calibration in date)",
            Some(false) => "NOT TRACEABLE (calibration expired or missing)",
            None => "not assessed",
        }
    }

    /// Warnings for the operator before the run: what the report will lack.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.operator.is_none() {
            w.push(format!(
                "no operator: give --operator NAME or set {OPERATOR_ENV}; the report will say \
                 \"not recorded\""
            ));
        }
        if self.dut_serial.is_none() {
            w.push(
                "no DUT serial number: give --dut-serial (or answer a `dut_serial` prompt of the \
                 plan); otherwise the report will say \"not recorded\""
                    .into(),
            );
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn prompted(serial: &str) -> crate::report::PromptRecord {
        crate::report::PromptRecord {
            step: "setup[0] prompt (plan.yaml:8)".into(),
            repeat: 0,
            text: "Scan the DUT's serial".into(),
            answers: [("dut_serial".to_string(), serial.to_string())].into(),
            answered_by: "terminal".into(),
            at_s: 0.0,
        }
    }

    #[rstest]
    #[case(None, "SN-1", Some("SN-1"), true, 0)]
    #[case(None, "  ", None, false, 0)]
    #[case(Some("SN-1"), "SN-1", Some("SN-1"), false, 0)]
    #[case(Some("SN-1"), "SN-2", Some("SN-1"), false, 1)]
    fn a_prompted_serial_names_the_item_unless_given(
        #[case] given: Option<&str>,
        #[case] answered: &str,
        #[case] want: Option<&str>,
        #[case] from_prompt: bool,
        #[case] warnings: usize,
    ) {
        let mut c = RunContext {
            dut_serial: given.map(str::to_string),
            dut_serial_source: given.map(|_| "--dut-serial".to_string()),
            ..RunContext::default()
        };
        let w = c.take_prompted_serial(&[prompted(answered)]);
        assert_eq!(c.dut_serial.as_deref(), want);
        assert_eq!(
            c.dut_serial_source.as_deref().is_some_and(|s| s
                .contains("prompt \"Scan the DUT's serial\"")
                && s.contains("terminal")),
            from_prompt
        );
        assert_eq!(w.len(), warnings, "{w:?}");
    }

    #[rstest]
    #[case(Some("Ann"), Some("Bob"), Some("Ann"), Some("--operator"))]
    #[case(None, Some(" Bob "), Some("Bob"), Some("HILRIG_OPERATOR"))]
    #[case(Some(" "), Some("Bob"), Some("Bob"), Some("HILRIG_OPERATOR"))]
    #[case(None, None, None, None)]
    #[case(None, Some(""), None, None)]
    fn operator_sources(
        #[case] cli: Option<&str>,
        #[case] env: Option<&str>,
        #[case] name: Option<&str>,
        #[case] source: Option<&str>,
    ) {
        let (n, s) = operator_from(cli, env);
        assert_eq!(n.as_deref(), name);
        assert_eq!(s.as_deref(), source);
    }

    fn rig(cal: &str) -> Rig {
        let text = format!(
            "station: s\ninstruments:\n  - {{id: supply, role: supply, serial: P1}}\n  - {{id: cells, role: cell_sim, serial: C1}}\nenvelope: {{max_pack_voltage: 60 V, max_charge_current: 30 A, max_discharge_current: 40 A, cell_voltage_min: 2 V, cell_voltage_max: 4 V, temperature_min: -30 °C, temperature_max: 80 °C}}\n{cal}"
        );
        serde_saphyr::from_str(&text).unwrap()
    }

    #[rstest]
    #[case("calibration: {P1: 2027-06-30, C1: 2027-06-30}", true, 0)]
    #[case("calibration: {P1: 2027-06-30, C1: 2026-01-01}", false, 1)]
    #[case("calibration: {P1: 2027-06-30}", false, 1)]
    #[case("", false, 2)]
    fn traceable_only_when_every_record_is_in_date(
        #[case] cal: &str,
        #[case] traceable: bool,
        #[case] reasons: usize,
    ) {
        let c = RunContext::for_run(
            &rig(cal),
            ContextInput {
                date: "2026-12-03",
                ..Default::default()
            },
        );
        assert_eq!(c.traceable, Some(traceable));
        assert_eq!(c.not_traceable_because.len(), reasons, "{c:?}");
        assert_eq!(c.calibration.len(), 2);
        assert_eq!(c.calibration[1].role, "cell_sim");
        if reasons == 1 && cal.contains("2026-01-01") {
            assert_eq!(c.calibration[1].status, CalibrationStatus::Expired);
            assert!(c.not_traceable_because[0].contains("cells (C1)"));
        }
    }
}

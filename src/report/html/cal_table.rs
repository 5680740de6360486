//! The instruments table: each instrument with its calibration and whether that calibration
//! was valid on the run date.

use super::ReportData;
use crate::report::calibration::{self, Calibration};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CalStatus {
    Valid,
    Expired,
    NoRecord,
    Unreadable,
    Simulated,
}

impl CalStatus {
    pub(super) fn text(self) -> &'static str {
        match self {
            CalStatus::Valid => "valid at the test date",
            CalStatus::Expired => "EXPIRED before the test date",
            CalStatus::NoRecord => "no calibration record",
            CalStatus::Unreadable => "due date unreadable (expected YYYY-MM-DD)",
            CalStatus::Simulated => "simulated: not applicable",
        }
    }
}

pub(super) struct CalRow {
    pub(super) id: String,
    pub(super) role: String,
    pub(super) identity: String,
    pub(super) address: String,
    pub(super) serial: String,
    pub(super) due: String,
    pub(super) status: CalStatus,
}

pub(super) fn calibration_rows(d: &ReportData, run_date: &str) -> Vec<CalRow> {
    let Some(rig) = &d.rig else {
        return Vec::new();
    };
    let simulated = rig.simulation.is_some();
    // What the instruments said of themselves at connect (`*IDN?`), when the run recorded it.
    let idn = |id: &str| {
        d.results
            .as_ref()
            .and_then(|r| r.instruments.iter().find(|x| x.id == id))
    };
    rig.instruments
        .iter()
        .map(|i| {
            let serial = i.serial.clone().unwrap_or_default();
            let judged = calibration::judge(&rig.calibration, i.serial.as_deref(), run_date);
            let due = judged.due().map(str::to_string);
            let status = match judged {
                Calibration::Unreadable { .. } => CalStatus::Unreadable,
                Calibration::Expired { .. } => CalStatus::Expired,
                Calibration::Valid { .. } => CalStatus::Valid,
                Calibration::NoRecord if simulated => CalStatus::Simulated,
                Calibration::NoRecord => CalStatus::NoRecord,
            };
            CalRow {
                id: i.id.clone(),
                role: i.role.clone(),
                identity: match (idn(&i.id), &i.dialect, &i.bus) {
                    (Some(x), Some(dl), _) => format!(
                        "{} {}, firmware {} (SCPI dialect {dl})",
                        x.manufacturer, x.model, x.firmware
                    ),
                    (None, Some(dl), _) => format!("SCPI dialect {dl}"),
                    (_, None, Some(b)) => format!("on CAN bus {b}"),
                    _ => String::new(),
                },
                address: i.address.clone().unwrap_or_default(),
                serial: if serial.is_empty() {
                    "—".into()
                } else {
                    serial
                },
                due: due.unwrap_or_else(|| "—".into()),
                status,
            }
        })
        .collect()
}

//! Calibration of an instrument on a date, judged from the rig's `calibration:` records
//! (serial number -> due date, `YYYY-MM-DD`). One judgement serves `hilrig instruments
//! check`, the runner's refusal of an expired instrument, and the report.

use std::collections::BTreeMap;

use crate::trace::parse_date;

/// Days before its due date from which a calibration is reported as due soon.
pub const DUE_SOON_DAYS: i64 = 30;

/// What the records say of one instrument on one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Calibration {
    /// Due on `due`; `days_left` days after the date (0: due that day; None: the date is
    /// not known).
    Valid {
        /// Due date as written.
        due: String,
        /// Days from the date to the due date.
        days_left: Option<i64>,
    },
    /// Due on `due`, `days_over` days before the date.
    Expired {
        /// Due date as written.
        due: String,
        /// Days from the due date to the date.
        days_over: i64,
    },
    /// No record for the serial number, or no serial number.
    NoRecord,
    /// The due date is not `YYYY-MM-DD`.
    Unreadable {
        /// Due date as written.
        due: String,
    },
}

impl Calibration {
    /// The due date as written, when there is a record.
    pub fn due(&self) -> Option<&str> {
        match self {
            Calibration::Valid { due, .. }
            | Calibration::Expired { due, .. }
            | Calibration::Unreadable { due } => Some(due),
            Calibration::NoRecord => None,
        }
    }
}

/// Judge the calibration of the instrument with `serial` on `date` (`YYYY-MM-DD`).
pub fn judge(records: &BTreeMap<String, String>, serial: Option<&str>, date: &str) -> Calibration {
    let Some(due) = serial.and_then(|s| records.get(s.trim())) else {
        return Calibration::NoRecord;
    };
    let due = due.trim().to_string();
    match (parse_date(&due), parse_date(date)) {
        (None, _) => Calibration::Unreadable { due },
        (Some(d), Some(t)) if d < t => Calibration::Expired {
            due,
            days_over: t - d,
        },
        (Some(d), t) => Calibration::Valid {
            due,
            days_left: t.map(|t| d - t),
        },
    }
}

/// The instruments of a rig whose calibration has expired on `date`, as
/// `(id, serial, due, days over)`.
pub fn expired_in(rig: &crate::rig::Rig, date: &str) -> Vec<(String, String, String, i64)> {
    rig.instruments
        .iter()
        .filter_map(
            |i| match judge(&rig.calibration, i.serial.as_deref(), date) {
                Calibration::Expired { due, days_over } => Some((
                    i.id.clone(),
                    i.serial.clone().unwrap_or_default(),
                    due,
                    days_over,
                )),
                _ => None,
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Some("A1"), "2026-11-21", Calibration::Valid { due: "2027-06-30".into(), days_left: Some(221) })]
    #[case(Some(" A1 "), "2027-06-30", Calibration::Valid { due: "2027-06-30".into(), days_left: Some(0) })]
    #[case(Some("A1"), "2027-07-02", Calibration::Expired { due: "2027-06-30".into(), days_over: 2 })]
    #[case(Some("A1"), "unknown", Calibration::Valid { due: "2027-06-30".into(), days_left: None })]
    #[case(Some("B2"), "2026-11-21", Calibration::Unreadable { due: "end of June".into() })]
    #[case(Some("C3"), "2026-11-21", Calibration::NoRecord)]
    #[case(None, "2026-11-21", Calibration::NoRecord)]
    fn judged_on_a_date(
        #[case] serial: Option<&str>,
        #[case] date: &str,
        #[case] want: Calibration,
    ) {
        let records: BTreeMap<String, String> = [("A1", "2027-06-30"), ("B2", "end of June")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(judge(&records, serial, date), want);
    }
}

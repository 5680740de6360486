//! `hilrig instruments check`: every SCPI instrument of a rig checked for its identity
//! against its dialect and the rig's serial number, its error queue (read, not cleared
//! first), the protections its envelope asks of it, and its calibration due date.

use std::path::Path;

use serde_json::json;

use super::session::Session;
use crate::exit::EXIT_FAILED;
use crate::report::calibration::{self, Calibration};
use crate::report::InstrumentIdentity;
use crate::rig::{InstrumentConfig, Role};
use crate::scpi::Client;
use crate::trace::today;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Pass,
    Warn,
    Skip,
    Fail,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "ok",
            Verdict::Warn => "ok (warning)",
            Verdict::Skip => "not checked",
            Verdict::Fail => "FAILED",
        }
    }
}

/// The findings for one instrument.
struct Finding {
    verdict: Verdict,
    lines: Vec<(Verdict, String)>,
    idn: Option<String>,
    errors: Vec<(i32, String)>,
    calibration_due: Option<String>,
}

impl Finding {
    fn new() -> Self {
        Finding {
            verdict: Verdict::Pass,
            lines: Vec::new(),
            idn: None,
            errors: Vec::new(),
            calibration_due: None,
        }
    }

    fn add(&mut self, verdict: Verdict, line: String) {
        self.verdict = self.verdict.max(verdict);
        self.lines.push((verdict, line));
    }
}

async fn check_one(session: &Session, inst: &InstrumentConfig, today: &str) -> Finding {
    let mut f = Finding::new();
    if inst.dialect.is_none() {
        f.add(
            Verdict::Skip,
            "not a SCPI instrument (no `dialect:`); CAN instruments are not checked here".into(),
        );
        return f;
    }
    if inst.role == Role::Short {
        f.add(
            Verdict::Skip,
            "the short-circuit switch: its channel is checked against its dialect when a run \
             connects it, and it is never closed by a check"
                .into(),
        );
        return f;
    }
    if inst.role == Role::Scope {
        f.add(
            Verdict::Skip,
            "an oscilloscope: its settings are checked against its dialect when a plan arms it"
                .into(),
        );
        return f;
    }
    let (dialect, address) = match session.scpi_endpoint(inst) {
        Ok(e) => e,
        Err(e) => {
            f.add(Verdict::Fail, e);
            return f;
        }
    };
    let base = session.rig_path().parent().unwrap_or(Path::new("."));
    for finding in crate::instrument::coverage::review(&session.rig, base)
        .into_iter()
        .filter(|finding| finding.instrument == inst.id)
    {
        let verdict = match finding.severity {
            crate::instrument::coverage::Severity::Warning => Verdict::Warn,
            crate::instrument::coverage::Severity::Error => Verdict::Fail,
        };
        f.add(verdict, format!("envelope: {}", finding.message));
    }
    let timeout = inst.timeout.duration();
    let mut client = match Client::connect_for(&address, &dialect, timeout).await {
        Ok((client, _)) => client,
        Err(e) => {
            f.add(Verdict::Fail, e.to_string());
            return f;
        }
    };
    let serial_seen = match client.query("*IDN?").await {
        Ok(idn) => {
            let idn = idn.trim().to_string();
            if dialect.matches_identity(&idn) {
                f.add(Verdict::Pass, format!("identity: {idn}"));
            } else {
                f.add(
                    Verdict::Fail,
                    format!(
                        "identity: {idn:?} is not {} {} (dialect `{}`); check the address and \
                         the dialect in the rig file",
                        dialect.maker_text(),
                        dialect.model_text(),
                        dialect.id
                    ),
                );
            }
            let identity = InstrumentIdentity::parse(&inst.id, &idn);
            match &inst.serial {
                Some(expected) if identity.other_serial_than(Some(expected)) => f.add(
                    Verdict::Fail,
                    format!(
                        "serial: the instrument says {}, the rig file says {expected}; \
                         another unit is connected, or the rig file is out of date",
                        identity.serial
                    ),
                ),
                Some(expected) => f.add(
                    Verdict::Pass,
                    format!("serial: {expected} as in the rig file"),
                ),
                None => {}
            }
            f.idn = Some(idn);
            Some(identity.serial).filter(|s| !s.is_empty())
        }
        Err(e) => {
            f.add(Verdict::Fail, format!("identity: {e}"));
            return f;
        }
    };
    match client.error_queue().await {
        Ok(errors) if errors.is_empty() => f.add(Verdict::Pass, "error queue: empty".into()),
        Ok(errors) => {
            let text: Vec<String> = errors
                .iter()
                .map(|(code, message)| format!("{code},\"{message}\""))
                .collect();
            f.add(
                Verdict::Fail,
                format!(
                    "error queue: {}; see the instrument's programming guide, then clear it \
                     (*CLS)",
                    text.join("; ")
                ),
            );
            f.errors = errors;
        }
        Err(e) => f.add(Verdict::Fail, format!("error queue: {e}")),
    }
    let serial = inst.serial.clone().or(serial_seen);
    let cal = calibration::judge(&session.rig.calibration, serial.as_deref(), today);
    f.calibration_due = cal.due().map(str::to_string);
    match cal {
        Calibration::NoRecord => f.add(
            Verdict::Warn,
            format!(
                "calibration: no record for serial {} in the rig's `calibration:`",
                serial.as_deref().unwrap_or("(unknown)")
            ),
        ),
        Calibration::Unreadable { due } => f.add(
            Verdict::Fail,
            format!(
                "calibration: due date `{due}` for {} is not YYYY-MM-DD",
                serial.as_deref().unwrap_or_default()
            ),
        ),
        Calibration::Expired { due, days_over } => f.add(
            Verdict::Fail,
            format!(
                "calibration: overdue since {due} ({days_over} days); do not use it for \
                 evidence until it is calibrated"
            ),
        ),
        Calibration::Valid {
            due,
            days_left: Some(left),
        } if left <= calibration::DUE_SOON_DAYS => f.add(
            Verdict::Warn,
            format!("calibration: due {due}, in {left} days"),
        ),
        Calibration::Valid { due, .. } => f.add(Verdict::Pass, format!("calibration: due {due}")),
    }
    f
}

/// Check every instrument of the session's rig and print the findings (`as_json`: one JSON
/// object); the exit code: 0 every instrument passed, 1 a check failed.
pub async fn check(session: &Session, as_json: bool) -> i32 {
    let today = today();
    let mut worst = Verdict::Pass;
    let mut report = Vec::new();
    for inst in &session.rig.instruments {
        let f = check_one(session, inst, &today).await;
        if f.verdict != Verdict::Skip {
            worst = worst.max(f.verdict);
        }
        if as_json {
            report.push(json!({
                "id": inst.id,
                "role": inst.role,
                "dialect": inst.dialect,
                "address": inst.address,
                "verdict": match f.verdict {
                    Verdict::Pass => "pass",
                    Verdict::Warn => "warn",
                    Verdict::Skip => "skip",
                    Verdict::Fail => "fail",
                },
                "idn": f.idn,
                "errors": f.errors.iter().map(|(c, m)| json!({"code": c, "message": m})).collect::<Vec<_>>(),
                "calibration_due": f.calibration_due,
                "findings": f.lines.iter().map(|(_, l)| l).collect::<Vec<_>>(),
            }));
        } else {
            println!(
                "{} ({}, {}): {}",
                inst.id,
                inst.dialect.as_deref().unwrap_or("CAN"),
                inst.address
                    .as_deref()
                    .or(inst.bus.as_deref())
                    .unwrap_or("-"),
                f.verdict.word()
            );
            for (verdict, line) in &f.lines {
                let mark = match verdict {
                    Verdict::Fail => "✗",
                    Verdict::Warn => "!",
                    _ => " ",
                };
                println!("  {mark} {line}");
            }
        }
    }
    let failed = worst == Verdict::Fail;
    if as_json {
        println!(
            "{}",
            json!({
                "station": session.rig.station,
                "date": today,
                "passed": !failed,
                "instruments": report,
            })
        );
    } else if failed {
        println!("instruments check: FAILED");
    } else {
        println!("instruments check: passed");
    }
    if failed {
        EXIT_FAILED
    } else {
        0
    }
}

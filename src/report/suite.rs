//! One bundle per suite run: the suite run directory `<stamp>-<suite>/` holds one sealed
//! bundle per plan (`<plan>/`, run id `<suite run id>/<plan>`), the suite's `junit.xml`,
//! `suite.json` (every plan with its outcome), `report.html` (the suite report, linking each
//! member's report) and a `manifest.json` + `manifest.sig` over every file of every member
//! (their own manifests and signatures included), so `hilrig report verify <suite dir>`
//! checks the whole run and names any member file that changed.

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use super::bundle::{KeyChoice, REPORT_HTML};
use super::html::esc;
use super::manifest::{self, Manifest, ManifestMeta};
use super::{keys, Outcome, ReportError, RunResults};
use crate::trace::rfc3339;
use crate::verdict::Verdict;

/// Version of the `suite.json` layout.
pub const SUITE_SCHEMA: &str = "hilrig.suite/1";
/// File name of the suite summary.
pub const SUITE_INFO: &str = "suite.json";

/// `suite.json`: the suite run and every plan in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteSummary {
    /// Layout version.
    pub schema: String,
    /// Suite run id (the directory name).
    pub suite_run_id: String,
    /// Suite name.
    pub suite: String,
    /// When the suite bundle was sealed (RFC 3339, UTC): the suite report's issue time.
    pub created: String,
    /// Worst outcome over the members.
    pub outcome: Outcome,
    /// Whether every member's results are traceable (None: not assessed).
    pub traceable: Option<bool>,
    /// Who ran it.
    pub operator: Option<String>,
    /// The item tested.
    pub dut_serial: Option<String>,
    /// Simulated bench.
    pub simulated: bool,
    /// Virtual time.
    pub virtual_time: bool,
    /// The plans, in run order.
    pub members: Vec<SuiteMember>,
}

/// One plan of a suite run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteMember {
    /// Plan id.
    pub plan: String,
    /// Plan title.
    pub title: String,
    /// Run id (`<suite run id>/<plan>`).
    pub run_id: String,
    /// Directory inside the suite run directory.
    pub dir: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Tests passed, failed, inconclusive.
    pub passed: usize,
    /// See `passed`.
    pub failed: usize,
    /// See `passed`.
    pub inconclusive: usize,
}

/// The worst outcome of several runs (aborted > failed > inconclusive > passed); aborted
/// when there are none.
pub fn worst(runs: &[RunResults]) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Passed => 0,
        Outcome::Inconclusive => 1,
        Outcome::Failed => 2,
        Outcome::Aborted => 3,
    };
    runs.iter()
        .map(|r| r.outcome)
        .max_by_key(|o| rank(*o))
        .unwrap_or(Outcome::Aborted)
}

/// The summary of a suite run whose members wrote `runs` into `<top>/<plan>/`.
pub fn summary(suite: &str, suite_run_id: &str, runs: &[RunResults]) -> SuiteSummary {
    let first = runs.first().map(|r| &r.context);
    let count = |r: &RunResults, v| r.tests.iter().filter(|t| t.verdict == v).count();
    SuiteSummary {
        schema: SUITE_SCHEMA.into(),
        suite_run_id: suite_run_id.into(),
        suite: suite.into(),
        created: rfc3339(SystemTime::now()),
        outcome: worst(runs),
        traceable: runs
            .iter()
            .map(|r| r.context.traceable)
            .try_fold(true, |acc, t| t.map(|t| acc && t)),
        operator: first.and_then(|c| c.operator.clone()),
        dut_serial: first.and_then(|c| c.dut_serial.clone()),
        simulated: first.is_some_and(|c| c.simulated),
        virtual_time: first.is_some_and(|c| c.virtual_time),
        members: runs
            .iter()
            .map(|r| SuiteMember {
                plan: r.plan.clone(),
                title: r.title.clone(),
                run_id: r.run_id.clone(),
                dir: r.plan.clone(),
                outcome: r.outcome,
                passed: count(r, Verdict::Pass),
                failed: count(r, Verdict::Fail),
                inconclusive: count(r, Verdict::Inconclusive),
            })
            .collect(),
    }
}

/// The outcome in capitals, as the suite summary and the PDF write it.
pub(super) fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "PASSED",
        Outcome::Failed => "FAILED",
        Outcome::Inconclusive => "INCONCLUSIVE",
        Outcome::Aborted => "ABORTED",
    }
}

/// The suite report: every plan with its outcome, linking its own report.
pub fn render(s: &SuiteSummary) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Suite {}</title>\
         <style>body{{font:10.5pt/1.35 \"DejaVu Sans\",Arial,sans-serif;max-width:190mm;margin:auto;padding:6mm}}\
         table{{border-collapse:collapse;width:100%}}th,td{{border:1px solid #bbb;padding:1mm 2mm;text-align:left}}\
         .PASSED{{color:#176b2c}}.FAILED,.ABORTED{{color:#b00020}}.INCONCLUSIVE{{color:#8a5a00}}\
         .flag{{border:2px solid #b00020;padding:2mm;margin:2mm 0}}</style></head><body>",
        esc(&s.suite)
    );
    let _ = write!(
        h,
        "<h1>Suite report: {}</h1><p>Suite run <b>{}</b> · issued {}</p>\
         <p>Overall verdict: <b class=\"{}\">{}</b>{}</p>",
        esc(&s.suite),
        esc(&s.suite_run_id),
        esc(&s.created),
        outcome_word(s.outcome),
        outcome_word(s.outcome),
        if s.traceable == Some(false) {
            " — <b class=\"FAILED\">NOT TRACEABLE</b> (see the members' calibration)"
        } else {
            ""
        }
    );
    if s.simulated || s.virtual_time {
        let _ = write!(
            h,
            "<div class=\"flag\">{}{}</div>",
            if s.simulated {
                "<b>SIMULATED BENCH</b>: not evidence about a physical product. "
            } else {
                ""
            },
            if s.virtual_time {
                "<b>VIRTUAL TIME</b>: times are simulated seconds."
            } else {
                ""
            }
        );
    }
    let _ = write!(
        h,
        "<p>Operator: {} · DUT serial number: {}</p>",
        esc(s.operator.as_deref().unwrap_or("not recorded")),
        esc(s.dut_serial.as_deref().unwrap_or("not recorded"))
    );
    h.push_str(
        "<table><tr><th>#</th><th>Plan</th><th>Run id</th><th>Outcome</th><th>Tests (pass / fail / inconclusive)</th><th>Report</th></tr>",
    );
    for (i, m) in s.members.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}<br><small>{}</small></td><td>{}</td><td class=\"{}\">{}</td>\
             <td>{} / {} / {}</td><td><a href=\"{}/{REPORT_HTML}\">{}/{REPORT_HTML}</a></td></tr>",
            i + 1,
            esc(&m.plan),
            esc(&m.title),
            esc(&m.run_id),
            outcome_word(m.outcome),
            outcome_word(m.outcome),
            m.passed,
            m.failed,
            m.inconclusive,
            esc(&m.dir),
            esc(&m.dir)
        );
    }
    h.push_str(
        "</table><p><small>Each plan is a signed bundle of its own; this suite run is one \
         bundle over all of them: check it with <code>hilrig report verify DIR</code>.</small></p></body></html>\n",
    );
    h
}

/// Seal the suite run directory `top`: `suite.json`, the suite `report.html`, and a
/// manifest over every file below it (members included), signed with the station key when
/// there is one (`key`).
pub fn seal(
    top: &Path,
    suite: &str,
    suite_run_id: &str,
    runs: &[RunResults],
    key: KeyChoice,
) -> Result<Manifest, ReportError> {
    let s = summary(suite, suite_run_id, runs);
    let spath = top.join(SUITE_INFO);
    let text = serde_json::to_string_pretty(&s)
        .map_err(|e| ReportError::invalid(&spath, e.to_string()))?;
    crate::durable::write(&spath, text + "\n").map_err(|e| ReportError::io(&spath, e))?;
    let hpath = top.join(REPORT_HTML);
    crate::durable::write(&hpath, render(&s)).map_err(|e| ReportError::io(&hpath, e))?;
    let key = match key {
        KeyChoice::Default => keys::load_default()?,
        KeyChoice::Unsigned => None,
        KeyChoice::Key(k) => Some(*k),
    };
    manifest::write(
        top,
        ManifestMeta {
            run_id: suite_run_id.into(),
            station: runs.first().map(|r| r.station.clone()).unwrap_or_default(),
            created: s.created.clone(),
            firmware: runs.first().and_then(|r| r.firmware.clone()),
            original_manifest_sha256: None,
        },
        key.as_ref(),
    )
}

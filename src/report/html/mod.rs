//! `report.html`: one self-contained page (inline CSS and SVG, nothing fetched, printable to
//! A4) holding what a statement of conformity needs: the item, firmware, station, operator,
//! dates, overall verdict and decision rule on the cover; per test the plots, the measured
//! values with uncertainty against each limit and the limit's provenance; the instruments
//! with their calibration; a PAS 63100-style section when the plan claims PAS 63100.
//!
//! Written with a small escaping writer rather than a template crate. The page is rebuilt
//! from the stored data alone (`hilrig report render`), and the same data give the same
//! bytes, so a re-rendered report still matches a manifest written by the same version.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::bundle::{BundleInfo, BUNDLE_INFO};
use super::inputs::{
    parse_yaml, spec_for, FixtureView, LimitsView, PlanView, RigView, TestSpec, TruthEvent,
};
use super::rejudge::RejudgeOrigin;
use super::series::{read_trace, Traces};
use super::{MeasurementResult, Outcome, ReportError, RunResults};
use crate::units::display_unit;
use crate::verdict::{DecisionRule, Verdict};
use cal_table::{calibration_rows, CalRow, CalStatus};
pub use pas::claims_standard;
use pas::pas_section;
use per_test::{overview, test_section, watchdog_paragraph};

mod cal_table;
mod pas;
mod per_test;

/// Plot width in px (also the decimation resolution).
pub const PLOT_WIDTH: u32 = 760;
const PLOT_HEIGHT: u32 = 210;
/// Seconds shown before the stimulus starts and after the trip.
const PRE_S: f64 = 1.0;
const POST_S: f64 = 3.0;
/// PAS 63100 energy caps (Wh): inside a dwelling, and outdoors or in a detached building.
pub const PAS_CAP_INDOOR_WH: f64 = 40_000.0;
/// See `PAS_CAP_INDOOR_WH`.
pub const PAS_CAP_OUTDOOR_WH: f64 = 80_000.0;

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Everything the report is built from, read from a run (or re-judged) directory.
#[derive(Debug, Default)]
pub struct ReportData {
    /// The results (re-judged ones for a `rejudge-*` directory).
    pub results: Option<RunResults>,
    /// For a re-judged result: what it re-judges.
    pub rejudged_from: Option<RejudgeOrigin>,
    /// `bundle.json` of the run.
    pub info: Option<BundleInfo>,
    /// Rig copy.
    pub rig: Option<RigView>,
    /// Fixture copy.
    pub fixture: Option<FixtureView>,
    /// Plan copy.
    pub plan: Option<PlanView>,
    /// Limit profile copy (the revised one for a re-judged result).
    pub limits: Option<LimitsView>,
    /// The channels the plots need.
    pub traces: Traces,
    /// Ground truth of the simulated bench, when present.
    pub truth: Vec<TruthEvent>,
    /// Problems met while reading, shown in the report.
    pub notes: Vec<String>,
    /// When this report was issued: its own bundle's sealing time (a re-judged result's,
    /// not the original run's).
    pub issued: Option<String>,
}

fn read_text(path: &Path, notes: &mut Vec<String>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            notes.push(format!("{}: {e}", path.display()));
            None
        }
    }
}

/// The directory holding the run's data: the parent for a re-judged result.
pub fn data_dir(dir: &Path, rejudged: bool) -> PathBuf {
    if rejudged {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Read everything the report needs from a run directory (or a `rejudge-*` directory).
pub fn load(dir: &Path) -> Result<ReportData, ReportError> {
    let results = RunResults::read(dir)?;
    let mut d = ReportData {
        rejudged_from: RejudgeOrigin::read(dir),
        ..ReportData::default()
    };
    let base = data_dir(dir, d.rejudged_from.is_some());
    let notes = &mut d.notes;
    d.info = match BundleInfo::read(&base) {
        Ok(i) => Some(i),
        Err(e) => {
            if base.join(BUNDLE_INFO).exists() {
                notes.push(e.to_string());
            }
            None
        }
    };
    let own_info = if d.rejudged_from.is_some() {
        BundleInfo::read(dir).ok()
    } else {
        None
    };
    d.issued = own_info
        .as_ref()
        .or(d.info.as_ref())
        .map(|i| i.created.clone());
    let input = |role: &str, notes: &mut Vec<String>| -> Option<String> {
        let (root, info) = match (&own_info, role) {
            (Some(i), _) if i.input(role).is_some() => (dir, i),
            _ => (base.as_path(), d.info.as_ref()?),
        };
        read_text(&root.join(info.input(role)?), notes)
    };
    macro_rules! view {
        ($role:literal, $t:ty) => {
            input($role, notes).and_then(|t| {
                let v = parse_yaml::<$t>(&t);
                if v.is_none() {
                    notes.push(format!("the {} copy could not be read", $role));
                }
                v
            })
        };
    }
    let rig = view!("rig", RigView);
    let fixture = view!("fixture", FixtureView);
    let plan = view!("plan", PlanView);
    let limits = view!("limits", LimitsView);
    let specs = plan.as_ref().map(|p| p.tests()).unwrap_or_default();
    let mut wanted: BTreeSet<String> = ["supply.i", "load.i", "bms.pack.i"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for s in &specs {
        if let Some(c) = &s.stimulus_channel {
            wanted.insert(c.clone());
            if let Some(m) = measured_counterpart(c) {
                wanted.insert(m);
            }
        }
        wanted.extend(s.detect_signals.iter().cloned());
    }
    let tpath = base.join("trace.csv");
    let want = |ch: &str, unit: &str| {
        wanted.contains(ch)
            || unit == "degC"
            || unit == "°C"
            || ch.ends_with("_set")
            || (unit.is_empty() && ch.starts_with("bms."))
    };
    d.traces = match read_trace(&tpath, &want) {
        Ok(t) => t,
        Err(e) => {
            notes.push(format!("{e}; plots are empty"));
            Traces::default()
        }
    };
    if d.traces.bad_rows > 0 {
        notes.push(format!(
            "trace.csv: {} unreadable rows were skipped",
            d.traces.bad_rows
        ));
    }
    let truth_path = base.join("truth.json");
    if truth_path.exists() {
        match std::fs::read_to_string(&truth_path)
            .ok()
            .and_then(|t| serde_json::from_str::<Vec<TruthEvent>>(&t).ok())
        {
            Some(t) => d.truth = t,
            None => notes.push("truth.json could not be read".into()),
        }
    }
    d.rig = rig;
    d.fixture = fixture;
    d.plan = plan;
    d.limits = limits;
    d.results = Some(results);
    Ok(d)
}

/// Render the report of a directory.
pub fn render_dir(dir: &Path) -> Result<String, ReportError> {
    Ok(render(&load(dir)?))
}

/// The BMS-reported channel beside a setpoint channel (`cells.cell[5].v_set` -> `cell[5].v`).
fn measured_counterpart(set: &str) -> Option<String> {
    let s = set.strip_prefix("cells.")?;
    s.strip_suffix("_set").map(str::to_string)
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Inconclusive => "inc",
        Verdict::Fail => "fail",
    }
}

fn outcome_word(o: Outcome) -> (&'static str, &'static str) {
    match o {
        Outcome::Passed => ("PASSED", "pass"),
        Outcome::Failed => ("FAILED", "fail"),
        Outcome::Inconclusive => ("INCONCLUSIVE", "inc"),
        Outcome::Aborted => ("ABORTED", "fail"),
    }
}

fn rule_text(r: DecisionRule) -> (&'static str, &'static str) {
    match r {
        DecisionRule::Simple => (
            "simple acceptance",
            "A result passes when the measured value lies within the limit; the measurement \
             uncertainty is stated but not subtracted (ILAC-G8 simple acceptance, shared risk).",
        ),
        DecisionRule::Guarded => (
            "guarded acceptance",
            "A result passes only when the whole interval value ± expanded uncertainty lies \
             within the limit, fails only when it lies wholly outside, and is inconclusive \
             otherwise (ILAC-G8 guarded acceptance, guard band = the expanded uncertainty).",
        ),
    }
}

fn unit_norm(u: &str) -> &str {
    if u == "degC" {
        "°C"
    } else {
        u
    }
}

/// Add `hours` of seconds to an RFC 3339 anchor for display (`+ 14.5 s`).
fn at_offset(anchor: &str, s: f64) -> String {
    format!("{anchor} + {s:.1} s")
}

const CSS: &str = r#"
@page { size: A4; margin: 14mm 12mm; }
h2, h3 { break-after: avoid; page-break-after: avoid; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.35 "DejaVu Sans", Arial, Helvetica, sans-serif; color: #111; margin: 0 auto; max-width: 190mm; padding: 6mm; }
h1 { font-size: 18pt; margin: 0 0 2mm; } h2 { font-size: 13.5pt; margin: 7mm 0 2mm; border-bottom: 1.5px solid #333; }
h3 { font-size: 11.5pt; margin: 4mm 0 1.5mm; }
table { border-collapse: collapse; width: 100%; margin: 1.5mm 0 3mm; font-size: 9pt; }
th, td { border: 1px solid #bbb; padding: 1.2mm 1.6mm; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.kv th { width: 32%; }
table.meas tr.m td { border-bottom: none; } table.meas tr.m + tr td { border-top: none; padding-top: 0; }
.badge { display: inline-block; padding: 1mm 4mm; border-radius: 2mm; font-weight: bold; color: #fff; }
.big { font-size: 20pt; padding: 2mm 7mm; }
.pass { background: #2b8a3e; } .fail { background: #c92a2a; } .inc { background: #e67700; }
.v-pass { color: #2b8a3e; font-weight: bold; } .v-fail { color: #c92a2a; font-weight: bold; } .v-inc { color: #e67700; font-weight: bold; }
.flag { border: 2px solid #c92a2a; background: #fff5f5; padding: 2mm 3mm; margin: 2mm 0; }
.note { border: 1px solid #e67700; background: #fff9db; padding: 1.5mm 3mm; margin: 2mm 0; }
.small { font-size: 8.5pt; color: #444; } .mono { font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; word-break: break-all; }
svg.plot { width: 100%; height: auto; display: block; margin: 1mm 0 2mm; }
svg .pt { font-size: 12px; font-weight: bold; } svg .tk { font-size: 10px; fill: #333; } svg .lb { font-size: 10px; }
section.test { break-before: page; }
.avoid { break-inside: avoid; }
footer { margin-top: 8mm; font-size: 8pt; color: #555; border-top: 1px solid #aaa; padding-top: 2mm; }
@media print { body { padding: 0; max-width: none; } }
"#;

/// Render the page.
pub fn render(d: &ReportData) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let Some(r) = &d.results else {
        return "<!DOCTYPE html><html><body><p>No results.</p></body></html>".into();
    };
    let specs: Vec<TestSpec> = d.plan.as_ref().map(|p| p.tests()).unwrap_or_default();
    let run_date = r.clock_anchor.get(..10).unwrap_or("").to_string();
    let (ow, oc) = outcome_word(r.outcome);
    let (rule_name, rule_desc) = rule_text(r.decision_rule);
    let title = format!("{} — {}", r.title, r.dut);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head><body>",
        esc(&title),
        CSS
    );

    // ---- Cover ----
    let _ = write!(
        h,
        "<header><h1>Test report: {}</h1><p class=\"small\">Plan <b>{}</b> · run <span class=\"mono\">{}</span></p>",
        esc(&r.title),
        esc(&r.plan),
        esc(&r.run_id)
    );
    if let Some(o) = &d.rejudged_from {
        let _ = write!(
            h,
            "<div class=\"note\"><b>Re-judged result.</b> The measurements of run {} were judged again against the limit profile <b>{}</b> on {}, without new measurements. Original manifest SHA-256: <span class=\"mono\">{}</span>; original outcome: {}.</div>",
            esc(&r.run_id),
            esc(&r.limit_profile),
            esc(&o.at),
            esc(&o.original_manifest_sha256),
            esc(&o.original_outcome)
        );
    }
    let ctx = &r.context;
    let trace_mark = match ctx.traceable {
        Some(false) => " <span class=\"badge big v-fail\">NOT TRACEABLE</span>",
        _ => "",
    };
    let _ = write!(
        h,
        "<p>Overall verdict: <span class=\"badge big {oc}\">{ow}</span>{trace_mark}</p>"
    );
    if ctx.simulated || ctx.virtual_time {
        let _ = write!(
            h,
            "<div class=\"flag\"><b>{}</b>{}</div>",
            if ctx.simulated {
                "SIMULATED BENCH — not a physical test: instruments and BMS are simulated; not evidence about a physical product."
            } else {
                ""
            },
            if ctx.virtual_time {
                " <b>VIRTUAL TIME:</b> the run ran on a paused clock; its times are simulated seconds, so run start and end are not wall-clock times."
            } else {
                ""
            }
        );
    }
    if !ctx.not_traceable_because.is_empty() {
        let _ = write!(
            h,
            "<div class=\"flag\"><b>Not traceable:</b> {}</div>",
            esc(&ctx.not_traceable_because.join("; "))
        );
    }
    h.push_str("</header>");

    // Calibration status, needed on the cover.
    let cal = calibration_rows(d, &run_date);
    let expired: Vec<&CalRow> = cal
        .iter()
        .filter(|c| c.status == CalStatus::Expired)
        .collect();
    if !expired.is_empty() {
        let _ = write!(
            h,
            "<div class=\"flag\"><b>Calibration expired</b> for {} instrument(s) used in this run: {}. Results measured with them are not traceable.</div>",
            expired.len(),
            esc(&expired
                .iter()
                .map(|c| format!("{} (serial {}, due {})", c.id, c.serial, c.due))
                .collect::<Vec<_>>()
                .join(", "))
        );
    }
    if r.outcome == Outcome::Aborted {
        if let Some(a) = &r.abort {
            let _ = write!(
                h,
                "<div class=\"flag\"><b>Run aborted</b> at t = {:.3} s{}: {}. Safe state reached: <b>{}</b>.</div>",
                a.at_s,
                a.during
                    .as_ref()
                    .map(|x| format!(" during {}", esc(x)))
                    .unwrap_or_default(),
                esc(&a.cause),
                if r.safe_state_reached { "yes" } else { "NO" }
            );
        }
    }
    if !r.not_run.is_empty() {
        let _ = write!(
            h,
            "<div class=\"flag\"><b>{} test(s) did not run</b><ul>",
            r.not_run.len()
        );
        for n in &r.not_run {
            let _ = write!(h, "<li>{}: {}</li>", esc(&n.name), esc(&n.reason));
        }
        h.push_str("</ul></div>");
    }

    let fx = d.fixture.as_ref();
    let info = d.info.as_ref();
    let fw = r.firmware.as_ref();
    let end_s = r.duration_s;
    let mut kv: Vec<(&str, String)> = vec![
        (
            "Device under test",
            format!(
                "{}{}",
                esc(&r.dut),
                fx.map(|f| format!(
                    " — {} ({}{})",
                    esc(&f.title),
                    esc(&f.chemistry),
                    f.cells_in_series
                        .map(|n| format!(", {n} cells in series"))
                        .unwrap_or_default()
                ))
                .unwrap_or_default()
            ),
        ),
        ("DUT serial number", esc(&ctx.dut_serial_text())),
        (
            "Firmware",
            match fw {
                Some(f) => format!(
                    "{} version {}<br><span class=\"mono\">SHA-256 {}</span>",
                    esc(&f.id),
                    esc(&f.version),
                    esc(&f.sha256)
                ),
                None => "not recorded (the rig did not report the firmware image)".into(),
            } + &ctx
                .firmware_source
                .as_ref()
                .map(|s| format!("<br><span class=\"small\">{}</span>", esc(s)))
                .unwrap_or_default(),
        ),
        ("Station", esc(&r.station)),
        ("Tests selected", esc(&ctx.selection_text())),
        (
            "Operator (tested by)",
            esc(&match (&ctx.operator, info) {
                (None, Some(i)) if ctx.traceable.is_none() => i.operator.clone(),
                _ => ctx.operator_text(),
            }),
        ),
        ("Ambient", esc(&ctx.ambient_text())),
        ("Traceability", esc(ctx.traceable_text())),
        ("Test date (run start, UTC)", esc(&r.clock_anchor)),
        (
            "Run end",
            format!(
                "{} ({:.1} s)",
                esc(&at_offset(&r.clock_anchor, end_s)),
                end_s
            ),
        ),
        (
            "Report issued",
            esc(d.issued.as_deref().unwrap_or("not recorded")),
        ),
        ("Requirements", esc(&r.requirements.join("; "))),
        (
            "Limit profile",
            format!(
                "{}{}",
                esc(&r.limit_profile),
                d.limits
                    .as_ref()
                    .map(|l| format!(" — {}", esc(&l.title)))
                    .unwrap_or_default()
            ),
        ),
        (
            "Decision rule",
            format!("<b>{}</b>. {}", rule_name, rule_desc),
        ),
        ("Results", {
            let c = |v| r.tests.iter().filter(|t| t.verdict == v).count();
            format!(
                "{} test(s): {} passed, {} failed, {} inconclusive",
                r.tests.len(),
                c(Verdict::Pass),
                c(Verdict::Fail),
                c(Verdict::Inconclusive)
            )
        }),
        (
            "Safe state at the end",
            if r.safe_state_reached {
                "reached (every action confirmed)".into()
            } else {
                "<b>NOT reached</b>: see the safe-state table".into()
            },
        ),
        (
            "Tool",
            esc(&info
                .map(|i| format!("{} {}", i.tool.name, i.tool.version))
                .unwrap_or_else(|| format!("hilrig {}", env!("CARGO_PKG_VERSION")))),
        ),
    ];
    if d.rig.as_ref().is_some_and(|g| g.simulation.is_some()) {
        kv.push((
            "Bench",
            "the built-in <b>simulated bench</b>: instruments and BMS are simulated; these results are not evidence about a physical product".into(),
        ));
    }
    h.push_str("<table class=\"kv\">");
    for (k, v) in &kv {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), v);
    }
    h.push_str("</table>");

    // Deviations and notes.
    let mut deviations: Vec<String> = Vec::new();
    if let Some(l) = &d.limits {
        if let Some(asked) = &l.decision_rule {
            let used = format!("{:?}", r.decision_rule).to_lowercase();
            if *asked != used {
                deviations.push(format!(
                    "decision rule: the limit profile asks for {asked}; this run used {used} (overridden)"
                ));
            }
        }
    }
    if let Some(i) = info {
        deviations.extend(
            i.missing_inputs
                .iter()
                .map(|m| format!("input not kept: {m}")),
        );
    }
    deviations.extend(d.notes.iter().cloned());
    if !deviations.is_empty() {
        h.push_str("<div class=\"note\"><b>Deviations and notes</b><ul>");
        for x in &deviations {
            let _ = write!(h, "<li>{}</li>", esc(x));
        }
        h.push_str("</ul></div>");
    }

    // Summary table.
    h.push_str("<h2>Summary</h2><table><tr><th>Test</th><th>Verdict</th><th>Measured</th></tr>");
    for t in &r.tests {
        let ms: Vec<String> = t
            .measurements
            .iter()
            .map(|m| format!("{}: {}", esc(&m.criterion), esc(&measured_text(m))))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"v-{}\">{}</td><td class=\"small\">{}</td></tr>",
            esc(&t.name),
            verdict_class(t.verdict),
            t.verdict.word(),
            if ms.is_empty() {
                esc(t.message.as_deref().unwrap_or(""))
            } else {
                ms.join("<br>")
            }
        );
    }
    h.push_str("</table>");
    if !r.statistics.is_empty() {
        h.push_str("<h3>Over the repeats</h3><table><tr><th>Test</th><th>Criterion</th><th>n</th><th>min</th><th>mean</th><th>max</th></tr>");
        for st in &r.statistics {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&st.test),
                esc(&st.criterion),
                st.n,
                esc(&display_unit(st.min, &st.unit)),
                esc(&display_unit(st.mean, &st.unit)),
                esc(&display_unit(st.max, &st.unit))
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<p class=\"small\">The raw samples ({} rows) are in <span class=\"mono\">trace.csv</span> beside this report; the plots below are reduced to the minimum and maximum per pixel column. This report is part of a signed evidence bundle: check it with <span class=\"mono\">hilrig report verify DIR</span>.</p>",
        r.trace_rows
    );

    // ---- Instruments ----
    h.push_str("<h2>Instruments and calibration</h2>");
    if cal.is_empty() {
        h.push_str("<p>The rig copy lists no instruments.</p>");
    } else {
        h.push_str("<table><tr><th>Id</th><th>Role</th><th>Identity</th><th>Address</th><th>Serial</th><th>Calibration due</th><th>Status</th></tr>");
        for c in &cal {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&c.id),
                esc(&c.role),
                esc(&c.identity),
                esc(&c.address),
                esc(&c.serial),
                esc(&c.due),
                match c.status {
                    CalStatus::Valid => "v-pass",
                    CalStatus::Expired => "v-fail",
                    _ => "v-inc",
                },
                c.status.text()
            );
        }
        h.push_str("</table><p class=\"small\">Calibration is judged at the test date; records come from the rig file's <span class=\"mono\">calibration:</span> map (serial → due date). The identity is each SCPI instrument's own answer to <span class=\"mono\">*IDN?</span> at connect; a run refuses an instrument whose reported serial number is not the rig file's.</p>");
    }

    // ---- PAS 63100 (only when the plan claims it) ----
    if claims_standard(r, "PAS 63100") {
        pas_section(&mut h, d, r, &specs);
    }

    // ---- Overview plot ----
    overview(&mut h, d, r, &specs);

    // ---- Per test ----
    for (i, t) in r.tests.iter().enumerate() {
        let next_start = r.tests.get(i + 1).map(|n| n.started_s);
        test_section(
            &mut h,
            d,
            r,
            t,
            spec_for(&specs, &t.test, &t.name),
            next_start,
        );
    }

    // ---- Safe state ----
    h.push_str("<h2>Safe state at the end of the run</h2>");
    if r.safe_state.is_empty() {
        h.push_str("<p>No safe-state action was recorded.</p>");
    } else {
        h.push_str("<table><tr><th>Instrument</th><th>Action</th><th>Result</th></tr>");
        for s in &r.safe_state {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&s.instrument),
                esc(&s.action),
                match (s.ok, s.confirmed) {
                    (true, true) => "v-pass",
                    (true, false) => "v-inc",
                    (false, _) => "v-fail",
                },
                esc(&s.outcome_text())
            );
        }
        h.push_str("</table>");
    }
    if let Some(w) = &r.watchdog {
        h.push_str(&watchdog_paragraph(w));
    }

    // ---- Inputs ----
    if let Some(i) = info {
        h.push_str("<h2>Inputs kept in the bundle</h2><table><tr><th>Role</th><th>Copy</th><th>Given as</th><th>SHA-256</th></tr>");
        for c in &i.inputs {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
                esc(&c.role),
                esc(&c.path),
                esc(&c.original),
                esc(&c.sha256)
            );
        }
        h.push_str("</table>");
    }
    let _ = writeln!(
        h,
        "<footer>{} · run {} · {} · the standards are summarised, not quoted; check each limit's provenance against your licensed copy.</footer></body></html>",
        esc(&info
            .map(|i| format!("{} {}", i.tool.name, i.tool.version))
            .unwrap_or_else(|| format!("hilrig {}", env!("CARGO_PKG_VERSION")))),
        esc(&r.run_id),
        esc(&title)
    );
    h
}

/// A measured value with its uncertainty, or `yes`/`no` for a check that holds or not.
fn measured_text(m: &MeasurementResult) -> String {
    if super::pdf::is_yes_no(&m.quantity, &m.unit, m.value) {
        if m.value == 1.0 { "yes" } else { "no" }.to_string()
    } else {
        crate::verdict::gum::stated(m.value, m.uncertainty, &m.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::per_test::stimulus_marker_time;
    use super::*;
    use crate::report::series::Channel;

    /// The cover says SIMULATED only for a simulated bench, and names the selected tests.
    #[rstest::rstest]
    #[case::simulated(true, &["OV cell 5"], true, "only OV cell 5 (run --test)")]
    #[case::physical(false, &[], false, "all tests of the plan")]
    fn the_cover_marks_a_simulated_bench_and_the_selection(
        #[case] simulated: bool,
        #[case] selected: &[&str],
        #[case] banner: bool,
        #[case] selection: &str,
    ) {
        let d = ReportData {
            results: Some(crate::report::test_support::results(simulated, selected)),
            ..Default::default()
        };
        let html = render(&d);
        assert_eq!(
            html.contains("SIMULATED BENCH — not a physical test"),
            banner,
            "{html}"
        );
        assert_eq!(html.contains("SIMULATED"), banner);
        assert!(html.contains("Tests selected"), "{html}");
        assert!(html.contains(&esc(selection)), "{html}");
    }

    #[rstest::rstest]
    #[case::disarmed(None, "armed (5 s) for the run; disarmed at the end.</p>")]
    #[case::left_armed(
        Some("disarming it failed: <no reply>"),
        "armed (5 s) for the run; <span class=\"v-inc\">left armed</span>: disarming it \
         failed: &lt;no reply&gt;.</p>"
    )]
    fn the_watchdog_is_reported_under_the_safe_state(
        #[case] left_armed: Option<&str>,
        #[case] tail: &str,
    ) {
        let w = crate::report::WatchdogRecord {
            instrument: "psu".into(),
            armed_s: 5.0,
            disarmed: left_armed.is_none(),
            left_armed: left_armed.map(str::to_string),
        };
        let p = watchdog_paragraph(&w);
        assert!(p.ends_with(tail), "{p}");
        assert!(p.contains("<span class=\"mono\">psu</span>"), "{p}");
    }

    /// The setpoint of the overcharge plan's step test: 3.3 V before the test, the pre-step
    /// hold at 3.6 V from the test's start (0.1 s), the step to 3.7 V at 4.1 s.
    fn step_setpoint() -> Channel {
        Channel {
            unit: "V".into(),
            t: vec![0.04, 0.1, 4.1, 6.2],
            v: vec![3.3, 3.6, 3.7, 3.3],
        }
    }

    #[rstest::rstest]
    #[case::step_marker_at_the_step(Some("step"), 4.1)]
    #[case::ramp_marker_at_the_start(Some("ramp"), 0.1)]
    #[case::unknown_kind_at_the_start(None, 0.1)]
    fn stimulus_marker_is_at_the_step_not_the_pre_step_hold(
        #[case] kind: Option<&str>,
        #[case] want: f64,
    ) {
        let ch = step_setpoint();
        assert_eq!(stimulus_marker_time(kind, Some(&ch), 0.1, 6.2), want);
    }

    #[test]
    fn step_marker_without_a_step_before_detection_stays_at_the_start() {
        let ch = step_setpoint();
        assert_eq!(stimulus_marker_time(Some("step"), Some(&ch), 0.1, 3.0), 0.1);
        assert_eq!(stimulus_marker_time(Some("step"), None, 0.1, 6.2), 0.1);
    }
}

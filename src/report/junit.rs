//! `junit.xml` for CI: one test case per test and repeat, with measured values, limits,
//! uncertainty and decision rule as properties.
//!
//! Shape (what Jenkins' JUnit plugin and GitLab's test reports read): `<testsuites>` with one
//! `<testsuite>` per plan, one `<testcase>` per test and repeat with a unique name and a
//! `time`; a failed or inconclusive test has `<failure message=".." type="..">` whose text
//! lists each broken criterion with value, uncertainty, limit, uncertainty budget and
//! provenance. Suite properties: station, DUT, limit profile, decision rule, firmware, run
//! id, clock anchor, and `instrument.<id>` with each SCPI instrument's `*IDN?` answer; the
//! DUT serial, operator, `simulated`, `virtual_time`, one `selected_test` per test that
//! `run --test` chose (none when the plan ran whole), ambient, `calibration.<id>` (serial,
//! due date, status), `traceable` and each `not_traceable` reason. Test
//! case properties: requirements, and per criterion
//! `<criterion>.value|uncertainty|limit|verdict|provenance`, and the decision rule. An
//! aborted run adds a `run` test case with an `<error>`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{Outcome, RunResults};
use crate::units::display_unit;
use crate::verdict::gum::{clean, round_stated, stated};
use crate::verdict::Verdict;

/// Build the JUnit report for a run.
pub fn build(r: &RunResults) -> Report {
    let mut report = Report::new(format!("hilrig {}", r.run_id));
    report.set_time(secs(r.duration_s));
    report.add_test_suite(suite(r));
    report
}

/// Build one JUnit report for several runs (a suite): one test suite per plan.
pub fn build_all(name: &str, runs: &[RunResults]) -> Report {
    let mut report = Report::new(format!("hilrig {name}"));
    report.set_time(secs(runs.iter().map(|r| r.duration_s).sum()));
    for r in runs {
        report.add_test_suite(suite(r));
    }
    report
}

/// Write one JUnit report for several runs to `path`.
pub fn write_all(name: &str, runs: &[RunResults], path: &Path) -> std::io::Result<()> {
    let xml = build_all(name, runs)
        .to_string()
        .map_err(std::io::Error::other)?;
    crate::durable::write(path, xml)
}

/// The item, the people, the conditions and the calibration as suite properties.
fn context_properties(suite: &mut TestSuite, c: &super::context::RunContext) {
    let mut add = |k: &str, v: String| {
        suite.add_property(Property::new(k.to_string(), v));
    };
    add("dut_serial", c.dut_serial_text());
    add("operator", c.operator_text());
    if let Some(s) = &c.suite_run_id {
        add("suite_run_id", s.clone());
    }
    if let Some(f) = &c.firmware_source {
        add("firmware_source", f.clone());
    }
    add("simulated", c.simulated.to_string());
    add("virtual_time", c.virtual_time.to_string());
    for name in &c.selected_tests {
        add("selected_test", name.clone());
    }
    add("ambient", c.ambient_text());
    for i in &c.calibration {
        add(
            &format!("calibration.{}", i.id),
            format!(
                "serial {}; due {}; {}",
                i.serial.as_deref().unwrap_or("none"),
                i.due.as_deref().unwrap_or("none"),
                i.status.word()
            ),
        );
    }
    add(
        "traceable",
        match c.traceable {
            Some(t) => t.to_string(),
            None => "not assessed".into(),
        },
    );
    for why in &c.not_traceable_because {
        add("not_traceable", why.clone());
    }
}

fn suite(r: &RunResults) -> TestSuite {
    let mut suite = TestSuite::new(r.plan.clone());
    suite.set_time(secs(r.duration_s));
    suite.add_property(Property::new("run_id", r.run_id.clone()));
    suite.add_property(Property::new("clock_anchor", r.clock_anchor.clone()));
    suite.add_property(Property::new("station", r.station.clone()));
    suite.add_property(Property::new("dut", r.dut.clone()));
    suite.add_property(Property::new("limit_profile", r.limit_profile.clone()));
    suite.add_property(Property::new(
        "decision_rule",
        format!("{:?}", r.decision_rule).to_lowercase(),
    ));
    if let Some(fw) = &r.firmware {
        suite.add_property(Property::new(
            "firmware",
            format!("{} {} sha256:{}", fw.id, fw.version, fw.sha256),
        ));
    }
    for i in &r.instruments {
        suite.add_property(Property::new(format!("instrument.{}", i.id), i.idn.clone()));
    }
    context_properties(&mut suite, &r.context);
    let mut names = BTreeSet::new();
    for t in &r.tests {
        let status = match t.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            v => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let broken: Vec<String> = t
                    .measurements
                    .iter()
                    .filter(|m| m.verdict != Verdict::Pass)
                    .map(|m| {
                        format!(
                            "{} {}: measured {} (k = {}), limit {}{}",
                            m.criterion,
                            m.verdict.word(),
                            stated(m.value, m.uncertainty, &m.unit),
                            m.coverage_factor,
                            limit_text(&m.limit, &m.unit),
                            m.not_determinable
                                .as_ref()
                                .map(|r| format!(" (not determinable: {r})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                let text = t.message.clone().unwrap_or_else(|| broken.join("; "));
                s.set_message(format!("{}: {text}", v.word()));
                s.set_type(v.word());
                s.set_description(failure_text(r, t));
                s
            }
        };
        let mut case = TestCase::new(unique_name(&mut names, &t.name), status);
        if let Some(d) = t.detected_s {
            case.set_time(secs(d - t.started_s));
        }
        case.set_classname(format!("{}.{}", r.plan, r.dut));
        for req in &t.requirements {
            case.add_property(Property::new("requirement", req.clone()));
        }
        for m in &t.measurements {
            let p = |k: &str, v: String| Property::new(format!("{}.{k}", m.criterion), v);
            let (v, u, d) = round_stated(m.value, m.uncertainty);
            let value = if super::pdf::is_yes_no(&m.quantity, &m.unit, m.value) {
                if m.value == 1.0 { "yes" } else { "no" }.to_string()
            } else if !v.is_finite() {
                "not determinable".to_string()
            } else if u > 0.0 {
                format!("{v:.d$} {}", m.unit)
            } else {
                format!("{} {}", clean(v), m.unit)
            };
            case.add_property(p("value", value));
            case.add_property(p("uncertainty", format!("{u:.d$} {}", m.unit)));
            case.add_property(p("coverage_factor", m.coverage_factor.to_string()));
            case.add_property(p("limit", limit_text(&m.limit, &m.unit)));
            case.add_property(p("verdict", m.verdict.word().to_string()));
            case.add_property(p("provenance", provenance_text(m)));
        }
        case.add_property(Property::new(
            "decision_rule",
            format!("{:?}", r.decision_rule).to_lowercase(),
        ));
        suite.add_test_case(case);
    }
    for n in &r.not_run {
        let mut s = TestCaseStatus::skipped();
        s.set_message(n.reason.clone());
        s.set_type("not run");
        let mut case = TestCase::new(unique_name(&mut names, &n.name), s);
        case.set_classname(format!("{}.{}", r.plan, r.dut));
        suite.add_test_case(case);
    }
    if r.outcome == Outcome::Aborted {
        let cause = r
            .abort
            .as_ref()
            .map(|a| a.cause.clone())
            .unwrap_or_default();
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        s.set_message(format!(
            "run aborted: {cause}; safe state reached: {}",
            r.safe_state_reached
        ));
        s.set_type("aborted");
        suite.add_test_case(TestCase::new(unique_name(&mut names, "run"), s));
    }
    suite
}

fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(1e9))
    } else {
        Duration::ZERO
    }
}

/// A test case name not used before in this suite (`name`, `name (2)`, ...).
fn unique_name(used: &mut BTreeSet<String>, name: &str) -> String {
    let mut n = name.to_string();
    let mut k = 2;
    while !used.insert(n.clone()) {
        n = format!("{name} ({k})");
        k += 1;
    }
    n
}

/// The failure body: every criterion with its numbers, what the uncertainty is made of and
/// where the limit comes from, so a reader can act without opening the report.
fn failure_text(r: &RunResults, t: &super::TestResult) -> String {
    let mut out = String::new();
    if let Some(m) = &t.message {
        out.push_str(m);
        out.push('\n');
    }
    for m in &t.measurements {
        out.push_str(&format!(
            "{} [{}] {}: measured {} (expanded, k = {}), limit {}\n  uncertainty: {}\n  limit from: {}\n",
            m.criterion,
            m.quantity,
            m.verdict.word(),
            stated(m.value, m.uncertainty, &m.unit),
            m.coverage_factor,
            limit_text(&m.limit, &m.unit),
            m.uncertainty_budget,
            provenance_text(m)
        ));
    }
    out.push_str(&format!(
        "decision rule: {}; evidence: report.html and trace.csv of run {}",
        format!("{:?}", r.decision_rule).to_lowercase(),
        r.run_id
    ));
    out
}

fn provenance_text(m: &super::MeasurementResult) -> String {
    let p = &m.provenance;
    match &p.clause {
        Some(c) => format!("{} {c} ({})", p.source, p.confidence),
        None => format!("{} ({})", p.source, p.confidence),
    }
}

/// A limit as text, e.g. `3.6000 V .. 3.7000 V` or `<= 3.000 s`.
pub fn limit_text(l: &crate::verdict::Limit, unit: &str) -> String {
    match (l.low, l.high) {
        (Some(a), Some(b)) => format!("{} .. {}", display_unit(a, unit), display_unit(b, unit)),
        (None, Some(b)) => format!("<= {}", display_unit(b, unit)),
        (Some(a), None) => format!(">= {}", display_unit(a, unit)),
        (None, None) => "none".into(),
    }
}

/// Write `junit.xml` to `path`.
pub fn write(r: &RunResults, path: &Path) -> std::io::Result<()> {
    let xml = build(r).to_string().map_err(std::io::Error::other)?;
    crate::durable::write(path, xml)
}

#[cfg(test)]
mod tests {
    use crate::report::test_support::results;

    fn properties(simulated: bool, selected: &[&str], name: &str) -> Vec<String> {
        let xml = super::build_all("s", &[results(simulated, selected)])
            .to_string()
            .unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name("testsuite"))
            .flat_map(|s| s.descendants())
            .filter(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
            .filter_map(|n| n.attribute("value").map(String::from))
            .collect()
    }

    /// `simulated` says true only for the simulated bench.
    #[rstest::rstest]
    #[case::simulated(true, "true")]
    #[case::physical(false, "false")]
    fn each_suite_says_whether_the_bench_was_simulated(
        #[case] simulated: bool,
        #[case] want: &str,
    ) {
        assert_eq!(properties(simulated, &[], "simulated"), [want]);
    }

    /// One `selected_test` per test `run --test` chose; none when the plan ran whole.
    #[rstest::rstest]
    #[case::narrowed(&["OV cell 5", "UV cell 1"])]
    #[case::whole(&[])]
    fn the_selection_is_a_property(#[case] selected: &[&str]) {
        assert_eq!(properties(false, selected, "selected_test"), selected);
    }
}

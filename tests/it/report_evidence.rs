//! What an auditor reads off a run: the item (DUT serial, firmware read back from the BMS),
//! the people (operator), the conditions (ambient and its source), simulated / virtual-time
//! marks and the calibration of every instrument, in results.json, junit.xml and the report.

use std::path::{Path, PathBuf};

use crate::common::{first_run_dir, read_json, root, temp_dir};
use crate::report_support::hilrig;

/// The simulated rig in `dir` with the cell simulator's calibration due on `cells_due`.
fn rig_with_cells_due(dir: &Path, cells_due: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("rig/sim.yaml"))
        .unwrap()
        .replace("../", &format!("{}/", root().display()))
        .replace(
            "SIM-CELLS-0001: 2027-12-31",
            &format!("SIM-CELLS-0001: {cells_due}"),
        );
    let path = dir.join("rig.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(out: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "run",
        "test-plans/overcharge.yaml",
        "--virtual-time",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    hilrig(&args)
}

fn junit_property<'a>(doc: &'a roxmltree::Document, name: &str) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
        .filter_map(|n| n.attribute("value"))
        .collect()
}

#[test]
fn operator_serial_conditions_and_calibration_are_in_every_output() {
    let out = temp_dir("evidence-item");
    let (code, stdout, stderr) = run(
        &out,
        &["--operator", "Ann Example", "--dut-serial", "BMS-SN-0042"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stderr.contains("no operator"), "{stderr}");
    let dir = first_run_dir(&out);

    let r = read_json(&dir.join("results.json"));
    assert_eq!(r["dut_serial"], "BMS-SN-0042");
    assert_eq!(r["operator"], "Ann Example");
    assert_eq!(r["operator_source"], "--operator");
    assert_eq!(r["simulated"], true);
    assert_eq!(r["virtual_time"], true);
    assert_eq!(r["ambient"]["temperature_c"], 25.0);
    assert!(r["ambient"]["source"]
        .as_str()
        .unwrap()
        .contains("simulation.ambient"));
    assert_eq!(r["traceable"], true, "{}", r["not_traceable_because"]);
    let cal = r["calibration"].as_array().unwrap();
    let cells = cal.iter().find(|c| c["role"] == "cell_sim").unwrap();
    assert_eq!(cells["serial"], "SIM-CELLS-0001");
    assert_eq!(cells["due"], "2027-12-31");
    assert_eq!(cal.len(), 3);
    // Not flashed by the plan: the firmware is what the BMS itself reported.
    assert!(
        r["firmware_source"]
            .as_str()
            .unwrap()
            .contains("read back from the BMS's BMS_Version"),
        "{}",
        r["firmware_source"]
    );
    assert_eq!(r["firmware"]["version"], "1.0.0");

    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(junit_property(&doc, "dut_serial"), ["BMS-SN-0042"]);
    assert_eq!(
        junit_property(&doc, "operator"),
        ["Ann Example (from --operator)"]
    );
    assert_eq!(junit_property(&doc, "simulated"), ["true"]);
    assert_eq!(junit_property(&doc, "virtual_time"), ["true"]);
    assert_eq!(junit_property(&doc, "traceable"), ["true"]);
    assert_eq!(
        junit_property(&doc, "calibration.cells"),
        ["serial SIM-CELLS-0001; due 2027-12-31; valid"]
    );

    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for want in [
        "BMS-SN-0042",
        "Ann Example",
        "SIMULATED BENCH",
        "VIRTUAL TIME",
        "25.0 °C, simulated bench",
    ] {
        assert!(html.contains(want), "report.html lacks {want}");
    }
}

#[test]
fn without_operator_or_serial_the_run_warns_and_records_their_absence() {
    let out = temp_dir("evidence-absent");
    let mut args = vec![
        "run",
        "test-plans/overcharge.yaml",
        "--virtual-time",
        "--out",
    ];
    let o = out.to_str().unwrap().to_string();
    args.push(&o);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(&args)
        .current_dir(root())
        .env_remove("HILRIG_OPERATOR")
        .env(
            "HILRIG_KEY",
            std::env::temp_dir().join("hilrig-no-such-key"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("no operator: give --operator NAME or set HILRIG_OPERATOR"),
        "{stderr}"
    );
    assert!(stderr.contains("no DUT serial number"), "{stderr}");
    let dir = first_run_dir(&out);
    let r = read_json(&dir.join("results.json"));
    assert!(r["operator"].is_null() && r["dut_serial"].is_null());
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("not recorded (give --operator or set HILRIG_OPERATOR)"));
    assert!(!html.contains(">unknown<"));
}

#[test]
fn an_expired_cell_simulator_makes_the_results_not_traceable_in_the_data() {
    let out = temp_dir("evidence-expired");
    let rig = rig_with_cells_due(&out, "2020-01-31");
    let rig = rig.to_str().unwrap();
    let (code, _, stderr) = run(&out.join("refused"), &["--rig", rig]);
    assert_eq!(
        code, 2,
        "refused without --allow-expired-calibration: {stderr}"
    );
    assert!(
        stderr.contains("instrument `cells` (serial SIM-CELLS-0001)"),
        "{stderr}"
    );

    let reports = out.join("reports");
    let (code, stdout, stderr) = run(
        &reports,
        &[
            "--rig",
            rig,
            "--allow-expired-calibration",
            "--operator",
            "A",
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let dir = first_run_dir(&reports);
    let r = read_json(&dir.join("results.json"));
    assert_eq!(r["outcome"], "passed");
    assert_eq!(r["traceable"], false);
    let why = r["not_traceable_because"][0].as_str().unwrap();
    assert!(
        why.contains("cells (SIM-CELLS-0001): calibration expired on 2020-01-31"),
        "{why}"
    );
    let cells = r["calibration"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cells")
        .unwrap()
        .clone();
    assert_eq!(cells["status"], "expired");
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(junit_property(&doc, "traceable"), ["false"]);
    assert_eq!(junit_property(&doc, "not_traceable").len(), 1);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("NOT TRACEABLE"));
}

mod distrust {
    use std::path::Path;

    use crate::common::temp_dir;
    use crate::report_support::{hilrig, sealed_run, test_key, LIMITS};
    use hilrig::report::bundle::KeyChoice;
    use hilrig::report::rejudge::{rejudge, RejudgeOptions};

    fn verify(dir: &Path, extra: &[&str]) -> (i32, String) {
        let mut args = vec!["report", "verify", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, out, err) = hilrig(&args);
        (code, format!("{out}{err}"))
    }

    #[test]
    fn an_approval_is_signed_added_without_changing_the_bundle_and_verified() {
        let base = temp_dir("approve");
        let dir = base.join("run");
        sealed_run(&dir, false, true, "");
        let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
        let personal = base.join("personal.key");
        let (code, out, err) = hilrig(&["keygen", "--out", personal.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
        let (code, out, err) = hilrig(&[
            "report",
            "approve",
            dir.to_str().unwrap(),
            "--by",
            "Q. Manager",
            "--key",
            personal.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(std::fs::read(dir.join("manifest.json")).unwrap(), manifest);
        let approval = dir.join("approvals/1-q--manager.json");
        assert!(approval.is_file(), "{out}");
        let (code, out) = verify(&dir, &[]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("approved by Q. Manager"), "{out}");

        // A forged approval (name changed after signing) fails, naming the file.
        let forged = std::fs::read_to_string(&approval)
            .unwrap()
            .replace("Q. Manager", "Q. Managed");
        std::fs::write(&approval, forged).unwrap();
        let (code, out) = verify(&dir, &[]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("approvals/1-q--manager.json"), "{out}");
        std::fs::remove_dir_all(&base).ok();

        // An unsigned bundle is not approved.
        let dir = base.join("unsigned");
        sealed_run(&dir, false, false, "");
        let key = base.join("k.key");
        hilrig(&["keygen", "--out", key.to_str().unwrap()]);
        let (code, _, err) = hilrig(&[
            "report",
            "approve",
            dir.to_str().unwrap(),
            "--by",
            "X",
            "--key",
            key.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("unsigned"), "{err}");
        std::fs::remove_dir_all(&base).ok();
    }

    #[test]
    fn render_refuses_results_that_no_longer_match_the_manifest() {
        let base = temp_dir("render-tampered");
        let dir = base.join("run");
        sealed_run(&dir, false, true, "");
        let text = std::fs::read_to_string(dir.join("results.json"))
            .unwrap()
            .replacen("3.651", "3.650", 1);
        std::fs::write(dir.join("results.json"), text).unwrap();
        let out = base.join("elsewhere.html");
        let (code, stdout, err) = hilrig(&[
            "report",
            "render",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{stdout}{err}");
        assert!(
            err.contains("refusing to render") && err.contains("results.json"),
            "{err}"
        );
        assert!(!out.exists());
        std::fs::remove_dir_all(&base).ok();
    }

    #[test]
    fn a_rejudged_report_has_its_own_issue_time() {
        let base = temp_dir("rejudge-issued");
        let dir = base.join("run");
        sealed_run(&dir, false, true, "");
        let original = hilrig::report::bundle::BundleInfo::read(&dir).unwrap();
        // Bundle creation times have millisecond resolution.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let limits = base.join("limits.yaml");
        std::fs::write(&limits, LIMITS).unwrap();
        let r = rejudge(
            &dir,
            RejudgeOptions {
                limits,
                decision_rule: None,
                key: KeyChoice::Key(Box::new(test_key(&base))),
                operator: Some("Auditor".into()),
            },
        )
        .unwrap();
        let own = hilrig::report::bundle::BundleInfo::read(&r.dir).unwrap();
        assert_ne!(own.created, original.created);
        let html = std::fs::read_to_string(r.dir.join("report.html")).unwrap();
        let issued = html.split("Report issued").nth(1).unwrap();
        let issued = &issued[..issued.find("</td>").unwrap()];
        assert!(issued.contains(&own.created), "{issued}");
        std::fs::remove_dir_all(&base).ok();
    }
}

mod suite_bundle {
    use std::path::Path;
    use std::process::Command;

    use crate::common::{read_json, root, temp_dir};

    fn hilrig_with_key(key: &Path, args: &[&str]) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
            .args(args)
            .current_dir(root())
            .env("HILRIG_KEY", key)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    #[test]
    fn a_nightly_run_is_one_signed_bundle_verified_as_a_whole() {
        let base = temp_dir("suite-bundle");
        let key = base.join("station.key");
        let (code, out) = hilrig_with_key(&key, &["keygen"]);
        assert_eq!(code, 0, "{out}");
        let reports = base.join("reports");
        let (code, out) = hilrig_with_key(
            &key,
            &[
                "run",
                "test-plans/nightly.yaml",
                "--virtual-time",
                "--operator",
                "Night Shift",
                "--dut-serial",
                "BMS-SN-7",
                "--out",
                reports.to_str().unwrap(),
            ],
        );
        assert!(code == 0 || code == 1, "{out}");
        let top = std::fs::read_dir(&reports)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let suite_run_id = top.file_name().unwrap().to_str().unwrap().to_string();
        assert!(suite_run_id.ends_with("-nightly"), "{suite_run_id}");

        let s = read_json(&top.join("suite.json"));
        let members = s["members"].as_array().unwrap();
        assert_eq!(members.len(), 12, "{s}");
        let html = std::fs::read_to_string(top.join("report.html")).unwrap();
        for m in members {
            let plan = m["plan"].as_str().unwrap();
            assert_eq!(m["run_id"], format!("{suite_run_id}/{plan}"));
            let r = read_json(&top.join(plan).join("results.json"));
            assert_eq!(r["run_id"], m["run_id"]);
            assert_eq!(r["suite_run_id"], suite_run_id.as_str());
            assert_eq!(r["dut_serial"], "BMS-SN-7");
            assert!(
                html.contains(&format!("href=\"{plan}/report.html\"")),
                "{plan}"
            );
        }
        assert!(html.contains("Night Shift") && html.contains("BMS-SN-7"));

        let t = top.to_str().unwrap();
        let (code, out) = hilrig_with_key(&key, &["report", "verify", "--require-signature", t]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("INTACT"), "{out}");

        // Any member file that changes fails the suite, naming it.
        let plan = members[3]["plan"].as_str().unwrap();
        let victim = top.join(plan).join("trace.csv");
        let mut bytes = std::fs::read(&victim).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(&victim, bytes).unwrap();
        let (code, out) = hilrig_with_key(&key, &["report", "verify", "--require-signature", t]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&format!("{plan}/trace.csv")), "{out}");
        std::fs::remove_dir_all(&base).ok();
    }
}

mod pdf {
    use std::process::Command;

    use crate::common::{first_run_dir, temp_dir};
    use crate::report_support::hilrig;

    /// `pdftotext` from poppler-utils, when installed (the test is skipped otherwise).
    fn pdftotext(pdf: &std::path::Path) -> Option<String> {
        let out = Command::new("pdftotext")
            .args(["-layout", pdf.to_str().unwrap(), "-"])
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "pdftotext failed on {}",
            pdf.display()
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn the_pdf_report_is_paginated_and_names_the_item_and_each_verdict() {
        let out = temp_dir("evidence-pdf");
        let (code, stdout, stderr) = hilrig(&[
            "run",
            "test-plans/overcharge.yaml",
            "--virtual-time",
            "--operator",
            "Ann Example",
            "--dut-serial",
            "BMS-SN-0042",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let dir = first_run_dir(&out);
        let pdf = dir.join("report.pdf");
        let bytes = std::fs::read(&pdf).unwrap();
        assert!(bytes.starts_with(b"%PDF-"));
        // Covered by the manifest like every other file.
        let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
        assert!(manifest.contains("\"report.pdf\""));
        let Some(text) = pdftotext(&pdf) else {
            eprintln!("pdftotext not installed (apt-get install poppler-utils): text not checked");
            return;
        };
        let pages = text.matches("Page ").count();
        assert!(pages >= 2, "{text}");
        let n = text
            .split("Page 1 of ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<usize>().ok())
            .expect("Page 1 of N");
        for k in 1..=n {
            assert!(text.contains(&format!("Page {k} of {n}")), "page {k}");
        }
        let run_id = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(text.matches(&format!("Report {run_id}")).count(), n);
        for want in [
            "BMS-SN-0042",
            "Ann Example",
            "Overall verdict: PASSED",
            "SIMULATED BENCH",
            "VIRTUAL TIME",
            "25.0 °C",
        ] {
            assert!(text.contains(want), "the PDF lacks {want}:\n{text}");
        }
        let r = crate::common::read_json(&dir.join("results.json"));
        for t in r["tests"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap();
            let verdict = t["verdict"].as_str().unwrap().to_uppercase();
            assert!(
                text.lines()
                    .any(|l| l.trim_start().starts_with(name) && l.contains(&verdict)),
                "no {verdict} row for {name}:\n{text}"
            );
        }
    }
}

mod texts {
    use crate::common::root;
    use crate::report_support::results;
    use hilrig::report::html::{render, ReportData};

    /// Every `threshold_window` criterion's basis states the window it checks.
    #[test]
    fn profile_basis_texts_state_their_windows() {
        let mut checked = 0;
        for e in std::fs::read_dir(root().join("fixtures/limits")).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            for (name, c) in doc["criteria"].as_object().unwrap() {
                let w = &c["check"]["threshold_window"];
                if w.is_null() {
                    continue;
                }
                let basis = c["provenance"]["basis"].as_str().unwrap_or("");
                for bound in [&w["min"], &w["max"]] {
                    let b = bound.as_str().unwrap();
                    assert!(
                        basis.contains(&format!("{b} ")) || basis.contains(&format!("{b}.")),
                        "{} {name}: the basis does not state {b}: {basis}",
                        p.display()
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 4, "{checked}");
    }

    #[test]
    fn yes_no_checks_read_yes_or_no() {
        let mut r = results(false);
        let m: hilrig::report::MeasurementResult = serde_json::from_value(serde_json::json!({
            "criterion": "warning_on_fault", "quantity": "holds", "value": 1.0,
            "uncertainty": 0.0, "unit": "", "limit": {"low": 1.0, "high": null},
            "verdict": "pass", "uncertainty_budget": "a yes/no observation",
            "provenance": {"source": "PAS 63100:2024", "clause": null,
                "basis": "a warning on a fault", "confidence": "medium"}
        }))
        .unwrap();
        r.tests[0].measurements = vec![m];
        let html = render(&ReportData {
            results: Some(r),
            ..Default::default()
        });
        assert!(html.contains("warning_on_fault: yes"), "summary");
        assert!(html.contains(">yes</td>") && html.contains("must hold (yes)"));
        assert!(!html.contains("1 ± 0"));
    }

    #[test]
    fn the_pas_63100_section_appears_only_when_the_plan_claims_it() {
        let mut r = results(false);
        let page = |r: &hilrig::report::RunResults| {
            render(&ReportData {
                results: Some(r.clone()),
                ..Default::default()
            })
        };
        assert!(!page(&r).contains("PAS 63100-style checks"));
        r.requirements.push("PAS 63100:2024".into());
        assert!(page(&r).contains("PAS 63100-style checks"));
    }
}

#[test]
fn validate_warns_about_a_check_without_a_criterion() {
    let (code, out, err) = hilrig(&["validate", "test-plans/warning-output.yaml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("test-plans/warning-output.yaml:24:")
            && err.contains("warning: expect `warning cleared after the fault` has no `judge:`"),
        "{err}"
    );
}

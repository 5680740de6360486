//! `report.html`: self-contained (no external resource), carries what a statement of
//! conformity needs, flags an expired calibration, and (opt-in, HILRIG_CHROMIUM=1) renders
//! in headless Chromium.

use crate::report_support;

use std::process::Command;

use report_support::*;

fn sealed_html(name: &str, rig_extra: &str) -> (std::path::PathBuf, String) {
    let base = temp_dir(name);
    let dir = base.join("run");
    sealed_run(&dir, true, true, rig_extra);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    (base, html)
}

/// Every attribute value and CSS fragment that could load something.
fn external_references(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    for needle in [
        "http:", "https:", "//cdn", "@import", "src=", "<link", "<script", "<iframe", "<object",
        "<embed",
    ] {
        if lower.contains(needle) {
            found.push(needle.to_string());
        }
    }
    // href= and url( only to in-page anchors.
    for (needle, close) in [("href=\"", '"'), ("url(", ')')] {
        let mut rest = lower.as_str();
        while let Some(i) = rest.find(needle) {
            rest = &rest[i + needle.len()..];
            let target: String = rest.chars().take_while(|c| *c != close).collect();
            if !target.starts_with('#') {
                found.push(format!("{needle}{target}"));
            }
        }
    }
    found
}

#[test]
fn report_is_self_contained_and_has_the_conformity_statement_items() {
    let (base, html) = sealed_html("html", "");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(external_references(&html), Vec::<String>::new());
    assert!(html.contains("<style>") && html.contains("@page { size: A4"));
    for must in [
        "sim-bms-16s-lfp",                                                  // DUT
        "sim-bms-1.0.0",                                                    // firmware id
        "3c3ce8414282ffc3cd8596a3c76751043de57fc214fd83e7ef443690b7d27bf9", // firmware hash
        "sim-bench",                                                        // station
        "Ada Operator",                                                     // operator
        "2026-01-01T00:00:00.000Z",                                         // date
        "FAILED",                                                           // overall verdict
        "guarded acceptance",                                               // decision rule
        "ILAC-G8",
        "3.7120 ± 0.0035 V",           // value with expanded uncertainty
        "3.6000 V .. 3.7000 V",        // limit
        "DUT maker&#39;s declaration", // provenance
        "IEC 62619:2022 8.2.2",
        "Instruments and calibration",
        "SIM-PSB-0001",
        "simulated bench",
    ] {
        assert!(html.contains(must), "report lacks {must:?}");
    }
    // Plots: inline SVG with threshold lines and the trip marked, one set per test.
    assert!(html.matches("<svg").count() >= 3 * 3, "too few plots");
    assert!(html.contains("trip observed") && html.contains("ov_threshold high"));
    // Limit lines carry their values; long labels are fitted, not cut.
    assert!(html.contains("3.7000 V ov_threshold high"));
    assert!(!html.contains('…'));
    assert!(html.contains("truth: chg_fet_open"));
    // An IEC 62619 plan gets no PAS 63100 section.
    assert!(!html.contains("PAS 63100-style checks"));
    assert!(!html.contains("Calibration expired"));
    // The safe-state table tells a read-back from a CAN frame only sent.
    assert!(html.contains(
        "<td>supply</td><td>output off (confirmed by read-back)</td><td class=\"v-pass\">confirmed</td>"
    ));
    assert!(html.contains("<td class=\"v-inc\">sent, not confirmed</td>"));
    std::fs::remove_dir_all(base).ok();
}

#[test]
fn an_expired_calibration_is_flagged_on_the_cover() {
    let (base, html) = sealed_html(
        "html-cal",
        "calibration:\n  SIM-PSB-0001: 2025-06-30\n  SIM-DL3-0001: 2027-01-01\n",
    );
    let cover_end = html.find("<h2>Summary</h2>").unwrap();
    let cover = &html[..cover_end];
    assert!(cover.contains("Calibration expired"), "not on the cover");
    assert!(cover.contains("supply (serial SIM-PSB-0001, due 2025-06-30)"));
    assert!(!cover.contains("SIM-DL3-0001"));
    assert!(html.contains("EXPIRED before the test date"));
    assert!(html.contains("valid at the test date"));
    std::fs::remove_dir_all(base).ok();
}

#[test]
fn plots_are_decimated_to_the_pixel_columns() {
    let (base, html) = sealed_html("html-decim", "");
    let columns = hilrig::report::svg::Plot {
        title: String::new(),
        unit: String::new(),
        width: hilrig::report::html::PLOT_WIDTH,
        height: 100,
        x0: 0.0,
        x1: 1.0,
        lines: vec![],
        hlines: vec![],
        vlines: vec![],
        yes_no: false,
    }
    .columns();
    for poly in html.split("<polyline").skip(1) {
        let points = poly
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        // Step plots draw two vertices per point.
        assert!(points.split_whitespace().count() <= 2 * (2 * columns + 2));
    }
    std::fs::remove_dir_all(base).ok();
}

#[test]
fn renders_in_headless_chromium() {
    if std::env::var("HILRIG_CHROMIUM").as_deref() != Ok("1") {
        eprintln!(
            "renders_in_headless_chromium: NOT RUN (set HILRIG_CHROMIUM=1 with chromium installed)"
        );
        return;
    }
    let (base, _) = sealed_html("html-chromium", "");
    let page = base.join("run/report.html");
    let shot = base.join("report.png");
    let bin = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("HILRIG_CHROMIUM=1 but no chromium on PATH");
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,2400",
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", page.display()),
        ])
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "screenshot suspiciously small: {} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("HILRIG_SCREENSHOT_OUT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    std::fs::remove_dir_all(base).ok();
}

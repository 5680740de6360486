//! `hilrig list`, `hilrig run --test NAME` and `hilrig run --dry-run` through the binary.

use crate::common;

use common::*;
use rstest::rstest;

#[test]
fn list_prints_a_plans_tests_criteria_and_steps_in_80_columns() {
    let (code, stdout, stderr) = hilrig(&["list", "test-plans/overcharge.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    for needle in [
        "plan cell-overvoltage-charge (test-plans/overcharge.yaml)",
        "steps run 3 times",
        "OV cell 5 [trip, x3]",
        "judges: ov_threshold, ov_trip_time, cell_never_above_upper_limit",
        "OV trip time cell 5 [trip, in setup]",
        "setup: cells, supply, wait_for, trip, cells, wait_for",
        "teardown: supply, cells",
    ] {
        assert!(stdout.contains(needle), "`{needle}` not in:\n{stdout}");
    }
    assert!(stdout.lines().all(|l| l.chars().count() <= 80), "{stdout}");
}

#[test]
fn list_json_is_one_object_with_the_plans_tests() {
    let (code, stdout, stderr) = hilrig(&["list", "test-plans/overcharge.yaml", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["suite"].is_null(), "{v}");
    let plans = v["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 1);
    let p = &plans[0];
    assert_eq!(p["plan"], "cell-overvoltage-charge");
    assert_eq!(p["repeat"], 3);
    assert_eq!(p["teardown"], serde_json::json!(["supply", "cells"]));
    let main = p["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "OV cell 5")
        .expect("the test `OV cell 5`");
    assert_eq!(main["phase"], "steps");
    assert_eq!(main["kind"], "trip");
    assert_eq!(main["repeat"], 3);
    assert_eq!(
        main["criteria"],
        serde_json::json!([
            "ov_threshold",
            "ov_trip_time",
            "cell_never_above_upper_limit"
        ])
    );
}

#[test]
fn list_on_a_suite_gives_every_plan_in_order() {
    let suite = std::fs::read_to_string(root().join("test-plans/nightly.yaml")).unwrap();
    let order: Vec<String> = suite
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- plan: "))
        .map(|f| f.to_string())
        .collect();
    let (code, stdout, stderr) = hilrig(&["list", "test-plans/nightly.yaml", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["suite"]["suite"], "nightly");
    let files: Vec<String> = v["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["file"]
                .as_str()
                .unwrap()
                .trim_start_matches("test-plans/")
                .to_string()
        })
        .collect();
    assert_eq!(files, order);
    assert!(v["plans"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| !p["tests"].as_array().unwrap().is_empty()));

    let (code, text, stderr) = hilrig(&["list", "test-plans/nightly.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.starts_with(&format!(
            "suite nightly (test-plans/nightly.yaml, {} plans)",
            nightly_plans()
        )),
        "{text}"
    );
    assert!(
        text.contains("  plan ov-charge (test-plans/ov-charge.yaml)"),
        "{text}"
    );
    assert!(text.contains("OV threshold cell 5 [trip, x5]"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
}

#[test]
fn list_reports_a_broken_plan_with_its_location() {
    let dir = temp_dir("list-broken");
    let text = std::fs::read_to_string(root().join("test-plans/overcharge.yaml"))
        .unwrap()
        .replace("repeat: 3", "repaet: 3")
        .replace("../fixtures/", &format!("{}/fixtures/", root().display()));
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    let (code, stdout, stderr) = hilrig(&["list", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("plan.yaml:6:"), "{stderr}");
    assert!(stderr.contains("did you mean `repeat`"), "{stderr}");
}

#[test]
fn run_test_runs_only_the_named_test_with_setup_and_teardown() {
    let out = temp_dir("run-test-one");
    let (code, stdout, stderr) = hilrig(&[
        "run",
        "test-plans/ov-charge.yaml",
        "--virtual-time",
        "--test",
        "OV trip time cell 5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let results = read_json(&first_run_dir(&out).join("results.json"));
    let names: Vec<&str> = results["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        (1..=5)
            .map(|k| format!("OV trip time cell 5 #{k}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(results["outcome"], "passed");
    assert_eq!(results["safe_state_reached"], true);
}

#[rstest]
#[case::plan("test-plans/ov-charge.yaml")]
#[case::suite("test-plans/nightly.yaml")]
fn a_misspelt_test_is_refused_before_anything_is_connected(#[case] file: &str) {
    let out = temp_dir("run-test-misspelt").join("reports");
    let (code, stdout, stderr) = hilrig(&[
        "run",
        file,
        "--virtual-time",
        "--test",
        "OV treshold cell 5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("--test `OV treshold cell 5`: no such test"),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean `OV threshold cell 5`?"),
        "{stderr}"
    );
    assert!(stderr.contains("`OV fault names cell 5`"), "{stderr}");
    assert!(stderr.contains(&format!("--> {file}")), "{stderr}");
    assert!(!out.exists(), "a run directory was written");
    assert!(!stdout.contains("firmware"), "{stdout}");
}

#[test]
fn dry_run_prints_setpoints_and_an_estimate_and_writes_nothing() {
    let out = temp_dir("dry-run").join("reports");
    let (code, stdout, stderr) = hilrig(&[
        "run",
        "test-plans/overcharge.yaml",
        "--dry-run",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    for needle in [
        "plan cell-overvoltage-charge (test-plans/overcharge.yaml)",
        "[0] cells: cells 1-16 to 3.3000 V",
        "supply voltage to 56.0000 V; supply current limit to 5.0000 A;",
        "[2] wait_for: until `bms.state == charge`; at most 5.0 s",
        "steps (run 3 times):",
        "ramp cell[5] from 3.6000 V to 3.7400 V at 20.00 mV/s",
        "estimated duration: at most",
        "dry run: nothing was connected or switched on",
    ] {
        assert!(stdout.contains(needle), "`{needle}` not in:\n{stdout}");
    }
    assert!(!out.exists(), "--dry-run wrote {}", out.display());
    // No progress, no results: nothing ran.
    assert!(!stdout.contains("PASS"), "{stdout}");
}

#[test]
fn dry_run_of_a_suite_sums_its_plans_and_refuses_a_broken_one() {
    let (code, stdout, stderr) = hilrig(&["run", "test-plans/nightly.yaml", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "estimated duration of {} plans: at most",
            nightly_plans()
        )),
        "{stdout}"
    );

    let (code, stdout, stderr) = hilrig(&[
        "run",
        "test-plans/overcharge.yaml",
        "--dry-run",
        "--param",
        "nope=1",
    ]);
    // An unknown parameter is an input error: nothing is previewed.
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!stdout.contains("estimated duration"), "{stdout}");
}

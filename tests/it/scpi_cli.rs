//! `hilrig instruments check|ping|scpi`, `hilrig supply` and `hilrig load` as a user runs
//! them, on the simulated rig (started inside each command): output, refusals that send
//! nothing, the instrument's own errors, and exit codes.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{root, temp_dir};

fn hilrig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the simulated rig with absolute paths and extra lines appended.
fn rig_with(name: &str, extra: &str) -> PathBuf {
    let dir = temp_dir(name);
    let root = root();
    let text = std::fs::read_to_string(root.join("rig/sim.yaml"))
        .unwrap()
        .replace(
            "../firmware-under-test/",
            &format!("{}/firmware-under-test/", root.display()),
        )
        .replace("../fixtures/", &format!("{}/fixtures/", root.display()));
    // The rig's own calibration records give way to the test's.
    let text = text.split("\n# Calibration records").next().unwrap();
    let path = dir.join("rig.yaml");
    std::fs::write(&path, format!("{text}\n{extra}\n")).unwrap();
    path
}

#[test]
fn check_passes_on_the_simulated_rig() {
    let out = hilrig(&["instruments", "check"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("identity: EA Elektro-Automatik,PSB 9080-60,SIM-PSB-0001,"),
        "{stdout}"
    );
    assert!(stdout.contains("error queue: empty"), "{stdout}");
    // rig/sim.yaml carries calibration records for its simulated units.
    assert!(stdout.contains("2027-12-31"), "{stdout}");
    assert!(stdout.contains("instruments check: passed"), "{stdout}");
}

#[test]
fn check_fails_on_an_overdue_calibration_and_passes_a_future_one() {
    let rig = rig_with(
        "cli-calibration",
        "calibration:\n  SIM-PSB-0001: 2001-01-31\n  SIM-DL3-0001: 2999-12-31\n",
    );
    let out = hilrig(&[
        "instruments",
        "check",
        "--rig",
        rig.to_str().unwrap(),
        "--json",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["passed"], false);
    let instruments = report["instruments"].as_array().unwrap();
    let by_id = |id: &str| {
        instruments
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {report}"))
    };
    assert_eq!(by_id("supply")["verdict"], "fail");
    assert_eq!(by_id("supply")["calibration_due"], "2001-01-31");
    assert!(by_id("supply")["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.as_str().unwrap().contains("overdue since 2001-01-31")));
    assert_eq!(by_id("load")["verdict"], "pass");
    assert_eq!(by_id("cells")["verdict"], "skip");
}

#[test]
fn ping_reports_min_median_and_p99() {
    let out = hilrig(&["instruments", "ping", "supply", "--count", "20", "--json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["latency_s"]["count"], 20);
    let min = v["latency_s"]["min"].as_f64().unwrap();
    let median = v["latency_s"]["median"].as_f64().unwrap();
    let p99 = v["latency_s"]["p99"].as_f64().unwrap();
    assert!(min > 0.0 && min <= median && median <= p99, "{v}");

    let out = hilrig(&["instruments", "ping", "supply", "--count", "5"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("5 × *IDN?") && stdout.contains("median"),
        "{stdout}"
    );
}

#[test]
fn ping_of_an_unknown_instrument_names_the_known_ones() {
    let out = hilrig(&["instruments", "ping", "psu9"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("no instrument `psu9`"), "{stderr}");
    assert!(
        stderr.contains("supply, load, scope, short, cells"),
        "{stderr}"
    );
}

#[test]
fn scpi_queries_go_through_freely() {
    let out = hilrig(&["instruments", "scpi", "supply", "MEAS:VOLT?;*OPC?"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "0.00 V;1");
}

#[test]
fn scpi_settings_need_the_flag_and_stay_inside_the_envelope() {
    let out = hilrig(&["instruments", "scpi", "supply", "VOLT 12"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--allow-settings"), "{stderr}");

    let out = hilrig(&[
        "instruments",
        "scpi",
        "supply",
        "SOUR:VOLT 70",
        "--allow-settings",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("supply voltage 70") && stderr.contains("envelope"),
        "{stderr}"
    );

    let out = hilrig(&[
        "instruments",
        "scpi",
        "load",
        ":SOUR:CURR 45",
        "--allow-settings",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("load current 45"), "{stderr}");

    let out = hilrig(&[
        "instruments",
        "scpi",
        "supply",
        "VOLT 12;VOLT?",
        "--allow-settings",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "12.00 V");
    assert!(stderr.contains("checked: VOLT 12"), "{stderr}");
}

#[test]
fn scpi_reports_the_instruments_own_error_with_exit_1() {
    let out = hilrig(&[
        "instruments",
        "scpi",
        "supply",
        "FOO:BAR 1",
        "--allow-settings",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("-113,\"Undefined header\""), "{stderr}");
}

#[test]
fn supply_settings_are_checked_before_anything_is_sent() {
    let out = hilrig(&["supply", "set", "--voltage", "70 V"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("supply voltage 70"), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");

    let out = hilrig(&["supply", "set", "--voltage", "58.4 V", "--current", "10"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("supply `supply`: set"), "{stdout}");

    let out = hilrig(&["supply", "on"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("output on"), "{stdout}");

    let out = hilrig(&["supply", "measure", "--json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        v["output"], false,
        "a fresh simulated bench starts off: {v}"
    );
}

#[test]
fn load_settings_are_checked_and_roles_respected() {
    let out = hilrig(&["load", "set", "--current", "45"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("load current 45"), "{stderr}");

    let out = hilrig(&["load", "set", "--current", "5 A"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");

    let out = hilrig(&["load", "off"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("input off"), "{stdout}");

    let out = hilrig(&["supply", "--id", "load", "on"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has role load, not supply"), "{stderr}");
}

#[test]
fn ping_of_the_scope_says_it_is_driven_by_plans() {
    let out = hilrig(&["instruments", "ping", "scope"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("`scope` is an oscilloscope") && stderr.contains("driven by plans"),
        "{stderr}"
    );
}

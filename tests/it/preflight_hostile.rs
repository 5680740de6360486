//! One pre-flight for `validate` and `run`: every hostile value that once passed `validate`
//! and then crashed, hung or aborted the run is refused by `hilrig validate` with exit 2 and
//! a file:line:column, never a panic (101) or an abort (134). Each case edits one shipped
//! file in a private copy of the repository's inputs.

use std::path::Path;
use std::process::Command;

use rstest::rstest;

use crate::common::{root, temp_dir};

/// Copy the inputs (rig, fixtures, plans, firmware) into a fresh directory.
fn inputs(name: &str) -> std::path::PathBuf {
    let dir = temp_dir(name);
    for sub in [
        "rig",
        "fixtures",
        "fixtures/dbc",
        "fixtures/limits",
        "test-plans",
        "firmware-under-test",
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(root().join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, dir.join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    dir
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{file} has no `{from}`");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

/// `hilrig validate ARGS` in `dir`: (exit code, stderr).
fn validate(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .arg("validate")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `stderr` points at `FILE:LINE:COLUMN` with a real line (the path may be given
/// relative to the file that refers to it, e.g. `test-plans/../fixtures/...`).
fn points_at(stderr: &str, file: &str) -> bool {
    let name = Path::new(file).file_name().unwrap();
    stderr.lines().any(|l| {
        let Some(rest) = l.trim_start().strip_prefix("--> ") else {
            return false;
        };
        let mut parts = rest.rsplitn(3, ':');
        let (Some(col), Some(line), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        Path::new(path).file_name() == Some(name)
            && line.parse::<usize>().is_ok_and(|n| n > 0)
            && col.parse::<usize>().is_ok()
    })
}

const PLAN: &str = "test-plans/overcharge.yaml";
const RIG: &str = "rig/sim.yaml";
const FIXTURE: &str = "fixtures/sim-bms-16s-lfp.yaml";
const LIMITS: &str = "fixtures/limits/iec62619-bms.yaml";
const WAIT_FOR: &str = "  - wait_for: {until: bms.state == charge, timeout: 5 s}";

#[rstest]
// List 6: panics caught only by the runner.
#[case::sample_period_zero(RIG, "sample_period: 100 ms", "sample_period: 0 ms", RIG)]
#[case::timeout_1e300(PLAN, "timeout: 20 s", "timeout: 1e300 s", PLAN)]
#[case::wait_1e20(PLAN, WAIT_FOR, "  - wait: 1e20 s", PLAN)]
#[case::state_request_cycle_zero(FIXTURE, "cycle: 100 ms", "cycle: 0 ms", FIXTURE)]
// List 7: hangs in virtual time.
#[case::sample_period_one_ns(RIG, "sample_period: 100 ms", "sample_period: 0.000001 ms", RIG)]
#[case::update_period_zero(RIG, "update_period: 100 ms", "update_period: 0 ms", RIG)]
#[case::wait_1e12(PLAN, WAIT_FOR, "  - wait: 1e12 s", PLAN)]
// List 8: validate said ok where run aborted.
#[case::negative_duration(PLAN, "timeout: 20 s", "timeout: -1 s", PLAN)]
#[case::zero_trip_timeout(PLAN, "timeout: 20 s", "timeout: 0 s", PLAN)]
#[case::zero_wait_for_timeout(PLAN, "timeout: 5 s}", "timeout: 0 s}", PLAN)]
#[case::negative_delay(FIXTURE, "delay: 2 s}", "delay: -2 s}", FIXTURE)]
#[case::negative_tolerance(LIMITS, "tolerance: 50 mV", "tolerance: -50 mV", LIMITS)]
#[case::release_above_trip(FIXTURE, "release: 3.38 V", "release: 3.70 V", FIXTURE)]
#[case::unknown_chemistry(FIXTURE, "chemistry: LFP", "chemistry: unobtainium", FIXTURE)]
#[case::inverted_envelope(RIG, "cell_voltage_min: 2.0 V", "cell_voltage_min: 4.5 V", RIG)]
#[case::negative_envelope(RIG, "max_pack_voltage: 60 V", "max_pack_voltage: -60 V", RIG)]
#[case::duplicate_instrument_ids(RIG, "id: load", "id: supply", RIG)]
#[case::unknown_dialect(RIG, "dialect: rigol-dl3000", "dialect: rigol-dl9999", RIG)]
#[case::missing_firmware(RIG, "sim-bms-1.0.0.yaml", "sim-bms-9.9.9.yaml", RIG)]
#[case::missing_dbc(FIXTURE, "dbc: dbc/sim-bms.dbc", "dbc: dbc/missing.dbc", FIXTURE)]
#[case::unknown_bus(RIG, "bus: bms", "bus: nowhere", RIG)]
#[case::unreadable_calibration_date(
    RIG,
    "sample_period: 100 ms",
    "sample_period: 100 ms\ncalibration:\n  SIM-PSB-0001: 2027-13-45",
    RIG
)]
// Item 5: bounded allocations.
#[case::cells_in_series_4e9(FIXTURE, "cells_in_series: 16", "cells_in_series: 4000000000", FIXTURE)]
fn validate_refuses_hostile_values_with_a_location(
    #[case] file: &str,
    #[case] from: &str,
    #[case] to: &str,
    #[case] reported_in: &str,
) {
    let dir = inputs("hostile");
    edit(&dir, file, from, to);
    let (code, stderr) = validate(&dir, &[PLAN]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        points_at(&stderr, reported_in),
        "no {reported_in}:line:column in\n{stderr}"
    );
}

/// Without --rig, validate checks against the rig run would use: a 600 V plan is refused.
#[test]
fn validate_without_rig_checks_the_default_rigs_envelope() {
    let dir = inputs("default-rig");
    edit(&dir, PLAN, "voltage: 56.0 V", "voltage: 600 V");
    let (code, stderr) = validate(&dir, &[PLAN]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("envelope"), "{stderr}");
    assert!(points_at(&stderr, PLAN), "{stderr}");
}

/// A fixture and a limit profile on their own are recognised and checked as such.
#[test]
fn validate_takes_fixtures_and_limit_profiles_on_their_own() {
    let out = Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .args(["validate", FIXTURE, LIMITS, RIG, PLAN])
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("ok: {FIXTURE} (DUT fixture)")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("ok: {LIMITS} (limit profile)")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("ok: {RIG} (rig)")), "{stdout}");
    assert!(
        stdout.contains(&format!("ok: {PLAN} (test plan)")),
        "{stdout}"
    );
    // And a fixture's own problems are found when it is given alone.
    let dir = inputs("fixture-alone");
    edit(&dir, FIXTURE, "chemistry: LFP", "chemistry: unobtainium");
    let (code, stderr) = validate(&dir, &[FIXTURE]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(points_at(&stderr, FIXTURE), "{stderr}");
}

/// Conditions nested 10,000 parentheses or 100,000 `not` deep once overflowed the stack
/// (exit 134) in validate and run.
#[rstest]
#[case::parens_10000(format!("{}bms.chg_fet == open{}", "(".repeat(10_000), ")".repeat(10_000)))]
#[case::nots_100000(format!("{}bms.chg_fet == open", "not ".repeat(100_000)))]
fn condition_nesting_limit_in_validate(#[case] detect: String) {
    let dir = inputs("nesting");
    edit(
        &dir,
        PLAN,
        "detect: bms.chg_fet == open",
        &format!("detect: \"{detect}\""),
    );
    let (code, stderr) = validate(&dir, &[PLAN]);
    assert_eq!(code, Some(2), "{}", &stderr[..stderr.len().min(500)]);
    assert!(
        points_at(&stderr, PLAN),
        "{}",
        &stderr[..stderr.len().min(500)]
    );
}

/// A byte that is not UTF-8 once gave "stream did not contain valid UTF-8" without a line.
#[test]
fn non_utf8_input_is_reported_with_its_line_number() {
    let dir = inputs("non-utf8");
    let p = dir.join(PLAN);
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes.windows(5).position(|w| w == b"title").unwrap();
    bytes.insert(at + 7, 0xFF);
    std::fs::write(&p, bytes).unwrap();
    let (code, stderr) = validate(&dir, &[PLAN]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{PLAN}:2:8")), "{stderr}");
}

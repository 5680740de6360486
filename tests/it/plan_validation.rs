//! Every shipped file validates; broken plans get a located, helpful error and no panic.

use crate::common;

use common::*;
use hilrig::plan::load::relative;
use hilrig::plan::{is_suite, load_plan, load_plan_with, load_suite, InputError};
use rstest::rstest;

/// Load the shipped over-charge plan with one textual change, written next to a temp dir.
fn load_mutated(name: &str, from: &str, to: &str) -> Vec<InputError> {
    let text = std::fs::read_to_string(root().join("test-plans/overcharge.yaml")).unwrap();
    assert!(text.contains(from), "the plan no longer contains `{from}`");
    let fixture = root().join("fixtures/sim-bms-16s-lfp.yaml");
    let text = text.replacen(from, to, 1).replace(
        "../fixtures/sim-bms-16s-lfp.yaml",
        fixture.to_str().unwrap(),
    );
    let dir = temp_dir(&format!("plan-{name}"));
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    let rig = sim_rig(None);
    load_plan(&path, Some(&rig)).err().unwrap_or_default()
}

#[rstest]
#[case::unknown_key("unknown", "repeat: 3", "repaet: 3", 6, &["unknown field `repaet`", "did you mean `repeat`"])]
#[case::wrong_type("type", "repeat: 3", "repeat: three", 6, &["repeat"])]
#[case::missing_unit("unit", "voltage: 56.0 V", "voltage: 56.0", 9, &["`56.0` has no unit", "a voltage"])]
#[case::wrong_dimension("dimension", "rate: 20 mV/s", "rate: 20 mV", 26, &["is a voltage, but a voltage rate is expected"])]
#[case::undefined_signal("signal", "detect: bms.chg_fet == open", "detect: bms.chg_fett == open", 17, &["signal `bms.chg_fett` is not defined", "did you mean `bms.chg_fet`"])]
#[case::undefined_enum("enum", "detect: bms.chg_fet == open", "detect: bms.chg_fet == opened", 17, &["`opened` is not a value of `bms.chg_fet`", "open, closed"])]
#[case::undefined_limit("limit", "ov_trip_time,", "ov_trip_tme,", 29, &["limit `ov_trip_tme` is not defined in profile `iec62619-bms`", "did you mean `ov_trip_time`"])]
#[case::outside_envelope("envelope", "voltage: 56.0 V", "voltage: 65.0 V", 9, &["supply voltage 65.0000 V is outside the rig's safety envelope", "nothing was sent"])]
#[case::third_step("third", "until: bms.state == charge", "until: bms.state == charging", 10, &["`charging` is not a value of `bms.state`"])]
#[case::unknown_protection("protection", "protection: ov", "protection: oov", 15, &["protection `oov` is not declared", "did you mean `ov`"])]
#[case::prompt_twice("prompt-twice", "teardown:\n", "teardown:\n  - prompt: {text: Scan, entries: [{name: sn}, {name: sn}]}\n", 33, &["prompt entry `sn` is asked twice"])]
#[case::prompt_name("prompt-name", "teardown:\n", "teardown:\n  - prompt: {text: Scan, entries: [{name: dut serial}]}\n", 33, &["prompt entry name `dut serial` must be letters, digits and `_`"])]
#[case::prompt_text("prompt-text", "teardown:\n", "teardown:\n  - prompt: {text: ' '}\n", 33, &["prompt: `text` must say what the operator is asked"])]
#[case::prompt_key("prompt-key", "teardown:\n", "teardown:\n  - prompt: {text: Scan, defalt: x}\n", 33, &["unknown field `defalt`"])]
#[case::bad_condition("condition", "detect: bms.chg_fet == open", "detect: bms.chg_fet = open", 17, &["use `==`"])]
fn broken_plans_are_located(
    #[case] name: &str,
    #[case] from: &str,
    #[case] to: &str,
    #[case] line: usize,
    #[case] needles: &[&str],
) {
    let errors = load_mutated(name, from, to);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    let text = e.to_string();
    for n in needles {
        assert!(text.contains(n), "`{n}` not in:\n{text}");
    }
    assert_eq!(e.line, line, "{text}");
    assert!(e.column > 0, "{text}");
    assert!(text.contains(&format!("plan.yaml:{line}:")), "{text}");
    assert!(
        text.contains(&format!("{line} | ")),
        "snippet missing:\n{text}"
    );
}

#[test]
fn every_shipped_plan_validates_against_the_simulated_rig() {
    let rig = sim_rig(None);
    for entry in std::fs::read_dir(root().join("test-plans")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") && !is_suite(&path) {
            if let Err(e) = load_plan(&path, Some(&rig)) {
                panic!("{}: {e:#?}", path.display());
            }
        }
    }
}

#[test]
fn the_validate_command_accepts_shipped_files_and_rejects_broken_ones() {
    let bin = env!("CARGO_BIN_EXE_hilrig");
    let ok = std::process::Command::new(bin)
        .args([
            "validate",
            "test-plans/overcharge.yaml",
            "rig/sim.yaml",
            "--rig",
            "rig/sim.yaml",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = temp_dir("validate-cli");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "plan: x\ntitle: y\ndut: nowhere.yaml\nlimits: z\nsteps: []\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["validate", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nowhere.yaml") && err.contains("cannot read file"),
        "{err}"
    );
}

#[test]
fn the_nightly_suite_lists_valid_plans() {
    let rig = sim_rig(None);
    let path = root().join("test-plans/nightly.yaml");
    assert!(is_suite(&path));
    let suite = load_suite(&path).unwrap();
    assert!(suite.value.plans.len() >= 9);
    for p in &suite.value.plans {
        load_plan_with(&relative(&path, &p.plan), Some(&rig), &p.parameters)
            .unwrap_or_else(|e| panic!("{}: {e:#?}", p.plan.display()));
    }
}

#[rstest]
#[case::ramp_rate_dimension("stimulus: {ramp: {of: cell 5, from: 3.60 V, to: 3.74 V, rate: 20 mV/s}}", "stimulus: {ramp: {of: ntc 1, from: 3.60 V, to: 3.74 V, rate: 20 mV/s}}", &["from is a voltage, but a temperature is expected", "the stimulus sets a temperature (ntc[1]), but protection `ov` is about a voltage"])]
#[case::bad_target("stimulus: {ramp: {of: cell 5,", "stimulus: {ramp: {of: cel 5,", &["`cel 5` is not a stimulus target"])]
#[case::missing_cell("stimulus: {ramp: {of: cell 5,", "stimulus: {ramp: {of: cell 17,", &["cell[17] does not exist: the DUT has cells 1..16"])]
#[case::criterion_misfit("judge: [ov_threshold, ov_trip_time, cell_never_above_upper_limit]", "judge: [ov_threshold, fault_cell_reported]", &["limit `fault_cell_reported` (`holds`) cannot be judged from a `ramp` stimulus"])]
#[case::release_needed("judge: [ov_threshold, ov_trip_time, cell_never_above_upper_limit]", "judge: [ov_release]", &["add `release:` to the trip"])]
#[case::rest_not_beyond_release("stimulus: {step: {of: cell 5, from: 3.60 V, to: 3.70 V}}", "stimulus: {step: {of: cell 5, from: 3.60 V, to: 3.70 V, rest: 3.50 V}}", &["`rest` 3.5000 V does not lie beyond the declared release level 3.3800 V of `ov`"])]
#[case::rest_and_release("to: 3.70 V}}\n      detect: bms.chg_fet == open", "to: 3.70 V, rest: 3.30 V}}\n      release: {to: 3.30 V, rate: 50 mV/s, detect: bms.chg_fet == closed, timeout: 20 s}\n      detect: bms.chg_fet == open", &["steps back to `rest` or ramps back with `release:`, not both"])]
#[case::bad_request("  - cells: {all: 3.30 V}\n  - wait_for: {until: bms.chg_fet == closed", "  - bms_request: sleep\n  - wait_for: {until: bms.chg_fet == closed", &["`sleep` is not a state request (known: standby, run)"])]
fn semantic_errors_in_steps(#[case] from: &str, #[case] to: &str, #[case] needles: &[&str]) {
    let errors = load_mutated(
        &format!("semantic-{}", needles[0].len()),
        &from.replace("\\n", "\n"),
        &to.replace("\\n", "\n"),
    );
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let all = text.join("\n");
    for n in needles {
        assert!(all.contains(n), "`{n}` not in:\n{all}");
    }
    assert!(errors.iter().all(|e| e.line > 0), "{all}");
}

#[test]
fn parameters_are_substituted_and_overridable() {
    let rig = sim_rig(None);
    let path = root().join("test-plans/ov-charge.yaml");
    let p = load_plan(&path, Some(&rig)).unwrap();
    assert_eq!(p.parameters["cell"], "5");
    let over = std::collections::BTreeMap::from([("cell".to_string(), "9".to_string())]);
    let p = load_plan_with(&path, Some(&rig), &over).unwrap();
    assert_eq!(p.parameters["cell"], "9");
    assert!(p.plan.text.contains("OV threshold cell 9"));
    let bad = std::collections::BTreeMap::from([("cel".to_string(), "9".to_string())]);
    let e = load_plan_with(&path, Some(&rig), &bad).unwrap_err();
    assert!(e[0].to_string().contains("did you mean `cell`"), "{}", e[0]);
}

#[test]
fn the_foxbms_style_fixture_validates() {
    // A small plan against the foxBMS 2 style fixture checks its signal map against its DBC.
    let dir = temp_dir("foxbms");
    let fixture = root().join("fixtures/foxbms2-style.yaml");
    let plan = format!(
        "plan: foxbms-smoke\ntitle: t\ndut: {}\nlimits: iec62619-bms\nsteps:\n  - wait_for: {{until: bms.state == normal and not bms.fault.ov, timeout: 5 s}}\n  - expect: {{that: bms.contactors == closed}}\n",
        fixture.display()
    );
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
    let p = load_plan(&dir.join("plan.yaml"), None).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(p.fixture.value.cells_in_series, 4);
    assert!(p.signals.contains_key("bms.fault.ov"));
}

/// Load the shipped SOC plan with one textual change.
fn load_soc_mutated(name: &str, from: &str, to: &str) -> Vec<InputError> {
    let text = std::fs::read_to_string(root().join("test-plans/soc-accuracy.yaml")).unwrap();
    assert!(text.contains(from), "the plan no longer contains `{from}`");
    let fixture = root().join("fixtures/sim-bms-16s-lfp.yaml");
    let text = text.replacen(from, to, 1).replace(
        "../fixtures/sim-bms-16s-lfp.yaml",
        fixture.to_str().unwrap(),
    );
    let dir = temp_dir(&format!("soc-plan-{name}"));
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    load_plan(&path, Some(&sim_rig(None)))
        .err()
        .unwrap_or_default()
}

#[rstest]
#[case::no_start(
    "  - soc: {start: rest}\nsteps:",
    "steps:",
    "a checkpoint before any `soc: {start: rest}`"
)]
#[case::start_with_name(
    "  - soc: {start: rest}\nsteps:",
    "  - soc: {start: rest, name: x}\nsteps:",
    "`start` stands alone"
)]
#[case::no_judge(
    "{name: SOC after the rest, judge: soc_accuracy}",
    "{name: SOC after the rest}",
    "a checkpoint needs `judge:`"
)]
#[case::unknown_signal(
    "{name: SOC after the rest, judge: soc_accuracy}",
    "{name: SOC after the rest, signal: bms.sco, judge: soc_accuracy}",
    "signal `bms.sco` is not defined in the DUT fixture"
)]
#[case::release_and_voltage(
    "cells: {release: all}",
    "cells: {release: all, all: 3.30 V}",
    "`release: all` stands alone"
)]
#[case::unknown_start(
    "  - soc: {start: rest}\nsteps:",
    "  - soc: {start: full}\nsteps:",
    "unknown variant `full`"
)]
fn soc_steps_are_checked_at_load(#[case] from: &str, #[case] to: &str, #[case] needle: &str) {
    let errors = load_soc_mutated(&format!("{}", needle.len()), from, to);
    let all = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(all.contains(needle), "`{needle}` not in:\n{all}");
    assert!(errors.iter().all(|e| e.line > 0), "{all}");
}

/// A fixture without `soc:` cannot start the reference; a bad one is refused with the reason.
#[rstest]
#[case::missing("\nsoc:\n", "\nsoc_removed:\n", "declares no `soc:`")]
#[case::falling_curve("[50, 3.300 V]", "[50, 3.200 V]", "must both rise point to point")]
#[case::capacity_unit("capacity: 100 Ah", "capacity: 100 V", "soc.capacity: a charge (Ah)")]
fn the_soc_reference_needs_a_sound_fixture_declaration(
    #[case] from: &str,
    #[case] to: &str,
    #[case] needle: &str,
) {
    let fx = std::fs::read_to_string(root().join("fixtures/sim-bms-16s-lfp.yaml")).unwrap();
    assert!(fx.contains(from), "the fixture no longer contains `{from}`");
    let mut fx = fx.replacen(from, to, 1);
    if to.contains("soc_removed") {
        // Drop the whole section: everything from it to the end of the file.
        let at = fx.find("\nsoc_removed:\n").unwrap();
        fx.truncate(at + 1);
    }
    let dir = temp_dir(&format!("soc-fixture-{}", needle.len()));
    std::fs::create_dir_all(dir.join("dbc")).unwrap();
    std::fs::create_dir_all(dir.join("limits")).unwrap();
    for f in [
        "dbc/sim-bms.dbc",
        "dbc/pylon-lv-can.dbc",
        "limits/soc-accuracy.yaml",
    ] {
        std::fs::copy(root().join("fixtures").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("fixture.yaml"), fx).unwrap();
    let plan = std::fs::read_to_string(root().join("test-plans/soc-accuracy.yaml"))
        .unwrap()
        .replace("../fixtures/sim-bms-16s-lfp.yaml", "fixture.yaml");
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
    let errors = load_plan(&dir.join("plan.yaml"), Some(&sim_rig(None)))
        .err()
        .unwrap_or_default();
    let all = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(all.contains(needle), "`{needle}` not in:\n{all}");
}

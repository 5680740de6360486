//! hilrig as the inverter: the inverter-interface plan passes on the good image, and each
//! seeded inverter-side defect is caught by the test that should catch it (library run in
//! virtual time, and the binary's exit code 1); the shipped Pylontech LV DBC decodes the
//! simulated BMS's frames into the inv.* signals.

use crate::common;
use crate::sim_support;

use std::collections::BTreeSet;

use common::*;
use hilrig::report::Outcome;
use hilrig::verdict::Verdict;
use rstest::rstest;
use sim_support::{memory_bench, run_plan, virtual_runtime};

const PLAN: &str = "test-plans/inverter-interface.yaml";

/// Run the inverter-interface plan on the simulated bench with `image`: (outcome, failed
/// test names, passed test names).
fn run_with(image: &str) -> (Outcome, BTreeSet<String>, BTreeSet<String>) {
    let rig = sim_rig(Some(image));
    let plan = plan(PLAN, &rig);
    let dir = temp_dir(&format!("inverter-{image}"));
    let results = virtual_runtime().block_on(async {
        let bench = memory_bench(&rig, &root().join("rig/sim.yaml")).await;
        run_plan(&bench, &rig, plan, &dir).await.0
    });
    let names = |pass: bool| {
        results
            .tests
            .iter()
            .filter(|t| (t.verdict == Verdict::Pass) == pass)
            .map(|t| t.test.clone())
            .collect()
    };
    (results.outcome, names(false), names(true))
}

#[test]
fn the_good_image_passes_the_inverter_interface_plan() {
    let (outcome, failed, passed) = run_with("sim-bms-1.0.0.yaml");
    assert_eq!(outcome, Outcome::Passed, "failed: {failed:?}");
    assert_eq!(passed.len(), 11, "{passed:?}");
}

#[rstest]
#[case::cvl_above_cell_limit(
    "sim-bms-1.0.0-defect-cvl-above-cell-limit.yaml",
    &["announced limits within the pack's and cells' limits"]
)]
#[case::no_derating(
    "sim-bms-1.0.0-defect-no-derating.yaml",
    &["CCL derates before the OV trip", "DCL derates before the UV trip"]
)]
#[case::stale_limits(
    "sim-bms-1.0.0-defect-stale-limits.yaml",
    &["charge disabled and CCL 0 after the OV trip", "discharge disabled and DCL 0 after the UV trip"]
)]
#[case::current_sign(
    "sim-bms-1.0.0-defect-current-sign.yaml",
    &["announced voltage and current match the instruments"]
)]
#[case::keepalive_ignored(
    "sim-bms-1.0.0-defect-keepalive-ignored.yaml",
    &["reacts to a lost keep-alive"]
)]
fn each_inverter_defect_is_caught_by_its_test(#[case] image: &str, #[case] tests: &[&str]) {
    let (outcome, failed, _) = run_with(image);
    assert_eq!(outcome, Outcome::Failed, "{image}");
    let expected: BTreeSet<String> = tests.iter().map(|t| t.to_string()).collect();
    assert_eq!(failed, expected, "{image}: exactly the catching tests fail");
}

/// Every inverter defect image names the plan and check that catches it in the manifest.
#[test]
fn the_manifest_names_what_catches_each_inverter_defect() {
    let text = std::fs::read_to_string(root().join("firmware-under-test/manifest.yaml")).unwrap();
    for (image, check) in [
        ("cvl-above-cell-limit", "announced_limits"),
        ("no-derating", "derate_before_trip"),
        ("stale-limits", "disabled_after_trip"),
        ("current-sign", "announced_measurements"),
        ("keepalive-ignored", "keepalive_loss"),
    ] {
        let at = text
            .find(&format!("id: sim-bms-1.0.0-defect-{image}"))
            .unwrap_or_else(|| panic!("{image} not in the manifest"));
        let entry = &text[at..];
        let end = entry[1..].find("  - id:").map_or(entry.len(), |e| e + 1);
        assert!(
            entry[..end].contains(check),
            "{image}: caught_by does not name {check}"
        );
    }
}

/// The binary: exit 0 on the good image, 1 (a failed test, not an abort) on a defect image.
#[rstest]
#[case("sim-bms-1.0.0.yaml", 0)]
#[case("sim-bms-1.0.0-defect-stale-limits.yaml", 1)]
fn the_binary_exits_by_the_verdict(#[case] image: &str, #[case] code: i32) {
    let dir = temp_dir("inverter-bin");
    let text = std::fs::read_to_string(root().join("rig/sim.yaml")).unwrap();
    let image_path = root().join("firmware-under-test").join(image);
    let text = text
        .replace(
            "firmware: ../firmware-under-test/sim-bms-1.0.0.yaml",
            &format!("firmware: {}", image_path.display()),
        )
        .replace("../", &format!("{}/", root().display()));
    let rig = dir.join("rig.yaml");
    std::fs::write(&rig, text).unwrap();
    let out = dir.join("out");
    let (got, stdout, stderr) = hilrig(&[
        "run",
        PLAN,
        "--rig",
        rig.to_str().unwrap(),
        "--virtual-time",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(got, code, "{image}\n{stdout}\n{stderr}");
}

//! hilrig as the inverter: the inverter-interface plan passes on the good image, and each
//! seeded inverter-side defect is caught by the test that should catch it (library run in
//! virtual time, and the binary's exit code 1); the shipped Pylontech LV DBC decodes the
//! simulated BMS's frames into the inv.* signals. The same plan and defects are judged again
//! on `rig/sim-modbus.yaml`, where the announcements are read from the BMS's Modbus map.

use crate::common;
use crate::sim_support;

use std::collections::BTreeSet;

use common::*;
use hilrig::plan::load_rig;
use hilrig::report::Outcome;
use hilrig::verdict::Verdict;
use rstest::rstest;
use sim_support::{memory_bench, run_plan, virtual_runtime};

const PLAN: &str = "test-plans/inverter-interface.yaml";

/// The rig with the inverter port on CAN (the default bench).
const CAN_RIG: &str = "rig/sim.yaml";
/// The rig with the inverter port wired over Modbus TCP.
const MODBUS_RIG: &str = "rig/sim-modbus.yaml";

/// What one run of the inverter-interface plan gave.
struct Run {
    outcome: Outcome,
    failed: BTreeSet<String>,
    passed: BTreeSet<String>,
    /// The run's trace (trace.csv).
    trace: String,
}

/// Run the inverter-interface plan on the simulated bench of `rig_file` with `image`.
fn run_on(rig_file: &str, image: &str) -> Run {
    let rig_path = root().join(rig_file);
    let mut rig = load_rig(&rig_path).unwrap().value;
    rig.simulation.as_mut().unwrap().firmware = root().join("firmware-under-test").join(image);
    let plan = plan(PLAN, &rig);
    let dir = temp_dir(&format!("inverter-{image}"));
    let results = virtual_runtime().block_on(async {
        let bench = memory_bench(&rig, &rig_path).await;
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
    let trace = std::fs::read_to_string(dir.join("trace.csv")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        outcome: results.outcome,
        failed: names(false),
        passed: names(true),
        trace,
    }
}

/// Trace rows of signal `name`.
fn rows_of(trace: &str, name: &str) -> usize {
    trace
        .lines()
        .filter(|l| l.split(',').any(|f| f == name))
        .count()
}

#[rstest]
fn the_good_image_passes_the_inverter_interface_plan(#[values(CAN_RIG, MODBUS_RIG)] rig: &str) {
    let run = run_on(rig, "sim-bms-1.0.0.yaml");
    assert_eq!(
        run.outcome,
        Outcome::Passed,
        "{rig}: failed {:?}",
        run.failed
    );
    assert_eq!(run.passed.len(), 11, "{rig}: {:?}", run.passed);
    // `inv.pack_power` is in the Modbus map only: read there, and nowhere else.
    let over_modbus = rows_of(&run.trace, "inv.pack_power");
    if rig == MODBUS_RIG {
        assert!(
            over_modbus > 50,
            "{rig}: {over_modbus} Modbus reads in 95 s"
        );
    } else {
        assert_eq!(over_modbus, 0, "{rig}: no Modbus link, no Modbus reads");
    }
    assert!(
        rows_of(&run.trace, "inv.cvl") > 50,
        "{rig}: the CVL is traced"
    );
}

/// A Modbus link that cannot be reached ends the run before any stimulus, naming the link.
#[test]
fn an_unreachable_modbus_link_is_refused_at_setup() {
    let rig_path = root().join(MODBUS_RIG);
    let mut rig = load_rig(&rig_path).unwrap().value;
    let plan = plan(PLAN, &rig);
    let dir = temp_dir("inverter-no-modbus");
    let results = virtual_runtime().block_on(async {
        let bench = memory_bench(&rig, &rig_path).await;
        rig.modbus[0].address = "mem://no-such-modbus-peer".into();
        run_plan(&bench, &rig, plan, &dir).await.0
    });
    let abort = results.abort.expect("the run is aborted");
    assert!(
        abort.cause.contains("Modbus link `bms-modbus`"),
        "{}",
        abort.cause
    );
    assert!(results.tests.iter().all(|t| t.verdict != Verdict::Pass));
    let _ = std::fs::remove_dir_all(&dir);
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
fn each_inverter_defect_is_caught_by_its_test(
    #[case] image: &str,
    #[case] tests: &[&str],
    #[values(CAN_RIG, MODBUS_RIG)] rig: &str,
) {
    let run = run_on(rig, image);
    assert_eq!(run.outcome, Outcome::Failed, "{image} on {rig}");
    let expected: BTreeSet<String> = tests.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        run.failed, expected,
        "{image} on {rig}: exactly the catching tests fail"
    );
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

/// A run of the inverter plan is judged again against a revised profile without the bench:
/// every inverter criterion gets its new limit, tighter bounds turn passes into failures,
/// and the unchanged profile gives the original verdicts back.
#[test]
fn an_inverter_run_is_rejudged_against_a_revised_profile() {
    let dir = temp_dir("inverter-rejudge");
    let out = dir.join("out");
    let (code, stdout, stderr) = hilrig(&[
        "run",
        PLAN,
        "--virtual-time",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let out = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .expect("the run's directory")
        .unwrap()
        .path();
    let original =
        std::fs::read_to_string(root().join("fixtures/limits/inverter-interface.yaml")).unwrap();
    let rejudge = |name: &str, text: &str, exit: i32| {
        let limits = dir.join(name);
        std::fs::write(&limits, text).unwrap();
        let (code, stdout, stderr) = hilrig(&[
            "report",
            "rejudge",
            out.to_str().unwrap(),
            "--limits",
            limits.to_str().unwrap(),
            "--unsigned",
        ]);
        assert_eq!(code, exit, "{stdout}\n{stderr}");
        let newest = std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("rejudge-")
            })
            .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
            .unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(newest.join("results.json")).unwrap()).unwrap();
        std::fs::remove_dir_all(newest).unwrap();
        doc
    };
    let same = rejudge("same.yaml", &original, 0);
    assert_eq!(
        same["outcome"], "passed",
        "the same profile, the same verdicts"
    );
    let tight = original
        .replace(
            "disabled_after_trip: {within: 2 s}",
            "disabled_after_trip: {within: 0.1 s}",
        )
        .replace(
            "tolerance: 0.2 s, stale_after: 2.5 s",
            "tolerance: 0.2 s, stale_after: 2.5 ms",
        )
        .replace(
            "keepalive_loss: {allowance: 1.5 s}",
            "keepalive_loss: {allowance: 0 s}",
        )
        .replace("voltage: 0.5 V", "voltage: 1 mV");
    assert_ne!(tight, original);
    let doc = rejudge("tight.yaml", &tight, 1);
    assert_eq!(doc["outcome"], "failed");
    let verdict_of = |test: &str, criterion: &str| -> (String, serde_json::Value) {
        let t = doc["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == test)
            .unwrap_or_else(|| panic!("no test {test}"));
        let m = t["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["quantity"] == criterion)
            .unwrap_or_else(|| panic!("no {criterion} in {test}"));
        (
            m["verdict"].as_str().unwrap().to_string(),
            m["limit"].clone(),
        )
    };
    let (v, limit) = verdict_of(
        "charge disabled and CCL 0 after the OV trip",
        "disable_time",
    );
    assert_eq!(v, "fail", "{limit}");
    assert_eq!(limit["high"], 0.1);
    let (v, _) = verdict_of("reacts to a lost keep-alive", "keepalive_reaction");
    assert_eq!(v, "fail");
    let (v, limit) = verdict_of("announcements on time", "limits_longest_gap");
    assert_eq!(v, "pass", "the period's tolerance is unchanged: {limit}");
    let _ = std::fs::remove_dir_all(&dir);
}

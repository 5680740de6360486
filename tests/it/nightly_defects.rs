//! The nightly suite against every firmware image of the simulated target, in virtual time:
//! the good image passes everything, and each seeded defect is caught by the test that
//! should catch it.

use crate::common;
use crate::sim_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use hilrig::plan::load::relative;
use hilrig::plan::{load_plan_with, load_suite};
use hilrig::report::Outcome;
use hilrig::verdict::Verdict;
use rstest::rstest;
use sim_support::{memory_bench, run_plan, virtual_runtime};

/// Run every plan of the nightly suite on a fresh simulated bench with `image`; returns
/// (plan, outcome, failed test names).
fn nightly(image: &str) -> Vec<(String, Outcome, BTreeSet<String>)> {
    nightly_only(image, None)
}

/// As [`nightly`], running only the plan with id `only` when given.
fn nightly_only(image: &str, only: Option<&str>) -> Vec<(String, Outcome, BTreeSet<String>)> {
    let rig = sim_rig(Some(image));
    let suite_path = root().join("test-plans/nightly.yaml");
    let suite = load_suite(&suite_path).unwrap();
    let rt = virtual_runtime();
    let mut out = Vec::new();
    for entry in &suite.value.plans {
        let plan = load_plan_with(
            &relative(&suite_path, &entry.plan),
            Some(&rig),
            &entry.parameters,
        )
        .unwrap();
        let id = plan.plan.value.plan.clone();
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let dir = temp_dir(&format!("nightly-{image}-{id}"));
        let results = rt.block_on(async {
            let bench = memory_bench(&rig, &root().join("rig/sim.yaml")).await;
            run_plan(&bench, &rig, std::sync::Arc::new(plan), &dir)
                .await
                .0
        });
        let failed = results
            .tests
            .iter()
            .filter(|t| t.verdict != Verdict::Pass)
            .map(|t| t.test.clone())
            .collect();
        out.push((id, results.outcome, failed));
    }
    out
}

#[test]
fn the_good_image_passes_the_nightly_suite() {
    let runs = nightly("sim-bms-1.0.0.yaml");
    assert_eq!(runs.len(), nightly_plans());
    for (plan, outcome, failed) in &runs {
        assert_eq!(*outcome, Outcome::Passed, "{plan}: {failed:?}");
    }
}

#[rstest]
#[case::ov_delay(
    "sim-bms-1.0.0-defect-ov-delay.yaml",
    "ov-charge",
    "OV trip time cell 5"
)]
#[case::ov_threshold(
    "sim-bms-1.0.0-defect-ov-threshold.yaml",
    "ov-charge",
    "OV threshold cell 5"
)]
#[case::no_hysteresis(
    "sim-bms-1.0.0-defect-no-hysteresis.yaml",
    "ov-charge",
    "OV threshold cell 5"
)]
#[case::cell_index(
    "sim-bms-1.0.0-defect-cell-index.yaml",
    "ov-charge",
    "OV fault names cell 5"
)]
#[case::ot_charge(
    "sim-bms-1.0.0-defect-ot-charge.yaml",
    "ot-charge",
    "OT in charge, sensor 2"
)]
#[case::uv_latch(
    "sim-bms-1.0.0-defect-uv-latch.yaml",
    "uv-discharge",
    "UV threshold cell 3"
)]
#[case::no_warning(
    "sim-bms-1.0.0-defect-no-warning.yaml",
    "warning-output",
    "warning raised on an over-voltage fault"
)]
#[case::balance_wrong_cell(
    "sim-bms-1.0.0-defect-balance-wrong-cell.yaml",
    "balancing",
    "balancing starts on exactly cell 5"
)]
#[case::balance_wrong_cell_current(
    "sim-bms-1.0.0-defect-balance-wrong-cell.yaml",
    "balancing",
    "no bleed current on channel 6"
)]
#[case::balance_never(
    "sim-bms-1.0.0-defect-balance-never.yaml",
    "balancing",
    "balancing starts on exactly cell 5"
)]
#[case::balance_never_current(
    "sim-bms-1.0.0-defect-balance-never.yaml",
    "balancing",
    "bleed current on channel 5"
)]
#[case::soc_capacity(
    "sim-bms-1.0.0-defect-soc-capacity.yaml",
    "soc-accuracy",
    "SOC after the discharge"
)]
#[case::sc_delay(
    "sim-bms-1.0.0-defect-sc-delay.yaml",
    "short-circuit",
    "Short circuit through the rig's switch"
)]
fn each_seeded_defect_is_caught(#[case] image: &str, #[case] plan: &str, #[case] test: &str) {
    // The catching plan alone: the whole suite on every image runs in
    // `the_nightly_suite_runs_whole_on_every_image_of_the_manifest`.
    let runs = nightly_only(image, Some(plan));
    let (_, outcome, failed) = runs
        .iter()
        .find(|(p, ..)| p == plan)
        .unwrap_or_else(|| panic!("no plan `{plan}` in the nightly suite"));
    assert_ne!(*outcome, Outcome::Passed, "{plan} passed on {image}");
    assert!(
        failed.contains(test),
        "{plan} on {image}: `{test}` did not fail; failed: {failed:?}"
    );
}

/// A rig file for the simulated bench running `image` (a file of firmware-under-test/).
fn rig_with_image(dir: &std::path::Path, image: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root().join("rig/sim.yaml")).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("firmware:") {
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}firmware: {}\n", image.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let path = dir.join("rig.yaml");
    std::fs::write(
        &path,
        text.replace("../", &format!("{}/", root().display())),
    )
    .unwrap();
    path
}

/// `hilrig run test-plans/nightly.yaml --virtual-time` on every simulated image of the
/// manifest: every plan runs (a results.json per plan, none of them "not started"), the good
/// image exits 0, each defect image exits 1 (a failing test, not an aborted run), and tests
/// that did not run are listed in results.json and skipped in junit.xml. Every threshold,
/// trip time and release in every member results.json lies within its expanded uncertainty
/// of the simulated firmware's truth, or is reported not determinable (value null, verdict
/// inconclusive, a reason): levels from the image's configuration (half the AFE resolution
/// beyond the level, see `sim_support::level_truth`), trip times from the member's
/// truth.json (the FET opening minus the plant's crossing of the firmware's own level: the
/// trip time as the rig defines it wherever that level is the declared one; on the image
/// whose OV level is not, the plan's OV step trips do not trip and report no trip time).
#[test]
fn the_nightly_suite_runs_whole_on_every_image_of_the_manifest() {
    let manifest =
        hilrig::flash::manifest::Manifest::load(&root().join("firmware-under-test/manifest.yaml"))
            .unwrap();
    let suite = load_suite(&root().join("test-plans/nightly.yaml")).unwrap();
    let images: Vec<_> = manifest
        .images
        .iter()
        .filter(|i| i.is_simulated())
        .collect();
    assert!(images.len() >= 8, "{} simulated images", images.len());
    let mut tally = TruthTally::default();
    let image_count = images.len();
    for image in images {
        let dir = temp_dir(&format!("suite-{}", image.id));
        let rig = rig_with_image(&dir, &manifest.file_of(image));
        let out = dir.join("reports");
        let run = run_in_virtual_time(Path::new("test-plans/nightly.yaml"), &rig, &out, &dir);
        let stdout = String::from_utf8_lossy(&run.stdout);
        let expected = if image.defect.is_some() { 1 } else { 0 };
        assert_eq!(
            run.status.code(),
            Some(expected),
            "{}: {stdout}\n{}",
            image.id,
            String::from_utf8_lossy(&run.stderr)
        );
        let top = first_run_dir(&out);
        let firmware = hilrig::sim::firmware::FirmwareImage::load(&manifest.file_of(image))
            .unwrap_or_else(|e| panic!("{}: {e}", image.id));
        let mut skipped_listed = 0;
        for entry in &suite.value.plans {
            let text =
                std::fs::read_to_string(root().join("test-plans").join(&entry.plan)).unwrap();
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("plan: "))
                .unwrap()
                .trim()
                .to_string();
            let results = read_json(&top.join(&id).join("results.json"));
            assert_ne!(
                results["outcome"], "aborted",
                "{}: plan {id} aborted: {}",
                image.id, results["abort"]
            );
            assert!(results["tests"].as_array().is_some_and(|t| !t.is_empty()));
            skipped_listed += results["not_run"].as_array().map_or(0, |n| n.len());
            tally.check(&image.id, &firmware.config, &id, &results, &top.join(&id));
        }
        let junit = std::fs::read_to_string(top.join("junit.xml")).unwrap();
        let skipped = junit.matches("<skipped").count();
        assert_eq!(skipped, skipped_listed, "{}: {junit}", image.id);
        println!(
            "{}: exit {expected}, {} plans, {skipped} test(s) not run",
            image.id,
            suite.value.plans.len()
        );
    }
    println!(
        "against the truth: {image_count} images x {} plans, {} thresholds, trip times, \
         releases and SOC references checked, {} reported not determinable, {} violations",
        suite.value.plans.len(),
        tally.checked,
        tally.not_determinable,
        tally.violations.len()
    );
    for (quantity, (checked, nd)) in &tally.by_quantity {
        println!("  {quantity}: {checked} checked, {nd} not determinable");
    }
    assert!(tally.checked > 0);
    assert!(
        tally.violations.is_empty(),
        "{} of {} measurements lie outside their expanded uncertainty of the truth:\n{}",
        tally.violations.len(),
        tally.checked,
        tally.violations.join("\n")
    );
}

/// Thresholds, trip times, releases and SOC references of member results compared with the
/// simulated firmware's truth (its image configuration and the member's truth.json).
#[derive(Default)]
struct TruthTally {
    /// Per quantity: (checked, not determinable).
    by_quantity: std::collections::BTreeMap<String, (usize, usize)>,
    checked: usize,
    not_determinable: usize,
    violations: Vec<String>,
}

impl TruthTally {
    /// Check every threshold, trip time and release of one member's `results`.
    fn check(
        &mut self,
        image: &str,
        config: &sim_bms::Config,
        plan: &str,
        results: &serde_json::Value,
        dir: &std::path::Path,
    ) {
        let events: Vec<sim_support::TruthEvent> =
            serde_json::from_value(read_json(&dir.join("truth.json"))).unwrap();
        for test in results["tests"].as_array().unwrap() {
            let started = test["started_s"].as_f64().unwrap();
            for m in test["measurements"].as_array().unwrap() {
                let quantity = m["quantity"].as_str().unwrap();
                if !matches!(
                    quantity,
                    "threshold" | "trip_time" | "release" | "soc_reference"
                ) {
                    continue;
                }
                let what = format!("{image} {plan} `{}` {}", test["name"], m["criterion"]);
                if m["value"].is_null() {
                    assert_eq!(m["verdict"], "inconclusive", "{what}: {m}");
                    assert!(m["not_determinable"].is_string(), "{what}: {m}");
                    self.not_determinable += 1;
                    self.by_quantity.entry(quantity.to_string()).or_default().1 += 1;
                    continue;
                }
                let criterion = m["criterion"].as_str().unwrap();
                let protection = criterion.split('_').next().unwrap();
                let truth = match quantity {
                    // The plant's true SOC when the BMS's report arrived.
                    "soc_reference" => test["detected_s"]
                        .as_f64()
                        .and_then(|t| sim_support::soc_truth_at(&events, t)),
                    "threshold" => sim_support::level_truth(config, protection, false),
                    "release" => sim_support::level_truth(config, protection, true),
                    _ => sim_support::trip_time_truth(&events, protection, started),
                };
                let value = m["value"].as_f64().unwrap();
                let u = m["uncertainty"].as_f64().unwrap();
                self.checked += 1;
                self.by_quantity.entry(quantity.to_string()).or_default().0 += 1;
                match truth {
                    Some(truth) if (value - truth).abs() <= u + 1e-9 => {}
                    Some(truth) => self.violations.push(format!(
                        "{what}: {value:.6} ± {u:.6}, truth {truth:.6}, error {:+.6}",
                        value - truth
                    )),
                    None => self
                        .violations
                        .push(format!("{what}: {value:.6} ± {u:.6}, no truth found")),
                }
            }
        }
    }
}

/// A plan the BMS cannot satisfy (a `wait_for` precondition that never holds) is a failed
/// test of that precondition, the bench being fine: the run is not aborted, and the tests
/// that could not run are listed with the reason.
#[test]
fn an_unmet_precondition_is_a_failed_test_and_the_rest_is_not_run() {
    let rig = sim_rig(Some("sim-bms-1.0.0-defect-uv-latch.yaml"));
    let plan = plan("test-plans/uv-discharge.yaml", &rig);
    let dir = temp_dir("uv-latch-precondition");
    let results = virtual_runtime().block_on(async {
        let bench = memory_bench(&rig, &root().join("rig/sim.yaml")).await;
        run_plan(&bench, &rig, plan.clone(), &dir).await.0
    });
    assert_eq!(results.outcome, Outcome::Failed, "{:?}", results.abort);
    assert!(results.abort.is_none());
    assert!(results.safe_state_reached);
    let pre = results
        .tests
        .iter()
        .find(|t| t.name.starts_with("precondition "))
        .expect("a failed precondition test");
    assert_eq!(pre.verdict, Verdict::Fail);
    assert!(pre.message.as_deref().unwrap().contains("did not hold"));
    let planned = hilrig::run::planned_tests(&plan);
    assert!(!results.not_run.is_empty());
    for n in &results.not_run {
        assert!(planned.contains(&n.name), "{n:?}");
        assert!(n.reason.contains("did not hold"), "{n:?}");
        assert!(!results.tests.iter().any(|t| t.name == n.name));
    }
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<skipped").count(), results.not_run.len());
}

/// The delay defect (real delay 6 s, declared 2 s) no longer yields a precise wrong
/// threshold (3.6907 V ± 2.3 mV against a true 3.651 V): the plan's step trips contradict the
/// declared delay, so the ramp's threshold is not determinable, with the reason. On the good
/// image the same threshold is determined, with the checked delay in its budget, and lies
/// within its expanded uncertainty of the firmware's level (3.65 V plus half the AFE's 1 mV).
#[rstest]
#[case::defect("sim-bms-1.0.0-defect-ov-delay.yaml", false)]
#[case::good("sim-bms-1.0.0.yaml", true)]
fn a_ramp_threshold_rests_on_a_checked_delay(#[case] image: &str, #[case] determinable: bool) {
    let rig = sim_rig(Some(image));
    let plan = plan("test-plans/ov-charge.yaml", &rig);
    let dir = temp_dir("ov-delay-threshold");
    let results = virtual_runtime().block_on(async {
        let bench = memory_bench(&rig, &root().join("rig/sim.yaml")).await;
        run_plan(&bench, &rig, plan, &dir).await.0
    });
    let thresholds: Vec<_> = results
        .tests
        .iter()
        .flat_map(|t| &t.measurements)
        .filter(|m| m.criterion == "ov_threshold")
        .collect();
    assert_eq!(thresholds.len(), 5);
    for m in thresholds {
        if determinable {
            assert!(m.not_determinable.is_none(), "{m:?}");
            assert!((m.value - 3.6505).abs() <= m.uncertainty, "{m:?}");
            assert!(m.budget.iter().any(|c| c.name.contains("step trips")));
        } else {
            assert!(m.value.is_nan(), "{m:?}");
            assert_eq!(m.verdict, Verdict::Inconclusive);
            let why = m.not_determinable.as_deref().unwrap();
            assert!(why.contains("contradicted"), "{why}");
        }
    }
    // results.json states null for the value that could not be determined.
    let json = read_json(&dir.join("results.json"));
    let v = &json["tests"][0]["measurements"][0]["value"];
    assert_eq!(v.is_null(), !determinable, "{v}");
}

/// The release level read off the ramp back rests on a release delay (the fixture declares
/// none: 0 s). The shipped over-voltage plan checks it with a step trip that steps back to
/// rest: the release is determined, with the checked interval in its budget, and lies within
/// its expanded uncertainty of the firmware's release level. Without that step back nothing
/// checks it, and the release is not determinable, with what was assumed and what to add.
#[rstest]
#[case::checked(true)]
#[case::unchecked(false)]
fn a_release_level_rests_on_a_checked_release_delay(#[case] step_back: bool) {
    let rig = sim_rig(Some("sim-bms-1.0.0.yaml"));
    let text = std::fs::read_to_string(root().join("test-plans/ov-charge.yaml")).unwrap();
    // Without the step trip that steps back to rest (the last step of the plan).
    let (start, end) = (
        text.find("  # The release level read off").unwrap(),
        text.find("teardown:").unwrap(),
    );
    assert!(text[start..end].contains(", rest: 3.30 V}}"));
    let text = if step_back {
        text
    } else {
        format!("{}{}", &text[..start], &text[end..])
    };
    let dir = temp_dir(&format!("ov-release-delay-{step_back}"));
    let path = dir.join("ov-charge.yaml");
    let fixture = root().join("fixtures/sim-bms-16s-lfp.yaml");
    let text = text.replace(
        "../fixtures/sim-bms-16s-lfp.yaml",
        fixture.to_str().unwrap(),
    );
    std::fs::write(&path, text).unwrap();
    let results = run_in_memory(&rig, &path, &dir);
    let truth = ov_release_truth(&root().join("firmware-under-test/sim-bms-1.0.0.yaml"));
    for m in releases(&results) {
        if step_back {
            assert_eq!(m.verdict, Verdict::Pass, "{m:?}");
        }
        assert_release(
            m,
            truth,
            step_back,
            "release delay checked by 5 step(s) back to rest",
            &["release delay of 0.000 s", "`rest`"],
        );
    }
    assert_eq!(
        results.outcome,
        if step_back {
            Outcome::Passed
        } else {
            Outcome::Inconclusive
        },
        "{:?}",
        results.abort
    );
}

/// `hilrig run PLAN --virtual-time --rig RIG --out OUT` from the repository root, with the
/// bench lock in `dir`.
fn run_in_virtual_time(plan: &Path, rig: &Path, out: &Path, dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hilrig"))
        .arg("run")
        .arg(plan)
        .args(["--virtual-time", "--rig"])
        .arg(rig)
        .arg("--out")
        .arg(out)
        .current_dir(root())
        .env("HILRIG_LOCK_DIR", dir)
        .output()
        .unwrap()
}

/// The simulated rig with a supply whose output does not switch off.
fn stuck_supply_rig(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("rig/sim.yaml")).unwrap();
    assert!(text.contains("  ambient: 25 °C"));
    let text = text
        .replace(
            "  ambient: 25 °C",
            "  faults: [supply_output_stuck_on]\n  ambient: 25 °C",
        )
        .replace("../", &format!("{}/", root().display()));
    let rig = dir.join("rig.yaml");
    std::fs::write(&rig, text).unwrap();
    rig
}

#[test]
fn a_single_plan_that_leaves_the_supply_on_exits_2_though_its_tests_passed() {
    let dir = temp_dir("plan-stuck-supply");
    let rig = stuck_supply_rig(&dir);
    let out = dir.join("reports");
    let run = run_in_virtual_time(Path::new("test-plans/overcharge.yaml"), &rig, &out, &dir);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("PASSED: "), "{stdout}");
    assert!(
        stdout.contains("SAFE STATE NOT CONFIRMED: supply"),
        "{stdout}"
    );
    assert!(
        stdout.contains("exit 2: the bench's safe state was not confirmed"),
        "{stdout}"
    );
    let r = read_json(&first_run_dir(&out).join("results.json"));
    assert_eq!(
        (&r["outcome"], &r["safe_state_reached"]),
        (&"passed".into(), &false.into())
    );
}

/// A suite stops when a plan leaves the bench's safe state unconfirmed, even a plan whose
/// tests all passed: the simulated supply's output sticks on once switched on (the rig's
/// `faults: [supply_output_stuck_on]`), so after the first plan the read-back says it is
/// still on. The remaining plans are not started: their results.json lists every test as
/// not run with the reason (naming the plan and the unconfirmed action), and junit.xml shows
/// them as skipped with that reason; the run exits 2.
#[test]
fn a_suite_stops_when_the_safe_state_is_not_confirmed() {
    let dir = temp_dir("suite-stuck-supply");
    let rig = stuck_supply_rig(&dir);
    let plans = [
        "overcharge.yaml",
        "ut-charge-inhibit.yaml",
        "oc-discharge.yaml",
    ];
    let mut suite =
        "suite: stuck-supply\ntitle: A supply that does not switch off\nplans:\n".to_string();
    for p in plans {
        let path = root().join("test-plans").join(p);
        suite.push_str(&format!("  - plan: {}\n", path.display()));
    }
    let suite_path = dir.join("suite.yaml");
    std::fs::write(&suite_path, suite).unwrap();
    let out = dir.join("reports");
    let run = run_in_virtual_time(&suite_path, &rig, &out, &dir);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(2),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let top = first_run_dir(&out);
    // The first plan ran to its end and passed, but the supply did not switch off.
    let first = read_json(&top.join("cell-overvoltage-charge").join("results.json"));
    assert_eq!(first["outcome"], "passed", "{first}");
    assert_eq!(first["safe_state_reached"], false);
    let supply = first["safe_state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["instrument"] == "supply")
        .unwrap();
    assert_eq!(supply["ok"], false, "{supply}");
    assert!(
        supply["error"]
            .as_str()
            .unwrap()
            .contains("output still on"),
        "{supply}"
    );
    // The others were not started, with the reason.
    let junit = std::fs::read_to_string(top.join("junit.xml")).unwrap();
    let mut not_run = 0;
    for id in ["ut-charge-inhibit", "oc-discharge"] {
        let r = read_json(&top.join(id).join("results.json"));
        assert_eq!(r["outcome"], "aborted", "{id}: {r}");
        assert_eq!(r["abort"]["during"], "not started", "{id}: {r}");
        let cause = r["abort"]["cause"].as_str().unwrap();
        assert!(
            cause.contains("safe state was not confirmed after plan `cell-overvoltage-charge`")
                && cause.contains("output still on"),
            "{id}: {cause}"
        );
        assert!(r["tests"].as_array().unwrap().is_empty(), "{id}: {r}");
        let listed = r["not_run"].as_array().unwrap();
        assert!(!listed.is_empty(), "{id}: {r}");
        for n in listed {
            assert!(
                n["reason"]
                    .as_str()
                    .unwrap()
                    .contains("safe state was not confirmed"),
                "{n}"
            );
            assert!(
                junit.contains(n["name"].as_str().unwrap()),
                "{n} not in {junit}"
            );
        }
        not_run += listed.len();
        assert!(stdout.contains(&format!("NOT RUN {id}")), "{stdout}");
    }
    assert_eq!(junit.matches("<skipped").count(), not_run, "{junit}");
    assert!(junit.contains("safe state was not confirmed"), "{junit}");
}

/// A BMS that releases only after the value stayed back past the release level for 1 s (an
/// image with `release_delay: 1 s` for OV). Read off the ramp back at 50 mV/s, its release
/// level would be 50 mV low. A fixture that declares no release delay: the plan's step back
/// to rest contradicts the assumed 0 s, and the release is not determinable, with the
/// observed interval and what to declare. A fixture that declares the 1 s: the estimate uses
/// it, the step back confirms it, and the release lies within its expanded uncertainty of
/// the firmware's release level.
#[rstest]
#[case::undeclared(false)]
#[case::declared(true)]
fn a_real_release_delay_is_caught_unless_declared(#[case] declared: bool) {
    let dir = temp_dir(&format!("release-delay-declared-{declared}"));
    let line = "  ov:  {trip: 3.65 V, release: 3.38 V, delay: 2 s}";
    let delayed = "  ov:  {trip: 3.65 V, release: 3.38 V, delay: 2 s, release_delay: 1 s}";
    let image_text =
        std::fs::read_to_string(root().join("firmware-under-test/sim-bms-1.0.0.yaml")).unwrap();
    assert!(image_text.contains(line));
    let image = dir.join("sim-bms-release-delay.yaml");
    std::fs::write(&image, image_text.replace(line, delayed)).unwrap();
    let fixture_text =
        std::fs::read_to_string(root().join("fixtures/sim-bms-16s-lfp.yaml")).unwrap();
    assert!(fixture_text.contains(line) && fixture_text.contains("dbc: dbc/sim-bms.dbc"));
    let fixture_text = fixture_text.replace(
        "dbc: dbc/sim-bms.dbc",
        &format!("dbc: {}", root().join("fixtures/dbc/sim-bms.dbc").display()),
    );
    let mut fixture_text = fixture_paths_absolute(&fixture_text);
    if declared {
        fixture_text = fixture_text.replace(line, delayed);
    }
    let fixture = dir.join("fixture.yaml");
    std::fs::write(&fixture, fixture_text).unwrap();
    let plan_text = std::fs::read_to_string(root().join("test-plans/ov-charge.yaml"))
        .unwrap()
        .replace(
            "../fixtures/sim-bms-16s-lfp.yaml",
            fixture.to_str().unwrap(),
        )
        .replace(
            "limits: iec62619-bms",
            &format!(
                "limits: {}",
                root().join("fixtures/limits/iec62619-bms.yaml").display()
            ),
        );
    let path = dir.join("ov-charge.yaml");
    std::fs::write(&path, plan_text).unwrap();
    let rig = sim_rig(Some(image.to_str().unwrap()));
    let results = run_in_memory(&rig, &path, &dir);
    assert!(results.abort.is_none(), "{:?}", results.abort);
    let firmware = hilrig::sim::firmware::FirmwareImage::load(&image).unwrap();
    assert_eq!(firmware.config.ov.release_delay_ms, 1000);
    let truth = sim_support::level_truth(&firmware.config, "ov", true).unwrap();
    for m in releases(&results) {
        assert_release(
            m,
            truth,
            declared,
            "declared release delay checked by 5 step(s) back to rest",
            &[
                "release delay of 0.000 s",
                "put the real release delay between",
                "declare `release_delay`",
            ],
        );
    }
}

/// Load a plan file and run it on a fresh in-memory simulated bench, in virtual time.
fn run_in_memory(
    rig: &hilrig::rig::Rig,
    path: &std::path::Path,
    dir: &std::path::Path,
) -> hilrig::report::RunResults {
    let plan = std::sync::Arc::new(
        hilrig::plan::load_plan(path, Some(rig)).unwrap_or_else(|e| panic!("{e:#?}")),
    );
    virtual_runtime().block_on(async {
        let bench = memory_bench(rig, &root().join("rig/sim.yaml")).await;
        run_plan(&bench, rig, plan, dir).await.0
    })
}

/// The release measurements of a run of the over-voltage plan (five repeats).
fn releases(results: &hilrig::report::RunResults) -> Vec<&hilrig::report::MeasurementResult> {
    let releases: Vec<_> = results
        .tests
        .iter()
        .flat_map(|t| &t.measurements)
        .filter(|m| m.quantity == "release")
        .collect();
    assert_eq!(releases.len(), 5);
    releases
}

/// The over-voltage release level of the firmware image at `image`.
fn ov_release_truth(image: &std::path::Path) -> f64 {
    let firmware = hilrig::sim::firmware::FirmwareImage::load(image).unwrap();
    sim_support::level_truth(&firmware.config, "ov", true).unwrap()
}

/// A release is either determined, within its expanded uncertainty of `truth` and with
/// `budget` in its budget text, or not determinable (inconclusive, no value) with every
/// part of `why` in its reason.
fn assert_release(
    m: &hilrig::report::MeasurementResult,
    truth: f64,
    determined: bool,
    budget: &str,
    why: &[&str],
) {
    if determined {
        assert!(m.not_determinable.is_none(), "{m:?}");
        assert!((m.value - truth).abs() <= m.uncertainty, "{m:?}");
        assert!(
            m.uncertainty_budget.contains(budget),
            "{}",
            m.uncertainty_budget
        );
    } else {
        assert!(m.value.is_nan(), "{m:?}");
        assert_eq!(m.verdict, Verdict::Inconclusive);
        let reason = m.not_determinable.as_deref().unwrap();
        assert!(why.iter().all(|w| reason.contains(w)), "{reason}");
    }
}

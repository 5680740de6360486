//! The nightly suite against every firmware image of the simulated target, in virtual time:
//! the good image passes everything, and each seeded defect is caught by the test that
//! should catch it.

use crate::common;
use crate::sim_support;

use std::collections::BTreeSet;

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
    assert_eq!(runs.len(), 10);
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
fn each_seeded_defect_is_caught(#[case] image: &str, #[case] plan: &str, #[case] test: &str) {
    let runs = nightly(image);
    let (_, outcome, failed) = runs.iter().find(|(p, ..)| p == plan).unwrap();
    assert_ne!(*outcome, Outcome::Passed, "{plan} passed on {image}");
    assert!(
        failed.contains(test),
        "{plan} on {image}: `{test}` did not fail; failed: {failed:?}"
    );
    // The suite as a whole does not pass.
    assert!(runs.iter().any(|(_, o, _)| *o != Outcome::Passed));
}

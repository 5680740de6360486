//! State-of-charge accuracy on the simulated bench, in virtual time: the rig's SOC reference
//! (`verdict::soc`) lies within its stated expanded uncertainty of the plant's true SOC
//! (truth.json's `soc` events) at every checkpoint of `test-plans/soc-accuracy.yaml`, the
//! good image passes, and the image whose estimator counts against 80 % of the capacity
//! fails the checkpoint after the discharge.

use crate::common;
use crate::sim_support;

use common::*;
use hilrig::report::{Outcome, RunResults};
use hilrig::verdict::Verdict;
use sim_support::{memory_bench, run_plan, soc_truth_at, virtual_runtime, TruthEvent};

/// Run the SOC plan on a fresh bench with `image`; its results and truth.
fn run(image: &str) -> (RunResults, Vec<TruthEvent>) {
    let rig = sim_rig(Some(image));
    let plan = plan("test-plans/soc-accuracy.yaml", &rig);
    let dir = temp_dir(&format!("soc-accuracy-{image}"));
    virtual_runtime().block_on(async {
        let bench = memory_bench(&rig, &root().join("rig/sim.yaml")).await;
        let (results, clock) = run_plan(&bench, &rig, plan, &dir).await;
        // As truth.json has it.
        let events = serde_json::to_value(bench.truth.events(clock.origin)).unwrap();
        (results, serde_json::from_value(events).unwrap())
    })
}

#[test]
fn the_reference_lies_within_its_uncertainty_of_the_true_soc_and_the_good_image_passes() {
    let (results, truth) = run("sim-bms-1.0.0.yaml");
    assert_eq!(results.outcome, Outcome::Passed, "{:#?}", results.tests);
    assert_eq!(results.tests.len(), 4);
    let mut checked = 0;
    for test in &results.tests {
        let at = test
            .detected_s
            .expect("a checkpoint records the BMS report's instant");
        let reference = test
            .measurements
            .iter()
            .find(|m| m.quantity == "soc_reference")
            .unwrap_or_else(|| panic!("{}: no reference in {test:?}", test.name));
        let error = test
            .measurements
            .iter()
            .find(|m| m.quantity == "soc_error")
            .unwrap();
        let true_soc = soc_truth_at(&truth, at).expect("the plant's SOC in truth.json");
        assert!(
            (reference.value - true_soc).abs() <= reference.uncertainty,
            "{}: reference {} ± {} %, truth {true_soc} %",
            test.name,
            reference.value,
            reference.uncertainty
        );
        assert_eq!(reference.coverage_factor, 2.0);
        assert!(reference.uncertainty > 0.0 && reference.budget.len() >= 5);
        // The error's budget is the reference's plus the BMS's report.
        assert!(error.uncertainty >= reference.uncertainty);
        assert_eq!(error.limit.high, Some(5.0));
        checked += 1;
    }
    assert_eq!(checked, 4);
    // The second start, at rest on the steep part of the curve, is far more certain than the
    // first on the plateau.
    let u = |name: &str| {
        results
            .tests
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .measurements[0]
            .uncertainty
    };
    assert!(u("SOC after the charge") < u("SOC after the discharge") / 3.0);
    // The plant moved: 40 Ah out of 100 Ah, then 5 Ah back in.
    let true_at = |name: &str| {
        let t = results.tests.iter().find(|t| t.name == name).unwrap();
        soc_truth_at(&truth, t.detected_s.unwrap()).unwrap()
    };
    assert!((true_at("SOC after the discharge") - 10.0).abs() < 0.5);
    assert!((true_at("SOC after the charge") - 15.0).abs() < 0.5);
}

#[test]
fn an_estimator_counting_against_a_wrong_capacity_fails_after_the_discharge() {
    let (results, _) = run("sim-bms-1.0.0-defect-soc-capacity.yaml");
    assert_eq!(results.outcome, Outcome::Failed);
    let failed = results
        .tests
        .iter()
        .find(|t| t.name == "SOC after the discharge")
        .unwrap();
    assert_eq!(failed.verdict, Verdict::Fail);
    let error = failed
        .measurements
        .iter()
        .find(|m| m.quantity == "soc_error")
        .unwrap();
    // 40 % of the capacity counted 1.25 times: 10 % too low.
    assert!((error.value + 10.0).abs() < 0.5, "{error:?}");
}

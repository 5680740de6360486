//! Choosing tests by name (`hilrig run --test NAME`).
//!
//! A test is a step that reports a verdict (`trip`, `expect`, `measure`, `declaration`),
//! named as in the results without the ` #N` of a repeat. Choosing tests keeps, under
//! `steps:`, the chosen tests and every step that is no test (stimuli, waits: the plan's
//! own way of bringing the bench back between tests); the other tests are dropped. Setup
//! and teardown run unchanged, so a test there runs whatever is chosen, and naming it is
//! accepted. In a suite, only the plans that declare one of the names run. A name that no
//! plan declares is an input error that lists the declared names and suggests the closest.

use std::path::Path;

use super::error::{did_you_mean, InputError};
use super::load::LoadedPlan;
use super::model::Plan;

/// The names of the plan's tests in order (setup, steps, teardown), each once.
pub fn declared_tests(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = plan.setup.iter().chain(&plan.steps).chain(&plan.teardown);
    for name in all.filter_map(|s| s.value.test_name()) {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The names in `names` (the `--test` options) that `plan` declares, in the order given.
pub fn selected_in(plan: &Plan, names: &[String]) -> Vec<String> {
    let declared = declared_tests(plan);
    names
        .iter()
        .filter(|n| declared.contains(n))
        .cloned()
        .collect()
}

/// The plan with, under `steps:`, only the tests named in `names` (and every step that is
/// no test); setup and teardown are left as they are.
pub fn only_tests(mut plan: LoadedPlan, names: &[String]) -> LoadedPlan {
    plan.plan
        .value
        .steps
        .retain(|s| s.value.test_name().is_none_or(|n| names.contains(&n)));
    plan
}

/// The plans that declare one of `names`, each with only those tests; all of `plans` when
/// `names` is empty. A name no plan declares is an error about `file` (the plan or suite
/// given), with the declared names and the closest one.
pub fn select_tests(
    file: &Path,
    plans: Vec<LoadedPlan>,
    names: &[String],
) -> Result<Vec<LoadedPlan>, Vec<InputError>> {
    if names.is_empty() {
        return Ok(plans);
    }
    let declared: Vec<Vec<String>> = plans
        .iter()
        .map(|p| declared_tests(&p.plan.value))
        .collect();
    let every: Vec<&str> = declared.iter().flatten().map(String::as_str).collect();
    let errors: Vec<InputError> = names
        .iter()
        .filter(|n| !every.contains(&n.as_str()))
        .map(|n| {
            let hint = did_you_mean(n, every.iter().copied())
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_default();
            let list = every
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ");
            InputError::file(
                file,
                format!("--test `{n}`: no such test{hint} (tests declared: {list})"),
            )
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(plans
        .into_iter()
        .zip(declared)
        .filter(|(_, d)| names.iter().any(|n| d.contains(n)))
        .map(|(p, _)| only_tests(p, names))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::load::load_plan;
    use rstest::rstest;
    use std::path::PathBuf;

    fn shipped(name: &str) -> LoadedPlan {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("test-plans")
            .join(name);
        load_plan(&path, None).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn step_tests(p: &LoadedPlan) -> Vec<String> {
        p.plan
            .value
            .steps
            .iter()
            .filter_map(|s| s.value.test_name())
            .collect()
    }

    /// The selection recorded for a plan: the names it declares, in the order given.
    #[rstest]
    #[case::both(&["OV cell 5", "OV trip time cell 5"], &["OV cell 5", "OV trip time cell 5"])]
    #[case::another_plans_name(&["UV cell 1", "OV cell 5"], &["OV cell 5"])]
    #[case::none(&[], &[])]
    fn the_selection_is_what_the_plan_declares(#[case] names: &[&str], #[case] want: &[&str]) {
        let p = shipped("overcharge.yaml");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        assert_eq!(selected_in(&p.plan.value, &names), want);
    }

    #[test]
    fn declared_tests_are_in_plan_order_with_setup_first() {
        let p = shipped("overcharge.yaml");
        assert_eq!(
            declared_tests(&p.plan.value),
            ["OV trip time cell 5", "OV cell 5"]
        );
    }

    #[rstest]
    #[case::one_test(&["OV trip time cell 5"], &["OV trip time cell 5"])]
    #[case::two_tests(
        &["OV fault names cell 5", "OV threshold cell 5"],
        &["OV threshold cell 5", "OV fault names cell 5"]
    )]
    #[case::none_chosen(&[], &[])]
    fn only_the_chosen_tests_stay(#[case] names: &[&str], #[case] kept: &[&str]) {
        let p = shipped("ov-charge.yaml");
        let before = p.plan.value.steps.len();
        let others = before - step_tests(&p).len();
        let setup = p.plan.value.setup.len();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let p = only_tests(p, &names);
        assert_eq!(step_tests(&p), kept);
        // Steps that are no tests stay; setup is untouched.
        assert_eq!(p.plan.value.steps.len(), others + kept.len());
        assert_eq!(p.plan.value.setup.len(), setup);
    }

    #[rstest]
    #[case::misspelt("OV treshold cell 5", Some("did you mean `OV threshold cell 5`?"))]
    #[case::far_off("battery explodes", None)]
    fn an_unknown_name_is_an_error_listing_the_declared_ones(
        #[case] name: &str,
        #[case] hint: Option<&str>,
    ) {
        let errors = select_tests(
            Path::new("ov-charge.yaml"),
            vec![shipped("ov-charge.yaml")],
            &[name.to_string()],
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        let text = errors[0].to_string();
        assert!(
            text.contains(&format!("--test `{name}`: no such test")),
            "{text}"
        );
        assert!(text.contains("`OV fault names cell 5`"), "{text}");
        match hint {
            Some(h) => assert!(text.contains(h), "{text}"),
            None => assert!(!text.contains("did you mean"), "{text}"),
        }
    }

    #[test]
    fn plans_without_a_chosen_test_are_left_out() {
        let plans = vec![shipped("overcharge.yaml"), shipped("ov-charge.yaml")];
        let kept = select_tests(
            Path::new("suite.yaml"),
            plans,
            &["OV threshold cell 5".to_string()],
        )
        .unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].plan.value.plan, "ov-charge");
        assert_eq!(step_tests(&kept[0]), ["OV threshold cell 5"]);
    }

    #[test]
    fn no_names_keeps_every_plan_whole() {
        let kept = select_tests(Path::new("p.yaml"), vec![shipped("ov-charge.yaml")], &[]).unwrap();
        assert_eq!(step_tests(&kept[0]).len(), 4);
    }
}

//! Suites run whole: after a plan ends (passed, failed, or aborted with the bench brought to
//! its safe state) the next plan runs. Only a bench that cannot be trusted stops the suite:
//! a safe state that was not confirmed, an instrument that could not be connected, a firmware
//! that was refused, or the operator's cancel. The plans that then do not run are recorded
//! (results.json, junit.xml) with every test they would have reported and the reason.

use std::path::Path;

use super::planned_tests;
use crate::plan::LoadedPlan;
use crate::report::{Abort, AbortKind, AbortStage, FirmwareInfo, NotRun, Outcome, RunResults};
use crate::rig::Rig;
use crate::trace::Clock;

/// Why the plans after `r` must not run, when they must not: the bench is not trustworthy
/// after it (or the operator stopped the run). `None`: the suite goes on.
pub fn stop_after(r: &RunResults) -> Option<String> {
    let abort = r.abort.as_ref();
    // A plan that ran to its end can still leave the bench unconfirmed (an output that
    // would not switch off): that stops the suite as much as an aborted plan does.
    if !r.safe_state_reached {
        let cause = match abort {
            Some(a) => a.cause.clone(),
            None => unconfirmed(r),
        };
        return Some(format!(
            "the bench's safe state was not confirmed after plan `{}` ({cause})",
            r.plan
        ));
    }
    if r.outcome != Outcome::Aborted {
        return None;
    }
    let cause = abort.map(|a| a.cause.as_str()).unwrap_or("unknown cause");
    match (abort.and_then(|a| a.stage), abort.and_then(|a| a.kind)) {
        (Some(AbortStage::Connecting), _) => Some(format!(
            "the bench could not be connected for plan `{}` ({cause})",
            r.plan
        )),
        (Some(AbortStage::BeforeStart), _) => Some(format!(
            "plan `{}` was refused before its first step ({cause})",
            r.plan
        )),
        (Some(AbortStage::NotStarted), _) => Some(cause.to_string()),
        (_, Some(AbortKind::Cancelled)) => Some(format!(
            "the operator stopped the run during plan `{}`",
            r.plan
        )),
        _ => None,
    }
}

/// The process exit code of a run of `all` (one plan or a suite) whose worst outcome is
/// `outcome`: the outcome's code, or 2 (a bench fault) when any plan ended with its safe
/// state not confirmed, even if every test passed.
pub fn exit_code(outcome: Outcome, all: &[RunResults]) -> i32 {
    let bench_fault = 2;
    if all.iter().any(|r| !r.safe_state_reached) {
        outcome.exit_code().max(bench_fault)
    } else {
        outcome.exit_code()
    }
}

/// The safe-state actions that were not confirmed, in words.
fn unconfirmed(r: &RunResults) -> String {
    let failed: Vec<String> = r
        .safe_state
        .iter()
        .filter(|a| !a.ok)
        .map(|a| {
            format!(
                "{} {}: {}",
                a.instrument,
                a.action,
                a.error.as_deref().unwrap_or("not confirmed")
            )
        })
        .collect();
    if failed.is_empty() {
        "no safe-state action was taken".into()
    } else {
        failed.join("; ")
    }
}

/// The abort cause of an operator's cancel.
pub(crate) const CANCELLED: &str = "cancelled by the operator";

/// The results of a plan the suite did not start: aborted before it began, with every test
/// it would have reported listed as not run with `reason`. Written to `dir` (results.json
/// and junit.xml).
pub fn not_started(
    plan: &LoadedPlan,
    rig: &Rig,
    run_id: &str,
    reason: &str,
    firmware: Option<FirmwareInfo>,
    context: crate::report::context::RunContext,
    dir: &Path,
) -> std::io::Result<RunResults> {
    std::fs::create_dir_all(dir)?;
    let clock = Clock::start();
    let results = RunResults {
        abort: Some(Abort {
            cause: reason.to_string(),
            during: AbortStage::NotStarted.words().map(str::to_string),
            at_s: 0.0,
            stopped_by: None,
            kind: Some(AbortKind::Refused),
            stage: Some(AbortStage::NotStarted),
        }),
        not_run: planned_tests(plan)
            .into_iter()
            .map(|name| NotRun {
                name,
                reason: format!("not run: {reason}"),
            })
            .collect(),
        ..super::results_of(
            plan,
            rig,
            run_id,
            plan.limits.value.decision_rule,
            firmware,
            &clock,
            context,
        )
    };
    results.write(dir)?;
    crate::report::junit::write(&results, &dir.join("junit.xml"))?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::SafeStateAction;
    use crate::report::RESULTS_SCHEMA;
    use rstest::rstest;

    /// Where and what an abort was: the step running, the stage, the kind.
    type Why<'a> = (Option<&'a str>, AbortStage, AbortKind);

    fn results(outcome: Outcome, cause: &str, why: Why, safe: bool) -> RunResults {
        let (during, stage, kind) = why;
        serde_json::from_value(serde_json::json!({
            "schema": RESULTS_SCHEMA, "run_id": "r", "plan": "p", "title": "t",
            "requirements": [], "station": "s", "dut": "d", "limit_profile": "l",
            "decision_rule": "guarded", "firmware": null, "clock_anchor": "x",
            "duration_s": 1.0, "outcome": outcome,
            "abort": (outcome == Outcome::Aborted).then(|| serde_json::json!({"cause": cause, "during": during, "at_s": 0.5, "stage": stage, "kind": kind})),
            "safe_state_reached": safe, "safe_state": [SafeStateAction { instrument: "supply".into(), action: "off".into(), ok: safe, confirmed: safe, error: None }],
            "tests": [], "trace_rows": 0
        }))
        .unwrap()
    }

    #[rstest]
    #[case::passed(&[(Outcome::Passed, true)], Outcome::Passed, 0)]
    #[case::failed(&[(Outcome::Failed, true)], Outcome::Failed, 1)]
    #[case::inconclusive(&[(Outcome::Inconclusive, true)], Outcome::Inconclusive, 1)]
    #[case::passed_but_unconfirmed(&[(Outcome::Passed, false)], Outcome::Passed, 2)]
    #[case::failed_but_unconfirmed(&[(Outcome::Failed, false)], Outcome::Failed, 2)]
    #[case::aborted(&[(Outcome::Aborted, true)], Outcome::Aborted, 2)]
    #[case::one_of_a_suite(&[(Outcome::Passed, true), (Outcome::Passed, false)], Outcome::Passed, 2)]
    fn a_run_that_leaves_the_bench_unconfirmed_exits_2(
        #[case] plans: &[(Outcome, bool)],
        #[case] worst: Outcome,
        #[case] code: i32,
    ) {
        let all: Vec<RunResults> = plans
            .iter()
            .map(|&(o, safe)| results(o, "cause", STEP, safe))
            .collect();
        assert_eq!(exit_code(worst, &all), code);
    }

    /// An instrument lost while a step ran.
    const STEP: Why = (
        Some("steps[0] trip (p.yaml:3)"),
        AbortStage::Steps,
        AbortKind::Instrument,
    );
    const CONNECTING: Why = (
        Some("connecting the bench"),
        AbortStage::Connecting,
        AbortKind::Instrument,
    );
    const REFUSED: Why = (
        Some("before the first step"),
        AbortStage::BeforeStart,
        AbortKind::Refused,
    );
    const CANCELLED_IN_STEP: Why = (
        Some("steps[1] wait (p.yaml:9)"),
        AbortStage::Steps,
        AbortKind::Cancelled,
    );

    #[rstest]
    #[case(Outcome::Passed, "", STEP, true, false)]
    #[case(Outcome::Failed, "", STEP, true, false)]
    #[case::passed_but_unconfirmed(Outcome::Passed, "", STEP, false, true)]
    #[case::failed_but_unconfirmed(Outcome::Failed, "", STEP, false, true)]
    #[case::lost_instrument(Outcome::Aborted, "supply: no reply", STEP, true, false)]
    #[case::lost_and_unconfirmed(Outcome::Aborted, "supply: no reply", STEP, false, true)]
    #[case::connecting(Outcome::Aborted, "connection refused", CONNECTING, true, true)]
    #[case::refused(Outcome::Aborted, "firmware x: hash", REFUSED, true, true)]
    #[case::cancelled(
        Outcome::Aborted,
        "cancelled by the operator (interrupt or terminate signal)",
        CANCELLED_IN_STEP,
        true,
        true
    )]
    fn which_endings_stop_the_suite(
        #[case] outcome: Outcome,
        #[case] cause: &str,
        #[case] why: Why,
        #[case] safe: bool,
        #[case] stops: bool,
    ) {
        let r = results(outcome, cause, why, safe);
        assert_eq!(stop_after(&r).is_some(), stops, "{:?}", stop_after(&r));
    }
}

//! What a valid plan may still lack: warnings `hilrig validate` prints without failing.

use super::model::Step;
use super::LoadedPlan;

/// `expect` checks that name no `judge:` criterion: they pass or fail without a criterion
/// (and so without provenance) in the limit profile. One `file:line:column: ...` per check.
pub fn unjudged_checks(plan: &LoadedPlan) -> Vec<String> {
    let p = &plan.plan.value;
    p.setup
        .iter()
        .chain(&p.steps)
        .chain(&p.teardown)
        .filter_map(|s| match &s.value {
            Step::Expect(e) if e.judge.is_none() => Some(format!(
                "{}:{}:{}: warning: expect `{}` has no `judge:` criterion; it is reported \
                 without a limit from the profile or its provenance. Name a `holds` criterion \
                 of the limit profile with `judge:`",
                plan.plan.path.display(),
                s.referenced.line(),
                s.referenced.column(),
                e.name.clone().unwrap_or_else(|| e.that.value.to_string())
            )),
            _ => None,
        })
        .collect()
}

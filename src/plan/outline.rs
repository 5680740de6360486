//! What a plan or suite contains (`hilrig list`): its tests, what each judges, its steps.
//!
//! One shape for a plan and a suite: a plan on its own is a list of one plan with no suite.
//! The JSON form is [`Outline`] as serialized; the text form fits 80 columns.

use serde::Serialize;

use super::load::{LoadedPlan, PlanSet};
use super::model::Step;
use serde_saphyr::Spanned;

/// A plan or suite, outlined.
#[derive(Debug, Serialize)]
pub struct Outline {
    /// The suite, when the file is one.
    pub suite: Option<SuiteOutline>,
    /// The plans, in order.
    pub plans: Vec<PlanOutline>,
}

/// A suite's own fields.
#[derive(Debug, Serialize)]
pub struct SuiteOutline {
    /// Suite id.
    pub suite: String,
    /// Human title.
    pub title: String,
    /// The suite file.
    pub file: String,
}

/// One plan.
#[derive(Debug, Serialize)]
pub struct PlanOutline {
    /// Plan id.
    pub plan: String,
    /// Human title.
    pub title: String,
    /// The plan file.
    pub file: String,
    /// How many times `steps` run.
    pub repeat: u32,
    /// The kinds of the setup steps, in order.
    pub setup: Vec<&'static str>,
    /// The kinds of the steps, in order.
    pub steps: Vec<&'static str>,
    /// The kinds of the teardown steps, in order.
    pub teardown: Vec<&'static str>,
    /// The tests, in order (setup, steps, teardown).
    pub tests: Vec<TestOutline>,
}

/// One test.
#[derive(Debug, Serialize)]
pub struct TestOutline {
    /// Name, as in the results (without the ` #N` of a repeat).
    pub name: String,
    /// `setup`, `steps` or `teardown`.
    pub phase: &'static str,
    /// Step kind (`trip`, `expect`, `measure`, `declaration`).
    pub kind: &'static str,
    /// How many times it runs (the plan's `repeat` under `steps`, else 1).
    pub repeat: u32,
    /// The limit-profile criteria it judges.
    pub criteria: Vec<String>,
}

impl Outline {
    /// The outline of loaded plans (and their suite).
    pub fn of(set: &PlanSet) -> Outline {
        Outline {
            suite: set.suite.as_ref().map(|s| SuiteOutline {
                suite: s.value.suite.clone(),
                title: s.value.title.clone(),
                file: s.path.display().to_string(),
            }),
            plans: set.plans.iter().map(PlanOutline::of).collect(),
        }
    }

    /// The outline as text for people, at most 80 columns wide where words allow.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        if let Some(s) = &self.suite {
            out.push(format!(
                "suite {} ({}, {} plans)",
                s.suite,
                s.file,
                self.plans.len()
            ));
            out.extend(wrap(&s.title, "  ", "  "));
        }
        let indent = if self.suite.is_some() { "  " } else { "" };
        for (i, p) in self.plans.iter().enumerate() {
            if i > 0 || self.suite.is_some() {
                out.push(String::new());
            }
            out.extend(p.text(indent));
        }
        out.join("\n")
    }
}

impl PlanOutline {
    /// The outline of one loaded plan.
    pub fn of(plan: &LoadedPlan) -> PlanOutline {
        let p = &plan.plan.value;
        let kinds = |steps: &[Spanned<Step>]| steps.iter().map(|s| s.value.kind()).collect();
        let mut tests = Vec::new();
        for (phase, steps, repeat) in [
            ("setup", &p.setup, 1),
            ("steps", &p.steps, p.repeat),
            ("teardown", &p.teardown, 1),
        ] {
            tests.extend(steps.iter().filter_map(|s| {
                Some(TestOutline {
                    name: s.value.test_name()?,
                    phase,
                    kind: s.value.kind(),
                    repeat,
                    criteria: s.value.criteria().into_iter().map(String::from).collect(),
                })
            }));
        }
        PlanOutline {
            plan: p.plan.clone(),
            title: p.title.clone(),
            file: plan.plan.path.display().to_string(),
            repeat: p.repeat,
            setup: kinds(&p.setup),
            steps: kinds(&p.steps),
            teardown: kinds(&p.teardown),
            tests,
        }
    }

    fn text(&self, indent: &str) -> Vec<String> {
        let i2 = format!("{indent}  ");
        let i3 = format!("{indent}    ");
        let mut out = vec![format!("{indent}plan {} ({})", self.plan, self.file)];
        out.extend(wrap(&self.title, &i2, &i2));
        let times = if self.repeat == 1 { "once" } else { "times" };
        let count = if self.repeat == 1 {
            String::new()
        } else {
            format!("{} ", self.repeat)
        };
        out.push(format!("{i2}steps run {count}{times}"));
        out.push(format!("{i2}tests:"));
        if self.tests.is_empty() {
            out.push(format!("{i3}(none)"));
        }
        for t in &self.tests {
            let runs = if t.repeat == 1 {
                String::new()
            } else {
                format!(", x{}", t.repeat)
            };
            let phase = if t.phase == "steps" {
                String::new()
            } else {
                format!(", in {}", t.phase)
            };
            out.extend(wrap(
                &format!("{} [{}{runs}{phase}]", t.name, t.kind),
                &i3,
                &format!("{i3}  "),
            ));
            let judges = if t.criteria.is_empty() {
                "(no criterion)".to_string()
            } else {
                t.criteria.join(", ")
            };
            out.extend(wrap(
                &format!("judges: {judges}"),
                &format!("{i3}  "),
                &format!("{i3}          "),
            ));
        }
        for (name, kinds) in [
            ("setup", &self.setup),
            ("steps", &self.steps),
            ("teardown", &self.teardown),
        ] {
            let list = if kinds.is_empty() {
                "(none)".to_string()
            } else {
                kinds.join(", ")
            };
            let head = format!("{i2}{name}: ");
            let rest = " ".repeat(head.chars().count());
            out.extend(wrap(&format!("{name}: {list}"), &i2, &rest));
        }
        out
    }
}

/// Lines of at most 80 columns (a single word longer than that stays whole): the first
/// starts with `first`, the others with `rest`.
pub fn wrap(text: &str, first: &str, rest: &str) -> Vec<String> {
    const WIDTH: usize = 80;
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = line.chars().count();
        if !empty && len + 1 + word.chars().count() > WIDTH {
            lines.push(std::mem::replace(&mut line, rest.to_string()));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::short("a b c", &["  a b c"])]
    #[case::breaks(
        &"word ".repeat(20),
        &[
            "  word word word word word word word word word word word word word word word",
            "    word word word word word",
        ]
    )]
    #[case::long_word(&"x".repeat(90), &[&*format!("  {}", "x".repeat(90))])]
    fn text_wraps_at_80_columns(#[case] text: &str, #[case] want: &[&str]) {
        assert_eq!(wrap(text, "  ", "    "), want);
    }
}

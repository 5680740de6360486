//! `hilrig validate FILES...`

use std::path::PathBuf;

use clap::Args;

use crate::plan::load::relative;
use crate::plan::{
    is_suite, load_plan, load_plan_with, load_rig, load_suite, signal_map, InputError,
};

/// Arguments of `hilrig validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Plan, suite, rig or DUT fixture files (a rig is recognised by its `station:` key, a
    /// fixture by `dbc:` and `signals:`; a fixture's signal map is checked against its DBC).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Rig whose envelope the plans are checked against.
    #[arg(long)]
    pub rig: Option<PathBuf>,
}

/// Validate every file; exit 0 when all are valid, 2 otherwise.
pub fn validate(a: ValidateArgs) -> i32 {
    let rig = match a.rig.as_deref().map(load_rig).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return super::EXIT_ABORT;
        }
    };
    let mut bad = 0;
    for f in &a.files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let is_rig = text.lines().any(|l| l.starts_with("station:"));
        let mut coverage_ok = true;
        let errors: Vec<InputError> = if is_rig {
            match load_rig(f) {
                Ok(rig) => {
                    coverage_ok = report_coverage(f, &rig.value);
                    Vec::new()
                }
                Err(e) => vec![e],
            }
        } else if signal_map::is_fixture(&text) {
            match signal_map::check_fixture_file(f) {
                Ok(report) => {
                    report.notes.iter().for_each(|n| eprintln!("{n}"));
                    Vec::new()
                }
                Err(e) => e,
            }
        } else if is_suite(f) {
            match load_suite(f) {
                Err(e) => vec![e],
                Ok(s) => s
                    .value
                    .plans
                    .iter()
                    .flat_map(|p| {
                        load_plan_with(
                            &relative(f, &p.plan),
                            rig.as_ref().map(|r| &r.value),
                            &p.parameters,
                        )
                        .err()
                        .unwrap_or_default()
                    })
                    .collect(),
            }
        } else {
            load_plan(f, rig.as_ref().map(|r| &r.value))
                .err()
                .unwrap_or_default()
        };
        if !coverage_ok {
            bad += 1;
        } else if errors.is_empty() {
            println!("ok: {}", f.display());
        } else {
            bad += 1;
            for e in errors {
                eprintln!("{e}\n");
            }
        }
    }
    if bad == 0 {
        0
    } else {
        super::EXIT_ABORT
    }
}

/// Print what the rig's instruments cannot do for its envelope (per channel); false when
/// something would refuse a run or leave the envelope unprotected.
fn report_coverage(file: &std::path::Path, rig: &crate::rig::Rig) -> bool {
    use crate::instrument::coverage::{review, Severity};
    let base = file.parent().unwrap_or(std::path::Path::new("."));
    let mut ok = true;
    for finding in review(rig, base) {
        let word = match finding.severity {
            Severity::Warning => "warning",
            Severity::Error => {
                ok = false;
                "error"
            }
        };
        eprintln!(
            "{word}: {}: instrument `{}`: {}",
            file.display(),
            finding.instrument,
            finding.message
        );
    }
    ok
}

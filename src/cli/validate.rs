//! `hilrig validate FILES...`

use std::path::PathBuf;

use clap::Args;

use crate::plan::load::relative;
use crate::plan::{is_suite, load_plan, load_plan_with, load_rig, load_suite, InputError};

/// Arguments of `hilrig validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Plan or rig files (a rig is recognised by its `station:` key).
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
        let errors: Vec<InputError> = if is_rig {
            load_rig(f).err().into_iter().collect()
        } else if is_suite(f) {
            match load_suite(f) {
                Err(e) => vec![e],
                Ok(s) => s
                    .value
                    .plans
                    .iter()
                    .flat_map(|p| {
                        match load_plan_with(
                            &relative(f, &p.plan),
                            rig.as_ref().map(|r| &r.value),
                            &p.parameters,
                        ) {
                            Ok(p) => {
                                for w in crate::plan::warnings::unjudged_checks(&p) {
                                    eprintln!("{w}");
                                }
                                Vec::new()
                            }
                            Err(e) => e,
                        }
                    })
                    .collect(),
            }
        } else {
            match load_plan(f, rig.as_ref().map(|r| &r.value)) {
                Ok(p) => {
                    for w in crate::plan::warnings::unjudged_checks(&p) {
                        eprintln!("{w}");
                    }
                    Vec::new()
                }
                Err(e) => e,
            }
        };
        if errors.is_empty() {
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

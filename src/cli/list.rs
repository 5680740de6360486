//! `hilrig list PLAN|SUITE [--rig R] [--json]`: the tests and steps of a plan or suite.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use crate::plan::load::load_rig_all;
use crate::plan::load_plans;
use crate::plan::outline::Outline;

/// Arguments of `hilrig list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The test plan or suite.
    pub plan: PathBuf,
    /// Rig the plans are checked against, as `hilrig validate` does (default: the rig
    /// `hilrig run` would use).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// Print one JSON object (see README, "Commands") instead of text.
    #[arg(long)]
    pub json: bool,
}

/// List the plan or suite; exit 0, or 2 when it does not load.
pub fn list(a: ListArgs) -> i32 {
    let rig_path = match super::rig_choice(a.rig.clone()) {
        Ok(c) => c.path,
        Err(code) => return code,
    };
    let loaded = load_rig_all(&rig_path)
        .and_then(|rig| load_plans(&a.plan, Some(&rig.value), &BTreeMap::new()));
    let set = match loaded {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                super::stdio::eprint(&e.to_string());
            }
            return super::EXIT_ABORT;
        }
    };
    let outline = Outline::of(&set);
    let text = if a.json {
        match serde_json::to_string(&outline) {
            Ok(t) => t,
            Err(e) => {
                super::stdio::eprint(&format!("error: cannot write the outline as JSON: {e}"));
                return super::EXIT_ABORT;
            }
        }
    } else {
        outline.text()
    };
    if super::stdio::print(&text) {
        0
    } else {
        super::EXIT_ABORT
    }
}

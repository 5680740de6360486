//! `hilrig list PLAN|SUITE [--rig R] [--json]`: the tests and steps of a plan or suite.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use crate::exit::{Failure, EXIT_ABORT};
use crate::plan::load::load_rig_all;
use crate::plan::load_plans;
use crate::plan::outline::Outline;
use crate::stdio;

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
pub fn list(a: ListArgs) -> Result<i32, Failure> {
    let rig_path = super::choose_rig(a.rig)?.path;
    let loaded = load_rig_all(&rig_path)
        .and_then(|rig| load_plans(&a.plan, Some(&rig.value), &BTreeMap::new()));
    let set = loaded.map_err(|errors| {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Failure::plain(text.join("\n"))
    })?;
    let outline = Outline::of(&set);
    let text = match a.json {
        true => serde_json::to_string(&outline)
            .map_err(|e| Failure::abort(format!("cannot write the outline as JSON: {e}")))?,
        false => outline.text(),
    };
    Ok(if stdio::print(&text) { 0 } else { EXIT_ABORT })
}

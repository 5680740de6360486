//! `hilrig validate FILES... [--rig R]`: the arguments; the checks are `plan::validate`'s,
//! against the rig run would use (`--rig`, else `HILRIG_RIG`, else `hilrig.toml`, else
//! rig/sim.yaml).

use std::path::PathBuf;

use clap::Args;

use crate::exit::Failure;

/// Arguments of `hilrig validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Plans, suites, rigs, DUT fixtures or limit profiles (recognised by their keys; a
    /// fixture's signal map is checked against its DBC, a rig's envelope against what its
    /// instruments' channels can protect).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Rig whose envelope the plans are checked against (default: the rig `hilrig run`
    /// would use, rig/sim.yaml).
    #[arg(long)]
    pub rig: Option<PathBuf>,
}

/// Validate every file; exit 0 when all are valid, 2 otherwise.
pub fn validate(a: ValidateArgs) -> Result<i32, Failure> {
    let rig = super::choose_rig(a.rig)?;
    crate::plan::validate::validate(&a.files, &rig.path, crate::instrument::coverage::report)
}

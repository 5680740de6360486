//! `hilrig lock status [--rig R] [--json]`

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::exit::Failure;
use crate::plan::load_rig;
use crate::run::lock::{status, LockStatus};

/// Arguments of `hilrig lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: LockCommand,
}

/// Lock subcommands.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Say whether the rig's bench is held, and by whom.
    Status {
        /// Rig file (default: rig/sim.yaml).
        #[arg(long)]
        rig: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run `hilrig lock ...`; exit 0 free, 1 held, 2 error (the failure).
pub fn lock(a: LockArgs) -> Result<i32, Failure> {
    let LockCommand::Status { rig, json } = a.command;
    let choice = super::choose_rig(rig)?;
    let rig = load_rig(&choice.path)
        .map_err(|e| Failure::plain(format!("{choice}: {e}")))?
        .value;
    let simulated = rig.simulation.is_some();
    if simulated && std::env::var_os("HILRIG_LOCK_DIR").is_none() {
        println!(
            "bench `{}` is simulated: each run has its own simulated bench and its own lock \
             (set HILRIG_LOCK_DIR to share a lock directory)",
            rig.station
        );
        return Ok(0);
    }
    let s = status(&rig.station, simulated).map_err(Failure::abort)?;
    let station = &rig.station;
    match (&s, json) {
        (_, true) => println!("{}", serde_json::to_string(&s).unwrap_or_default()),
        (LockStatus::Free { path }, false) => {
            println!("bench `{station}` is free ({})", path.display())
        }
        (LockStatus::Held { path, holder }, false) => println!(
            "bench `{station}` is held by {} ({})",
            holder
                .as_ref()
                .map_or_else(|| "an unknown process".into(), |h| h.to_string()),
            path.display()
        ),
    }
    Ok(match s {
        LockStatus::Free { .. } => 0,
        LockStatus::Held { .. } => 1,
    })
}

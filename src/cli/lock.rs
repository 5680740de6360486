//! `hilrig lock status [--rig R] [--json]`

use std::path::PathBuf;

use clap::{Args, Subcommand};

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

/// Run `hilrig lock ...`; exit 0 free, 1 held, 2 error.
pub fn lock(a: LockArgs) -> i32 {
    let LockCommand::Status { rig, json } = a.command;
    let choice = match super::rig_choice(rig) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rig = match load_rig(&choice.path) {
        Ok(r) => r.value,
        Err(e) => {
            eprintln!("{choice}: {e}");
            return super::EXIT_ABORT;
        }
    };
    let simulated = rig.simulation.is_some();
    if simulated && std::env::var_os("HILRIG_LOCK_DIR").is_none() {
        println!(
            "bench `{}` is simulated: each run has its own simulated bench and its own lock \
             (set HILRIG_LOCK_DIR to share a lock directory)",
            rig.station
        );
        return 0;
    }
    match status(&rig.station, simulated) {
        Ok(s) => {
            if json {
                println!("{}", serde_json::to_string(&s).unwrap_or_default());
            } else {
                match &s {
                    LockStatus::Free { path } => {
                        println!("bench `{}` is free ({})", rig.station, path.display())
                    }
                    LockStatus::Held { path, holder } => println!(
                        "bench `{}` is held by {} ({})",
                        rig.station,
                        holder
                            .as_ref()
                            .map(|h| h.to_string())
                            .unwrap_or_else(|| "an unknown process".into()),
                        path.display()
                    ),
                }
            }
            match s {
                LockStatus::Free { .. } => 0,
                LockStatus::Held { .. } => 1,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            super::EXIT_ABORT
        }
    }
}

//! `hilrig sim serve [--rig R] [--json] [--chemistry C] [--soc PERCENT]`: the arguments;
//! the bench is served by `crate::sim::standalone`.

use std::path::PathBuf;

use crate::exit::Failure;
use crate::sim::standalone::{self, ServeOptions};
use clap::{Args, Subcommand};

/// Arguments of `hilrig sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// What to do with the simulated bench.
    #[command(subcommand)]
    pub command: SimCommand,
}

/// `hilrig sim` subcommands.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run the simulated bench as its own process: SCPI instruments on loopback TCP, each
    /// CAN bus as an SLCAN adapter on a pseudo-terminal. Prints the endpoints and runs
    /// until interrupted (Ctrl-C) or terminated.
    Serve(ServeArgs),
}

/// Arguments of `hilrig sim serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Simulated rig file (default: rig/sim.yaml).
    #[arg(long)]
    pub rig: Option<PathBuf>,
    /// Print the endpoints as one JSON object instead of one per line.
    #[arg(long)]
    pub json: bool,
    /// Cell chemistry of the simulated pack: LFP or NMC (default: the rig's, else LFP).
    #[arg(long)]
    pub chemistry: Option<String>,
    /// Initial state of charge of every cell, in percent (default: the rig's, else 50).
    #[arg(long)]
    pub soc: Option<f64>,
}

/// Run `hilrig sim ...`: the exit code, or the failure that stopped it.
pub async fn run(a: SimArgs) -> Result<i32, Failure> {
    match a.command {
        SimCommand::Serve(s) => {
            let choice = super::choose_rig(s.rig)?;
            let options = ServeOptions {
                chemistry: s.chemistry,
                soc: s.soc,
                json: s.json,
            };
            standalone::serve(choice, options).await
        }
    }
}

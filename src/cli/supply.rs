//! `hilrig supply [--rig R] [--id ID] set --voltage V --current A | on | off | measure`:
//! manual control of a DC supply through the engine of `crate::instrument::manual`.

use clap::{Args, Subcommand};

use super::manual::ManualArgs;
use crate::exit::Failure;
use crate::instrument::manual::{Action, Kind};

/// Arguments of `hilrig supply`.
#[derive(Debug, Args)]
pub struct SupplyArgs {
    /// Rig, instrument, lock and calibration options.
    #[command(flatten)]
    pub options: ManualArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: SupplyAction,
}

/// `hilrig supply` actions.
#[derive(Debug, Subcommand)]
pub enum SupplyAction {
    /// Program the output voltage and/or current limit (`58.4 V` or `58.4`).
    Set {
        /// Output voltage.
        #[arg(long, allow_negative_numbers = true)]
        voltage: Option<String>,
        /// Current limit.
        #[arg(long, allow_negative_numbers = true)]
        current: Option<String>,
    },
    /// Switch the output on; it stays on after the command ends (see --for).
    #[command(long_about = SUPPLY_ON_HELP)]
    On {
        /// Keep the output on this long (`10 min`, at most 24 h), then switch it off; a guard
        /// process switches it off if hilrig is killed first.
        #[arg(long = "for", value_name = "DURATION", value_parser = super::manual::parse_on_for)]
        for_: Option<std::time::Duration>,
    },
    /// Switch the output off.
    Off,
    /// Read terminal voltage, current and output state.
    Measure {
        /// One JSON object instead of a line for people.
        #[arg(long)]
        json: bool,
    },
}

const SUPPLY_ON_HELP: &str = "Switch the output on.

Without --for the output stays on after the command ends: that is what was asked, and no
process watches it (no guard; a run disarms the I/O watchdog it armed when it ends cleanly,
but one left armed by a run that did not, or was killed, may still switch the supply off
when the host falls silent). Switch it off with `hilrig supply off`.

With --for D (`90 s`, `10 min`, at most 24 h) the command stays in the foreground holding
the bench lock, reads the output back once a second, and switches it off (confirmed by
read-back) when D has passed, on Ctrl-C or SIGTERM, or when the output went off by itself.
On a lab rig it first starts the out-of-process guard (`hilrig guard`, as `hilrig run`
does): if hilrig is killed (SIGKILL, the OOM killer) the guard switches the output off and
writes guard.json into a `hilrig-supply-on-PID` directory of the system's temporary
directory.";

/// Run `hilrig supply ...`: the exit code, or the failure that stopped it.
pub async fn supply(a: SupplyArgs) -> Result<i32, Failure> {
    let action = match a.action {
        SupplyAction::Set { voltage, current } => {
            if voltage.is_none() && current.is_none() {
                return Err(Failure::abort("give --voltage, --current or both"));
            }
            Action::Set { voltage, current }
        }
        SupplyAction::On { for_ } => Action::On { for_ },
        SupplyAction::Off => Action::Off,
        SupplyAction::Measure { json } => Action::Measure { json },
    };
    super::manual::run(Kind::Supply, a.options, action).await
}

//! `hilrig load [--rig R] [--id ID] set --current A | on | off | measure`: manual control of
//! an electronic load through the engine of `crate::instrument::manual`.

use clap::{Args, Subcommand};

use super::manual::ManualArgs;
use crate::exit::Failure;
use crate::instrument::manual::{Action, Kind};

/// Arguments of `hilrig load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Rig, instrument, lock and calibration options.
    #[command(flatten)]
    pub options: ManualArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: LoadAction,
}

/// `hilrig load` actions.
#[derive(Debug, Subcommand)]
pub enum LoadAction {
    /// Program the sink current in constant-current mode (`5 A` or `5`).
    Set {
        /// Sink current.
        #[arg(long, allow_negative_numbers = true)]
        current: String,
    },
    /// Switch the input on; it stays on after the command ends (see --for).
    #[command(long_about = LOAD_ON_HELP)]
    On {
        /// Keep the input on this long (`10 min`, at most 24 h), then switch it off; a guard
        /// process switches it off if hilrig is killed first.
        #[arg(long = "for", value_name = "DURATION", value_parser = super::manual::parse_on_for)]
        for_: Option<std::time::Duration>,
    },
    /// Switch the input off.
    Off,
    /// Read terminal voltage, current and input state.
    Measure {
        /// One JSON object instead of a line for people.
        #[arg(long)]
        json: bool,
    },
}

const LOAD_ON_HELP: &str = "Switch the input on.

Without --for the input stays on after the command ends: that is what was asked, and no
process watches it (no guard). Switch it off with `hilrig load off`.

With --for D (`90 s`, `10 min`, at most 24 h) the command stays in the foreground holding
the bench lock, reads the input back once a second, and switches it off (confirmed by
read-back) when D has passed, on Ctrl-C or SIGTERM, or when the input went off by itself.
On a lab rig it first starts the out-of-process guard (`hilrig guard`, as `hilrig run`
does): if hilrig is killed (SIGKILL, the OOM killer) the guard switches the input off and
writes guard.json into a `hilrig-load-on-PID` directory of the system's temporary
directory.";

/// Run `hilrig load ...`: the exit code, or the failure that stopped it.
pub async fn load(a: LoadArgs) -> Result<i32, Failure> {
    let action = match a.action {
        LoadAction::Set { current } => Action::Set {
            voltage: None,
            current: Some(current),
        },
        LoadAction::On { for_ } => Action::On { for_ },
        LoadAction::Off => Action::Off,
        LoadAction::Measure { json } => Action::Measure { json },
    };
    super::manual::run(Kind::Load, a.options, action).await
}

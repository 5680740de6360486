//! `hilrig load [--rig R] [--id ID] set --current A | on | off | measure`: manual control of
//! an electronic load through the engine of `crate::bench::manual`.

use clap::Args;

use super::manual::{manual_actions, ManualCommand, Setpoints};
use crate::bench::manual::{Action, Kind};
use crate::exit::Failure;

/// Arguments of `hilrig load`.
pub type LoadArgs = ManualCommand<LoadAction>;

manual_actions!(
    LoadAction,
    "load",
    "input",
    LoadSet,
    "Program the sink current in constant-current mode (`5 A` or `5`)",
    // `on --help`: the paragraph about `on` without --for.
    "Without --for the input stays on after the command ends: that is what was asked, and no
process watches it (no guard). Switch it off with `hilrig load off`."
);

/// The setpoint of `hilrig load set`.
#[derive(Debug, Args)]
pub struct LoadSet {
    /// Sink current.
    #[arg(long, allow_negative_numbers = true)]
    current: String,
}

impl Setpoints for LoadSet {
    fn action(self) -> Result<Action, Failure> {
        Ok(Action::Set {
            voltage: None,
            current: Some(self.current),
        })
    }
}

/// Run `hilrig load ...`: the exit code, or the failure that stopped it.
pub async fn load(a: LoadArgs) -> Result<i32, Failure> {
    super::manual::run(Kind::Load, a, LoadAction::action).await
}

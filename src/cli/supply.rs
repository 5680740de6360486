//! `hilrig supply [--rig R] [--id ID] set --voltage V --current A | on | off | measure`:
//! manual control of a DC supply through the engine of `crate::bench::manual`.

use clap::Args;

use super::manual::{manual_actions, ManualCommand, Setpoints};
use crate::bench::manual::{Action, Kind};
use crate::exit::Failure;

/// Arguments of `hilrig supply`.
pub type SupplyArgs = ManualCommand<SupplyAction>;

manual_actions!(
    SupplyAction,
    "supply",
    "output",
    SupplySet,
    "Program the output voltage and/or current limit (`58.4 V` or `58.4`)",
    // `on --help`: the paragraph about `on` without --for.
    "Without --for the output stays on after the command ends: that is what was asked, and no
process watches it (no guard; a run disarms the I/O watchdog it armed when it ends cleanly,
but one left armed by a run that did not, or was killed, may still switch the supply off
when the host falls silent). Switch it off with `hilrig supply off`."
);

/// The setpoints of `hilrig supply set`.
#[derive(Debug, Args)]
pub struct SupplySet {
    /// Output voltage.
    #[arg(long, allow_negative_numbers = true)]
    voltage: Option<String>,
    /// Current limit.
    #[arg(long, allow_negative_numbers = true)]
    current: Option<String>,
}

impl Setpoints for SupplySet {
    fn action(self) -> Result<Action, Failure> {
        if self.voltage.is_none() && self.current.is_none() {
            return Err(Failure::abort("give --voltage, --current or both"));
        }
        Ok(Action::Set {
            voltage: self.voltage,
            current: self.current,
        })
    }
}

/// Run `hilrig supply ...`: the exit code, or the failure that stopped it.
pub async fn supply(a: SupplyArgs) -> Result<i32, Failure> {
    super::manual::run(Kind::Supply, a, SupplyAction::action).await
}

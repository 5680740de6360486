//! `hilrig supply [--rig R] [--id ID] set --voltage V --current A | on | off | measure`:
//! manual control of a DC supply through the engine of [`super::manual`].

use std::time::Duration;

use clap::{Args, Subcommand};

use super::manual::{self, Action, Manual, ManualOptions};
use super::EXIT_ABORT;
use crate::instrument::{
    confirm_supply_off, ConnectMode, InstrumentError, Measurement, ScpiSupply, Supply, SwitchOff,
};
use crate::rig::{Envelope, Role};
use crate::scpi::Dialect;

/// Arguments of `hilrig supply`.
#[derive(Debug, Args)]
pub struct SupplyArgs {
    /// Rig, instrument, lock and calibration options.
    #[command(flatten)]
    pub options: ManualOptions,
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
        #[arg(long = "for", value_name = "DURATION", value_parser = super::instruments::parse_on_for)]
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

/// Run `hilrig supply ...` and return the exit code.
pub async fn supply(a: SupplyArgs) -> i32 {
    let action = match a.action {
        SupplyAction::Set { voltage, current } => {
            if voltage.is_none() && current.is_none() {
                eprintln!("error: give --voltage, --current or both");
                return EXIT_ABORT;
            }
            Action::Set { voltage, current }
        }
        SupplyAction::On { for_ } => Action::On { for_ },
        SupplyAction::Off => Action::Off,
        SupplyAction::Measure { json } => Action::Measure { json },
    };
    manual::run::<ScpiSupply>(a.options, action).await
}

impl Manual for ScpiSupply {
    const ROLE: Role = Role::Supply;
    const NAME: &'static str = "supply";
    const PORT: &'static str = "output";

    async fn connect(
        id: &str,
        address: &str,
        dialect: Dialect,
        timeout: Duration,
    ) -> Result<(Self, Vec<InstrumentError>), InstrumentError> {
        ScpiSupply::connect_with(id, address, dialect, timeout, ConnectMode::ReadOnly).await
    }

    fn identity(&self) -> &str {
        ScpiSupply::identity(self)
    }

    async fn begin(&mut self, mode: ConnectMode) -> Result<Vec<InstrumentError>, InstrumentError> {
        ScpiSupply::begin(self, mode).await
    }

    fn check(
        envelope: &Envelope,
        voltage: Option<f64>,
        current: Option<f64>,
    ) -> Result<(), String> {
        if let Some(v) = voltage {
            envelope
                .check_supply_voltage(v)
                .map_err(|e| e.to_string())?;
        }
        if let Some(i) = current {
            envelope
                .check_supply_current(i)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn protect(&mut self, envelope: &Envelope) -> Result<(), InstrumentError> {
        self.program_protection(envelope.max_pack_voltage.0, envelope.max_charge_current.0)
            .await
    }

    async fn set(
        &mut self,
        voltage: Option<f64>,
        current: Option<f64>,
    ) -> Result<(), InstrumentError> {
        if let Some(v) = voltage {
            self.set_voltage(v).await?;
        }
        if let Some(i) = current {
            self.set_current(i).await?;
        }
        Ok(())
    }

    async fn switch(&mut self, on: bool) -> Result<(), InstrumentError> {
        self.set_output(on).await
    }

    async fn is_on(&mut self) -> Result<bool, InstrumentError> {
        self.output().await
    }

    async fn measure(&mut self) -> Result<Measurement, InstrumentError> {
        Supply::measure(self).await
    }

    async fn check_errors(&mut self) -> Result<(), InstrumentError> {
        Supply::check_errors(self).await
    }

    async fn confirm_off(
        &mut self,
        earlier: Vec<InstrumentError>,
    ) -> Result<Vec<InstrumentError>, SwitchOff> {
        confirm_supply_off(self, earlier).await
    }
}

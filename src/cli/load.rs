//! `hilrig load [--rig R] [--id ID] set --current A | on | off | measure`: manual control of
//! an electronic load through the engine of [`super::manual`].

use std::time::Duration;

use clap::{Args, Subcommand};

use super::manual::{self, Action, Manual, ManualOptions};
use crate::instrument::{
    confirm_load_off, ConnectMode, InstrumentError, Load, Measurement, ScpiLoad, SwitchOff,
};
use crate::rig::{Envelope, Role};
use crate::scpi::Dialect;

/// Arguments of `hilrig load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Rig, instrument, lock and calibration options.
    #[command(flatten)]
    pub options: ManualOptions,
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
        #[arg(long = "for", value_name = "DURATION", value_parser = super::instruments::parse_on_for)]
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

/// Run `hilrig load ...` and return the exit code.
pub async fn load(a: LoadArgs) -> i32 {
    let action = match a.action {
        LoadAction::Set { current } => Action::Set {
            voltage: None,
            current: Some(current),
        },
        LoadAction::On { for_ } => Action::On { for_ },
        LoadAction::Off => Action::Off,
        LoadAction::Measure { json } => Action::Measure { json },
    };
    manual::run::<ScpiLoad>(a.options, action).await
}

impl Manual for ScpiLoad {
    const ROLE: Role = Role::Load;
    const NAME: &'static str = "load";
    const PORT: &'static str = "input";

    async fn connect(
        id: &str,
        address: &str,
        dialect: Dialect,
        timeout: Duration,
    ) -> Result<(Self, Vec<InstrumentError>), InstrumentError> {
        ScpiLoad::connect_with(id, address, dialect, timeout, ConnectMode::ReadOnly).await
    }

    fn identity(&self) -> &str {
        ScpiLoad::identity(self)
    }

    async fn begin(&mut self, mode: ConnectMode) -> Result<Vec<InstrumentError>, InstrumentError> {
        ScpiLoad::begin(self, mode).await
    }

    fn check(
        envelope: &Envelope,
        _voltage: Option<f64>,
        current: Option<f64>,
    ) -> Result<(), String> {
        match current {
            Some(i) => envelope.check_load_current(i).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    async fn protect(&mut self, envelope: &Envelope) -> Result<(), InstrumentError> {
        // A load without an OCP command is programmed nothing.
        match self
            .program_protection(envelope.max_discharge_current.0)
            .await
        {
            Ok(()) | Err(InstrumentError::Unsupported { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn set(
        &mut self,
        _voltage: Option<f64>,
        current: Option<f64>,
    ) -> Result<(), InstrumentError> {
        match current {
            Some(i) => self.set_current(i).await,
            None => Ok(()),
        }
    }

    async fn switch(&mut self, on: bool) -> Result<(), InstrumentError> {
        self.set_input(on).await
    }

    async fn is_on(&mut self) -> Result<bool, InstrumentError> {
        self.input().await
    }

    async fn measure(&mut self) -> Result<Measurement, InstrumentError> {
        Load::measure(self).await
    }

    async fn check_errors(&mut self) -> Result<(), InstrumentError> {
        Load::check_errors(self).await
    }

    async fn confirm_off(
        &mut self,
        earlier: Vec<InstrumentError>,
    ) -> Result<Vec<InstrumentError>, SwitchOff> {
        confirm_load_off(self, earlier).await
    }
}

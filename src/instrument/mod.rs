//! Instrument traits and their SCPI- and CAN-backed implementations.
//!
//! The runner talks to [`Supply`] and [`Load`] only; [`ScpiSupply`] and [`ScpiLoad`] drive
//! real (or simulated) SCPI instruments through a [`Dialect`](crate::scpi::Dialect).
//! Settings are not checked against the rig's safety envelope here: the runner does that
//! before calling.

pub mod cellsim;
pub mod coverage;
mod error;
mod factory;
mod identified;
pub mod scope;
mod scpi;
mod scpi_cellsim;
mod switch;
mod switch_off;
#[cfg(test)]
mod test_support;

pub use error::{exit_for, InstrumentError};
pub use factory::{connect, Connected, Driver};
pub use scope::{Acquisition, Scope, ScpiScope, Waveform};
pub use scpi::{protection_levels, ConnectMode, ScpiLoad, ScpiSupply};
pub use scpi_cellsim::{CellFault, ScpiCellSim};
pub use switch::{ScpiSwitch, Switch};
pub use switch_off::{confirm_load_off, confirm_supply_off, SwitchOff};

use std::time::Duration;

use crate::scpi::Dialect;

/// One voltage and current reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Terminal voltage in volts.
    pub voltage: f64,
    /// Current in amperes (supply: delivered; load: sunk).
    pub current: f64,
}

/// A programmable DC supply.
#[async_trait::async_trait]
pub trait Supply: Send {
    /// The instrument id from the rig file.
    fn id(&self) -> &str;
    /// The dialect it speaks.
    fn dialect(&self) -> &Dialect;
    /// The instrument's `*IDN?` reply.
    async fn identify(&mut self) -> Result<String, InstrumentError>;
    /// Program the output voltage (V).
    async fn set_voltage(&mut self, v: f64) -> Result<(), InstrumentError>;
    /// Program the current limit (A).
    async fn set_current(&mut self, a: f64) -> Result<(), InstrumentError>;
    /// Switch the output on or off.
    async fn set_output(&mut self, on: bool) -> Result<(), InstrumentError>;
    /// Whether the output is on.
    async fn output(&mut self) -> Result<bool, InstrumentError>;
    /// Read terminal voltage and output current.
    async fn measure(&mut self) -> Result<Measurement, InstrumentError>;
    /// Program over-voltage (V) and over-current (A) protection.
    async fn program_protection(
        &mut self,
        ovp_volts: f64,
        ocp_amps: f64,
    ) -> Result<(), InstrumentError>;
    /// Read the instrument's error queue; the first error found is returned.
    async fn check_errors(&mut self) -> Result<(), InstrumentError>;
    /// Arm the hardware I/O watchdog (output off after `timeout` without host traffic);
    /// returns whether the model has one (the default: it has none, nothing is sent).
    async fn arm_watchdog(&mut self, timeout: Duration) -> Result<bool, InstrumentError> {
        let _ = timeout;
        Ok(false)
    }
    /// Switch the hardware I/O watchdog off again; returns whether the model has one (the
    /// default: it has none, nothing is sent).
    async fn disarm_watchdog(&mut self) -> Result<bool, InstrumentError> {
        Ok(false)
    }
}

/// An electronic load in constant-current mode.
#[async_trait::async_trait]
pub trait Load: Send {
    /// The instrument id from the rig file.
    fn id(&self) -> &str;
    /// The dialect it speaks.
    fn dialect(&self) -> &Dialect;
    /// The instrument's `*IDN?` reply.
    async fn identify(&mut self) -> Result<String, InstrumentError>;
    /// Program the sink current (A).
    async fn set_current(&mut self, a: f64) -> Result<(), InstrumentError>;
    /// Switch the input on or off.
    async fn set_input(&mut self, on: bool) -> Result<(), InstrumentError>;
    /// Whether the input is on.
    async fn input(&mut self) -> Result<bool, InstrumentError>;
    /// Read terminal voltage and sunk current.
    async fn measure(&mut self) -> Result<Measurement, InstrumentError>;
    /// Read the instrument's error queue; the first error found is returned.
    async fn check_errors(&mut self) -> Result<(), InstrumentError>;
}

//! The simulated bench: plant model, SCPI instrument servers, cell simulator on CAN, the
//! host for the reference BMS firmware, and an SLCAN adapter on a pseudo-terminal.

pub mod bench;
pub mod bms_host;
pub mod cell;
pub mod firmware;
pub mod flasher;
pub mod plant;
mod pty;
pub mod scpi_server;
pub mod slcan_pty;

pub use bench::{Bench, BenchOptions, ScpiExposure};

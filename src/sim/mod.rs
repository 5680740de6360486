//! The simulated bench: plant model, SCPI instrument servers, cell simulator on CAN, the
//! host for the reference BMS firmware, and an SLCAN adapter on a pseudo-terminal.

pub mod afe;
pub mod bench;
pub mod bms_host;
pub mod capture;
pub mod cell;
pub mod firmware;
pub mod flasher;
pub mod inverter;
pub mod modbus_server;
pub mod plant;
pub mod provider;
mod pty;
pub mod scpi_server;
pub mod slcan_pty;
pub mod standalone;

pub use bench::{Bench, BenchOptions, ScpiExposure};
pub use provider::SimBenchProvider;

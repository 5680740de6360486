//! The simulated bench: plant model, SCPI instrument servers, cell simulator on CAN, and
//! the host for the reference BMS firmware.

pub mod bench;
pub mod bms_host;
pub mod firmware;
pub mod plant;
pub mod scpi_server;

pub use bench::Bench;

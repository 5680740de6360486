//! hilrig: a hardware-in-the-loop test rig controller for BMS firmware.
//!
//! Layers, in the one direction they depend on each other:
//! `cli -> run -> {instrument, can, trace, verdict, report} -> {scpi, dbc, units}`;
//! `plan` and `rig` are plain data; `sim` is the simulated bench, reached only through
//! the endpoints a rig file names.

pub mod can;
pub mod cli;
pub mod dbc;
pub mod durable;
pub mod flash;
pub mod guard;
pub mod instrument;
pub mod modbus;
pub mod plan;
pub mod report;
pub mod results;
pub mod rig;
pub mod run;
pub mod scpi;
pub mod serve;
pub mod sim;
pub mod trace;
pub mod units;
pub mod verdict;

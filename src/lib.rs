//! hilrig: a hardware-in-the-loop test rig controller for BMS firmware.
//!
//! Layers, in the one direction they depend on each other:
//! `cli -> campaign -> run -> {instrument, can, trace, verdict, report} -> {scpi, dbc, units}`;
//! `plan` and `rig` are plain data; `sim` is the simulated bench, reached only through
//! the endpoints a rig file names. `cli` is thin: it parses arguments, calls the library
//! and maps the outcome (`exit::Failure`) to the exit code; `console` reports a run's
//! events on the terminal.

pub mod bench;
pub mod campaign;
pub mod can;
pub mod cli;
pub mod console;
pub mod dbc;
pub mod durable;
pub mod exit;
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
pub mod stdio;
pub mod trace;
pub mod units;
pub mod verdict;

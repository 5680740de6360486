//! The integration tests, as one test binary: each module was a test binary of its own, and
//! all of them link the whole crate (probe-rs included), so one binary links once.
//! Run one module with `cargo test --test it MODULE::`, e.g. `cargo test --test it sim_truth::`.

mod can_common;
mod common;
mod external_bench;
mod report_support;
mod results_store;
mod sim_support;

mod at_the_bench;
mod campaign;
mod can_cellsim;
mod can_cli;
mod can_peers;
mod can_slcan;
mod can_socketcan;
mod channel_ranges;
mod dbc_codec;
mod faults;
mod flash_cli;
mod flash_probe;
mod flash_sim;
mod fuzz_regressions;
mod guard;
mod instrument_connect;
mod inverter_interface;
mod list_and_dry_run;
mod live_page;
mod lock_and_signals;
mod modbus_sim;
mod nightly_defects;
mod plan_validation;
mod preflight_hostile;
mod report_bundle;
mod report_evidence;
mod report_html;
mod report_junit;
mod sc_capture;
mod scpi;
mod scpi_cli;
mod scpi_dialects;
mod scpi_peers;
mod scpi_serial;
mod sim_balancing;
mod sim_firmware;
mod sim_ground_truth;
mod sim_pack;
mod sim_serve;
mod sim_truth;
mod sim_virtual_time;
mod soc_accuracy;
mod stdout_faults;
mod walking_skeleton;
mod write_faults;

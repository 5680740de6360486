//! Fuzz target: see `hilrig_fuzz::dbc`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hilrig_fuzz::dbc(data));

//! Fuzz target: see `hilrig_fuzz::condition`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hilrig_fuzz::condition(data));

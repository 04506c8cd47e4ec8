#![no_main]
//! `nircolor::fuzzing::config` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| nircolor::fuzzing::config(data));

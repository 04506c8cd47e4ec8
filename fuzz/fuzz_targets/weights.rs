#![no_main]
//! `nircolor::fuzzing::weights` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| nircolor::fuzzing::weights(data));

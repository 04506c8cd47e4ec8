#![no_main]
//! `nircolor::fuzzing::calibration` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| nircolor::fuzzing::calibration(data));

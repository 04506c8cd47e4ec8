#![no_main]
//! `nircolor::fuzzing::http` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| nircolor::fuzzing::http(data));

#![no_main]
//! `nircolor::fuzzing::nir_image` under libFuzzer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| nircolor::fuzzing::nir_image(data));

//! Fuzz target `safetensors`: see `tickq_fuzz::host::safetensors`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickq_fuzz::host::safetensors(data));

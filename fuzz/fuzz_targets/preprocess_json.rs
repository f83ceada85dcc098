//! Fuzz target `preprocess_json`: see `tickq_fuzz::host::preprocess_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickq_fuzz::host::preprocess_json(data));

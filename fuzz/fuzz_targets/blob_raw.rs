//! Fuzz target `blob_raw`: see `tickq_fuzz::blob::raw`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickq_fuzz::blob::raw(data));

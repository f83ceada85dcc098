//! Fuzz target `blob_sealed`: see `tickq_fuzz::blob::sealed`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickq_fuzz::blob::sealed(data));

//! Fuzz target `arch_toml`: see `tickq_fuzz::host::arch_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickq_fuzz::host::arch_toml(data));

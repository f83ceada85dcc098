//! Fuzz target `trades_csv`: see `tickq_fuzz::host::trades_csv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickq_fuzz::host::trades_csv(data));

//! Fuzz target `pipeline_config`: see `tickq_fuzz::host::pipeline_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickq_fuzz::host::pipeline_config(data));

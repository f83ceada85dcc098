//! What the tickq fuzz targets do with their input, shared so that each target in `fuzz_targets/` is one line.
//!
//! - [`blob`]: a blob through `tickq_core` (load, summaries, decode, every backend, the decode/encode round
//!   trip), as raw bytes or re-sealed ([`blob::reseal`]) so that mutations get past the CRC.
//! - [`host`]: the host's readers: the trade CSV, architecture and pipeline TOML, safetensors and
//!   `preprocess.json`, each followed by the first thing `tickq` does with what it read.
//!
//! Every check here either returns (the input was refused with an error, which is the contract) or asserts a
//! property tickq documents; a panic, an abort, a leak or a timeout is a bug in tickq, never an expected outcome.
//! The few limits the harness sets itself (arena and input sizes) are named constants with their reason.

pub mod blob;
pub mod host;

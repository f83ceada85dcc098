//! Workspace-level tests: the whole pipeline on real bundled ticks, and the
//! robustness of the core's loader against corrupted real blobs.
//!
//! One test binary (`autotests = false`) so the workspace links once.

mod support;

mod aarch64;
mod blob_robustness;
mod callgrind;
mod end_to_end;
mod firmware;
mod gpu;
mod stream;

//! What the host names of tickq-gpu, in a build without the `gpu` feature: types with no values, so every
//! GPU branch still type-checks and is provably unreachable (`match *ctx {}`), with no `cfg` at each use.

use std::fmt;

/// A GPU context; this build has none (no `gpu` feature), so no value of this type exists.
#[derive(Debug, Clone)]
pub enum GpuContext {}

impl GpuContext {
    /// The adapter's name; never called, as no context exists.
    pub fn adapter_name(&self) -> &str {
        match *self {}
    }

    /// The backend's name; never called, as no context exists.
    pub fn backend_name(&self) -> String {
        match *self {}
    }

    /// Whether the adapter renders in software; never called, as no context exists.
    pub fn is_software(&self) -> bool {
        match *self {}
    }

    /// The most bytes tickq held on the GPU; never called, as no context exists.
    pub fn peak_bytes_on_gpu(&self) -> u64 {
        match *self {}
    }
}

/// A GPU failure; without a GPU there is none, so no value of this type exists.
#[derive(Debug)]
pub enum GpuError {}

impl fmt::Display for GpuError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for GpuError {}

/// A GPU training failure; without a GPU there is none, so no value of this type exists.
#[derive(Debug)]
pub enum TrainGpuError {}

impl fmt::Display for TrainGpuError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for TrainGpuError {}

//! The one error type of tickq-gpu.

use thiserror::Error;

/// Everything that can go wrong on the GPU path.
///
/// Each variant names what failed and, where it helps, what to do about it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GpuError {
    /// No GPU adapter was found.
    #[error(
        "no GPU adapter found (tried backends: {tried}){detail}; install a Vulkan driver \
         (on Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1, which also gives the \
         software adapter lavapipe), pick another backend with WGPU_BACKEND=vulkan|gl, \
         or run on the CPU with --device cpu"
    )]
    NoAdapter {
        /// The backends wgpu searched, e.g. `VULKAN | GL`.
        tried: String,
        /// Extra detail from wgpu, prefixed with `: ` when present.
        detail: String,
    },
    /// The adapter was found but refused to open a device.
    #[error("GPU adapter {adapter} refused to open a device: {message}")]
    DeviceRequest {
        /// The adapter's name.
        adapter: String,
        /// What wgpu reported.
        message: String,
    },
    /// Mapping a buffer for reading back results failed.
    #[error("reading back GPU buffer '{buffer}' failed: {message}")]
    BufferMap {
        /// The buffer's label.
        buffer: String,
        /// What wgpu reported.
        message: String,
    },
    /// wgpu reported an error outside an error scope (out of memory, a lost device, a failed validation).
    #[error("the GPU reported: {0}")]
    Device(String),
    /// Waiting for the GPU failed (device lost, timeout).
    #[error("waiting for the GPU failed: {0}")]
    Poll(String),
    /// A compute shader did not compile or a pipeline did not validate.
    #[error("GPU kernel '{kernel}' failed to build: {message}")]
    Shader {
        /// The kernel's label.
        kernel: String,
        /// What wgpu or naga reported.
        message: String,
    },
    /// A buffer would exceed what the adapter allows in one binding.
    #[error(
        "GPU buffer '{buffer}' needs {bytes} bytes but the adapter allows {limit} per binding; \
         use a smaller batch"
    )]
    BufferTooLarge {
        /// The buffer's label.
        buffer: String,
        /// Bytes needed.
        bytes: u64,
        /// The adapter's limit.
        limit: u64,
    },
    /// The blob did not load in tickq-core.
    #[error("model blob: {0}")]
    Blob(tickq_core::BlobError),
    /// The model uses something the GPU path does not implement.
    #[error("layer {layer} ({kind}): not supported on the GPU: {reason}; use --device cpu")]
    Unsupported {
        /// The layer index in the blob, or `usize::MAX` for the whole model.
        layer: usize,
        /// The layer kind's name.
        kind: String,
        /// Why.
        reason: String,
    },
    /// Inputs whose sizes do not fit the model or each other.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

impl From<tickq_core::BlobError> for GpuError {
    fn from(e: tickq_core::BlobError) -> Self {
        Self::Blob(e)
    }
}

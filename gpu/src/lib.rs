//! tickq-gpu: wgpu compute shaders for tickq.
//!
//! The crate opens a GPU ([`GpuContext`]), keeps its memory in pools of named
//! buffers that are reused across steps ([`BufferPool`], with the bytes held on
//! the GPU reported), and builds compute kernels from WGSL ([`Kernel`]).
//! On top of that sit the int8 evaluator, bit-exact with `tickq-core`, and the
//! f32 training kernels used by the host.
//!
//! Any Vulkan, Metal, DX12 or GL adapter works, including the software
//! Vulkan driver lavapipe (Debian/Ubuntu: `mesa-vulkan-drivers`), which is
//! how CI runs the GPU tests on machines without a GPU.
//!
//! ```no_run
//! // no_run: needs a GPU adapter.
//! let ctx = tickq_gpu::GpuContext::new()?;
//! println!("{}", ctx.describe());
//! # Ok::<(), tickq_gpu::GpuError>(())
//! ```
#![deny(missing_docs)]

pub mod buffers;
pub mod context;
pub mod error;
pub mod int8;
pub mod testing;
pub mod train;

pub use buffers::{Binding, BufferPool, Kernel};
pub use context::GpuContext;
pub use error::GpuError;
pub use int8::Int8Evaluator;

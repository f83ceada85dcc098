//! tickq-host: the workstation side of tickq.
//!
//! Real trade ticks go in; a validated int8 blob for `tickq-core` comes out.
//! The modules follow the data flow:
//! [`data`] (trade CSV, causal features, labels, chronological split, standardization) →
//! [`model`] (f32 `Sequential` models described by an architecture file) →
//! [`train`] (backprop, Adam / SGD, early stopping) and [`checkpoint`] (safetensors with PyTorch names) →
//! [`prune`] (optional: unstructured, structured and N:M pruning with fine-tuning) →
//! [`quant`] (calibration observers and static int8 quantization into a blob).
#![deny(missing_docs)]

pub mod checkpoint;
pub mod data;
pub mod device;
pub mod distill;
pub mod error;
pub mod eval;
pub mod export;
pub mod fsutil;
pub mod gpu_train;
#[cfg(feature = "gpu")]
pub use tickq_gpu;
pub mod limits;
pub mod model;
pub mod onnx;
pub mod options;
pub mod paths;
pub mod pipeline;
pub mod preprocess;
pub mod prune;
pub mod quant;
pub mod replay;
pub mod report;
pub mod shapes;
pub mod steps;
pub mod trade_vectors;
pub mod train;

#[cfg(test)]
mod test_support;

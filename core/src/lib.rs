//! No-std, allocation-free, integer-only INT8 inference for tickq model blobs.
//!
//! A tickq model arrives as a *blob*: one little-endian byte string that holds a small sequential network
//! (with residual adds), already quantized to int8 by the host.
//! This crate reads that blob in place (it can live in flash), checks it once, and then runs it on one sample
//! of f32 features at a time, producing int8 logits, an argmax signal and dequantized scores.
//! Everything after the input quantizer is integer arithmetic, so the same blob and input give the same bytes
//! on every target.
//!
//! # Data flow
//!
//! The modules follow the data from bytes to signal:
//!
//! 1. [`format`](mod@format): the blob's vocabulary (constants, field ranges, layer kinds, weight layouts, byte views, the
//!    CRC); it imports nothing else of the crate.
//! 2. [`error`]: what can be wrong with a blob ([`BlobError`], located by layer and byte offset) or an arena
//!    ([`ArenaTooSmall`]).
//! 3. [`requant`]: the one place where an i32 accumulator becomes int8 ([`requant::requantize`]), with a single
//!    round-half-away-from-zero rounding.
//! 4. `load` (internal): [`Model::load`] validates everything once (header, CRC, each layer and its sections,
//!    each weight format's contents and overflow bounds, metadata) and produces one small plan per layer.
//! 5. `plan` (internal): the plans, and the arena placement (liveness, first fit, 16-byte aligned, so
//!    [`Model::arena_bytes`] is exact).
//! 6. [`model`]: the public view of a loaded model, and the [`Backend`] that runs it.
//! 7. `kernels` (internal): `generic` (the portable reference, one kernel per op and weight format), `x86_64`
//!    (SSE2, AVX2, AVX-512 VNNI), `aarch64` (NEON, SDOT) and `arm` (the Cortex-M4 `dense-dsp` assembly); the
//!    fastest the CPU has is picked at load, and every one gives the generic kernels' bytes.
//! 8. [`session`]: [`Session::run`] quantizes the features and runs the kernels over the arena; it cannot
//!    fail, panic or allocate.
//! 9. `stream` (feature `stream`): `WindowSession`, a windowed model fed one input column per tick, which
//!    keeps a ring of past output columns per layer and computes only the new ones, with the logits of
//!    [`Session::run`] on the same window (`docs/STREAMING.md`).
//! 10. `encode` and `decode` (feature `alloc`): the host side, which turns an owned `encode::ModelSpec` into blob
//!     bytes for a deployment target, and a loaded model back into one.
//!
//! The blob layout is specified in `docs/BLOB.md` and the integer semantics in `docs/ARITHMETIC.md`.
//!
//! # Cargo features
//!
//! - `sparse-formats` (default): weight formats 1 to 4 (sparse, N:M, column-sparse, packed).
//! - `dense-dot` (default): weight format 6, the layout of the x86-64 and aarch64 SIMD kernels.
//! - `dynamic` (default): dynamic quantization (per-inference activation exponents).
//! - `std`: runtime CPU detection where it needs the operating system (the aarch64 dot-product extension);
//!   x86-64 detection works without it.
//! - `stream` (default): the streaming feature engine ([`features`]'s engine: raw trades in, the model's features
//!   out) and the streaming sessions. The feature spec itself ([`features::FeatureSpec`]) is always there; a
//!   build with `stream` or `alloc` reads and checks a blob's spec field by field ([`Model::feature_spec`]),
//!   one with neither (lean firmware fed feature vectors) checks only where the section sits.
//! - `alloc`: the encoder and decoder.
//!
//! Firmware short of flash can leave the first three out (`default-features = false`: the Cortex-M4 example's
//! engine is then about 16 KB of `.text` instead of 26 KB); a blob that needs one of them is refused at load
//! with [`BlobErrorKind::NotCompiled`], and [`SPARSE_FORMATS`], [`DENSE_DOT`] and [`DYNAMIC`] tell what a build
//! has.
//!
//! # Example
//!
//! With the `alloc` feature, encode a one-layer model, load it and run it.
//! Without `alloc`, the blob would come from the host, for example through `include_bytes!`.
//!
//! ```
//! # #[cfg(feature = "alloc")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tickq_core::encode::{encode, LayerSpec, ModelSpec, OpSpec};
//! use tickq_core::requant::QuantMultiplier;
//! use tickq_core::{Model, Session};
//!
//! // Three features with mean 0 and std 1, quantized with scale 1/32, zero point 0.
//! let quantize = OpSpec::Quantize { time_steps: 1, features: 3, a: vec![32.0; 3], b: vec![0.0; 3] };
//! // Logit c copies feature c: weight 127 means w_scale = 1/127, so the ratio is (1/32)(1/127)/(1/32).
//! let m = QuantMultiplier::from_ratio(1.0 / 127.0).ok_or("ratio")?;
//! let dense = OpSpec::Dense {
//!     out_features: 3,
//!     in_features: 3,
//!     weights: vec![127, 0, 0, 0, 127, 0, 0, 0, 127],
//!     bias: vec![0; 3],
//!     requant: vec![m; 3],
//! };
//! let spec = ModelSpec {
//!     name: "identity".into(),
//!     feature_names: vec!["ret_1".into(), "ret_5".into(), "imbalance".into()],
//!     label_names: vec!["down".into(), "flat".into(), "up".into()],
//!     data_hash: [0; 32],
//!     tickq_version: "0.1.0".into(),
//!     layers: vec![LayerSpec::new(quantize, 1.0 / 32.0, 0), LayerSpec::new(dense, 1.0 / 32.0, 0)],
//!     feature_spec: None,
//! };
//! let blob: Vec<u8> = encode(&spec)?;
//!
//! // On the device: validate once, then run as often as needed without allocating.
//! let model = Model::load(&blob)?;
//! let mut arena = [0u8; 64];
//! let mut session = Session::new(&model, &mut arena[..model.arena_bytes()])?;
//! let prediction = session.run(&[-0.5, 0.25, 1.0]);
//! assert_eq!(prediction.logits(), &[-16, 8, 32]);
//! assert_eq!(prediction.signal(), 2);
//! assert_eq!(prediction.score(2), 1.0);
//! assert_eq!(model.metadata().label_names().nth(prediction.signal()), Some("up"));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "alloc"))]
//! # fn main() {}
//! ```
//!
//! # Guarantees
//!
//! - No `unsafe` code outside the architecture kernels (`kernels/x86_64`, `kernels/aarch64`, `kernels/arm`:
//!   `#[allow(unsafe_code)]` under a crate-wide `deny`, each block with its safety argument), no allocation outside
//!   `encode` and `decode`, no panics on any blob or input.
//! - Every backend gives the same bytes: the architecture kernels are tested bit for bit against the portable
//!   ones on every backend the machine has.
//! - After [`Model::load`] succeeds, [`Session::new`] only checks the arena length and [`Session::run`] has no
//!   error path.
//!
//! The minimum supported Rust version is 1.95.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
pub mod decode;
#[cfg(feature = "alloc")]
pub mod encode;
pub mod error;
pub mod features;
pub mod format;
mod kernels;
mod load;
pub mod model;
mod plan;
pub mod requant;
pub mod session;
#[cfg(feature = "stream")]
pub mod stream;

pub use error::{ArenaTooSmall, BlobError, BlobErrorKind, Section};
pub use format::{LayerKind, Padding, WeightLayout};
pub use kernels::{Backend, BackendUnavailable, ParseBackendError};
pub use load::metadata::{Metadata, Names};
pub use model::{InputLayout, LayerInfo, Model};
pub use plan::TENSOR_ALIGN;
pub use session::{Prediction, Session};
#[cfg(feature = "stream")]
pub use stream::{StreamError, WindowSession};

/// Whether this build has the `sparse-formats` feature (weight formats 1 to 4); see [`BlobErrorKind::NotCompiled`].
pub const SPARSE_FORMATS: bool = cfg!(feature = "sparse-formats");

/// Whether this build has the `dense-dot` feature (weight format 6); see [`BlobErrorKind::NotCompiled`].
pub const DENSE_DOT: bool = cfg!(feature = "dense-dot");

/// Whether this build has the `dynamic` feature (dynamic quantization); see [`BlobErrorKind::NotCompiled`].
pub const DYNAMIC: bool = cfg!(feature = "dynamic");

/// The largest number of layers a blob may have.
pub const MAX_LAYERS: usize = 32;

/// The largest number of classes (logits) a model may have; [`Session`] keeps the logits in a buffer this size.
pub const MAX_CLASSES: usize = 256;

//! Streaming: raw trades to signals ([`StreamSession`]), and incremental inference for windowed models: [`WindowSession`] takes one input column per tick and computes
//! only the columns of each layer that the new one changes, with the same logits as
//! [`Session::run`](crate::Session::run) on the last `T` columns.
//!
//! - `plan`: where each layer's columns sit in time (the offset and cumulative stride of its outputs, the
//!   leading *edge* outputs a causal pad reaches) and in the arena (a ring per column-wise layer).
//! - `window`: the session, which fills the rings and recomputes the edges and the head every tick.
//! - `trades`: [`StreamSession`], raw trades in and signals out: the blob's feature spec drives the
//!   [`FeatureEngine`](crate::features::FeatureEngine), whose rows feed a [`Session`](crate::Session) or a
//!   [`WindowSession`].
//!
//! `docs/STREAMING.md` describes the design and why it is exact.

#![deny(clippy::indexing_slicing)]

use core::fmt;

use crate::error::ArenaTooSmall;
use crate::format::LayerKind;
use crate::model::Model;

mod plan;
mod trades;
mod window;

pub use trades::{MAX_STREAM_FEATURES, StreamSession, StreamSessionError, Tick};
pub use window::WindowSession;

/// Why a layer cannot run in a [`WindowSession`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unsupported {
    /// The model is dynamically quantized: each inference picks its exponents from the whole window, so no
    /// column can be kept from one window to the next.
    Dynamic,
    /// The two inputs of an Add end their outputs at different times in the window (different cumulative
    /// strides or offsets), so the same output column pairs different input times in different windows.
    MisalignedAdd,
    /// Layer 0 is not the input quantizer, or an input refers to a missing layer.
    NoQuantizer,
    /// A ring or buffer size overflows `usize`.
    TooLarge,
}

impl Unsupported {
    fn text(self) -> &'static str {
        match self {
            Unsupported::Dynamic => "dynamic quantization depends on the whole window",
            Unsupported::MisalignedAdd => "its two inputs are not aligned in time",
            Unsupported::NoQuantizer => "the model does not start with an input quantizer",
            Unsupported::TooLarge => "its buffers overflow the address space",
        }
    }
}

/// A model that cannot stream, or an arena too small for it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamError {
    /// Layer `layer` (of kind `kind`) cannot stream, for `reason`.
    Unsupported {
        /// The layer's index.
        layer: usize,
        /// The layer's kind.
        kind: LayerKind,
        /// Why it cannot stream.
        reason: Unsupported,
    },
    /// The arena is shorter than [`WindowSession::arena_bytes`].
    ArenaTooSmall(ArenaTooSmall),
}

impl StreamError {
    pub(crate) fn too_large(model: &Model<'_>, layer: usize) -> StreamError {
        StreamError::Unsupported {
            layer,
            kind: model
                .layers()
                .nth(layer)
                .map_or(LayerKind::Quantize, |l| l.kind),
            reason: Unsupported::TooLarge,
        }
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StreamError::Unsupported {
                layer,
                kind,
                reason,
            } => write!(
                f,
                "layer {layer} ({}) cannot stream: {}",
                kind.name(),
                reason.text()
            ),
            StreamError::ArenaTooSmall(e) => write!(f, "window session: {e}"),
        }
    }
}

impl core::error::Error for StreamError {}

impl From<ArenaTooSmall> for StreamError {
    fn from(e: ArenaTooSmall) -> Self {
        StreamError::ArenaTooSmall(e)
    }
}

//! What the loader produces for each layer: a small, validated plan that the kernels run without checking
//! anything again.
//!
//! A [`LayerPlan`] holds what every layer has (shapes, output quantization, where its tensors sit in the arena)
//! and an [`Op`] with what only its kind has; a weighted op's [`Weights`] is an enum whose variants carry only
//! their own format's slices, so no field means different things for different formats.
//! The optional formats' variants exist only in builds with their Cargo feature, and the loader refuses blobs
//! that would need a missing one.
//!
//! `arena` places every layer's output tensor in the caller's arena.

pub(crate) mod arena;

use crate::format::{LayerKind, Padding, WeightLayout};
use crate::requant::QuantMultiplier;

pub use arena::TENSOR_ALIGN;

/// A byte range of the arena.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub len: usize,
}

impl Span {
    /// The range `start..start + len`.
    #[inline(always)]
    pub fn range(self) -> core::ops::Range<usize> {
        self.start..self.start + self.len
    }
}

/// Where a layer's tensors are in the arena, filled in by `arena::place`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slots {
    /// The output tensor's data.
    pub out: Span,
    /// The whole allocation of the output tensor: a pad prefix (for a causal conv that reads it), then the data.
    pub alloc: Span,
    /// The first input, including the pad prefix a causal conv fills.
    pub input: Span,
    /// The number of bytes at `input.start` that a causal conv fills with the input zero point before it runs.
    pub pad_len: usize,
    /// The second input (Add).
    pub input_b: Span,
}

/// The quantization and clamp of a layer's output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OutQuant {
    pub scale: f32,
    pub zp: i8,
    pub act_min: i8,
    pub act_max: i8,
}

/// Everything a kernel needs about one layer, validated and precomputed at load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerPlan<'b> {
    pub op: Op<'b>,
    /// The layers producing the inputs (`NO_INPUT` for none).
    pub input_a: u16,
    pub input_b: u16,
    /// The first input's shape `(T, C)`; for Quantize, the model input shape.
    pub in_shape: (usize, usize),
    pub out_shape: (usize, usize),
    pub out: OutQuant,
    /// The zero point of the first input (the pad value of a causal conv).
    pub in_zp: i8,
    /// Dynamic quantization (layer flag bit 0): the output is int8 mantissas with a per-inference exponent.
    pub dynamic: bool,
    pub slots: Slots,
    /// The byte offset of this layer's entry in the blob.
    pub entry_offset: usize,
    /// The bytes of the layer's four sections as stored.
    pub section_bytes: usize,
}

impl LayerPlan<'_> {
    /// The layer's kind.
    #[inline]
    pub fn kind(&self) -> LayerKind {
        self.op.kind()
    }
}

/// The operation of a layer, with the parameters only that kind has.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'b> {
    /// The input quantizer: `F` f32 multipliers `a`, then `F` f32 offsets `b`, little-endian.
    Quantize {
        coefficients: &'b [u8],
    },
    Dense(Weighted<'b>),
    Conv1d(Conv, Weighted<'b>),
    Lut {
        table: &'b [u8; 256],
    },
    MaxPool1d(Window),
    AvgPool1d(Window, QuantMultiplier),
    GlobalAvgPool(QuantMultiplier),
    Flatten,
    /// `requant((a - za) * wa + (b - zb) * wb)`; `zb` is the second input's zero point.
    Add {
        wa: i32,
        wb: i32,
        zp_b: i8,
        requant: QuantMultiplier,
    },
}

impl Op<'_> {
    /// The kind of layer this op runs.
    pub fn kind(&self) -> LayerKind {
        match self {
            Op::Quantize { .. } => LayerKind::Quantize,
            Op::Dense(_) => LayerKind::Dense,
            Op::Conv1d(..) => LayerKind::Conv1d,
            Op::Lut { .. } => LayerKind::Lut,
            Op::MaxPool1d(_) => LayerKind::MaxPool1d,
            Op::AvgPool1d(..) => LayerKind::AvgPool1d,
            Op::GlobalAvgPool(_) => LayerKind::GlobalAvgPool,
            Op::Flatten => LayerKind::Flatten,
            Op::Add { .. } => LayerKind::Add,
        }
    }

    /// The weights of a Dense or Conv1d op.
    #[inline]
    pub fn weighted(&self) -> Option<&Weighted<'_>> {
        match self {
            Op::Dense(w) | Op::Conv1d(_, w) => Some(w),
            _ => None,
        }
    }
}

/// A pooling window over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub kernel: usize,
    pub stride: usize,
}

/// The geometry of a Conv1d.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conv {
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub padding: Padding,
}

/// The per-output-channel sections of a weighted layer: i32 biases, i32 multipliers and u8 right shifts, all
/// little-endian and validated (every multiplier in `[2^30, 2^31)`, every shift in `[1, 62]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channels<'b> {
    pub bias: &'b [u8],
    pub multipliers: &'b [u8],
    pub shifts: &'b [u8],
    /// Every right shift is in `[33, 62]` (multipliers below 1/4, the usual case), which lets a kernel
    /// requantize with 32-bit halves of the product (`docs/ARITHMETIC.md`); checked once at load.
    pub shifts_split: bool,
}

/// A Dense or Conv1d layer's weights and per-channel parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Weighted<'b> {
    pub weights: Weights<'b>,
    pub channels: Channels<'b>,
    /// The weights per output channel: `C_in` (Dense) or `kernel * C_in` (Conv1d).
    pub row_len: usize,
    /// The non-zero weights the section stores.
    pub nonzero: usize,
    /// The bias exponent of a dynamic Dense layer (0 otherwise).
    #[cfg_attr(
        not(any(feature = "dynamic", feature = "alloc")),
        allow(dead_code, reason = "read by the dynamic kernel and the decoder")
    )]
    pub bias_exp: i8,
}

/// A weight section, split into the parts its format has (`format::layout` gives the geometry).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Weights<'b> {
    /// Format 0: full blocks of `block_len` bytes, then (version 2 and later) a tail block with shorter steps.
    Blocked { bytes: &'b [u8], block_len: usize },
    /// Format 5: groups of 4 channels, words of 4 inputs, plain rows for the last `C_out % 4` channels.
    Dsp { bytes: &'b [u8] },
    /// Format 6: blocks of 16 channels, groups of 4 inputs; `offset_bias` is the i32 bias with `128 * sum w`
    /// taken out (wrapping), for kernels that multiply the inputs plus 128 as unsigned bytes.
    #[cfg(feature = "dense-dot")]
    Dot {
        bytes: &'b [u8],
        #[cfg_attr(
            not(target_arch = "x86_64"),
            allow(dead_code, reason = "only the AVX-512 VNNI kernels read it")
        )]
        offset_bias: &'b [u8],
    },
    /// Format 1, sparse by output channel.
    #[cfg(feature = "sparse-formats")]
    Sparse(SparseRows<'b>),
    /// Format 2, N:M.
    #[cfg(feature = "sparse-formats")]
    NM(NmRows<'b>),
    /// Format 3, sparse by input column.
    #[cfg(feature = "sparse-formats")]
    Columns(ColumnPairs<'b>),
    /// Format 4, bit-packed by input column.
    #[cfg(feature = "sparse-formats")]
    Packed(PackedColumns<'b>),
}

impl Weights<'_> {
    /// The layout this section is stored in.
    pub fn layout(&self) -> WeightLayout {
        match *self {
            Weights::Blocked { .. } => WeightLayout::Blocked,
            Weights::Dsp { .. } => WeightLayout::DenseDsp,
            #[cfg(feature = "dense-dot")]
            Weights::Dot { .. } => WeightLayout::DenseDot,
            #[cfg(feature = "sparse-formats")]
            Weights::Sparse(_) => WeightLayout::Sparse,
            #[cfg(feature = "sparse-formats")]
            Weights::NM(nm) => WeightLayout::NM {
                n: nm.n as u8,
                m: nm.m as u8,
            },
            #[cfg(feature = "sparse-formats")]
            Weights::Columns(_) => WeightLayout::Columns,
            #[cfg(feature = "sparse-formats")]
            Weights::Packed(_) => WeightLayout::Packed,
        }
    }
}

/// A sparse-by-channel (format 1) section: per channel and 128-input segment a count; then every channel's
/// one-byte in-segment indices; then every channel's non-zero values.
#[cfg(feature = "sparse-formats")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct SparseRows<'b> {
    pub counts: &'b [u8],
    pub indices: &'b [u8],
    pub values: &'b [u8],
    /// The segments per row.
    pub segments: usize,
}

/// An N:M (format 2) section: per channel `entries = row_len / m * n` values, then per channel `index_len`
/// bytes of 2-bit in-group indices.
#[cfg(feature = "sparse-formats")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct NmRows<'b> {
    pub n: usize,
    pub m: usize,
    pub entries: usize,
    pub index_len: usize,
    pub values: &'b [u8],
    pub indices: &'b [u8],
}

/// A sparse-by-column (format 3) section: per 256-channel row segment and input a count, then `(row, value)`
/// byte pairs. The layer's bias has the input zero point unfolded.
#[cfg(feature = "sparse-formats")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColumnPairs<'b> {
    pub counts: &'b [u8],
    pub pairs: &'b [u8],
}

/// A packed (format 4) section: the column format with bit-packed `(row gap, codebook index)` entries and 7 zero
/// bytes after the stream.
#[cfg(feature = "sparse-formats")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackedColumns<'b> {
    /// The codebook: int8 values, strictly increasing.
    pub codebook: &'b [u8],
    pub counts: &'b [u8],
    pub stream: &'b [u8],
    pub gap_bits: u32,
    pub code_bits: u32,
}

//! The validated model: a blob that has been parsed and checked once, with a cached plan per layer.
//!
//! [`Model::load`] follows the "check once, then trust" contract: it validates the header, the CRC, every layer
//! entry and section, the shape chain, the accumulator overflow bounds and the metadata, and plans the arena.
//! After it returns `Ok`, running the model has no error path: the cached per-layer plans hold the byte slices
//! and arena offsets the kernels need, so nothing is recomputed or re-checked per inference.

use heapless::Vec;

use crate::blob::{
    self, ENTRY_LEN, Entry, HEADER_LEN, Header, NO_INPUT, SECTION_ALIGN, le_f32, le_i32,
};
use crate::error::{BlobError, BlobErrorKind, Section, clamp_offset};
use crate::kernels_dsp;
use crate::plan::{self, TensorReq};
use crate::requant::QuantMultiplier;
use crate::{MAX_CLASSES, MAX_LAYERS};

/// The operation of a layer, with its code in the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LayerKind {
    /// The input quantizer (always and only layer 0): f32 features to int8.
    Quantize = 1,
    /// A fully connected layer over a vector.
    Dense = 2,
    /// A 1-D convolution over time.
    Conv1d = 3,
    /// An element-wise 256-entry lookup table (Tanh, Sigmoid, ...).
    Lut = 4,
    /// Max pooling over time.
    MaxPool1d = 5,
    /// Average pooling over time.
    AvgPool1d = 6,
    /// Average over all time steps.
    GlobalAvgPool = 7,
    /// `(T, C)` to `(1, T*C)`, time-major.
    Flatten = 8,
    /// A residual addition of two tensors of the same shape.
    Add = 9,
}

impl LayerKind {
    /// The kind for a code byte, if known.
    #[inline]
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => LayerKind::Quantize,
            2 => LayerKind::Dense,
            3 => LayerKind::Conv1d,
            4 => LayerKind::Lut,
            5 => LayerKind::MaxPool1d,
            6 => LayerKind::AvgPool1d,
            7 => LayerKind::GlobalAvgPool,
            8 => LayerKind::Flatten,
            9 => LayerKind::Add,
            _ => return None,
        })
    }

    /// The code byte.
    #[inline]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The name, as in the blob documentation.
    pub const fn name(self) -> &'static str {
        match self {
            LayerKind::Quantize => "Quantize",
            LayerKind::Dense => "Dense",
            LayerKind::Conv1d => "Conv1d",
            LayerKind::Lut => "Lut",
            LayerKind::MaxPool1d => "MaxPool1d",
            LayerKind::AvgPool1d => "AvgPool1d",
            LayerKind::GlobalAvgPool => "GlobalAvgPool",
            LayerKind::Flatten => "Flatten",
            LayerKind::Add => "Add",
        }
    }
}

/// The time padding of a Conv1d.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Padding {
    /// No padding: the output is shorter than the input.
    #[default]
    Valid,
    /// Left padding of `dilation * (kernel - 1)` steps of real zero: output step `t` sees inputs up to `t` only.
    Causal,
}

impl Padding {
    /// The code byte.
    #[inline]
    pub const fn code(self) -> u8 {
        match self {
            Padding::Valid => 0,
            Padding::Causal => 1,
        }
    }

    /// The padding for a code byte, if known.
    #[inline]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Padding::Valid),
            1 => Some(Padding::Causal),
            _ => None,
        }
    }
}

/// The number of output channels in one block of Dense and Conv1d weights.
pub(crate) const BLOCK: usize = 16;

/// The bytes of one step of a weight block: two inputs for each of its [`BLOCK`] channels.
pub(crate) const STEP: usize = 2 * BLOCK;

/// The bytes of one full weight block for rows of `row_len` weights: `BLOCK * round_up(row_len, 2)`.
#[inline]
pub(crate) const fn block_len(row_len: usize) -> usize {
    row_len.div_ceil(2) * STEP
}

/// The channels stored in the last weight block of a dense layer with `channels` outputs, if that block is a
/// partial (tail) block: `channels % BLOCK`, or 0 when every block is full.
///
/// Version 2 stores only these channels (`2 * tail` bytes per step); version 1 padded the last block to
/// [`BLOCK`] channels, so there every block is full and this is 0.
#[inline]
pub(crate) const fn tail_channels(channels: usize, version: u16) -> usize {
    if version < 2 { 0 } else { channels % BLOCK }
}

/// The length of a dense weights section, in u64 so that no product can wrap on 32-bit targets: `channels /
/// BLOCK` full blocks and a tail block of `tail` channels (`tail_channels`), or `ceil(channels / BLOCK)` full
/// blocks when `tail` is 0.
pub(crate) const fn dense_weights_len(channels: usize, row_len: usize, tail: usize) -> u64 {
    let pairs = (row_len as u64).div_ceil(2);
    if tail == 0 {
        (channels.div_ceil(BLOCK) as u64) * pairs * STEP as u64
    } else {
        (channels / BLOCK) as u64 * pairs * STEP as u64 + pairs * 2 * tail as u64
    }
}

/// Where weight `k` of output channel `o` lives in the version 2 blocked layout of a layer with `channels`
/// outputs (see `docs/BLOB.md`): steps of the last block are `2 * (channels % BLOCK)` bytes if it is partial.
#[cfg(any(test, feature = "alloc"))]
#[inline]
pub(crate) const fn blocked_index(o: usize, k: usize, row_len: usize, channels: usize) -> usize {
    let width = if o / BLOCK == channels / BLOCK {
        channels % BLOCK
    } else {
        BLOCK
    };
    (o / BLOCK) * block_len(row_len) + (k / 2) * 2 * width + (o % BLOCK) * 2 + k % 2
}

/// The inputs per segment of a sparse row: column indices are one byte, relative to their segment.
pub(crate) const SEGMENT: usize = 128;

/// The output channels per row segment of column-sparse weights: row indices are one byte, relative to their
/// segment.
pub(crate) const ROW_SEGMENT: usize = 256;

/// The number of row segments of a column-sparse layer with `channels` outputs.
#[inline]
pub(crate) const fn row_segments(channels: usize) -> usize {
    channels.div_ceil(ROW_SEGMENT)
}

/// The height of row segment `r` of a column-format layer with `channels` outputs (the last may be short).
#[inline]
pub(crate) const fn segment_height(channels: usize, r: usize) -> usize {
    let left = channels.saturating_sub(r * ROW_SEGMENT);
    if left < ROW_SEGMENT {
        left
    } else {
        ROW_SEGMENT
    }
}

/// The largest `|x - zp|` of an int8 input `x` with zero point `zp`: what one column-sparse product's input can
/// reach.
#[inline]
pub(crate) const fn max_input_deviation(zp: i8) -> u64 {
    let zp = zp as i64;
    let (low, high) = (zp + 128, 127 - zp);
    (if low > high { low } else { high }) as u64
}

/// The zero bytes after a packed entry stream, so that reading 8 bytes at any entry never runs past the section.
pub(crate) const PACKED_PAD: usize = 7;

/// Entry `bit / width` of a packed stream: `(row gap, codebook index)`, read as 8 little-endian bytes from
/// byte `bit / 8` (zero past the end, which the loader's padding rules out).
#[inline(always)]
pub(crate) fn packed_entry(
    stream: &[u8],
    bit: usize,
    gap_bits: u32,
    code_bits: u32,
) -> (usize, usize) {
    let at = bit / 8;
    let word = match stream.get(at..at + 8) {
        Some(&[a, b, c, d, e, f, g, h]) => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => 0,
    };
    let entry = word >> (bit % 8);
    let gap = entry & ((1 << gap_bits) - 1);
    let code = (entry >> gap_bits) & ((1 << code_bits) - 1);
    (gap as usize, code as usize)
}

/// The parts of a validated packed weights section.
struct PackedWeights<'b> {
    codebook: &'b [u8],
    counts: &'b [u8],
    stream: &'b [u8],
    gap_bits: u32,
    code_bits: u32,
    nonzero: usize,
}

/// The group width of N:M weights; the only one this version supports.
pub(crate) const NM_M: usize = 4;

/// The number of segments of a sparse row of `row_len` weights.
#[inline]
pub(crate) const fn sparse_segments(row_len: usize) -> usize {
    row_len.div_ceil(SEGMENT)
}

/// The width of segment `s` of a sparse row of `row_len` weights (the last one may be narrower).
#[inline]
pub(crate) const fn segment_width(row_len: usize, s: usize) -> usize {
    let start = s * SEGMENT;
    if row_len - start < SEGMENT {
        row_len - start
    } else {
        SEGMENT
    }
}

/// The index bytes of one N:M channel with `entries` stored weights: 2 bits per entry, 4 per byte.
#[inline]
pub(crate) const fn nm_index_bytes(entries: usize) -> usize {
    entries.div_ceil(4)
}

/// How a Dense or Conv1d layer stores its weights (the weight format byte of a version 2 layer entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WeightLayout {
    /// Every weight, in blocks of 16 output channels with input pairs interleaved (code 0; the only one in
    /// version 1).
    #[default]
    Dense,
    /// Unstructured sparsity: per channel and 128-input segment, a count, then one-byte column indices and the
    /// non-zero int8 values (code 1).
    Sparse,
    /// N:M semi-structured sparsity: `n` int8 values and 2-bit in-group indices per group of `m` inputs (code 2).
    NM {
        /// The stored weights per group.
        n: u8,
        /// The group width.
        m: u8,
    },
    /// Unstructured sparsity stored by input column (Dense only, version 3): per 256-channel row segment and
    /// input, a count, then `(row, value)` byte pairs; the bias holds the input zero point unfolded, so inputs
    /// equal to the zero point are skipped at run time (code 3).
    Columns,
    /// The column format with bit-packed entries (Dense only, version 3): per entry a row gap and a code into a
    /// per-layer codebook of the distinct values, in fixed widths the encoder picks to minimize bytes (code 4).
    Packed,
    /// Every weight, in groups of 4 output channels and words of 4 inputs, for the Arm DSP extension's `SMLAD`
    /// (code 5; Dense only, version 3, see `kernels_dsp`).
    DenseDsp,
}

impl WeightLayout {
    /// The code byte.
    #[inline]
    pub const fn code(self) -> u8 {
        match self {
            WeightLayout::Dense => 0,
            WeightLayout::Sparse => 1,
            WeightLayout::NM { .. } => 2,
            WeightLayout::Columns => 3,
            WeightLayout::Packed => 4,
            WeightLayout::DenseDsp => 5,
        }
    }

    /// A short name: `dense`, `sparse`, `columns`, `packed` or `n:m` (for example `2:4`) is written by `Display`;
    /// this is the family.
    pub const fn name(self) -> &'static str {
        match self {
            WeightLayout::Dense => "dense",
            WeightLayout::Sparse => "sparse",
            WeightLayout::NM { .. } => "nm",
            WeightLayout::Columns => "columns",
            WeightLayout::Packed => "packed",
            WeightLayout::DenseDsp => "dense-dsp",
        }
    }
}

impl core::fmt::Display for WeightLayout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WeightLayout::NM { n, m } => write!(f, "{n}:{m}"),
            other => f.write_str(other.name()),
        }
    }
}

/// The geometry parameters of a layer that determine its output shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub kind: LayerKind,
    pub padding: Padding,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    /// The declared channel count, which defines the output width of Quantize, Dense and Conv1d.
    pub channels: usize,
    /// The declared time steps, which define the output length of Quantize.
    pub time: usize,
}

/// Why an output shape cannot be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShapeError {
    /// A Dense input is not a vector.
    NotVector,
    /// The window does not fit the (padded) input.
    WindowTooLarge,
    /// A size, kernel, stride or dilation is zero.
    Zero,
}

/// Computes a layer's output shape `(T, C)` from its first input's shape.
///
/// This is shared by the loader and the encoder so that the two cannot disagree.
pub(crate) fn output_shape(
    g: &Geometry,
    input: (usize, usize),
) -> Result<(usize, usize), ShapeError> {
    let (t_in, c_in) = input;
    let positive = |v: usize| if v == 0 { Err(ShapeError::Zero) } else { Ok(v) };
    let windowed = |span: usize, stride: usize, t: usize| {
        // `span` is the number of input steps one output step sees.
        if span > t {
            Err(ShapeError::WindowTooLarge)
        } else {
            Ok((t - span) / stride + 1)
        }
    };
    match g.kind {
        LayerKind::Quantize => Ok((positive(g.time)?, positive(g.channels)?)),
        LayerKind::Dense => {
            if t_in != 1 {
                return Err(ShapeError::NotVector);
            }
            Ok((1, positive(g.channels)?))
        }
        LayerKind::Conv1d => {
            let (k, s, d) = (
                positive(g.kernel)?,
                positive(g.stride)?,
                positive(g.dilation)?,
            );
            let c = positive(g.channels)?;
            let span = (k - 1)
                .checked_mul(d)
                .and_then(|v| v.checked_add(1))
                .ok_or(ShapeError::WindowTooLarge)?;
            let t = match g.padding {
                Padding::Valid => windowed(span, s, t_in)?,
                Padding::Causal => (t_in - 1) / s + 1,
            };
            Ok((t, c))
        }
        LayerKind::MaxPool1d | LayerKind::AvgPool1d => {
            let (k, s) = (positive(g.kernel)?, positive(g.stride)?);
            Ok((windowed(k, s, t_in)?, c_in))
        }
        LayerKind::GlobalAvgPool => Ok((1, c_in)),
        LayerKind::Flatten => Ok((1, t_in * c_in)),
        LayerKind::Lut | LayerKind::Add => Ok((t_in, c_in)),
    }
}

/// Everything a kernel needs about one layer, validated and precomputed at load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerPlan<'b> {
    pub kind: LayerKind,
    pub padding: Padding,
    pub input_a: u16,
    pub input_b: u16,
    pub in_t: usize,
    pub in_c: usize,
    pub out_t: usize,
    pub out_c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub out_scale: f32,
    pub out_zp: i8,
    pub act_min: i8,
    pub act_max: i8,
    /// The zero point of the first input (the pad value of a causal conv).
    pub in_zp: i8,
    /// The zero point of the second input (Add).
    pub in_b_zp: i8,
    /// Weight blocks of [`BLOCK`] output channels, `block_len` bytes each, then (version 2, `C_out % BLOCK !=
    /// 0`) a tail block of the remaining channels with shorter steps (see `docs/BLOB.md`).
    pub weights: &'b [u8],
    /// The length of a full block.
    pub block_len: usize,
    /// The weights per output channel: `C_in` (Dense) or `kernel * C_in` (Conv1d).
    pub row_len: usize,
    /// How the weights are stored; `weights` is the whole section in that layout.
    pub layout: WeightLayout,
    /// Sparse: the counts, `segments` bytes per channel. Columns: the counts, `in_c` bytes per row segment.
    /// Empty otherwise.
    pub sp_counts: &'b [u8],
    /// Sparse: one-byte column indices (relative to their segment). N:M: the 2-bit index stream,
    /// `nm_index_len` bytes per channel.
    pub sp_indices: &'b [u8],
    /// Sparse: the non-zero values. N:M: `nm_entries` values per channel. Columns: the `(row, value)` pairs.
    /// Packed: the bit stream of entries, then 7 zero bytes.
    pub sp_values: &'b [u8],
    /// Packed: the codebook (int8 values, increasing).
    pub pk_codebook: &'b [u8],
    /// Packed: the bits of an entry's row gap.
    pub pk_gap_bits: u32,
    /// Packed: the bits of an entry's codebook index.
    pub pk_code_bits: u32,
    /// Sparse: the segments per row.
    pub segments: usize,
    /// N:M: `n`, the stored weights per group.
    pub nm_n: usize,
    /// N:M: the stored weights (and index entries) per channel: `row_len / m * n`.
    pub nm_entries: usize,
    /// N:M: the index bytes per channel.
    pub nm_index_len: usize,
    /// The non-zero weights the section stores.
    pub nonzero: usize,
    /// Effective bias, i32 little-endian per output channel.
    pub bias: &'b [u8],
    /// Multipliers, i32 little-endian per output channel.
    pub multipliers: &'b [u8],
    /// Right shifts, one byte per output channel.
    pub shifts: &'b [u8],
    /// Every right shift is in `[33, 62]` (multipliers below 1/4, the usual case), which the `dense-dsp`
    /// assembly requantizes with 32-bit halves (`kernels_dsp`); checked once here rather than per inference.
    pub shifts_split: bool,
    /// The single multiplier of pools and Add.
    pub requant: QuantMultiplier,
    pub aux: &'b [u8],
    /// The Add weights.
    pub wa: i32,
    pub wb: i32,
    /// The output tensor's data range in the arena.
    pub out_start: usize,
    pub out_len: usize,
    /// The first input's range in the arena, including the pad prefix a causal conv fills.
    pub in_start: usize,
    pub in_len: usize,
    /// The number of bytes at `in_start` that a causal conv fills with `in_zp` before it runs.
    pub pad_len: usize,
    /// The second input's range in the arena (Add).
    pub in_b_start: usize,
    pub in_b_len: usize,
    /// Where the output tensor's allocation (pad prefix included) starts and how long it is.
    pub alloc_start: usize,
    pub alloc_len: usize,
    /// The byte offset of this layer's entry in the blob.
    pub entry_offset: usize,
    /// Dynamic quantization (layer flag bit 0): the output is int8 mantissas with a per-inference exponent.
    pub dynamic: bool,
    /// The bias exponent of a dynamic Dense layer.
    pub bias_exp: i8,
    /// The arena bytes the layer writes: `out_len`, or for a dynamic Dense `5 * C_out` (the int8 output, then
    /// the i32 values it is rounded from).
    pub scratch_len: usize,
}

/// A public summary of one layer, for inspection tools.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerInfo {
    /// The layer's index in the table.
    pub index: usize,
    /// The operation.
    pub kind: LayerKind,
    /// The layer producing the first input; `None` for the model input.
    pub input: Option<usize>,
    /// The layer producing the second input (Add only).
    pub input_b: Option<usize>,
    /// The input shape `(T, C)`; for Quantize, the model input shape.
    pub in_shape: (usize, usize),
    /// The output shape `(T, C)`.
    pub out_shape: (usize, usize),
    /// The kernel size (0 where unused).
    pub kernel: usize,
    /// The stride (0 where unused).
    pub stride: usize,
    /// The dilation (0 where unused).
    pub dilation: usize,
    /// The padding (Conv1d; `Valid` otherwise).
    pub padding: Padding,
    /// The output scale.
    pub out_scale: f32,
    /// The output zero point.
    pub out_zero_point: i8,
    /// The lower output clamp.
    pub act_min: i8,
    /// The upper output clamp.
    pub act_max: i8,
    /// The number of stored parameters: weights (without padding; for sparse and N:M layers the values the blob
    /// stores), biases, multipliers, table entries.
    pub params: usize,
    /// The number of blob bytes in this layer's sections, as stored (sparse sections are smaller).
    pub bytes: usize,
    /// How the weights are stored (Dense and Conv1d); `None` for layers without weights.
    pub weight_format: Option<WeightLayout>,
    /// The logical weight count: `out * in` (Dense) or `out * kernel * in` (Conv1d); 0 without weights.
    pub weights_total: usize,
    /// The non-zero weights, counted from what the blob stores; 0 without weights.
    pub weights_nonzero: usize,
    /// Multiply-accumulates (or element operations) per inference; for sparse and N:M layers, those over the
    /// stored weights only.
    pub macs: u64,
    /// The byte offset of the output tensor in the arena.
    pub arena_offset: usize,
    /// The byte length of the output tensor (without any pad prefix).
    pub arena_len: usize,
}

/// The metadata block: names, training-data hash and the tickq version that wrote the blob.
#[derive(Debug, Clone, Copy)]
pub struct Metadata<'b> {
    name: &'b str,
    feature_count: u16,
    features: &'b [u8],
    label_count: u16,
    labels: &'b [u8],
    data_hash: &'b [u8; 32],
    tickq_version: &'b str,
}

impl<'b> Metadata<'b> {
    /// A placeholder while the loader fills a [`Model`] in place.
    const EMPTY: Metadata<'static> = Metadata {
        name: "",
        feature_count: 0,
        features: &[],
        label_count: 0,
        labels: &[],
        data_hash: &[0; 32],
        tickq_version: "",
    };

    /// The model name.
    #[inline]
    pub fn name(&self) -> &'b str {
        self.name
    }

    /// The feature names, one per input feature.
    #[inline]
    pub fn feature_names(&self) -> Names<'b> {
        Names {
            rest: self.features,
            remaining: self.feature_count,
        }
    }

    /// The label names, one per class.
    #[inline]
    pub fn label_names(&self) -> Names<'b> {
        Names {
            rest: self.labels,
            remaining: self.label_count,
        }
    }

    /// The SHA-256 of the training data.
    #[inline]
    pub fn data_hash(&self) -> &'b [u8; 32] {
        self.data_hash
    }

    /// The version of tickq that wrote the blob.
    #[inline]
    pub fn tickq_version(&self) -> &'b str {
        self.tickq_version
    }
}

/// An iterator over a validated list of length-prefixed names.
#[derive(Debug, Clone)]
pub struct Names<'b> {
    rest: &'b [u8],
    remaining: u16,
}

impl<'b> Iterator for Names<'b> {
    type Item = &'b str;

    fn next(&mut self) -> Option<&'b str> {
        if self.remaining == 0 {
            return None;
        }
        let mut cursor = Cursor {
            bytes: self.rest,
            pos: 0,
            base: 0,
        };
        // The list was validated at load, so this cannot fail; if it did, the iterator would just end.
        let s = cursor.string().ok();
        self.rest = self.rest.get(cursor.pos..).unwrap_or(&[]);
        self.remaining = if s.is_some() { self.remaining - 1 } else { 0 };
        s
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            usize::from(self.remaining),
            Some(usize::from(self.remaining)),
        )
    }
}

impl ExactSizeIterator for Names<'_> {}

/// A reader over the metadata block that reports errors at absolute blob offsets.
struct Cursor<'b> {
    bytes: &'b [u8],
    pos: usize,
    base: usize,
}

impl<'b> Cursor<'b> {
    fn err(&self, kind: BlobErrorKind) -> BlobError {
        BlobError::global(self.base + self.pos, kind)
    }

    fn take(&mut self, n: usize) -> Result<&'b [u8], BlobError> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or_else(|| self.err(BlobErrorKind::MetadataTruncated))?;
        self.pos += n;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, BlobError> {
        let s = self.take(2)?;
        Ok(blob::read_u16(s, 0..2))
    }

    fn string(&mut self) -> Result<&'b str, BlobError> {
        let len = usize::from(self.u16()?);
        let start = self.pos;
        let s = self.take(len)?;
        core::str::from_utf8(s)
            .map_err(|_| BlobError::global(self.base + start, BlobErrorKind::BadUtf8))
    }

    /// Reads `u16 count` and `count` strings; returns the count and the bytes of the strings.
    fn list(&mut self) -> Result<(u16, &'b [u8]), BlobError> {
        let count = self.u16()?;
        let start = self.pos;
        for _ in 0..count {
            self.string()?;
        }
        Ok((count, self.bytes.get(start..self.pos).unwrap_or(&[])))
    }
}

fn parse_metadata(blob: &[u8], offset: usize, len: usize) -> Result<Metadata<'_>, BlobError> {
    let bytes = blob.get(offset..offset + len).ok_or_else(|| {
        BlobError::global(
            blob::header::METADATA_OFFSET.start,
            BlobErrorKind::MetadataOutOfBounds,
        )
    })?;
    let mut c = Cursor {
        bytes,
        pos: 0,
        base: offset,
    };
    let name = c.string()?;
    let (feature_count, features) = c.list()?;
    let (label_count, labels) = c.list()?;
    let data_hash =
        <&[u8; 32]>::try_from(c.take(32)?).map_err(|_| c.err(BlobErrorKind::MetadataTruncated))?;
    let tickq_version = c.string()?;
    if c.pos != bytes.len() {
        return Err(c.err(BlobErrorKind::MetadataTrailingBytes));
    }
    Ok(Metadata {
        name,
        feature_count,
        features,
        label_count,
        labels,
        data_hash,
        tickq_version,
    })
}

/// A blob that passed validation, with its arena plan; borrows the blob bytes (zero copy).
#[derive(Debug, Clone)]
pub struct Model<'b> {
    blob: &'b [u8],
    layers: Vec<LayerPlan<'b>, MAX_LAYERS>,
    arena_bytes: usize,
    metadata: Metadata<'b>,
    crc: u32,
    version: u16,
}

/// The byte range of a section already accepted, for the overlap check.
#[derive(Debug, Clone, Copy)]
struct Placed {
    start: usize,
    end: usize,
}

/// Per-layer validation state: the entry, its location and the section bounds.
struct LayerCheck<'b, 'e> {
    blob: &'b [u8],
    entry: Entry<'b>,
    index: u16,
    base: usize,
    kind: LayerKind,
    sections_start: usize,
    sections_end: usize,
    placed: &'e mut Vec<Placed, { MAX_LAYERS * 4 }>,
    version: u16,
}

impl<'b> LayerCheck<'b, '_> {
    fn err(&self, offset: usize, kind: BlobErrorKind) -> BlobError {
        BlobError {
            layer: Some(self.index),
            layer_kind: Some(self.kind),
            offset: clamp_offset(offset),
            kind,
        }
    }

    fn field(&self, rel: usize, kind: BlobErrorKind) -> BlobError {
        self.err(self.base + rel, kind)
    }

    /// The entry field (relative offset) holding a section's offset; its length follows 4 bytes later.
    fn section_field(section: Section) -> usize {
        match section {
            Section::Weights => blob::entry::WEIGHTS_OFFSET.start,
            Section::Bias => blob::entry::BIAS_OFFSET.start,
            Section::Requant => blob::entry::REQUANT_OFFSET.start,
            Section::Aux => blob::entry::AUX_OFFSET.start,
        }
    }

    /// The error for a section whose length is not `expected`.
    fn length_error(&self, section: Section, expected: u64, found: u32) -> BlobError {
        self.field(
            Self::section_field(section) + 4,
            BlobErrorKind::SectionLength {
                section,
                expected: u32::try_from(expected).unwrap_or(u32::MAX),
                found,
            },
        )
    }

    /// Checks one section against the length the layer needs and returns its bytes.
    fn section(&mut self, section: Section, expected: u64) -> Result<&'b [u8], BlobError> {
        let (offset, len) = self.entry.section(section);
        if u64::from(len) != expected || (expected == 0 && offset != 0) {
            return Err(self.length_error(section, expected, len));
        }
        if expected == 0 {
            return Ok(&[]);
        }
        self.place(section)
    }

    /// Checks a section's alignment, bounds and overlap, whatever its length, and returns its bytes.
    ///
    /// Sparse weights use this: their exact length depends on counts stored in the section itself, so the caller
    /// checks it afterwards.
    fn place(&mut self, section: Section) -> Result<&'b [u8], BlobError> {
        let (offset, len) = self.entry.section(section);
        let field = Self::section_field(section);
        if len == 0 && offset == 0 {
            return Ok(&[]);
        }
        let start = offset as usize;
        if !start.is_multiple_of(SECTION_ALIGN) {
            return Err(self.field(field, BlobErrorKind::SectionMisaligned { section }));
        }
        let end = start.checked_add(len as usize);
        let bytes = match end {
            Some(end) if start >= self.sections_start && end <= self.sections_end => {
                self.blob.get(start..end)
            }
            _ => None,
        }
        .ok_or_else(|| self.field(field, BlobErrorKind::SectionOutOfBounds { section }))?;
        let end = start + bytes.len();
        if self.placed.iter().any(|p| start < p.end && p.start < end) {
            return Err(self.field(field, BlobErrorKind::SectionOverlap { section }));
        }
        self.placed
            .push(Placed { start, end })
            .map_err(|_| self.field(field, BlobErrorKind::SectionOverlap { section }))?;
        Ok(bytes)
    }

    /// Checks the overflow bound of channel `o`: `|b_eff| + 128 * sum |w| < 2^31` (in u64).
    fn channel_bound(
        &self,
        bias: &[u8],
        b_offset: usize,
        o: usize,
        abs_sum: u64,
    ) -> Result<(), BlobError> {
        self.channel_bound_with(bias, b_offset, o, abs_sum, 128)
    }

    /// Checks `|b| + deviation * sum |w| < 2^31` for channel `o`, where `deviation` bounds every input.
    fn channel_bound_with(
        &self,
        bias: &[u8],
        b_offset: usize,
        o: usize,
        abs_sum: u64,
        deviation: u64,
    ) -> Result<(), BlobError> {
        let b = bias
            .get(4 * o..4 * o + 4)
            .map_or(0, |v| le_i32(v).unsigned_abs());
        if deviation * abs_sum + u64::from(b) >= 1 << 31 {
            return Err(self.err(b_offset + 4 * o, BlobErrorKind::OverflowPossible));
        }
        Ok(())
    }

    /// Validates sparse weights (the section was placed but its length is unchecked) and splits them into
    /// (counts, indices, values, non-zero count).
    ///
    /// Checks, in order: the counts fit the section, each count fits its segment, the section length is exact,
    /// then per channel and segment: indices below the segment width and strictly increasing, values non-zero,
    /// and the channel's overflow bound.
    #[allow(clippy::type_complexity)]
    fn sparse(
        &self,
        weights: &'b [u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        row_len: usize,
    ) -> Result<(&'b [u8], &'b [u8], &'b [u8], usize), BlobError> {
        use BlobErrorKind as K;
        let segments = sparse_segments(row_len);
        let counts_len = channels as u64 * segments as u64;
        let found = u32::try_from(weights.len()).unwrap_or(u32::MAX);
        let (counts, rest) = usize::try_from(counts_len)
            .ok()
            .and_then(|n| weights.split_at_checked(n))
            .ok_or_else(|| self.length_error(Section::Weights, counts_len, found))?;
        let mut nnz = 0usize;
        for (i, &count) in counts.iter().enumerate() {
            if usize::from(count) > segment_width(row_len, i % segments.max(1)) {
                return Err(self.err(w_offset + i, K::SparseCountTooLarge));
            }
            nnz += usize::from(count);
        }
        let expected = counts_len + 2 * nnz as u64;
        if weights.len() as u64 != expected {
            return Err(self.length_error(Section::Weights, expected, found));
        }
        let (indices, values) = rest.split_at_checked(nnz).unwrap_or((rest, &[]));
        let idx_base = w_offset + counts.len();
        let val_base = idx_base + nnz;
        let mut at = 0usize;
        for (o, row) in counts.chunks_exact(segments.max(1)).enumerate() {
            let mut abs_sum = 0u64;
            for (s, &count) in row.iter().enumerate() {
                let width = segment_width(row_len, s);
                let end = at + usize::from(count);
                let (ix, vs) = (
                    indices.get(at..end).unwrap_or(&[]),
                    values.get(at..end).unwrap_or(&[]),
                );
                let mut previous: Option<u8> = None;
                for (j, (&i, &v)) in ix.iter().zip(vs).enumerate() {
                    if usize::from(i) >= width {
                        return Err(self.err(idx_base + at + j, K::SparseIndexOutOfRange));
                    }
                    if previous.is_some_and(|p| i <= p) {
                        return Err(self.err(idx_base + at + j, K::SparseIndexNotIncreasing));
                    }
                    if v == 0 {
                        return Err(self.err(val_base + at + j, K::SparseZeroValue));
                    }
                    previous = Some(i);
                    abs_sum += u64::from((v as i8).unsigned_abs());
                }
                at = end;
            }
            self.channel_bound(bias, b_offset, o, abs_sum)?;
        }
        Ok((counts, indices, values, nnz))
    }

    /// Validates column-sparse weights (the section was placed but its length is unchecked) and splits them into
    /// (counts, pairs, non-zero count).
    ///
    /// Checks, in order: the counts fit the section, each count fits its row segment, the section length is
    /// exact, then per row segment and input: rows below the segment's height and strictly increasing, values
    /// non-zero; and per channel the overflow bound with the unfolded bias, `|b| + max|x - zp| * sum |w|`.
    #[allow(clippy::too_many_arguments)]
    fn columns(
        &self,
        weights: &'b [u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        inputs: usize,
        in_zp: i8,
    ) -> Result<(&'b [u8], &'b [u8], usize), BlobError> {
        use BlobErrorKind as K;
        let counts_len = row_segments(channels) as u64 * inputs as u64;
        let found = u32::try_from(weights.len()).unwrap_or(u32::MAX);
        let (counts, pairs) = usize::try_from(counts_len)
            .ok()
            .and_then(|n| weights.split_at_checked(n))
            .ok_or_else(|| self.length_error(Section::Weights, counts_len, found))?;
        let nnz = self.column_counts(counts, w_offset, channels, inputs)? as usize;
        let expected = counts_len + 2 * nnz as u64;
        if weights.len() as u64 != expected {
            return Err(self.length_error(Section::Weights, expected, found));
        }
        let pairs_base = w_offset + counts.len();
        let deviation = max_input_deviation(in_zp);
        let (mut rest, mut at) = (pairs, 0usize);
        for (r, segment_counts) in counts.chunks_exact(inputs.max(1)).enumerate() {
            let rows = segment_height(channels, r);
            // Per channel of the segment: sum |w| (at most 127 * 65535, so u32 is enough).
            let mut abs_sums = [0u32; ROW_SEGMENT];
            for &count in segment_counts {
                let n = 2 * usize::from(count);
                let (column, tail) = rest.split_at_checked(n).unwrap_or((rest, &[]));
                rest = tail;
                let mut previous: Option<u8> = None;
                for (j, &[row, v]) in column.as_chunks::<2>().0.iter().enumerate() {
                    let offset = pairs_base + at + 2 * j;
                    if usize::from(row) >= rows {
                        return Err(self.err(offset, K::SparseIndexOutOfRange));
                    }
                    if previous.is_some_and(|p| row <= p) {
                        return Err(self.err(offset, K::SparseIndexNotIncreasing));
                    }
                    if v == 0 {
                        return Err(self.err(offset + 1, K::SparseZeroValue));
                    }
                    previous = Some(row);
                    if let Some(sum) = abs_sums.get_mut(usize::from(row)) {
                        *sum += u32::from((v as i8).unsigned_abs());
                    }
                }
                at += n;
            }
            self.segment_bounds(&abs_sums, (r, rows), bias, b_offset, deviation)?;
        }
        Ok((counts, pairs, nnz))
    }

    /// Checks each count of a column format against its row segment's height; returns their sum.
    fn column_counts(
        &self,
        counts: &[u8],
        counts_at: usize,
        channels: usize,
        inputs: usize,
    ) -> Result<u64, BlobError> {
        let mut total = 0u64;
        for (i, &count) in counts.iter().enumerate() {
            if usize::from(count) > segment_height(channels, i / inputs.max(1)) {
                return Err(self.err(counts_at + i, BlobErrorKind::SparseCountTooLarge));
            }
            total += u64::from(count);
        }
        Ok(total)
    }

    /// Checks the overflow bound of the `rows` channels of row segment `r` from their sums of `|w|`, with the
    /// unfolded bias and inputs deviating at most `deviation` from their zero point.
    fn segment_bounds(
        &self,
        abs_sums: &[u32; ROW_SEGMENT],
        (r, rows): (usize, usize),
        bias: &[u8],
        b_offset: usize,
        deviation: u64,
    ) -> Result<(), BlobError> {
        for (o, &sum) in abs_sums.iter().enumerate().take(rows) {
            let channel = r * ROW_SEGMENT + o;
            self.channel_bound_with(bias, b_offset, channel, u64::from(sum), deviation)?;
        }
        Ok(())
    }

    /// Validates packed column weights (the section was placed but its length is unchecked) and splits them.
    ///
    /// Checks, in order: the 4-byte header (widths 1 to 8 bits, reserved byte zero), the codebook (strictly
    /// increasing), the counts (each at most its segment's height), the exact section length, then every entry:
    /// its code inside the codebook, its row below the segment's height, a zero value only as a filler (largest
    /// gap, not last in its column), the unused bits and the 7 padding bytes zero, and per channel the overflow
    /// bound with the unfolded bias.
    #[allow(clippy::too_many_arguments)]
    fn packed(
        &self,
        weights: &'b [u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        inputs: usize,
        in_zp: i8,
    ) -> Result<PackedWeights<'b>, BlobError> {
        use BlobErrorKind as K;
        let found = u32::try_from(weights.len()).unwrap_or(u32::MAX);
        let short = |expected: u64| self.length_error(Section::Weights, expected, found);
        let (&[gap_bits, code_bits, book_last, reserved], rest) =
            weights.split_first_chunk::<4>().ok_or_else(|| short(4))?;
        if !(1..=8).contains(&gap_bits) {
            return Err(self.err(w_offset, K::BadPackedHeader));
        }
        if !(1..=8).contains(&code_bits) || usize::from(book_last) >> code_bits != 0 {
            return Err(self.err(w_offset + 1, K::BadPackedHeader));
        }
        if reserved != 0 {
            return Err(self.err(w_offset + 3, K::ReservedNotZero));
        }
        let book_len = usize::from(book_last) + 1;
        let counts_len = row_segments(channels) * inputs;
        let (codebook, rest) = rest
            .split_at_checked(book_len)
            .ok_or_else(|| short((4 + book_len) as u64))?;
        if let Some(i) = codebook.windows(2).position(|p| p[0] as i8 >= p[1] as i8) {
            return Err(self.err(w_offset + 4 + i + 1, K::BadPackedHeader));
        }
        let counts_at = w_offset + 4 + book_len;
        let (counts, stream) = rest
            .split_at_checked(counts_len)
            .ok_or_else(|| short((4 + book_len + counts_len) as u64))?;
        let entries = self.column_counts(counts, counts_at, channels, inputs)?;
        let width = u64::from(gap_bits) + u64::from(code_bits);
        let stream_len = (entries * width).div_ceil(8) + PACKED_PAD as u64;
        let expected = (4 + book_len + counts_len) as u64 + stream_len;
        if weights.len() as u64 != expected {
            return Err(short(expected));
        }
        let stream_at = counts_at + counts_len;
        let (gap_bits, code_bits) = (u32::from(gap_bits), u32::from(code_bits));
        let deviation = max_input_deviation(in_zp);
        let (mut bit, mut nonzero) = (0usize, 0usize);
        for (r, segment_counts) in counts.chunks_exact(inputs.max(1)).enumerate() {
            let rows = segment_height(channels, r);
            let mut abs_sums = [0u32; ROW_SEGMENT];
            for &count in segment_counts {
                let mut next = 0usize;
                for e in 0..usize::from(count) {
                    let at = stream_at + bit / 8;
                    let (gap, code) = packed_entry(stream, bit, gap_bits, code_bits);
                    bit += (gap_bits + code_bits) as usize;
                    let value = codebook.get(code).map(|&v| v as i8);
                    let Some(value) = value else {
                        return Err(self.err(at, K::SparseIndexOutOfRange));
                    };
                    let row = next + gap;
                    if row >= rows {
                        return Err(self.err(at, K::SparseIndexOutOfRange));
                    }
                    next = row + 1;
                    if value == 0 {
                        let filler = gap + 1 == 1 << gap_bits && e + 1 < usize::from(count);
                        if !filler {
                            return Err(self.err(at, K::SparseZeroValue));
                        }
                    } else {
                        nonzero += 1;
                    }
                    if let Some(sum) = abs_sums.get_mut(row) {
                        *sum += u32::from(value.unsigned_abs());
                    }
                }
            }
            self.segment_bounds(&abs_sums, (r, rows), bias, b_offset, deviation)?;
        }
        // The bits after the last entry and the padding bytes are zero.
        let used = bit.div_ceil(8);
        let last_partial = (bit % 8 != 0).then(|| stream.get(bit / 8)).flatten();
        if let Some(&b) = last_partial
            && b >> (bit % 8) != 0
        {
            return Err(self.err(stream_at + bit / 8, K::RowPaddingNotZero));
        }
        if let Some(i) = stream
            .get(used..)
            .and_then(|p| p.iter().position(|&b| b != 0))
        {
            return Err(self.err(stream_at + used + i, K::RowPaddingNotZero));
        }
        Ok(PackedWeights {
            codebook,
            counts,
            stream,
            gap_bits,
            code_bits,
            nonzero,
        })
    }

    /// Validates N:M weights (the section has its exact length) and splits them into (values, indices, non-zero
    /// count).
    ///
    /// Per channel: the in-group indices of every group strictly increase, the unused bits of the channel's last
    /// index byte are zero, and the overflow bound holds.
    #[allow(clippy::type_complexity)]
    fn nm(
        &self,
        weights: &'b [u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        (n, entries, index_len): (usize, usize, usize),
    ) -> Result<(&'b [u8], &'b [u8], usize), BlobError> {
        use BlobErrorKind as K;
        let (values, indices) = weights
            .split_at_checked(channels * entries)
            .unwrap_or((weights, &[]));
        let idx_base = w_offset + values.len();
        let mut nnz = 0usize;
        let rows = values
            .chunks_exact(entries.max(1))
            .zip(indices.chunks_exact(index_len.max(1)));
        for (o, (vals, idx)) in rows.enumerate() {
            let mut abs_sum = 0u64;
            let mut previous = 0u8;
            for (e, &v) in vals.iter().enumerate() {
                let byte = idx.get(e / 4).copied().unwrap_or(0);
                let k = (byte >> (2 * (e % 4))) & 3;
                if e % n.max(1) != 0 && k <= previous {
                    return Err(self.err(idx_base + o * index_len + e / 4, K::NmIndexNotIncreasing));
                }
                previous = k;
                abs_sum += u64::from((v as i8).unsigned_abs());
                nnz += usize::from(v != 0);
            }
            if entries % 4 != 0
                && let Some(&last) = idx.last()
                && last >> (2 * (entries % 4)) != 0
            {
                return Err(self.err(
                    idx_base + o * index_len + index_len - 1,
                    K::RowPaddingNotZero,
                ));
            }
            self.channel_bound(bias, b_offset, o, abs_sum)?;
        }
        Ok((values, indices, nnz))
    }

    /// Validates per-channel multipliers and shifts; returns (multipliers, shifts).
    fn requant_channels(
        &self,
        section: &'b [u8],
        channels: usize,
        offset: usize,
    ) -> Result<(&'b [u8], &'b [u8]), BlobError> {
        let (mults, shifts) = section
            .split_at_checked(channels * 4)
            .unwrap_or((section, &[]));
        for (i, (m, s)) in mults.chunks_exact(4).zip(shifts).enumerate() {
            if QuantMultiplier::new_checked(le_i32(m), *s).is_none() {
                return Err(self.err(offset + 4 * i, BlobErrorKind::BadMultiplier));
            }
        }
        Ok((mults, shifts))
    }

    /// Validates weight blocks and biases: zero padding and no possible i32 overflow.
    ///
    /// Block `b` holds `width` channels: [`BLOCK`], or `tail` for the last block when `tail != 0` (version 2).
    /// In step `p` of block `b`, byte `2 * j + e` is weight `k = 2 * p + e` of channel `o = BLOCK * b + j`; bytes
    /// with `o >= channels` (the padded last block of version 1) or `k >= row_len` are padding.
    #[allow(clippy::too_many_arguments)]
    fn rows(
        &self,
        weights: &[u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        row_len: usize,
        tail: usize,
        dynamic: bool,
    ) -> Result<usize, BlobError> {
        let block_len = block_len(row_len);
        if block_len == 0 {
            return Ok(0);
        }
        let full = weights.chunks_exact(block_len);
        let tail_block = full.remainder();
        let blocks = full
            .map(|block| (block, BLOCK))
            .chain((tail != 0 && !tail_block.is_empty()).then_some((tail_block, tail)));
        let mut nnz = 0usize;
        for (b, (block, width)) in blocks.enumerate() {
            // Per channel of the block: 128 * sum |w|, which every activation sum is bounded by.
            let mut bounds = [0u64; BLOCK];
            let step_len = 2 * width;
            for (p, step) in block.chunks_exact(step_len).enumerate() {
                for (i, &w) in step.iter().enumerate() {
                    let (o, k) = (BLOCK * b + i / 2, 2 * p + i % 2);
                    if o >= channels || k >= row_len {
                        if w != 0 {
                            return Err(self.err(
                                w_offset + b * block_len + p * step_len + i,
                                BlobErrorKind::RowPaddingNotZero,
                            ));
                        }
                    } else if let Some(bound) = bounds.get_mut(i / 2) {
                        *bound += u64::from((w as i8).unsigned_abs()) * 128;
                        nnz += usize::from(w != 0);
                    }
                }
            }
            let block_bias = bias.chunks_exact(4).skip(BLOCK * b).take(width);
            for (j, (bound, bv)) in bounds.iter().zip(block_bias).enumerate() {
                // A dynamic layer's bias is shifted at run time and saturates at 2^30, so the bound uses that.
                let bias_abs = if dynamic {
                    1 << 30
                } else {
                    u64::from(le_i32(bv).unsigned_abs())
                };
                if bound + bias_abs >= 1 << 31 {
                    return Err(self.err(
                        b_offset + 4 * (BLOCK * b + j),
                        BlobErrorKind::OverflowPossible,
                    ));
                }
            }
        }
        Ok(nnz)
    }
}

impl LayerCheck<'_, '_> {
    /// Checks `dense-dsp` weights (see `kernels_dsp`): zero padding (inputs at or above `row_len`) and the
    /// overflow bound of every channel; returns the number of non-zero weights.
    fn dsp_rows(
        &self,
        weights: &[u8],
        w_offset: usize,
        bias: &[u8],
        b_offset: usize,
        channels: usize,
        row_len: usize,
    ) -> Result<usize, BlobError> {
        // Per channel: 128 * sum |w| (which bounds every activation sum) plus |bias| must stay below 2^31.
        let mut nnz = 0usize;
        for (o, bv) in bias.chunks_exact(4).enumerate().take(channels) {
            let mut bound = 0u64;
            for k in 0..kernels_dsp::padded_row(row_len) {
                let i = kernels_dsp::index(o, k, row_len, channels);
                let w = weights.get(i).copied().unwrap_or(0);
                if k >= row_len {
                    if w != 0 {
                        return Err(self.err(w_offset + i, BlobErrorKind::RowPaddingNotZero));
                    }
                } else {
                    bound += u64::from((w as i8).unsigned_abs()) * 128;
                    nnz += usize::from(w != 0);
                }
            }
            if bound + u64::from(le_i32(bv).unsigned_abs()) >= 1 << 31 {
                return Err(self.err(b_offset + 4 * o, BlobErrorKind::OverflowPossible));
            }
        }
        Ok(nnz)
    }
}

impl<'b> Model<'b> {
    /// Parses and validates a blob, and plans the arena.
    ///
    /// # Errors
    ///
    /// Returns a [`BlobError`] naming the layer and byte offset of the first problem found; see `docs/BLOB.md`
    /// for the list of checks.
    ///
    /// The model is built in a local and moved into the result, so this needs about twice
    /// `size_of::<Model>()` of stack (the layer table holds [`MAX_LAYERS`] plans); where that matters, use
    /// [`Model::load_into`].
    pub fn load(blob: &'b [u8]) -> Result<Self, BlobError> {
        let mut model = Model::empty(blob);
        model.fill()?;
        Ok(model)
    }

    /// Like [`Model::load`], but builds the model in place, in `slot`, and returns a reference to it: the
    /// loader's stack then holds no copy of the `Model`, which a 16 KB microcontroller needs
    /// (docs/FIRMWARE.md).
    ///
    /// On success `slot` holds the model; on error it is `None`.
    ///
    /// # Errors
    ///
    /// As [`Model::load`].
    pub fn load_into<'s>(
        slot: &'s mut Option<Self>,
        blob: &'b [u8],
    ) -> Result<&'s Self, BlobError> {
        if let Err(e) = slot.insert(Model::empty(blob)).fill() {
            *slot = None;
            return Err(e);
        }
        // `slot` was just filled, so the error is never returned.
        slot.as_ref()
            .ok_or(BlobError::global(0, BlobErrorKind::Truncated))
    }

    /// A model with no layers, which only [`Model::fill`] may see.
    #[inline]
    fn empty(blob: &'b [u8]) -> Self {
        Model {
            blob,
            layers: Vec::new(),
            arena_bytes: 0,
            metadata: Metadata::EMPTY,
            crc: 0,
            version: 0,
        }
    }

    /// Validates `self.blob` and fills every other field; `self.layers` must be empty.
    fn fill(&mut self) -> Result<(), BlobError> {
        use BlobErrorKind as K;
        let blob = self.blob;
        use blob::header as h;
        let g = BlobError::global;

        let header = Header::new_checked(blob).ok_or(g(blob.len(), K::Truncated))?;
        if !header.magic_ok() {
            return Err(g(h::MAGIC.start, K::BadMagic));
        }
        let version = header.version();
        if !(blob::OLDEST_FORMAT_VERSION..=blob::FORMAT_VERSION).contains(&version) {
            return Err(g(
                h::VERSION.start,
                K::UnsupportedVersion { found: version },
            ));
        }
        if header.flags() != 0 {
            return Err(g(
                h::FLAGS.start,
                K::UnknownFlags {
                    found: header.flags(),
                },
            ));
        }
        if header.total_len() as usize != blob.len() || u32::try_from(blob.len()).is_err() {
            return Err(g(
                h::TOTAL_LEN.start,
                K::LengthMismatch {
                    declared: header.total_len(),
                },
            ));
        }
        let computed = blob::compute_crc(blob);
        if computed != header.crc() {
            return Err(g(
                h::CRC.start,
                K::CrcMismatch {
                    stored: header.crc(),
                    computed,
                },
            ));
        }
        if let Some(at) = header.nonzero_reserved() {
            return Err(g(at, K::ReservedNotZero));
        }
        if header.layer_table_offset() as usize != HEADER_LEN {
            return Err(g(h::LAYER_TABLE_OFFSET.start, K::BadTableOffset));
        }
        let count = header.layer_count();
        if count == 0 || usize::from(count) > MAX_LAYERS {
            return Err(g(h::LAYER_COUNT.start, K::BadLayerCount { found: count }));
        }
        let table_end = HEADER_LEN + ENTRY_LEN * usize::from(count);
        if table_end > blob.len() {
            return Err(g(blob.len(), K::Truncated));
        }
        let meta_offset = header.metadata_offset() as usize;
        let meta_len = header.metadata_len() as usize;
        if meta_offset < table_end || meta_offset.checked_add(meta_len) != Some(blob.len()) {
            return Err(g(h::METADATA_OFFSET.start, K::MetadataOutOfBounds));
        }
        if !meta_offset.is_multiple_of(blob::METADATA_ALIGN) {
            return Err(g(h::METADATA_OFFSET.start, K::MetadataMisaligned));
        }

        self.crc = header.crc();
        self.version = version;
        let layers = &mut self.layers;
        let mut placed: Vec<Placed, { MAX_LAYERS * 4 }> = Vec::new();
        for index in 0..count {
            let base = HEADER_LEN + ENTRY_LEN * usize::from(index);
            let entry = Entry::new_checked(blob, base).ok_or(g(base, K::Truncated))?;
            let plan = check_layer(
                LayerCheck {
                    blob,
                    entry,
                    index,
                    base,
                    kind: LayerKind::Quantize,
                    sections_start: table_end,
                    sections_end: meta_offset,
                    placed: &mut placed,
                    version,
                },
                layers,
            )?;
            layers
                .push(plan)
                .map_err(|_| g(h::LAYER_COUNT.start, K::BadLayerCount { found: count }))?;
        }

        let (last_index, last) = match layers.last() {
            Some(l) => (layers.len() - 1, *l),
            None => return Err(g(h::LAYER_COUNT.start, K::BadLayerCount { found: count })),
        };
        let last_err = |kind| BlobError {
            layer: u16::try_from(last_index).ok(),
            layer_kind: Some(last.kind),
            offset: clamp_offset(last.entry_offset + blob::entry::OUT_TIME.start),
            kind,
        };
        if last.out_t != 1 {
            return Err(last_err(K::OutputNotVector));
        }
        if last.out_c > MAX_CLASSES {
            return Err(last_err(K::TooManyClasses {
                found: u16::try_from(last.out_c).unwrap_or(u16::MAX),
            }));
        }

        let metadata = parse_metadata(blob, meta_offset, meta_len)?;
        let features = layers.first().map_or(0, |l| l.out_c);
        if usize::from(metadata.feature_count) != features {
            return Err(g(
                meta_offset,
                K::FeatureCountMismatch {
                    names: metadata.feature_count,
                    features: u16::try_from(features).unwrap_or(u16::MAX),
                },
            ));
        }
        if usize::from(metadata.label_count) != last.out_c {
            return Err(g(
                meta_offset,
                K::LabelCountMismatch {
                    names: metadata.label_count,
                    classes: u16::try_from(last.out_c).unwrap_or(u16::MAX),
                },
            ));
        }

        self.arena_bytes =
            plan_arena(&mut self.layers).ok_or(g(h::LAYER_COUNT.start, K::ArenaTooLarge))?;
        self.metadata = metadata;
        Ok(())
    }

    /// The exact number of scratch bytes a [`Session`](crate::Session) needs.
    #[inline]
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// The number of f32 values one input sample has: `T * F`.
    #[inline]
    pub fn input_len(&self) -> usize {
        let (t, f) = self.input_shape();
        t * f
    }

    /// The input shape `(T, F)`: time steps and features, flattened time-major.
    #[inline]
    pub fn input_shape(&self) -> (usize, usize) {
        self.layers.first().map_or((0, 0), |l| (l.out_t, l.out_c))
    }

    /// The number of output classes (logits).
    #[inline]
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.out_c)
    }

    /// A summary of each layer, in execution order.
    pub fn layers(&self) -> impl Iterator<Item = LayerInfo> + '_ {
        self.layers
            .iter()
            .enumerate()
            .map(|(index, l)| layer_info(index, l))
    }

    /// The metadata block.
    #[inline]
    pub fn metadata(&self) -> Metadata<'b> {
        self.metadata
    }

    /// The CRC-32 stored in (and verified against) the blob.
    #[inline]
    pub fn crc32(&self) -> u32 {
        self.crc
    }

    /// The blob format version.
    #[inline]
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The blob length in bytes.
    #[inline]
    pub fn blob_len(&self) -> usize {
        self.blob.len()
    }

    /// The blob bytes this model borrows.
    #[inline]
    pub fn blob(&self) -> &'b [u8] {
        self.blob
    }

    /// Whether the model is dynamically quantized (every layer carries the dynamic flag): activations are int8
    /// mantissas with a per-inference power-of-two exponent (`docs/ARITHMETIC.md`).
    #[inline]
    pub fn is_dynamic(&self) -> bool {
        self.layers.first().is_some_and(|l| l.dynamic)
    }

    /// The quantization of the logits: `(scale, zero_point)`.
    ///
    /// For a dynamic model the scale is the reference scale; each prediction adds its exponent
    /// ([`Prediction::exponent`](crate::Prediction::exponent)).
    #[inline]
    pub fn output_quant(&self) -> (f32, i8) {
        self.layers
            .last()
            .map_or((1.0, 0), |l| (l.out_scale, l.out_zp))
    }

    /// The quantization of the int8 input that [`Session::run_quantized`](crate::Session::run_quantized) takes:
    /// `(scale, zero_point)`.
    #[inline]
    pub fn input_quant(&self) -> (f32, i8) {
        self.layers
            .first()
            .map_or((1.0, 0), |l| (l.out_scale, l.out_zp))
    }

    #[inline]
    pub(crate) fn plans(&self) -> &[LayerPlan<'b>] {
        &self.layers
    }
}

fn layer_info(index: usize, l: &LayerPlan<'_>) -> LayerInfo {
    let input = |v: u16| (v != NO_INPUT).then_some(usize::from(v));
    let out_elems = (l.out_t * l.out_c) as u64;
    let stored_values = match l.layout {
        WeightLayout::Dense | WeightLayout::DenseDsp => l.out_c * l.row_len,
        WeightLayout::Sparse | WeightLayout::NM { .. } => l.sp_values.len(),
        WeightLayout::Columns | WeightLayout::Packed => l.nonzero,
    };
    let macs = match l.kind {
        // The multiply-adds the kernels really do: every stored weight once per output step.
        LayerKind::Dense | LayerKind::Conv1d => l.out_t as u64 * stored_values as u64,
        LayerKind::MaxPool1d | LayerKind::AvgPool1d => out_elems * l.kernel as u64,
        LayerKind::GlobalAvgPool => (l.in_t * l.in_c) as u64,
        _ => out_elems,
    };
    let channels = l.bias.len() / 4;
    let has_weights = matches!(l.kind, LayerKind::Dense | LayerKind::Conv1d);
    let weights_total = if has_weights { channels * l.row_len } else { 0 };
    let stored_weights = match l.layout {
        WeightLayout::Dense | WeightLayout::DenseDsp => weights_total,
        WeightLayout::Sparse => l.sp_values.len(),
        WeightLayout::NM { .. } => l.sp_values.len(),
        WeightLayout::Columns | WeightLayout::Packed => l.nonzero,
    };
    let params = match l.kind {
        LayerKind::Dense | LayerKind::Conv1d => stored_weights + 2 * channels,
        LayerKind::Quantize => l.aux.len() / 4,
        LayerKind::Lut => l.aux.len(),
        LayerKind::AvgPool1d | LayerKind::GlobalAvgPool => 2,
        LayerKind::Add => 4,
        LayerKind::MaxPool1d | LayerKind::Flatten => 0,
    };
    let bytes = l.weights.len()
        + l.bias.len()
        + l.multipliers.len()
        + l.shifts.len()
        + l.aux.len()
        + if matches!(
            l.kind,
            LayerKind::AvgPool1d | LayerKind::GlobalAvgPool | LayerKind::Add
        ) {
            5
        } else {
            0
        };
    LayerInfo {
        index,
        kind: l.kind,
        input: input(l.input_a),
        input_b: input(l.input_b),
        in_shape: (l.in_t, l.in_c),
        out_shape: (l.out_t, l.out_c),
        kernel: l.kernel,
        stride: l.stride,
        dilation: l.dilation,
        padding: l.padding,
        out_scale: l.out_scale,
        out_zero_point: l.out_zp,
        act_min: l.act_min,
        act_max: l.act_max,
        params,
        bytes,
        weight_format: has_weights.then_some(l.layout),
        weights_total,
        weights_nonzero: if has_weights { l.nonzero } else { 0 },
        macs,
        arena_offset: l.out_start,
        arena_len: l.out_len,
    }
}

/// Reads and checks the weight format byte and the N:M bytes of an entry.
///
/// In version 1 all three are reserved and must be zero.
/// In version 2 only Dense and Conv1d may set a format; the N:M bytes are zero unless the format is N:M, which
/// needs `m = 4` and `1 <= n < m`.
fn weight_layout(c: &LayerCheck<'_, '_>, kind: LayerKind) -> Result<WeightLayout, BlobError> {
    use BlobErrorKind as K;
    use blob::entry as e;
    let code = c.entry.weight_format();
    let (n, m) = c.entry.nm();
    if c.version < 2 {
        for (at, v) in [(e::NM_N, n), (e::NM_M, m), (e::WEIGHT_FORMAT, code)] {
            if v != 0 {
                return Err(c.field(at, K::ReservedNotZero));
            }
        }
        return Ok(WeightLayout::Dense);
    }
    let has_weights = matches!(kind, LayerKind::Dense | LayerKind::Conv1d);
    if !crate::SPARSE_FORMATS && has_weights && (1..=4).contains(&code) {
        return Err(c.field(e::WEIGHT_FORMAT, not_compiled_format(code)));
    }
    let layout = match (code, has_weights) {
        (0, _) => WeightLayout::Dense,
        (1, true) => WeightLayout::Sparse,
        (2, true) => WeightLayout::NM { n, m },
        (3, true) if kind == LayerKind::Dense && c.version >= 3 => WeightLayout::Columns,
        (4, true) if kind == LayerKind::Dense && c.version >= 3 => WeightLayout::Packed,
        (5, true) if kind == LayerKind::Dense && c.version >= 3 => WeightLayout::DenseDsp,
        _ => return Err(c.field(e::WEIGHT_FORMAT, K::BadWeightFormat { found: code })),
    };
    if let WeightLayout::NM { n, m } = layout {
        if usize::from(m) != NM_M {
            return Err(c.field(e::NM_M, K::BadNmPattern));
        }
        if n == 0 || n >= m {
            return Err(c.field(e::NM_N, K::BadNmPattern));
        }
    } else {
        for (at, v) in [(e::NM_N, n), (e::NM_M, m)] {
            if v != 0 {
                return Err(c.field(at, K::ReservedNotZero));
            }
        }
    }
    Ok(layout)
}

/// The error for a blob that uses a weight format of the `sparse-formats` feature in a build without it.
const fn not_compiled_format(code: u8) -> BlobErrorKind {
    BlobErrorKind::NotCompiled {
        what: "sparse weight format",
        feature: "sparse-formats",
        found: code,
    }
}

/// Checks the layer flags and the bias exponent byte; returns whether the layer is dynamic.
///
/// Either every layer is dynamic or none is; a dynamic layer is Quantize or Dense (dense weight format), with
/// zero point 0; Quantize has no clamp, Dense clamps with `act_min` -128 (none) or 0 (ReLU) and `act_max` 127
/// (none) or, with ReLU, a cap exponent in `[0, 126]`.
/// Only a dynamic Dense may set the bias exponent.
fn check_dynamic(
    c: &LayerCheck<'_, '_>,
    kind: LayerKind,
    layout: WeightLayout,
    earlier: &[LayerPlan<'_>],
) -> Result<bool, BlobError> {
    use BlobErrorKind as K;
    use blob::entry as e;
    let flags = c.entry.layer_flags();
    if flags & !1 != 0 {
        return Err(c.field(e::FLAGS, K::ReservedNotZero));
    }
    let dynamic = flags & 1 != 0;
    if dynamic && !crate::DYNAMIC {
        return Err(c.field(
            e::FLAGS,
            K::NotCompiled {
                what: "dynamic quantization",
                feature: "dynamic",
                found: flags,
            },
        ));
    }
    if let Some(first) = earlier.first()
        && first.dynamic != dynamic
    {
        return Err(c.field(e::FLAGS, K::BadDynamic));
    }
    if !(dynamic && kind == LayerKind::Dense) && c.entry.bias_exponent() != 0 {
        return Err(c.field(e::BIAS_EXPONENT, K::ReservedNotZero));
    }
    if !dynamic {
        return Ok(false);
    }
    let (zp, lo, hi) = (
        c.entry.out_zero_point(),
        c.entry.act_min(),
        c.entry.act_max(),
    );
    let clamp_ok = match kind {
        LayerKind::Quantize => lo == i8::MIN && hi == i8::MAX,
        LayerKind::Dense => (lo == i8::MIN && hi == i8::MAX) || (lo == 0 && hi >= 0),
        _ => return Err(c.field(e::FLAGS, K::BadDynamic)),
    };
    if layout != WeightLayout::Dense {
        return Err(c.field(e::WEIGHT_FORMAT, K::BadDynamic));
    }
    if zp != 0 {
        return Err(c.field(e::OUT_ZERO_POINT, K::BadDynamic));
    }
    if !clamp_ok {
        return Err(c.field(e::ACT_MIN, K::BadDynamic));
    }
    Ok(true)
}

/// Validates one layer entry against the layers before it.
fn check_layer<'b>(
    mut c: LayerCheck<'b, '_>,
    earlier: &[LayerPlan<'b>],
) -> Result<LayerPlan<'b>, BlobError> {
    use BlobErrorKind as K;
    use blob::entry as e;
    let entry = c.entry;
    let code = entry.kind();
    c.kind = LayerKind::from_code(code).ok_or(BlobError {
        layer: Some(c.index),
        layer_kind: None,
        offset: clamp_offset(c.base + e::KIND),
        kind: K::UnknownKind { found: code },
    })?;
    let kind = c.kind;
    if let Some(at) = entry.nonzero_reserved() {
        return Err(c.field(at, K::ReservedNotZero));
    }
    if (c.index == 0) != (kind == LayerKind::Quantize) {
        return Err(c.field(e::KIND, K::QuantizeNotFirst));
    }
    let padding = match (Padding::from_code(entry.padding()), kind) {
        (Some(p), LayerKind::Conv1d) | (Some(p @ Padding::Valid), _) => p,
        _ => {
            return Err(c.field(
                e::PADDING,
                K::BadPadding {
                    found: entry.padding(),
                },
            ));
        }
    };
    let layout = weight_layout(&c, kind)?;
    let (input_a, input_b) = (entry.input_a(), entry.input_b());
    let producer = if c.index == 0 {
        if input_a != NO_INPUT {
            return Err(c.field(e::INPUT_A.start, K::BadInput { found: input_a }));
        }
        None
    } else {
        Some(
            earlier
                .get(usize::from(input_a))
                .ok_or(c.field(e::INPUT_A.start, K::BadInput { found: input_a }))?,
        )
    };
    let producer_b = if kind == LayerKind::Add {
        Some(
            earlier
                .get(usize::from(input_b))
                .ok_or(c.field(e::INPUT_B.start, K::BadInput { found: input_b }))?,
        )
    } else {
        if input_b != NO_INPUT {
            return Err(c.field(e::INPUT_B.start, K::BadInput { found: input_b }));
        }
        None
    };

    let (kernel, stride, dilation) = (
        usize::from(entry.kernel()),
        usize::from(entry.stride()),
        usize::from(entry.dilation()),
    );
    let (uses_kernel, uses_stride, uses_dilation) = match kind {
        LayerKind::Conv1d => (true, true, true),
        LayerKind::MaxPool1d | LayerKind::AvgPool1d => (true, true, false),
        _ => (false, false, false),
    };
    for (used, value, field) in [
        (uses_kernel, kernel, e::KERNEL.start),
        (uses_stride, stride, e::STRIDE.start),
        (uses_dilation, dilation, e::DILATION.start),
    ] {
        if used && value == 0 {
            return Err(c.field(field, K::ZeroParameter));
        }
        if !used && value != 0 {
            return Err(c.field(field, K::UnusedParameter));
        }
    }
    let (out_t, out_c) = (
        usize::from(entry.out_time()),
        usize::from(entry.out_channels()),
    );
    if out_t == 0 {
        return Err(c.field(e::OUT_TIME.start, K::ZeroParameter));
    }
    if out_c == 0 {
        return Err(c.field(e::OUT_CHANNELS.start, K::ZeroParameter));
    }
    let out_scale = entry.out_scale();
    if !(out_scale.is_finite() && out_scale > 0.0) {
        return Err(c.field(e::OUT_SCALE.start, K::BadScale));
    }
    let (out_zp, act_min, act_max) = (entry.out_zero_point(), entry.act_min(), entry.act_max());
    if act_min > act_max {
        return Err(c.field(e::ACT_MIN, K::BadActivationRange));
    }
    let dynamic = check_dynamic(&c, kind, layout, earlier)?;

    let (in_t, in_c, in_zp, in_scale) = producer.map_or((out_t, out_c, 0, 1.0), |p| {
        (p.out_t, p.out_c, p.out_zp, p.out_scale)
    });
    let geometry = Geometry {
        kind,
        padding,
        kernel,
        stride,
        dilation,
        channels: out_c,
        time: out_t,
    };
    let (t, ch) = output_shape(&geometry, (in_t, in_c)).map_err(|err| match err {
        ShapeError::NotVector => c.field(e::INPUT_A.start, K::InputNotVector),
        ShapeError::WindowTooLarge => c.field(e::KERNEL.start, K::WindowTooLarge),
        ShapeError::Zero => c.field(e::KERNEL.start, K::ZeroParameter),
    })?;
    if (t, ch) != (out_t, out_c) {
        return Err(c.field(
            e::OUT_TIME.start,
            K::ShapeMismatch {
                expected_time: u32::try_from(t).unwrap_or(u32::MAX),
                expected_channels: u32::try_from(ch).unwrap_or(u32::MAX),
            },
        ));
    }
    if let Some(b) = producer_b
        && (b.out_t, b.out_c) != (in_t, in_c)
    {
        return Err(c.field(e::INPUT_B.start, K::AddShapeMismatch));
    }
    if matches!(kind, LayerKind::MaxPool1d | LayerKind::Flatten)
        && (out_scale.to_bits() != in_scale.to_bits() || out_zp != in_zp)
    {
        return Err(c.field(e::OUT_ZERO_POINT, K::QuantParamsMismatch));
    }

    let mut plan = LayerPlan {
        kind,
        padding,
        input_a: if c.index == 0 { NO_INPUT } else { input_a },
        input_b: if kind == LayerKind::Add {
            input_b
        } else {
            NO_INPUT
        },
        in_t,
        in_c,
        out_t,
        out_c,
        kernel,
        stride,
        dilation,
        out_scale,
        out_zp,
        act_min,
        act_max,
        in_zp,
        in_b_zp: producer_b.map_or(0, |b| b.out_zp),
        weights: &[],
        block_len: 0,
        row_len: 0,
        layout,
        sp_counts: &[],
        sp_indices: &[],
        sp_values: &[],
        pk_codebook: &[],
        pk_gap_bits: 0,
        pk_code_bits: 0,
        segments: 0,
        nm_n: 0,
        nm_entries: 0,
        nm_index_len: 0,
        nonzero: 0,
        bias: &[],
        multipliers: &[],
        shifts: &[],
        shifts_split: false,
        requant: ONE,
        aux: &[],
        wa: 0,
        wb: 0,
        out_start: 0,
        out_len: 0,
        in_start: 0,
        in_len: 0,
        pad_len: 0,
        in_b_start: 0,
        in_b_len: 0,
        alloc_start: 0,
        alloc_len: 0,
        entry_offset: c.base,
        dynamic,
        bias_exp: entry.bias_exponent(),
        scratch_len: 0,
    };

    // Section lengths in u64 so that no product can wrap on 32-bit targets.
    let (weights_len, channel_len, requant_len, aux_len): (u64, u64, u64, u64) = match kind {
        LayerKind::Quantize => (0, 0, 0, 8 * out_c as u64),
        LayerKind::Dense | LayerKind::Conv1d => {
            plan.row_len = if kind == LayerKind::Dense {
                in_c
            } else {
                kernel * in_c
            };
            plan.block_len = block_len(plan.row_len);
            let weights_len = match layout {
                WeightLayout::Dense => {
                    dense_weights_len(out_c, plan.row_len, tail_channels(out_c, c.version))
                }
                WeightLayout::DenseDsp => kernels_dsp::weights_len(out_c, plan.row_len),
                // Checked against the counts once the section's bytes are known.
                WeightLayout::Sparse | WeightLayout::Columns | WeightLayout::Packed => 0,
                // Refused below in a build without `sparse-formats` (and by `weight_layout` before that).
                WeightLayout::NM { .. } if !crate::SPARSE_FORMATS => 0,
                WeightLayout::NM { n, m } => {
                    let (n, m) = (usize::from(n), usize::from(m));
                    if !plan.row_len.is_multiple_of(m) {
                        return Err(c.field(e::NM_M, K::BadNmPattern));
                    }
                    plan.nm_n = n;
                    plan.nm_entries = plan.row_len / m * n;
                    plan.nm_index_len = nm_index_bytes(plan.nm_entries);
                    out_c as u64 * (plan.nm_entries as u64 + plan.nm_index_len as u64)
                }
            };
            (weights_len, 4 * out_c as u64, 5 * out_c as u64, 0)
        }
        LayerKind::Lut => (0, 0, 0, 256),
        LayerKind::MaxPool1d | LayerKind::Flatten => (0, 0, 0, 0),
        LayerKind::AvgPool1d | LayerKind::GlobalAvgPool => (0, 0, 5, 0),
        LayerKind::Add => (0, 0, 5, 8),
    };
    let weights = if crate::SPARSE_FORMATS
        && matches!(
            layout,
            WeightLayout::Sparse | WeightLayout::Columns | WeightLayout::Packed
        ) {
        c.place(Section::Weights)?
    } else {
        c.section(Section::Weights, weights_len)?
    };
    let bias = c.section(Section::Bias, channel_len)?;
    let requant = c.section(Section::Requant, requant_len)?;
    let aux = c.section(Section::Aux, aux_len)?;
    let (w_offset, _) = entry.section(Section::Weights);
    let (b_offset, _) = entry.section(Section::Bias);
    let (r_offset, _) = entry.section(Section::Requant);
    let (a_offset, _) = entry.section(Section::Aux);
    let (w_offset, b_offset, r_offset, a_offset) = (
        w_offset as usize,
        b_offset as usize,
        r_offset as usize,
        a_offset as usize,
    );

    match kind {
        LayerKind::Quantize => {
            if let Some(i) = aux.chunks_exact(4).position(|v| !le_f32(v).is_finite()) {
                return Err(c.err(a_offset + 4 * i, K::BadCoefficient));
            }
            plan.aux = aux;
        }
        LayerKind::Dense | LayerKind::Conv1d => {
            match layout {
                WeightLayout::Dense => {
                    let tail = tail_channels(out_c, c.version);
                    plan.nonzero = c.rows(
                        weights,
                        w_offset,
                        bias,
                        b_offset,
                        out_c,
                        plan.row_len,
                        tail,
                        dynamic,
                    )?;
                }
                WeightLayout::DenseDsp => {
                    plan.nonzero =
                        c.dsp_rows(weights, w_offset, bias, b_offset, out_c, plan.row_len)?;
                }
                WeightLayout::Sparse if crate::SPARSE_FORMATS => {
                    let (counts, indices, values, nnz) =
                        c.sparse(weights, w_offset, bias, b_offset, out_c, plan.row_len)?;
                    plan.segments = sparse_segments(plan.row_len);
                    (plan.sp_counts, plan.sp_indices, plan.sp_values) = (counts, indices, values);
                    plan.nonzero = nnz;
                }
                WeightLayout::Columns if crate::SPARSE_FORMATS => {
                    let (counts, pairs, nnz) =
                        c.columns(weights, w_offset, bias, b_offset, out_c, in_c, in_zp)?;
                    plan.segments = row_segments(out_c);
                    (plan.sp_counts, plan.sp_values) = (counts, pairs);
                    plan.nonzero = nnz;
                }
                WeightLayout::Packed if crate::SPARSE_FORMATS => {
                    let packed = c.packed(weights, w_offset, bias, b_offset, out_c, in_c, in_zp)?;
                    plan.segments = row_segments(out_c);
                    plan.sp_counts = packed.counts;
                    plan.sp_values = packed.stream;
                    plan.pk_codebook = packed.codebook;
                    plan.pk_gap_bits = packed.gap_bits;
                    plan.pk_code_bits = packed.code_bits;
                    plan.nonzero = packed.nonzero;
                }
                WeightLayout::NM { .. } if crate::SPARSE_FORMATS => {
                    let shape = (plan.nm_n, plan.nm_entries, plan.nm_index_len);
                    let (values, indices, nnz) =
                        c.nm(weights, w_offset, bias, b_offset, out_c, shape)?;
                    (plan.sp_values, plan.sp_indices) = (values, indices);
                    plan.nonzero = nnz;
                }
                // `weight_layout` already refused these formats in a build without `sparse-formats`.
                WeightLayout::Sparse
                | WeightLayout::Columns
                | WeightLayout::Packed
                | WeightLayout::NM { .. } => {
                    return Err(c.field(e::WEIGHT_FORMAT, not_compiled_format(layout.code())));
                }
            }
            let (mults, shifts) = c.requant_channels(requant, out_c, r_offset)?;
            // A dynamic layer's multipliers are below 1 (shift 31 or more), so its i32 values stay in range.
            if dynamic && let Some(i) = shifts.iter().position(|&s| s < 31) {
                return Err(c.err(r_offset + 4 * out_c + i, K::BadDynamic));
            }
            plan.weights = weights;
            plan.bias = bias;
            plan.multipliers = mults;
            plan.shifts = shifts;
            plan.shifts_split = shifts.iter().all(|s| (33..=62).contains(s));
        }
        LayerKind::Lut => plan.aux = aux,
        LayerKind::AvgPool1d | LayerKind::GlobalAvgPool | LayerKind::Add => {
            let (m, s) = requant.split_at_checked(4).unwrap_or((requant, &[]));
            plan.requant = s
                .first()
                .and_then(|&s| QuantMultiplier::new_checked(le_i32(m), s))
                .ok_or(c.err(r_offset, K::BadMultiplier))?;
            // Pools sum at most 65535 values of magnitude at most 255, which is below 2^31, so only Add needs a
            // bound on its weights.
            if kind == LayerKind::Add {
                let (wa, wb) = aux.split_at_checked(4).unwrap_or((aux, &[]));
                let (wa, wb) = (le_i32(wa), le_i32(wb));
                if 255 * (u64::from(wa.unsigned_abs()) + u64::from(wb.unsigned_abs())) >= 1 << 31 {
                    return Err(c.err(a_offset, K::OverflowPossible));
                }
                plan.wa = wa;
                plan.wb = wb;
                plan.aux = aux;
            }
        }
        LayerKind::MaxPool1d | LayerKind::Flatten => {}
    }
    Ok(plan)
}

/// The multiplier representing exactly 1, used where a layer has no multiplier.
const ONE: QuantMultiplier = QuantMultiplier::ONE;

/// Plans the arena and fills the arena fields of every layer; returns the arena size.
fn plan_arena(layers: &mut [LayerPlan<'_>]) -> Option<usize> {
    let mut reqs: Vec<TensorReq, MAX_LAYERS> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        reqs.push(TensorReq {
            first_use: i,
            last_use: i,
            size: l.out_t.checked_mul(l.out_c)?.checked_mul(
                if l.dynamic && l.kind == LayerKind::Dense {
                    5
                } else {
                    1
                },
            )?,
            prefix: 0,
        })
        .ok()?;
    }
    for (i, l) in layers.iter().enumerate() {
        for input in [l.input_a, l.input_b] {
            if let Some(r) = reqs.get_mut(usize::from(input)) {
                r.last_use = r.last_use.max(i);
            }
        }
        if l.kind == LayerKind::Conv1d && l.padding == Padding::Causal {
            let pad = causal_pad(l)?;
            if let Some(r) = reqs.get_mut(usize::from(l.input_a)) {
                r.prefix = r.prefix.max(pad);
            }
        }
    }
    let mut starts = [0usize; MAX_LAYERS];
    let total = plan::first_fit(&reqs, &mut starts)?;
    for (i, l) in layers.iter_mut().enumerate() {
        let r = reqs.get(i)?;
        l.alloc_start = *starts.get(i)?;
        l.alloc_len = r.prefix.checked_add(r.size)?;
        l.out_start = l.alloc_start + r.prefix;
        l.scratch_len = r.size;
        l.out_len = l.out_t.checked_mul(l.out_c)?;
    }
    // A second pass resolves the input ranges now that every tensor is placed.
    for i in 0..layers.len() {
        let l = *layers.get(i)?;
        let a = layers.get(usize::from(l.input_a)).copied();
        let b = layers.get(usize::from(l.input_b)).copied();
        let me = layers.get_mut(i)?;
        if let Some(a) = a {
            me.pad_len = if l.kind == LayerKind::Conv1d && l.padding == Padding::Causal {
                causal_pad(&l)?
            } else {
                0
            };
            me.in_start = a.out_start.checked_sub(me.pad_len)?;
            me.in_len = a.out_len + me.pad_len;
        }
        if let Some(b) = b {
            me.in_b_start = b.out_start;
            me.in_b_len = b.out_len;
        }
    }
    Some(total)
}

/// The pad bytes a causal convolution needs in front of its input: `dilation * (kernel - 1) * C_in`.
fn causal_pad(l: &LayerPlan<'_>) -> Option<usize> {
    l.dilation
        .checked_mul(l.kernel.checked_sub(1)?)?
        .checked_mul(l.in_c)
}

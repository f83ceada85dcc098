//! The blob format's vocabulary: constants, field ranges, layer kinds, weight layouts, byte views and the CRC.
//!
//! This module is the leaf of the crate: it imports nothing else from it, and everything else (the loader, the
//! plans, the kernels, the encoder) speaks its words. `docs/BLOB.md` describes the same layout in tables.
//!
//! - the constants and the byte ranges of the header ([`header`]) and of a layer entry ([`entry`]);
//! - [`LayerKind`], [`Padding`], [`WeightLayout`] and [`Section`], each with its code in the blob;
//! - `bytes`: little-endian readers, the [`Header`] and [`Entry`] views, and [`compute_crc`];
//! - `layout`: where each weight of each weight layout lives, shared by the loader, kernels and encoder;
//! - `shape`: a layer's output shape from its geometry, shared by the loader and the encoder.

mod bytes;
pub(crate) mod layout;
pub(crate) mod shape;

pub use bytes::{Entry, Header, compute_crc};
pub(crate) use bytes::{le_f32, le_i32, read_u16};
#[cfg(any(feature = "stream", feature = "alloc"))]
pub(crate) use bytes::{read_u8, read_u32};

/// The eight magic bytes at the start of every blob.
pub const MAGIC: [u8; 8] = *b"TICKQBLB";
/// The newest format version, which this crate writes when a blob uses a weight format of that version.
///
/// Version 1 stores dense blocked weights only; version 2 adds the per-layer weight format byte (codes 0 to 2:
/// dense blocked with a short tail block, sparse, N:M); version 3 adds codes 3 to 5 (column-sparse, packed,
/// `dense-dsp`); version 4 adds code 6 (`dense-dot`); version 5 adds the feature-spec section
/// ([`feature_spec`]).
/// The encoder writes the oldest version that holds every format the blob uses, so a blob that does not need
/// `dense-dot` still loads in a version 3 reader, and one without a feature spec is never version 5.
pub const FORMAT_VERSION: u16 = 5;
/// The first format version whose header may point at a feature-spec section ([`header::FEATURE_SPEC_OFFSET`]).
pub const FEATURE_SPEC_VERSION: u16 = 5;
/// The oldest format version this crate reads (version 1: dense blocked weights only).
pub const OLDEST_FORMAT_VERSION: u16 = 1;
/// The size of the header in bytes.
pub const HEADER_LEN: usize = 64;
/// The size of one layer table entry in bytes.
pub const ENTRY_LEN: usize = 64;
/// Every section starts at a multiple of this many bytes.
pub const SECTION_ALIGN: usize = 16;
/// The metadata block starts at a multiple of this many bytes.
pub const METADATA_ALIGN: usize = 4;
/// The input reference that means "none" (the model input for layer 0, no second input otherwise).
pub const NO_INPUT: u16 = 0xFFFF;
/// The largest value a layer entry's 16-bit size fields hold: `out_time`, `out_channels`, `kernel`, `stride` and
/// `dilation`.
///
/// So no tensor of a blob has more than this many time steps or channels: the input's time steps and features,
/// every Dense or Conv1d layer's outputs, and the `T * C` values of a Flatten are all at most `MAX_DIM`; the
/// encoder refuses a larger one with `EncodeError::TooLarge`.
pub const MAX_DIM: usize = u16::MAX as usize;
/// The longest metadata string in bytes (the model name, each feature and label name, the tickq version), and
/// the most entries a metadata list holds: their lengths and counts are 16-bit; the encoder refuses a longer one
/// with `EncodeError::MetadataTooLong`.
pub const MAX_METADATA_LEN: usize = u16::MAX as usize;

/// Byte ranges of the header fields.
pub mod header {
    use core::ops::Range;

    /// `[u8; 8]` magic, [`MAGIC`](super::MAGIC).
    pub const MAGIC: Range<usize> = 0..8;
    /// `u16` format version.
    pub const VERSION: Range<usize> = 8..10;
    /// `u16` flags: bit 0 is [`FLAG_CHANNELS_FIRST`]; any other bit is rejected.
    pub const FLAGS: Range<usize> = 10..12;
    /// Header flag bit 0: the model's users lay one sample out channels-first, `[C, T]` (PyTorch's `Conv1d`
    /// input), rather than time-major `[T, F]`; [`Model::input_layout`](crate::Model::input_layout) reports it.
    /// It changes nothing in how the blob runs: `Session::run` always takes time-major values, and
    /// [`InputLayout::to_time_major`](crate::model::InputLayout::to_time_major) converts a channels-first sample.
    /// Any format version may set it; a loader that predates it rejects the blob, as it should.
    pub const FLAG_CHANNELS_FIRST: u16 = 1;
    /// Every header flag this loader knows.
    pub const KNOWN_FLAGS: u16 = FLAG_CHANNELS_FIRST;
    /// `u32` CRC-32/ISO-HDLC over the blob without this field.
    pub const CRC: Range<usize> = 12..16;
    /// `u32` total blob length.
    pub const TOTAL_LEN: Range<usize> = 16..20;
    /// `u16` number of layers.
    pub const LAYER_COUNT: Range<usize> = 20..22;
    /// `u16` reserved, zero.
    pub const RESERVED_0: Range<usize> = 22..24;
    /// `u32` offset of the layer table (always 64).
    pub const LAYER_TABLE_OFFSET: Range<usize> = 24..28;
    /// `u32` offset of the metadata block.
    pub const METADATA_OFFSET: Range<usize> = 28..32;
    /// `u32` length of the metadata block.
    pub const METADATA_LEN: Range<usize> = 32..36;
    /// `u32` offset of the feature-spec section (version 5), or 0 when the blob has none; reserved (zero) in
    /// versions 1 to 4.
    pub const FEATURE_SPEC_OFFSET: Range<usize> = 36..40;
    /// `u32` length of the feature-spec section (version 5): [`feature_spec::LEN`](super::feature_spec::LEN), or 0
    /// when the blob has none; reserved (zero) in versions 1 to 4.
    pub const FEATURE_SPEC_LEN: Range<usize> = 40..44;
    /// The two feature-spec fields together, the bytes a version 1 to 4 blob must leave zero.
    pub const FEATURE_SPEC_FIELDS: Range<usize> = 36..44;
    /// Reserved, zero.
    pub const RESERVED_1: Range<usize> = 44..64;
}

/// Byte ranges of the fields of the feature-spec section (version 5), relative to the section: the whole
/// `FeatureSpec` of `tickq_core::features` that the model's features come from.
///
/// The nine window lists appear in the order the `FeatureSpec` declares them (`return_lags_trades` first,
/// `range_windows_trades` last): first their lengths, one byte each, then [`MAX_WINDOWS`](feature_spec::MAX_WINDOWS)
/// `u32` slots per list, the unused ones zero.
pub mod feature_spec {
    use core::ops::Range;

    /// The exact length of the section.
    pub const LEN: usize = 328;
    /// `u32` the session gap in milliseconds.
    pub const SESSION_GAP_MS: Range<usize> = 0..4;
    /// `u32` the trade capacity.
    pub const CAPACITY: Range<usize> = 4..8;
    /// `f64` (IEEE bits) the tick size.
    pub const TICK_SIZE: Range<usize> = 8..16;
    /// `f64` (IEEE bits) the size unit.
    pub const SIZE_UNIT: Range<usize> = 16..24;
    /// `[u8; 9]` the length of each list, in declaration order.
    pub const LIST_LENS: Range<usize> = 24..33;
    /// `u8` the input kind (`InputKind::code`): 0 trades, 1 bars, 2 book. Reserved (zero) before the bars and
    /// book kinds, so a trades spec is byte for byte what it was and an older loader refuses the other kinds
    /// by their non-zero reserved byte.
    pub const INPUT_KIND: usize = 33;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 34..40;
    /// The start of the first list's slots; list `i` starts at `LISTS + LIST_BYTES * i`.
    pub const LISTS: usize = 40;
    /// The slots of one list.
    pub const MAX_WINDOWS: usize = 8;
    /// The bytes of one list: [`MAX_WINDOWS`] `u32` slots.
    pub const LIST_BYTES: usize = 4 * MAX_WINDOWS;
    /// The number of lists.
    pub const LISTS_COUNT: usize = 9;
}

/// Byte ranges of the fields of one layer table entry, relative to the entry.
pub mod entry {
    use core::ops::Range;

    /// `u8` layer kind code.
    pub const KIND: usize = 0;
    /// `u8` padding: 0 valid, 1 causal.
    pub const PADDING: usize = 1;
    /// `u16` index of the layer producing the first input.
    pub const INPUT_A: Range<usize> = 2..4;
    /// `u16` index of the layer producing the second input (Add only).
    pub const INPUT_B: Range<usize> = 4..6;
    /// `u8` layer flags: bit 0 marks a dynamically quantized layer (`docs/ARITHMETIC.md`); other bits zero.
    pub const FLAGS: usize = 6;
    /// `i8` bias exponent of a dynamic Dense layer; zero everywhere else.
    pub const BIAS_EXPONENT: usize = 7;
    /// `u16` declared output time steps.
    pub const OUT_TIME: Range<usize> = 8..10;
    /// `u16` declared output channels.
    pub const OUT_CHANNELS: Range<usize> = 10..12;
    /// `u16` kernel size.
    pub const KERNEL: Range<usize> = 12..14;
    /// `u16` stride.
    pub const STRIDE: Range<usize> = 14..16;
    /// `u16` dilation.
    pub const DILATION: Range<usize> = 16..18;
    /// `u8` N:M weights (version 2, weight format 2): `n`, the stored weights per group; otherwise zero.
    pub const NM_N: usize = 18;
    /// `u8` N:M weights (version 2, weight format 2): `m`, the group width; otherwise zero.
    pub const NM_M: usize = 19;
    /// `i8` output zero point.
    pub const OUT_ZERO_POINT: usize = 20;
    /// `i8` lower clamp of the output.
    pub const ACT_MIN: usize = 21;
    /// `i8` upper clamp of the output.
    pub const ACT_MAX: usize = 22;
    /// `u8` weight format ([`WeightLayout::code`](super::WeightLayout::code)): 0 dense blocked, 1 sparse, 2 N:M
    /// (version 2), 3 column-sparse, 4 packed, 5 `dense-dsp` (version 3), 6 `dense-dot` (version 4); zero in
    /// version 1 and for layers without weights.
    pub const WEIGHT_FORMAT: usize = 23;
    /// `f32` output scale (IEEE bits).
    pub const OUT_SCALE: Range<usize> = 24..28;
    /// `u32` weights section offset.
    pub const WEIGHTS_OFFSET: Range<usize> = 28..32;
    /// `u32` weights section length.
    pub const WEIGHTS_LEN: Range<usize> = 32..36;
    /// `u32` bias section offset.
    pub const BIAS_OFFSET: Range<usize> = 36..40;
    /// `u32` bias section length.
    pub const BIAS_LEN: Range<usize> = 40..44;
    /// `u32` requant section offset.
    pub const REQUANT_OFFSET: Range<usize> = 44..48;
    /// `u32` requant section length.
    pub const REQUANT_LEN: Range<usize> = 48..52;
    /// `u32` aux section offset.
    pub const AUX_OFFSET: Range<usize> = 52..56;
    /// `u32` aux section length.
    pub const AUX_LEN: Range<usize> = 56..60;
    /// `u32` reserved, zero.
    pub const RESERVED_3: Range<usize> = 60..64;
}

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

    /// Whether layers of this kind have weights (Dense and Conv1d).
    #[inline]
    pub const fn has_weights(self) -> bool {
        matches!(self, LayerKind::Dense | LayerKind::Conv1d)
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

/// How a Dense or Conv1d layer stores its weights: what the weight format byte of a layer entry says
/// (`docs/BLOB.md`).
///
/// This is what a blob *holds*; the encoder's `WeightFormat` (feature `alloc`) is what a caller *asks for*,
/// including choices such as `auto` that resolve to one of these per layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WeightLayout {
    /// Every weight, in blocks of 16 output channels with input pairs interleaved (code 0, "blocked"; the only
    /// one in version 1).
    #[default]
    Blocked,
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
    /// (code 5; Dense only, version 3).
    DenseDsp,
    /// Every weight, in blocks of 16 output channels and groups of 4 consecutive inputs, for the int8
    /// dot-product instructions of x86-64 (`vpdpbusd`, `vpmaddwd`) and aarch64 (`SDOT`); the aux section holds
    /// a second bias with `128 * sum w` taken out, for kernels that multiply unsigned inputs (code 6; Dense and
    /// Conv1d, version 4).
    DenseDot,
}

impl WeightLayout {
    /// The code byte.
    #[inline]
    pub const fn code(self) -> u8 {
        match self {
            WeightLayout::Blocked => 0,
            WeightLayout::Sparse => 1,
            WeightLayout::NM { .. } => 2,
            WeightLayout::Columns => 3,
            WeightLayout::Packed => 4,
            WeightLayout::DenseDsp => 5,
            WeightLayout::DenseDot => 6,
        }
    }

    /// The oldest format version that has this layout.
    #[inline]
    pub const fn min_version(self) -> u16 {
        match self {
            WeightLayout::Blocked => 1,
            WeightLayout::Sparse | WeightLayout::NM { .. } => 2,
            WeightLayout::Columns | WeightLayout::Packed | WeightLayout::DenseDsp => 3,
            WeightLayout::DenseDot => 4,
        }
    }

    /// A short name: `blocked`, `sparse`, `columns`, `packed`, `dense-dsp`, `dense-dot` or `n:m` (for example
    /// `2:4`) is written by `Display`; this is the family (`nm` for N:M).
    pub const fn name(self) -> &'static str {
        match self {
            WeightLayout::Blocked => "blocked",
            WeightLayout::Sparse => "sparse",
            WeightLayout::NM { .. } => "nm",
            WeightLayout::Columns => "columns",
            WeightLayout::Packed => "packed",
            WeightLayout::DenseDsp => "dense-dsp",
            WeightLayout::DenseDot => "dense-dot",
        }
    }

    /// Whether the layout stores every weight (no sparsity structure).
    #[inline]
    pub const fn is_dense(self) -> bool {
        matches!(
            self,
            WeightLayout::Blocked | WeightLayout::DenseDsp | WeightLayout::DenseDot
        )
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

/// A section of a layer entry (see `docs/BLOB.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The int8 weights of a Dense or Conv1d layer, in the layer's weight format.
    Weights,
    /// The i32 effective bias of a Dense or Conv1d layer.
    Bias,
    /// The requantization multipliers and right shifts.
    Requant,
    /// The layer-specific auxiliary data (quantizer coefficients, lookup table, Add weights, the second bias of
    /// `dense-dot`).
    Aux,
}

impl Section {
    /// The lower-case name used in messages.
    #[inline]
    pub const fn name(self) -> &'static str {
        match self {
            Section::Weights => "weights",
            Section::Bias => "bias",
            Section::Requant => "requant",
            Section::Aux => "aux",
        }
    }
}

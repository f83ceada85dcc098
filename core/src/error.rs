//! Errors: why a blob was rejected, and why an arena was refused.
//!
//! Both error types are `Copy`, allocation-free and carry their location as integers, so firmware can log them
//! without a formatter and host tools can print them with [`Display`](core::fmt::Display).

use core::fmt;

use core::hash::{Hash, Hasher};

use crate::features::{InputKind, SpecError, SpecField};
use crate::format::LayerKind;
pub use crate::format::Section;

/// What is wrong with a blob.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobErrorKind {
    /// The blob is shorter than the structure that should be at `offset`.
    Truncated,
    /// The first eight bytes are not `TICKQBLB`.
    BadMagic,
    /// The format version is not one this loader understands.
    UnsupportedVersion {
        /// The version found in the header.
        found: u16,
    },
    /// The header sets flag bits this version does not define.
    UnknownFlags {
        /// The flags found in the header.
        found: u16,
    },
    /// The header's `total_len` differs from the length of the byte slice.
    LengthMismatch {
        /// The length the header declares.
        declared: u32,
    },
    /// The CRC-32 over the blob does not match the header.
    CrcMismatch {
        /// The CRC stored in the header.
        stored: u32,
        /// The CRC computed over the bytes.
        computed: u32,
    },
    /// A reserved field is not zero.
    ReservedNotZero,
    /// The layer table does not start right after the header.
    BadTableOffset,
    /// The layer count is zero or above [`MAX_LAYERS`](crate::MAX_LAYERS).
    BadLayerCount {
        /// The layer count found in the header.
        found: u16,
    },
    /// The metadata block is outside the blob, overlaps the layer table or is not last.
    MetadataOutOfBounds,
    /// The metadata block does not start at a 4-byte aligned offset.
    MetadataMisaligned,
    /// A metadata string or count runs past the end of the metadata block.
    MetadataTruncated,
    /// The metadata block has bytes after the last field.
    MetadataTrailingBytes,
    /// A metadata string is not valid UTF-8.
    BadUtf8,
    /// The number of feature names differs from the input's feature count.
    FeatureCountMismatch {
        /// The number of names in the metadata.
        names: u16,
        /// The model's feature count.
        features: u16,
    },
    /// The number of label names differs from the number of classes.
    LabelCountMismatch {
        /// The number of names in the metadata.
        names: u16,
        /// The model's class count.
        classes: u16,
    },
    /// The layer kind byte is not a known kind.
    UnknownKind {
        /// The kind byte found.
        found: u8,
    },
    /// Layer 0 is not a Quantize layer, or a Quantize layer appears later.
    QuantizeNotFirst,
    /// The padding byte is unknown, or set on a layer that is not a Conv1d.
    BadPadding {
        /// The padding byte found.
        found: u8,
    },
    /// An input reference does not point to an earlier layer, or is set where it must be absent.
    BadInput {
        /// The input index found (`0xFFFF` means none).
        found: u16,
    },
    /// The declared output shape differs from the shape computed from the inputs.
    ShapeMismatch {
        /// The computed number of time steps.
        expected_time: u32,
        /// The computed number of channels.
        expected_channels: u32,
    },
    /// A Dense layer's input is not a vector (its time dimension is not 1).
    InputNotVector,
    /// The two inputs of an Add layer have different shapes.
    AddShapeMismatch,
    /// A size, kernel, stride or dilation that must be at least 1 is zero.
    ZeroParameter,
    /// A kernel, stride or dilation field that this layer kind does not use is not zero.
    UnusedParameter,
    /// The pooling or convolution window is longer than the (padded) input.
    WindowTooLarge,
    /// The output scale is not a finite number greater than zero.
    BadScale,
    /// `act_min > act_max`.
    BadActivationRange,
    /// The dynamic flag or a dynamic field is set where it is not allowed: on a layer other than Quantize or
    /// Dense, on some layers but not all, on a non-dense weight format, with a non-zero zero point, an
    /// unsupported clamp, or a multiplier of 1 or more (see `docs/ARITHMETIC.md`, "Dynamic quantization").
    BadDynamic,
    /// A layer that must keep its input's quantization parameters declares different ones.
    QuantParamsMismatch,
    /// A section lies outside the space between the layer table and the metadata.
    SectionOutOfBounds {
        /// The offending section.
        section: Section,
    },
    /// A section does not start at a 16-byte aligned offset.
    SectionMisaligned {
        /// The offending section.
        section: Section,
    },
    /// A section overlaps another section.
    SectionOverlap {
        /// The offending section.
        section: Section,
    },
    /// A section does not have exactly the length its layer needs.
    SectionLength {
        /// The offending section.
        section: Section,
        /// The length the layer needs.
        expected: u32,
        /// The length found in the entry.
        found: u32,
    },
    /// A padding byte of a weight block (a channel past `C_out`, or the input past an odd row length) is not zero.
    RowPaddingNotZero,
    /// The weight format byte is unknown, or not zero on a layer without weights (version 2).
    BadWeightFormat {
        /// The weight format byte found.
        found: u8,
    },
    /// The N:M parameters are unsupported (`m` must be 4 and `1 <= n < m`), or the row length is not a multiple
    /// of `m`; the offset names the `n` or `m` byte.
    BadNmPattern,
    /// A sparse per-segment count exceeds the segment's width.
    SparseCountTooLarge,
    /// A sparse column index is not below its segment's width.
    SparseIndexOutOfRange,
    /// Sparse column indices of one channel segment are not strictly increasing (out of order or repeated).
    SparseIndexNotIncreasing,
    /// A sparse weight value is zero (zeros are never stored).
    SparseZeroValue,
    /// A packed weights header is invalid: a gap or code width outside 1 to 8 bits, a codebook longer than the
    /// code width allows, or codebook values that do not strictly increase.
    BadPackedHeader,
    /// The in-group indices of an N:M group are not strictly increasing (out of order or repeated).
    NmIndexNotIncreasing,
    /// A requantization multiplier or right shift is outside its valid range.
    BadMultiplier,
    /// A quantizer coefficient is not finite.
    BadCoefficient,
    /// The weights and bias of a channel could overflow the i32 accumulator.
    OverflowPossible,
    /// The last layer's output is not a vector (its time dimension is not 1).
    OutputNotVector,
    /// The model has more classes than [`MAX_CLASSES`](crate::MAX_CLASSES).
    TooManyClasses {
        /// The class count of the last layer.
        found: u16,
    },
    /// The arena the model needs does not fit in this target's address space.
    ArenaTooLarge,
    /// The blob needs something this build of tickq-core leaves out: a weight format of the `sparse-formats`
    /// or `dense-dot` feature, or dynamic quantization (feature `dynamic`); all are on by default.
    NotCompiled {
        /// What the blob uses: `"sparse weight format"` or `"dense-dot weight format"` (with `found` its code),
        /// or `"dynamic quantization"`.
        what: &'static str,
        /// The cargo feature of tickq-core that would accept it.
        feature: &'static str,
        /// The weight format code, or the layer flags.
        found: u8,
    },
    /// A `dense-dot` layer's second bias (the aux section) is not its bias minus `128 * sum w` of its channel
    /// (wrapping in i32), which the kernels that add 128 to every input rely on.
    OffsetBiasMismatch,
    /// The feature-spec section (version 5) lies outside the space between the layer table and the metadata,
    /// or has an offset of 0 with a non-zero length.
    FeatureSpecOutOfBounds,
    /// The feature-spec section does not start at a 16-byte aligned offset.
    FeatureSpecMisaligned,
    /// The feature-spec section's length is not exactly
    /// [`feature_spec::LEN`](crate::format::feature_spec::LEN) bytes.
    FeatureSpecLength {
        /// The length the header declares.
        found: u32,
    },
    /// The feature-spec section overlaps a layer's section.
    FeatureSpecOverlap,
    /// A window list of the feature spec declares more than [`MAX_WINDOWS`](crate::features::MAX_WINDOWS)
    /// windows.
    FeatureSpecListTooLong {
        /// The list.
        field: SpecField,
        /// The length stored.
        found: u8,
    },
    /// A slot of a feature-spec window list past the list's length is not zero.
    FeatureSpecSlotNotZero {
        /// The list.
        field: SpecField,
    },
    /// The feature spec fails [`FeatureSpec::validate`](crate::features::FeatureSpec::validate).
    BadFeatureSpec {
        /// What the validation refused, naming the field.
        error: FeatureSpecError,
    },
    /// The feature spec produces a different number of features than the model's input has.
    FeatureSpecCountMismatch {
        /// [`FeatureSpec::feature_count`](crate::features::FeatureSpec::feature_count).
        spec: u16,
        /// The model's feature count.
        features: u16,
    },
    /// A feature name of the metadata is not the feature spec's name of that column.
    FeatureNameMismatch {
        /// The position of the name (0 for the first feature).
        index: u16,
    },
    /// The feature spec's input kind (section byte 33) is not a known code (0 trades, 1 bars, 2 book).
    FeatureSpecInputKind {
        /// The code stored.
        found: u8,
    },
    /// A feature-spec list slot past the input kind's lists (a bars spec stores 2, a book spec 4) has a
    /// non-zero length or window.
    FeatureSpecListUnused {
        /// The spec's input kind.
        kind: InputKind,
        /// The list's position in the section (0 to 8).
        index: u8,
    },
}

/// A [`SpecError`] inside a [`BlobErrorKind`]: the same value, compared and hashed by the bits of its `f64`, so
/// that the kind stays `Eq` and `Hash`.
#[derive(Debug, Clone, Copy)]
pub struct FeatureSpecError(pub SpecError);

impl FeatureSpecError {
    /// The variant, its field and its numbers, with the `f64` as bits.
    fn key(&self) -> (u8, Option<SpecField>, u64, u32) {
        match self.0 {
            SpecError::TradeWindow {
                field,
                found,
                capacity,
            } => (0, Some(field), u64::from(found), capacity),
            SpecError::TimeWindow { field, found } => (1, Some(field), u64::from(found), 0),
            SpecError::SessionGap => (2, None, 0, 0),
            SpecError::Capacity { found } => (3, None, u64::from(found), 0),
            SpecError::Unit { field, found } => (4, Some(field), found.to_bits(), 0),
            SpecError::NoFeatures => (5, None, 0, 0),
            SpecError::WrongInput { field, input } => (6, Some(field), u64::from(input.code()), 0),
            SpecError::CountWindow {
                field,
                found,
                limit,
            } => (7, Some(field), u64::from(found), limit),
        }
    }
}

impl PartialEq for FeatureSpecError {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for FeatureSpecError {}

impl Hash for FeatureSpecError {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Display for FeatureSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl BlobErrorKind {
    /// A short, stable name of the kind, without its data.
    pub const fn name(&self) -> &'static str {
        // A table rather than a `match` returning strings: the index is the enum's tag, so the lookup is a load
        // (a few bytes of code instead of an arm per kind).
        let i = self.index();
        if i < NAMES.len() { NAMES[i] } else { "" }
    }

    /// The kind's position in [`NAMES`].
    const fn index(&self) -> usize {
        match self {
            BlobErrorKind::Truncated => 0,
            BlobErrorKind::BadMagic => 1,
            BlobErrorKind::UnsupportedVersion { .. } => 2,
            BlobErrorKind::UnknownFlags { .. } => 3,
            BlobErrorKind::LengthMismatch { .. } => 4,
            BlobErrorKind::CrcMismatch { .. } => 5,
            BlobErrorKind::ReservedNotZero => 6,
            BlobErrorKind::BadTableOffset => 7,
            BlobErrorKind::BadLayerCount { .. } => 8,
            BlobErrorKind::MetadataOutOfBounds => 9,
            BlobErrorKind::MetadataMisaligned => 10,
            BlobErrorKind::MetadataTruncated => 11,
            BlobErrorKind::MetadataTrailingBytes => 12,
            BlobErrorKind::BadUtf8 => 13,
            BlobErrorKind::FeatureCountMismatch { .. } => 14,
            BlobErrorKind::LabelCountMismatch { .. } => 15,
            BlobErrorKind::UnknownKind { .. } => 16,
            BlobErrorKind::QuantizeNotFirst => 17,
            BlobErrorKind::BadPadding { .. } => 18,
            BlobErrorKind::BadInput { .. } => 19,
            BlobErrorKind::ShapeMismatch { .. } => 20,
            BlobErrorKind::InputNotVector => 21,
            BlobErrorKind::AddShapeMismatch => 22,
            BlobErrorKind::ZeroParameter => 23,
            BlobErrorKind::UnusedParameter => 24,
            BlobErrorKind::WindowTooLarge => 25,
            BlobErrorKind::BadScale => 26,
            BlobErrorKind::BadActivationRange => 27,
            BlobErrorKind::BadDynamic => 28,
            BlobErrorKind::QuantParamsMismatch => 29,
            BlobErrorKind::SectionOutOfBounds { .. } => 30,
            BlobErrorKind::SectionMisaligned { .. } => 31,
            BlobErrorKind::SectionOverlap { .. } => 32,
            BlobErrorKind::SectionLength { .. } => 33,
            BlobErrorKind::RowPaddingNotZero => 34,
            BlobErrorKind::BadWeightFormat { .. } => 35,
            BlobErrorKind::BadNmPattern => 36,
            BlobErrorKind::SparseCountTooLarge => 37,
            BlobErrorKind::SparseIndexOutOfRange => 38,
            BlobErrorKind::SparseIndexNotIncreasing => 39,
            BlobErrorKind::SparseZeroValue => 40,
            BlobErrorKind::BadPackedHeader => 41,
            BlobErrorKind::NmIndexNotIncreasing => 42,
            BlobErrorKind::BadMultiplier => 43,
            BlobErrorKind::BadCoefficient => 44,
            BlobErrorKind::OverflowPossible => 45,
            BlobErrorKind::OutputNotVector => 46,
            BlobErrorKind::TooManyClasses { .. } => 47,
            BlobErrorKind::ArenaTooLarge => 48,
            BlobErrorKind::NotCompiled { .. } => 49,
            BlobErrorKind::OffsetBiasMismatch => 50,
            BlobErrorKind::FeatureSpecOutOfBounds => 51,
            BlobErrorKind::FeatureSpecMisaligned => 52,
            BlobErrorKind::FeatureSpecLength { .. } => 53,
            BlobErrorKind::FeatureSpecOverlap => 54,
            BlobErrorKind::FeatureSpecListTooLong { .. } => 55,
            BlobErrorKind::FeatureSpecSlotNotZero { .. } => 56,
            BlobErrorKind::BadFeatureSpec { .. } => 57,
            BlobErrorKind::FeatureSpecCountMismatch { .. } => 58,
            BlobErrorKind::FeatureNameMismatch { .. } => 59,
            BlobErrorKind::FeatureSpecInputKind { .. } => 60,
            BlobErrorKind::FeatureSpecListUnused { .. } => 61,
        }
    }
}

/// The names of [`BlobErrorKind::name`], in declaration order.
const NAMES: [&str; 62] = [
    "truncated",
    "bad magic",
    "unsupported version",
    "unknown flags",
    "length mismatch",
    "CRC mismatch",
    "reserved field not zero",
    "bad layer table offset",
    "bad layer count",
    "metadata out of bounds",
    "metadata misaligned",
    "metadata truncated",
    "metadata has trailing bytes",
    "metadata string is not UTF-8",
    "feature name count mismatch",
    "label name count mismatch",
    "unknown layer kind",
    "Quantize must be exactly layer 0",
    "bad padding",
    "bad input reference",
    "shape mismatch",
    "input is not a vector",
    "Add inputs differ in shape",
    "zero size, kernel, stride or dilation",
    "unused parameter not zero",
    "window longer than input",
    "bad output scale",
    "act_min > act_max",
    "dynamic quantization not allowed here",
    "quantization parameters differ from the input's",
    "section out of bounds",
    "section misaligned",
    "section overlaps another section",
    "section has wrong length",
    "row padding not zero",
    "bad weight format",
    "bad N:M pattern",
    "sparse count exceeds its segment",
    "sparse index out of range",
    "sparse indices not strictly increasing",
    "sparse value is zero",
    "bad packed weights header",
    "N:M indices not strictly increasing",
    "bad requantization multiplier",
    "quantizer coefficient not finite",
    "i32 accumulator overflow possible",
    "final tensor is not a vector",
    "too many classes",
    "arena too large",
    "not compiled in",
    "dense-dot second bias mismatch",
    "feature spec section out of bounds",
    "feature spec section misaligned",
    "feature spec section has wrong length",
    "feature spec section overlaps another section",
    "feature spec list too long",
    "feature spec unused window slot not zero",
    "feature spec rejected",
    "feature spec count mismatch",
    "feature name differs from the feature spec's",
    "feature spec input kind unknown",
    "feature spec list unused by its input kind not empty",
];

impl BlobErrorKind {
    /// The section a section error names.
    const fn section(&self) -> Option<Section> {
        match *self {
            BlobErrorKind::SectionOutOfBounds { section }
            | BlobErrorKind::SectionMisaligned { section }
            | BlobErrorKind::SectionOverlap { section }
            | BlobErrorKind::SectionLength { section, .. } => Some(section),
            _ => None,
        }
    }

    /// The feature-spec list a feature-spec error names.
    #[cfg(any(feature = "stream", feature = "alloc"))]
    const fn spec_field(&self) -> Option<SpecField> {
        match *self {
            BlobErrorKind::FeatureSpecListTooLong { field, .. }
            | BlobErrorKind::FeatureSpecSlotNotZero { field } => Some(field),
            _ => None,
        }
    }

    /// The numbers a message shows after the name, as (label, value, hexadecimal); an empty label ends the list.
    ///
    /// One table and one loop instead of a `write!` per kind keep the formatting code small on firmware.
    const fn details(&self) -> [(&'static str, u32, bool); 2] {
        const NONE: (&str, u32, bool) = ("", 0, false);
        match *self {
            BlobErrorKind::UnsupportedVersion { found }
            | BlobErrorKind::BadLayerCount { found }
            | BlobErrorKind::BadInput { found }
            | BlobErrorKind::TooManyClasses { found } => [("found ", found as u32, false), NONE],
            BlobErrorKind::UnknownFlags { found } => [("found ", found as u32, true), NONE],
            BlobErrorKind::UnknownKind { found }
            | BlobErrorKind::BadPadding { found }
            | BlobErrorKind::BadWeightFormat { found } => [("found ", found as u32, false), NONE],
            BlobErrorKind::LengthMismatch { declared } => {
                [("header declares ", declared, false), NONE]
            }
            BlobErrorKind::CrcMismatch { stored, computed } => {
                [("stored ", stored, true), ("computed ", computed, true)]
            }
            BlobErrorKind::FeatureCountMismatch { names, features } => [
                ("names ", names as u32, false),
                ("features ", features as u32, false),
            ],
            BlobErrorKind::LabelCountMismatch { names, classes } => [
                ("names ", names as u32, false),
                ("classes ", classes as u32, false),
            ],
            BlobErrorKind::ShapeMismatch {
                expected_time,
                expected_channels,
            } => [
                ("computed time steps ", expected_time, false),
                ("channels ", expected_channels, false),
            ],
            BlobErrorKind::SectionLength {
                expected, found, ..
            } => [("length ", found, false), ("expected ", expected, false)],
            BlobErrorKind::FeatureSpecLength { found } => [
                ("length ", found, false),
                ("expected ", crate::format::feature_spec::LEN as u32, false),
            ],
            // Only a build that reads feature specs can raise these three (see `Display`).
            #[cfg(any(feature = "stream", feature = "alloc"))]
            BlobErrorKind::FeatureSpecListTooLong { found, .. } => [
                ("found ", found as u32, false),
                ("at most ", crate::features::MAX_WINDOWS as u32, false),
            ],
            #[cfg(any(feature = "stream", feature = "alloc"))]
            BlobErrorKind::FeatureSpecCountMismatch { spec, features } => [
                ("spec features ", spec as u32, false),
                ("model features ", features as u32, false),
            ],
            #[cfg(any(feature = "stream", feature = "alloc"))]
            BlobErrorKind::FeatureNameMismatch { index } => {
                [("feature ", index as u32, false), NONE]
            }
            #[cfg(any(feature = "stream", feature = "alloc"))]
            BlobErrorKind::FeatureSpecInputKind { found } => {
                [("found ", found as u32, false), NONE]
            }
            #[cfg(any(feature = "stream", feature = "alloc"))]
            BlobErrorKind::FeatureSpecListUnused { kind, index } => [
                ("list ", index as u32, false),
                ("input kind ", kind.code() as u32, false),
            ],
            _ => [NONE, NONE],
        }
    }
}

/// The message is the section name (for section errors), the kind's [`name`](BlobErrorKind::name) and its
/// numbers in parentheses, for example `weights section has wrong length (length 12, expected 16)`; a
/// feature-spec list error names its list after a colon, in backquotes, before the numbers (for example
/// `feature spec list too long: ` and the list `return_lags_ms`, then `(found 9, at most 8)`),
/// and [`BlobErrorKind::BadFeatureSpec`] ends with the [`SpecError`]'s message.
impl fmt::Display for BlobErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let BlobErrorKind::NotCompiled {
            what,
            feature,
            found,
        } = *self
        {
            f.write_str(what)?;
            f.write_str(" (")?;
            fmt::Display::fmt(&u32::from(found), f)?;
            f.write_str(") not compiled in: tickq-core was built without its `")?;
            f.write_str(feature)?;
            return f.write_str("` feature");
        }
        if let Some(section) = self.section() {
            f.write_str(section.name())?;
            f.write_str(" ")?;
        }
        f.write_str(self.name())?;
        // Only a build that reads feature specs (`stream` or `alloc`) can raise these two; lean firmware leaves
        // their formatting out.
        #[cfg(any(feature = "stream", feature = "alloc"))]
        if let BlobErrorKind::BadFeatureSpec { error } = self {
            f.write_str(": ")?;
            return fmt::Display::fmt(error, f);
        }
        #[cfg(any(feature = "stream", feature = "alloc"))]
        if let Some(field) = self.spec_field() {
            f.write_str(": `")?;
            f.write_str(field.name())?;
            f.write_str("`")?;
        }
        let mut sep = " (";
        for (label, value, hex) in self.details() {
            if label.is_empty() {
                break;
            }
            f.write_str(sep)?;
            f.write_str(label)?;
            if hex {
                f.write_str("0x")?;
                fmt::LowerHex::fmt(&value, f)?;
            } else {
                fmt::Display::fmt(&value, f)?;
            }
            sep = ", ";
        }
        if sep == ", " {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A blob was rejected by [`Model::load`](crate::Model::load).
///
/// `layer` is the index of the layer entry at fault (`None` for the header and metadata), `layer_kind` its kind
/// when the kind byte was readable, and `offset` the byte offset in the blob of the offending field or section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobError {
    /// The index of the layer at fault, if the error belongs to a layer.
    pub layer: Option<u16>,
    /// The kind of that layer, if its kind byte is valid.
    pub layer_kind: Option<LayerKind>,
    /// The byte offset in the blob of the offending field or section.
    pub offset: u32,
    /// What is wrong.
    pub kind: BlobErrorKind,
}

impl BlobError {
    /// An error in the header or metadata, not tied to a layer.
    #[inline]
    pub(crate) const fn global(offset: usize, kind: BlobErrorKind) -> Self {
        BlobError {
            layer: None,
            layer_kind: None,
            offset: clamp_offset(offset),
            kind,
        }
    }
}

/// Offsets are `u32` in the format, so anything beyond saturates (only possible for blobs over 4 GiB).
#[inline]
pub(crate) const fn clamp_offset(offset: usize) -> u32 {
    if offset > u32::MAX as usize {
        u32::MAX
    } else {
        offset as u32
    }
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `write_str` and the integers' own `fmt` rather than `write!`: less code on firmware.
        match self.layer {
            Some(layer) => {
                f.write_str("layer ")?;
                // As u32: the formatter's u32 code is linked anyway, a u16 one would be inlined here.
                fmt::Display::fmt(&u32::from(layer), f)?;
                if let Some(kind) = self.layer_kind {
                    f.write_str(" (")?;
                    f.write_str(kind.name())?;
                    f.write_str(")")?;
                }
                f.write_str(" ")?;
            }
            None => f.write_str("blob ")?,
        }
        f.write_str("at byte ")?;
        fmt::Display::fmt(&self.offset, f)?;
        f.write_str(": ")?;
        fmt::Display::fmt(&self.kind, f)
    }
}

impl core::error::Error for BlobError {}

/// The arena given to [`Session::new`](crate::Session::new) is smaller than [`Model::arena_bytes`](crate::Model::arena_bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArenaTooSmall {
    /// The number of bytes the model needs.
    pub needed: usize,
    /// The number of bytes given.
    pub given: usize,
}

impl fmt::Display for ArenaTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arena too small: the model needs {} bytes, {} given",
            self.needed, self.given
        )
    }
}

impl core::error::Error for ArenaTooSmall {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    /// The kind declared after `k`, with sample data, or `None` after the last: a `match` without a wildcard,
    /// so a new kind does not compile until it has an arm here (and its place in the chain).
    const fn next(k: &BlobErrorKind) -> Option<BlobErrorKind> {
        use BlobErrorKind as K;
        let s = Section::Weights;
        Some(match k {
            K::Truncated => K::BadMagic,
            K::BadMagic => K::UnsupportedVersion { found: 9 },
            K::UnsupportedVersion { .. } => K::UnknownFlags { found: 0x10 },
            K::UnknownFlags { .. } => K::LengthMismatch { declared: 100 },
            K::LengthMismatch { .. } => K::CrcMismatch {
                stored: 1,
                computed: 2,
            },
            K::CrcMismatch { .. } => K::ReservedNotZero,
            K::ReservedNotZero => K::BadTableOffset,
            K::BadTableOffset => K::BadLayerCount { found: 0 },
            K::BadLayerCount { .. } => K::MetadataOutOfBounds,
            K::MetadataOutOfBounds => K::MetadataMisaligned,
            K::MetadataMisaligned => K::MetadataTruncated,
            K::MetadataTruncated => K::MetadataTrailingBytes,
            K::MetadataTrailingBytes => K::BadUtf8,
            K::BadUtf8 => K::FeatureCountMismatch {
                names: 2,
                features: 3,
            },
            K::FeatureCountMismatch { .. } => K::LabelCountMismatch {
                names: 2,
                classes: 3,
            },
            K::LabelCountMismatch { .. } => K::UnknownKind { found: 99 },
            K::UnknownKind { .. } => K::QuantizeNotFirst,
            K::QuantizeNotFirst => K::BadPadding { found: 7 },
            K::BadPadding { .. } => K::BadInput { found: 5 },
            K::BadInput { .. } => K::ShapeMismatch {
                expected_time: 1,
                expected_channels: 4,
            },
            K::ShapeMismatch { .. } => K::InputNotVector,
            K::InputNotVector => K::AddShapeMismatch,
            K::AddShapeMismatch => K::ZeroParameter,
            K::ZeroParameter => K::UnusedParameter,
            K::UnusedParameter => K::WindowTooLarge,
            K::WindowTooLarge => K::BadScale,
            K::BadScale => K::BadActivationRange,
            K::BadActivationRange => K::BadDynamic,
            K::BadDynamic => K::QuantParamsMismatch,
            K::QuantParamsMismatch => K::SectionOutOfBounds { section: s },
            K::SectionOutOfBounds { .. } => K::SectionMisaligned { section: s },
            K::SectionMisaligned { .. } => K::SectionOverlap { section: s },
            K::SectionOverlap { .. } => K::SectionLength {
                section: s,
                expected: 16,
                found: 12,
            },
            K::SectionLength { .. } => K::RowPaddingNotZero,
            K::RowPaddingNotZero => K::BadWeightFormat { found: 200 },
            K::BadWeightFormat { .. } => K::BadNmPattern,
            K::BadNmPattern => K::SparseCountTooLarge,
            K::SparseCountTooLarge => K::SparseIndexOutOfRange,
            K::SparseIndexOutOfRange => K::SparseIndexNotIncreasing,
            K::SparseIndexNotIncreasing => K::SparseZeroValue,
            K::SparseZeroValue => K::BadPackedHeader,
            K::BadPackedHeader => K::NmIndexNotIncreasing,
            K::NmIndexNotIncreasing => K::BadMultiplier,
            K::BadMultiplier => K::BadCoefficient,
            K::BadCoefficient => K::OverflowPossible,
            K::OverflowPossible => K::OutputNotVector,
            K::OutputNotVector => K::TooManyClasses { found: 300 },
            K::TooManyClasses { .. } => K::ArenaTooLarge,
            K::ArenaTooLarge => K::NotCompiled {
                what: "sparse weight format",
                feature: "sparse-formats",
                found: 1,
            },
            K::NotCompiled { .. } => K::OffsetBiasMismatch,
            K::OffsetBiasMismatch => K::FeatureSpecOutOfBounds,
            K::FeatureSpecOutOfBounds => K::FeatureSpecMisaligned,
            K::FeatureSpecMisaligned => K::FeatureSpecLength { found: 12 },
            K::FeatureSpecLength { .. } => K::FeatureSpecOverlap,
            K::FeatureSpecOverlap => K::FeatureSpecListTooLong {
                field: SpecField::ReturnLagsMs,
                found: 9,
            },
            K::FeatureSpecListTooLong { .. } => K::FeatureSpecSlotNotZero {
                field: SpecField::VwapWindowsMs,
            },
            K::FeatureSpecSlotNotZero { .. } => K::BadFeatureSpec {
                error: FeatureSpecError(SpecError::SessionGap),
            },
            K::BadFeatureSpec { .. } => K::FeatureSpecCountMismatch {
                spec: 29,
                features: 3,
            },
            K::FeatureSpecCountMismatch { .. } => K::FeatureNameMismatch { index: 4 },
            K::FeatureNameMismatch { .. } => K::FeatureSpecInputKind { found: 7 },
            K::FeatureSpecInputKind { .. } => K::FeatureSpecListUnused {
                kind: crate::features::InputKind::Bars,
                index: 2,
            },
            K::FeatureSpecListUnused { .. } => return None,
        })
    }

    /// One kind of each variant, in declaration order.
    fn every_kind() -> Vec<BlobErrorKind> {
        let mut all = Vec::from([BlobErrorKind::Truncated]);
        while let Some(k) = all.last().and_then(next) {
            assert!(all.len() <= NAMES.len(), "the chain of `next` loops");
            all.push(k);
        }
        all
    }

    #[test]
    fn every_kind_has_its_own_name() {
        let all = every_kind();
        assert_eq!(all.len(), NAMES.len(), "one name per kind in `NAMES`");
        for (i, k) in all.iter().enumerate() {
            assert_eq!(k.index(), i, "{k:?} is kind {i} in declaration order");
            assert!(!k.name().is_empty(), "{k:?} has no name");
            assert!(
                !all[..i].iter().any(|o| o.name() == k.name()),
                "{k:?} shares its name {:?}",
                k.name()
            );
        }
    }

    #[test]
    fn every_message_holds_its_name() {
        for k in every_kind() {
            let text = k.to_string();
            assert!(
                text.contains(k.name()),
                "{text:?} does not name {:?}",
                k.name()
            );
            let err = BlobError {
                layer: Some(3),
                layer_kind: Some(LayerKind::Dense),
                offset: 200,
                kind: k,
            };
            let full = err.to_string();
            assert!(full.starts_with("layer 3 (Dense) at byte 200: "), "{full}");
            assert!(full.ends_with(&text), "{full:?} ends with {text:?}");
        }
    }
}

//! The blob encoder (feature `alloc`): an owned model description becomes blob bytes.
//!
//! The host quantizes a trained model into a [`ModelSpec`] and calls [`encode`], which computes the shape chain,
//! lays weights out in blocks, aligns sections, writes the metadata and the CRC, and finally checks the result with
//! [`Model::load`] so that it never returns a blob the loader would reject.
//!
//! ```
//! use tickq_core::encode::{encode, LayerSpec, ModelSpec, OpSpec};
//! use tickq_core::requant::QuantMultiplier;
//! use tickq_core::{Model, Session};
//!
//! // Two features, quantized with scale 1/16 (standardization folded into a and b), and a Dense layer that
//! // outputs their difference as two logits.
//! let q = QuantMultiplier::from_ratio(1.0).ok_or("ratio")?;
//! let spec = ModelSpec {
//!     name: "diff".into(),
//!     feature_names: vec!["a".into(), "b".into()],
//!     label_names: vec!["down".into(), "up".into()],
//!     data_hash: [0; 32],
//!     tickq_version: "0.1.0".into(),
//!     layers: vec![
//!         LayerSpec::new(OpSpec::Quantize { time_steps: 1, features: 2, a: vec![16.0; 2], b: vec![0.0; 2] }, 1.0 / 16.0, 0),
//!         LayerSpec::new(
//!             OpSpec::Dense {
//!                 out_features: 2,
//!                 in_features: 2,
//!                 weights: vec![-1, 1, 1, -1],
//!                 bias: vec![0, 0],
//!                 requant: vec![q, q],
//!             },
//!             1.0 / 16.0,
//!             0,
//!         ),
//!     ],
//!     feature_spec: None,
//! };
//! let blob = encode(&spec)?;
//! let model = Model::load(&blob)?;
//! let mut arena = vec![0u8; model.arena_bytes()];
//! let mut session = Session::new(&model, &mut arena)?;
//! let prediction = session.run(&[0.25, 1.0]);
//! assert_eq!(prediction.logits(), &[12, -12]);
//! assert_eq!(prediction.signal(), 0);
//! assert_eq!(prediction.score(0), 0.75);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

mod cost;
mod layouts;

pub use cost::{ParseTargetError, Target};

use crate::error::BlobError;
use crate::features::FeatureSpec;
pub use crate::format::Padding;
use crate::format::layout::nm;
use crate::format::shape::{Geometry, ShapeError, output_shape};
use crate::format::{
    self, ENTRY_LEN, HEADER_LEN, LayerKind, MAGIC, METADATA_ALIGN, NO_INPUT, SECTION_ALIGN,
    WeightLayout,
};
use crate::model::Model;
use crate::requant::QuantMultiplier;
use layouts::{
    PackedPlan, Rows, blocked_weights, column_bias, column_weights, dot_weights, dsp_weights,
    nm_fit, nm_weights, sparse_weights,
};

/// An owned description of a quantized model: what the host produces and [`encode`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The model name.
    pub name: String,
    /// One name per input feature.
    pub feature_names: Vec<String>,
    /// One name per class.
    pub label_names: Vec<String>,
    /// The SHA-256 of the training data.
    pub data_hash: [u8; 32],
    /// The tickq version that produced the model.
    pub tickq_version: String,
    /// The layers, in execution order; layer 0 must be [`OpSpec::Quantize`].
    pub layers: Vec<LayerSpec>,
    /// The feature spec the model's input comes from, written as the blob's feature-spec section (format
    /// version 5; `docs/BLOB.md`); `None` for a model fed feature vectors, whose blob keeps an older version.
    ///
    /// With a spec, `feature_names` must be its column names in order and the Quantize layer must take its
    /// [`feature_count`](FeatureSpec::feature_count) features: [`encode`] refuses the blob otherwise (with the
    /// loader's error).
    pub feature_spec: Option<FeatureSpec>,
}

/// One layer: an operation, its input, and the quantization of its output.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// The operation.
    pub op: OpSpec,
    /// The producing layer; `None` means the previous layer (or the model input for layer 0).
    pub input: Option<usize>,
    /// The output scale (finite, positive).
    pub out_scale: f32,
    /// The output zero point.
    pub out_zero_point: i8,
    /// The lower output clamp (`out_zero_point` for a fused ReLU, -128 for none).
    pub act_min: i8,
    /// The upper output clamp (127 for none).
    pub act_max: i8,
    /// `Some(bias_exponent)` marks a dynamically quantized layer (layer flag bit 0; the bias exponent is written
    /// for Dense and must be 0 elsewhere); `None` for a static one. See `docs/ARITHMETIC.md`.
    pub dynamic: Option<i8>,
}

impl LayerSpec {
    /// A layer reading the previous layer, with no fused activation (clamp to `[-128, 127]`).
    pub fn new(op: OpSpec, out_scale: f32, out_zero_point: i8) -> Self {
        LayerSpec {
            op,
            input: None,
            out_scale,
            out_zero_point,
            act_min: i8::MIN,
            act_max: i8::MAX,
            dynamic: None,
        }
    }
}

/// An operation and its parameters, already quantized.
#[derive(Debug, Clone, PartialEq)]
pub enum OpSpec {
    /// The input quantizer: `q = clamp(round(x * a[f] + b[f]))` per feature `f`, shared by all time steps.
    Quantize {
        /// The number of time steps `T`.
        time_steps: usize,
        /// The number of features `F`.
        features: usize,
        /// The per-feature multipliers.
        a: Vec<f32>,
        /// The per-feature offsets.
        b: Vec<f32>,
    },
    /// A fully connected layer.
    Dense {
        /// The number of outputs.
        out_features: usize,
        /// The number of inputs (the input vector's length).
        in_features: usize,
        /// The weights, `[out][in]` row-major, unpadded.
        weights: Vec<i8>,
        /// The effective bias per output (zero point folded in).
        bias: Vec<i32>,
        /// The requantization ratio per output.
        requant: Vec<QuantMultiplier>,
    },
    /// A 1-D convolution over time.
    Conv1d {
        /// The number of output channels.
        out_channels: usize,
        /// The number of input channels.
        in_channels: usize,
        /// The kernel size.
        kernel: usize,
        /// The stride.
        stride: usize,
        /// The dilation.
        dilation: usize,
        /// Valid or causal padding.
        padding: Padding,
        /// The weights, `[out][k][in]`, unpadded.
        weights: Vec<i8>,
        /// The effective bias per output channel.
        bias: Vec<i32>,
        /// The requantization ratio per output channel.
        requant: Vec<QuantMultiplier>,
    },
    /// An element-wise lookup table, indexed by `q_in + 128`.
    Lut {
        /// The table.
        table: [i8; 256],
    },
    /// Max pooling over time (the output keeps the input's quantization).
    MaxPool1d {
        /// The window length.
        kernel: usize,
        /// The stride.
        stride: usize,
    },
    /// Average pooling over time.
    AvgPool1d {
        /// The window length.
        kernel: usize,
        /// The stride.
        stride: usize,
        /// The ratio `in_scale / (out_scale * kernel)`.
        requant: QuantMultiplier,
    },
    /// The average over all time steps.
    GlobalAvgPool {
        /// The ratio `in_scale / (out_scale * T_in)`.
        requant: QuantMultiplier,
    },
    /// `(T, C)` to `(1, T*C)`, time-major (the output keeps the input's quantization).
    Flatten,
    /// A residual addition of this layer's input and `other`.
    Add {
        /// The layer producing the second input.
        other: usize,
        /// The integer weight of the first input.
        wa: i32,
        /// The integer weight of the second input.
        wb: i32,
        /// The ratio `s_max / (2^16 * out_scale)`.
        requant: QuantMultiplier,
    },
}

impl OpSpec {
    /// The kind of layer this operation becomes.
    pub fn kind(&self) -> LayerKind {
        match self {
            OpSpec::Quantize { .. } => LayerKind::Quantize,
            OpSpec::Dense { .. } => LayerKind::Dense,
            OpSpec::Conv1d { .. } => LayerKind::Conv1d,
            OpSpec::Lut { .. } => LayerKind::Lut,
            OpSpec::MaxPool1d { .. } => LayerKind::MaxPool1d,
            OpSpec::AvgPool1d { .. } => LayerKind::AvgPool1d,
            OpSpec::GlobalAvgPool { .. } => LayerKind::GlobalAvgPool,
            OpSpec::Flatten => LayerKind::Flatten,
            OpSpec::Add { .. } => LayerKind::Add,
        }
    }
}

/// Which weight format Dense and Conv1d layers get (see `docs/BLOB.md`): what a caller of the encoder *asks
/// for*.
///
/// A blob never stores this. Each concrete choice names one [`crate::format::WeightLayout`] (what a layer's
/// weight format byte records, and what the loader and kernels read), and the policies [`WeightFormat::Auto`],
/// [`WeightFormat::Dense`] and [`WeightFormat::Smallest`] pick a layout per layer, for the [`Target`] given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WeightFormat {
    /// Each layer gets the format the cost model estimates is fastest on the target, among those smaller and
    /// faster than the target's dense layout; the dense layout if none is.
    #[default]
    Auto,
    /// Every layer stores every weight in the dense layout the target runs fastest ([`Target::dense_layout`]):
    /// `dense-dot` on x86-64 and aarch64, `dense-dsp` for Cortex-M4 Dense layers, blocked otherwise.
    Dense,
    /// Every layer stores every weight in the blocked layout (weight format 0), which every tickq-core reads.
    Blocked,
    /// Every layer stores only its non-zero weights, by output channel, with one-byte input indices.
    Sparse,
    /// Every Dense layer stores only its non-zero weights, by input column, with one-byte row indices, so that
    /// inputs at their zero point are skipped; a Conv1d layer, a column segment with 256 non-zeros or an
    /// overflow bound that does not hold with the unfolded bias is an error.
    Columns,
    /// Like [`WeightFormat::Columns`], with bit-packed entries (row gaps and codebook indices in the fewest bits),
    /// for the smallest blobs; the same layers are errors.
    Packed,
    /// Each layer gets the format with the fewest bytes (ties go to the least estimated work): for flash-bound
    /// devices.
    Smallest,
    /// Every layer stores N:M weights with `m = 4` and the smallest `n` (1 to 3) its zeros allow; a layer whose
    /// row length is not a multiple of 4, or with a group of 4 non-zero weights, is an error.
    NM,
    /// Every Dense layer stores every weight in the `dense-dsp` layout (groups of 4 channels, words of 4 inputs),
    /// which the Cortex-M4 kernel multiplies with `SMLAD`; Conv1d and dynamic layers keep the blocked layout.
    DenseDsp,
    /// Every layer stores every weight in the `dense-dot` layout (blocks of 16 channels, groups of 4 inputs),
    /// which the x86-64 and aarch64 kernels multiply with dot-product instructions; dynamic layers keep the
    /// blocked layout.
    DenseDot,
}

impl WeightFormat {
    /// Every weight format, in the order `--help` lists them.
    pub const ALL: [WeightFormat; 10] = [
        WeightFormat::Auto,
        WeightFormat::Dense,
        WeightFormat::Smallest,
        WeightFormat::Blocked,
        WeightFormat::DenseDot,
        WeightFormat::DenseDsp,
        WeightFormat::Sparse,
        WeightFormat::Columns,
        WeightFormat::Packed,
        WeightFormat::NM,
    ];

    /// The name used on command lines: `auto`, `dense`, `smallest`, `blocked`, `dense-dot`, `dense-dsp`,
    /// `sparse`, `columns`, `packed` or `nm`.
    pub const fn name(self) -> &'static str {
        match self {
            WeightFormat::Auto => "auto",
            WeightFormat::Dense => "dense",
            WeightFormat::Blocked => "blocked",
            WeightFormat::Sparse => "sparse",
            WeightFormat::Columns => "columns",
            WeightFormat::Packed => "packed",
            WeightFormat::Smallest => "smallest",
            WeightFormat::NM => "nm",
            WeightFormat::DenseDsp => "dense-dsp",
            WeightFormat::DenseDot => "dense-dot",
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that is not one of [`WeightFormat::name`]'s was parsed as a [`WeightFormat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseWeightFormatError;

impl fmt::Display for ParseWeightFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "unknown weight format: use auto, dense, smallest, blocked, dense-dot, dense-dsp, sparse, columns, \
             packed or nm",
        )
    }
}

impl core::error::Error for ParseWeightFormatError {}

impl core::str::FromStr for WeightFormat {
    type Err = ParseWeightFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(WeightFormat::Auto),
            "dense" => Ok(WeightFormat::Dense),
            "sparse" => Ok(WeightFormat::Sparse),
            "columns" => Ok(WeightFormat::Columns),
            "packed" => Ok(WeightFormat::Packed),
            "smallest" => Ok(WeightFormat::Smallest),
            "nm" | "n:m" => Ok(WeightFormat::NM),
            "dense-dsp" => Ok(WeightFormat::DenseDsp),
            "dense-dot" => Ok(WeightFormat::DenseDot),
            "blocked" => Ok(WeightFormat::Blocked),
            _ => Err(ParseWeightFormatError),
        }
    }
}

/// Options of [`encode_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EncodeOptions {
    /// The weight format of Dense and Conv1d layers.
    pub weight_format: WeightFormat,
    /// The machine the blob is for: its dense layout, and what the cost model of [`WeightFormat::Auto`] counts
    /// as fast. The default is the machine the encoder runs on ([`Target::native`]).
    pub target: Target,
}

impl EncodeOptions {
    /// `weight_format` for the machine the encoder runs on.
    pub fn format(weight_format: WeightFormat) -> Self {
        EncodeOptions {
            weight_format,
            target: Target::native(),
        }
    }
}

/// Why a [`ModelSpec`] could not be encoded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The spec has no layers.
    NoLayers,
    /// The spec has more layers than the format can count.
    TooManyLayers {
        /// The number of layers.
        count: usize,
    },
    /// A layer reads a layer that is not earlier than itself.
    BadInput {
        /// The layer index.
        layer: usize,
        /// The input it names.
        input: usize,
    },
    /// A layer's input has a shape the operation cannot take.
    Shape {
        /// The layer index.
        layer: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A parameter vector has the wrong length for the declared dimensions.
    LengthMismatch {
        /// The layer index.
        layer: usize,
        /// The field name.
        field: &'static str,
        /// The length the dimensions imply.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A dimension or parameter does not fit its 16-bit field, or the blob exceeds 4 GiB.
    TooLarge {
        /// The layer index, if the problem belongs to a layer.
        layer: Option<usize>,
        /// The field name.
        field: &'static str,
    },
    /// A metadata string or list is longer than 65535 bytes or entries.
    MetadataTooLong {
        /// The field name.
        field: &'static str,
    },
    /// A forced weight format does not fit a layer's weights.
    WeightFormat {
        /// The layer index.
        layer: usize,
        /// The forced format.
        format: WeightFormat,
        /// What does not fit.
        reason: &'static str,
    },
    /// The encoded blob failed validation.
    Invalid(BlobError),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NoLayers => f.write_str("the model has no layers"),
            EncodeError::TooManyLayers { count } => write!(f, "too many layers ({count})"),
            EncodeError::BadInput { layer, input } => {
                write!(f, "layer {layer} reads layer {input}, which is not earlier")
            }
            EncodeError::Shape { layer, reason } => write!(f, "layer {layer}: {reason}"),
            EncodeError::LengthMismatch {
                layer,
                field,
                expected,
                found,
            } => write!(
                f,
                "layer {layer}: {field} has {found} values, expected {expected}"
            ),
            EncodeError::TooLarge {
                layer: Some(layer),
                field,
            } => write!(f, "layer {layer}: {field} is too large for the format"),
            EncodeError::TooLarge { layer: None, field } => {
                write!(f, "{field} is too large for the format")
            }
            EncodeError::MetadataTooLong { field } => write!(f, "metadata {field} is too long"),
            EncodeError::WeightFormat {
                layer,
                format,
                reason,
            } => write!(
                f,
                "layer {layer}: weight format {format} does not fit: {reason}"
            ),
            EncodeError::Invalid(err) => write!(f, "the encoded blob is invalid: {err}"),
        }
    }
}

impl core::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            EncodeError::Invalid(err) => Some(err),
            _ => None,
        }
    }
}

/// Encodes `spec` with the default options ([`WeightFormat::Auto`]) and checks the result with [`Model::load`].
///
/// # Errors
///
/// Returns an [`EncodeError`] if the spec is inconsistent or the resulting blob does not validate.
pub fn encode(spec: &ModelSpec) -> Result<Vec<u8>, EncodeError> {
    encode_with(spec, &EncodeOptions::default())
}

/// Encodes `spec` with `options` and checks the result with [`Model::load`].
///
/// # Errors
///
/// Returns an [`EncodeError`] if the spec is inconsistent, a forced weight format does not fit a layer
/// ([`EncodeError::WeightFormat`]), or the resulting blob does not validate.
pub fn encode_with(spec: &ModelSpec, options: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let bytes = encode_unvalidated_with(spec, options)?;
    Model::load(&bytes).map_err(EncodeError::Invalid)?;
    Ok(bytes)
}

/// Encodes `spec` without the final [`Model::load`] check.
///
/// The layout, shapes and lengths are still computed and checked, but values the loader would reject (an
/// `act_min` above `act_max`, weights that could overflow, too many layers, ...) are written as given.
/// This is meant for tests and fuzzing seeds that need invalid blobs.
///
/// # Errors
///
/// Returns an [`EncodeError`] if the spec's dimensions are inconsistent.
pub fn encode_unvalidated(spec: &ModelSpec) -> Result<Vec<u8>, EncodeError> {
    encode_unvalidated_with(spec, &EncodeOptions::default())
}

/// [`encode_unvalidated`] with `options`.
///
/// # Errors
///
/// Returns an [`EncodeError`] if the spec's dimensions are inconsistent or a forced weight format does not fit.
pub fn encode_unvalidated_with(
    spec: &ModelSpec,
    options: &EncodeOptions,
) -> Result<Vec<u8>, EncodeError> {
    let n = spec.layers.len();
    if n == 0 {
        return Err(EncodeError::NoLayers);
    }
    let count = u16::try_from(n)
        .ok()
        .filter(|&c| c != NO_INPUT)
        .ok_or(EncodeError::TooManyLayers { count: n })?;
    let table_end = HEADER_LEN + ENTRY_LEN * n;
    let mut out = alloc::vec![0u8; table_end];
    let mut shapes: Vec<(usize, usize)> = Vec::with_capacity(n);
    // The oldest version that holds every weight format used (3 at least, as blobs have been since version 3).
    let mut version = 3u16;

    for (i, layer) in spec.layers.iter().enumerate() {
        let mut e = [0u8; ENTRY_LEN];
        let input = match (i, layer.input) {
            (0, _) => None,
            (_, None) => Some(i - 1),
            (_, Some(j)) if j < i => Some(j),
            (_, Some(j)) => return Err(EncodeError::BadInput { layer: i, input: j }),
        };
        let in_shape = input.and_then(|j| shapes.get(j).copied()).unwrap_or((1, 1));
        let in_zp = input
            .and_then(|j| spec.layers.get(j))
            .map_or(0, |l| l.out_zero_point);
        let sections = write_layer(i, layer, (in_shape, in_zp), &mut e, options)?;
        if let Some(layout) = sections.layout {
            version = version.max(layout.min_version());
        }
        let geometry = Geometry {
            kind: layer.op.kind(),
            padding: Padding::from_code(e[format::entry::PADDING]).unwrap_or_default(),
            kernel: usize::from(format::read_u16(&e, format::entry::KERNEL)),
            stride: usize::from(format::read_u16(&e, format::entry::STRIDE)),
            dilation: usize::from(format::read_u16(&e, format::entry::DILATION)),
            channels: sections.channels,
            time: sections.time,
        };
        let shape = output_shape(&geometry, in_shape).map_err(|err| EncodeError::Shape {
            layer: i,
            reason: match err {
                ShapeError::NotVector => "Dense input is not a vector",
                ShapeError::WindowTooLarge => "window longer than the input",
                ShapeError::Zero => "zero size, kernel, stride or dilation",
            },
        })?;
        if let OpSpec::Add { other, .. } = layer.op {
            if other >= i {
                return Err(EncodeError::BadInput {
                    layer: i,
                    input: other,
                });
            }
            if shapes.get(other) != Some(&in_shape) {
                return Err(EncodeError::Shape {
                    layer: i,
                    reason: "Add inputs differ in shape",
                });
            }
        }
        let too_large = |field| EncodeError::TooLarge {
            layer: Some(i),
            field,
        };
        put_u16(
            &mut e,
            format::entry::INPUT_A,
            input
                .map_or(Ok(NO_INPUT), u16::try_from)
                .map_err(|_| too_large("input"))?,
        );
        let input_b = match layer.op {
            OpSpec::Add { other, .. } => u16::try_from(other).map_err(|_| too_large("input"))?,
            _ => NO_INPUT,
        };
        put_u16(&mut e, format::entry::INPUT_B, input_b);
        put_u16(
            &mut e,
            format::entry::OUT_TIME,
            u16::try_from(shape.0).map_err(|_| too_large("out_time"))?,
        );
        put_u16(
            &mut e,
            format::entry::OUT_CHANNELS,
            u16::try_from(shape.1).map_err(|_| too_large("out_channels"))?,
        );
        e[format::entry::OUT_ZERO_POINT] = layer.out_zero_point as u8;
        e[format::entry::ACT_MIN] = layer.act_min as u8;
        e[format::entry::ACT_MAX] = layer.act_max as u8;
        if let Some(bias_exponent) = layer.dynamic {
            e[format::entry::FLAGS] = 1;
            e[format::entry::BIAS_EXPONENT] = bias_exponent as u8;
        }
        e[format::entry::OUT_SCALE].copy_from_slice(&layer.out_scale.to_bits().to_le_bytes());
        for (data, off, len) in [
            (
                &sections.weights,
                format::entry::WEIGHTS_OFFSET,
                format::entry::WEIGHTS_LEN,
            ),
            (
                &sections.bias,
                format::entry::BIAS_OFFSET,
                format::entry::BIAS_LEN,
            ),
            (
                &sections.requant,
                format::entry::REQUANT_OFFSET,
                format::entry::REQUANT_LEN,
            ),
            (
                &sections.aux,
                format::entry::AUX_OFFSET,
                format::entry::AUX_LEN,
            ),
        ] {
            if data.is_empty() {
                continue;
            }
            pad_to(&mut out, SECTION_ALIGN);
            let start = u32::try_from(out.len()).map_err(|_| EncodeError::TooLarge {
                layer: None,
                field: "blob",
            })?;
            let length = u32::try_from(data.len()).map_err(|_| too_large("section"))?;
            out.extend_from_slice(data);
            put_u32(&mut e, off, start);
            put_u32(&mut e, len, length);
        }
        let base = HEADER_LEN + ENTRY_LEN * i;
        out[base..base + ENTRY_LEN].copy_from_slice(&e);
        shapes.push(shape);
    }

    let mut feature_spec_section = (0u32, 0u32);
    if let Some(feature_spec) = &spec.feature_spec {
        pad_to(&mut out, SECTION_ALIGN);
        let start = u32::try_from(out.len()).map_err(|_| EncodeError::TooLarge {
            layer: None,
            field: "blob",
        })?;
        out.extend_from_slice(&crate::load::feature_spec::to_bytes(feature_spec));
        feature_spec_section = (start, format::feature_spec::LEN as u32);
        version = version.max(format::FEATURE_SPEC_VERSION);
    }

    pad_to(&mut out, METADATA_ALIGN);
    let metadata_offset = out.len();
    put_string(&mut out, &spec.name, "name")?;
    put_list(&mut out, &spec.feature_names, "feature_names")?;
    put_list(&mut out, &spec.label_names, "label_names")?;
    out.extend_from_slice(&spec.data_hash);
    put_string(&mut out, &spec.tickq_version, "tickq_version")?;
    let metadata_len = out.len() - metadata_offset;

    let blob_too_large = EncodeError::TooLarge {
        layer: None,
        field: "blob",
    };
    let total = u32::try_from(out.len()).map_err(|_| blob_too_large.clone())?;
    out[format::header::MAGIC].copy_from_slice(&MAGIC);
    put_u16(&mut out, format::header::VERSION, version);
    put_u32(&mut out, format::header::TOTAL_LEN, total);
    put_u16(&mut out, format::header::LAYER_COUNT, count);
    put_u32(
        &mut out,
        format::header::LAYER_TABLE_OFFSET,
        HEADER_LEN as u32,
    );
    put_u32(
        &mut out,
        format::header::METADATA_OFFSET,
        u32::try_from(metadata_offset).map_err(|_| blob_too_large.clone())?,
    );
    put_u32(
        &mut out,
        format::header::METADATA_LEN,
        u32::try_from(metadata_len).map_err(|_| blob_too_large)?,
    );
    put_u32(
        &mut out,
        format::header::FEATURE_SPEC_OFFSET,
        feature_spec_section.0,
    );
    put_u32(
        &mut out,
        format::header::FEATURE_SPEC_LEN,
        feature_spec_section.1,
    );
    let crc = format::compute_crc(&out);
    put_u32(&mut out, format::header::CRC, crc);
    Ok(out)
}

/// Records `layout` in an encoded blob: sets or clears the header flag
/// [`FLAG_CHANNELS_FIRST`](format::header::FLAG_CHANNELS_FIRST) and rewrites the CRC. A time-major blob stays
/// byte for byte what [`encode`] wrote. Returns `false`, changing nothing, when `blob` is shorter than a
/// header.
pub fn set_input_layout(blob: &mut [u8], layout: crate::model::InputLayout) -> bool {
    if blob.len() < format::HEADER_LEN {
        return false;
    }
    let at = format::header::FLAGS.start;
    let mut flags = u16::from_le_bytes([blob[at], blob[at + 1]]);
    flags &= !format::header::FLAG_CHANNELS_FIRST;
    if layout == crate::model::InputLayout::ChannelsFirst {
        flags |= format::header::FLAG_CHANNELS_FIRST;
    }
    blob[at..at + 2].copy_from_slice(&flags.to_le_bytes());
    let crc = format::compute_crc(blob);
    blob[format::header::CRC].copy_from_slice(&crc.to_le_bytes());
    true
}

/// The section bytes of one layer, plus the dimensions its shape computation needs.
struct Sections {
    weights: Vec<u8>,
    bias: Vec<u8>,
    requant: Vec<u8>,
    aux: Vec<u8>,
    channels: usize,
    time: usize,
    /// The weight format written, for a weighted layer.
    layout: Option<WeightLayout>,
}

/// Writes the kind, padding and geometry fields of layer `i` and returns its sections.
fn write_layer(
    i: usize,
    layer: &LayerSpec,
    (in_shape, in_zp): ((usize, usize), i8),
    e: &mut [u8; ENTRY_LEN],
    options: &EncodeOptions,
) -> Result<Sections, EncodeError> {
    let (in_t, in_c) = in_shape;
    let mut s = Sections {
        weights: Vec::new(),
        bias: Vec::new(),
        requant: Vec::new(),
        aux: Vec::new(),
        channels: 0,
        time: 0,
        layout: None,
    };
    let check = |field: &'static str, expected: usize, found: usize| {
        if expected == found {
            Ok(())
        } else {
            Err(EncodeError::LengthMismatch {
                layer: i,
                field,
                expected,
                found,
            })
        }
    };
    let field16 = |field: &'static str, v: usize| {
        u16::try_from(v).map_err(|_| EncodeError::TooLarge {
            layer: Some(i),
            field,
        })
    };
    e[format::entry::KIND] = layer.op.kind().code();
    match &layer.op {
        OpSpec::Quantize {
            time_steps,
            features,
            a,
            b,
        } => {
            check("a", *features, a.len())?;
            check("b", *features, b.len())?;
            s.time = *time_steps;
            s.channels = *features;
            for v in a.iter().chain(b) {
                s.aux.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
        OpSpec::Dense {
            out_features,
            in_features,
            weights,
            bias,
            requant,
        } => {
            if in_t != 1 {
                return Err(EncodeError::Shape {
                    layer: i,
                    reason: "Dense input is not a vector",
                });
            }
            check("in_features", in_c, *in_features)?;
            check("weights", out_features * in_features, weights.len())?;
            s.channels = *out_features;
            let rows = Rows {
                row_len: *in_features,
                weights,
                bias,
                requant,
                dense_input_zp: Some(in_zp),
            };
            let choice = LayerChoice {
                format: options.weight_format,
                target: options.target,
                dense: true,
                dynamic: layer.dynamic.is_some(),
            };
            let layout = write_rows(&mut s, &rows, i, choice)?;
            put_layout(e, layout);
        }
        OpSpec::Conv1d {
            out_channels,
            in_channels,
            kernel,
            stride,
            dilation,
            padding,
            weights,
            bias,
            requant,
        } => {
            check("in_channels", in_c, *in_channels)?;
            check(
                "weights",
                out_channels * kernel * in_channels,
                weights.len(),
            )?;
            e[format::entry::PADDING] = padding.code();
            put_u16(e, format::entry::KERNEL, field16("kernel", *kernel)?);
            put_u16(e, format::entry::STRIDE, field16("stride", *stride)?);
            put_u16(e, format::entry::DILATION, field16("dilation", *dilation)?);
            s.channels = *out_channels;
            let rows = Rows {
                row_len: kernel * in_channels,
                weights,
                bias,
                requant,
                dense_input_zp: None,
            };
            let choice = LayerChoice {
                format: options.weight_format,
                target: options.target,
                dense: false,
                dynamic: layer.dynamic.is_some(),
            };
            let layout = write_rows(&mut s, &rows, i, choice)?;
            put_layout(e, layout);
        }
        OpSpec::Lut { table } => {
            s.aux.extend(table.iter().map(|&v| v as u8));
        }
        OpSpec::MaxPool1d { kernel, stride } => {
            put_u16(e, format::entry::KERNEL, field16("kernel", *kernel)?);
            put_u16(e, format::entry::STRIDE, field16("stride", *stride)?);
        }
        OpSpec::AvgPool1d {
            kernel,
            stride,
            requant,
        } => {
            put_u16(e, format::entry::KERNEL, field16("kernel", *kernel)?);
            put_u16(e, format::entry::STRIDE, field16("stride", *stride)?);
            put_requant(&mut s.requant, core::slice::from_ref(requant));
        }
        OpSpec::GlobalAvgPool { requant } => {
            put_requant(&mut s.requant, core::slice::from_ref(requant))
        }
        OpSpec::Flatten => {}
        OpSpec::Add {
            wa, wb, requant, ..
        } => {
            put_requant(&mut s.requant, core::slice::from_ref(requant));
            s.aux.extend_from_slice(&wa.to_le_bytes());
            s.aux.extend_from_slice(&wb.to_le_bytes());
        }
    }
    Ok(s)
}

/// Writes the weight format and N:M bytes of an entry.
fn put_layout(e: &mut [u8; ENTRY_LEN], layout: WeightLayout) {
    e[format::entry::WEIGHT_FORMAT] = layout.code();
    if let WeightLayout::NM { n, m } = layout {
        e[format::entry::NM_N] = n;
        e[format::entry::NM_M] = m;
    }
}

/// What decides a weighted layer's format besides its weights.
#[derive(Debug, Clone, Copy)]
struct LayerChoice {
    format: WeightFormat,
    target: Target,
    /// A Dense layer (the column and `dense-dsp` formats are Dense only).
    dense: bool,
    /// A dynamically quantized layer, whose kernel reads the blocked layout only.
    dynamic: bool,
}

/// Writes the weights (in the chosen format, see `docs/BLOB.md`), biases, per-channel multipliers and (for
/// `dense-dot`) the second bias, and returns the weight format written.
fn write_rows(
    s: &mut Sections,
    rows: &Rows<'_>,
    layer: usize,
    choice: LayerChoice,
) -> Result<WeightLayout, EncodeError> {
    let channels = s.channels;
    let (row_len, weights, bias, requant) = (rows.row_len, rows.weights, rows.bias, rows.requant);
    for (field, found) in [("bias", bias.len()), ("requant", requant.len())] {
        if found != channels {
            return Err(EncodeError::LengthMismatch {
                layer,
                field,
                expected: channels,
                found,
            });
        }
    }
    let format = choice.format;
    let dense = if choice.dynamic {
        WeightLayout::Blocked
    } else {
        choice.target.dense_layout(choice.dense)
    };
    let costs = choice.target.costs();
    let layout = match format {
        WeightFormat::Auto | WeightFormat::Smallest | WeightFormat::Dense if choice.dynamic => {
            WeightLayout::Blocked
        }
        WeightFormat::Auto => cost::choose(rows, channels, dense, costs),
        WeightFormat::Smallest => cost::choose_smallest(rows, channels, dense, costs),
        WeightFormat::Dense => dense,
        WeightFormat::Blocked => WeightLayout::Blocked,
        // Both are dense layouts, so a layer they do not suit keeps the blocked one.
        WeightFormat::DenseDot if choice.dynamic || !crate::DENSE_DOT => WeightLayout::Blocked,
        WeightFormat::DenseDot => WeightLayout::DenseDot,
        WeightFormat::DenseDsp if choice.dynamic || !choice.dense => WeightLayout::Blocked,
        WeightFormat::DenseDsp => WeightLayout::DenseDsp,
        WeightFormat::Packed => WeightLayout::Packed,
        WeightFormat::Sparse => WeightLayout::Sparse,
        WeightFormat::Columns => WeightLayout::Columns,
        WeightFormat::NM => WeightLayout::NM {
            n: nm_fit(weights, row_len).map_err(|reason| EncodeError::WeightFormat {
                layer,
                format,
                reason,
            })?,
            m: nm::M as u8,
        },
    };
    // The column formats' checks come first: their counts are one byte, so a column of 256 non-zeros must be
    // refused before it is packed.
    let stored_bias = if matches!(layout, WeightLayout::Columns | WeightLayout::Packed) {
        column_bias(rows).map_err(|reason| EncodeError::WeightFormat {
            layer,
            format: if layout == WeightLayout::Columns {
                WeightFormat::Columns
            } else {
                WeightFormat::Packed
            },
            reason,
        })?
    } else {
        bias.to_vec()
    };
    s.weights = match layout {
        WeightLayout::Blocked => blocked_weights(weights, channels, row_len),
        WeightLayout::DenseDsp => dsp_weights(weights, channels, row_len),
        WeightLayout::DenseDot => {
            let (w, offset_bias) = dot_weights(weights, bias, channels, row_len);
            s.aux = offset_bias;
            w
        }
        WeightLayout::Sparse => sparse_weights(weights, row_len),
        WeightLayout::NM { n, .. } => nm_weights(weights, row_len, usize::from(n)),
        WeightLayout::Columns => column_weights(weights, channels, row_len),
        WeightLayout::Packed => {
            PackedPlan::best(weights, channels, row_len).encode(weights, channels, row_len)
        }
    };
    for b in stored_bias {
        s.bias.extend_from_slice(&b.to_le_bytes());
    }
    put_requant(&mut s.requant, requant);
    s.layout = Some(layout);
    Ok(layout)
}

fn put_requant(out: &mut Vec<u8>, requant: &[QuantMultiplier]) {
    for m in requant {
        out.extend_from_slice(&m.multiplier().to_le_bytes());
    }
    out.extend(requant.iter().map(QuantMultiplier::right_shift));
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    out.resize(out.len().next_multiple_of(align), 0);
}

fn put_u16(out: &mut [u8], range: core::ops::Range<usize>, v: u16) {
    out[range].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut [u8], range: core::ops::Range<usize>, v: u32) {
    out[range].copy_from_slice(&v.to_le_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &str, field: &'static str) -> Result<(), EncodeError> {
    let len = u16::try_from(s.len()).map_err(|_| EncodeError::MetadataTooLong { field })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_list(out: &mut Vec<u8>, list: &[String], field: &'static str) -> Result<(), EncodeError> {
    let count = u16::try_from(list.len()).map_err(|_| EncodeError::MetadataTooLong { field })?;
    out.extend_from_slice(&count.to_le_bytes());
    for s in list {
        put_string(out, s, field)?;
    }
    Ok(())
}

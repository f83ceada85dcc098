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

use crate::blob::{
    self, ENTRY_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC, METADATA_ALIGN, NO_INPUT, SECTION_ALIGN,
};
use crate::error::BlobError;
pub use crate::model::Padding;
use crate::model::{
    BLOCK, Geometry, LayerKind, Model, NM_M, PACKED_PAD, ROW_SEGMENT, SEGMENT, ShapeError,
    WeightLayout, blocked_index, dense_weights_len, max_input_deviation, nm_index_bytes,
    output_shape, row_segments, segment_width, sparse_segments,
};
use crate::requant::QuantMultiplier;

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

/// Which weight format Dense and Conv1d layers get (see `docs/BLOB.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WeightFormat {
    /// Each layer gets the format the cost model estimates is fastest, among those smaller than dense.
    #[default]
    Auto,
    /// Every layer stores every weight in the blocked layout.
    Dense,
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
}

impl WeightFormat {
    /// The name used on command lines: `auto`, `dense`, `sparse`, `columns`, `packed`, `smallest`, `nm` or
    /// `dense-dsp`.
    pub const fn name(self) -> &'static str {
        match self {
            WeightFormat::Auto => "auto",
            WeightFormat::Dense => "dense",
            WeightFormat::Sparse => "sparse",
            WeightFormat::Columns => "columns",
            WeightFormat::Packed => "packed",
            WeightFormat::Smallest => "smallest",
            WeightFormat::NM => "nm",
            WeightFormat::DenseDsp => "dense-dsp",
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that is not `auto`, `dense`, `sparse`, `columns`, `packed`, `smallest`, `nm` or `dense-dsp` was
/// parsed as a [`WeightFormat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseWeightFormatError;

impl fmt::Display for ParseWeightFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "unknown weight format: use auto, dense, sparse, columns, packed, smallest, nm or dense-dsp",
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
            _ => Err(ParseWeightFormatError),
        }
    }
}

/// Options of [`encode_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EncodeOptions {
    /// The weight format of Dense and Conv1d layers.
    pub weight_format: WeightFormat,
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
        let sections = write_layer(i, layer, (in_shape, in_zp), &mut e, options.weight_format)?;
        let geometry = Geometry {
            kind: layer.op.kind(),
            padding: Padding::from_code(e[blob::entry::PADDING]).unwrap_or_default(),
            kernel: usize::from(blob::read_u16(&e, blob::entry::KERNEL)),
            stride: usize::from(blob::read_u16(&e, blob::entry::STRIDE)),
            dilation: usize::from(blob::read_u16(&e, blob::entry::DILATION)),
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
            blob::entry::INPUT_A,
            input
                .map_or(Ok(NO_INPUT), u16::try_from)
                .map_err(|_| too_large("input"))?,
        );
        let input_b = match layer.op {
            OpSpec::Add { other, .. } => u16::try_from(other).map_err(|_| too_large("input"))?,
            _ => NO_INPUT,
        };
        put_u16(&mut e, blob::entry::INPUT_B, input_b);
        put_u16(
            &mut e,
            blob::entry::OUT_TIME,
            u16::try_from(shape.0).map_err(|_| too_large("out_time"))?,
        );
        put_u16(
            &mut e,
            blob::entry::OUT_CHANNELS,
            u16::try_from(shape.1).map_err(|_| too_large("out_channels"))?,
        );
        e[blob::entry::OUT_ZERO_POINT] = layer.out_zero_point as u8;
        e[blob::entry::ACT_MIN] = layer.act_min as u8;
        e[blob::entry::ACT_MAX] = layer.act_max as u8;
        if let Some(bias_exponent) = layer.dynamic {
            e[blob::entry::FLAGS] = 1;
            e[blob::entry::BIAS_EXPONENT] = bias_exponent as u8;
        }
        e[blob::entry::OUT_SCALE].copy_from_slice(&layer.out_scale.to_bits().to_le_bytes());
        for (data, off, len) in [
            (
                &sections.weights,
                blob::entry::WEIGHTS_OFFSET,
                blob::entry::WEIGHTS_LEN,
            ),
            (
                &sections.bias,
                blob::entry::BIAS_OFFSET,
                blob::entry::BIAS_LEN,
            ),
            (
                &sections.requant,
                blob::entry::REQUANT_OFFSET,
                blob::entry::REQUANT_LEN,
            ),
            (&sections.aux, blob::entry::AUX_OFFSET, blob::entry::AUX_LEN),
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
    out[blob::header::MAGIC].copy_from_slice(&MAGIC);
    put_u16(&mut out, blob::header::VERSION, FORMAT_VERSION);
    put_u32(&mut out, blob::header::TOTAL_LEN, total);
    put_u16(&mut out, blob::header::LAYER_COUNT, count);
    put_u32(
        &mut out,
        blob::header::LAYER_TABLE_OFFSET,
        HEADER_LEN as u32,
    );
    put_u32(
        &mut out,
        blob::header::METADATA_OFFSET,
        u32::try_from(metadata_offset).map_err(|_| blob_too_large.clone())?,
    );
    put_u32(
        &mut out,
        blob::header::METADATA_LEN,
        u32::try_from(metadata_len).map_err(|_| blob_too_large)?,
    );
    let crc = blob::compute_crc(&out);
    put_u32(&mut out, blob::header::CRC, crc);
    Ok(out)
}

/// The section bytes of one layer, plus the dimensions its shape computation needs.
struct Sections {
    weights: Vec<u8>,
    bias: Vec<u8>,
    requant: Vec<u8>,
    aux: Vec<u8>,
    channels: usize,
    time: usize,
}

/// Writes the kind, padding and geometry fields of layer `i` and returns its sections.
fn write_layer(
    i: usize,
    layer: &LayerSpec,
    (in_shape, in_zp): ((usize, usize), i8),
    e: &mut [u8; ENTRY_LEN],
    format: WeightFormat,
) -> Result<Sections, EncodeError> {
    let (in_t, in_c) = in_shape;
    let mut s = Sections {
        weights: Vec::new(),
        bias: Vec::new(),
        requant: Vec::new(),
        aux: Vec::new(),
        channels: 0,
        time: 0,
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
    e[blob::entry::KIND] = layer.op.kind().code();
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
            // The dynamic Dense kernel reads the blocked layout only.
            let format = match format {
                WeightFormat::DenseDsp if layer.dynamic.is_some() => WeightFormat::Dense,
                f => f,
            };
            let rows = Rows {
                row_len: *in_features,
                weights,
                bias,
                requant,
                dense_input_zp: Some(in_zp),
            };
            let layout = write_rows(&mut s, &rows, i, format)?;
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
            e[blob::entry::PADDING] = padding.code();
            put_u16(e, blob::entry::KERNEL, field16("kernel", *kernel)?);
            put_u16(e, blob::entry::STRIDE, field16("stride", *stride)?);
            put_u16(e, blob::entry::DILATION, field16("dilation", *dilation)?);
            s.channels = *out_channels;
            // `dense-dsp` is a Dense-only layout.
            let format = match format {
                WeightFormat::DenseDsp => WeightFormat::Dense,
                f => f,
            };
            let rows = Rows {
                row_len: kernel * in_channels,
                weights,
                bias,
                requant,
                dense_input_zp: None,
            };
            let layout = write_rows(&mut s, &rows, i, format)?;
            put_layout(e, layout);
        }
        OpSpec::Lut { table } => {
            s.aux.extend(table.iter().map(|&v| v as u8));
        }
        OpSpec::MaxPool1d { kernel, stride } => {
            put_u16(e, blob::entry::KERNEL, field16("kernel", *kernel)?);
            put_u16(e, blob::entry::STRIDE, field16("stride", *stride)?);
        }
        OpSpec::AvgPool1d {
            kernel,
            stride,
            requant,
        } => {
            put_u16(e, blob::entry::KERNEL, field16("kernel", *kernel)?);
            put_u16(e, blob::entry::STRIDE, field16("stride", *stride)?);
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
    e[blob::entry::WEIGHT_FORMAT] = layout.code();
    if let WeightLayout::NM { n, m } = layout {
        e[blob::entry::NM_N] = n;
        e[blob::entry::NM_M] = m;
    }
}

/// Cost-model weights, in tenths of a nanosecond per unit of work of each kernel.
///
/// They were fitted to the wide shape of `benches/sparse.rs` (dense, and sparse at 90 and 95 % zeros) on the
/// x86-64 baseline (SSE2) build; only their ratios matter, and `docs/BLOB.md` explains them.
mod cost {
    /// One step of a dense block (2 inputs times 16 channels, vectorized), requantization included.
    pub(super) const DENSE_STEP: u64 = 26;
    /// One stored sparse weight: an index load, a gather, a multiply-add.
    pub(super) const SPARSE_VALUE: u64 = 4;
    /// One (channel, segment) of a sparse row: the count, the loop set-up and its mispredicted exit.
    pub(super) const SPARSE_SEGMENT: u64 = 25;
    /// One stored N:M weight on the 2:4 and 1:4 fast paths.
    pub(super) const NM_VALUE: u64 = 4;
    /// One stored N:M weight on the general path (3:4).
    pub(super) const NM_VALUE_GENERAL: u64 = 12;
    /// One stored column-sparse weight: a pair load and a scatter multiply-add (measured 0.16 ns per stored
    /// weight with about half of the hidden activations at zero, so a little more when none are).
    pub(super) const COLUMN_VALUE: u64 = 2;
    /// One (row segment, input) of a column-sparse layer: the count, the zero test and the loop set-up.
    pub(super) const COLUMN: u64 = 7;
    /// One output channel of a column-sparse layer: the bias load and the requantization.
    pub(super) const COLUMN_CHANNEL: u64 = 15;
    /// One packed entry (fillers included): an unaligned 8-byte read, two masks and the scatter multiply-add.
    pub(super) const PACKED_ENTRY: u64 = 6;
}

/// The estimated size and work of one weight format for one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Estimate {
    layout: WeightLayout,
    bytes: u64,
    work: u64,
}

/// The smallest `n` for which every group of 4 weights of every row has at most `n` non-zeros, if the rows split
/// into groups of 4 and some `n < 4` fits.
fn nm_fit(weights: &[i8], row_len: usize) -> Result<u8, &'static str> {
    if row_len == 0 || !row_len.is_multiple_of(NM_M) {
        return Err("the row length is not a multiple of 4");
    }
    let most = weights
        .chunks_exact(NM_M)
        .map(|g| g.iter().filter(|&&w| w != 0).count())
        .max()
        .unwrap_or(0);
    if most >= NM_M {
        return Err("a group of 4 weights has 4 non-zeros");
    }
    Ok(most.max(1) as u8)
}

/// A Dense or Conv1d layer's weight data, as the encoder receives it.
struct Rows<'a> {
    /// The weights per output channel.
    row_len: usize,
    /// Row-major int8 weights, `channels * row_len`.
    weights: &'a [i8],
    /// The effective biases (input zero point folded in).
    bias: &'a [i32],
    /// The per-channel multipliers.
    requant: &'a [QuantMultiplier],
    /// For a Dense layer, the zero point of its input (what the column format needs); `None` for Conv1d.
    dense_input_zp: Option<i8>,
}

/// The column format's biases (`b_eff[o] + zp * sum_j w[o][j]`), or why the layer cannot use the format: it is
/// not Dense, a column segment has 256 non-zeros, or a channel's overflow bound fails with the unfolded bias.
fn column_bias(rows: &Rows<'_>) -> Result<Vec<i32>, &'static str> {
    let zp = rows
        .dense_input_zp
        .ok_or("the column format is for Dense layers only")?;
    let row_len = rows.row_len;
    if row_len == 0 {
        return Ok(rows.bias.to_vec());
    }
    for segment in rows.weights.chunks(ROW_SEGMENT * row_len) {
        for j in 0..row_len {
            let column = segment
                .chunks_exact(row_len)
                .filter(|row| row[j] != 0)
                .count();
            if column > usize::from(u8::MAX) {
                return Err("a column of 256 channels has no zero weight");
            }
        }
    }
    let deviation = max_input_deviation(zp);
    rows.weights
        .chunks_exact(row_len)
        .zip(rows.bias)
        .map(|(row, &b)| {
            let sum: i64 = row.iter().map(|&w| i64::from(w)).sum();
            let abs: u64 = row.iter().map(|&w| u64::from(w.unsigned_abs())).sum();
            let unfolded = i64::from(b) + i64::from(zp) * sum;
            if deviation * abs + unfolded.unsigned_abs() >= 1 << 31 {
                return Err("the overflow bound fails with the bias unfolded");
            }
            i32::try_from(unfolded).map_err(|_| "the unfolded bias does not fit i32")
        })
        .collect()
}

/// The estimates of every format that fits the layer, dense first.
fn estimates(rows: &Rows<'_>, channels: usize) -> Vec<Estimate> {
    let (weights, row_len) = (rows.weights, rows.row_len);
    let (c, k) = (channels as u64, row_len as u64);
    // The tail block stores only its channels, but its steps cost about as much as a full block's (the kernel's
    // tail loop is not vectorized across a fixed width), so the work still counts whole blocks.
    let blocks = channels.div_ceil(BLOCK) as u64;
    let mut out = alloc::vec![Estimate {
        layout: WeightLayout::Dense,
        bytes: dense_weights_len(channels, row_len, channels % BLOCK),
        work: blocks * k.div_ceil(2) * cost::DENSE_STEP,
    }];
    let nnz = weights.iter().filter(|&&w| w != 0).count() as u64;
    let segments = sparse_segments(row_len) as u64;
    out.push(Estimate {
        layout: WeightLayout::Sparse,
        bytes: c * segments + 2 * nnz,
        work: nnz * cost::SPARSE_VALUE + c * segments * cost::SPARSE_SEGMENT,
    });
    if column_bias(rows).is_ok() {
        let columns = row_segments(channels) as u64 * k;
        let fixed = columns * cost::COLUMN + c * cost::COLUMN_CHANNEL;
        out.push(Estimate {
            layout: WeightLayout::Columns,
            bytes: columns + 2 * nnz,
            work: nnz * cost::COLUMN_VALUE + fixed,
        });
        let plan = PackedPlan::best(weights, channels, row_len);
        out.push(Estimate {
            layout: WeightLayout::Packed,
            bytes: plan.bytes(columns),
            work: plan.entries * cost::PACKED_ENTRY + fixed,
        });
    }
    if let Ok(n) = nm_fit(weights, row_len) {
        let entries = (row_len / NM_M) as u64 * u64::from(n);
        let per_value = if n <= 2 {
            cost::NM_VALUE
        } else {
            cost::NM_VALUE_GENERAL
        };
        out.push(Estimate {
            layout: WeightLayout::NM { n, m: NM_M as u8 },
            bytes: c * (entries + nm_index_bytes(entries as usize) as u64),
            work: c * entries * per_value,
        });
    }
    out
}

/// The cost model of [`WeightFormat::Auto`]: the format with the least estimated work among those that are both
/// smaller and estimated faster than dense (ties go to fewer bytes); dense if there is none.
fn choose(rows: &Rows<'_>, channels: usize) -> WeightLayout {
    let all = estimates(rows, channels);
    let Some(&dense) = all.first() else {
        return WeightLayout::Dense;
    };
    all.iter()
        .filter(|e| e.bytes < dense.bytes && e.work < dense.work)
        .min_by_key(|e| (e.work, e.bytes))
        .map_or(WeightLayout::Dense, |e| e.layout)
}

/// The format of [`WeightFormat::Smallest`]: the fewest bytes, then the least estimated work.
fn choose_smallest(rows: &Rows<'_>, channels: usize) -> WeightLayout {
    estimates(rows, channels)
        .iter()
        .min_by_key(|e| (e.bytes, e.work))
        .map_or(WeightLayout::Dense, |e| e.layout)
}

/// The widths of a packed weights section and what they cost: a row gap of `gap_bits`, a codebook index of
/// `code_bits`, `entries` entries (non-zeros plus fillers) and a codebook of `book` values.
#[derive(Debug, Clone)]
struct PackedPlan {
    gap_bits: u32,
    code_bits: u32,
    entries: u64,
    book: Vec<i8>,
}

impl PackedPlan {
    /// The bytes of the section with `columns` counts: header, codebook, counts, stream and padding.
    fn bytes(&self, columns: u64) -> u64 {
        let width = u64::from(self.gap_bits + self.code_bits);
        4 + self.book.len() as u64
            + columns
            + (self.entries * width).div_ceil(8)
            + PACKED_PAD as u64
    }

    /// The gaps between successive non-zeros of every (row segment, column), each as `row - previous - 1`.
    fn gaps(weights: &[i8], channels: usize, row_len: usize) -> Vec<usize> {
        let mut gaps = Vec::new();
        for segment in weights.chunks(ROW_SEGMENT * row_len) {
            for j in 0..row_len {
                let mut next = 0usize;
                for (row, w) in segment.chunks_exact(row_len).enumerate() {
                    if w[j] != 0 {
                        gaps.push(row - next);
                        next = row + 1;
                    }
                }
            }
        }
        debug_assert!(channels == 0 || !weights.is_empty() || gaps.is_empty());
        gaps
    }

    /// The widths with the fewest bytes for these weights.
    fn best(weights: &[i8], channels: usize, row_len: usize) -> PackedPlan {
        let gaps = Self::gaps(weights, channels, row_len);
        let mut values: Vec<i8> = weights.iter().copied().filter(|&w| w != 0).collect();
        values.sort_unstable();
        values.dedup();
        (1..=8u32)
            .map(|gap_bits| {
                let fillers: u64 = gaps.iter().map(|&g| (g >> gap_bits) as u64).sum();
                let mut book = values.clone();
                if fillers > 0 {
                    book.push(0);
                    book.sort_unstable();
                }
                let code_bits = (usize::BITS - (book.len().max(2) - 1).leading_zeros()).max(1);
                PackedPlan {
                    gap_bits,
                    code_bits,
                    entries: gaps.len() as u64 + fillers,
                    book,
                }
            })
            .min_by_key(|p| (p.bytes(0), p.gap_bits))
            .unwrap_or(PackedPlan {
                gap_bits: 1,
                code_bits: 1,
                entries: 0,
                book: Vec::new(),
            })
    }

    /// The section: header, codebook, counts per (row segment, column), then the entries packed LSB first.
    fn encode(&self, weights: &[i8], channels: usize, row_len: usize) -> Vec<u8> {
        let book: Vec<i8> = if self.book.is_empty() {
            alloc::vec![0]
        } else {
            self.book.clone()
        };
        let mut out = alloc::vec![
            self.gap_bits as u8,
            self.code_bits as u8,
            (book.len() - 1) as u8,
            0
        ];
        out.extend(book.iter().map(|&v| v as u8));
        let (mut counts, mut bits) = (Vec::new(), BitWriter::default());
        let code = |v: i8| book.binary_search(&v).unwrap_or(0) as u64;
        let max_gap = (1usize << self.gap_bits) - 1;
        let width = self.gap_bits + self.code_bits;
        if row_len > 0 {
            for segment in weights.chunks(ROW_SEGMENT * row_len) {
                for j in 0..row_len {
                    let mut entries = 0u8;
                    let mut next = 0usize;
                    for (row, w) in segment.chunks_exact(row_len).enumerate() {
                        if w[j] == 0 {
                            continue;
                        }
                        while row - next > max_gap {
                            bits.put(max_gap as u64 | code(0) << self.gap_bits, width);
                            next += max_gap + 1;
                            entries += 1;
                        }
                        bits.put((row - next) as u64 | code(w[j]) << self.gap_bits, width);
                        next = row + 1;
                        entries += 1;
                    }
                    counts.push(entries);
                }
            }
        }
        debug_assert_eq!(counts.len(), row_segments(channels) * row_len);
        out.extend(counts);
        out.extend(bits.finish());
        out.extend([0u8; PACKED_PAD]);
        out
    }
}

/// Packs values of up to 16 bits, least significant bit first.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: u64,
    len: u32,
}

impl BitWriter {
    fn put(&mut self, value: u64, width: u32) {
        self.bits |= value << self.len;
        self.len += width;
        while self.len >= 8 {
            self.bytes.push(self.bits as u8);
            self.bits >>= 8;
            self.len -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.bytes.push(self.bits as u8);
        }
        self.bytes
    }
}

/// Writes the weights (in the chosen format, see `docs/BLOB.md`), biases and per-channel multipliers, and
/// returns the weight format written.
fn write_rows(
    s: &mut Sections,
    rows: &Rows<'_>,
    layer: usize,
    format: WeightFormat,
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
    let layout = match format {
        // A build without `sparse-formats` could not load what they would pick, so they keep to dense.
        WeightFormat::Auto if !crate::SPARSE_FORMATS => WeightLayout::Dense,
        WeightFormat::Smallest if !crate::SPARSE_FORMATS => WeightLayout::Dense,
        WeightFormat::Auto => choose(rows, channels),
        WeightFormat::Smallest => choose_smallest(rows, channels),
        WeightFormat::Packed => WeightLayout::Packed,
        WeightFormat::Dense => WeightLayout::Dense,
        WeightFormat::Sparse => WeightLayout::Sparse,
        WeightFormat::Columns => WeightLayout::Columns,
        WeightFormat::NM => WeightLayout::NM {
            n: nm_fit(weights, row_len).map_err(|reason| EncodeError::WeightFormat {
                layer,
                format,
                reason,
            })?,
            m: NM_M as u8,
        },
        WeightFormat::DenseDsp => WeightLayout::DenseDsp,
    };
    s.weights = match layout {
        WeightLayout::Dense => blocked_weights(weights, channels, row_len),
        WeightLayout::DenseDsp => dsp_weights(weights, channels, row_len),
        WeightLayout::Sparse => sparse_weights(weights, row_len),
        WeightLayout::NM { n, .. } => nm_weights(weights, row_len, usize::from(n)),
        WeightLayout::Columns => column_weights(weights, channels, row_len),
        WeightLayout::Packed => {
            PackedPlan::best(weights, channels, row_len).encode(weights, channels, row_len)
        }
    };
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
    for b in stored_bias {
        s.bias.extend_from_slice(&b.to_le_bytes());
    }
    put_requant(&mut s.requant, requant);
    Ok(layout)
}

/// The version 2 blocked layout: full blocks of 16 channels, then a tail block of the last `channels % 16`
/// channels (if any) with `2 * (channels % 16)`-byte steps; the padding input of odd rows stays zero.
fn blocked_weights(weights: &[i8], channels: usize, row_len: usize) -> Vec<u8> {
    // The caller checked `weights.len() == channels * row_len`.
    let len = dense_weights_len(channels, row_len, channels % BLOCK);
    let mut out = alloc::vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    if row_len > 0 {
        for (o, row) in weights.chunks_exact(row_len).enumerate() {
            for (k, &w) in row.iter().enumerate() {
                out[blocked_index(o, k, row_len, channels)] = w as u8;
            }
        }
    }
    out
}

/// The `dense-dsp` layout (`kernels_dsp`): groups of 4 channels interleaved by words of 4 inputs, then the last
/// `channels % 4` channels as plain rows; every row padded with zeros to a multiple of 4.
fn dsp_weights(weights: &[i8], channels: usize, row_len: usize) -> Vec<u8> {
    let len = crate::kernels_dsp::weights_len(channels, row_len);
    let mut out = alloc::vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    if row_len > 0 {
        for (o, row) in weights.chunks_exact(row_len).enumerate() {
            for (k, &w) in row.iter().enumerate() {
                out[crate::kernels_dsp::index(o, k, row_len, channels)] = w as u8;
            }
        }
    }
    out
}

/// The sparse layout: per channel and segment a count, then all indices, then all values, in the same order.
fn sparse_weights(weights: &[i8], row_len: usize) -> Vec<u8> {
    let (mut counts, mut indices, mut values) = (Vec::new(), Vec::new(), Vec::new());
    if row_len > 0 {
        for row in weights.chunks_exact(row_len) {
            for (seg, part) in row.chunks(SEGMENT).enumerate() {
                debug_assert_eq!(part.len(), segment_width(row_len, seg));
                let before = indices.len();
                for (i, &w) in part.iter().enumerate() {
                    if w != 0 {
                        indices.push(i as u8);
                        values.push(w as u8);
                    }
                }
                counts.push((indices.len() - before) as u8);
            }
        }
    }
    counts.extend(indices);
    counts.extend(values);
    counts
}

/// The column layout: per 256-channel row segment and input column a count, then per segment and column the
/// `(row in segment, value)` pairs of the non-zero weights, rows increasing.
fn column_weights(weights: &[i8], channels: usize, row_len: usize) -> Vec<u8> {
    let (mut counts, mut pairs) = (Vec::new(), Vec::new());
    if row_len > 0 {
        for segment in weights.chunks(ROW_SEGMENT * row_len) {
            for j in 0..row_len {
                let before = pairs.len();
                for (row, w) in segment.chunks_exact(row_len).enumerate() {
                    if w[j] != 0 {
                        pairs.push(row as u8);
                        pairs.push(w[j] as u8);
                    }
                }
                counts.push(((pairs.len() - before) / 2) as u8);
            }
        }
    }
    debug_assert_eq!(counts.len(), row_segments(channels) * row_len);
    counts.extend(pairs);
    counts
}

/// The N:M layout (`m = 4`): all channels' values, then all channels' 2-bit index streams.
///
/// A group with fewer than `n` non-zeros is filled with zero weights at its lowest unused positions, so every
/// group stores exactly `n` entries with strictly increasing indices.
fn nm_weights(weights: &[i8], row_len: usize, n: usize) -> Vec<u8> {
    let (mut values, mut indices) = (Vec::new(), Vec::new());
    if row_len > 0 {
        for row in weights.chunks_exact(row_len) {
            let mut stream = alloc::vec![0u8; nm_index_bytes(row_len / NM_M * n)];
            let mut e = 0usize;
            for group in row.chunks_exact(NM_M) {
                let nonzero = group.iter().filter(|&&w| w != 0).count();
                let mut fill = n.saturating_sub(nonzero);
                for (k, &w) in group.iter().enumerate() {
                    let keep = w != 0
                        || (fill > 0 && {
                            fill -= 1;
                            true
                        });
                    if keep {
                        values.push(w as u8);
                        stream[e / 4] |= (k as u8) << (2 * (e % 4));
                        e += 1;
                    }
                }
            }
            indices.extend(stream);
        }
    }
    values.extend(indices);
    values
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

//! Calibration and static int8 quantization: an f32 [`Sequential`] plus a
//! calibration set becomes a [`tickq_core::encode::ModelSpec`] and a blob.
//!
//! The arithmetic the blob encodes is fixed by `docs/ARITHMETIC.md`:
//! per-output-channel symmetric int8 weights, per-tensor affine int8
//! activations, int32 effective biases (input zero point folded in) and one
//! Q31 requantization multiplier per output channel.
//! Activation functions that follow a Dense or Conv1d layer are fused into its
//! requantization clamp; other element-wise functions become 256-entry tables.
//!
//! Backends ([`Backend`]) change only the parameters, never the core's
//! arithmetic: `reduce_range` narrows activations to -64..=63, and `fpga` rounds
//! every scale up to a power of two so that each requantization multiplier is
//! exactly 2^30 (a pure rounding shift).

pub mod config;
pub mod dynamic;
pub mod observer;
pub mod sensitivity;

use ndarray::{ArrayView2, Axis};
use tickq_core::encode::{self, LayerSpec, ModelSpec, OpSpec};
use tickq_core::requant::QuantMultiplier;

use crate::model::{Layer, Sequential, Tensor};
pub use config::{Backend, QuantConfig, QuantDtype};
pub use dynamic::ModelQuantizer;
use observer::{Observer, Range};

/// Calibration batches are traced this many samples at a time (the
/// moving-average observer sees one update per batch).
pub const CALIBRATION_BATCH: usize = 256;

/// Fewer calibration samples than this is an error.
pub const MIN_CALIBRATION_SAMPLES: usize = 8;

/// Fewer calibration samples than this gives a warning.
pub const FEW_CALIBRATION_SAMPLES: usize = 256;

/// What went wrong while quantizing.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// The quantization config is invalid or asks for something unsupported.
    #[error("quantization config: {0}")]
    Config(String),
    /// The calibration data cannot be used.
    #[error("calibration data: {0}")]
    Calibration(String),
    /// A layer cannot be represented in tickq-core's int8 arithmetic.
    #[error("layer {index} ({name}): {reason}")]
    Layer {
        /// Index of the layer in the f32 model.
        index: usize,
        /// Its name or kind.
        name: String,
        /// What is wrong and what to change.
        reason: String,
    },
    /// The blob encoder rejected the quantized model.
    #[error("blob encoding")]
    Encode(#[source] tickq_core::encode::EncodeError),
    /// The encoded blob did not pass tickq-core's validation (a bug in tickq).
    #[error("the exported blob does not load in tickq-core")]
    Load(#[source] tickq_core::BlobError),
}

/// What the blob records about the model's input and provenance.
#[derive(Debug, Clone)]
pub struct ExportInfo {
    /// Model name stored in the blob metadata.
    pub name: String,
    /// One name per input feature.
    pub feature_names: Vec<String>,
    /// One name per output class.
    pub label_names: Vec<String>,
    /// Per-feature mean used for standardization (folded into the input quantizer).
    pub mean: Vec<f32>,
    /// Per-feature standard deviation used for standardization.
    pub std: Vec<f32>,
    /// SHA-256 of the training data file.
    pub data_hash: [u8; 32],
}

/// The calibrated range of one quantized tensor, for the range report.
#[derive(Debug, Clone)]
pub struct TensorRange {
    /// Which tensor: "input" or the f32 layer's name and kind.
    pub tensor: String,
    /// Index of the f32 layer whose output this is (`None` for the input).
    pub layer: Option<usize>,
    /// Smallest and largest value observed during calibration.
    pub observed: (f32, f32),
    /// The range the int8 encoding covers.
    pub calibrated: Range,
    /// Quantization scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i8,
    /// Fraction of the calibration values outside the encoded range.
    pub clipped_fraction: f64,
}

/// A statically quantized model.
#[derive(Debug, Clone)]
pub struct QuantizedModel {
    /// The layer-by-layer int8 description the blob was encoded from.
    pub spec: ModelSpec,
    /// The encoded blob (validated by `tickq_core::Model::load`).
    pub blob: Vec<u8>,
    /// Calibrated ranges, input first.
    pub ranges: Vec<TensorRange>,
    /// Things a person should look at: too few calibration samples, or
    /// calibration data that does not look like the training data.
    pub warnings: Vec<String>,
}

/// Affine int8 parameters of one activation tensor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QParams {
    pub(crate) scale: f32,
    pub(crate) zero_point: i8,
}

impl QParams {
    /// The parameters for `range` under `config` (limits, power-of-two scales).
    fn for_range(r: Range, config: &QuantConfig) -> Self {
        let (qmin, qmax) = config.activation_limits();
        let (mut scale, mut zero_point) = r.affine(qmin, qmax);
        if config.backend == Backend::Fpga {
            scale = pow2_ceil(f64::from(scale)) as f32;
            zero_point = (f64::from(qmin) - f64::from(r.min) / f64::from(scale))
                .round()
                .clamp(f64::from(qmin), f64::from(qmax)) as i8;
        }
        Self { scale, zero_point }
    }

    /// The int8 value of real `x`, saturated.
    pub(crate) fn quantize(&self, x: f32) -> i8 {
        let q = (f64::from(x) / f64::from(self.scale)).round() + f64::from(self.zero_point);
        q.clamp(-128.0, 127.0) as i8
    }

    /// Real `x` quantized to int8, clamped to `qmin..=qmax` as the core clamps
    /// every activation, and mapped back to a real value (fake quantization).
    pub(crate) fn fake_quantize(&self, x: f32, (qmin, qmax): (i8, i8)) -> f32 {
        let q = self.quantize(x).clamp(qmin, qmax);
        self.scale * (i32::from(q) - i32::from(self.zero_point)) as f32
    }

    /// The real range this encoding covers within `limits`.
    fn covered(&self, (qmin, qmax): (i8, i8)) -> Range {
        Range::new(
            self.scale * (i32::from(qmin) - i32::from(self.zero_point)) as f32,
            self.scale * (i32::from(qmax) - i32::from(self.zero_point)) as f32,
        )
    }
}

/// The element-wise function after layer `i` that the quantizer fuses into
/// layer `i`'s requantization clamp, as the real interval it clamps to.
///
/// Only a Dense or Conv1d layer `i` fuses; `None` when the next layer is not a
/// ReLU, ReLU6 or Clamp.
pub(crate) fn fused_activation(model: &Sequential, i: usize) -> Option<(f32, f32)> {
    if !matches!(
        model.layers.get(i),
        Some(Layer::Dense(_) | Layer::Conv1d(_))
    ) {
        return None;
    }
    match model.layers.get(i + 1) {
        Some(Layer::ReLU) => Some((0.0f32, f32::INFINITY)),
        Some(Layer::ReLU6) => Some((0.0, 6.0)),
        Some(Layer::Clamp { min, max }) => Some((*min, *max)),
        _ => None,
    }
}

/// The symmetric scale of one output channel whose largest weight magnitude
/// is `max_abs` (finite): `max_abs / 127`, rounded up to a power of two for
/// the fpga backend; 1 for an all-zero channel.
pub(crate) fn channel_weight_scale(max_abs: f32, config: &QuantConfig) -> f64 {
    let w_scale = if max_abs > 0.0 {
        f64::from(max_abs) / 127.0
    } else {
        1.0
    };
    if config.backend == Backend::Fpga {
        pow2_ceil(w_scale)
    } else {
        w_scale
    }
}

/// The int8 weight of real `w` at per-channel scale `w_scale` (-127..=127).
pub(crate) fn quantize_weight(w: f32, w_scale: f64) -> i8 {
    (f64::from(w) / w_scale).round().clamp(-127.0, 127.0) as i8
}

/// The smallest power of two at or above `x` (> 0).
fn pow2_ceil(x: f64) -> f64 {
    if x > 0.0 && x.is_finite() {
        2f64.powi(x.log2().ceil() as i32)
    } else {
        1.0
    }
}

/// Flattens a traced tensor into its values (layout does not matter to observers).
fn tensor_values(t: &Tensor) -> impl Iterator<Item = f32> + '_ {
    let (a, b) = match t {
        Tensor::Seq(a) => (Some(a.iter()), None),
        Tensor::Flat(a) => (None, Some(a.iter())),
    };
    a.into_iter()
        .flatten()
        .chain(b.into_iter().flatten())
        .copied()
}

/// Shape of the current tensor while walking the model.
#[derive(Debug, Clone, Copy)]
enum Walk {
    /// A sequence of `time` steps with `channels` each, stored time-major in the core.
    Seq { channels: usize, time: usize },
    /// A vector; `from_seq` remembers the (channels, time) of a flattened
    /// sequence so the next Dense layer's columns can be permuted from
    /// PyTorch's channel-major order to the core's time-major order.
    Flat {
        len: usize,
        from_seq: Option<(usize, usize)>,
    },
}

const DENSE_NEEDS_VECTOR: &str =
    "a Dense layer needs a vector input: add a flatten or global_avg_pool layer before it";
const CONV_NEEDS_SEQUENCE: &str = "a Conv1d layer needs a sequence input (time_steps > 1)";
const POOL_NEEDS_SEQUENCE: &str = "pooling needs a sequence input: move it before the flatten or global_avg_pool layer, or use time_steps > 1";
const MUST_END_IN_VECTOR: &str = "the model must end in a vector of class logits: end it with a flatten or global_avg_pool layer and a dense layer";

/// The fpga refusal of an average over `window` steps.
fn fpga_window(window: usize) -> String {
    format!(
        "backend fpga makes every requantization a shift, but averaging {window} steps divides by {window}: use a power-of-two pool window (or sequence length for global pooling)"
    )
}

/// Walks the layer shapes before calibration runs the f32 model, so that a
/// model whose layers do not fit together, or a layer the chosen backend
/// cannot represent, is refused naming the layer and what to change instead
/// of panicking in the f32 forward pass (a model built from a valid
/// architecture file always fits; one edited in code may not).
///
/// Returns the shape entering each layer, which the quantizer's walk then uses
/// as it is: every shape check lives here.
fn check_structure(model: &Sequential, config: &QuantConfig) -> Result<Vec<Walk>, QuantError> {
    let (time_steps, features) = (model.arch.input.time_steps, model.arch.input.features);
    let mut walk = if time_steps == 1 {
        Walk::Flat {
            len: features,
            from_seq: None,
        }
    } else {
        Walk::Seq {
            channels: features,
            time: time_steps,
        }
    };
    let mut shapes = Vec::with_capacity(model.layers.len());
    for (i, layer) in model.layers.iter().enumerate() {
        shapes.push(walk);
        let err = |reason: String| QuantError::Layer {
            index: i,
            name: layer_label(model, i),
            reason,
        };
        let pooled = |time: usize, kernel: usize, stride: usize| {
            if time < kernel {
                Err(err(format!(
                    "window of {time} steps is shorter than the pool kernel {kernel}"
                )))
            } else {
                Ok((time - kernel) / stride.max(1) + 1)
            }
        };
        walk = match (layer, walk) {
            (Layer::Dense(d), Walk::Flat { len, .. }) => {
                let (out_f, in_f) = d.weight.dim();
                if len != in_f {
                    return Err(err(format!("expects {in_f} inputs but receives {len}")));
                }
                if d.bias.len() != out_f {
                    return Err(err(format!(
                        "has {out_f} outputs but {} biases",
                        d.bias.len()
                    )));
                }
                Walk::Flat {
                    len: out_f,
                    from_seq: None,
                }
            }
            (Layer::Dense(_), Walk::Seq { .. }) => return Err(err(DENSE_NEEDS_VECTOR.into())),
            (Layer::Conv1d(c), Walk::Seq { channels, time }) => {
                let (out_c, in_c, k) = c.weight.dim();
                if channels != in_c {
                    return Err(err(format!(
                        "expects {in_c} channels but receives {channels}"
                    )));
                }
                if c.bias.len() != out_c {
                    return Err(err(format!(
                        "has {out_c} outputs but {} biases",
                        c.bias.len()
                    )));
                }
                let out_time = c.out_len(time);
                if k == 0 || c.stride == 0 || c.dilation == 0 || out_time == 0 {
                    return Err(err(format!(
                        "window of {time} steps is shorter than the kernel span {}",
                        c.dilation * k.saturating_sub(1) + 1
                    )));
                }
                Walk::Seq {
                    channels: out_c,
                    time: out_time,
                }
            }
            (Layer::Conv1d(_), Walk::Flat { .. }) => return Err(err(CONV_NEEDS_SEQUENCE.into())),
            (Layer::MaxPool1d { kernel, stride }, Walk::Seq { channels, time }) => Walk::Seq {
                channels,
                time: pooled(time, *kernel, *stride)?,
            },
            (Layer::AvgPool1d { kernel, stride }, Walk::Seq { channels, time }) => {
                let time = pooled(time, *kernel, *stride)?;
                if config.backend == Backend::Fpga && !kernel.is_power_of_two() {
                    return Err(err(fpga_window(*kernel)));
                }
                Walk::Seq { channels, time }
            }
            (Layer::GlobalAvgPool, Walk::Seq { channels, time }) => {
                if config.backend == Backend::Fpga && !time.is_power_of_two() {
                    return Err(err(fpga_window(time)));
                }
                Walk::Flat {
                    len: channels,
                    from_seq: None,
                }
            }
            (
                Layer::MaxPool1d { .. } | Layer::AvgPool1d { .. } | Layer::GlobalAvgPool,
                Walk::Flat { .. },
            ) => return Err(err(format!("{} {POOL_NEEDS_SEQUENCE}", layer.kind()))),
            (Layer::Flatten, Walk::Seq { channels, time }) => Walk::Flat {
                len: channels * time,
                from_seq: Some((channels, time)),
            },
            (_, w) => w,
        };
    }
    if !matches!(walk, Walk::Flat { .. }) {
        let last = model.layers.len().saturating_sub(1);
        return Err(QuantError::Layer {
            index: last,
            name: layer_label(model, last),
            reason: MUST_END_IN_VECTOR.into(),
        });
    }
    Ok(shapes)
}

/// Checks calibration data and returns warnings about it.
fn check_calibration(
    calibration: ArrayView2<'_, f32>,
    features: usize,
    info: &ExportInfo,
) -> Result<Vec<String>, QuantError> {
    let n = calibration.nrows();
    if n < MIN_CALIBRATION_SAMPLES {
        return Err(QuantError::Calibration(format!(
            "{n} samples: at least {MIN_CALIBRATION_SAMPLES} are needed (a few thousand are better)"
        )));
    }
    if let Some(pos) = calibration.iter().position(|v| !v.is_finite()) {
        let width = calibration.ncols().max(1);
        return Err(QuantError::Calibration(format!(
            "non-finite value in sample {} column {}",
            pos / width,
            pos % width
        )));
    }
    let mut warnings = Vec::new();
    if n < FEW_CALIBRATION_SAMPLES {
        warnings.push(format!(
            "only {n} calibration samples: ranges may be unreliable (use at least {FEW_CALIBRATION_SAMPLES})"
        ));
    }
    // The samples are standardized with the training statistics, so each
    // feature should have a mean near 0 and a standard deviation near 1.
    for f in 0..features {
        let column: Vec<f64> = calibration
            .iter()
            .skip(f)
            .step_by(features.max(1))
            .map(|&v| f64::from(v))
            .collect();
        let count = column.len().max(1) as f64;
        let mean = column.iter().sum::<f64>() / count;
        let std = (column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt();
        if mean.abs() > 1.5
            || std > 3.0
            || (std < 0.2 && info.std.get(f).is_some_and(|s| *s != 1.0))
        {
            let name = info.feature_names.get(f).map_or("?", String::as_str);
            warnings.push(format!(
                "feature {f} `{name}`: calibration mean {mean:.2} and standard deviation {std:.2} in training-standardized units (training: 0 and 1); is this the data the model was trained on?"
            ));
        }
    }
    Ok(warnings)
}

/// Statically quantizes `model`.
///
/// `calibration` holds standardized samples (`[N, T*F]`, the same layout the
/// f32 model takes); the first `config.calibration_samples` rows are used,
/// traced [`CALIBRATION_BATCH`] at a time.
///
/// # Errors
///
/// [`QuantError`] naming the layer or the setting when something cannot be
/// represented, and [`QuantError::Calibration`] for too few or non-finite
/// samples, or samples of the wrong width.
pub fn static_quantize(
    model: &Sequential,
    calibration: ArrayView2<'_, f32>,
    info: &ExportInfo,
    config: &QuantConfig,
) -> Result<QuantizedModel, QuantError> {
    static_quantize_with(
        model,
        calibration,
        info,
        config,
        &encode::EncodeOptions::default(),
    )
}

/// [`static_quantize`] with blob encoding options (the weight format of
/// Dense and Conv1d layers: auto, dense, sparse or N:M).
///
/// # Errors
///
/// As [`static_quantize`]; a forced weight format that does not fit a layer
/// is a [`QuantError::Encode`] naming the layer.
pub fn static_quantize_with(
    model: &Sequential,
    calibration: ArrayView2<'_, f32>,
    info: &ExportInfo,
    config: &QuantConfig,
    options: &encode::EncodeOptions,
) -> Result<QuantizedModel, QuantError> {
    let time_steps = model.arch.input.time_steps;
    let features = model.arch.input.features;
    if calibration.ncols() != time_steps * features {
        return Err(QuantError::Calibration(format!(
            "samples have {} values, the model takes {} ({} time steps x {} features)",
            calibration.ncols(),
            time_steps * features,
            time_steps,
            features
        )));
    }
    if info.mean.len() != features || info.std.len() != features {
        return Err(QuantError::Calibration(format!(
            "normalizer has {} means and {} standard deviations for {} features",
            info.mean.len(),
            info.std.len(),
            features
        )));
    }
    let shapes = check_structure(model, config)?;
    let n = calibration.nrows().min(config.calibration_samples);
    let calibration = calibration.slice_axis(Axis(0), (0..n).into());
    let warnings = check_calibration(calibration, features, info)?;

    // Observe the input and every layer's output, one batch at a time.
    let mut observers: Vec<Observer> = (0..=model.layers.len())
        .map(|_| Observer::new(config.observer))
        .collect();
    let mut start = 0;
    while start < n {
        let end = (start + CALIBRATION_BATCH).min(n);
        let batch = calibration.slice_axis(Axis(0), (start..end).into());
        observers[0].observe(batch.iter().copied());
        for (obs, t) in observers[1..].iter_mut().zip(model.forward_trace(batch)) {
            obs.observe(tensor_values(&t));
        }
        start = end;
    }
    let limits = config.activation_limits();
    let mut ranges = Vec::new();
    // Calibrated parameters of observer `k` (0 = input, i + 1 = layer i's output).
    let calibrate = |ranges: &mut Vec<TensorRange>, k: usize, tensor: String| -> QParams {
        let obs = &observers[k];
        let qp = QParams::for_range(obs.range(), config);
        let covered = qp.covered(limits);
        ranges.push(TensorRange {
            tensor,
            layer: k.checked_sub(1),
            observed: obs.extremes().unwrap_or((0.0, 0.0)),
            calibrated: covered,
            scale: qp.scale,
            zero_point: qp.zero_point,
            clipped_fraction: obs.fraction_outside(covered, qp.scale),
        });
        qp
    };

    // Layer 0: the input quantizer with standardization folded in.
    let input_qp = calibrate(&mut ranges, 0, "input".into());
    let mut a = Vec::with_capacity(features);
    let mut b = Vec::with_capacity(features);
    for (&mean, &std) in info.mean.iter().zip(&info.std) {
        let denom = f64::from(std) * f64::from(input_qp.scale);
        a.push((1.0 / denom) as f32);
        b.push((f64::from(input_qp.zero_point) - f64::from(mean) / denom) as f32);
    }
    let (qmin, qmax) = limits;
    let mut layers = vec![LayerSpec {
        op: OpSpec::Quantize {
            time_steps,
            features,
            a,
            b,
        },
        input: None,
        out_scale: input_qp.scale,
        out_zero_point: input_qp.zero_point,
        act_min: qmin,
        act_max: qmax,
        dynamic: None,
    }];
    let mut current = input_qp;

    let mut i = 0;
    while i < model.layers.len() {
        let layer = &model.layers[i];
        let walk = shapes[i];
        let label = layer_label(model, i);
        let err = |reason: String| QuantError::Layer {
            index: i,
            name: label.clone(),
            reason,
        };
        match layer {
            Layer::Dense(_) | Layer::Conv1d(_) => {
                // Fuse a following ReLU / ReLU6 / Clamp into the requantization clamp.
                let fused = fused_activation(model, i);
                let out_index = if fused.is_some() { i + 1 } else { i };
                let out_qp = calibrate(&mut ranges, out_index + 1, layer_label(model, out_index));
                let (act_min, act_max) = match fused {
                    Some((lo, hi)) => (
                        out_qp.quantize(lo).clamp(qmin, qmax),
                        out_qp.quantize(hi).clamp(qmin, qmax),
                    ),
                    None => (qmin, qmax),
                };
                let op = match layer {
                    Layer::Dense(d) => {
                        let (out_f, in_f) = d.weight.dim();
                        let Walk::Flat {
                            from_seq: permute, ..
                        } = walk
                        else {
                            return Err(err(DENSE_NEEDS_VECTOR.into()));
                        };
                        // Core column j (time-major t*C + c) takes host column c*T + t.
                        let column = |j: usize| match permute {
                            Some((channels, time)) => (j % channels) * time + j / channels,
                            None => j,
                        };
                        let rows: Vec<Vec<f32>> = (0..out_f)
                            .map(|o| (0..in_f).map(|j| d.weight[[o, column(j)]]).collect())
                            .collect();
                        let q = quantize_channels(&rows, &d.bias, current, out_qp, config)
                            .map_err(&err)?;
                        OpSpec::Dense {
                            out_features: out_f,
                            in_features: in_f,
                            weights: q.weights,
                            bias: q.bias,
                            requant: q.requant,
                        }
                    }
                    Layer::Conv1d(c) => {
                        let (out_c, in_c, k) = c.weight.dim();
                        if !matches!(walk, Walk::Seq { .. }) {
                            return Err(err(CONV_NEEDS_SEQUENCE.into()));
                        }
                        // Host [out, in, k] -> core [out][k][in] (tap-major rows).
                        let rows: Vec<Vec<f32>> = (0..out_c)
                            .map(|o| {
                                (0..k)
                                    .flat_map(|t| (0..in_c).map(move |ci| (t, ci)))
                                    .map(|(t, ci)| c.weight[[o, ci, t]])
                                    .collect()
                            })
                            .collect();
                        let q = quantize_channels(&rows, &c.bias, current, out_qp, config)
                            .map_err(&err)?;
                        let padding = match c.padding {
                            crate::model::Padding::Valid => encode::Padding::Valid,
                            crate::model::Padding::Causal => encode::Padding::Causal,
                        };
                        OpSpec::Conv1d {
                            out_channels: out_c,
                            in_channels: in_c,
                            kernel: k,
                            stride: c.stride,
                            dilation: c.dilation,
                            padding,
                            weights: q.weights,
                            bias: q.bias,
                            requant: q.requant,
                        }
                    }
                    _ => unreachable!("matched above"),
                };
                layers.push(LayerSpec {
                    op,
                    input: None,
                    out_scale: out_qp.scale,
                    out_zero_point: out_qp.zero_point,
                    act_min,
                    act_max,
                    dynamic: None,
                });
                current = out_qp;
                i = out_index + 1;
                continue;
            }
            Layer::ReLU | Layer::ReLU6 | Layer::Clamp { .. } | Layer::Tanh | Layer::Sigmoid => {
                // An element-wise function that could not be fused: a lookup table.
                // Tanh and Sigmoid have fixed output ranges ([-1, 1] and [0, 1]).
                let half = if config.reduce_range { 64.0 } else { 128.0 };
                let out_qp = match layer {
                    Layer::Tanh => QParams {
                        scale: 1.0 / half,
                        zero_point: 0,
                    },
                    Layer::Sigmoid => QParams {
                        scale: 1.0 / (2.0 * half),
                        zero_point: qmin,
                    },
                    _ => current,
                };
                if matches!(layer, Layer::Tanh | Layer::Sigmoid) {
                    let covered = out_qp.covered(limits);
                    ranges.push(TensorRange {
                        tensor: label.clone(),
                        layer: Some(i),
                        observed: observers[i + 1].extremes().unwrap_or((0.0, 0.0)),
                        calibrated: covered,
                        scale: out_qp.scale,
                        zero_point: out_qp.zero_point,
                        clipped_fraction: observers[i + 1].fraction_outside(covered, out_qp.scale),
                    });
                }
                let f = |x: f32| -> f32 {
                    match layer {
                        Layer::ReLU => x.max(0.0),
                        Layer::ReLU6 => x.clamp(0.0, 6.0),
                        Layer::Clamp { min, max } => x.clamp(*min, *max),
                        Layer::Tanh => x.tanh(),
                        _ => 1.0 / (1.0 + (-x).exp()),
                    }
                };
                let mut table = [0i8; 256];
                for (idx, slot) in table.iter_mut().enumerate() {
                    let q_in = idx as i32 - 128;
                    let real = current.scale * (q_in - i32::from(current.zero_point)) as f32;
                    *slot = out_qp.quantize(f(real)).clamp(qmin, qmax);
                }
                layers.push(LayerSpec {
                    op: OpSpec::Lut { table },
                    input: None,
                    out_scale: out_qp.scale,
                    out_zero_point: out_qp.zero_point,
                    act_min: qmin,
                    act_max: qmax,
                    dynamic: None,
                });
                current = out_qp;
            }
            Layer::MaxPool1d { kernel, stride } => {
                layers.push(LayerSpec {
                    op: OpSpec::MaxPool1d {
                        kernel: *kernel,
                        stride: *stride,
                    },
                    input: None,
                    out_scale: current.scale,
                    out_zero_point: current.zero_point,
                    act_min: -128,
                    act_max: 127,
                    dynamic: None,
                });
            }
            Layer::AvgPool1d { .. } | Layer::GlobalAvgPool => {
                let Walk::Seq { time, .. } = walk else {
                    return Err(err(POOL_NEEDS_SEQUENCE.into()));
                };
                let out_qp = calibrate(&mut ranges, i + 1, label.clone());
                let (window, op_for) = match layer {
                    Layer::AvgPool1d { kernel, stride } => (*kernel, Some((*kernel, *stride))),
                    _ => (time, None),
                };
                let ratio = f64::from(current.scale) / (f64::from(out_qp.scale) * window as f64);
                let requant = multiplier(ratio).map_err(&err)?;
                let op = match op_for {
                    Some((kernel, stride)) => OpSpec::AvgPool1d {
                        kernel,
                        stride,
                        requant,
                    },
                    None => OpSpec::GlobalAvgPool { requant },
                };
                layers.push(LayerSpec {
                    op,
                    input: None,
                    out_scale: out_qp.scale,
                    out_zero_point: out_qp.zero_point,
                    act_min: qmin,
                    act_max: qmax,
                    dynamic: None,
                });
                current = out_qp;
            }
            Layer::Flatten => {
                if let Walk::Seq { .. } = walk {
                    layers.push(LayerSpec {
                        op: OpSpec::Flatten,
                        input: None,
                        out_scale: current.scale,
                        out_zero_point: current.zero_point,
                        act_min: -128,
                        act_max: 127,
                        dynamic: None,
                    });
                }
            }
        }
        i += 1;
    }

    let spec = ModelSpec {
        name: info.name.clone(),
        feature_names: info.feature_names.clone(),
        label_names: info.label_names.clone(),
        data_hash: info.data_hash,
        tickq_version: env!("CARGO_PKG_VERSION").to_string(),
        layers,
    };
    let blob = encode::encode_with(&spec, options).map_err(QuantError::Encode)?;
    tickq_core::Model::load(&blob).map_err(QuantError::Load)?;
    Ok(QuantizedModel {
        spec,
        blob,
        ranges,
        warnings,
    })
}

/// For each probe `(layer, range, scale)` — the model input when `layer` is
/// `None`, else the output of f32 layer `layer` — the fraction of the values
/// on `x` (standardized samples, `[N, T*F]`) that an int8 encoding of `range`
/// with step `scale` clips: those more than half a step outside it.
///
/// Compared with [`TensorRange::clipped_fraction`] (the calibration set), a
/// much larger fraction here means the calibration set did not cover what the
/// model sees in use.
pub fn clipped_fractions(
    model: &Sequential,
    x: ArrayView2<'_, f32>,
    probes: &[(Option<usize>, Range, f32)],
) -> Vec<f64> {
    let ranges = probes;
    let mut outside = vec![0usize; ranges.len()];
    let mut total = vec![0usize; ranges.len()];
    let mut count = |k: usize,
                     (_, range, scale): &(Option<usize>, Range, f32),
                     values: &mut dyn Iterator<Item = f32>| {
        let (lo, hi) = (range.min - 0.5 * scale, range.max + 0.5 * scale);
        for v in values {
            total[k] += 1;
            if v < lo || v > hi {
                outside[k] += 1;
            }
        }
    };
    let mut start = 0;
    while start < x.nrows() {
        let end = (start + CALIBRATION_BATCH).min(x.nrows());
        let batch = x.slice_axis(Axis(0), (start..end).into());
        let trace = model.forward_trace(batch);
        for (k, r) in ranges.iter().enumerate() {
            match r.0 {
                None => count(k, r, &mut batch.iter().copied()),
                Some(i) => {
                    if let Some(t) = trace.get(i) {
                        count(k, r, &mut tensor_values(t));
                    }
                }
            }
        }
        start = end;
    }
    outside
        .iter()
        .zip(&total)
        .map(|(&o, &t)| if t > 0 { o as f64 / t as f64 } else { 0.0 })
        .collect()
}

/// `name (kind)` of layer `i`, for messages and reports.
pub(crate) fn layer_label(model: &Sequential, i: usize) -> String {
    match model.layers.get(i) {
        Some(Layer::Dense(d)) => format!("{} dense", d.name),
        Some(Layer::Conv1d(c)) => format!("{} conv1d", c.name),
        Some(other) => format!("#{i} {}", other.kind()),
        None => format!("#{i}"),
    }
}

/// The multiplier for `ratio`, or a message saying why it cannot be encoded.
fn multiplier(ratio: f64) -> Result<QuantMultiplier, String> {
    QuantMultiplier::from_ratio(ratio).ok_or_else(|| {
        format!(
            "requantization ratio {ratio:e} is outside what a Q31 multiplier can encode (0, 2^30): check for exploding or all-zero activations"
        )
    })
}

/// int8 weights, effective int32 biases and multipliers of one weighted layer.
struct QuantizedChannels {
    weights: Vec<i8>,
    bias: Vec<i32>,
    requant: Vec<QuantMultiplier>,
}

/// Quantizes `rows` (one f32 row per output channel, already in the core's
/// column order) per channel, with the input zero point folded into the bias.
fn quantize_channels(
    rows: &[Vec<f32>],
    bias: &ndarray::Array1<f32>,
    input: QParams,
    output: QParams,
    config: &QuantConfig,
) -> Result<QuantizedChannels, String> {
    let mut weights = Vec::with_capacity(rows.iter().map(Vec::len).sum());
    let mut biases = Vec::with_capacity(rows.len());
    let mut requant = Vec::with_capacity(rows.len());
    for (o, row) in rows.iter().enumerate() {
        let max_abs = row.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        if !max_abs.is_finite() {
            return Err(format!("output channel {o} has a non-finite weight"));
        }
        let w_scale = channel_weight_scale(max_abs, config);
        let mut sum_q: i64 = 0;
        for &w in row {
            let q = quantize_weight(w, w_scale);
            sum_q += i64::from(q);
            weights.push(q);
        }
        let acc_scale = f64::from(input.scale) * w_scale;
        let b = f64::from(bias[o]);
        if !b.is_finite() {
            return Err(format!("output channel {o} has a non-finite bias"));
        }
        let b_q = (b / acc_scale).round();
        let b_eff = b_q - f64::from(input.zero_point) * sum_q as f64;
        if b_eff.abs() >= f64::from(1u32 << 30) {
            return Err(format!(
                "output channel {o}: bias {b} is too large for an int32 accumulator at scale {acc_scale:e}"
            ));
        }
        biases.push(b_eff as i32);
        requant.push(
            multiplier(acc_scale / f64::from(output.scale))
                .map_err(|m| format!("output channel {o}: {m}"))?,
        );
    }
    Ok(QuantizedChannels {
        weights,
        bias: biases,
        requant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Architecture;
    use ndarray::Array2;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tickq_core::{Model, Session};

    fn inputs(n: usize, width: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, width), |_| {
            (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7
        })
    }

    fn info(features: usize) -> ExportInfo {
        ExportInfo {
            name: "test".into(),
            feature_names: (0..features).map(|i| format!("f{i}")).collect(),
            label_names: vec!["down".into(), "flat".into(), "up".into()],
            mean: vec![0.0; features],
            std: vec![1.0; features],
            data_hash: [7; 32],
        }
    }

    /// Quantizes `arch` with random weights and compares the core's
    /// dequantized logits with the f32 model's on fresh inputs. Returns the
    /// argmax agreement, the largest logit error relative to the largest
    /// |logit|, and the root-mean-square logit error relative to the logits'
    /// root-mean-square.
    fn compare(arch: &str, seed: u64) -> (f64, f32, f32) {
        compare_with(arch, seed, &QuantConfig::default())
    }

    fn compare_with(arch: &str, seed: u64, config: &QuantConfig) -> (f64, f32, f32) {
        let arch = Architecture::from_toml_str(arch).unwrap();
        let features = arch.input.features;
        let width = arch.input.time_steps * features;
        let model = Sequential::new(arch, seed).unwrap();
        let calibration = inputs(2048, width, seed + 1);
        let q = static_quantize(&model, calibration.view(), &info(features), config).unwrap();
        let test = inputs(500, width, seed + 2);
        let expected = model.forward(test.view());
        let core = Model::load(&q.blob).unwrap();
        let mut arena = vec![0u8; core.arena_bytes()];
        let mut session = Session::new(&core, &mut arena).unwrap();
        let range = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let mut agree = 0usize;
        let mut worst = 0f32;
        let mut sq_err = 0f64;
        let mut scores = vec![0f32; core.classes()];
        for (row, want) in test.rows().into_iter().zip(expected.rows()) {
            let p = session.run(row.as_slice().unwrap());
            p.scores(&mut scores);
            for (got, want) in scores.iter().zip(want.iter()) {
                worst = worst.max((got - want).abs() / range);
                sq_err += f64::from(got - want).powi(2);
            }
            let want_arg = want
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                .unwrap();
            agree += usize::from(p.signal() == want_arg);
        }
        let rms_logit = (expected.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>()
            / expected.len() as f64)
            .sqrt();
        let rms_err = (sq_err / expected.len() as f64).sqrt();
        (
            agree as f64 / 500.0,
            worst,
            (rms_err / rms_logit.max(1e-9)) as f32,
        )
    }

    const MLP: &str = r#"
name = "mlp"
classes = 3
[input]
time_steps = 1
features = 12
[[layers]]
type = "dense"
out = 32
[[layers]]
type = "relu6"
[[layers]]
type = "dense"
out = 16
[[layers]]
type = "tanh"
[[layers]]
type = "dense"
out = 3
"#;

    /// Exercises causal and dilated convs, a sigmoid table, max pooling and
    /// Flatten, whose channel-major to time-major column permutation must be
    /// right for the results to agree at all.
    const CONV_FLATTEN: &str = r#"
name = "conv"
classes = 3
[input]
time_steps = 16
features = 4
[[layers]]
type = "conv1d"
out = 8
kernel = 3
padding = "causal"
[[layers]]
type = "relu"
[[layers]]
type = "conv1d"
out = 8
kernel = 3
stride = 2
dilation = 2
[[layers]]
type = "sigmoid"
[[layers]]
type = "maxpool1d"
kernel = 2
[[layers]]
type = "flatten"
[[layers]]
type = "dense"
out = 3
"#;

    const CONV_POOL: &str = r#"
name = "conv-pool"
classes = 3
[input]
time_steps = 24
features = 3
[[layers]]
type = "conv1d"
out = 6
kernel = 5
[[layers]]
type = "clamp"
min = -1.0
max = 2.0
[[layers]]
type = "avgpool1d"
kernel = 2
[[layers]]
type = "relu"
[[layers]]
type = "global_avg_pool"
[[layers]]
type = "dense"
out = 3
"#;

    #[test]
    fn mlp_with_fused_and_table_activations_matches_f32() {
        let (agree, worst, rms) = compare(MLP, 3);
        eprintln!("mlp: agreement {agree}, worst {worst}, rms {rms}");
        let minmax = QuantConfig {
            observer: observer::ObserverKind::MinMax,
            ..QuantConfig::default()
        };
        let (agree_mm, _, rms_mm) = compare_with(MLP, 3, &minmax);
        assert!(
            agree_mm >= 0.95 && rms_mm < 0.06,
            "min-max: {agree_mm} {rms_mm}"
        );
        assert!(agree >= 0.95, "agreement {agree}");
        assert!(worst < 0.2, "worst relative logit error {worst}");
        assert!(rms < 0.06, "relative RMS logit error {rms}");
    }

    #[test]
    fn conv_flatten_model_matches_f32() {
        let (agree, worst, rms) = compare(CONV_FLATTEN, 5);
        eprintln!("conv-flatten: agreement {agree}, worst {worst}, rms {rms}");
        assert!(agree >= 0.95, "agreement {agree}");
        assert!(worst < 0.2, "worst relative logit error {worst}");
        assert!(rms < 0.06, "relative RMS logit error {rms}");
    }

    #[test]
    fn conv_pool_model_matches_f32() {
        let (agree, worst, rms) = compare(CONV_POOL, 9);
        eprintln!("conv-pool: agreement {agree}, worst {worst}, rms {rms}");
        assert!(agree >= 0.95, "agreement {agree}");
        assert!(worst < 0.2, "worst relative logit error {worst}");
        assert!(rms < 0.06, "relative RMS logit error {rms}");
    }

    #[test]
    fn standardization_is_folded_into_the_input_quantizer() {
        let arch = Architecture::from_toml_str(MLP).unwrap();
        let model = Sequential::new(arch, 1).unwrap();
        let normalized = inputs(1000, 12, 4);
        let mut info = info(12);
        info.mean = (0..12).map(|i| 100.0 + i as f32).collect();
        info.std = (0..12).map(|i| 0.5 + i as f32 * 0.25).collect();
        let q = static_quantize(&model, normalized.view(), &info, &QuantConfig::default()).unwrap();
        let core = Model::load(&q.blob).unwrap();
        let mut arena = vec![0u8; core.arena_bytes()];
        let mut session = Session::new(&core, &mut arena).unwrap();
        let expected = model.predict(normalized.view());
        let mut agree = 0;
        for (row, want) in normalized.rows().into_iter().zip(&expected) {
            let raw: Vec<f32> = row
                .iter()
                .enumerate()
                .map(|(f, v)| v * info.std[f] + info.mean[f])
                .collect();
            agree += usize::from(session.run(&raw).signal() == *want);
        }
        assert!(agree >= 950, "raw-feature agreement {agree}/1000");
    }

    #[test]
    fn bad_calibration_data_is_refused() {
        let arch = Architecture::from_toml_str(MLP).unwrap();
        let model = Sequential::new(arch, 1).unwrap();
        let mut x = inputs(10, 12, 4);
        x[[3, 5]] = f32::NAN;
        let err = static_quantize(&model, x.view(), &info(12), &QuantConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("sample 3 column 5"), "{err}");
        let narrow = inputs(10, 11, 4);
        let err = static_quantize(&model, narrow.view(), &info(12), &QuantConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("11 values"), "{err}");
        let empty = inputs(0, 12, 4);
        assert!(static_quantize(&model, empty.view(), &info(12), &QuantConfig::default()).is_err());
    }

    #[test]
    fn non_finite_weights_name_the_layer() {
        let arch = Architecture::from_toml_str(MLP).unwrap();
        let mut model = Sequential::new(arch, 1).unwrap();
        if let Layer::Dense(d) = &mut model.layers[2] {
            d.weight[[4, 1]] = f32::INFINITY;
        }
        let err = static_quantize(
            &model,
            inputs(10, 12, 4).view(),
            &info(12),
            &QuantConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("layer 2") && err.contains("channel 4"),
            "{err}"
        );
    }

    fn all_multipliers(spec: &ModelSpec) -> Vec<QuantMultiplier> {
        spec.layers
            .iter()
            .flat_map(|l| match &l.op {
                OpSpec::Dense { requant, .. } | OpSpec::Conv1d { requant, .. } => requant.clone(),
                OpSpec::AvgPool1d { requant, .. } | OpSpec::GlobalAvgPool { requant } => {
                    vec![*requant]
                }
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn fpga_backend_makes_every_requantization_a_shift() {
        let fpga = QuantConfig {
            backend: Backend::Fpga,
            ..QuantConfig::default()
        };
        for (arch, seed) in [(MLP, 3), (CONV_FLATTEN, 5)] {
            let (agree, _, rms) = compare_with(arch, seed, &fpga);
            assert!(agree >= 0.9, "fpga agreement {agree}");
            assert!(rms < 0.15, "fpga rms {rms}");
            let model = Sequential::new(Architecture::from_toml_str(arch).unwrap(), seed).unwrap();
            let width = model.arch.input.time_steps * model.arch.input.features;
            let q = static_quantize(
                &model,
                inputs(512, width, 1).view(),
                &info(model.arch.input.features),
                &fpga,
            )
            .unwrap();
            let ms = all_multipliers(&q.spec);
            assert!(!ms.is_empty());
            for m in ms {
                assert_eq!(m.multiplier(), 1 << 30, "{m:?} is not a pure shift");
            }
            for l in &q.spec.layers {
                assert_eq!(
                    l.out_scale.log2().fract(),
                    0.0,
                    "scale {} is not a power of two",
                    l.out_scale
                );
            }
        }
        // A pool window that is not a power of two cannot be a shift.
        let err = compare_with_result(CONV_POOL, 9, &fpga)
            .unwrap_err()
            .to_string();
        assert!(err.contains("power-of-two"), "{err}");
    }

    fn compare_with_result(
        arch: &str,
        seed: u64,
        config: &QuantConfig,
    ) -> Result<QuantizedModel, QuantError> {
        let model = Sequential::new(Architecture::from_toml_str(arch).unwrap(), seed).unwrap();
        let width = model.arch.input.time_steps * model.arch.input.features;
        static_quantize(
            &model,
            inputs(512, width, 1).view(),
            &info(model.arch.input.features),
            config,
        )
    }

    #[test]
    fn reduce_range_keeps_activations_in_seven_bits() {
        let reduced = QuantConfig {
            reduce_range: true,
            ..QuantConfig::default()
        };
        let (agree, _, _) = compare_with(CONV_FLATTEN, 5, &reduced);
        assert!(agree >= 0.95, "reduced-range agreement {agree}");
        let q = compare_with_result(MLP, 3, &reduced).unwrap();
        for l in &q.spec.layers {
            if !matches!(l.op, OpSpec::MaxPool1d { .. } | OpSpec::Flatten) {
                assert!(
                    l.act_min >= -64 && l.act_max <= 63,
                    "{:?}",
                    (l.act_min, l.act_max)
                );
            }
            if let OpSpec::Lut { table } = &l.op {
                assert!(table.iter().all(|v| (-64..=63).contains(v)));
            }
        }
    }

    #[test]
    fn quint8_uses_the_same_grid_as_qint8() {
        let a = compare_with_result(MLP, 3, &QuantConfig::default()).unwrap();
        let b = compare_with_result(
            MLP,
            3,
            &QuantConfig {
                dtype: QuantDtype::QUInt8,
                ..QuantConfig::default()
            },
        )
        .unwrap();
        assert_eq!(a.blob, b.blob);
    }

    #[test]
    fn every_observer_quantizes_a_model() {
        for observer in [
            observer::ObserverKind::MinMax,
            observer::ObserverKind::MovingAverageMinMax {
                averaging_constant: 0.1,
            },
            observer::ObserverKind::Percentile { percentile: 99.9 },
            observer::ObserverKind::Mse,
            observer::ObserverKind::KlEntropy,
        ] {
            let cfg = QuantConfig {
                observer,
                ..QuantConfig::default()
            };
            let (agree, _, _) = compare_with(CONV_FLATTEN, 5, &cfg);
            assert!(agree >= 0.9, "{observer}: agreement {agree}");
        }
    }

    #[test]
    fn suspicious_calibration_data_gives_warnings() {
        let model = Sequential::new(Architecture::from_toml_str(MLP).unwrap(), 1).unwrap();
        let few = static_quantize(
            &model,
            inputs(40, 12, 4).view(),
            &info(12),
            &QuantConfig::default(),
        )
        .unwrap();
        assert!(
            few.warnings
                .iter()
                .any(|w| w.contains("only 40 calibration samples")),
            "{:?}",
            few.warnings
        );
        let mut shifted = inputs(1000, 12, 4);
        shifted.column_mut(2).mapv_inplace(|v| v + 5.0);
        let q =
            static_quantize(&model, shifted.view(), &info(12), &QuantConfig::default()).unwrap();
        assert!(
            q.warnings.iter().any(|w| w.contains("feature 2 `f2`")),
            "{:?}",
            q.warnings
        );
        let fine = static_quantize(
            &model,
            inputs(1000, 12, 4).view(),
            &info(12),
            &QuantConfig::default(),
        )
        .unwrap();
        assert!(fine.warnings.is_empty(), "{:?}", fine.warnings);
        let err = static_quantize(
            &model,
            inputs(5, 12, 4).view(),
            &info(12),
            &QuantConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("5 samples"), "{err}");
    }
}

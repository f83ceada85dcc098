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

mod channels;
mod checks;
pub mod config;
pub mod dynamic;
mod error;
pub mod observer;
pub mod sensitivity;

use ndarray::{ArrayView2, Axis};
use tickq_core::encode::{self, LayerSpec, ModelSpec, OpSpec};

use crate::model::{Conv1d, Dense, Layer, Sequential, Tensor};
use channels::{multiplier, quantize_channels};
use checks::{
    CONV_NEEDS_SEQUENCE, DENSE_NEEDS_VECTOR, POOL_NEEDS_SEQUENCE, Walk, check_calibration,
    check_structure,
};
pub use config::{Backend, QuantConfig, QuantDtype};
pub use dynamic::ModelQuantizer;
pub use error::QuantError;
use observer::{Observer, Range};

/// Calibration batches are traced this many samples at a time (the
/// moving-average observer sees one update per batch).
pub const CALIBRATION_BATCH: usize = 256;

/// Fewer calibration samples than this is an error.
pub const MIN_CALIBRATION_SAMPLES: usize = 8;

/// Fewer calibration samples than this gives a warning.
pub const FEW_CALIBRATION_SAMPLES: usize = 256;

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
    /// The feature spec that turns raw trades into this input, written into the blob so a device streams
    /// trades (`tickq_core::stream::StreamSession`); `None` for a model fed feature vectors. Its column names
    /// must be `feature_names`.
    pub feature_spec: Option<tickq_core::features::FeatureSpec>,
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

/// Statically quantizes `model`.
///
/// `calibration` holds standardized samples (`[N, T*F]`, the same layout the
/// f32 model takes); the first `config.calibration_samples` rows are used,
/// traced [`CALIBRATION_BATCH`] at a time.
///
/// # Errors
///
/// [`QuantError`] naming the layer or the setting when something cannot be
/// represented, and [`QuantError::TooFewCalibrationSamples`],
/// [`QuantError::NonFiniteCalibration`] or [`QuantError::CalibrationWidth`] for samples it cannot use.
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
        return Err(QuantError::CalibrationWidth {
            values: calibration.ncols(),
            time_steps,
            features,
        });
    }
    if info.mean.len() != features || info.std.len() != features {
        return Err(QuantError::NormalizerWidth {
            means: info.mean.len(),
            stds: info.std.len(),
            features,
        });
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
                        let rows =
                            dense_rows(d, walk).ok_or_else(|| err(DENSE_NEEDS_VECTOR.into()))?;
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
                        if !matches!(walk, Walk::Seq { .. }) {
                            return Err(err(CONV_NEEDS_SEQUENCE.into()));
                        }
                        let q = quantize_channels(&conv_rows(c), &c.bias, current, out_qp, config)
                            .map_err(&err)?;
                        conv_op(c, q.weights, q.bias, q.requant)
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
        feature_spec: info.feature_spec,
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

/// A Dense layer's weights as the core's rows, `[out][in]`, for an input of shape `walk`; `None` when the input
/// is not a vector.
///
/// After a flattened sequence the columns are permuted: core column `j` (time-major `t * C + c`) takes host
/// column `c * T + t` (PyTorch's channel-major flatten).
fn dense_rows(d: &Dense, walk: Walk) -> Option<Vec<Vec<f32>>> {
    let Walk::Flat {
        from_seq: permute, ..
    } = walk
    else {
        return None;
    };
    let (out_f, in_f) = d.weight.dim();
    let column = |j: usize| match permute {
        Some((channels, time)) => (j % channels) * time + j / channels,
        None => j,
    };
    Some(
        (0..out_f)
            .map(|o| (0..in_f).map(|j| d.weight[[o, column(j)]]).collect())
            .collect(),
    )
}

/// A Conv1d layer's weights as the core's rows: host `[out, in, k]` to core `[out][k][in]` (tap-major rows).
fn conv_rows(c: &Conv1d) -> Vec<Vec<f32>> {
    let (out_c, in_c, k) = c.weight.dim();
    (0..out_c)
        .map(|o| {
            (0..k)
                .flat_map(|t| (0..in_c).map(move |ci| (t, ci)))
                .map(|(t, ci)| c.weight[[o, ci, t]])
                .collect()
        })
        .collect()
}

/// The core's Conv1d op for `c` with its quantized weights (in [`conv_rows`]' order), biases and multipliers.
fn conv_op(
    c: &Conv1d,
    weights: Vec<i8>,
    bias: Vec<i32>,
    requant: Vec<tickq_core::requant::QuantMultiplier>,
) -> OpSpec {
    let (out_c, in_c, k) = c.weight.dim();
    OpSpec::Conv1d {
        out_channels: out_c,
        in_channels: in_c,
        kernel: k,
        stride: c.stride,
        dilation: c.dilation,
        padding: match c.padding {
            crate::model::Padding::Valid => encode::Padding::Valid,
            crate::model::Padding::Causal => encode::Padding::Causal,
        },
        weights,
        bias,
        requant,
    }
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

#[cfg(test)]
mod tests;

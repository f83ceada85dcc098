//! Troubleshooting aids: which layer costs the accuracy?
//!
//! - [`quantization_sensitivity`] quantizes one tensor at a time and keeps the
//!   rest of the model in f32: the model input, each Dense or Conv1d layer
//!   (its per-channel int8 weights and its int8 output, with a following ReLU,
//!   ReLU6 or Clamp fused as the quantizer fuses it), and each other tensor the
//!   quantizer calibrates (average-pool outputs, Tanh and Sigmoid tables).
//!   It simulates this in f32 with fake quantization (quantize, then
//!   dequantize) using the parameters [`super::static_quantize_with`] chose,
//!   so the ranges, scales, zero points, weight scales and the fpga
//!   power-of-two rounding are exactly those of the blob.
//! - [`pruning_sensitivity`] prunes one layer at a time (L1 unstructured, on a
//!   clone, without fine-tuning).
//! - [`range_rows`] is the range report of `report.md`: per quantized tensor
//!   the calibrated range and the fraction of values clipped at calibration
//!   and on held-out data.
//!
//! Each layer's row gives the accuracy and macro-F1 on the evaluation data and
//! the change against the f32 model; [`sort_worst_first`] orders the rows.
//!
//! The simulation differs from the blob in what it leaves out on purpose: the
//! other tensors stay f32, and biases stay f32 (the blob's int32 biases are
//! 2^-31 of the accumulator range away from them).

use std::fmt::Write as _;

use ndarray::{ArrayView2, Axis};
use serde::Serialize;

use tickq_core::encode::EncodeOptions;

use super::{
    QParams, QuantConfig, QuantError, QuantizedModel, channel_weight_scale, fused_activation,
    quantize_weight,
};
use crate::eval::{Metrics, agreement};
use crate::model::{Layer, Sequential, Tensor};
use crate::prune::{ModelPruner, PruneError};
use crate::report::{QuantSummary, RangeRow};

use super::observer::Range;
use super::{ExportInfo, clipped_fractions};

/// Rows are run through the model this many at a time.
const CHUNK: usize = 1024;

/// Labelled, standardized samples to score a model on.
#[derive(Debug, Clone, Copy)]
pub struct EvalSet<'a> {
    /// Standardized samples, `[N, T*F]` (what the f32 model takes).
    pub x: ArrayView2<'a, f32>,
    /// The class of each sample.
    pub y: &'a [u8],
    /// Class names, by index.
    pub labels: &'a [String],
}

/// Accuracy and macro-F1 of one model on an [`EvalSet`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// Fraction of samples predicted correctly.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 scores.
    pub macro_f1: f64,
}

/// The effect of quantizing (or pruning) one layer alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSensitivity {
    /// The layer's name (`fc1`), `input` for the input quantizer, or
    /// `#index kind` for an unnamed layer.
    pub layer: String,
    /// `input`, or the layer's `type` as in the architecture file (`dense`,
    /// `conv1d`, `tanh`, `avgpool1d`, ...).
    pub kind: String,
    /// Index of the layer in the f32 model (`None` for the input).
    pub index: Option<usize>,
    /// Accuracy with this layer alone quantized (or pruned).
    pub accuracy: f64,
    /// Macro-F1 with this layer alone quantized (or pruned).
    pub macro_f1: f64,
    /// `accuracy` minus the f32 model's accuracy (negative: worse).
    pub accuracy_change: f64,
    /// `macro_f1` minus the f32 model's macro-F1.
    pub macro_f1_change: f64,
    /// Fraction of samples where the prediction equals the f32 model's.
    pub agreement: f64,
}

/// The result of [`quantization_sensitivity`].
#[derive(Debug, Clone)]
pub struct QuantSensitivity {
    /// The f32 model's score.
    pub float: Score,
    /// One row per quantized tensor, worst first.
    pub layers: Vec<LayerSensitivity>,
    /// The whole model statically quantized with the same settings (the
    /// parameters the simulation used, the ranges and the calibration warnings).
    pub quantized: QuantizedModel,
}

/// The result of [`pruning_sensitivity`].
#[derive(Debug, Clone)]
pub struct PruneSensitivity {
    /// The f32 model's score.
    pub float: Score,
    /// The fraction of each layer's weights that is zero in its row.
    pub amount: f32,
    /// One row per Dense or Conv1d layer, worst first.
    pub layers: Vec<LayerSensitivity>,
}

/// Orders rows worst first: by accuracy change, then by macro-F1 change,
/// then by agreement with the f32 model, ascending; ties keep their order
/// (model order).
pub fn sort_worst_first(rows: &mut [LayerSensitivity]) {
    rows.sort_by(|a, b| {
        a.accuracy_change
            .total_cmp(&b.accuracy_change)
            .then(a.macro_f1_change.total_cmp(&b.macro_f1_change))
            .then(a.agreement.total_cmp(&b.agreement))
    });
}

/// Quantizes one tensor of `model` at a time, the rest staying f32, and
/// scores each variant on `eval`.
///
/// `calibration` and `info` are what [`super::static_quantize_with`] takes;
/// the model is quantized whole first, so every refusal (an unsupported layer
/// or setting, bad calibration data) comes out here as it would at export
/// time, naming the layer and what to change.
///
/// # Errors
///
/// The [`QuantError`] of [`super::static_quantize_with`].
///
/// # Panics
///
/// If `eval.x` has the wrong number of columns for `model`.
pub fn quantization_sensitivity(
    model: &Sequential,
    calibration: ArrayView2<'_, f32>,
    info: &ExportInfo,
    config: &QuantConfig,
    options: &EncodeOptions,
    eval: &EvalSet<'_>,
) -> Result<QuantSensitivity, QuantError> {
    // The blob holds the effective weights; so does the simulation.
    let mut model = model.clone();
    if model.has_masks() {
        model.apply_masks();
    }
    let quantized = super::static_quantize_with(&model, calibration, info, config, options)?;
    let float_pred = model.predict(eval.x);
    let float = score(&float_pred, eval);
    let limits = config.activation_limits();
    let mut layers = Vec::with_capacity(quantized.ranges.len());
    for range in &quantized.ranges {
        let qp = QParams {
            scale: range.scale,
            zero_point: range.zero_point,
        };
        // The layer whose weights are quantized with this output: the layer
        // itself, or the Dense / Conv1d layer that this activation is fused into.
        let weighted = range.layer.and_then(|j| match model.layers.get(j) {
            Some(Layer::Dense(_) | Layer::Conv1d(_)) => Some(j),
            _ => j
                .checked_sub(1)
                .filter(|&w| fused_activation(&model, w).is_some()),
        });
        let variant;
        let run = match weighted {
            Some(w) => {
                let mut m = model.clone();
                fake_quantize_weights(&mut m.layers[w], config);
                variant = m;
                &variant
            }
            None => &model,
        };
        // With a fused activation, the quantizer clamps the requantized sum to
        // the activation's int8 interval; quantizing is monotone, so applying
        // the activation in f32 and then fake-quantizing gives the same values.
        let pred =
            predict_fake_quantized(run, eval.x, range.layer, |v| qp.fake_quantize(v, limits));
        let (layer, kind, index) = match (weighted, range.layer) {
            (Some(w), _) => (
                weighted_name(&model, w),
                model.layers[w].kind().to_string(),
                Some(w),
            ),
            (None, Some(j)) => (
                range.tensor.clone(),
                model.layers.get(j).map_or("?", Layer::kind).to_string(),
                Some(j),
            ),
            (None, None) => ("input".to_string(), "input".to_string(), None),
        };
        layers.push(row(layer, kind, index, &pred, &float_pred, float, eval));
    }
    sort_worst_first(&mut layers);
    Ok(QuantSensitivity {
        float,
        layers,
        quantized,
    })
}

/// Prunes each Dense and Conv1d layer of `model` alone to `amount` (L1
/// unstructured, as [`ModelPruner::unstructured_pruning`]; weights the model
/// already masks count towards it) without fine-tuning, and scores each
/// variant on `eval`. `model` itself is not changed.
///
/// # Errors
///
/// [`PruneError::Amount`] outside `[0, 1)` and [`PruneError::NothingToPrune`]
/// for a model without Dense or Conv1d layers.
///
/// # Panics
///
/// If `eval.x` has the wrong number of columns for `model`.
pub fn pruning_sensitivity(
    model: &Sequential,
    amount: f32,
    eval: &EvalSet<'_>,
) -> Result<PruneSensitivity, PruneError> {
    let float_pred = model.predict(eval.x);
    let float = score(&float_pred, eval);
    let mut layers = Vec::new();
    for (index, layer) in model.layers.iter().enumerate() {
        if !matches!(layer, Layer::Dense(_) | Layer::Conv1d(_)) {
            continue;
        }
        let name = weighted_name(model, index);
        let mut m = model.clone();
        ModelPruner::new(&mut m).unstructured_pruning(&[name.as_str()], amount)?;
        let pred = m.predict(eval.x);
        layers.push(row(
            name,
            layer.kind().to_string(),
            Some(index),
            &pred,
            &float_pred,
            float,
            eval,
        ));
    }
    if layers.is_empty() {
        return Err(PruneError::NothingToPrune);
    }
    sort_worst_first(&mut layers);
    Ok(PruneSensitivity {
        float,
        amount,
        layers,
    })
}

/// The range report of `quantized`: one [`RangeRow`] per quantized tensor,
/// with the fraction of `held_out` values (standardized samples, usually the
/// test split) that its encoding clips.
pub fn range_rows(
    model: &Sequential,
    quantized: &QuantizedModel,
    held_out: ArrayView2<'_, f32>,
) -> Vec<RangeRow> {
    let probes: Vec<_> = quantized
        .ranges
        .iter()
        .map(|r| {
            (
                r.layer,
                Range::new(r.calibrated.min, r.calibrated.max),
                r.scale,
            )
        })
        .collect();
    quantized
        .ranges
        .iter()
        .zip(clipped_fractions(model, held_out, &probes))
        .map(|(r, clipped)| RangeRow {
            clipped_test: Some(clipped),
            ..RangeRow::from(r)
        })
        .collect()
}

/// The quantization part of a [`SensitivityReport`].
#[derive(Debug, Clone, Serialize)]
pub struct QuantSection {
    /// The quantization settings.
    pub settings: QuantSummary,
    /// One row per quantized tensor, worst first.
    pub layers: Vec<LayerSensitivity>,
    /// The range report: calibrated range and clipped fractions per tensor
    /// (`clipped_test` on the test split).
    pub ranges: Vec<RangeRow>,
    /// Calibration warnings.
    pub warnings: Vec<String>,
}

/// The pruning part of a [`SensitivityReport`].
#[derive(Debug, Clone, Serialize)]
pub struct PruneSection {
    /// The fraction of each layer's weights that is zero in its row.
    pub amount: f32,
    /// One row per Dense or Conv1d layer, worst first.
    pub layers: Vec<LayerSensitivity>,
}

/// What `tickq sensitivity` prints (text) or writes (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct SensitivityReport {
    /// Model name.
    pub model: String,
    /// The split the rows are scored on (`validation` or `test`).
    pub split: String,
    /// Samples in that split.
    pub samples: usize,
    /// The f32 model's score on it.
    pub float: Score,
    /// Quantization sensitivity and the range report, when asked for.
    pub quantization: Option<QuantSection>,
    /// Pruning sensitivity, when asked for.
    pub pruning: Option<PruneSection>,
}

impl SensitivityReport {
    /// Renders the report as aligned text tables.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "model `{}`, {} split ({} samples): f32 accuracy {:.2} %, macro-F1 {:.4}",
            self.model,
            self.split,
            self.samples,
            100.0 * self.float.accuracy,
            self.float.macro_f1
        );
        if let Some(q) = &self.quantization {
            let _ = writeln!(
                s,
                "\nquantization sensitivity: one tensor int8 at a time, the rest f32 (backend {}, dtype {}, observer {}, {} calibration samples), worst first",
                q.settings.backend,
                q.settings.dtype,
                q.settings.observer,
                q.settings.calibration_samples
            );
            table(&mut s, &q.layers);
            let _ = writeln!(
                s,
                "\nranges: calibrated int8 range per tensor and the fraction of values it clips"
            );
            let _ = writeln!(
                s,
                "{:<16} {:>11} {:>11} {:>11} {:>11} {:>10} {:>5} {:>11} {:>11}",
                "tensor",
                "observed lo",
                "observed hi",
                "encoded lo",
                "encoded hi",
                "scale",
                "zp",
                "clip calib",
                "clip test"
            );
            for r in &q.ranges {
                let _ = writeln!(
                    s,
                    "{:<16} {:>11.4} {:>11.4} {:>11.4} {:>11.4} {:>10.6} {:>5} {:>10.3}% {:>11}",
                    r.tensor,
                    r.observed[0],
                    r.observed[1],
                    r.calibrated[0],
                    r.calibrated[1],
                    r.scale,
                    r.zero_point,
                    100.0 * r.clipped_calibration,
                    r.clipped_test
                        .map_or("-".to_string(), |c| format!("{:.3}%", 100.0 * c))
                );
            }
            for w in &q.warnings {
                let _ = writeln!(s, "warning: {w}");
            }
        }
        if let Some(p) = &self.pruning {
            let _ = writeln!(
                s,
                "\npruning sensitivity: one layer at a time, L1 unstructured to {:.0} % zeros, no fine-tuning, worst first",
                100.0 * p.amount
            );
            table(&mut s, &p.layers);
        }
        s
    }
}

/// Appends the rows as an aligned table.
fn table(s: &mut String, rows: &[LayerSensitivity]) {
    let _ = writeln!(
        s,
        "{:<16} {:<16} {:>9} {:>10} {:>9} {:>10} {:>10}",
        "layer", "kind", "accuracy", "change", "macro-F1", "change", "agreement"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<16} {:<16} {:>8.2}% {:>+8.2}pp {:>9.4} {:>+10.4} {:>9.2}%",
            r.layer,
            r.kind,
            100.0 * r.accuracy,
            100.0 * r.accuracy_change,
            r.macro_f1,
            r.macro_f1_change,
            100.0 * r.agreement
        );
    }
}

fn score(pred: &[usize], eval: &EvalSet<'_>) -> Score {
    let m = Metrics::compute(pred, eval.y, eval.labels);
    Score {
        accuracy: m.accuracy,
        macro_f1: m.macro_f1,
    }
}

fn row(
    layer: String,
    kind: String,
    index: Option<usize>,
    pred: &[usize],
    float_pred: &[usize],
    float: Score,
    eval: &EvalSet<'_>,
) -> LayerSensitivity {
    let s = score(pred, eval);
    LayerSensitivity {
        layer,
        kind,
        index,
        accuracy: s.accuracy,
        macro_f1: s.macro_f1,
        accuracy_change: s.accuracy - float.accuracy,
        macro_f1_change: s.macro_f1 - float.macro_f1,
        agreement: agreement(pred, float_pred),
    }
}

/// The name of Dense or Conv1d layer `i` (its parameter prefix).
fn weighted_name(model: &Sequential, i: usize) -> String {
    match model.layers.get(i) {
        Some(Layer::Dense(d)) => d.name.clone(),
        Some(Layer::Conv1d(c)) => c.name.clone(),
        Some(other) => format!("#{i} {}", other.kind()),
        None => format!("#{i}"),
    }
}

/// Replaces the weights of a Dense or Conv1d layer by their int8 values
/// times their per-output-channel scale, exactly as the quantizer computes
/// them (the channel's largest magnitude / 127, a power of two for fpga).
fn fake_quantize_weights(layer: &mut Layer, config: &QuantConfig) {
    let mut channels = match layer {
        Layer::Dense(d) => d.weight.view_mut().into_dyn(),
        Layer::Conv1d(c) => c.weight.view_mut().into_dyn(),
        _ => return,
    };
    for mut channel in channels.outer_iter_mut() {
        let max_abs = channel.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        let w_scale = channel_weight_scale(max_abs, config);
        channel.mapv_inplace(|w| (f64::from(quantize_weight(w, w_scale)) * w_scale) as f32);
    }
}

/// The f32 model's predictions with `fake` applied to the model input
/// (`point` = `None`) or to the output of layer `point`.
fn predict_fake_quantized(
    model: &Sequential,
    x: ArrayView2<'_, f32>,
    point: Option<usize>,
    fake: impl Fn(f32) -> f32,
) -> Vec<usize> {
    let apply = |t: &mut Tensor| match t {
        Tensor::Seq(a) => a.mapv_inplace(&fake),
        Tensor::Flat(a) => a.mapv_inplace(&fake),
    };
    let mut pred = Vec::with_capacity(x.nrows());
    for xb in x.axis_chunks_iter(Axis(0), CHUNK) {
        let mut h = model.input_tensor(xb);
        if point.is_none() {
            apply(&mut h);
        }
        for (j, layer) in model.layers.iter().enumerate() {
            h = layer.forward(h);
            if point == Some(j) {
                apply(&mut h);
            }
        }
        // The first index of the largest logit, as `Sequential::predict`.
        pred.extend(h.to_rows().rows().into_iter().map(|r| {
            r.iter()
                .enumerate()
                .fold(0, |best, (j, &v)| if v > r[best] { j } else { best })
        }));
    }
    pred
}

#[cfg(test)]
mod tests;

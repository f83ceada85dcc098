//! Per-channel weight quantization: int8 weights, effective int32 biases and Q31 multipliers.

use tickq_core::requant::QuantMultiplier;

use super::{QParams, QuantConfig, channel_weight_scale, quantize_weight};

/// The multiplier for `ratio`, or a message saying why it cannot be encoded.
pub(super) fn multiplier(ratio: f64) -> Result<QuantMultiplier, String> {
    QuantMultiplier::from_ratio(ratio).ok_or_else(|| {
        format!(
            "requantization ratio {ratio:e} is outside what a Q31 multiplier can encode (0, 2^30): check for exploding or all-zero activations"
        )
    })
}

/// int8 weights, effective int32 biases and multipliers of one weighted layer.
pub(super) struct QuantizedChannels {
    pub(super) weights: Vec<i8>,
    pub(super) bias: Vec<i32>,
    pub(super) requant: Vec<QuantMultiplier>,
}

/// Quantizes `rows` (one f32 row per output channel, already in the core's
/// column order) per channel, with the input zero point folded into the bias.
pub(super) fn quantize_channels(
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

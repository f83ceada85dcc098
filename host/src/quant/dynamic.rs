//! Dynamic quantization: int8 per-channel weights and run-time activation exponents, with no calibration data.
//!
//! The blob marks every layer with the dynamic flag; `docs/ARITHMETIC.md` ("Dynamic quantization") fixes the
//! arithmetic the core runs.
//! Each tensor gets a static reference scale here (1 for the input, `c * 2^-p` for a Dense or Conv1d output with
//! `c = 6` after a fused ReLU6 and 1 otherwise, the input's for a pool or a flatten), and the core adds a
//! power-of-two exponent per inference.
//! Dense and Conv1d layers, each optionally followed by a fused ReLU or ReLU6, and the max, average and global
//! average pools and flatten between them are supported; anything else is refused with a message naming the
//! layer.

use ndarray::ArrayView2;
use tickq_core::encode::{self, EncodeOptions, LayerSpec, ModelSpec, OpSpec, WeightFormat};
use tickq_core::requant::QuantMultiplier;

use super::checks::{CONV_NEEDS_SEQUENCE, DENSE_NEEDS_VECTOR, POOL_NEEDS_SEQUENCE, Walk};
use super::{
    ExportInfo, QuantConfig, QuantError, QuantizedModel, channels::multiplier, check_structure,
    conv_op, conv_rows, dense_rows, layer_label, quantize_weight, static_quantize,
};
use crate::model::{Architecture, Layer, LayerSpec as ArchLayer, Sequential};

/// What to change when a layer cannot be dynamically quantized.
const DYNAMIC_LAYERS: &str = "dynamic quantization supports only Dense and Conv1d layers (each optionally followed by ReLU or ReLU6), max, average and global average pooling, and flatten; quantize this model statically (tickq quantize without --mode dynamic)";

/// Quantizes one f32 model, statically (with calibration data) or dynamically (without).
#[derive(Debug, Clone, Copy)]
pub struct ModelQuantizer<'m> {
    model: &'m Sequential,
    info: &'m ExportInfo,
}

impl<'m> ModelQuantizer<'m> {
    /// A quantizer for `model`, whose blob records `info` (names, standardization, data hash).
    pub fn new(model: &'m Sequential, info: &'m ExportInfo) -> Self {
        ModelQuantizer { model, info }
    }

    /// Static quantization with calibration data: [`static_quantize`].
    ///
    /// # Errors
    ///
    /// As [`static_quantize`].
    pub fn static_quantize(
        &self,
        calibration: ArrayView2<'_, f32>,
        config: &QuantConfig,
    ) -> Result<QuantizedModel, QuantError> {
        static_quantize(self.model, calibration, self.info, config)
    }

    /// Dynamic quantization: int8 per-channel symmetric weights, activations scaled at run time by a power of
    /// two chosen from each input's range. Needs no calibration data.
    ///
    /// # Errors
    ///
    /// [`QuantError::Layer`] naming the first layer that is not a Dense or Conv1d (with an optional fused ReLU
    /// or ReLU6), a pool or a flatten, or that the arithmetic cannot represent; [`QuantError::NormalizerWidth`]
    /// for a normalizer of the wrong width.
    pub fn dynamic_quantize(&self) -> Result<QuantizedModel, QuantError> {
        let masked;
        let model = if self.model.has_masks() {
            let mut m = self.model.clone();
            m.apply_masks();
            masked = m;
            &masked
        } else {
            self.model
        };
        dynamic_quantize(model, self.info)
    }
}

/// Checks from the architecture alone that dynamic quantization supports the model: only Dense and Conv1d
/// layers (each optionally followed by a ReLU or ReLU6), max, average and global average pools, and flatten.
///
/// [`ModelQuantizer::dynamic_quantize`] applies this rule first, and a pipeline applies it to a `dynamic = true`
/// stage's model before the first stage runs.
///
/// # Errors
///
/// [`QuantError::Layer`] naming the first layer that does not fit and what to do instead.
pub fn check_dynamic_arch(arch: &Architecture) -> Result<(), QuantError> {
    let refuse = |i: usize, reason: String| QuantError::Layer {
        index: i,
        name: match (arch.layers.get(i), arch.param_name(i)) {
            (Some(spec), Some(name)) => format!("{name} {}", spec.kind()),
            (Some(spec), None) => format!("#{i} {}", spec.kind()),
            (None, _) => format!("#{i}"),
        },
        reason,
    };
    let mut i = 0;
    while i < arch.layers.len() {
        let weighted = match arch.layers[i] {
            ArchLayer::Dense { .. } | ArchLayer::Conv1d { .. } => true,
            ArchLayer::MaxPool1d { .. }
            | ArchLayer::AvgPool1d { .. }
            | ArchLayer::GlobalAvgPool
            | ArchLayer::Flatten => false,
            _ => return Err(refuse(i, DYNAMIC_LAYERS.into())),
        };
        let fused = weighted
            && matches!(
                arch.layers.get(i + 1),
                Some(ArchLayer::ReLU | ArchLayer::ReLU6)
            );
        i += if fused { 2 } else { 1 };
    }
    Ok(())
}

/// The dynamic form of one Dense or Conv1d layer's weights (rows in the core's order) and biases.
struct DynamicWeighted {
    weights: Vec<i8>,
    bias: Vec<i32>,
    requant: Vec<QuantMultiplier>,
    /// The output's reference scale `c * 2^-p`.
    s_ref: f64,
    act_min: i8,
    act_max: i8,
    /// The biases' exponent `beta`.
    beta: i8,
}

/// Quantizes one weighted layer for an input of reference scale `s_in` and an optional fused ReLU
/// (`Some(false)`) or ReLU6 (`Some(true)`); errors are the reason, for the caller to name the layer.
fn dynamic_weighted(
    rows: &[Vec<f32>],
    bias: &[f32],
    s_in: f32,
    relu6: Option<bool>,
) -> Result<DynamicWeighted, String> {
    // Per-channel symmetric weights.
    let row_len = rows.first().map_or(0, Vec::len);
    let mut weights = Vec::with_capacity(rows.len() * row_len);
    let mut w_scales = Vec::with_capacity(rows.len());
    for (o, row) in rows.iter().enumerate() {
        let max_abs = row.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        if !max_abs.is_finite() {
            return Err(format!("output channel {o} has a non-finite weight"));
        }
        let w_scale = if max_abs > 0.0 {
            f64::from(max_abs) / 127.0
        } else {
            1.0
        };
        let mut abs_sum = 0u64;
        for &w in row {
            let q = quantize_weight(w, w_scale);
            abs_sum += u64::from(q.unsigned_abs());
            weights.push(q);
        }
        if 128 * abs_sum >= 1 << 30 {
            return Err(format!(
                "output channel {o}: too many inputs for the dynamic accumulator bound (128 * sum |w| < 2^30)"
            ));
        }
        w_scales.push(w_scale);
    }
    // The reference scale c * 2^-p: the largest p with c * 2^-p above s_in * max w_scale, so every
    // multiplier is below 1.
    let s_max = f64::from(s_in) * w_scales.iter().fold(0.0f64, |m, &w| m.max(w));
    let c = if relu6 == Some(true) { 6.0 } else { 1.0 };
    let p = (c / s_max).log2().ceil() as i32 - 1;
    let s_ref = c * (-f64::from(p)).exp2();
    if !(s_ref > s_max && s_ref >= f64::from(f32::MIN_POSITIVE) && s_ref < 1e30) {
        return Err(format!(
            "reference scale {s_ref:e} cannot be represented; check for exploding or all-zero weights"
        ));
    }
    let (act_min, act_max) = match relu6 {
        None => (i8::MIN, i8::MAX),
        Some(false) => (0, i8::MAX),
        Some(true) => (
            0,
            i8::try_from(p)
                .ok()
                .filter(|p| (0..=126).contains(p))
                .ok_or_else(|| format!("ReLU6 cap exponent {p} is outside [0, 126]"))?,
        ),
    };
    let mut requant = Vec::with_capacity(rows.len());
    for &w_scale in &w_scales {
        let ratio = f64::from(s_in) * w_scale / s_ref;
        let m = QuantMultiplier::from_ratio(ratio)
            .filter(|m| m.right_shift() >= 31)
            .or_else(|| QuantMultiplier::new_checked(i32::MAX, 31))
            .ok_or_else(|| "no multiplier".to_string())?;
        requant.push(m);
    }
    // Biases at one per-layer exponent: the smallest beta with |b / (s_in w_scale)| * 2^-beta <= 2^29.
    let real: Vec<f64> = bias
        .iter()
        .zip(&w_scales)
        .map(|(&b, &w_scale)| f64::from(b) / (f64::from(s_in) * w_scale))
        .collect();
    if real.iter().any(|v| !v.is_finite()) {
        return Err("a bias is not finite".into());
    }
    let max_b = real.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let beta = if max_b > 0.0 {
        ((max_b.log2() - 29.0).ceil() as i32).clamp(-128, 127)
    } else {
        0
    };
    let bias = real
        .iter()
        .map(|v| (v * (-f64::from(beta)).exp2()).round())
        .map(|v| v.clamp(-f64::from(1 << 30), f64::from(1 << 30)) as i32)
        .collect();
    Ok(DynamicWeighted {
        weights,
        bias,
        requant,
        s_ref,
        act_min,
        act_max,
        beta: beta as i8,
    })
}

/// See [`ModelQuantizer::dynamic_quantize`].
fn dynamic_quantize(model: &Sequential, info: &ExportInfo) -> Result<QuantizedModel, QuantError> {
    check_dynamic_arch(&model.arch)?;
    let time_steps = model.arch.input.time_steps;
    let features = model.arch.input.features;
    if info.mean.len() != features || info.std.len() != features {
        return Err(QuantError::NormalizerWidth {
            means: info.mean.len(),
            stds: info.std.len(),
            features,
        });
    }
    // The shapes entering each layer; the backend only matters to static quantization's fpga checks.
    let shapes = check_structure(model, &QuantConfig::default())?;
    let refuse = |i: usize, reason: String| QuantError::Layer {
        index: i,
        name: layer_label(model, i),
        reason,
    };
    // The input's reference scale is 1: q * 2^e approximates the standardized feature.
    let mut a = Vec::with_capacity(features);
    let mut b = Vec::with_capacity(features);
    for (&mean, &std) in info.mean.iter().zip(&info.std) {
        let denom = f64::from(std);
        a.push((1.0 / denom) as f32);
        b.push((-f64::from(mean) / denom) as f32);
    }
    let passing = |op: OpSpec, s_in: f32| LayerSpec {
        op,
        input: None,
        out_scale: s_in,
        out_zero_point: 0,
        act_min: i8::MIN,
        act_max: i8::MAX,
        dynamic: Some(0),
    };
    let mut layers = vec![passing(
        OpSpec::Quantize {
            time_steps,
            features,
            a,
            b,
        },
        1.0,
    )];
    let mut s_in = 1.0f32;
    let mut i = 0;
    while i < model.layers.len() {
        let walk = shapes[i];
        let err = |reason: String| refuse(i, reason);
        match &model.layers[i] {
            layer @ (Layer::Dense(_) | Layer::Conv1d(_)) => {
                let relu6 = match model.layers.get(i + 1) {
                    Some(Layer::ReLU) => Some(false),
                    Some(Layer::ReLU6) => Some(true),
                    _ => None,
                };
                let (rows, bias) = match layer {
                    Layer::Dense(d) => (
                        dense_rows(d, walk).ok_or_else(|| err(DENSE_NEEDS_VECTOR.into()))?,
                        &d.bias,
                    ),
                    Layer::Conv1d(c) => {
                        if !matches!(walk, Walk::Seq { .. }) {
                            return Err(err(CONV_NEEDS_SEQUENCE.into()));
                        }
                        (conv_rows(c), &c.bias)
                    }
                    _ => unreachable!("matched above"),
                };
                let bias: Vec<f32> = bias.iter().copied().collect();
                let q = dynamic_weighted(&rows, &bias, s_in, relu6).map_err(&err)?;
                let op = match layer {
                    Layer::Dense(d) => {
                        let (out_features, in_features) = d.weight.dim();
                        OpSpec::Dense {
                            out_features,
                            in_features,
                            weights: q.weights,
                            bias: q.bias,
                            requant: q.requant,
                        }
                    }
                    Layer::Conv1d(c) => conv_op(c, q.weights, q.bias, q.requant),
                    _ => unreachable!("matched above"),
                };
                layers.push(LayerSpec {
                    op,
                    input: None,
                    out_scale: q.s_ref as f32,
                    out_zero_point: 0,
                    act_min: q.act_min,
                    act_max: q.act_max,
                    dynamic: Some(q.beta),
                });
                s_in = q.s_ref as f32;
                i += if relu6.is_some() { 2 } else { 1 };
                continue;
            }
            Layer::MaxPool1d { kernel, stride } => layers.push(passing(
                OpSpec::MaxPool1d {
                    kernel: *kernel,
                    stride: *stride,
                },
                s_in,
            )),
            layer @ (Layer::AvgPool1d { .. } | Layer::GlobalAvgPool) => {
                let Walk::Seq { time, .. } = walk else {
                    return Err(err(POOL_NEEDS_SEQUENCE.into()));
                };
                // The mean keeps the input's reference scale and exponent: the multiplier is 1 / window.
                let window = match layer {
                    Layer::AvgPool1d { kernel, .. } => *kernel,
                    _ => time,
                };
                let requant = multiplier(1.0 / window as f64).map_err(&err)?;
                let op = match layer {
                    Layer::AvgPool1d { kernel, stride } => OpSpec::AvgPool1d {
                        kernel: *kernel,
                        stride: *stride,
                        requant,
                    },
                    _ => OpSpec::GlobalAvgPool { requant },
                };
                layers.push(passing(op, s_in));
            }
            // A flatten of a vector is nothing to the core.
            Layer::Flatten => {
                if let Walk::Seq { .. } = walk {
                    layers.push(passing(OpSpec::Flatten, s_in));
                }
            }
            // `check_dynamic_arch` refused every other layer, and a fused activation was skipped with its layer.
            _ => return Err(err(DYNAMIC_LAYERS.into())),
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
    // The dynamic Dense and Conv1d kernels read the blocked layout only.
    let options = EncodeOptions::format(WeightFormat::Blocked);
    let blob = encode::encode_with(&spec, &options).map_err(QuantError::Encode)?;
    tickq_core::Model::load(&blob).map_err(QuantError::Load)?;
    Ok(QuantizedModel {
        spec,
        blob,
        ranges: Vec::new(),
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use ndarray::Array2;
    use tickq_core::{Model, Session};

    /// Dense layers with the activations the dynamic path fuses.
    fn mlp_net() -> Architecture {
        mlp(12, &[(32, ReLU6), (16, ReLU)])
    }

    #[test]
    fn dynamic_mlp_agrees_with_f32() {
        for seed in [1u64, 2, 3] {
            let model = seeded_model(mlp_net(), seed);
            let share = agreement(&model, 12, 1000, seed + 10);
            assert!(share >= 0.95, "seed {seed}: agreement {share}");
        }
    }

    /// The share of `n` random inputs on which the dynamic blob of `model` picks the f32 model's class.
    fn agreement(model: &Sequential, features: usize, n: usize, seed: u64) -> f64 {
        let info = export_info(features);
        let q = ModelQuantizer::new(model, &info)
            .dynamic_quantize()
            .unwrap();
        let core = Model::load(&q.blob).unwrap();
        assert!(core.is_dynamic());
        let x = random_inputs(n, model.arch.input_len(), seed);
        let want = model.predict(x.view());
        let mut arena = vec![0u8; core.arena_bytes()];
        let mut session = Session::new(&core, &mut arena).unwrap();
        let agree = x
            .rows()
            .into_iter()
            .zip(&want)
            .filter(|(row, w)| session.run(row.as_slice().unwrap()).signal() == **w)
            .count();
        agree as f64 / n as f64
    }

    #[test]
    fn dynamic_conv_agrees_with_f32() {
        // Every layer kind the dynamic path takes: causal, strided and dilated convolutions with fused ReLU and
        // ReLU6, max, average and global average pooling, and a flatten whose Dense columns are permuted.
        let nets = [
            arch(
                "conv-max",
                3,
                [16, 6],
                &[
                    conv(8, 3).causal().named("c1"),
                    ReLU,
                    conv(8, 3).stride(2).dilation(2),
                    ReLU6,
                    max_pool(2),
                    Flatten,
                    dense(3),
                ],
            ),
            arch(
                "conv-avg",
                3,
                [12, 4],
                &[
                    conv(6, 2),
                    ReLU,
                    avg_pool(2),
                    conv(6, 2).causal(),
                    GlobalAvgPool,
                    dense(8),
                    ReLU,
                    dense(3),
                ],
            ),
        ];
        for net in nets {
            for seed in [1u64, 2] {
                let name = net.name.clone();
                let model = seeded_model(net.clone(), seed);
                let share = agreement(&model, net.input.features, 1000, seed + 10);
                assert!(share >= 0.95, "{name} seed {seed}: agreement {share}");
            }
        }
    }

    #[test]
    fn dynamic_refuses_other_layers_naming_them() {
        let layers = [conv(8, 3).named("conv_in"), Tanh, Flatten, dense(3)];
        let model = seeded_model(arch("conv", 3, [8, 4], &layers), 1);
        let info = export_info(4);
        let err = ModelQuantizer::new(&model, &info)
            .dynamic_quantize()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("layer 1 (#1 tanh)"), "{msg}");
        assert!(msg.contains("static"), "{msg}");
        // The architecture alone gives the same refusal, so a pipeline can give it before training.
        let arch_err = check_dynamic_arch(&model.arch).unwrap_err();
        assert_eq!(arch_err.to_string(), msg);
        check_dynamic_arch(&mlp_net()).unwrap();
        check_dynamic_arch(&arch(
            "c",
            3,
            [8, 4],
            &[conv(8, 3), ReLU6, Flatten, dense(3)],
        ))
        .unwrap();
        let tanh = mlp(12, &[(32, ReLU6), (16, Tanh)]);
        let e = check_dynamic_arch(&tanh).unwrap_err();
        assert!(e.to_string().starts_with("layer 3 (#3 tanh)"), "{e}");
        // A ReLU that nothing fuses (after a pool) is refused too.
        let loose = arch(
            "c",
            3,
            [8, 4],
            &[conv(8, 3), max_pool(2), ReLU, Flatten, dense(3)],
        );
        let e = check_dynamic_arch(&loose).unwrap_err();
        assert!(e.to_string().starts_with("layer 2 (#2 relu)"), "{e}");
    }

    #[test]
    fn static_quantize_forwards() {
        let model = seeded_model(mlp_net(), 1);
        let info = export_info(12);
        let x = Array2::from_elem((64, 12), 0.5f32);
        let q = ModelQuantizer::new(&model, &info)
            .static_quantize(x.view(), &QuantConfig::default())
            .unwrap();
        assert!(!Model::load(&q.blob).unwrap().is_dynamic());
    }
}

//! Dynamic quantization: int8 per-channel weights and run-time activation exponents, with no calibration data.
//!
//! The blob marks every layer with the dynamic flag; `docs/ARITHMETIC.md` ("Dynamic quantization") fixes the
//! arithmetic the core runs.
//! Each tensor gets a static reference scale here (1 for the input, `c * 2^-p` for a Dense output with `c = 6`
//! after a fused ReLU6 and 1 otherwise), and the core adds a power-of-two exponent per inference.
//! Only Dense layers, optionally followed by a fused ReLU or ReLU6, on a vector input are supported; anything
//! else is refused with a message naming the layer.

use ndarray::ArrayView2;
use tickq_core::encode::{self, EncodeOptions, LayerSpec, ModelSpec, OpSpec, WeightFormat};
use tickq_core::requant::QuantMultiplier;

use super::{
    ExportInfo, QuantConfig, QuantError, QuantizedModel, layer_label, quantize_weight,
    static_quantize,
};
use crate::model::{Architecture, Layer, LayerSpec as ArchLayer, Sequential};

/// What to change when a layer cannot be dynamically quantized.
const DYNAMIC_ONLY_DENSE: &str = "dynamic quantization supports only Dense layers (each optionally followed by ReLU or ReLU6) on a vector input; quantize this model statically (tickq quantize without --mode dynamic)";

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
    /// [`QuantError::Layer`] naming the first layer that is not a Dense (with an optional fused ReLU or ReLU6)
    /// or that the arithmetic cannot represent; [`QuantError::NormalizerWidth`] for a normalizer of the wrong width.
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

/// Checks from the architecture alone that dynamic quantization supports the model: a vector input
/// (`time_steps = 1`) and only Dense layers, each optionally followed by a ReLU or ReLU6.
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
        if !matches!(arch.layers[i], ArchLayer::Dense { .. }) {
            return Err(refuse(i, DYNAMIC_ONLY_DENSE.into()));
        }
        if arch.input.time_steps != 1 {
            return Err(refuse(
                i,
                format!(
                    "the input has {} time steps; {DYNAMIC_ONLY_DENSE}",
                    arch.input.time_steps
                ),
            ));
        }
        let fused = matches!(
            arch.layers.get(i + 1),
            Some(ArchLayer::ReLU | ArchLayer::ReLU6)
        );
        i += if fused { 2 } else { 1 };
    }
    Ok(())
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
    let mut layers = vec![LayerSpec {
        op: OpSpec::Quantize {
            time_steps,
            features,
            a,
            b,
        },
        input: None,
        out_scale: 1.0,
        out_zero_point: 0,
        act_min: i8::MIN,
        act_max: i8::MAX,
        dynamic: Some(0),
    }];
    let mut s_in = 1.0f32;
    let mut width = features;
    let mut i = 0;
    while i < model.layers.len() {
        let Layer::Dense(d) = &model.layers[i] else {
            return Err(refuse(i, DYNAMIC_ONLY_DENSE.into()));
        };
        if time_steps != 1 {
            return Err(refuse(
                i,
                format!("the input has {time_steps} time steps; {DYNAMIC_ONLY_DENSE}"),
            ));
        }
        let (out_f, in_f) = d.weight.dim();
        if in_f != width {
            return Err(refuse(
                i,
                format!("expects {in_f} inputs but receives {width}"),
            ));
        }
        let relu6 = match model.layers.get(i + 1) {
            Some(Layer::ReLU) => Some(false),
            Some(Layer::ReLU6) => Some(true),
            _ => None,
        };
        let err = |reason: String| refuse(i, reason);
        // Per-channel symmetric weights.
        let mut weights = Vec::with_capacity(out_f * in_f);
        let mut w_scales = Vec::with_capacity(out_f);
        for o in 0..out_f {
            let row = d.weight.row(o);
            let max_abs = row.iter().fold(0.0f32, |m, w| m.max(w.abs()));
            if !max_abs.is_finite() {
                return Err(err(format!("output channel {o} has a non-finite weight")));
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
                return Err(err(format!(
                    "output channel {o}: too many inputs for the dynamic accumulator bound (128 * sum |w| < 2^30)"
                )));
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
            return Err(err(format!(
                "reference scale {s_ref:e} cannot be represented; check for exploding or all-zero weights"
            )));
        }
        let (act_min, act_max) = match relu6 {
            None => (i8::MIN, i8::MAX),
            Some(false) => (0, i8::MAX),
            Some(true) => (
                0,
                i8::try_from(p)
                    .ok()
                    .filter(|p| (0..=126).contains(p))
                    .ok_or_else(|| err(format!("ReLU6 cap exponent {p} is outside [0, 126]")))?,
            ),
        };
        let mut requant = Vec::with_capacity(out_f);
        for &w_scale in &w_scales {
            let ratio = f64::from(s_in) * w_scale / s_ref;
            let m = QuantMultiplier::from_ratio(ratio)
                .filter(|m| m.right_shift() >= 31)
                .or_else(|| QuantMultiplier::new_checked(i32::MAX, 31))
                .ok_or_else(|| err("no multiplier".into()))?;
            requant.push(m);
        }
        // Biases at one per-layer exponent: the smallest beta with |b / (s_in w_scale)| * 2^-beta <= 2^29.
        let real: Vec<f64> = (0..out_f)
            .map(|o| f64::from(d.bias[o]) / (f64::from(s_in) * w_scales[o]))
            .collect();
        if real.iter().any(|v| !v.is_finite()) {
            return Err(err("a bias is not finite".into()));
        }
        let max_b = real.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let beta = if max_b > 0.0 {
            ((max_b.log2() - 29.0).ceil() as i32).clamp(-128, 127)
        } else {
            0
        };
        let bias: Vec<i32> = real
            .iter()
            .map(|v| (v * (-f64::from(beta)).exp2()).round())
            .map(|v| v.clamp(-f64::from(1 << 30), f64::from(1 << 30)) as i32)
            .collect();
        layers.push(LayerSpec {
            op: OpSpec::Dense {
                out_features: out_f,
                in_features: in_f,
                weights,
                bias,
                requant,
            },
            input: None,
            out_scale: s_ref as f32,
            out_zero_point: 0,
            act_min,
            act_max,
            dynamic: Some(beta as i8),
        });
        s_in = s_ref as f32;
        width = out_f;
        i += if relu6.is_some() { 2 } else { 1 };
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
    // The dynamic Dense kernel reads the blocked layout only.
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
            let info = export_info(12);
            let q = ModelQuantizer::new(&model, &info)
                .dynamic_quantize()
                .unwrap();
            let core = Model::load(&q.blob).unwrap();
            assert!(core.is_dynamic());
            let x = random_inputs(1000, 12, seed + 10);
            let want = model.predict(x.view());
            let mut arena = vec![0u8; core.arena_bytes()];
            let mut session = Session::new(&core, &mut arena).unwrap();
            let agree = x
                .rows()
                .into_iter()
                .zip(&want)
                .filter(|(row, w)| session.run(row.as_slice().unwrap()).signal() == **w)
                .count();
            assert!(agree >= 950, "seed {seed}: agreement {agree}/1000");
        }
    }

    #[test]
    fn dynamic_refuses_conv_naming_the_layer() {
        let layers = [conv(8, 3).named("conv_in"), Flatten, dense(3)];
        let model = seeded_model(arch("conv", 3, [8, 4], &layers), 1);
        let info = export_info(4);
        let err = ModelQuantizer::new(&model, &info)
            .dynamic_quantize()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("layer 0") && msg.contains("conv_in"), "{msg}");
        assert!(msg.contains("static"), "{msg}");
        // The architecture alone gives the same refusal, so a pipeline can give it before training.
        let arch_err = check_dynamic_arch(&model.arch).unwrap_err();
        assert_eq!(arch_err.to_string(), msg);
        check_dynamic_arch(&mlp_net()).unwrap();
        let tanh = mlp(12, &[(32, ReLU6), (16, Tanh)]);
        let e = check_dynamic_arch(&tanh).unwrap_err();
        assert!(e.to_string().starts_with("layer 3 (#3 tanh)"), "{e}");
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

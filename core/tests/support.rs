//! Shared helpers: a seeded generator and small quantization helpers that play the host's role.

#![allow(dead_code)]

use tickq_core::encode::{LayerSpec, ModelSpec, OpSpec};
use tickq_core::requant::QuantMultiplier;

/// SplitMix64: a tiny seeded generator, so every test is reproducible.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `[0, n)`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn i8(&mut self) -> i8 {
        self.next_u64() as i8
    }
}

/// Affine int8 quantization parameters of a tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Qp {
    pub scale: f32,
    pub zp: i8,
}

impl Qp {
    /// Parameters covering `[lo, hi]` (widened to include 0) with 256 levels.
    pub fn from_range(lo: f32, hi: f32) -> Qp {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = ((hi - lo) / 255.0).max(1e-6);
        let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i8;
        Qp { scale, zp }
    }

    pub fn quantize(&self, x: f32) -> i8 {
        (x / self.scale + f32::from(self.zp))
            .round()
            .clamp(-128.0, 127.0) as i8
    }

    pub fn dequantize(&self, q: i8) -> f32 {
        self.scale * (f32::from(q) - f32::from(self.zp))
    }

    /// The int8 clamp of a fused ReLU.
    pub fn relu(&self) -> (i8, i8) {
        (self.zp, 127)
    }
}

/// Symmetric per-channel weight quantization: returns (w_q, w_scale) for one row.
pub fn quantize_row(row: &[f32]) -> (Vec<i8>, f32) {
    let max = row.iter().fold(0.0f32, |m, &w| m.max(w.abs())).max(1e-8);
    let scale = max / 127.0;
    (
        row.iter()
            .map(|&w| (w / scale).round().clamp(-127.0, 127.0) as i8)
            .collect(),
        scale,
    )
}

/// A quantized Dense (or Conv1d, with rows of `k * c_in`) layer derived from f32 weights, as the host would.
pub struct QuantDense {
    pub weights: Vec<i8>,
    pub w_scales: Vec<f32>,
    pub bias_q: Vec<i32>,
    pub bias_eff: Vec<i32>,
    pub requant: Vec<QuantMultiplier>,
}

/// Quantizes `[out][row_len]` weights and biases for input params `input` and output params `output`.
pub fn quantize_dense(w: &[f32], b: &[f32], row_len: usize, input: Qp, output: Qp) -> QuantDense {
    let mut q = QuantDense {
        weights: vec![],
        w_scales: vec![],
        bias_q: vec![],
        bias_eff: vec![],
        requant: vec![],
    };
    for (row, &bias) in w.chunks_exact(row_len).zip(b) {
        let (wq, ws) = quantize_row(row);
        let bq = (f64::from(bias) / (f64::from(input.scale) * f64::from(ws))).round() as i32;
        let sum: i32 = wq.iter().map(|&v| i32::from(v)).sum();
        q.bias_eff.push(bq - i32::from(input.zp) * sum);
        q.bias_q.push(bq);
        q.requant.push(
            QuantMultiplier::from_ratio(
                f64::from(input.scale) * f64::from(ws) / f64::from(output.scale),
            )
            .unwrap(),
        );
        q.weights.extend(wq);
        q.w_scales.push(ws);
    }
    q
}

/// A model spec with generated names.
pub fn spec(layers: Vec<LayerSpec>, features: usize, classes: usize) -> ModelSpec {
    ModelSpec {
        name: "test".into(),
        feature_names: (0..features).map(|i| format!("f{i}")).collect(),
        label_names: (0..classes).map(|i| format!("c{i}")).collect(),
        data_hash: [7; 32],
        tickq_version: "0.1.0-test".into(),
        layers,
    }
}

/// A Quantize layer for `t * f` inputs with the given per-feature mean and std.
pub fn quantize_layer(t: usize, mean: &[f32], std: &[f32], qp: Qp) -> LayerSpec {
    let a = std.iter().map(|&s| 1.0 / (s * qp.scale)).collect();
    let b = mean
        .iter()
        .zip(std)
        .map(|(&m, &s)| f32::from(qp.zp) - m / (s * qp.scale))
        .collect();
    LayerSpec::new(
        OpSpec::Quantize {
            time_steps: t,
            features: mean.len(),
            a,
            b,
        },
        qp.scale,
        qp.zp,
    )
}

/// An identity Quantize layer (mean 0, std 1).
pub fn identity_input(t: usize, f: usize, qp: Qp) -> LayerSpec {
    quantize_layer(t, &vec![0.0; f], &vec![1.0; f], qp)
}

/// A layer spec with a clamp.
pub fn with_clamp(mut l: LayerSpec, clamp: (i8, i8)) -> LayerSpec {
    l.act_min = clamp.0;
    l.act_max = clamp.1;
    l
}

/// A layer spec reading `input`.
pub fn reading(mut l: LayerSpec, input: usize) -> LayerSpec {
    l.input = Some(input);
    l
}

/// Rounds half away from zero and clamps to int8, the rule of the core.
pub fn round_q(v: f64) -> i32 {
    v.round().clamp(-128.0, 127.0) as i32
}

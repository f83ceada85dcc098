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
        feature_spec: None,
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

/// Rounds half away from zero and clamps to int8.
pub fn round_q(v: f64) -> i32 {
    v.round().clamp(-128.0, 127.0) as i32
}

/// Recomputes the CRC after a test patched the blob.
pub fn fix_crc(blob: &mut [u8]) {
    let crc = tickq_core::format::compute_crc(blob);
    blob[tickq_core::format::header::CRC].copy_from_slice(&crc.to_le_bytes());
}

/// A copy of `blob` changed by `f`, with a valid CRC.
pub fn patched(blob: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = blob.to_vec();
    f(&mut b);
    fix_crc(&mut b);
    b
}

/// The byte offset of layer `i`'s entry.
pub fn entry(i: usize) -> usize {
    tickq_core::format::HEADER_LEN + tickq_core::format::ENTRY_LEN * i
}

pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

pub fn dense_spec(rng: &mut Rng, f: usize, o: usize, input: Qp, output: Qp) -> LayerSpec {
    let w: Vec<f32> = (0..o * f).map(|_| rng.range(-1.0, 1.0)).collect();
    let b: Vec<f32> = (0..o).map(|_| rng.range(-0.2, 0.2)).collect();
    dense_layer(&w, &b, f, o, input, output)
}

/// A Dense(`f` -> `o`) layer of the float weights `w` (`o` rows of `f`) and bias `b`, quantized between `input`
/// and `output`.
pub fn dense_layer(w: &[f32], b: &[f32], f: usize, o: usize, input: Qp, output: Qp) -> LayerSpec {
    let d = quantize_dense(w, b, f, input, output);
    LayerSpec::new(
        OpSpec::Dense {
            out_features: o,
            in_features: f,
            weights: d.weights,
            bias: d.bias_eff,
            requant: d.requant,
        },
        output.scale,
        output.zp,
    )
}

#[allow(clippy::too_many_arguments)]
pub fn conv_spec(
    rng: &mut Rng,
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: tickq_core::Padding,
    input: Qp,
    output: Qp,
) -> LayerSpec {
    let w: Vec<f32> = (0..c_out * k * c_in)
        .map(|_| rng.range(-1.0, 1.0))
        .collect();
    let b: Vec<f32> = (0..c_out).map(|_| rng.range(-0.2, 0.2)).collect();
    let d = quantize_dense(&w, &b, k * c_in, input, output);
    LayerSpec::new(
        OpSpec::Conv1d {
            out_channels: c_out,
            in_channels: c_in,
            kernel: k,
            stride,
            dilation,
            padding,
            weights: d.weights,
            bias: d.bias_eff,
            requant: d.requant,
        },
        output.scale,
        output.zp,
    )
}

/// A 12-layer model that uses every layer kind, with a causal conv and two residual adds:
///
/// ```text
///  0 Quantize (8, 3)
///  1 Conv1d causal k3 d2 (8, 4) ReLU
///  2 Lut tanh (8, 4)
///  3 Add(1, 2) (8, 4)
///  4 MaxPool1d k2 s2 (4, 4)
///  5 Conv1d valid k2 (3, 5)
///  6 AvgPool1d k2 s1 (2, 5)
///  7 Flatten (1, 10)
///  8 GlobalAvgPool(5) (1, 5)
///  9 Dense(7) 10 -> 5
/// 10 Add(9, 8) (1, 5)
/// 11 Dense 5 -> 3
/// ```
pub fn every_kind_spec() -> ModelSpec {
    use tickq_core::Padding;
    let mut rng = Rng(99);
    let q0 = Qp::from_range(-3.0, 3.0);
    let q1 = Qp::from_range(0.0, 3.0);
    let q2 = Qp {
        scale: 1.0 / 128.0,
        zp: 0,
    };
    let q3 = Qp::from_range(-1.0, 4.0);
    let q5 = Qp::from_range(-3.0, 3.0);
    let q6 = Qp::from_range(-2.0, 2.0);
    let q8 = Qp::from_range(-2.5, 2.5);
    let q9 = Qp::from_range(-2.0, 2.0);
    let q10 = Qp::from_range(-3.0, 3.0);
    let q11 = Qp::from_range(-4.0, 4.0);
    let mut table = [0i8; 256];
    for (i, e) in table.iter_mut().enumerate() {
        *e = q2.quantize(q1.dequantize((i as i32 - 128) as i8).tanh());
    }
    let add = |a: Qp, b: Qp, out: Qp, other: usize| {
        let s_max = f64::from(a.scale.max(b.scale));
        OpSpec::Add {
            other,
            wa: (f64::from(a.scale) / s_max * 65536.0).round() as i32,
            wb: (f64::from(b.scale) / s_max * 65536.0).round() as i32,
            requant: QuantMultiplier::from_ratio(s_max / (65536.0 * f64::from(out.scale))).unwrap(),
        }
    };
    let ratio = |a: Qp, b: Qp, n: usize| {
        QuantMultiplier::from_ratio(f64::from(a.scale) / (f64::from(b.scale) * n as f64)).unwrap()
    };
    let layers = vec![
        quantize_layer(8, &[0.1, -0.2, 0.3], &[1.5, 0.5, 2.0], q0),
        with_clamp(
            conv_spec(&mut rng, 3, 4, 3, 1, 2, Padding::Causal, q0, q1),
            q1.relu(),
        ),
        LayerSpec::new(OpSpec::Lut { table }, q2.scale, q2.zp),
        reading(LayerSpec::new(add(q1, q2, q3, 2), q3.scale, q3.zp), 1),
        LayerSpec::new(
            OpSpec::MaxPool1d {
                kernel: 2,
                stride: 2,
            },
            q3.scale,
            q3.zp,
        ),
        conv_spec(&mut rng, 4, 5, 2, 1, 1, Padding::Valid, q3, q5),
        LayerSpec::new(
            OpSpec::AvgPool1d {
                kernel: 2,
                stride: 1,
                requant: ratio(q5, q6, 2),
            },
            q6.scale,
            q6.zp,
        ),
        LayerSpec::new(OpSpec::Flatten, q6.scale, q6.zp),
        reading(
            LayerSpec::new(
                OpSpec::GlobalAvgPool {
                    requant: ratio(q5, q8, 3),
                },
                q8.scale,
                q8.zp,
            ),
            5,
        ),
        reading(dense_spec(&mut rng, 10, 5, q6, q9), 7),
        LayerSpec::new(add(q9, q8, q10, 8), q10.scale, q10.zp),
        dense_spec(&mut rng, 5, 3, q10, q11),
    ];
    ModelSpec {
        name: "every-kind".into(),
        feature_names: vec!["ret_1".into(), "spread".into(), "imbalance".into()],
        label_names: vec!["down".into(), "flat".into(), "up".into()],
        data_hash: std::array::from_fn(|i| i as u8),
        tickq_version: "0.1.0".into(),
        layers,
        feature_spec: None,
    }
}

/// The blob of [`every_kind_spec`].
pub fn every_kind_blob() -> Vec<u8> {
    encode_blocked(&every_kind_spec())
}

/// Encodes `spec` with every weighted layer in the blocked layout (weight format 0), whatever the machine: the
/// layout the byte-level tests patch.
pub fn encode_blocked(spec: &ModelSpec) -> Vec<u8> {
    use tickq_core::encode::{EncodeOptions, WeightFormat, encode_with};
    encode_with(spec, &EncodeOptions::format(WeightFormat::Blocked)).unwrap()
}

/// A plain Quantize -> Dense -> Dense MLP blob.
pub fn mlp_blob(f: usize, h: usize, c: usize) -> Vec<u8> {
    let mut rng = Rng(5);
    let q0 = Qp::from_range(-3.0, 3.0);
    let q1 = Qp::from_range(0.0, 4.0);
    let q2 = Qp::from_range(-4.0, 4.0);
    let layers = vec![
        identity_input(1, f, q0),
        with_clamp(dense_spec(&mut rng, f, h, q0, q1), q1.relu()),
        dense_spec(&mut rng, h, c, q1, q2),
    ];
    encode_blocked(&spec(layers, f, c))
}

/// A feature spec of 24 features with every window list in use: [`tickq_core::features::FeatureSpec::default`]
/// with shorter return and volatility lists.
pub fn feature_spec_24() -> tickq_core::features::FeatureSpec {
    use tickq_core::features::{FeatureSpec, WindowList};
    let spec = FeatureSpec {
        return_lags_trades: WindowList::new(&[1, 5]).unwrap(),
        return_lags_ms: WindowList::new(&[1_000]).unwrap(),
        volatility_windows_trades: WindowList::new(&[20]).unwrap(),
        ..FeatureSpec::default()
    };
    assert_eq!(spec.feature_count(), 24);
    spec
}

/// The column names of `spec`, in order.
pub fn spec_names(spec: &tickq_core::features::FeatureSpec) -> Vec<String> {
    let mut names = Vec::new();
    spec.for_each_feature(|n| names.push(n.to_string()));
    names
}

/// A Quantize -> Dense(24 -> 32, ReLU) -> Dense(32 -> 3) model fed by [`feature_spec_24`], which it carries
/// (format version 5), with the spec's column names as its feature names.
pub fn feature_spec_model() -> ModelSpec {
    let mut rng = Rng(0x5bec);
    let q0 = Qp::from_range(-3.0, 3.0);
    let q1 = Qp::from_range(0.0, 4.0);
    let q2 = Qp::from_range(-4.0, 4.0);
    let layers = vec![
        identity_input(1, 24, q0),
        with_clamp(dense_spec(&mut rng, 24, 32, q0, q1), q1.relu()),
        dense_spec(&mut rng, 32, 3, q1, q2),
    ];
    let feature_spec = feature_spec_24();
    ModelSpec {
        feature_names: spec_names(&feature_spec),
        feature_spec: Some(feature_spec),
        ..spec(layers, 24, 3)
    }
}

/// The blob of [`feature_spec_model`], blocked.
pub fn feature_spec_blob() -> Vec<u8> {
    encode_blocked(&feature_spec_model())
}

/// The column names of `fs`, for a blob's metadata (the loader checks they match the spec).
pub fn feature_names(fs: &tickq_core::features::FeatureSpec) -> Vec<String> {
    let mut out = Vec::new();
    fs.for_each_feature(|n| out.push(n.to_string()));
    out
}

/// A blob that carries the feature spec `fs`, over `t` ticks of its features: an MLP for `t = 1`, a causal conv,
/// ReLU, Flatten, Dense otherwise. The input layer standardizes every feature with `mean` and `std`, so that
/// the features spread over the int8 range; `seed` draws the weights.
pub fn stream_blob(
    fs: tickq_core::features::FeatureSpec,
    t: usize,
    seed: u64,
    mean: f32,
    std: f32,
) -> Vec<u8> {
    let f = fs.feature_count();
    let mut rng = Rng(seed);
    let q0 = Qp::from_range(-3.0, 3.0);
    let q1 = Qp::from_range(0.0, 4.0);
    let q2 = Qp::from_range(-6.0, 6.0);
    let input = quantize_layer(t, &vec![mean; f], &vec![std; f], q0);
    let layers = if t == 1 {
        vec![
            input,
            with_clamp(dense_spec(&mut rng, f, 16, q0, q1), q1.relu()),
            dense_spec(&mut rng, 16, 3, q1, q2),
        ]
    } else {
        vec![
            input,
            with_clamp(
                conv_spec(&mut rng, f, 8, 3, 1, 1, tickq_core::Padding::Causal, q0, q1),
                q1.relu(),
            ),
            LayerSpec::new(OpSpec::Flatten, q1.scale, q1.zp),
            dense_spec(&mut rng, 8 * t, 3, q1, q2),
        ]
    };
    let mut model = spec(layers, f, 3);
    model.feature_names = feature_names(&fs);
    model.feature_spec = Some(fs);
    tickq_core::encode::encode(&model).expect("the test model encodes")
}

//! The GPU int8 evaluator against tickq-core, bit for bit: the requantization emulation on random and edge
//! cases, and random models with every layer kind in every weight format.
//!
//! Each test takes the shared context from `tickq_gpu::testing::context_or_skip`, so without an adapter it fails
//! in CI and skips (with a note) elsewhere.

use proptest::prelude::*;
use tickq_core::encode::{
    EncodeOptions, LayerSpec, ModelSpec, OpSpec, Padding, WeightFormat, encode_with,
};
use tickq_core::requant::{QuantMultiplier, requantize};
use tickq_core::{Model, Session};
use tickq_gpu::buffers::{Binding, BufferPool, Kernel, grid};
use tickq_gpu::int8::SHADER;
use tickq_gpu::testing::context_or_skip;
use tickq_gpu::{GpuContext, GpuError, Int8Evaluator};

/// SplitMix64, so every case is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    fn i8(&mut self) -> i8 {
        self.next() as i8
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs the shader's `requant_test` entry over `(acc, multiplier, shift, zp, min, max)` cases.
fn gpu_requant(ctx: &GpuContext, cases: &[[i32; 6]]) -> Vec<i32> {
    let kernel = Kernel::new(
        ctx,
        "int8.requant_test",
        SHADER,
        "requant_test",
        &[
            Binding::Uniform,
            Binding::Read,
            Binding::Read,
            Binding::Read,
            Binding::Read,
            Binding::ReadWrite,
        ],
    )
    .unwrap();
    let mut pool = BufferPool::new(ctx);
    let flat: Vec<i32> = cases.iter().flatten().copied().collect();
    let x = pool.upload("x", &flat).unwrap();
    let dummy = pool.storage("dummy", 256).unwrap();
    let y = pool.storage("y", 4 * cases.len() as u64).unwrap();
    let mut params = [0u32; 24];
    params[19] = cases.len() as u32;
    let p = pool.uniform("p", &params).unwrap();
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    kernel
        .dispatch(
            ctx,
            &mut enc,
            &[&p, &x, &dummy, &dummy, &dummy, &y],
            grid(ctx, cases.len() as u64, 64),
        )
        .unwrap();
    ctx.queue().submit([enc.finish()]);
    pool.read_back(&y, cases.len()).unwrap()
}

fn cpu_requant(c: &[i32; 6]) -> i32 {
    let m = QuantMultiplier::new_checked(c[1], c[2] as u8).unwrap();
    i32::from(requantize(c[0], m, c[3] as i8, c[4] as i8, c[5] as i8))
}

#[test]
fn requant_edge_cases_match_core() {
    let Some(ctx) = context_or_skip("requant_edge_cases_match_core") else {
        return;
    };
    let accs = [
        i32::MIN,
        i32::MIN + 1,
        -(1 << 30),
        -65_537,
        -65_536,
        -3,
        -2,
        -1,
        0,
        1,
        2,
        3,
        65_535,
        65_536,
        1 << 30,
        i32::MAX - 1,
        i32::MAX,
    ];
    let mults = [
        1 << 30,
        (1 << 30) + 1,
        1_518_500_250,
        i32::MAX - 1,
        i32::MAX,
    ];
    let mut cases = Vec::new();
    for &acc in &accs {
        for &m in &mults {
            for shift in 1..=62 {
                for (zp, lo, hi) in [
                    (0, -128, 127),
                    (-7, -7, 127),
                    (100, -128, 127),
                    (-128, -100, 50),
                ] {
                    cases.push([acc, m, shift, zp, lo, hi]);
                }
            }
        }
    }
    // Exact halves: acc * m = (2k + 1) * 2^(s-1), positive and negative.
    for shift in 1..=31 {
        for k in [0i64, 1, 2, 5, 100] {
            let acc = ((2 * k + 1) << (shift - 1)) / (1 << 30);
            if acc != 0 && acc < i64::from(i32::MAX) {
                cases.push([acc as i32, 1 << 30, shift, 0, -128, 127]);
                cases.push([-(acc as i32), 1 << 30, shift, 0, -128, 127]);
            }
        }
    }
    let got = gpu_requant(&ctx, &cases);
    for (c, g) in cases.iter().zip(&got) {
        assert_eq!(*g, cpu_requant(c), "case {c:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Random accumulators, multipliers, shifts, zero points and clamps, in batches of 2 000.
    #[test]
    fn requant_matches_core_on_random_cases(seed in any::<u64>()) {
        let Some(ctx) = context_or_skip("requant_matches_core_on_random_cases") else {
            return Ok(());
        };
        let mut rng = Rng(seed);
        let cases: Vec<[i32; 6]> = (0..2000)
            .map(|_| {
                let acc = match rng.below(3) {
                    0 => rng.next() as i32,
                    1 => (rng.next() as i32) >> rng.below(31),
                    _ => rng.range(0, 2000) as i32 - 1000,
                };
                let m = (1 << 30) + (rng.next() % (1 << 30)) as i32;
                let shift = rng.range(1, 62) as i32;
                let zp = i32::from(rng.i8());
                let (a, b) = (i32::from(rng.i8()), i32::from(rng.i8()));
                [acc, m, shift, zp, a.min(b), a.max(b)]
            })
            .collect();
        let got = gpu_requant(&ctx, &cases);
        for (c, g) in cases.iter().zip(&got) {
            prop_assert_eq!(*g, cpu_requant(c), "case {:?}", c);
        }
    }
}

/// A layer with an explicit input and clamps.
fn layer(op: OpSpec, input: Option<usize>, scale: f32, zp: i8, clamp: (i8, i8)) -> LayerSpec {
    LayerSpec {
        input,
        act_min: clamp.0,
        act_max: clamp.1,
        ..LayerSpec::new(op, scale, zp)
    }
}

/// `n` multipliers for accumulators of typical magnitude `typical`.
fn multipliers(rng: &mut Rng, n: usize, typical: f64) -> Vec<QuantMultiplier> {
    (0..n)
        .map(|_| {
            // Mostly ratios that keep typical accumulators inside the int8 range (so a wrong term shows), and
            // some from 2^-40 to 2^2, so shifts from the smallest to the largest occur.
            let r = if rng.below(5) == 0 {
                2f64.powf(-40.0 + 42.0 * rng.unit())
            } else {
                40.0 / typical * 2f64.powf(-1.5 + 3.0 * rng.unit())
            };
            QuantMultiplier::from_ratio(r).unwrap()
        })
        .collect()
}

/// Random int8 weights with the given share of zeros; for N:M, two zeros in every group of four.
fn weights(rng: &mut Rng, out: usize, row: usize, zeros: f64, nm: bool) -> Vec<i8> {
    let mut w: Vec<i8> = (0..out * row)
        .map(|_| {
            if rng.unit() < zeros {
                0
            } else {
                rng.i8().max(-127)
            }
        })
        .collect();
    if nm {
        for g in w.chunks_mut(4) {
            let keep = rng.below(4);
            for (i, v) in g.iter_mut().enumerate() {
                if i != keep && i != (keep + 1) % 4 {
                    *v = 0;
                }
            }
        }
    }
    w
}

fn clamp(rng: &mut Rng, zp: i8) -> (i8, i8) {
    match rng.below(3) {
        0 => (i8::MIN, i8::MAX),
        1 => (zp, i8::MAX),
        _ => (-(rng.range(20, 128) as i32) as i8, rng.range(20, 127) as i8),
    }
}

/// A random model using every layer kind: Quantize → Conv1d → [Lut] → MaxPool1d, then two AvgPool1d branches
/// joined by Add → Conv1d → Flatten → Dense, and a GlobalAvgPool head → Dense logits.
/// For N:M every channel count is a multiple of four.
fn random_model(rng: &mut Rng, format: WeightFormat) -> ModelSpec {
    let nm = format == WeightFormat::NM;
    let zeros = match format {
        WeightFormat::Sparse => 0.7,
        WeightFormat::Auto => 0.5,
        _ => 0.1,
    };
    let quad = |rng: &mut Rng, lo: usize, hi: usize| {
        let v = rng.range(lo, hi);
        if nm { 4 * v.div_ceil(4) } else { v }
    };
    let t = rng.range(8, 20);
    let f = quad(rng, 1, 9);
    let mut layers = vec![LayerSpec::new(
        OpSpec::Quantize {
            time_steps: t,
            features: f,
            a: vec![1.0; f],
            b: vec![0.0; f],
        },
        0.1,
        rng.i8(),
    )];
    let mut shape = (t, f);
    // Moderate zero points, so that activations spread over the int8 range instead of saturating.
    let zp = |rng: &mut Rng| rng.range(0, 40) as i8 - 20;
    // Conv1d.
    let c1 = quad(rng, 1, 12);
    let k = rng.range(1, 3);
    let d = rng.range(1, 2);
    let s = rng.range(1, 2);
    let padding = if rng.below(2) == 0 {
        Padding::Valid
    } else {
        Padding::Causal
    };
    let z = zp(rng);
    layers.push(layer(
        OpSpec::Conv1d {
            out_channels: c1,
            in_channels: f,
            kernel: k,
            stride: s,
            dilation: d,
            padding,
            weights: weights(rng, c1, k * f, zeros, nm),
            bias: (0..c1).map(|_| (rng.next() as i32) >> 19).collect(),
            requant: multipliers(rng, c1, 4000.0 * ((k * f) as f64).sqrt()),
        },
        None,
        0.1,
        z,
        clamp(rng, z),
    ));
    shape.0 = match padding {
        Padding::Valid => (shape.0 - d * (k - 1) - 1) / s + 1,
        Padding::Causal => (shape.0 - 1) / s + 1,
    };
    shape.1 = c1;
    let mut q = (0.1f32, z);
    if rng.below(2) == 0 {
        let mut table = [0i8; 256];
        table.iter_mut().for_each(|v| *v = rng.i8());
        let z = zp(rng);
        layers.push(layer(
            OpSpec::Lut { table },
            None,
            0.05,
            z,
            (i8::MIN, i8::MAX),
        ));
        q = (0.05, z);
    }
    // MaxPool1d keeps the quantization.
    let mk = rng.range(1, 2.min(shape.0));
    layers.push(layer(
        OpSpec::MaxPool1d {
            kernel: mk,
            stride: 1,
        },
        None,
        q.0,
        q.1,
        clamp(rng, q.1),
    ));
    shape.0 = shape.0 - mk + 1;
    let pool_at = layers.len() - 1;
    // Two AvgPool1d branches of the same geometry, then Add.
    let ak = rng.range(1, shape.0.min(3));
    let az = zp(rng);
    for input in [None, Some(pool_at)] {
        layers.push(layer(
            OpSpec::AvgPool1d {
                kernel: ak,
                stride: 1,
                requant: multipliers(rng, 1, 60.0 * ak as f64)[0],
            },
            input,
            0.1,
            az,
            (i8::MIN, i8::MAX),
        ));
    }
    shape.0 = shape.0 - ak + 1;
    let branch_a = layers.len() - 2;
    let z = zp(rng);
    layers.push(layer(
        OpSpec::Add {
            other: branch_a,
            wa: rng.range(0, 131_072) as i32 - 65_536,
            wb: rng.range(0, 131_072) as i32 - 65_536,
            requant: QuantMultiplier::from_ratio(2f64.powf(-14.0 - 3.0 * rng.unit())).unwrap(),
        },
        None,
        0.2,
        z,
        clamp(rng, z),
    ));
    // A second conv (dilated, valid) when the sequence is long enough, then Flatten and Dense.
    let c2 = quad(rng, 1, 8);
    let (k2, d2) = (2, rng.range(1, 2));
    if shape.0 > d2 * (k2 - 1) {
        let z = zp(rng);
        layers.push(layer(
            OpSpec::Conv1d {
                out_channels: c2,
                in_channels: shape.1,
                kernel: k2,
                stride: 1,
                dilation: d2,
                padding: Padding::Valid,
                weights: weights(rng, c2, k2 * shape.1, zeros, nm),
                bias: (0..c2).map(|_| (rng.next() as i32) >> 19).collect(),
                requant: multipliers(rng, c2, 4000.0 * ((k2 * shape.1) as f64).sqrt()),
            },
            None,
            0.1,
            z,
            clamp(rng, z),
        ));
        shape = (shape.0 - d2 * (k2 - 1), c2);
        q = (0.1, z);
    } else {
        q = (0.2, z);
    }
    // Flatten (or, for some models, GlobalAvgPool), a hidden Dense, and the logits.
    let flat = if rng.below(3) == 0 {
        let z = zp(rng);
        layers.push(layer(
            OpSpec::GlobalAvgPool {
                requant: multipliers(rng, 1, 60.0 * shape.0 as f64)[0],
            },
            None,
            0.1,
            z,
            (i8::MIN, i8::MAX),
        ));
        shape.1
    } else {
        layers.push(layer(OpSpec::Flatten, None, q.0, q.1, (i8::MIN, i8::MAX)));
        shape.0 * shape.1
    };
    let h = quad(rng, 2, 24);
    let z = zp(rng);
    layers.push(layer(
        OpSpec::Dense {
            out_features: h,
            in_features: flat,
            weights: weights(rng, h, flat, zeros, nm),
            bias: (0..h).map(|_| (rng.next() as i32) >> 19).collect(),
            requant: multipliers(rng, h, 4000.0 * (flat as f64).sqrt()),
        },
        None,
        0.1,
        z,
        clamp(rng, z),
    ));
    let classes = rng.range(2, 5);
    layers.push(layer(
        OpSpec::Dense {
            out_features: classes,
            in_features: h,
            weights: weights(rng, classes, h, zeros, nm),
            bias: (0..classes).map(|_| (rng.next() as i32) >> 20).collect(),
            requant: multipliers(rng, classes, 4000.0 * (h as f64).sqrt()),
        },
        None,
        0.1,
        zp(rng),
        (i8::MIN, i8::MAX),
    ));
    ModelSpec {
        name: "gpu-random".into(),
        feature_names: (0..f).map(|i| format!("f{i}")).collect(),
        label_names: (0..classes).map(|i| format!("c{i}")).collect(),
        data_hash: [0; 32],
        tickq_version: "test".into(),
        layers,
        feature_spec: None,
    }
}

fn core_logits(blob: &[u8], inputs: &[i8]) -> Vec<i8> {
    let model = Model::load(blob).unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(&model, &mut arena).unwrap();
    let mut out = Vec::new();
    for x in inputs.chunks(model.input_len()) {
        out.extend_from_slice(session.run_quantized(x).logits());
    }
    out
}

/// Every prefix of `spec` that ends in a layer of at most 256 values, as a model of its own whose logits are
/// that layer's output (flattened), so that each layer is compared directly, not only through the later ones.
fn prefixes(spec: &ModelSpec, format: WeightFormat) -> Vec<Vec<u8>> {
    let options = EncodeOptions::format(format);
    let full = encode_with(spec, &options).unwrap();
    let shapes: Vec<(usize, usize)> = Model::load(&full)
        .unwrap()
        .layers()
        .map(|l| l.out_shape)
        .collect();
    let mut blobs = vec![full];
    for (end, &(t, c)) in shapes
        .iter()
        .enumerate()
        .take(spec.layers.len() - 1)
        .skip(1)
    {
        if t * c > 256 {
            continue;
        }
        let mut s = spec.clone();
        s.layers.truncate(end + 1);
        if t != 1 {
            let last = &s.layers[end];
            let (scale, zp) = (last.out_scale, last.out_zero_point);
            s.layers
                .push(layer(OpSpec::Flatten, None, scale, zp, (i8::MIN, i8::MAX)));
        }
        s.label_names = (0..t * c).map(|i| format!("c{i}")).collect();
        blobs.push(encode_with(&s, &options).unwrap());
    }
    blobs
}

/// Compares every prefix of random models encoded with `format` and returns the weight layouts they used.
fn check_random_models(
    format: WeightFormat,
    seeds: std::ops::Range<u64>,
) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    let Some(ctx) = context_or_skip("random models") else {
        return seen;
    };
    for seed in seeds {
        let mut rng = Rng(seed * 7919 + format as u64);
        let spec = random_model(&mut rng, format);
        for (p, blob) in prefixes(&spec, format).iter().enumerate() {
            let model = Model::load(blob).unwrap();
            let n = 37;
            let inputs: Vec<i8> = (0..n * model.input_len()).map(|_| rng.i8()).collect();
            let want = core_logits(blob, &inputs);
            let mut eval = Int8Evaluator::new(&ctx, blob).unwrap();
            // Batches of 16 exercise the batch loop and the reuse of its buffers.
            eval.set_batch_size(16);
            let got = eval.evaluate_quantized(&inputs, n).unwrap();
            let layers: Vec<String> = model
                .layers()
                .map(|l| match l.weight_format {
                    Some(f) => format!("{}:{f}", l.kind.name()),
                    None => l.kind.name().to_string(),
                })
                .collect();
            assert_eq!(
                got, want,
                "seed {seed}, format {format}, prefix {p}: {layers:?}"
            );
            seen.extend(
                model
                    .layers()
                    .filter_map(|l| l.weight_format.map(|f| f.name().to_string())),
            );
        }
    }
    seen
}

#[test]
fn random_models_dense_weights_match_core() {
    check_random_models(WeightFormat::Dense, 0..8);
}

#[test]
fn random_models_sparse_weights_match_core() {
    check_random_models(WeightFormat::Sparse, 0..8);
}

#[test]
fn random_models_nm_weights_match_core() {
    check_random_models(WeightFormat::NM, 0..8);
}

#[test]
fn random_models_auto_weights_match_core() {
    check_random_models(WeightFormat::Auto, 0..6);
}

#[test]
fn random_models_smallest_weights_match_core() {
    // `smallest` picks the format with the fewest bytes per layer, the Dense-only column formats included.
    let seen = check_random_models(WeightFormat::Smallest, 0..6);
    if !seen.is_empty() {
        assert!(
            seen.contains("packed") || seen.contains("columns"),
            "{seen:?}"
        );
    }
}

#[test]
fn f32_features_go_through_the_blob_quantizer() {
    let Some(ctx) = context_or_skip("f32_features_go_through_the_blob_quantizer") else {
        return;
    };
    let mut rng = Rng(99);
    let mut spec = random_model(&mut rng, WeightFormat::Dense);
    if let OpSpec::Quantize { a, b, .. } = &mut spec.layers[0].op {
        a.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = 3.0 + i as f32);
        b.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32 - 4.5);
    }
    let blob = encode_with(&spec, &EncodeOptions::default()).unwrap();
    let model = Model::load(&blob).unwrap();
    let n = 50;
    let features: Vec<f32> = (0..n * model.input_len())
        .map(|i| match i % 17 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            _ => (rng.unit() as f32 - 0.5) * 80.0,
        })
        .collect();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(&model, &mut arena).unwrap();
    let mut want = Vec::new();
    for x in features.chunks(model.input_len()) {
        want.extend_from_slice(session.run(x).logits());
    }
    let mut eval = Int8Evaluator::new(&ctx, &blob).unwrap();
    assert_eq!(eval.evaluate(&features, n).unwrap(), want);
    assert!(eval.bytes_on_gpu() > 0);
    // A wrong sample count is a shape error, not a panic.
    let err = eval.evaluate(&features, n + 1).unwrap_err();
    assert!(matches!(err, GpuError::Shape(_)), "{err}");
}

/// A random dynamically quantized MLP in the ranges the loader accepts (multipliers below 1, bias exponents,
/// fused ReLU and ReLU6 caps).
fn random_dynamic_mlp(rng: &mut Rng) -> ModelSpec {
    let f = rng.range(1, 24);
    let mut layers = vec![LayerSpec {
        dynamic: Some(0),
        ..LayerSpec::new(
            OpSpec::Quantize {
                time_steps: 1,
                features: f,
                a: (0..f).map(|_| 0.2 + 2.8 * rng.unit() as f32).collect(),
                b: (0..f).map(|_| 4.0 * rng.unit() as f32 - 2.0).collect(),
            },
            1.0,
            0,
        )
    }];
    let mut inp = f;
    for _ in 0..rng.range(1, 3) {
        let out = rng.range(2, 40);
        let bias_mag = 1i64 << rng.below(30);
        let (act_min, act_max) = match rng.below(3) {
            0 => (i8::MIN, i8::MAX),
            1 => (0, i8::MAX),
            _ => (0, rng.below(40) as i8),
        };
        layers.push(LayerSpec {
            act_min,
            act_max,
            dynamic: Some(rng.below(41) as i8 - 20),
            ..LayerSpec::new(
                OpSpec::Dense {
                    out_features: out,
                    in_features: inp,
                    weights: weights(rng, out, inp, 0.1, false),
                    bias: (0..out)
                        .map(|_| (rng.next() as i64 % bias_mag) as i32)
                        .collect(),
                    requant: (0..out)
                        .map(|_| {
                            let m = (1 << 30) + (rng.next() % (1 << 30)) as i32;
                            QuantMultiplier::new_checked(m, 31 + rng.below(12) as u8).unwrap()
                        })
                        .collect(),
                },
                0.01 + rng.unit() as f32,
                0,
            )
        });
        inp = out;
    }
    ModelSpec {
        name: "dyn".into(),
        feature_names: (0..f).map(|i| format!("f{i}")).collect(),
        label_names: (0..inp).map(|i| format!("c{i}")).collect(),
        data_hash: [0; 32],
        tickq_version: "test".into(),
        layers,
        feature_spec: None,
    }
}

#[test]
fn dynamic_models_match_core_logits_and_exponents() {
    let Some(ctx) = context_or_skip("dynamic_models_match_core_logits_and_exponents") else {
        return;
    };
    let mut rng = Rng(0xD1A);
    for case in 0..40 {
        let spec = random_dynamic_mlp(&mut rng);
        let blob = encode_with(&spec, &EncodeOptions::default()).unwrap();
        let model = Model::load(&blob).unwrap();
        assert!(model.is_dynamic());
        let n = 60;
        // Inputs from 1e-30 to 1e6, with NaNs, so the exponents vary widely.
        let features: Vec<f32> = (0..n)
            .flat_map(|_| {
                let scale = [1e-30f32, 1e-3, 1.0, 50.0, 1e6][rng.below(5)];
                (0..model.input_len())
                    .map(|_| {
                        if rng.below(20) == 0 {
                            f32::NAN
                        } else {
                            (2.0 * rng.unit() as f32 - 1.0) * scale
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut session = Session::new(&model, &mut arena).unwrap();
        let (mut want, mut want_e) = (Vec::new(), Vec::new());
        for x in features.chunks(model.input_len()) {
            let p = session.run(x);
            want.extend_from_slice(p.logits());
            want_e.push(p.exponent());
        }
        let mut eval = Int8Evaluator::new(&ctx, &blob).unwrap();
        eval.set_batch_size(25);
        let (got, got_e) = eval.evaluate_with_exponents(&features, n).unwrap();
        assert_eq!(got, want, "case {case}: logits");
        assert_eq!(got_e, want_e, "case {case}: exponents");
    }
}

#[test]
fn a_corrupt_blob_is_a_blob_error() {
    let Some(ctx) = context_or_skip("a_corrupt_blob_is_a_blob_error") else {
        return;
    };
    let err = Int8Evaluator::new(&ctx, b"not a blob").unwrap_err();
    assert!(matches!(err, GpuError::Blob(_)), "{err}");
}

/// A dynamically quantized convolution or pooling layer has no shader: the evaluator refuses it by its layer,
/// rather than returning logits that differ from the core's.
#[test]
fn dynamic_conv_and_pool_layers_are_refused() {
    let Some(ctx) = context_or_skip("dynamic_conv_and_pool_layers_are_refused") else {
        return;
    };
    let dynamic = |l: LayerSpec| LayerSpec {
        dynamic: Some(0),
        ..l
    };
    let quantize = dynamic(LayerSpec::new(
        OpSpec::Quantize {
            time_steps: 4,
            features: 2,
            a: vec![1.0; 2],
            b: vec![0.0; 2],
        },
        1.0,
        0,
    ));
    let conv = dynamic(LayerSpec::new(
        OpSpec::Conv1d {
            out_channels: 2,
            in_channels: 2,
            kernel: 1,
            stride: 1,
            dilation: 1,
            padding: tickq_core::Padding::Valid,
            weights: vec![1; 4],
            bias: vec![0; 2],
            requant: vec![QuantMultiplier::from_ratio(0.5).unwrap(); 2],
        },
        1.0,
        0,
    ));
    let pool = dynamic(LayerSpec::new(
        OpSpec::MaxPool1d {
            kernel: 4,
            stride: 1,
        },
        1.0,
        0,
    ));
    let dense = |inputs: usize| {
        dynamic(LayerSpec::new(
            OpSpec::Dense {
                out_features: 2,
                in_features: inputs,
                weights: vec![1; 2 * inputs],
                bias: vec![0; 2],
                requant: vec![QuantMultiplier::from_ratio(0.5).unwrap(); 2],
            },
            1.0,
            0,
        ))
    };
    let flatten = dynamic(LayerSpec::new(OpSpec::Flatten, 1.0, 0));
    for (layers, refused) in [
        (
            vec![quantize.clone(), conv, flatten.clone(), dense(8)],
            (1, "dynamic quantization of a convolution"),
        ),
        (
            vec![quantize, pool, flatten, dense(2)],
            (1, "dynamic quantization of a pooling layer"),
        ),
    ] {
        let spec = ModelSpec {
            name: "dyn".into(),
            feature_names: vec!["a".into(), "b".into()],
            label_names: vec!["x".into(), "y".into()],
            data_hash: [0; 32],
            tickq_version: "test".into(),
            layers,
            feature_spec: None,
        };
        let blob = encode_with(&spec, &EncodeOptions::default()).unwrap();
        match Int8Evaluator::new(&ctx, &blob) {
            Err(GpuError::Unsupported { layer, reason, .. }) => {
                assert_eq!((layer, reason.as_str()), refused)
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
    }
}

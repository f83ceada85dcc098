//! Dynamic quantization: the core path against an i128 reference of `docs/ARITHMETIC.md`, determinism, and
//! validation of the dynamic flag.

use tickq_core::encode::{LayerSpec, ModelSpec, OpSpec, Padding, encode};
use tickq_core::requant::QuantMultiplier;
use tickq_core::{BlobErrorKind, Model, Session};

use crate::support::*;

/// One random dynamic MLP: (features, a, b, dense layers as (out, in, w, bias, (mult, shift), beta, act)).
struct Mlp {
    f: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    dense: Vec<DenseL>,
}

struct DenseL {
    out: usize,
    inp: usize,
    w: Vec<i8>,
    bias: Vec<i32>,
    req: Vec<QuantMultiplier>,
    beta: i8,
    act_min: i8,
    act_max: i8,
    scale: f32,
}

fn random_mlp(rng: &mut Rng) -> Mlp {
    let f = 1 + rng.below(24);
    let a = (0..f).map(|_| rng.range(0.2, 3.0)).collect();
    let b = (0..f).map(|_| rng.range(-2.0, 2.0)).collect();
    let mut dense = Vec::new();
    let mut inp = f;
    for _ in 0..1 + rng.below(3) {
        let out = 1 + rng.below(40);
        dense.push(random_weighted(rng, out, inp));
        inp = out;
    }
    Mlp { f, a, b, dense }
}

/// The layer of `op`, a weighted layer with `d`'s clamp, bias exponent and output scale.
fn weighted_layer(op: OpSpec, d: &DenseL) -> LayerSpec {
    LayerSpec {
        act_min: d.act_min,
        act_max: d.act_max,
        dynamic: Some(d.beta),
        ..LayerSpec::new(op, d.scale, 0)
    }
}

fn spec(m: &Mlp) -> ModelSpec {
    let mut layers = vec![LayerSpec {
        dynamic: Some(0),
        ..LayerSpec::new(
            OpSpec::Quantize {
                time_steps: 1,
                features: m.f,
                a: m.a.clone(),
                b: m.b.clone(),
            },
            1.0,
            0,
        )
    }];
    for d in &m.dense {
        layers.push(weighted_layer(
            OpSpec::Dense {
                out_features: d.out,
                in_features: d.inp,
                weights: d.w.clone(),
                bias: d.bias.clone(),
                requant: d.req.clone(),
            },
            d,
        ));
    }
    let classes = m.dense.last().unwrap().out;
    ModelSpec {
        name: "dyn".into(),
        feature_names: (0..m.f).map(|i| format!("f{i}")).collect(),
        label_names: (0..classes).map(|i| format!("c{i}")).collect(),
        data_hash: [0; 32],
        tickq_version: "test".into(),
        layers,
        feature_spec: None,
    }
}

/// `v * 2^-s`, rounded half away from zero exactly (i128), saturated to `[-2^31, 2^31]`.
fn rshift(v: i128, s: i64) -> i128 {
    let sat = 1i128 << 31;
    if s <= 0 {
        if v == 0 {
            return 0;
        }
        if -s >= 40 {
            return if v > 0 { sat } else { -sat };
        }
        return (v << (-s)).clamp(-sat, sat);
    }
    if s >= 100 {
        return 0;
    }
    let d = 1i128 << s;
    let (q, r) = (v.abs() / d, v.abs() % d);
    let q = if 2 * r >= d { q + 1 } else { q };
    if v < 0 { -q } else { q }
}

/// The documented arithmetic, straightforwardly: returns (logits, exponent).
fn reference(m: &Mlp, x: &[f32]) -> (Vec<i8>, i32) {
    let z: Vec<f32> = (0..m.f)
        .map(|i| x.get(i).copied().unwrap_or(f32::NAN) * m.a[i] + m.b[i])
        .collect();
    let max = z
        .iter()
        .filter(|v| !v.is_nan())
        .fold(0.0f32, |acc, v| acc.max(v.abs()));
    let biased = ((max.to_bits() >> 23) & 0xFF).min(254) as i32;
    let mut e = (biased - 133).clamp(-100, 121);
    let mut q: Vec<i128> = z
        .iter()
        .map(|&v| {
            if v.is_nan() {
                0
            } else {
                (f64::from(v) * (-f64::from(e)).exp2())
                    .clamp(-1e6, 1e6)
                    .round()
                    .clamp(-127.0, 127.0) as i128
            }
        })
        .collect();
    for d in &m.dense {
        let mut ys = Vec::new();
        for o in 0..d.out {
            let mut acc: i128 = (0..d.inp)
                .map(|k| i128::from(d.w[o * d.inp + k]) * q[k])
                .sum();
            acc += rshift(i128::from(d.bias[o]), i64::from(e) - i64::from(d.beta))
                .clamp(-(1 << 30), 1 << 30);
            let mut y = rshift(
                acc * i128::from(d.req[o].multiplier()),
                i64::from(d.req[o].right_shift()),
            );
            if d.act_min == 0 {
                y = y.max(0);
            }
            if d.act_max != i8::MAX {
                y = y.min(rshift(1, i64::from(e) - i64::from(d.act_max)));
            }
            ys.push(y);
        }
        let max = ys.iter().map(|y| y.abs()).max().unwrap_or(0);
        let mut k = 0;
        while rshift(max, k) > 127 {
            k += 1;
        }
        q = ys.iter().map(|&y| rshift(y, k)).collect();
        e += k as i32;
    }
    (q.iter().map(|&v| v as i8).collect(), e)
}

fn random_input(rng: &mut Rng, f: usize) -> Vec<f32> {
    let scale = [1e-30f32, 1e-3, 1.0, 50.0, 1e6][rng.below(5)];
    (0..f)
        .map(|_| match rng.below(20) {
            0 => f32::NAN,
            _ => rng.range(-1.0, 1.0) * scale,
        })
        .collect()
}

#[test]
fn dynamic_path_matches_i128_reference() {
    let mut rng = Rng(0xD1A_0001);
    for _ in 0..300 {
        let m = random_mlp(&mut rng);
        let blob = encode(&spec(&m)).unwrap();
        let model = Model::load(&blob).unwrap();
        assert!(model.is_dynamic());
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut session = Session::new(&model, &mut arena).unwrap();
        for _ in 0..20 {
            let x = random_input(&mut rng, m.f);
            let (want, exp) = reference(&m, &x);
            let p = session.run(&x);
            assert_eq!(p.logits(), want.as_slice(), "input {x:?}");
            assert_eq!(p.exponent(), exp);
            let s = model.output_quant().0;
            let got = p.score(0);
            let expect = f64::from(want[0]) * f64::from(s) * f64::from(exp).exp2();
            if expect.abs() > 1e-30 && expect.abs() < 1e30 {
                assert!((f64::from(got) - expect).abs() <= expect.abs() * 1e-6);
            }
        }
    }
}

#[test]
fn dynamic_path_is_deterministic() {
    let mut rng = Rng(0xD1A_0002);
    for _ in 0..50 {
        let m = random_mlp(&mut rng);
        let blob = encode(&spec(&m)).unwrap();
        let model = Model::load(&blob).unwrap();
        let mut arena1 = vec![0u8; model.arena_bytes()];
        let mut arena2 = vec![0xA5u8; model.arena_bytes()];
        let mut s1 = Session::new(&model, &mut arena1).unwrap();
        let mut s2 = Session::new(&model, &mut arena2).unwrap();
        for _ in 0..10 {
            let x = random_input(&mut rng, m.f);
            let p1 = s1.run(&x);
            let (l1, e1) = (p1.logits().to_vec(), p1.exponent());
            let p1b = s1.run(&x);
            assert_eq!((p1b.logits(), p1b.exponent()), (l1.as_slice(), e1));
            let p2 = s2.run(&x);
            assert_eq!((p2.logits(), p2.exponent()), (l1.as_slice(), e1));
        }
    }
}

fn simple() -> Mlp {
    let mut rng = Rng(0xD1A_0003);
    loop {
        let m = random_mlp(&mut rng);
        if m.dense.len() >= 2 {
            return m;
        }
    }
}

fn load_err(blob: &[u8]) -> BlobErrorKind {
    Model::load(blob).unwrap_err().kind
}

#[test]
fn dynamic_flag_is_rejected_where_not_allowed() {
    let m = simple();
    let good = encode(&spec(&m)).unwrap();
    Model::load(&good).unwrap();
    let entry = |i: usize| 64 + 64 * i;
    use tickq_core::format::entry as e;
    // A static layer after a dynamic input quantizer, and a dynamic layer after a static one.
    for layer in [0, 1] {
        let b = patched(&good, |b| b[entry(layer) + e::FLAGS] = 0);
        assert_eq!(load_err(&b), BlobErrorKind::BadDynamic, "layer {layer}");
    }
    // Unknown flag bits and a bias exponent on the input quantizer are reserved bytes.
    let b = patched(&good, |b| b[entry(1) + e::FLAGS] = 3);
    assert_eq!(load_err(&b), BlobErrorKind::ReservedNotZero);
    let b = patched(&good, |b| b[entry(0) + e::BIAS_EXPONENT] = 1);
    assert_eq!(load_err(&b), BlobErrorKind::ReservedNotZero);
    // A zero point, a clamp other than none / ReLU / ReLU with cap, and a multiplier of 1 or more.
    let b = patched(&good, |b| b[entry(1) + e::OUT_ZERO_POINT] = 1);
    assert_eq!(load_err(&b), BlobErrorKind::BadDynamic);
    let b = patched(&good, |b| {
        b[entry(1) + e::ACT_MIN] = 5;
        b[entry(1) + e::ACT_MAX] = 127;
    });
    assert_eq!(load_err(&b), BlobErrorKind::BadDynamic);
    let b = patched(&good, |b| b[entry(0) + e::ACT_MIN] = 0);
    assert_eq!(load_err(&b), BlobErrorKind::BadDynamic);
    let req_off = u32::from_le_bytes(
        good[entry(1) + e::REQUANT_OFFSET.start..entry(1) + e::REQUANT_OFFSET.end]
            .try_into()
            .unwrap(),
    ) as usize;
    let out1 = m.dense[0].out;
    let b = patched(&good, |b| b[req_off + 4 * out1] = 30);
    assert_eq!(load_err(&b), BlobErrorKind::BadDynamic);
    // The flag on a Lut layer.
    let mut s = spec(&m);
    s.layers.push(LayerSpec {
        dynamic: Some(0),
        ..LayerSpec::new(OpSpec::Lut { table: [0i8; 256] }, 1.0, 0)
    });
    // The encoder checks its output with the loader, which refuses it.
    match encode(&s) {
        Err(tickq_core::encode::EncodeError::Invalid(e)) => {
            assert_eq!(e.kind, BlobErrorKind::BadDynamic);
            assert_eq!(e.layer, Some(u16::try_from(s.layers.len() - 1).unwrap()));
        }
        other => panic!("expected a BadDynamic refusal, got {other:?}"),
    }
}

#[test]
fn byte_flips_of_a_dynamic_blob_never_panic() {
    let m = simple();
    let blob = encode(&spec(&m)).unwrap();
    let mut rng = Rng(7);
    let inputs: Vec<Vec<f32>> = (0..4).map(|_| random_input(&mut rng, m.f)).collect();
    let mut loaded = 0;
    for i in 0..blob.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let b = patched(&blob, |b| b[i] ^= mask);
            if let Ok(model) = Model::load(&b) {
                loaded += 1;
                let mut arena = vec![0u8; model.arena_bytes()];
                let mut session = Session::new(&model, &mut arena).unwrap();
                for x in &inputs {
                    let _ = session.run(x).signal();
                }
            }
        }
    }
    assert!(loaded > 0);
}

/// One layer of a random dynamic convolutional model.
enum ConvOp {
    Conv {
        kernel: usize,
        stride: usize,
        dilation: usize,
        causal: bool,
        l: DenseL,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    AvgPool {
        kernel: usize,
        stride: usize,
        req: QuantMultiplier,
    },
    GlobalAvgPool {
        req: QuantMultiplier,
    },
    Flatten,
    Dense(DenseL),
}

/// A random dynamic convolutional model: input `[t, f]` (time-major), then `ops`.
struct ConvNet {
    t: usize,
    f: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    ops: Vec<ConvOp>,
}

/// Random weights, biases, multipliers, bias exponent and clamp of a weighted layer with rows of `row_len`.
fn random_weighted(rng: &mut Rng, out: usize, row_len: usize) -> DenseL {
    let w = (0..out * row_len)
        .map(|_| {
            if rng.below(8) == 0 {
                0
            } else {
                rng.i8().max(-127)
            }
        })
        .collect();
    let bias_mag = 1i64 << rng.below(30);
    let bias = (0..out)
        .map(|_| (rng.next_u64() as i64 % bias_mag) as i32)
        .collect();
    let req = (0..out)
        .map(|_| {
            let m = (1 << 30) + (rng.next_u64() % (1 << 30)) as i32;
            let s = 31 + rng.below(12) as u8;
            QuantMultiplier::new_checked(m, s).unwrap()
        })
        .collect();
    let (act_min, act_max) = match rng.below(3) {
        0 => (i8::MIN, i8::MAX),
        1 => (0, i8::MAX),
        _ => (0, rng.below(40) as i8),
    };
    DenseL {
        out,
        inp: row_len,
        w,
        bias,
        req,
        beta: rng.below(41) as i8 - 20,
        act_min,
        act_max,
        scale: rng.range(0.01, 2.0),
    }
}

/// A pooling multiplier near `1 / window` (sometimes a little above, so the int8 clamp is exercised).
fn pool_multiplier(rng: &mut Rng, window: usize) -> QuantMultiplier {
    QuantMultiplier::from_ratio(f64::from(rng.range(0.5, 1.3)) / window as f64).unwrap()
}

fn random_conv_net(rng: &mut Rng) -> ConvNet {
    let t = 2 + rng.below(20);
    let f = 1 + rng.below(9);
    let a = (0..f).map(|_| rng.range(0.2, 3.0)).collect();
    let b = (0..f).map(|_| rng.range(-2.0, 2.0)).collect();
    let mut ops = Vec::new();
    let (mut time, mut ch) = (t, f);
    for _ in 0..1 + rng.below(3) {
        let kernel = 1 + rng.below(4);
        let stride = 1 + rng.below(2);
        let dilation = 1 + rng.below(2);
        let span = (kernel - 1) * dilation + 1;
        let causal = rng.below(2) == 0 || span > time;
        let out = 1 + rng.below(20);
        ops.push(ConvOp::Conv {
            kernel,
            stride,
            dilation,
            causal,
            l: random_weighted(rng, out, kernel * ch),
        });
        time = if causal {
            (time - 1) / stride + 1
        } else {
            (time - span) / stride + 1
        };
        ch = out;
        if time >= 2 && rng.below(3) == 0 {
            let kernel = 1 + rng.below(time.min(3));
            let stride = 1 + rng.below(2);
            ops.push(if rng.below(2) == 0 {
                ConvOp::MaxPool { kernel, stride }
            } else {
                ConvOp::AvgPool {
                    kernel,
                    stride,
                    req: pool_multiplier(rng, kernel),
                }
            });
            time = (time - kernel) / stride + 1;
        }
    }
    if rng.below(2) == 0 {
        ops.push(ConvOp::GlobalAvgPool {
            req: pool_multiplier(rng, time),
        });
        time = 1;
    }
    if time > 1 || rng.below(2) == 0 {
        ops.push(ConvOp::Flatten);
        ch *= time;
    }
    for _ in 0..1 + rng.below(2) {
        let out = 1 + rng.below(12);
        ops.push(ConvOp::Dense(random_weighted(rng, out, ch)));
        ch = out;
    }
    ConvNet { t, f, a, b, ops }
}

fn conv_spec(m: &ConvNet) -> ModelSpec {
    let mut layers = vec![LayerSpec {
        dynamic: Some(0),
        ..LayerSpec::new(
            OpSpec::Quantize {
                time_steps: m.t,
                features: m.f,
                a: m.a.clone(),
                b: m.b.clone(),
            },
            1.0,
            0,
        )
    }];
    let mut ch = m.f;
    for op in &m.ops {
        let passing = |op: OpSpec, scale: f32| LayerSpec {
            dynamic: Some(0),
            ..LayerSpec::new(op, scale, 0)
        };
        let last_scale = layers.last().unwrap().out_scale;
        let layer = match op {
            ConvOp::Conv {
                kernel,
                stride,
                dilation,
                causal,
                l,
            } => weighted_layer(
                OpSpec::Conv1d {
                    out_channels: l.out,
                    in_channels: ch,
                    kernel: *kernel,
                    stride: *stride,
                    dilation: *dilation,
                    padding: if *causal {
                        Padding::Causal
                    } else {
                        Padding::Valid
                    },
                    weights: l.w.clone(),
                    bias: l.bias.clone(),
                    requant: l.req.clone(),
                },
                l,
            ),
            ConvOp::MaxPool { kernel, stride } => passing(
                OpSpec::MaxPool1d {
                    kernel: *kernel,
                    stride: *stride,
                },
                last_scale,
            ),
            ConvOp::AvgPool {
                kernel,
                stride,
                req,
            } => passing(
                OpSpec::AvgPool1d {
                    kernel: *kernel,
                    stride: *stride,
                    requant: *req,
                },
                last_scale,
            ),
            ConvOp::GlobalAvgPool { req } => {
                passing(OpSpec::GlobalAvgPool { requant: *req }, last_scale)
            }
            ConvOp::Flatten => passing(OpSpec::Flatten, last_scale),
            ConvOp::Dense(d) => weighted_layer(
                OpSpec::Dense {
                    out_features: d.out,
                    in_features: d.inp,
                    weights: d.w.clone(),
                    bias: d.bias.clone(),
                    requant: d.req.clone(),
                },
                d,
            ),
        };
        ch = match op {
            ConvOp::Conv { l, .. } | ConvOp::Dense(l) => l.out,
            _ => ch,
        };
        layers.push(layer);
    }
    let classes = match m.ops.last() {
        Some(ConvOp::Dense(d)) => d.out,
        _ => unreachable!("a random conv net ends with a Dense"),
    };
    ModelSpec {
        name: "dynconv".into(),
        feature_names: (0..m.f).map(|i| format!("f{i}")).collect(),
        label_names: (0..classes).map(|i| format!("c{i}")).collect(),
        data_hash: [0; 32],
        tickq_version: "test".into(),
        layers,
        feature_spec: None,
    }
}

/// The input quantizer's mantissas and exponent over the whole `[T, F]` sample, as `reference` does.
fn quantize_reference(x: &[f32], a: &[f32], b: &[f32], n: usize) -> (Vec<i128>, i32) {
    let f = a.len();
    let z: Vec<f32> = (0..n)
        .map(|i| x.get(i).copied().unwrap_or(f32::NAN) * a[i % f] + b[i % f])
        .collect();
    let max = z
        .iter()
        .filter(|v| !v.is_nan())
        .fold(0.0f32, |acc, v| acc.max(v.abs()));
    let biased = ((max.to_bits() >> 23) & 0xFF).min(254) as i32;
    let e = (biased - 133).clamp(-100, 121);
    let q = z
        .iter()
        .map(|&v| {
            if v.is_nan() {
                0
            } else {
                (f64::from(v) * (-f64::from(e)).exp2())
                    .clamp(-1e6, 1e6)
                    .round()
                    .clamp(-127.0, 127.0) as i128
            }
        })
        .collect();
    (q, e)
}

/// A weighted layer's values `y` from its accumulators (without bias) per output `(position, channel)`, then the
/// common shift: returns the mantissas and the new exponent.
fn weighted_reference(d: &DenseL, sums: &[i128], e: i32) -> (Vec<i128>, i32) {
    let ys: Vec<i128> = sums
        .iter()
        .enumerate()
        .map(|(i, &sum)| {
            let o = i % d.out;
            let acc = sum
                + rshift(i128::from(d.bias[o]), i64::from(e) - i64::from(d.beta))
                    .clamp(-(1 << 30), 1 << 30);
            let mut y = rshift(
                acc * i128::from(d.req[o].multiplier()),
                i64::from(d.req[o].right_shift()),
            );
            if d.act_min == 0 {
                y = y.max(0);
            }
            if d.act_max != i8::MAX {
                y = y.min(rshift(1, i64::from(e) - i64::from(d.act_max)));
            }
            y
        })
        .collect();
    let max = ys.iter().map(|y| y.abs()).max().unwrap_or(0);
    let mut k = 0;
    while rshift(max, k) > 127 {
        k += 1;
    }
    (ys.iter().map(|&y| rshift(y, k)).collect(), e + k as i32)
}

/// The documented arithmetic of a dynamic convolutional model, straightforwardly: returns (logits, exponent).
fn conv_reference(m: &ConvNet, x: &[f32]) -> (Vec<i8>, i32) {
    let (mut q, mut e) = quantize_reference(x, &m.a, &m.b, m.t * m.f);
    let (mut time, mut ch) = (m.t, m.f);
    for op in &m.ops {
        match op {
            ConvOp::Conv {
                kernel,
                stride,
                dilation,
                causal,
                l,
            } => {
                let span = (kernel - 1) * dilation + 1;
                let (pad, out_t) = if *causal {
                    (span - 1, (time - 1) / stride + 1)
                } else {
                    (0, (time - span) / stride + 1)
                };
                let mut sums = Vec::new();
                for t in 0..out_t {
                    for o in 0..l.out {
                        let mut acc = 0i128;
                        for k in 0..*kernel {
                            // The input step in unpadded coordinates; the pad holds zeros.
                            let Some(src) = (t * stride + k * dilation).checked_sub(pad) else {
                                continue;
                            };
                            for c in 0..ch {
                                acc +=
                                    i128::from(l.w[o * kernel * ch + k * ch + c]) * q[src * ch + c];
                            }
                        }
                        sums.push(acc);
                    }
                }
                (q, e) = weighted_reference(l, &sums, e);
                (time, ch) = (out_t, l.out);
            }
            ConvOp::MaxPool { kernel, stride } | ConvOp::AvgPool { kernel, stride, .. } => {
                let out_t = (time - kernel) / stride + 1;
                let mut out = Vec::new();
                for t in 0..out_t {
                    for c in 0..ch {
                        let taps = (0..*kernel).map(|k| q[(t * stride + k) * ch + c]);
                        out.push(match op {
                            ConvOp::AvgPool { req, .. } => rshift(
                                taps.sum::<i128>() * i128::from(req.multiplier()),
                                i64::from(req.right_shift()),
                            )
                            .clamp(-128, 127),
                            _ => taps.max().unwrap(),
                        });
                    }
                }
                q = out;
                time = out_t;
            }
            ConvOp::GlobalAvgPool { req } => {
                q = (0..ch)
                    .map(|c| {
                        let sum: i128 = (0..time).map(|t| q[t * ch + c]).sum();
                        rshift(
                            sum * i128::from(req.multiplier()),
                            i64::from(req.right_shift()),
                        )
                        .clamp(-128, 127)
                    })
                    .collect();
                time = 1;
            }
            ConvOp::Flatten => {
                ch *= time;
                time = 1;
            }
            ConvOp::Dense(d) => {
                let sums: Vec<i128> = (0..d.out)
                    .map(|o| {
                        (0..d.inp)
                            .map(|k| i128::from(d.w[o * d.inp + k]) * q[k])
                            .sum()
                    })
                    .collect();
                (q, e) = weighted_reference(d, &sums, e);
                ch = d.out;
            }
        }
    }
    (q.iter().map(|&v| v as i8).collect(), e)
}

#[test]
fn dynamic_conv_path_matches_i128_reference() {
    let mut rng = Rng(0x0D1A_C001);
    let mut pooled = [0usize; 3];
    for _ in 0..300 {
        let m = random_conv_net(&mut rng);
        for op in &m.ops {
            match op {
                ConvOp::MaxPool { .. } => pooled[0] += 1,
                ConvOp::AvgPool { .. } => pooled[1] += 1,
                ConvOp::GlobalAvgPool { .. } => pooled[2] += 1,
                _ => {}
            }
        }
        let blob = encode(&conv_spec(&m)).unwrap();
        let model = Model::load(&blob).unwrap();
        assert!(model.is_dynamic());
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut session = Session::new(&model, &mut arena).unwrap();
        for _ in 0..20 {
            let x = random_input(&mut rng, m.t * m.f);
            let (want, exp) = conv_reference(&m, &x);
            let p = session.run(&x);
            assert_eq!(p.logits(), want.as_slice(), "input {x:?}");
            assert_eq!(p.exponent(), exp);
        }
    }
    // Every pooling kind was drawn often enough to mean something.
    assert!(pooled.iter().all(|&n| n >= 20), "{pooled:?}");
}

#[test]
fn dynamic_conv_runs_the_same_on_every_backend() {
    let mut rng = Rng(0x0D1A_C002);
    for _ in 0..40 {
        let m = random_conv_net(&mut rng);
        let blob = encode(&conv_spec(&m)).unwrap();
        let mut model = Model::load(&blob).unwrap();
        let inputs: Vec<Vec<f32>> = (0..5).map(|_| random_input(&mut rng, m.t * m.f)).collect();
        let want: Vec<(Vec<i8>, i32)> = inputs.iter().map(|x| conv_reference(&m, x)).collect();
        for backend in tickq_core::Backend::ALL {
            if model.set_backend(backend).is_err() {
                continue;
            }
            let mut arena = vec![0x5Au8; model.arena_bytes()];
            let mut session = Session::new(&model, &mut arena).unwrap();
            for (x, (logits, exp)) in inputs.iter().zip(&want) {
                let p = session.run(x);
                assert_eq!(
                    (p.logits(), p.exponent()),
                    (logits.as_slice(), *exp),
                    "{backend:?}"
                );
            }
        }
    }
}

/// The smallest random conv net with a Conv1d, a pool and a Dense, for the flag and flip tests.
fn simple_conv() -> ConvNet {
    let mut rng = Rng(0x0D1A_C003);
    loop {
        let m = random_conv_net(&mut rng);
        if matches!(m.ops[1], ConvOp::MaxPool { .. })
            && m.ops.iter().any(|op| matches!(op, ConvOp::Flatten))
        {
            return m;
        }
    }
}

#[test]
fn dynamic_conv_flag_is_rejected_where_not_allowed() {
    use tickq_core::format::entry as e;
    let m = simple_conv();
    let good = encode(&conv_spec(&m)).unwrap();
    Model::load(&good).unwrap();
    let refused = |b: &[u8]| {
        let err = Model::load(b).unwrap_err();
        (err.kind, err.layer, err.offset)
    };
    // Layer 1 is the Conv1d, layer 2 the MaxPool1d.
    for (layer, at, value, kind) in [
        // A static conv or pool in a dynamic model.
        (1, e::FLAGS, 0, BlobErrorKind::BadDynamic),
        (2, e::FLAGS, 0, BlobErrorKind::BadDynamic),
        // A zero point on the conv; a clamp that is not none / ReLU on the conv, any clamp on the pool.
        (1, e::OUT_ZERO_POINT, 1, BlobErrorKind::BadDynamic),
        (1, e::ACT_MIN, -5i8 as u8, BlobErrorKind::BadDynamic),
        (2, e::ACT_MIN, 0, BlobErrorKind::BadDynamic),
        // A bias exponent on the pool is a reserved byte.
        (2, e::BIAS_EXPONENT, 1, BlobErrorKind::ReservedNotZero),
    ] {
        let b = patched(&good, |b| b[entry(layer) + at] = value);
        let (k, l, offset) = refused(&b);
        assert_eq!(k, kind, "layer {layer} byte {at}");
        assert_eq!(l, Some(layer as u16), "layer {layer} byte {at}");
        // The error names the byte.
        assert_eq!(
            offset as usize,
            entry(layer) + at,
            "layer {layer} byte {at}"
        );
    }
    // A conv multiplier of 1 or more.
    let conv_out = match &m.ops[0] {
        ConvOp::Conv { l, .. } => l.out,
        _ => unreachable!(),
    };
    let req_off = u32::from_le_bytes(
        good[entry(1) + e::REQUANT_OFFSET.start..entry(1) + e::REQUANT_OFFSET.end]
            .try_into()
            .unwrap(),
    ) as usize;
    let b = patched(&good, |b| b[req_off + 4 * conv_out] = 30);
    assert_eq!(
        refused(&b),
        (
            BlobErrorKind::BadDynamic,
            Some(1),
            (req_off + 4 * conv_out) as u32
        )
    );
    // The flag on an Add layer: the encoder checks its output with the loader, which refuses it.
    let mut s = conv_spec(&m);
    let last = s.layers.len() - 1;
    s.layers.push(LayerSpec {
        dynamic: Some(0),
        ..LayerSpec::new(
            OpSpec::Add {
                other: last,
                wa: 1,
                wb: 1,
                requant: QuantMultiplier::from_ratio(0.5).unwrap(),
            },
            1.0,
            0,
        )
    });
    s.label_names = (0..match m.ops.last() {
        Some(ConvOp::Dense(d)) => d.out,
        _ => unreachable!(),
    })
        .map(|i| format!("c{i}"))
        .collect();
    match encode(&s) {
        Err(tickq_core::encode::EncodeError::Invalid(e)) => {
            assert_eq!(e.kind, BlobErrorKind::BadDynamic);
            assert_eq!(e.layer, Some(u16::try_from(s.layers.len() - 1).unwrap()));
        }
        other => panic!("expected a BadDynamic refusal, got {other:?}"),
    }
}

#[test]
fn byte_flips_of_a_dynamic_conv_blob_never_panic() {
    let m = simple_conv();
    let blob = encode(&conv_spec(&m)).unwrap();
    let mut rng = Rng(8);
    let inputs: Vec<Vec<f32>> = (0..4).map(|_| random_input(&mut rng, m.t * m.f)).collect();
    let mut loaded = 0;
    for i in 0..blob.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let b = patched(&blob, |b| b[i] ^= mask);
            if let Ok(model) = Model::load(&b) {
                loaded += 1;
                let mut arena = vec![0u8; model.arena_bytes()];
                let mut session = Session::new(&model, &mut arena).unwrap();
                for x in &inputs {
                    let _ = session.run(x).signal();
                }
            }
        }
    }
    assert!(loaded > 0);
}

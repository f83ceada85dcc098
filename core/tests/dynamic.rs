//! Dynamic quantization: the core path against an i128 reference of `docs/ARITHMETIC.md`, determinism, and
//! validation of the dynamic flag.

use tickq_core::encode::{LayerSpec, ModelSpec, OpSpec, encode};
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
        let w = (0..out * inp)
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
        dense.push(DenseL {
            out,
            inp,
            w,
            bias,
            req,
            beta: rng.below(41) as i8 - 20,
            act_min,
            act_max,
            scale: rng.range(0.01, 2.0),
        });
        inp = out;
    }
    Mlp { f, a, b, dense }
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
        layers.push(LayerSpec {
            act_min: d.act_min,
            act_max: d.act_max,
            dynamic: Some(d.beta),
            ..LayerSpec::new(
                OpSpec::Dense {
                    out_features: d.out,
                    in_features: d.inp,
                    weights: d.w.clone(),
                    bias: d.bias.clone(),
                    requant: d.req.clone(),
                },
                d.scale,
                0,
            )
        });
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

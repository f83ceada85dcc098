//! The shared kernel harness: random problems for every op and weight format, run through the real loader and
//! session on every backend this machine has, and compared bit for bit with a reference computed straight from
//! the model description (row-major loops over i64, `requant::requantize` for the rounding).
//!
//! `harness!` makes one test per problem family; each test draws its problems from a seeded generator, encodes
//! them in each weight format that fits, and checks every backend of [`Backend::available`] against the
//! reference: a new backend is tested by every family without a line here. The cases per family can be changed
//! with `TICKQ_HARNESS_CASES` (Miri runs few).
//! `every_backend_the_cpu_reports_is_tested` fails under `CI=true` if the CPU reports an instruction set whose
//! backend this build does not have, so a backend cannot silently drop out of the harness.

use tickq_core::encode::{
    EncodeError, EncodeOptions, LayerSpec, ModelSpec, OpSpec, Padding, Target, WeightFormat,
    encode_with,
};
use tickq_core::requant::{QuantMultiplier, requantize};
use tickq_core::{Backend, Model, Session};

use crate::support::*;

/// The number of problems per family (the default, or `TICKQ_HARNESS_CASES`).
fn cases(default: usize) -> usize {
    std::env::var("TICKQ_HARNESS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(miri) { 2 } else { default })
}

/// The weight formats a weighted layer of `kind` can be forced into (the column and `dense-dsp` formats are Dense
/// only; the sparse ones are compiled in only with `sparse-formats`).
fn formats(dense: bool) -> Vec<WeightFormat> {
    if cfg!(miri) {
        // Miri checks the `unsafe` kernels: those of dense-dot and the column formats.
        let mut some = vec![WeightFormat::DenseDot];
        if dense && tickq_core::SPARSE_FORMATS {
            some.push(WeightFormat::Columns);
        }
        return some;
    }
    let mut all = vec![
        WeightFormat::Blocked,
        WeightFormat::Auto,
        WeightFormat::Smallest,
    ];
    if tickq_core::DENSE_DOT {
        all.push(WeightFormat::DenseDot);
    }
    if dense {
        all.push(WeightFormat::DenseDsp);
    }
    if tickq_core::SPARSE_FORMATS {
        all.extend([WeightFormat::Sparse, WeightFormat::NM]);
        if dense {
            all.extend([WeightFormat::Columns, WeightFormat::Packed]);
        }
    }
    all
}

/// A random multiplier: extremes of the mantissa and of the shift now and then, a typical layer ratio otherwise.
fn multiplier(rng: &mut Rng) -> QuantMultiplier {
    let m = match rng.below(6) {
        0 => 1 << 30,
        1 => i32::MAX,
        _ => (1 << 30) + rng.below(1 << 30) as i32,
    };
    let s = match rng.below(8) {
        0 => 1 + rng.below(32) as u8,
        1 => 62,
        2 => 33,
        _ => 33 + rng.below(14) as u8,
    };
    QuantMultiplier::new_checked(m, s).expect("valid multiplier")
}

/// Per-channel multipliers for a layer: half the layers have every shift in `[33, 62]` (ratios below 1/4, what
/// real layers have, and what the kernels' 32-bit requantization takes), the others any shift.
fn multipliers(rng: &mut Rng, n: usize) -> Vec<QuantMultiplier> {
    let split = rng.below(2) == 0;
    (0..n)
        .map(|_| {
            loop {
                let m = multiplier(rng);
                if !split || m.right_shift() >= 33 {
                    break m;
                }
            }
        })
        .collect()
}

/// Random int8 weights with extremes and zeros, `sparsity` of them zero.
fn weights(rng: &mut Rng, n: usize, sparsity: f32) -> Vec<i8> {
    (0..n)
        .map(|_| {
            if rng.unit() < sparsity {
                0
            } else {
                match rng.below(10) {
                    0 => -128,
                    1 => 127,
                    _ => rng.i8(),
                }
            }
        })
        .collect()
}

/// Biases that keep every channel within the overflow bound `|b| + 128 * sum |w| < 2^31` (and the column
/// formats' bound with the zero point unfolded), sometimes right at its edge.
fn biases(rng: &mut Rng, w: &[i8], row_len: usize) -> Vec<i32> {
    w.chunks_exact(row_len.max(1))
        .map(|row| {
            let bound: i64 = row.iter().map(|&v| 256 * i64::from(v.unsigned_abs())).sum();
            let room = (i64::from(i32::MAX) - bound).max(0);
            let b = match rng.below(8) {
                0 => room / 2,
                1 => -(room / 2),
                _ => i64::from(rng.next_u64() as u16 as i16) * 16,
            };
            b.clamp(-room / 2, room / 2) as i32
        })
        .collect()
}

/// A random output clamp: none, a ReLU at the zero point, or a narrow range.
fn clamp(rng: &mut Rng, zp: i8) -> (i8, i8) {
    match rng.below(4) {
        0 => (zp, 127),
        1 => {
            let (a, b) = (rng.i8(), rng.i8());
            (a.min(b), a.max(b))
        }
        _ => (-128, 127),
    }
}

/// A weighted layer: Dense (`kernel == 0`) or Conv1d.
fn weighted(
    rng: &mut Rng,
    (c_in, c_out): (usize, usize),
    conv: Option<(usize, usize, usize, Padding)>,
    sparsity: f32,
) -> LayerSpec {
    let taps = conv.map_or(1, |c| c.0);
    let row_len = taps * c_in;
    let w = weights(rng, c_out * row_len, sparsity);
    let bias = biases(rng, &w, row_len);
    let requant = multipliers(rng, c_out);
    let op = match conv {
        None => OpSpec::Dense {
            out_features: c_out,
            in_features: c_in,
            weights: w,
            bias,
            requant,
        },
        Some((kernel, stride, dilation, padding)) => OpSpec::Conv1d {
            out_channels: c_out,
            in_channels: c_in,
            kernel,
            stride,
            dilation,
            padding,
            weights: w,
            bias,
            requant,
        },
    };
    let zp = rng.i8();
    let (lo, hi) = clamp(rng, zp);
    with_clamp(LayerSpec::new(op, 0.05, zp), (lo, hi))
}

/// The input layer of a problem: `t` steps of `f` features, an identity quantizer with a random zero point.
fn input(rng: &mut Rng, t: usize, f: usize) -> LayerSpec {
    let zp = rng.i8();
    identity_input(
        t,
        f,
        Qp {
            scale: 1.0 / 16.0,
            zp,
        },
    )
}

/// A problem: a model description and int8 inputs to run it on.
struct Problem {
    spec: ModelSpec,
    inputs: Vec<Vec<i8>>,
    /// A short description for failure messages.
    what: String,
}

/// Random int8 inputs for a model with `n` input values, extremes included; a third of the values at the zero
/// point (what a ReLU leaves, and what the column formats skip) every other input.
fn int8_inputs(rng: &mut Rng, n: usize, zp: i8) -> Vec<Vec<i8>> {
    (0..3)
        .map(|round| {
            (0..n)
                .map(|_| match rng.below(12) {
                    0 => -128,
                    1 => 127,
                    2 | 3 if round % 2 == 1 => zp,
                    _ => rng.i8(),
                })
                .collect()
        })
        .collect()
}

/// Channel counts around the block sizes (4, 8, 16) and the x86 tile of 8 blocks.
fn channels(rng: &mut Rng) -> usize {
    if cfg!(miri) {
        // Small enough to interpret, still with a full block and a tail.
        return [3, 16, 17][rng.below(3)];
    }
    [
        1, 3, 4, 5, 8, 9, 15, 16, 17, 31, 32, 33, 48, 64, 127, 128, 130, 144, 256,
    ][rng.below(19)]
}

/// Row lengths with every remainder modulo 4 (and 64, the AVX-512 register).
fn row_lengths(rng: &mut Rng) -> usize {
    if cfg!(miri) {
        return [3, 5, 13, 33][rng.below(4)];
    }
    [
        1, 2, 3, 4, 5, 7, 8, 13, 16, 29, 31, 32, 33, 63, 64, 65, 100, 128, 257,
    ][rng.below(19)]
}

/// Dense layers (two in a row, so the second reads a tensor the first wrote), any width.
fn dense_problem(rng: &mut Rng) -> Problem {
    let (f, h, c) = (row_lengths(rng), channels(rng), channels(rng).min(64));
    let sparsity = [0.0, 0.0, 0.5, 0.9][rng.below(4)];
    let layers = vec![
        input(rng, 1, f),
        weighted(rng, (f, h), None, sparsity),
        weighted(rng, (h, c), None, sparsity),
    ];
    let zp = layers[0].out_zero_point;
    let inputs = int8_inputs(rng, f, zp);
    Problem {
        spec: spec(layers, f, c),
        inputs,
        what: format!("dense {f} -> {h} -> {c}, {sparsity} zeros"),
    }
}

/// A Conv1d (valid or causal, any stride and dilation) followed by a pooling layer and a Dense head.
fn conv_problem(rng: &mut Rng) -> Problem {
    let c_in = [1, 2, 3, 4, 5, 8, 12, 16, 29][rng.below(9)];
    let c_out = [1, 3, 4, 8, 15, 16, 17, 32, 33][rng.below(9)];
    let kernel = 1 + rng.below(5);
    let stride = 1 + rng.below(3);
    let dilation = if rng.below(3) == 0 {
        1 + rng.below(3)
    } else {
        1
    };
    let padding = if rng.below(2) == 0 {
        Padding::Valid
    } else {
        Padding::Causal
    };
    let span = dilation * (kernel - 1) + 1;
    // Now and then a long sequence: global average pooling changes its summing strategy past 255 steps.
    let t = span
        + if rng.below(8) == 0 && !cfg!(miri) {
            250 + rng.below(60)
        } else {
            rng.below(40)
        };
    let t_out = match padding {
        Padding::Valid => (t - span) / stride + 1,
        Padding::Causal => (t - 1) / stride + 1,
    };
    let sparsity = [0.0, 0.0, 0.6][rng.below(3)];
    let mut layers = vec![
        input(rng, t, c_in),
        weighted(
            rng,
            (c_in, c_out),
            Some((kernel, stride, dilation, padding)),
            sparsity,
        ),
    ];
    let conv_zp = layers[1].out_zero_point;
    let pooled = match rng.below(3) {
        0 => {
            let k = 1 + rng.below(t_out.min(3));
            layers.push(LayerSpec::new(
                OpSpec::MaxPool1d {
                    kernel: k,
                    stride: 1,
                },
                0.05,
                conv_zp,
            ));
            layers.push(LayerSpec::new(
                OpSpec::GlobalAvgPool {
                    requant: multiplier(rng),
                },
                0.05,
                rng.i8(),
            ));
            c_out
        }
        1 => {
            let k = 1 + rng.below(t_out.min(4));
            layers.push(LayerSpec::new(
                OpSpec::AvgPool1d {
                    kernel: k,
                    stride: 1 + rng.below(2),
                    requant: multiplier(rng),
                },
                0.05,
                rng.i8(),
            ));
            let steps = (t_out - k) / layers_stride(&layers) + 1;
            layers.push(LayerSpec::new(
                OpSpec::Flatten,
                0.05,
                layers[2].out_zero_point,
            ));
            steps * c_out
        }
        _ => {
            layers.push(LayerSpec::new(
                OpSpec::GlobalAvgPool {
                    requant: multiplier(rng),
                },
                0.05,
                rng.i8(),
            ));
            c_out
        }
    };
    let classes = 1 + rng.below(5);
    layers.push(weighted(rng, (pooled, classes), None, 0.0));
    let zp = layers[0].out_zero_point;
    let inputs = int8_inputs(rng, t * c_in, zp);
    Problem {
        spec: spec(layers, c_in, classes),
        inputs,
        what: format!(
            "conv {t} x {c_in} -> {c_out}, k {kernel} s {stride} d {dilation} {padding:?}"
        ),
    }
}

/// The stride of the AvgPool1d just pushed.
fn layers_stride(layers: &[LayerSpec]) -> usize {
    match layers.last().map(|l| &l.op) {
        Some(OpSpec::AvgPool1d { stride, .. }) => *stride,
        _ => 1,
    }
}

/// A residual block: Dense, then a Lut, then Add of the two.
fn residual_problem(rng: &mut Rng) -> Problem {
    let f = row_lengths(rng);
    let h = channels(rng);
    let mut layers = vec![input(rng, 1, f), weighted(rng, (f, h), None, 0.0)];
    let mut table = [0i8; 256];
    for v in table.iter_mut() {
        *v = rng.i8();
    }
    layers.push(LayerSpec::new(OpSpec::Lut { table }, 0.05, rng.i8()));
    let wa = rng.below(1 << 16) as i32 - (1 << 15);
    let wb = rng.below(1 << 16) as i32 - (1 << 15);
    layers.push(reading(
        LayerSpec::new(
            OpSpec::Add {
                other: 2,
                wa,
                wb,
                requant: multiplier(rng),
            },
            0.05,
            rng.i8(),
        ),
        1,
    ));
    let zp = layers[0].out_zero_point;
    let inputs = int8_inputs(rng, f, zp);
    Problem {
        spec: spec(layers, f, h),
        inputs,
        what: format!("residual {f} -> {h}"),
    }
}

/// The reference: every layer computed from the description, row-major, in i64, rounded by `requantize`.
fn reference(spec: &ModelSpec, x: &[i8]) -> Vec<i8> {
    let mut tensors: Vec<(Vec<i8>, (usize, usize))> = Vec::new();
    for (i, layer) in spec.layers.iter().enumerate() {
        let src = layer.input.unwrap_or(i.saturating_sub(1));
        let in_zp = if i == 0 {
            0
        } else {
            spec.layers[src].out_zero_point
        };
        let q = |acc: i64, m: QuantMultiplier| {
            requantize(
                acc as i32,
                m,
                layer.out_zero_point,
                layer.act_min,
                layer.act_max,
            )
        };
        let (out, shape) = match &layer.op {
            OpSpec::Quantize {
                time_steps,
                features,
                ..
            } => {
                let n = time_steps * features;
                let mut v: Vec<i8> = x.iter().copied().take(n).collect();
                v.resize(n, layer.out_zero_point);
                (v, (*time_steps, *features))
            }
            OpSpec::Dense {
                out_features,
                in_features,
                weights,
                bias,
                requant,
            } => {
                let xs = &tensors[src].0;
                let out = (0..*out_features)
                    .map(|o| {
                        let row = &weights[o * in_features..(o + 1) * in_features];
                        let acc: i64 = i64::from(bias[o])
                            + row
                                .iter()
                                .zip(xs)
                                .map(|(&w, &v)| i64::from(w) * i64::from(v))
                                .sum::<i64>();
                        q(acc, requant[o])
                    })
                    .collect();
                (out, (1, *out_features))
            }
            OpSpec::Conv1d {
                out_channels,
                in_channels,
                kernel,
                stride,
                dilation,
                padding,
                weights,
                bias,
                requant,
            } => {
                let (xs, (t_in, _)) = &tensors[src];
                let pad = match padding {
                    Padding::Valid => 0,
                    Padding::Causal => dilation * (kernel - 1),
                };
                let padded = t_in + pad;
                let t_out = (padded - dilation * (kernel - 1) - 1) / stride + 1;
                let at = |t: usize, c: usize| -> i64 {
                    if t < pad {
                        i64::from(in_zp)
                    } else {
                        i64::from(xs[(t - pad) * in_channels + c])
                    }
                };
                let mut out = Vec::new();
                for t in 0..t_out {
                    for o in 0..*out_channels {
                        let mut acc = i64::from(bias[o]);
                        for k in 0..*kernel {
                            for c in 0..*in_channels {
                                let w = weights[(o * kernel + k) * in_channels + c];
                                acc += i64::from(w) * at(t * stride + k * dilation, c);
                            }
                        }
                        out.push(q(acc, requant[o]));
                    }
                }
                (out, (t_out, *out_channels))
            }
            OpSpec::Lut { table } => {
                let xs = &tensors[src].0;
                let out = xs
                    .iter()
                    .map(|&v| table[(i16::from(v) + 128) as usize])
                    .collect();
                (out, tensors[src].1)
            }
            OpSpec::MaxPool1d { kernel, stride } => {
                let (xs, (t_in, c)) = &tensors[src];
                let t_out = (t_in - kernel) / stride + 1;
                let mut out = Vec::new();
                for t in 0..t_out {
                    for ch in 0..*c {
                        let m = (0..*kernel)
                            .map(|k| xs[(t * stride + k) * c + ch])
                            .max()
                            .unwrap();
                        out.push(m.clamp(layer.act_min, layer.act_max));
                    }
                }
                (out, (t_out, *c))
            }
            OpSpec::AvgPool1d {
                kernel,
                stride,
                requant,
            } => {
                let (xs, (t_in, c)) = &tensors[src];
                let t_out = (t_in - kernel) / stride + 1;
                let mut out = Vec::new();
                for t in 0..t_out {
                    for ch in 0..*c {
                        let acc: i64 = (0..*kernel)
                            .map(|k| i64::from(xs[(t * stride + k) * c + ch]) - i64::from(in_zp))
                            .sum();
                        out.push(q(acc, *requant));
                    }
                }
                (out, (t_out, *c))
            }
            OpSpec::GlobalAvgPool { requant } => {
                let (xs, (t_in, c)) = &tensors[src];
                let out = (0..*c)
                    .map(|ch| {
                        let acc: i64 = (0..*t_in)
                            .map(|t| i64::from(xs[t * c + ch]) - i64::from(in_zp))
                            .sum();
                        q(acc, *requant)
                    })
                    .collect();
                (out, (1, *c))
            }
            OpSpec::Flatten => {
                let (xs, (t, c)) = &tensors[src];
                (xs.clone(), (1, t * c))
            }
            OpSpec::Add {
                other,
                wa,
                wb,
                requant,
            } => {
                let (a, shape) = &tensors[src];
                let b = &tensors[*other].0;
                let zb = spec.layers[*other].out_zero_point;
                let out = a
                    .iter()
                    .zip(b)
                    .map(|(&va, &vb)| {
                        let acc = (i64::from(va) - i64::from(in_zp)) * i64::from(*wa)
                            + (i64::from(vb) - i64::from(zb)) * i64::from(*wb);
                        q(acc, *requant)
                    })
                    .collect();
                (out, *shape)
            }
        };
        tensors.push((out, shape));
    }
    tensors.pop().map(|t| t.0).unwrap_or_default()
}

/// Encodes `problem` in `format` (if the format fits) and checks every available backend against the reference
/// on every input; returns the backends it ran.
fn check(problem: &Problem, format: WeightFormat, ran: &mut Vec<Backend>) {
    let options = EncodeOptions {
        weight_format: format,
        target: Target::native(),
    };
    let blob = match encode_with(&problem.spec, &options) {
        Ok(blob) => blob,
        // A forced format that does not fit this problem (an N:M group with 4 non-zeros, a column format on a
        // Conv1d, ...): nothing to run.
        Err(EncodeError::WeightFormat { .. }) => return,
        Err(e) => panic!("{}, format {format}: {e}", problem.what),
    };
    let mut model = Model::load(&blob).expect("an encoded blob loads");
    let wants: Vec<Vec<i8>> = problem
        .inputs
        .iter()
        .map(|x| reference(&problem.spec, x))
        .collect();
    for backend in Backend::available() {
        model
            .set_backend(backend)
            .expect("an available backend can be pinned");
        assert_eq!(model.backend(), backend);
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut session = Session::new(&model, &mut arena).expect("exact arena");
        for (x, want) in problem.inputs.iter().zip(&wants) {
            let got = session.run_quantized(x).logits().to_vec();
            assert_eq!(
                &got, want,
                "{}, format {format}, backend {backend}, input {x:?}",
                problem.what
            );
        }
        if !ran.contains(&backend) {
            ran.push(backend);
        }
    }
}

/// One test per problem family: `cases` problems from `generator`, in every format that fits, on every backend.
macro_rules! harness {
    ($($name:ident: $generator:ident, $dense:expr, $cases:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let mut rng = Rng(0x7165_6b73 ^ stringify!($name).len() as u64);
                let mut ran = Vec::new();
                for _ in 0..cases($cases) {
                    let problem = $generator(&mut rng);
                    for format in formats($dense) {
                        check(&problem, format, &mut ran);
                    }
                }
                eprintln!("{}: backends {:?}", stringify!($name), ran);
                assert_eq!(ran.len(), Backend::available().count());
            }
        )*
    };
}

harness! {
    dense_layers_match_the_reference_on_every_backend: dense_problem, true, 60;
    conv_and_pools_match_the_reference_on_every_backend: conv_problem, false, 60;
    residual_blocks_match_the_reference_on_every_backend: residual_problem, true, 20;
}

/// The f32 input quantizer gives the same bytes on every backend: random features with NaN, infinities, exact
/// halves and values far outside the int8 range, rows of every width.
#[test]
fn input_quantizer_matches_on_every_backend() {
    let mut rng = Rng(0x0f32);
    for case in 0..cases(40) {
        // Half the problems have a row length that divides 16 (the AVX-512 quantizer's flat path), over enough
        // steps to end on a partial vector.
        let t = 1 + rng.below(12);
        let f = if case % 2 == 0 {
            [1, 2, 4, 8, 16][rng.below(5)]
        } else {
            1 + rng.below(40)
        };
        let a: Vec<f32> = (0..f).map(|_| rng.range(-40.0, 40.0)).collect();
        let b: Vec<f32> = (0..f)
            .map(|_| rng.range(-130.0, 130.0).round() + 0.5 * rng.below(2) as f32)
            .collect();
        let zp = rng.i8();
        let (lo, hi) = clamp(&mut rng, zp);
        let quantize = with_clamp(
            LayerSpec::new(
                OpSpec::Quantize {
                    time_steps: t,
                    features: f,
                    a,
                    b,
                },
                0.1,
                zp,
            ),
            (lo, hi),
        );
        let classes = 1 + rng.below(3);
        let head = weighted(&mut rng, (t * f, classes), None, 0.0);
        let layers = vec![quantize, LayerSpec::new(OpSpec::Flatten, 0.1, zp), head];
        let spec = spec(layers, f, classes);
        let blob = encode_with(&spec, &EncodeOptions::format(WeightFormat::Blocked)).unwrap();
        let mut model = Model::load(&blob).unwrap();
        let features: Vec<Vec<f32>> = (0..4)
            .map(|_| {
                (0..t * f)
                    .map(|_| match rng.below(10) {
                        0 => f32::NAN,
                        1 => f32::INFINITY,
                        2 => f32::NEG_INFINITY,
                        3 => rng.range(-1e6, 1e6),
                        4 => (rng.below(64) as f32 - 32.0) / 8.0,
                        _ => rng.range(-8.0, 8.0),
                    })
                    .collect()
            })
            .collect();
        model.set_backend(Backend::Generic).unwrap();
        let want: Vec<Vec<i8>> = features.iter().map(|x| model.quantize_inputs(x)).collect();
        for backend in Backend::available() {
            model.set_backend(backend).unwrap();
            for (x, w) in features.iter().zip(&want) {
                assert_eq!(
                    &model.quantize_inputs(x),
                    w,
                    "case {case}, backend {backend}"
                );
                let mut arena = vec![0u8; model.arena_bytes()];
                let mut s = Session::new(&model, &mut arena).unwrap();
                let got = s.run(x).logits().to_vec();
                let mut arena = vec![0u8; model.arena_bytes()];
                let mut r = Session::new(&model, &mut arena).unwrap();
                assert_eq!(
                    got,
                    r.run_quantized(w).logits(),
                    "case {case}, backend {backend}"
                );
            }
        }
    }
}

/// Every x86-64 instruction set the CPU reports (as `std` detects it, independently of tickq's own CPUID code)
/// has its backend available, so the families above tested it; and tickq's detection agrees with `std`'s.
#[test]
fn every_backend_the_cpu_reports_is_tested() {
    let mut expected = vec![Backend::Generic];
    #[cfg(target_arch = "x86_64")]
    {
        expected.push(Backend::Sse2);
        if std::arch::is_x86_feature_detected!("avx2") {
            expected.push(Backend::Avx2);
        }
        let avx512 = ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni"];
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vnni")
        {
            expected.push(Backend::Avx512Vnni);
        }
        let _ = avx512;
    }
    #[cfg(target_arch = "aarch64")]
    {
        expected.push(Backend::Neon);
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            expected.push(Backend::NeonDot);
        }
    }
    let available: Vec<Backend> = Backend::available().collect();
    eprintln!(
        "the CPU reports {expected:?}; tickq has {available:?}; Model::load picks {}",
        Backend::detect()
    );
    let missing: Vec<&Backend> = expected.iter().filter(|b| !available.contains(b)).collect();
    if !missing.is_empty() {
        let msg = format!("backends the CPU supports but the harness did not test: {missing:?}");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("warning: {msg}");
    }
    assert!(
        available.iter().all(|b| expected.contains(b)),
        "{available:?} has a backend the CPU lacks"
    );
    assert_eq!(Backend::detect(), *available.last().unwrap());
}

/// Pinning a backend the build or CPU lacks is an error, and the model keeps its backend.
#[test]
fn unavailable_backends_are_refused() {
    let blob = mlp_blob(8, 16, 3);
    let mut model = Model::load(&blob).unwrap();
    let before = model.backend();
    for backend in Backend::ALL {
        match model.set_backend(backend) {
            Ok(()) => assert!(backend.is_available()),
            Err(e) => {
                assert!(!backend.is_available());
                assert_eq!(e.backend, backend);
                assert!(e.to_string().contains(backend.name()), "{e}");
                assert_eq!(model.backend(), before);
            }
        }
        model.set_backend(before).unwrap();
    }
    assert_eq!("avx512-vnni".parse::<Backend>(), Ok(Backend::Avx512Vnni));
    assert!("avx9".parse::<Backend>().is_err());
}

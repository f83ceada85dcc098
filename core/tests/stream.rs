//! `WindowSession` against `Session::run`: random windowed models (causal and valid convolutions with strides
//! and dilations, lookup tables, pooling, residual adds, Flatten + Dense and GlobalAvgPool heads) in every weight
//! format a convolution can have, streamed over long random column sequences on every backend; the logits must
//! equal a full run over the assembled window at every tick.

use tickq_core::encode::{EncodeOptions, LayerSpec, ModelSpec, OpSpec, WeightFormat, encode_with};
use tickq_core::requant::QuantMultiplier;
use tickq_core::stream::Unsupported;
use tickq_core::{Backend, LayerKind, Model, Padding, Session, StreamError, WindowSession};

use crate::support::{
    Qp, Rng, conv_spec, dense_spec, every_kind_spec, quantize_layer, reading, spec, with_clamp,
};

/// The weight formats a Conv1d can be stored in (Miri: the one with `unsafe` kernels).
fn conv_formats() -> Vec<WeightFormat> {
    if cfg!(miri) {
        return vec![WeightFormat::DenseDot];
    }
    let mut all = vec![WeightFormat::Blocked];
    if tickq_core::DENSE_DOT {
        all.push(WeightFormat::DenseDot);
    }
    if tickq_core::SPARSE_FORMATS {
        all.extend([WeightFormat::Sparse, WeightFormat::NM]);
    }
    all
}

/// Streams `ticks` random columns through `blob` on every backend, as f32 columns through `push` and as int8
/// columns through `push_quantized`, and checks every prediction against `Session::run` (or `run_quantized`)
/// on the window of the last `T` columns; returns the number of predictions checked.
fn check_stream(blob: &[u8], ticks: usize, seed: u64) -> usize {
    let mut model = Model::load(blob).expect("the encoder's blob loads");
    let (t, f) = model.input_shape();
    let mut checked = 0;
    for backend in Backend::available() {
        model
            .set_backend(backend)
            .expect("an available backend can be pinned");
        for quantized in [false, true] {
            let mut rng = Rng(seed);
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut session = Session::new(&model, &mut arena).expect("exact arena");
            // Garbage in the arena must not matter.
            let len = WindowSession::arena_bytes(&model).expect("streamable");
            let mut stream_arena = vec![0xA5u8; len];
            let mut stream = WindowSession::new(&model, &mut stream_arena).expect("streamable");
            let mut columns: Vec<Vec<f32>> = Vec::new();
            let mut qcolumns: Vec<Vec<i8>> = Vec::new();
            for tick in 0..ticks {
                if tick == ticks / 2 {
                    // A reset starts a new stream: the window fills again from nothing.
                    stream.reset();
                    columns.clear();
                    qcolumns.clear();
                }
                let column: Vec<f32> = (0..f)
                    .map(|_| {
                        if rng.below(50) == 0 {
                            f32::NAN
                        } else {
                            rng.range(-4.0, 4.0)
                        }
                    })
                    .collect();
                let qcolumn: Vec<i8> = (0..f).map(|_| rng.i8()).collect();
                let streamed = if quantized {
                    stream.push_quantized(&qcolumn).map(|p| p.logits().to_vec())
                } else {
                    stream.push(&column).map(|p| p.logits().to_vec())
                };
                columns.push(column);
                qcolumns.push(qcolumn);
                if columns.len() < t {
                    assert_eq!(
                        streamed, None,
                        "tick {tick}: no prediction before {t} columns"
                    );
                    continue;
                }
                let streamed = streamed.expect("a full window predicts");
                let from = columns.len() - t;
                let expected = if quantized {
                    let flat: Vec<i8> = qcolumns[from..].iter().flatten().copied().collect();
                    session.run_quantized(&flat).logits().to_vec()
                } else {
                    let flat: Vec<f32> = columns[from..].iter().flatten().copied().collect();
                    session.run(&flat).logits().to_vec()
                };
                assert_eq!(
                    streamed, expected,
                    "backend {backend}, int8 input {quantized}, tick {tick}: streamed logits differ from \
                     Session::run"
                );
                checked += 1;
            }
        }
    }
    checked
}

fn encode_in(spec: &ModelSpec, format: WeightFormat) -> Vec<u8> {
    encode_with(spec, &EncodeOptions::format(format)).expect("the test model encodes")
}

fn ticks(t: usize) -> usize {
    // Two streams (the reset is half way), each a few ticks past its first full window.
    if cfg!(miri) { 2 * t + 6 } else { 4 * t + 20 }
}

/// The fixture with every layer kind: a causal dilated conv, a Lut, a residual Add, a strided MaxPool, a valid
/// conv, an AvgPool, then Flatten and GlobalAvgPool heads joined by an Add.
#[test]
fn every_kind_streams_exactly() {
    let spec = every_kind_spec();
    // N:M needs rows of a multiple of 4 inputs, which the fixture's layers do not have.
    for format in conv_formats()
        .into_iter()
        .filter(|&f| f != WeightFormat::NM)
    {
        let blob = encode_in(&spec, format);
        let n = check_stream(&blob, ticks(8), 11);
        assert!(n > 0, "{format:?}: nothing was compared");
    }
}

fn add_spec(a: Qp, b: Qp, out: Qp, other: usize) -> LayerSpec {
    let s_max = f64::from(a.scale.max(b.scale));
    LayerSpec::new(
        OpSpec::Add {
            other,
            wa: (f64::from(a.scale) / s_max * 65536.0).round() as i32,
            wb: (f64::from(b.scale) / s_max * 65536.0).round() as i32,
            requant: QuantMultiplier::from_ratio(s_max / (65536.0 * f64::from(out.scale))).unwrap(),
        },
        out.scale,
        out.zp,
    )
}

/// A random windowed model: `(spec, T)`, built layer by layer while the window still fits.
///
/// `by4`: every channel count a multiple of 4, so that every weighted row fits the N:M format.
fn random_model(rng: &mut Rng, by4: bool) -> ModelSpec {
    let channels = |rng: &mut Rng| {
        if by4 {
            4 * (1 + rng.below(2))
        } else {
            1 + rng.below(9)
        }
    };
    let t = 4 + rng.below(if cfg!(miri) { 6 } else { 28 });
    let f = if by4 { 4 } else { 1 + rng.below(5) };
    let mut qs = vec![Qp::from_range(-3.0, 3.0)];
    let mut layers = vec![quantize_layer(
        t,
        &(0..f).map(|_| rng.range(-0.5, 0.5)).collect::<Vec<_>>(),
        &(0..f).map(|_| rng.range(0.5, 2.0)).collect::<Vec<_>>(),
        qs[0],
    )];
    let mut shape = (t, f);
    let depth = 1 + rng.below(if cfg!(miri) { 3 } else { 6 });
    for _ in 0..depth {
        let last = layers.len() - 1;
        let qin = qs[last];
        let qout = Qp::from_range(-rng.range(1.0, 4.0), rng.range(1.0, 4.0));
        match rng.below(6) {
            0 | 1 => {
                let (k, s, d) = (1 + rng.below(4), 1 + rng.below(3), 1 + rng.below(3));
                let causal = rng.below(2) == 0;
                let span = (k - 1) * d + 1;
                if !causal && span > shape.0 {
                    continue;
                }
                let c_out = channels(rng);
                let padding = if causal {
                    Padding::Causal
                } else {
                    Padding::Valid
                };
                let mut l = conv_spec(rng, shape.1, c_out, k, s, d, padding, qin, qout);
                if rng.below(2) == 0 {
                    l = with_clamp(l, qout.relu());
                }
                shape = if causal {
                    ((shape.0 - 1) / s + 1, c_out)
                } else {
                    ((shape.0 - span) / s + 1, c_out)
                };
                layers.push(l);
                qs.push(qout);
            }
            2 => {
                let table: [i8; 256] = std::array::from_fn(|_| rng.i8());
                layers.push(LayerSpec::new(OpSpec::Lut { table }, qout.scale, qout.zp));
                qs.push(qout);
            }
            3 => {
                let (k, s) = (1 + rng.below(3), 1 + rng.below(3));
                if k > shape.0 {
                    continue;
                }
                let op = if rng.below(2) == 0 {
                    layers.push(LayerSpec::new(
                        OpSpec::MaxPool1d {
                            kernel: k,
                            stride: s,
                        },
                        qin.scale,
                        qin.zp,
                    ));
                    qs.push(qin);
                    None
                } else {
                    Some(OpSpec::AvgPool1d {
                        kernel: k,
                        stride: s,
                        requant: QuantMultiplier::from_ratio(
                            f64::from(qin.scale) / (f64::from(qout.scale) * k as f64),
                        )
                        .unwrap(),
                    })
                };
                if let Some(op) = op {
                    layers.push(LayerSpec::new(op, qout.scale, qout.zp));
                    qs.push(qout);
                }
                shape = ((shape.0 - k) / s + 1, shape.1);
            }
            _ => {
                // A residual block: a causal stride-1 conv (or a Lut) of the last output, added to it.
                if rng.below(2) == 0 {
                    let (k, d) = (1 + rng.below(4), 1 + rng.below(3));
                    layers.push(conv_spec(
                        rng,
                        shape.1,
                        shape.1,
                        k,
                        1,
                        d,
                        Padding::Causal,
                        qin,
                        qout,
                    ));
                } else {
                    let table: [i8; 256] = std::array::from_fn(|_| rng.i8());
                    layers.push(LayerSpec::new(OpSpec::Lut { table }, qout.scale, qout.zp));
                }
                qs.push(qout);
                let qadd = Qp::from_range(-4.0, 4.0);
                layers.push(reading(add_spec(qout, qin, qadd, last), last + 1));
                qs.push(qadd);
            }
        }
    }
    let classes = 1 + rng.below(4);
    let last = layers.len() - 1;
    let qlast = qs[last];
    let qlogits = Qp::from_range(-4.0, 4.0);
    match rng.below(3) {
        0 => {
            layers.push(LayerSpec::new(OpSpec::Flatten, qlast.scale, qlast.zp));
            layers.push(dense_spec(rng, shape.0 * shape.1, classes, qlast, qlogits));
        }
        1 => {
            let qg = Qp::from_range(-3.0, 3.0);
            let requant = QuantMultiplier::from_ratio(
                f64::from(qlast.scale) / (f64::from(qg.scale) * shape.0 as f64),
            )
            .unwrap();
            layers.push(LayerSpec::new(
                OpSpec::GlobalAvgPool { requant },
                qg.scale,
                qg.zp,
            ));
            layers.push(dense_spec(rng, shape.1, classes, qg, qlogits));
        }
        _ => {
            // No head: a valid conv over the whole remaining window gives the logits, a streamed layer of T = 1.
            layers.push(conv_spec(
                rng,
                shape.1,
                classes,
                shape.0,
                1,
                1,
                Padding::Valid,
                qlast,
                qlogits,
            ));
        }
    }
    spec(layers, f, classes)
}

/// Keeps the two largest weights of every group of 4 (the 2:4 pattern of the N:M format).
fn prune_2_of_4(spec: &mut ModelSpec) {
    for l in &mut spec.layers {
        if let OpSpec::Dense { weights, .. } | OpSpec::Conv1d { weights, .. } = &mut l.op {
            for group in weights.chunks_mut(4) {
                let mut order: Vec<usize> = (0..group.len()).collect();
                order.sort_by_key(|&i| i16::from(group[i]).abs());
                for &i in order.iter().take(2) {
                    group[i] = 0;
                }
            }
        }
    }
}

#[test]
fn random_windowed_models_stream_exactly() {
    let mut rng = Rng(0x5EED_0001);
    let models = if cfg!(miri) { 2 } else { 60 };
    let formats = conv_formats();
    let mut checked = 0;
    for m in 0..models {
        let format = formats[m % formats.len()];
        let mut spec = random_model(&mut rng, format == WeightFormat::NM);
        if format == WeightFormat::NM {
            prune_2_of_4(&mut spec);
        }
        let blob = encode_in(&spec, format);
        let t = Model::load(&blob).unwrap().input_shape().0;
        checked += check_stream(&blob, ticks(t), m as u64);
    }
    assert!(checked > 0);
}

/// `(c_out, kernel, stride, dilation, causal)` of one conv.
type ConvGeometry = (usize, usize, usize, usize, bool);

/// Edge-heavy stacks, where most columns a tick needs touch a causal pad: long dilated causal convs, stacked
/// causal convs, strided and valid convs after causal ones, and layers wider than one pass of the partial-sum
/// loops (70 channels), in the formats whose convs stream from per-tap partial sums and the others.
#[test]
#[cfg_attr(
    miri,
    ignore = "over ten minutes interpreted; its kernels' unsafe code runs under Miri in the other stream tests"
)]
fn edge_heavy_stacks_stream_exactly() {
    let mut rng = Rng(0x5EED_0002);
    let q = Qp::from_range(-3.0, 3.0);
    let qr = Qp::from_range(-2.0, 3.0);
    let stacks: [&[ConvGeometry]; 3] = [
        &[
            (6, 5, 1, 3, true),
            (5, 4, 2, 2, true),
            (7, 3, 1, 2, false),
            (3, 2, 1, 1, true),
        ],
        &[(70, 3, 1, 1, true), (9, 6, 1, 2, true), (4, 3, 2, 1, false)],
        &[(5, 7, 2, 1, true), (66, 4, 1, 1, true), (3, 3, 1, 3, true)],
    ];
    let mut checked = 0;
    for (i, stack) in stacks.iter().enumerate() {
        for format in conv_formats() {
            if format == WeightFormat::NM {
                continue;
            }
            let (t, f) = (if cfg!(miri) { 12 } else { 24 }, 3 + i * 31);
            let mut layers = vec![quantize_layer(t, &vec![0.1; f], &vec![1.0; f], q)];
            let mut shape = (t, f);
            for (j, &(c_out, k, s, d, causal)) in stack.iter().enumerate() {
                let padding = if causal {
                    Padding::Causal
                } else {
                    Padding::Valid
                };
                let (qin, qout) = if j == 0 { (q, qr) } else { (qr, qr) };
                let mut l = conv_spec(&mut rng, shape.1, c_out, k, s, d, padding, qin, qout);
                if j % 2 == 1 {
                    l = with_clamp(l, qout.relu());
                }
                layers.push(l);
                let span = (k - 1) * d + 1;
                shape = if causal {
                    ((shape.0 - 1) / s + 1, c_out)
                } else {
                    ((shape.0 - span) / s + 1, c_out)
                };
            }
            layers.push(LayerSpec::new(OpSpec::Flatten, qr.scale, qr.zp));
            layers.push(dense_spec(&mut rng, shape.0 * shape.1, 3, qr, q));
            let blob = encode_in(&spec(layers, f, 3), format);
            checked += check_stream(&blob, ticks(t), i as u64);
        }
    }
    assert!(checked > 0);
}

/// Streaming computes far fewer multiply-accumulates per tick than a full run (the window's MACs are the sum
/// of `LayerInfo::macs`).
#[test]
fn macs_per_tick_are_counted() {
    use tickq_core::encode::encode;
    let mut rng = Rng(3);
    let q = Qp::from_range(-3.0, 3.0);
    let layers = vec![
        quantize_layer(32, &[0.0; 4], &[1.0; 4], q),
        conv_spec(&mut rng, 4, 8, 3, 1, 1, Padding::Valid, q, q),
        LayerSpec::new(OpSpec::Flatten, q.scale, q.zp),
        dense_spec(&mut rng, 30 * 8, 2, q, q),
    ];
    let blob = encode(&spec(layers, 4, 2)).unwrap();
    let model = Model::load(&blob).unwrap();
    let mut arena = vec![0u8; WindowSession::arena_bytes(&model).unwrap()];
    let s = WindowSession::new(&model, &mut arena).unwrap();
    let full: u64 = model.layers().map(|l| l.macs).sum();
    assert_eq!(s.window_macs(), full);
    // Quantize 4, one conv column 8 * 12, the Flatten and Dense over the window.
    assert_eq!(s.macs_per_tick(), 4 + 8 * 12 + 240 + 480);
}

#[test]
fn refusals_name_the_layer() {
    use tickq_core::encode::encode;
    let mut rng = Rng(4);
    let q = Qp::from_range(-3.0, 3.0);
    // A causal stride-2 conv ends its outputs at window times 0, 2, 4, ...; a valid k2 stride-2 conv at 1, 3,
    // 5, ...: the same shape, but an Add of the two pairs different ticks.
    let layers = vec![
        quantize_layer(8, &[0.0; 2], &[1.0; 2], q),
        conv_spec(&mut rng, 2, 2, 2, 2, 1, Padding::Causal, q, q),
        reading(conv_spec(&mut rng, 2, 2, 2, 2, 1, Padding::Valid, q, q), 0),
        reading(add_spec(q, q, q, 1), 2),
        LayerSpec::new(OpSpec::Flatten, q.scale, q.zp),
        dense_spec(&mut rng, 8, 2, q, q),
    ];
    let blob = encode(&spec(layers, 2, 2)).unwrap();
    let model = Model::load(&blob).unwrap();
    let err = WindowSession::arena_bytes(&model).unwrap_err();
    assert_eq!(
        err,
        StreamError::Unsupported {
            layer: 3,
            kind: LayerKind::Add,
            reason: Unsupported::MisalignedAdd
        }
    );
    assert_eq!(
        err.to_string(),
        "layer 3 (Add) cannot stream: its two inputs are not aligned in time"
    );

    // Too small an arena is refused with the size needed.
    let spec_ok = every_kind_spec();
    let blob = encode(&spec_ok).unwrap();
    let model = Model::load(&blob).unwrap();
    let needed = WindowSession::arena_bytes(&model).unwrap();
    let mut arena = vec![0u8; needed - 1];
    match WindowSession::new(&model, &mut arena) {
        Err(StreamError::ArenaTooSmall(e)) => assert_eq!((e.needed, e.given), (needed, needed - 1)),
        other => panic!("expected ArenaTooSmall, got {other:?}"),
    }
}

/// A dynamically quantized model is refused at layer 0.
#[cfg(feature = "dynamic")]
#[test]
fn dynamic_models_are_refused() {
    use tickq_core::encode::encode;
    let quantize = LayerSpec {
        dynamic: Some(0),
        ..LayerSpec::new(
            OpSpec::Quantize {
                time_steps: 1,
                features: 2,
                a: vec![1.0; 2],
                b: vec![0.0; 2],
            },
            1.0,
            0,
        )
    };
    let dense = LayerSpec {
        dynamic: Some(0),
        ..LayerSpec::new(
            OpSpec::Dense {
                out_features: 2,
                in_features: 2,
                weights: vec![1, 0, 0, 1],
                bias: vec![0; 2],
                requant: vec![QuantMultiplier::from_ratio(0.5).unwrap(); 2],
            },
            1.0,
            0,
        )
    };
    let blob = encode(&spec(vec![quantize, dense], 2, 2)).unwrap();
    let model = Model::load(&blob).unwrap();
    assert!(model.is_dynamic());
    let mut arena = [0u8; 256];
    assert!(matches!(
        WindowSession::new(&model, &mut arena),
        Err(StreamError::Unsupported {
            layer: 0,
            kind: LayerKind::Quantize,
            reason: Unsupported::Dynamic
        })
    ));
}

/// A dynamically quantized convolutional model is refused at layer 0 too, before any ring is planned.
#[cfg(feature = "dynamic")]
#[test]
fn dynamic_conv_models_are_refused() {
    use tickq_core::encode::encode;
    let dynamic = |l: LayerSpec| LayerSpec {
        dynamic: Some(0),
        ..l
    };
    let layers = vec![
        dynamic(LayerSpec::new(
            OpSpec::Quantize {
                time_steps: 4,
                features: 2,
                a: vec![1.0; 2],
                b: vec![0.0; 2],
            },
            1.0,
            0,
        )),
        dynamic(LayerSpec::new(
            OpSpec::Conv1d {
                out_channels: 3,
                in_channels: 2,
                kernel: 2,
                stride: 1,
                dilation: 1,
                padding: Padding::Causal,
                weights: vec![1; 12],
                bias: vec![0; 3],
                requant: vec![QuantMultiplier::from_ratio(0.5).unwrap(); 3],
            },
            1.0,
            0,
        )),
        dynamic(LayerSpec::new(OpSpec::Flatten, 1.0, 0)),
        dynamic(LayerSpec::new(
            OpSpec::Dense {
                out_features: 2,
                in_features: 12,
                weights: vec![1; 24],
                bias: vec![0; 2],
                requant: vec![QuantMultiplier::from_ratio(0.5).unwrap(); 2],
            },
            1.0,
            0,
        )),
    ];
    let blob = encode(&spec(layers, 2, 2)).unwrap();
    let model = Model::load(&blob).unwrap();
    assert!(model.is_dynamic());
    let mut arena = [0u8; 1024];
    let err = WindowSession::new(&model, &mut arena).unwrap_err();
    assert_eq!(
        err,
        StreamError::Unsupported {
            layer: 0,
            kind: LayerKind::Quantize,
            reason: Unsupported::Dynamic
        }
    );
    assert!(err.to_string().contains("dynamic"), "{err}");
}

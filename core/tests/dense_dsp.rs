//! The `dense-dsp` weight format (code 5): bit-exact with the blocked dense layout on random layers, its byte
//! layout, the encoder's fallbacks, and the loader's checks of its padding, overflow bound and kind.
//! Also the per-layer callback of `Session::run_quantized_profiled`, which the Cortex-M4 example uses to count
//! each layer's instructions.

use proptest::prelude::{ProptestConfig, any, prop_assert_eq, proptest};
use tickq_core::encode::{EncodeOptions, LayerSpec, OpSpec, WeightFormat, encode_with};
use tickq_core::format::entry as e;
use tickq_core::requant::QuantMultiplier;
use tickq_core::{BlobErrorKind as K, Model, Session, WeightLayout};

use crate::support::*;

fn with(format: WeightFormat) -> EncodeOptions {
    EncodeOptions::format(format)
}

/// The logits of `blob` on the int8 input `x`.
fn run(blob: &[u8], x: &[i8]) -> Vec<i8> {
    let model = Model::load(blob).unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(&model, &mut arena).unwrap();
    session.run_quantized(x).logits().to_vec()
}

/// Quantize -> Dense(in_c -> hidden) -> Dense(hidden -> out_c) with random int8 weights and large biases.
fn two_layers(
    seed: u64,
    in_c: usize,
    hidden: usize,
    out_c: usize,
) -> tickq_core::encode::ModelSpec {
    let mut rng = Rng(seed);
    let mut dense = |in_c: usize, out_c: usize| {
        let weights = (0..out_c * in_c).map(|_| rng.i8()).collect();
        let bias = (0..out_c)
            .map(|_| rng.below(40_000) as i32 - 20_000)
            .collect();
        let ratio = 1.0 / (64.0 * (in_c as f64).sqrt());
        let requant = (0..out_c)
            .map(|_| QuantMultiplier::from_ratio(ratio * (0.5 + f64::from(rng.unit()))).unwrap())
            .collect();
        OpSpec::Dense {
            out_features: out_c,
            in_features: in_c,
            weights,
            bias,
            requant,
        }
    };
    let q = Qp { scale: 0.05, zp: 3 };
    let first = dense(in_c, hidden);
    let second = dense(hidden, out_c);
    spec(
        vec![
            identity_input(1, in_c, q),
            with_clamp(LayerSpec::new(first, 0.1, -5), (-128, 120)),
            LayerSpec::new(second, 0.1, 2),
        ],
        in_c,
        out_c,
    )
}

/// The weights of Dense layer `layer` of a spec.
fn weights_of(s: &tickq_core::encode::ModelSpec, layer: usize) -> Vec<i8> {
    match &s.layers[layer].op {
        OpSpec::Dense { weights, .. } => weights.clone(),
        _ => Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// `dense-dsp` gives the same bytes as the blocked layout, for row lengths and channel counts around the
    /// word (4) and group (4) sizes and the blocked layout's 16-channel blocks.
    #[test]
    fn dense_dsp_matches_blocked(
        seed in any::<u64>(),
        in_c in 1usize..70,
        hidden in 1usize..40,
        out_c in 1usize..20,
    ) {
        let s = two_layers(seed, in_c, hidden, out_c);
        let blocked = encode_with(&s, &with(WeightFormat::Blocked)).unwrap();
        let dsp = encode_with(&s, &with(WeightFormat::DenseDsp)).unwrap();
        let model = Model::load(&dsp).unwrap();
        for info in model.layers().skip(1) {
            prop_assert_eq!(info.weight_format, Some(WeightLayout::DenseDsp));
        }
        let mut rng = Rng(seed ^ 0xA5A5);
        for _ in 0..4 {
            let x: Vec<i8> = (0..in_c).map(|_| rng.i8()).collect();
            prop_assert_eq!(run(&dsp, &x), run(&blocked, &x));
        }
    }
}

/// Extreme inputs and weights (every product at its largest magnitude) still agree.
#[test]
fn extreme_values_match() {
    for (in_c, out_c) in [(1, 1), (3, 5), (4, 4), (7, 9), (64, 8), (130, 6)] {
        let mut s = two_layers(1, in_c, 8, out_c);
        if let OpSpec::Dense { weights, .. } = &mut s.layers[1].op {
            for (i, w) in weights.iter_mut().enumerate() {
                *w = if i % 3 == 0 { -128 } else { 127 };
            }
        }
        let blocked = encode_with(&s, &with(WeightFormat::Blocked)).unwrap();
        let dsp = encode_with(&s, &with(WeightFormat::DenseDsp)).unwrap();
        for x in [
            vec![-128i8; in_c],
            vec![127i8; in_c],
            (0..in_c)
                .map(|i| if i % 2 == 0 { -128 } else { 127 })
                .collect(),
        ] {
            assert_eq!(run(&dsp, &x), run(&blocked, &x), "{in_c} -> {out_c}");
        }
    }
}

/// The section is `C_out * round_up(K, 4)` bytes: 4-channel groups interleaved by words of 4 inputs, then the
/// remaining channels as plain rows, as `docs/BLOB.md` describes.
#[test]
fn layout_is_as_documented() {
    let (in_c, out_c) = (6, 5);
    let s = two_layers(3, in_c, out_c, 2);
    let w = weights_of(&s, 1);
    let blob = encode_with(&s, &with(WeightFormat::DenseDsp)).unwrap();
    let at = get_u32(&blob, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    let len = get_u32(&blob, entry(1) + e::WEIGHTS_LEN.start) as usize;
    assert_eq!(len, 5 * 8);
    assert_eq!(blob[entry(1) + e::WEIGHT_FORMAT], 5);
    let section = &blob[at..at + len];
    let k4 = 8;
    for o in 0..out_c {
        for k in 0..k4 {
            let i = if o < 4 {
                (k / 4) * 16 + o * 4 + k % 4
            } else {
                4 * k4 + (o - 4) * k4 + k
            };
            let want = if k < in_c { w[o * in_c + k] as u8 } else { 0 };
            assert_eq!(section[i], want, "w[{o}][{k}] at {i}");
        }
    }
    let model = Model::load(&blob).unwrap();
    let info = model.layers().nth(1).unwrap();
    assert_eq!(info.weights_total, out_c * in_c);
    assert_eq!(info.macs, (out_c * in_c) as u64);
    assert_eq!(model.version(), 3);
}

/// `dense-dsp` is Dense only: Conv1d layers keep the blocked layout; the name parses.
#[test]
fn conv1d_keeps_the_blocked_layout() {
    let blob = encode_with(&every_kind_spec(), &with(WeightFormat::DenseDsp)).unwrap();
    let model = Model::load(&blob).unwrap();
    for info in model.layers() {
        match info.kind {
            tickq_core::LayerKind::Dense => {
                assert_eq!(info.weight_format, Some(WeightLayout::DenseDsp));
            }
            tickq_core::LayerKind::Conv1d => {
                assert_eq!(info.weight_format, Some(WeightLayout::Blocked));
            }
            _ => assert_eq!(info.weight_format, None),
        }
    }
    let plain = tickq_core::encode::encode(&every_kind_spec()).unwrap();
    let x: Vec<i8> = (0..model.input_len())
        .map(|i| (i * 29 % 256) as i8)
        .collect();
    assert_eq!(run(&blob, &x), run(&plain, &x));
    assert_eq!(
        "dense-dsp".parse::<WeightFormat>(),
        Ok(WeightFormat::DenseDsp)
    );
    assert_eq!(WeightFormat::DenseDsp.to_string(), "dense-dsp");
}

/// The loader rejects non-zero padding, a possible overflow, and the code on a Conv1d layer.
#[test]
fn loader_checks() {
    let s = two_layers(4, 6, 5, 2);
    let blob = encode_with(&s, &with(WeightFormat::DenseDsp)).unwrap();
    let at = get_u32(&blob, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    // Input 6 of channel 0 (K = 6, K4 = 8) is padding: byte (6 / 4) * 16 + 0 + 2.
    let bad = patched(&blob, |b| b[at + 18] = 1);
    let err = Model::load(&bad).unwrap_err();
    assert_eq!(err.kind, K::RowPaddingNotZero);
    assert_eq!(err.layer, Some(1));
    assert_eq!(err.offset as usize, at + 18);
    // A bias of 2^31 - 1 overflows with any non-zero weight.
    let b_at = get_u32(&blob, entry(1) + e::BIAS_OFFSET.start) as usize;
    let bad = patched(&blob, |b| {
        b[b_at + 4..b_at + 8].copy_from_slice(&i32::MAX.to_le_bytes())
    });
    let err = Model::load(&bad).unwrap_err();
    assert_eq!(err.kind, K::OverflowPossible);
    assert_eq!(err.offset as usize, b_at + 4);
    // The code on a Conv1d layer.
    let conv = encode_with(&every_kind_spec(), &with(WeightFormat::Blocked)).unwrap();
    let model = Model::load(&conv).unwrap();
    let i = model
        .layers()
        .position(|l| l.kind == tickq_core::LayerKind::Conv1d)
        .unwrap();
    let bad = patched(&conv, |b| b[entry(i) + e::WEIGHT_FORMAT] = 5);
    let err = Model::load(&bad).unwrap_err();
    assert_eq!(err.kind, K::BadWeightFormat { found: 5 });
}

/// `Session::run_quantized_profiled` calls back once per layer, in order (layer 0 being the input copy), and
/// gives the same logits as `run_quantized`.
#[test]
fn profiled_run_calls_back_per_layer() {
    let blob = every_kind_blob();
    let model = Model::load(&blob).unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = Session::new(&model, &mut arena).unwrap();
    let x: Vec<i8> = (0..model.input_len())
        .map(|i| (i * 13 % 256) as i8)
        .collect();
    let plain = session.run_quantized(&x).logits().to_vec();
    let mut seen = Vec::new();
    let profiled = session
        .run_quantized_profiled(&x, &mut |layer| seen.push(layer))
        .logits()
        .to_vec();
    assert_eq!(profiled, plain);
    assert_eq!(seen, (0..model.layers().count()).collect::<Vec<_>>());
}

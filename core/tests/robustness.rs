//! Arena exactness, planner safety on random graphs, corruption robustness and determinism.

use tickq_core::encode::{LayerSpec, OpSpec, Padding, encode};
use tickq_core::requant::QuantMultiplier;
use tickq_core::{ArenaTooSmall, LayerInfo, LayerKind, Model, Session};

use crate::support::*;

#[test]
fn session_accepts_exactly_arena_bytes() {
    for blob in [every_kind_blob(), mlp_blob(32, 64, 3), mlp_blob(1, 1, 1)] {
        let model = Model::load(&blob).unwrap();
        let n = model.arena_bytes();
        let mut arena = vec![0u8; n + 1];
        assert!(Session::new(&model, &mut arena[..n]).is_ok());
        assert!(Session::new(&model, &mut arena[..n + 1]).is_ok());
        let err = Session::new(&model, &mut arena[..n - 1]).unwrap_err();
        assert_eq!(
            err,
            ArenaTooSmall {
                needed: n,
                given: n - 1
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "arena too small: the model needs {n} bytes, {} given",
                n - 1
            )
        );
    }
}

/// The pad prefix a tensor carries: the largest causal pad of the convolutions that read it.
fn prefixes(infos: &[LayerInfo]) -> Vec<usize> {
    let mut prefix = vec![0; infos.len()];
    for l in infos {
        if l.kind == LayerKind::Conv1d && l.padding == Padding::Causal {
            let i = l.input.unwrap();
            prefix[i] = prefix[i].max(l.dilation * (l.kernel - 1) * l.in_shape.1);
        }
    }
    prefix
}

/// Checks that no two tensors that are live at the same time share arena bytes, and that the arena is tight.
fn assert_plan_is_safe(model: &Model<'_>) {
    let infos: Vec<LayerInfo> = model.layers().collect();
    let prefix = prefixes(&infos);
    let mut last_use: Vec<usize> = (0..infos.len()).collect();
    for l in &infos {
        for i in [l.input, l.input_b].into_iter().flatten() {
            last_use[i] = last_use[i].max(l.index);
        }
    }
    let range = |i: usize| {
        (
            infos[i].arena_offset - prefix[i],
            infos[i].arena_offset + infos[i].arena_len,
        )
    };
    let mut max_end = 0;
    for i in 0..infos.len() {
        let (a0, a1) = range(i);
        assert_eq!(a0 % tickq_core::TENSOR_ALIGN, 0);
        max_end = max_end.max(a1);
        for j in 0..i {
            if last_use[j] >= i {
                let (b0, b1) = range(j);
                assert!(
                    a1 <= b0 || b1 <= a0,
                    "tensors {j} and {i} overlap while both live: {infos:#?}"
                );
            }
        }
    }
    assert_eq!(
        max_end,
        model.arena_bytes(),
        "the arena size is the largest end offset"
    );
}

/// A random model over `(t, c)` tensors: causal convs, LUTs, Dense (when t = 1) and residual Adds of any earlier
/// layer, closed by GlobalAvgPool and Dense.
fn random_model(rng: &mut Rng) -> (Vec<u8>, usize) {
    let t = 1 + rng.below(6);
    let c = 1 + rng.below(6);
    let q = Qp { scale: 0.05, zp: 0 };
    let one = QuantMultiplier::from_ratio(1.0).unwrap();
    let half = QuantMultiplier::from_ratio(0.5 / 65536.0).unwrap();
    let mut layers = vec![identity_input(t, c, q)];
    let n = 1 + rng.below(24);
    for i in 1..=n {
        let layer = match rng.below(4) {
            0 => {
                let k = 1 + rng.below(3);
                let weights = (0..c * k * c).map(|_| rng.i8() / 8).collect();
                let conv = OpSpec::Conv1d {
                    out_channels: c,
                    in_channels: c,
                    kernel: k,
                    stride: 1,
                    dilation: 1 + rng.below(3),
                    padding: Padding::Causal,
                    weights,
                    bias: vec![3; c],
                    requant: vec![QuantMultiplier::from_ratio(0.01).unwrap(); c],
                };
                LayerSpec::new(conv, q.scale, q.zp)
            }
            1 => {
                let table: [i8; 256] = std::array::from_fn(|j| ((j as i32 - 128) / 2) as i8);
                reading(
                    LayerSpec::new(OpSpec::Lut { table }, q.scale, q.zp),
                    rng.below(i),
                )
            }
            2 => reading(
                LayerSpec::new(
                    OpSpec::Add {
                        other: rng.below(i),
                        wa: 65536,
                        wb: 65536,
                        requant: half,
                    },
                    q.scale,
                    q.zp,
                ),
                rng.below(i),
            ),
            _ => LayerSpec::new(
                OpSpec::MaxPool1d {
                    kernel: 1,
                    stride: 1,
                },
                q.scale,
                q.zp,
            ),
        };
        let _ = one;
        layers.push(layer);
    }
    let gap = QuantMultiplier::from_ratio(1.0 / t as f64).unwrap();
    layers.push(LayerSpec::new(
        OpSpec::GlobalAvgPool { requant: gap },
        q.scale,
        q.zp,
    ));
    let weights = (0..3 * c).map(|_| rng.i8()).collect();
    layers.push(LayerSpec::new(
        OpSpec::Dense {
            out_features: 3,
            in_features: c,
            weights,
            bias: vec![0; 3],
            requant: vec![QuantMultiplier::from_ratio(0.01).unwrap(); 3],
        },
        q.scale,
        q.zp,
    ));
    (encode(&spec(layers, c, 3)).unwrap(), t * c)
}

#[test]
fn planner_never_overlaps_live_tensors_on_random_graphs() {
    let mut rng = Rng(31);
    // Miri (`.ci/run`) interprets every step: a few graphs there, the full count natively.
    for _ in 0..if cfg!(miri) { 8 } else { 300 } {
        let (blob, n) = random_model(&mut rng);
        let model = Model::load(&blob).unwrap();
        assert_plan_is_safe(&model);
        // A garbage-filled arena gives the same logits as a zeroed one: nothing reads bytes it did not write.
        let x: Vec<i8> = (0..n).map(|_| rng.i8()).collect();
        let mut zeroed = vec![0u8; model.arena_bytes()];
        let mut garbage: Vec<u8> = (0..model.arena_bytes())
            .map(|_| rng.next_u64() as u8)
            .collect();
        let a = Session::new(&model, &mut zeroed)
            .unwrap()
            .run_quantized(&x)
            .logits()
            .to_vec();
        let b = Session::new(&model, &mut garbage)
            .unwrap()
            .run_quantized(&x)
            .logits()
            .to_vec();
        assert_eq!(a, b);
    }
    for blob in [every_kind_blob(), mlp_blob(32, 64, 3)] {
        assert_plan_is_safe(&Model::load(&blob).unwrap());
    }
}

/// Loads `blob` and, if it loads, runs it on a few inputs; it must never panic.
fn load_and_run(blob: &[u8], inputs: &[Vec<f32>]) -> bool {
    match Model::load(blob) {
        Ok(model) => {
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut session = Session::new(&model, &mut arena).unwrap();
            for x in inputs {
                let p = session.run(x);
                assert_eq!(p.logits().len(), model.classes());
                assert!(p.signal() < model.classes().max(1));
            }
            let _ = model.layers().count();
            if let Some(spec) = model.feature_spec() {
                assert_eq!(spec.validate(), Ok(()));
                assert_eq!(spec.feature_count(), model.input_shape().1);
                assert!(
                    model
                        .metadata()
                        .feature_names()
                        .zip(spec_names(&spec))
                        .all(|(a, b)| a == b)
                );
            }
            let _ =
                model.metadata().feature_names().count() + model.metadata().label_names().count();
            true
        }
        Err(err) => {
            assert!(!err.to_string().is_empty());
            false
        }
    }
}

#[test]
fn byte_flips_and_truncation_never_panic() {
    flips_and_truncations(&every_kind_blob());
}

/// The same over a blob carrying a feature-spec section (format version 5), so every byte of the section is
/// flipped; a flip that still loads must leave a valid spec of the model's width.
#[test]
fn byte_flips_and_truncation_never_panic_with_a_feature_spec() {
    let blob = feature_spec_blob();
    assert!(Model::load(&blob).unwrap().feature_spec().is_some());
    flips_and_truncations(&blob);
}

/// The same over blobs whose Dense and Conv1d layers (dilated and causal ones included) are sparse, and N:M, and
/// over blobs whose Dense layers are stored by column, plain and packed.
#[test]
#[cfg(feature = "sparse-formats")]
fn byte_flips_and_truncation_never_panic_on_sparse_blobs() {
    use tickq_core::WeightLayout;
    use tickq_core::encode::{EncodeOptions, WeightFormat, encode_with};
    let spec = crate::sparse::sparse_kinds_spec();
    for format in [WeightFormat::Sparse, WeightFormat::NM] {
        let blob = encode_with(&spec, &EncodeOptions::format(format)).unwrap();
        let model = Model::load(&blob).unwrap();
        assert!(
            model
                .layers()
                .filter_map(|l| l.weight_format)
                .all(|f| f != WeightLayout::Blocked)
        );
        flips_and_truncations(&blob);
    }
    let columns = encode_with(
        &crate::sparse::columns_spec(),
        &EncodeOptions::format(WeightFormat::Columns),
    )
    .unwrap();
    flips_and_truncations(&columns);
    let packed = encode_with(
        &crate::sparse::columns_spec(),
        &EncodeOptions::format(WeightFormat::Packed),
    )
    .unwrap();
    flips_and_truncations(&packed);
}

/// Flips every byte (with a stale and with a fixed CRC) and truncates at every length: loading errs or the
/// model runs to completion; nothing panics. The blob takes 24 input values.
fn flips_and_truncations(blob: &[u8]) {
    let blob = blob.to_vec();
    let mut rng = Rng(17);
    let inputs: Vec<Vec<f32>> = vec![
        (0..24).map(|_| rng.range(-4.0, 4.0)).collect(),
        vec![f32::NAN; 24],
        vec![f32::INFINITY; 24],
        vec![],
    ];
    assert!(load_and_run(&blob, &inputs));
    // Under Miri (`.ci/run`) every 211th position (a prime, so the positions fall in every section); natively all.
    let step = if cfg!(miri) { 211 } else { 1 };
    let positions = blob.len().div_ceil(step);
    let mut loaded_after_fix = 0;
    for i in (0..blob.len()).step_by(step) {
        for mask in [0xFF, 0x01] {
            let mut b = blob.clone();
            b[i] ^= mask;
            // Without fixing the CRC every flip is caught by the CRC (or an earlier header check).
            assert!(
                !load_and_run(&b, &inputs),
                "flip {mask:#x} at {i} loaded with a stale CRC"
            );
            // With a fixed CRC the flip reaches the structural checks; loading may succeed, and running must.
            fix_crc(&mut b);
            loaded_after_fix += usize::from(load_and_run(&b, &inputs));
        }
    }
    // Weight, bias and table bytes are free to change, so many flips still load.
    assert!(
        loaded_after_fix > positions / 4,
        "only {loaded_after_fix} of {positions} flipped blobs loaded"
    );
    for len in (0..blob.len()).step_by(step) {
        assert!(
            Model::load(&blob[..len]).is_err(),
            "truncated to {len} bytes but loaded"
        );
        let mut b = blob[..len].to_vec();
        if len >= 20 {
            put_u32(&mut b, 16, len as u32);
            fix_crc(&mut b);
        }
        assert!(
            !load_and_run(&b, &inputs),
            "truncated to {len} bytes with fixed length and CRC but loaded"
        );
    }
}

#[test]
fn same_blob_and_input_give_identical_bytes() {
    let blob = every_kind_blob();
    let copy = blob.clone();
    let model_a = Model::load(&blob).unwrap();
    let model_b = Model::load(&copy).unwrap();
    let mut rng = Rng(23);
    let mut arena_a = vec![0u8; model_a.arena_bytes()];
    let mut arena_b: Vec<u8> = (0..model_b.arena_bytes())
        .map(|_| rng.next_u64() as u8)
        .collect();
    let mut a = Session::new(&model_a, &mut arena_a).unwrap();
    let mut b = Session::new(&model_b, &mut arena_b).unwrap();
    let mut distinct = std::collections::BTreeSet::new();
    // Fewer inputs under Miri (`.ci/run`), which interprets every step.
    let runs = if cfg!(miri) { 60 } else { 500 };
    for _ in 0..runs {
        let x: Vec<f32> = (0..24).map(|_| rng.range(-4.0, 4.0)).collect();
        let first = a.run(&x).logits().to_vec();
        let again = a.run(&x).logits().to_vec();
        let other = b.run(&x).logits().to_vec();
        assert_eq!(first, again);
        assert_eq!(first, other);
        distinct.insert(first);
    }
    assert!(
        distinct.len() > runs / 50,
        "the model should not be constant: {distinct:?}"
    );
}

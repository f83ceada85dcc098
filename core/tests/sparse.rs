//! Sparse and N:M weight formats: bit-exactness with dense execution, round trips, the encoder's choices and
//! forced-format errors, and every sparse validation error, each reached with a crafted blob.

use proptest::prelude::{ProptestConfig, any, prop, prop_assert, prop_assert_eq, proptest};
use tickq_core::encode::{
    EncodeError, EncodeOptions, LayerSpec, ModelSpec, OpSpec, Padding, Target, WeightFormat,
    encode_with,
};
use tickq_core::format::{entry as e, header as h};
use tickq_core::requant::QuantMultiplier;
use tickq_core::{BlobErrorKind as K, LayerKind, Model, Section, Session, WeightLayout};

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

/// Zeroes weights so that `pattern` holds: `Unstructured(p)` zeroes each weight with probability `p` (whole rows
/// are zeroed or kept dense now and then), `NM(n)` keeps at most `n` weights per group of 4.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Unstructured(f32),
    NM(usize),
}

fn prune(w: &mut [i8], row_len: usize, pattern: Pattern, rng: &mut Rng) {
    match pattern {
        Pattern::Unstructured(p) => {
            for row in w.chunks_exact_mut(row_len) {
                match rng.below(8) {
                    0 => row.fill(0),
                    1 => {}
                    _ => row.iter_mut().for_each(|v| {
                        if rng.unit() < p {
                            *v = 0;
                        }
                    }),
                }
            }
        }
        Pattern::NM(n) => {
            for group in w.chunks_exact_mut(4) {
                let keep = rng.below(n + 1);
                let start = rng.below(4);
                for (k, v) in group.iter_mut().enumerate() {
                    if (k + 4 - start) % 4 >= keep {
                        *v = 0;
                    }
                }
            }
        }
    }
}

/// A one-layer model (Dense, or Conv1d followed by Flatten) with pruned random weights; returns the spec and the
/// input length.
#[allow(clippy::too_many_arguments)]
fn layer_model(
    seed: u64,
    in_c: usize,
    out_c: usize,
    kernel: usize,
    dilation: usize,
    t_extra: usize,
    pattern: Pattern,
) -> (ModelSpec, usize) {
    let mut rng = Rng(seed);
    let q = Qp { scale: 0.05, zp: 3 };
    let taps = kernel.max(1);
    let row_len = taps * in_c;
    let mut weights: Vec<i8> = (0..out_c * row_len).map(|_| rng.i8()).collect();
    prune(&mut weights, row_len, pattern, &mut rng);
    let bias = (0..out_c)
        .map(|_| rng.below(20_000) as i32 - 10_000)
        .collect();
    let ratio = 1.0 / (64.0 * (row_len as f64).sqrt());
    let requant = (0..out_c)
        .map(|_| QuantMultiplier::from_ratio(ratio * (0.5 + f64::from(rng.unit()))).unwrap())
        .collect();
    let (t, layers) = if kernel == 0 {
        let dense = OpSpec::Dense {
            out_features: out_c,
            in_features: in_c,
            weights,
            bias,
            requant,
        };
        (
            1,
            vec![identity_input(1, in_c, q), LayerSpec::new(dense, 0.1, -5)],
        )
    } else {
        let t = dilation * (taps - 1) + 1 + t_extra;
        let conv = OpSpec::Conv1d {
            out_channels: out_c,
            in_channels: in_c,
            kernel,
            stride: 1 + t_extra % 2,
            dilation,
            padding: if t_extra.is_multiple_of(3) {
                Padding::Causal
            } else {
                Padding::Valid
            },
            weights,
            bias,
            requant,
        };
        (
            t,
            vec![
                identity_input(t, in_c, q),
                LayerSpec::new(conv, 0.1, -5),
                LayerSpec::new(OpSpec::Flatten, 0.1, -5),
            ],
        )
    };
    let out = match kernel {
        0 => out_c,
        _ => {
            let t_out = match t_extra % 3 {
                0 => (t - 1) / (1 + t_extra % 2) + 1,
                _ => (t - dilation * (taps - 1) - 1) / (1 + t_extra % 2) + 1,
            };
            t_out * out_c
        }
    };
    (spec(layers, in_c, out), t * in_c)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Sparse and N:M kernels give the same bytes as the dense kernel over the same pruned weights.
    #[test]
    fn sparse_and_nm_match_dense(
        seed in any::<u64>(),
        in_c in 1usize..300,
        out_c in 1usize..40,
        conv in 0usize..3,
        dilation in 1usize..3,
        t_extra in 0usize..4,
        level in prop::sample::select(vec![0.0f32, 0.5, 0.75, 0.9, 0.97, 1.0]),
        nm in 0usize..4,
    ) {
        // Conv1d rows are `kernel * in_c`; keep them short enough for a 256-logit Flatten.
        let (in_c, kernel) = if conv == 0 { (in_c, 0) } else { (1 + in_c % 12, conv + 1) };
        // Channel counts around the 16-channel blocks: one partial block, full blocks, full blocks and a tail.
        let out_c = if conv == 0 { out_c } else { [1, 3, 4, 15, 16, 17, 33][out_c % 7] };
        // 33 channels fit the 256-logit Flatten only with few output steps (at most 5 without extra steps).
        let t_extra = if conv != 0 && out_c == 33 { 0 } else { t_extra };
        let pattern = match nm {
            1 => Pattern::NM(1),
            2 => Pattern::NM(2),
            _ => Pattern::Unstructured(level),
        };
        let (spec, n) = layer_model(seed, in_c, out_c, kernel, dilation, t_extra, pattern);
        let mut rng = Rng(seed ^ 0x5555);
        let dense = encode_with(&spec, &with(WeightFormat::Blocked)).unwrap();
        let sparse = encode_with(&spec, &with(WeightFormat::Sparse)).unwrap();
        let auto = encode_with(&spec, &with(WeightFormat::Auto)).unwrap();
        let nm_blob = encode_with(&spec, &with(WeightFormat::NM));
        let columns = encode_with(&spec, &with(WeightFormat::Columns));
        // The column format is for Dense layers; these never have a 256-weight column or a failing bound.
        prop_assert_eq!(columns.is_ok(), kernel == 0, "{:?}", columns);
        let packed = encode_with(&spec, &with(WeightFormat::Packed));
        prop_assert_eq!(packed.is_ok(), kernel == 0, "{:?}", packed);
        let smallest = encode_with(&spec, &with(WeightFormat::Smallest)).unwrap();
        prop_assert!(smallest.len() <= dense.len().min(sparse.len()));
        let row_len = kernel.max(1) * in_c;
        if let Pattern::NM(_) = pattern && row_len % 4 == 0 {
            prop_assert!(nm_blob.is_ok(), "{nm_blob:?}");
        }
        for round in 0..4 {
            // Every other round, a third of the inputs sit at the zero point (3), which the column kernel skips.
            let x: Vec<i8> = (0..n)
                .map(|_| if round % 2 == 1 && rng.below(3) == 0 { 3 } else { rng.i8() })
                .collect();
            let want = run(&dense, &x);
            prop_assert_eq!(&run(&sparse, &x), &want);
            prop_assert_eq!(&run(&auto, &x), &want);
            if let Ok(b) = &nm_blob {
                prop_assert_eq!(&run(b, &x), &want);
            }
            if let Ok(b) = &columns {
                prop_assert_eq!(&run(b, &x), &want);
            }
            if let Ok(b) = &packed {
                prop_assert_eq!(&run(b, &x), &want);
            }
            prop_assert_eq!(&run(&smallest, &x), &want);
        }
    }
}

/// A Dense layer over `in_c` inputs with every other weight zero in the first half of each row, and 2:4-pruned.
fn two_four_spec(in_c: usize, out_c: usize) -> ModelSpec {
    let (spec, _) = layer_model(9, in_c, out_c, 0, 1, 0, Pattern::NM(2));
    spec
}

fn weights_of(spec: &ModelSpec, layer: usize) -> &[i8] {
    match &spec.layers[layer].op {
        OpSpec::Dense { weights, .. } | OpSpec::Conv1d { weights, .. } => weights,
        _ => &[],
    }
}

#[test]
fn round_trip_per_format() {
    let spec = two_four_spec(200, 20);
    let w = weights_of(&spec, 1);
    let nonzero = w.iter().filter(|&&v| v != 0).count();
    let dense = encode_with(&spec, &with(WeightFormat::Blocked)).unwrap();
    let x: Vec<i8> = (0..200).map(|i| (i * 37 % 251) as i8).collect();
    let want = run(&dense, &x);
    for (format, layout) in [
        (WeightFormat::Blocked, WeightLayout::Blocked),
        (WeightFormat::Sparse, WeightLayout::Sparse),
        (WeightFormat::NM, WeightLayout::NM { n: 2, m: 4 }),
        (WeightFormat::Columns, WeightLayout::Columns),
        (WeightFormat::Packed, WeightLayout::Packed),
        (WeightFormat::DenseDsp, WeightLayout::DenseDsp),
        (WeightFormat::DenseDot, WeightLayout::DenseDot),
    ] {
        let blob = encode_with(&spec, &with(format)).unwrap();
        let model = Model::load(&blob).unwrap();
        // The encoder writes the oldest version that has every format the blob uses.
        let version = if layout == WeightLayout::DenseDot {
            4
        } else {
            3
        };
        assert_eq!(model.version(), version, "{format}");
        let info = model.layers().nth(1).unwrap();
        assert_eq!(info.weight_format, Some(layout), "{format}");
        assert_eq!(info.weights_total, 20 * 200);
        assert_eq!(info.weights_nonzero, nonzero, "{format}");
        let (_, w_len) = (0, get_u32(&blob, entry(1) + e::WEIGHTS_LEN.start) as usize);
        // `dense-dot` keeps its second bias in the aux section.
        let aux = if layout == WeightLayout::DenseDot {
            20 * 4
        } else {
            0
        };
        assert_eq!(info.bytes, w_len + 20 * 4 + 20 * 5 + aux, "{format}");
        let expected_w_len = match layout {
            // One full block of 16 channels, then a tail block of 4; dense-dsp: 5 groups of 4 channels.
            WeightLayout::Blocked | WeightLayout::DenseDsp | WeightLayout::DenseDot => {
                16 * 200 + 4 * 200
            }
            // Two segments per channel (128 + 72 inputs), then an index and a value per non-zero.
            WeightLayout::Sparse => 20 * 2 + 2 * nonzero,
            // 50 groups x 2 values, then 100 2-bit indices (25 bytes), per channel.
            WeightLayout::NM { .. } => 20 * (100 + 25),
            // One row segment: a count per input, then a (row, value) pair per non-zero.
            WeightLayout::Columns => 200 + 2 * nonzero,
            // Whatever the widths, the stream is what the header and counts say (checked by the loader).
            WeightLayout::Packed => w_len,
        };
        assert_eq!(w_len, expected_w_len, "{format}");
        let stored = match layout {
            WeightLayout::Blocked | WeightLayout::DenseDsp | WeightLayout::DenseDot => 20 * 200,
            WeightLayout::Sparse | WeightLayout::Columns | WeightLayout::Packed => nonzero,
            WeightLayout::NM { .. } => 20 * 100,
        };
        assert_eq!(info.params, stored + 2 * 20);
        assert_eq!(info.macs, stored as u64);
        assert_eq!(run(&blob, &x), want, "{format}");
        assert_eq!(model.layers().next().unwrap().weight_format, None);
    }
}

/// Rewrites a version 2 blob as version 1: the version field, and every dense weights section whose last block
/// is a tail block padded back to 16 channels (moved to a new section in front of the metadata).
fn to_version_1(blob: &[u8]) -> Vec<u8> {
    let mut b = blob.to_vec();
    put_u16(&mut b, h::VERSION.start, 1);
    let meta_at = get_u32(blob, h::METADATA_OFFSET.start) as usize;
    let meta = blob[meta_at..].to_vec();
    b.truncate(meta_at);
    let layers = u16::from_le_bytes([blob[h::LAYER_COUNT.start], blob[h::LAYER_COUNT.start + 1]]);
    for i in 0..usize::from(layers) {
        let at = entry(i);
        let out_c = usize::from(u16::from_le_bytes([blob[at + 10], blob[at + 11]]));
        if !matches!(blob[at], 2 | 3) || blob[at + e::WEIGHT_FORMAT] != 0 || out_c % 16 == 0 {
            continue;
        }
        let w_at = get_u32(blob, at + e::WEIGHTS_OFFSET.start) as usize;
        let w_len = get_u32(blob, at + e::WEIGHTS_LEN.start) as usize;
        // Every channel has `pairs` steps of two bytes.
        let (pairs, r) = (w_len / (2 * out_c), out_c % 16);
        let full = (out_c / 16) * 32 * pairs;
        let mut w = blob[w_at..w_at + full].to_vec();
        for step in blob[w_at + full..w_at + w_len].chunks_exact(2 * r) {
            w.extend_from_slice(step);
            w.extend(std::iter::repeat_n(0u8, 32 - 2 * r));
        }
        b.resize(b.len().next_multiple_of(16), 0);
        let w_new = b.len() as u32;
        put_u32(&mut b, at + e::WEIGHTS_OFFSET.start, w_new);
        put_u32(&mut b, at + e::WEIGHTS_LEN.start, w.len() as u32);
        b.extend_from_slice(&w);
    }
    b.resize(b.len().next_multiple_of(16), 0);
    let meta_new = b.len() as u32;
    put_u32(&mut b, h::METADATA_OFFSET.start, meta_new);
    b.extend_from_slice(&meta);
    let total = b.len() as u32;
    put_u32(&mut b, h::TOTAL_LEN.start, total);
    fix_crc(&mut b);
    b
}

#[test]
fn version_1_blobs_still_load() {
    let blob = encode_with(&two_four_spec(8, 3), &with(WeightFormat::Blocked)).unwrap();
    let v1 = to_version_1(&blob);
    let model = Model::load(&v1).unwrap();
    assert_eq!(model.version(), 1);
    // Version 1 pads the last block to 16 channels: 16 x 8 weight bytes for 3 channels.
    let w1 = model.layers().nth(1).unwrap();
    assert_eq!(w1.bytes, 16 * 8 + 3 * 4 + 3 * 5);
    assert_eq!(w1.params, 3 * 8 + 2 * 3);
    let x = [1i8, -2, 3, -4, 5, -6, 7, -8];
    assert_eq!(run(&v1, &x), run(&blob, &x));
    // In version 1 the weight format and N:M bytes are reserved.
    for at in [e::WEIGHT_FORMAT, e::NM_N, e::NM_M] {
        let bad = patched(&v1, |b| b[entry(1) + at] = 1);
        let err = Model::load(&bad).unwrap_err();
        assert_eq!(
            (err.layer, err.offset as usize, err.kind),
            (Some(1), entry(1) + at, K::ReservedNotZero)
        );
    }
    // The padding channels of a version 1 tail block must be zero: step 0, channel 3, input 1.
    let w_at = get_u32(&v1, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    expect(
        &patched(&v1, |b| b[w_at + 7] = 1),
        1,
        w_at + 7,
        K::RowPaddingNotZero,
    );
    // Each version has its own length rule: the short tail block is only valid in version 2.
    let short = patched(&blob, |b| put_u16(b, h::VERSION.start, 1));
    expect(
        &short,
        1,
        entry(1) + e::WEIGHTS_LEN.start,
        K::SectionLength {
            section: Section::Weights,
            expected: 16 * 8,
            found: 3 * 8,
        },
    );
    // A layer with whole blocks only is laid out the same in both versions.
    let whole = encode_with(&two_four_spec(8, 16), &with(WeightFormat::Blocked)).unwrap();
    let whole_v1 = patched(&whole, |b| put_u16(b, h::VERSION.start, 1));
    assert_eq!(run(&whole_v1, &x), run(&whole, &x));
}

#[test]
fn tail_block_stores_only_its_channels() {
    // The demo's last layer: Dense 128 -> 3 stores 3 x 128 weight bytes, not a padded block of 16 x 128.
    let (spec, _) = layer_model(11, 128, 3, 0, 1, 0, Pattern::Unstructured(0.0));
    let blob = encode_with(&spec, &with(WeightFormat::Blocked)).unwrap();
    let model = Model::load(&blob).unwrap();
    let info = model.layers().nth(1).unwrap();
    assert_eq!(info.weight_format, Some(WeightLayout::Blocked));
    assert_eq!(get_u32(&blob, entry(1) + e::WEIGHTS_LEN.start), 3 * 128);
    assert_eq!(info.bytes, 3 * 128 + 3 * 4 + 3 * 5);
    // 33 channels with an odd row: two full blocks of 16 x 6 bytes, then one channel of 6 bytes.
    let (spec, _) = layer_model(12, 5, 33, 0, 1, 0, Pattern::Unstructured(0.0));
    let blob = encode_with(&spec, &with(WeightFormat::Blocked)).unwrap();
    assert_eq!(
        get_u32(&blob, entry(1) + e::WEIGHTS_LEN.start),
        2 * 16 * 6 + 6
    );
    // The tail block's padding input (input 5 of the single channel, in its last step) must be zero.
    let w_at = get_u32(&blob, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    let pad = w_at + 2 * 16 * 6 + 5;
    expect(
        &patched(&blob, |b| b[pad] = 1),
        1,
        pad,
        K::RowPaddingNotZero,
    );
}

#[test]
fn auto_follows_the_cost_model() {
    // Unpruned: the target's dense layout. 95 % zeros: by column on the baseline x86-64 (smaller and fewer
    // operations than dense and than by row).
    let (dense_spec, _) = layer_model(3, 128, 64, 0, 1, 0, Pattern::Unstructured(0.0));
    let mut sparse_spec = dense_spec.clone();
    if let OpSpec::Dense { weights, .. } = &mut sparse_spec.layers[1].op {
        for (i, w) in weights.iter_mut().enumerate() {
            if i % 20 != 7 {
                *w = 0;
            }
        }
    }
    let on = |target: Target, format: WeightFormat| EncodeOptions {
        weight_format: format,
        target,
    };
    let format = |spec: &ModelSpec, target: Target| {
        let blob = encode_with(spec, &on(target, WeightFormat::Auto)).unwrap();
        Model::load(&blob)
            .unwrap()
            .layers()
            .nth(1)
            .unwrap()
            .weight_format
    };
    for target in Target::ALL {
        assert_eq!(
            format(&dense_spec, target),
            Some(target.dense_layout(true)),
            "{target}"
        );
    }
    assert_eq!(
        format(&sparse_spec, Target::X86_64),
        Some(WeightLayout::Columns)
    );
    // The microcontroller tables are estimates; any sparse format beats dense there.
    let m0 = format(&sparse_spec, Target::CortexM0);
    assert!(m0.is_some_and(|f| !f.is_dense()), "{m0:?}");
    // Auto never produces a bigger blob than the target's dense layout.
    for spec in [dense_spec, sparse_spec, two_four_spec(64, 16)] {
        for target in Target::ALL {
            let auto = encode_with(&spec, &on(target, WeightFormat::Auto))
                .unwrap()
                .len();
            let dense = encode_with(&spec, &on(target, WeightFormat::Dense))
                .unwrap()
                .len();
            assert!(auto <= dense, "{target}: {auto} > {dense}");
        }
    }
}

#[test]
fn forced_formats_that_do_not_fit_are_errors() {
    let (odd, _) = layer_model(4, 6, 3, 0, 1, 0, Pattern::NM(2));
    let err = encode_with(&odd, &with(WeightFormat::NM)).unwrap_err();
    assert_eq!(
        err,
        EncodeError::WeightFormat {
            layer: 1,
            format: WeightFormat::NM,
            reason: "the row length is not a multiple of 4"
        }
    );
    assert_eq!(
        err.to_string(),
        "layer 1: weight format nm does not fit: the row length is not a multiple of 4"
    );
    let (full, _) = layer_model(4, 8, 3, 0, 1, 0, Pattern::Unstructured(0.0));
    let mut full = full;
    if let OpSpec::Dense { weights, .. } = &mut full.layers[1].op {
        weights.iter_mut().for_each(|w| *w = (*w).max(1));
    }
    let err = encode_with(&full, &with(WeightFormat::NM)).unwrap_err();
    assert!(
        matches!(err, EncodeError::WeightFormat { layer: 1, .. }),
        "{err}"
    );
    // Sparse and dense fit any layer.
    assert!(encode_with(&full, &with(WeightFormat::Sparse)).is_ok());
    // Columns fit Dense layers only, and not a column of 256 non-zeros.
    let (conv, _) = layer_model(4, 4, 3, 2, 1, 0, Pattern::Unstructured(0.5));
    assert_eq!(
        encode_with(&conv, &with(WeightFormat::Columns)).unwrap_err(),
        EncodeError::WeightFormat {
            layer: 1,
            format: WeightFormat::Columns,
            reason: "the column format is for Dense layers only"
        }
    );
    let (mut tall, _) = layer_model(4, 2, 256, 0, 1, 0, Pattern::Unstructured(0.0));
    if let OpSpec::Dense { weights, .. } = &mut tall.layers[1].op {
        weights.iter_mut().for_each(|w| *w = (*w).max(1));
    }
    assert!(matches!(
        encode_with(&tall, &with(WeightFormat::Columns)),
        Err(EncodeError::WeightFormat { layer: 1, .. })
    ));
    assert_eq!("columns".parse::<WeightFormat>(), Ok(WeightFormat::Columns));
    assert_eq!("NM".parse::<WeightFormat>(), Ok(WeightFormat::NM));
    assert_eq!("sparse".parse::<WeightFormat>(), Ok(WeightFormat::Sparse));
    assert!("csr".parse::<WeightFormat>().is_err());
}

/// Loads `blob` and expects `kind` at `layer` and `offset`.
#[track_caller]
fn expect(blob: &[u8], layer: u16, offset: usize, kind: K) {
    let err = Model::load(blob).expect_err("blob must be rejected");
    assert_eq!(
        (err.layer, err.offset as usize, err.kind),
        (Some(layer), offset, kind),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "layer {layer} ({}) at byte {offset}: ",
            LayerKind::Dense.name()
        )),
        "{err}"
    );
}

/// A Dense 200 -> 3 layer whose rows are: 2:4 pruned (channel 0), empty (channel 1), 2:4 pruned (channel 2).
fn crafted_spec() -> ModelSpec {
    let mut spec = two_four_spec(200, 3);
    if let OpSpec::Dense { weights, .. } = &mut spec.layers[1].op {
        weights[200..400].fill(0);
        // Make sure channel 0's first segment starts with two non-zeros at 0 and 1, and its tail segment has one.
        weights[0] = 5;
        weights[1] = -7;
        weights[2] = 0;
        weights[3] = 0;
        weights[199] = 9;
    }
    spec
}

#[test]
fn sparse_validation_errors() {
    let blob = encode_with(&crafted_spec(), &with(WeightFormat::Sparse)).unwrap();
    let w = get_u32(&blob, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    let w_len = get_u32(&blob, entry(1) + e::WEIGHTS_LEN.start) as usize;
    let counts = [blob[w], blob[w + 1]];
    let nnz = (w_len - 6) / 2;
    let (idx, val) = (w + 6, w + 6 + nnz);
    assert_eq!(blob[w + 2..w + 4], [0, 0], "channel 1 is empty");
    assert_eq!((blob[idx], blob[idx + 1]), (0, 1));
    assert!(Model::load(&blob).is_ok());

    // Unknown format codes, and a format on a layer without weights.
    expect(
        &patched(&blob, |b| b[entry(1) + e::WEIGHT_FORMAT] = 6),
        1,
        entry(1) + e::WEIGHT_FORMAT,
        K::BadWeightFormat { found: 6 },
    );
    let err = Model::load(&patched(&blob, |b| b[entry(0) + e::WEIGHT_FORMAT] = 1)).unwrap_err();
    assert_eq!(
        (err.layer, err.offset as usize, err.kind),
        (
            Some(0),
            entry(0) + e::WEIGHT_FORMAT,
            K::BadWeightFormat { found: 1 }
        )
    );
    // The N:M bytes must be zero unless the format is N:M.
    expect(
        &patched(&blob, |b| b[entry(1) + e::NM_M] = 4),
        1,
        entry(1) + e::NM_M,
        K::ReservedNotZero,
    );
    // A count larger than its segment: the tail segment holds 72 inputs.
    expect(
        &patched(&blob, |b| b[w + 1] = 73),
        1,
        w + 1,
        K::SparseCountTooLarge,
    );
    // Counts that no longer match the section length.
    expect(
        &patched(&blob, |b| b[w + 2] = 1),
        1,
        entry(1) + e::WEIGHTS_LEN.start,
        K::SectionLength {
            section: Section::Weights,
            expected: (w_len + 2) as u32,
            found: w_len as u32,
        },
    );
    // A section too short for the counts themselves.
    expect(
        &patched(&blob, |b| put_u32(b, entry(1) + e::WEIGHTS_LEN.start, 4)),
        1,
        entry(1) + e::WEIGHTS_LEN.start,
        K::SectionLength {
            section: Section::Weights,
            expected: 6,
            found: 4,
        },
    );
    // Indices: out of order, repeated, and past the tail segment's width.
    expect(
        &patched(&blob, |b| b.swap(idx, idx + 1)),
        1,
        idx + 1,
        K::SparseIndexNotIncreasing,
    );
    expect(
        &patched(&blob, |b| b[idx + 1] = 0),
        1,
        idx + 1,
        K::SparseIndexNotIncreasing,
    );
    let tail_idx = idx + usize::from(counts[0]) + usize::from(counts[1]) - 1;
    assert_eq!(blob[tail_idx], 71);
    expect(
        &patched(&blob, |b| b[tail_idx] = 72),
        1,
        tail_idx,
        K::SparseIndexOutOfRange,
    );
    expect(
        &patched(&blob, |b| b[idx] = 200),
        1,
        idx,
        K::SparseIndexOutOfRange,
    );
    // A stored zero.
    expect(
        &patched(&blob, |b| b[val + 3] = 0),
        1,
        val + 3,
        K::SparseZeroValue,
    );
    // The overflow bound uses the stored values.
    let b_off = get_u32(&blob, entry(1) + e::BIAS_OFFSET.start) as usize;
    expect(
        &patched(&blob, |b| put_u32(b, b_off, i32::MAX as u32)),
        1,
        b_off,
        K::OverflowPossible,
    );
    // Channel 1 stores nothing, so any bias below the bound loads.
    assert!(
        Model::load(&patched(&blob, |b| put_u32(
            b,
            b_off + 4,
            (i32::MAX) as u32
        )))
        .is_ok()
    );
}

#[test]
fn nm_validation_errors() {
    let blob = encode_with(&crafted_spec(), &with(WeightFormat::NM)).unwrap();
    let w = get_u32(&blob, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    assert_eq!(blob[entry(1) + e::WEIGHT_FORMAT], 2);
    assert_eq!((blob[entry(1) + e::NM_N], blob[entry(1) + e::NM_M]), (2, 4));
    // 50 groups x 2 values per channel, then 25 index bytes per channel.
    let idx = w + 3 * 100;
    assert_eq!(
        blob[idx] & 0x0F,
        0b0100,
        "group 0 of channel 0 stores inputs 0 and 1"
    );
    assert!(Model::load(&blob).is_ok());
    for (n, m, at) in [(2, 8, e::NM_M), (0, 4, e::NM_N), (4, 4, e::NM_N)] {
        expect(
            &patched(&blob, |b| {
                b[entry(1) + e::NM_N] = n;
                b[entry(1) + e::NM_M] = m;
            }),
            1,
            entry(1) + at,
            K::BadNmPattern,
        );
    }
    // Changing n changes the section length.
    expect(
        &patched(&blob, |b| b[entry(1) + e::NM_N] = 1),
        1,
        entry(1) + e::WEIGHTS_LEN.start,
        K::SectionLength {
            section: Section::Weights,
            expected: 3 * (50 + 13),
            found: 3 * 125,
        },
    );
    // Indices of a group: repeated, then out of order.
    expect(
        &patched(&blob, |b| b[idx] = 0b0101),
        1,
        idx,
        K::NmIndexNotIncreasing,
    );
    expect(
        &patched(&blob, |b| b[idx] = (b[idx] & 0xF0) | 0b0010),
        1,
        idx,
        K::NmIndexNotIncreasing,
    );
    // A row length that is not a multiple of m: a 6-input Dense declared 2:4 (dense-sized section).
    let (odd, _) = layer_model(4, 6, 3, 0, 1, 0, Pattern::NM(2));
    let odd = encode_with(&odd, &with(WeightFormat::Blocked)).unwrap();
    expect(
        &patched(&odd, |b| {
            b[entry(1) + e::WEIGHT_FORMAT] = 2;
            b[entry(1) + e::NM_N] = 2;
            b[entry(1) + e::NM_M] = 4;
        }),
        1,
        entry(1) + e::NM_M,
        K::BadNmPattern,
    );
    // The overflow bound uses the stored values.
    let b_off = get_u32(&blob, entry(1) + e::BIAS_OFFSET.start) as usize;
    expect(
        &patched(&blob, |b| put_u32(b, b_off, i32::MAX as u32)),
        1,
        b_off,
        K::OverflowPossible,
    );
}

#[test]
fn nm_index_padding_must_be_zero() {
    // 12 inputs at 1:4: 3 entries per channel use 6 bits of the one index byte; the top 2 bits are padding.
    let (spec, _) = layer_model(5, 12, 2, 0, 1, 0, Pattern::NM(1));
    let blob = encode_with(&spec, &with(WeightFormat::NM)).unwrap();
    assert_eq!(blob[entry(1) + e::NM_N], 1);
    let w = get_u32(&blob, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    let idx = w + 2 * 3;
    expect(
        &patched(&blob, |b| b[idx + 1] |= 0x40),
        1,
        idx + 1,
        K::RowPaddingNotZero,
    );
}

/// A model with a dilated causal Conv1d, a plain Conv1d, Flatten and two Dense layers, all with 2:4-pruned
/// weights and rows that are multiples of 4, so that every layer can be sparse or N:M.
pub fn sparse_kinds_spec() -> ModelSpec {
    let mut rng = Rng(77);
    let q = Qp { scale: 0.05, zp: 1 };
    let m = |k: usize| vec![QuantMultiplier::from_ratio(0.004).unwrap(); k];
    let mut w = |n: usize, row: usize| {
        let mut v: Vec<i8> = (0..n).map(|_| rng.i8()).collect();
        prune(&mut v, row, Pattern::NM(2), &mut rng);
        v
    };
    let layers = vec![
        identity_input(6, 4, q),
        LayerSpec::new(
            OpSpec::Conv1d {
                out_channels: 4,
                in_channels: 4,
                kernel: 3,
                stride: 1,
                dilation: 2,
                padding: Padding::Causal,
                weights: w(4 * 12, 12),
                bias: vec![100; 4],
                requant: m(4),
            },
            q.scale,
            q.zp,
        ),
        LayerSpec::new(
            OpSpec::Conv1d {
                out_channels: 4,
                in_channels: 4,
                kernel: 2,
                stride: 2,
                dilation: 1,
                padding: Padding::Valid,
                weights: w(4 * 8, 8),
                bias: vec![-50; 4],
                requant: m(4),
            },
            q.scale,
            q.zp,
        ),
        LayerSpec::new(OpSpec::Flatten, q.scale, q.zp),
        LayerSpec::new(
            OpSpec::Dense {
                out_features: 8,
                in_features: 12,
                weights: w(8 * 12, 12),
                bias: vec![7; 8],
                requant: m(8),
            },
            q.scale,
            q.zp,
        ),
        LayerSpec::new(
            OpSpec::Dense {
                out_features: 3,
                in_features: 8,
                weights: w(3 * 8, 8),
                bias: vec![0; 3],
                requant: m(3),
            },
            q.scale,
            q.zp,
        ),
    ];
    spec(layers, 4, 3)
}

#[test]
fn every_layer_of_a_mixed_model_matches_dense() {
    let spec = sparse_kinds_spec();
    let dense = encode_with(&spec, &with(WeightFormat::Blocked)).unwrap();
    let mut rng = Rng(5);
    for format in [WeightFormat::Sparse, WeightFormat::NM] {
        let blob = encode_with(&spec, &with(format)).unwrap();
        let model = Model::load(&blob).unwrap();
        for l in model.layers().filter(|l| l.weight_format.is_some()) {
            assert_ne!(l.weight_format, Some(WeightLayout::Blocked), "{format}");
        }
        for _ in 0..50 {
            let x: Vec<i8> = (0..24).map(|_| rng.i8()).collect();
            assert_eq!(run(&blob, &x), run(&dense, &x), "{format}");
        }
    }
}

/// A Dense 24 -> 20 (ReLU, zero point -128) -> 3 model with about 80 % of its weights zero, for the column format.
pub fn columns_spec() -> ModelSpec {
    let mut rng = Rng(31);
    let q = Qp {
        scale: 0.05,
        zp: -7,
    };
    let mut w = |n: usize, row: usize| {
        let mut v: Vec<i8> = (0..n).map(|_| rng.i8()).collect();
        prune(&mut v, row, Pattern::Unstructured(0.8), &mut rng);
        v
    };
    let m = |k: usize| vec![QuantMultiplier::from_ratio(0.01).unwrap(); k];
    let mut hidden = LayerSpec::new(
        OpSpec::Dense {
            out_features: 20,
            in_features: 24,
            weights: w(20 * 24, 24),
            bias: (0..20).map(|i| 300 * i - 3000).collect(),
            requant: m(20),
        },
        0.05,
        -128,
    );
    hidden.act_min = -128;
    let out = LayerSpec::new(
        OpSpec::Dense {
            out_features: 3,
            in_features: 20,
            weights: w(3 * 20, 20),
            bias: vec![11, -12, 13],
            requant: m(3),
        },
        0.1,
        2,
    );
    spec(vec![identity_input(1, 24, q), hidden, out], 24, 3)
}

#[test]
fn columns_skip_zero_point_inputs_exactly() {
    let spec = columns_spec();
    let dense = encode_with(&spec, &with(WeightFormat::Blocked)).unwrap();
    let blob = encode_with(&spec, &with(WeightFormat::Columns)).unwrap();
    let model = Model::load(&blob).unwrap();
    assert!(
        model
            .layers()
            .filter_map(|l| l.weight_format)
            .all(|f| f == WeightLayout::Columns)
    );
    let mut rng = Rng(8);
    for round in 0..200 {
        // The second layer's inputs sit at their zero point (-128) wherever the ReLU clamps; the first layer's
        // sit at -7 in a growing share of the rounds.
        let x: Vec<i8> = (0..24)
            .map(|_| if rng.below(200) < round { -7 } else { rng.i8() })
            .collect();
        assert_eq!(run(&blob, &x), run(&dense, &x), "round {round}");
    }
    // A version 2 blob cannot hold the format.
    let v2 = patched(&blob, |b| put_u16(b, h::VERSION.start, 2));
    expect(
        &v2,
        1,
        entry(1) + e::WEIGHT_FORMAT,
        K::BadWeightFormat { found: 3 },
    );
}

#[test]
fn columns_validation_errors() {
    // Layer 1 of the crafted spec (200 -> 3) by column: 200 counts, then (row, value) pairs.
    let mut spec = crafted_spec();
    if let OpSpec::Dense { weights, .. } = &mut spec.layers[1].op {
        weights[400] = 3;
    }
    let blob = encode_with(&spec, &with(WeightFormat::Columns)).unwrap();
    assert!(Model::load(&blob).is_ok());
    let w = get_u32(&blob, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    let w_len = get_u32(&blob, entry(1) + e::WEIGHTS_LEN.start) as usize;
    let pairs = w + 200;
    // Column 0 holds channels 0 and 2 (channel 1 is empty): rows 0 and 2.
    assert_eq!(blob[w], 2);
    assert_eq!((blob[pairs], blob[pairs + 2]), (0, 2));
    // A count larger than the segment's 3 rows.
    expect(&patched(&blob, |b| b[w] = 4), 1, w, K::SparseCountTooLarge);
    // Counts that no longer match the section length.
    expect(
        &patched(&blob, |b| b[w + 2] += 1),
        1,
        entry(1) + e::WEIGHTS_LEN.start,
        K::SectionLength {
            section: Section::Weights,
            expected: (w_len + 2) as u32,
            found: w_len as u32,
        },
    );
    // Rows: out of range, out of order, repeated.
    expect(
        &patched(&blob, |b| b[pairs + 2] = 3),
        1,
        pairs + 2,
        K::SparseIndexOutOfRange,
    );
    expect(
        &patched(&blob, |b| {
            b[pairs] = 2;
            b[pairs + 2] = 0;
        }),
        1,
        pairs + 2,
        K::SparseIndexNotIncreasing,
    );
    expect(
        &patched(&blob, |b| b[pairs + 2] = 0),
        1,
        pairs + 2,
        K::SparseIndexNotIncreasing,
    );
    // A stored zero.
    expect(
        &patched(&blob, |b| b[pairs + 1] = 0),
        1,
        pairs + 1,
        K::SparseZeroValue,
    );
    // The overflow bound uses the unfolded bias and the widest input deviation (255 at zero point -128 or 127).
    let b_off = get_u32(&blob, entry(1) + e::BIAS_OFFSET.start) as usize;
    expect(
        &patched(&blob, |b| put_u32(b, b_off, i32::MAX as u32)),
        1,
        b_off,
        K::OverflowPossible,
    );
    // The format on a Conv1d layer.
    let conv = encode_with(&sparse_kinds_spec(), &with(WeightFormat::Sparse)).unwrap();
    let err = Model::load(&patched(&conv, |b| b[entry(1) + e::WEIGHT_FORMAT] = 3)).unwrap_err();
    assert_eq!(
        (err.layer, err.offset as usize, err.kind),
        (
            Some(1),
            entry(1) + e::WEIGHT_FORMAT,
            K::BadWeightFormat { found: 3 }
        )
    );
}

#[test]
fn packed_round_trips_and_is_smallest_at_high_sparsity() {
    let spec = columns_spec();
    let dense = encode_with(&spec, &with(WeightFormat::Blocked)).unwrap();
    let packed = encode_with(&spec, &with(WeightFormat::Packed)).unwrap();
    let columns = encode_with(&spec, &with(WeightFormat::Columns)).unwrap();
    let smallest = encode_with(&spec, &with(WeightFormat::Smallest)).unwrap();
    assert!(smallest.len() <= packed.len().min(columns.len()));
    // On a layer of some size, packing beats two bytes per non-zero.
    let (big, _) = layer_model(3, 128, 128, 0, 1, 0, Pattern::Unstructured(0.9));
    let big_packed = encode_with(&big, &with(WeightFormat::Packed))
        .unwrap()
        .len();
    let big_columns = encode_with(&big, &with(WeightFormat::Columns))
        .unwrap()
        .len();
    assert!(big_packed < big_columns, "{big_packed} >= {big_columns}");
    let model = Model::load(&packed).unwrap();
    let layers: Vec<_> = model.layers().filter_map(|l| l.weight_format).collect();
    assert_eq!(layers, [WeightLayout::Packed, WeightLayout::Packed]);
    let mut rng = Rng(9);
    for round in 0..200 {
        let x: Vec<i8> = (0..24)
            .map(|_| if rng.below(200) < round { -7 } else { rng.i8() })
            .collect();
        let want = run(&dense, &x);
        assert_eq!(run(&packed, &x), want, "round {round}");
        assert_eq!(run(&smallest, &x), want, "round {round}");
    }
    assert_eq!("packed".parse::<WeightFormat>(), Ok(WeightFormat::Packed));
    assert_eq!(
        "smallest".parse::<WeightFormat>(),
        Ok(WeightFormat::Smallest)
    );
}

/// Every field of a packed section is checked: header, codebook, counts, padding, entries.
#[test]
fn packed_validation_errors() {
    let mut spec = crafted_spec();
    if let OpSpec::Dense { weights, .. } = &mut spec.layers[1].op {
        weights[400] = 3;
    }
    let blob = encode_with(&spec, &with(WeightFormat::Packed)).unwrap();
    let dense = encode_with(&spec, &with(WeightFormat::Blocked)).unwrap();
    let x: Vec<i8> = (0..200).map(|i| (i * 37 % 251) as i8).collect();
    assert_eq!(run(&blob, &x), run(&dense, &x));
    let w = get_u32(&blob, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    let w_len = get_u32(&blob, entry(1) + e::WEIGHTS_LEN.start) as usize;
    let (gap_bits, code_bits, book_len) = (blob[w], blob[w + 1], usize::from(blob[w + 2]) + 1);
    assert!((1..=8).contains(&gap_bits) && (1..=8).contains(&code_bits));
    let counts = w + 4 + book_len;
    let stream = counts + 200;
    // Header: widths, codebook length, reserved byte.
    expect(&patched(&blob, |b| b[w] = 0), 1, w, K::BadPackedHeader);
    expect(&patched(&blob, |b| b[w] = 9), 1, w, K::BadPackedHeader);
    expect(
        &patched(&blob, |b| b[w + 1] = 0),
        1,
        w + 1,
        K::BadPackedHeader,
    );
    expect(
        &patched(&blob, |b| b[w + 3] = 1),
        1,
        w + 3,
        K::ReservedNotZero,
    );
    // The codebook strictly increases.
    if book_len >= 2 {
        expect(
            &patched(&blob, |b| b[w + 5] = b[w + 4]),
            1,
            w + 5,
            K::BadPackedHeader,
        );
    }
    // A count larger than the segment's 3 rows, and counts that no longer match the section length.
    expect(
        &patched(&blob, |b| b[counts] = 4),
        1,
        counts,
        K::SparseCountTooLarge,
    );
    let err = Model::load(&patched(&blob, |b| b[counts + 1] += 1)).unwrap_err();
    assert!(
        matches!(
            err.kind,
            K::SectionLength {
                section: Section::Weights,
                ..
            }
        ),
        "{err}"
    );
    // The padding after the stream is zero.
    expect(
        &patched(&blob, |b| b[w + w_len - 1] = 1),
        1,
        w + w_len - 1,
        K::RowPaddingNotZero,
    );
    // Column 0 holds rows 0 and 2.
    assert_eq!(blob[counts], 2);
    // Flipping bits anywhere in the stream never loads silently different weights: it either fails to load or
    // decodes to a valid model (checked by the byte-flip test); here every single-bit flip of the first two
    // stream bytes is either rejected or changes nothing but a loadable value.
    for bit in 0..16 {
        let flipped = patched(&blob, |b| b[stream + bit / 8] ^= 1 << (bit % 8));
        if let Ok(model) = Model::load(&flipped) {
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut session = Session::new(&model, &mut arena).unwrap();
            let _ = session.run_quantized(&x).logits();
        }
    }
}

#[test]
fn packed_fillers_bridge_long_gaps() {
    // One input, 256 outputs: rows 0 to 100 hold 5 (gaps of 0), row 255 holds -3 (a gap of 154). Short gap
    // fields with fillers beat one wide field, so the encoder emits fillers (zero values with the largest gap).
    let mut weights = vec![0i8; 256];
    weights[..=100].fill(5);
    weights[255] = -3;
    let m = QuantMultiplier::from_ratio(0.01).unwrap();
    let dense_layer = OpSpec::Dense {
        out_features: 256,
        in_features: 1,
        weights,
        bias: (0..256).map(|o| o - 128).collect(),
        requant: vec![m; 256],
    };
    let q = Qp { scale: 0.05, zp: 0 };
    let spec = spec(
        vec![identity_input(1, 1, q), LayerSpec::new(dense_layer, 0.1, 0)],
        1,
        256,
    );
    let blob = encode_with(&spec, &with(WeightFormat::Packed)).unwrap();
    let dense = encode_with(&spec, &with(WeightFormat::Blocked)).unwrap();
    let w = get_u32(&blob, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    let (gap_bits, book_len) = (blob[w], usize::from(blob[w + 2]) + 1);
    let entries = blob[w + 4 + book_len];
    assert!(gap_bits < 8, "gap bits {gap_bits}");
    assert!(
        entries > 102,
        "{entries} entries for 102 non-zeros: no fillers"
    );
    let model = Model::load(&blob).unwrap();
    assert_eq!(model.layers().nth(1).unwrap().weights_nonzero, 102);
    for x in i8::MIN..=i8::MAX {
        assert_eq!(run(&blob, &[x]), run(&dense, &[x]), "x = {x}");
    }
}

#[test]
fn packed_rows_past_the_segment_are_rejected() {
    // One input, 8 outputs, non-zeros at rows 0 and 7: gaps 0 and 6, which the encoder stores in 3-bit gap fields
    // with a 1-bit code (2 entries of 4 bits beat fillers), so the stream is one byte: entry 0 in bits 0-3,
    // entry 1 in bits 4-7.
    let mut weights = vec![0i8; 8];
    weights[0] = 9;
    weights[7] = -4;
    let m = QuantMultiplier::from_ratio(0.01).unwrap();
    let layer = OpSpec::Dense {
        out_features: 8,
        in_features: 1,
        weights,
        bias: vec![0; 8],
        requant: vec![m; 8],
    };
    let q = Qp { scale: 0.05, zp: 0 };
    let spec = spec(
        vec![identity_input(1, 1, q), LayerSpec::new(layer, 0.1, 0)],
        1,
        8,
    );
    let blob = encode_with(&spec, &with(WeightFormat::Packed)).unwrap();
    let w = get_u32(&blob, entry(1) + e::WEIGHTS_OFFSET.start) as usize;
    assert_eq!(
        (blob[w], blob[w + 1], blob[w + 2]),
        (3, 1, 1),
        "gap bits, code bits, codebook length - 1"
    );
    let stream = w + 4 + 2 + 1;
    // Entry 1's gap becomes 7: its row would be 1 + 7 = 8, past the 8 rows.
    expect(
        &patched(&blob, |b| b[stream] |= 0b0111_0000),
        1,
        stream,
        K::SparseIndexOutOfRange,
    );
    // Flipping entry 0's code picks the codebook's other value: other weights, but a well-formed blob.
    assert!(Model::load(&patched(&blob, |b| b[stream] ^= 0b0000_1000)).is_ok());
}

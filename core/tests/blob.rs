//! Blob round trips and every validation error, each reached with a crafted bad blob.

use tickq_core::encode::{EncodeError, LayerSpec, OpSpec, encode, encode_unvalidated};
use tickq_core::format::{MAX_DIM, MAX_METADATA_LEN, entry as e, header as h};
use tickq_core::requant::QuantMultiplier;
use tickq_core::{BlobError, BlobErrorKind as K, LayerKind, Model, Padding, Section};

use crate::support::*;

#[test]
fn round_trip_keeps_every_field() {
    let spec = every_kind_spec();
    let blob = every_kind_blob();
    let model = Model::load(&blob).unwrap();
    let mut slot = None;
    let in_place = Model::load_into(&mut slot, &blob).unwrap();
    assert_eq!(format!("{in_place:?}"), format!("{model:?}"));
    assert_eq!(model.version(), 3);
    assert_eq!(model.blob_len(), blob.len());
    assert_eq!(model.crc32(), get_u32(&blob, h::CRC.start));
    assert_eq!(model.crc32(), tickq_core::format::compute_crc(&blob));
    assert_eq!(model.input_shape(), (8, 3));
    assert_eq!(model.input_len(), 24);
    assert_eq!(model.classes(), 3);
    let meta = model.metadata();
    assert_eq!(meta.name(), "every-kind");
    assert_eq!(
        meta.feature_names().collect::<Vec<_>>(),
        ["ret_1", "spread", "imbalance"]
    );
    assert_eq!(meta.feature_names().len(), 3);
    assert_eq!(
        meta.label_names().collect::<Vec<_>>(),
        ["down", "flat", "up"]
    );
    assert_eq!(meta.data_hash(), &spec.data_hash);
    assert_eq!(meta.tickq_version(), "0.1.0");
    let last = spec.layers.last().unwrap();
    assert_eq!(model.output_quant(), (last.out_scale, last.out_zero_point));
    assert_eq!(
        model.input_quant(),
        (spec.layers[0].out_scale, spec.layers[0].out_zero_point)
    );

    let layers: Vec<_> = model.layers().collect();
    let kinds: Vec<LayerKind> = layers.iter().map(|l| l.kind).collect();
    use LayerKind::*;
    assert_eq!(
        kinds,
        [
            Quantize,
            Conv1d,
            Lut,
            Add,
            MaxPool1d,
            Conv1d,
            AvgPool1d,
            Flatten,
            GlobalAvgPool,
            Dense,
            Add,
            Dense
        ]
    );
    let shapes: Vec<_> = layers.iter().map(|l| l.out_shape).collect();
    assert_eq!(
        shapes,
        [
            (8, 3),
            (8, 4),
            (8, 4),
            (8, 4),
            (4, 4),
            (3, 5),
            (2, 5),
            (1, 10),
            (1, 5),
            (1, 5),
            (1, 5),
            (1, 3)
        ]
    );
    let inputs: Vec<_> = layers.iter().map(|l| (l.input, l.input_b)).collect();
    assert_eq!(inputs[0], (None, None));
    assert_eq!(inputs[3], (Some(1), Some(2)));
    assert_eq!(inputs[8], (Some(5), None));
    assert_eq!(inputs[10], (Some(9), Some(8)));
    let conv = layers[1];
    assert_eq!(
        (conv.kernel, conv.stride, conv.dilation, conv.padding),
        (3, 1, 2, Padding::Causal)
    );
    assert_eq!(conv.in_shape, (8, 3));
    assert_eq!(conv.params, 4 * 9 + 4 * 2);
    // One tail block of 4 channels by 10 inputs (9 rounded up to even), then biases and multipliers.
    assert_eq!(conv.bytes, 4 * 10 + 16 + 20);
    assert_eq!(conv.macs, 8 * 4 * 9);
    assert_eq!(conv.act_min, conv.out_zero_point);
    assert_eq!(
        (layers[4].kernel, layers[4].stride, layers[4].dilation),
        (2, 2, 0)
    );
    assert_eq!(layers[11].macs, 15);
    for (l, s) in layers.iter().zip(&spec.layers) {
        assert_eq!(
            (l.out_scale, l.out_zero_point, l.act_min, l.act_max),
            (s.out_scale, s.out_zero_point, s.act_min, s.act_max)
        );
        // Layer 0's tensor feeds the causal conv, so its data follows a 12-byte pad prefix.
        let prefix = if l.index == 0 { 12 } else { 0 };
        assert_eq!(
            (l.arena_offset - prefix) % tickq_core::TENSOR_ALIGN,
            0,
            "allocations start aligned"
        );
        assert_eq!(l.arena_len, l.out_shape.0 * l.out_shape.1);
    }
    // Encoding is deterministic.
    assert_eq!(every_kind_blob(), blob);
}

/// Loads `blob`, expects an error of the given kind at `layer` and `offset`, and checks its Display.
#[track_caller]
fn expect(blob: &[u8], layer: Option<u16>, offset: usize, kind: impl Fn(&K) -> bool) -> BlobError {
    let err = Model::load(blob).expect_err("blob must be rejected");
    // The in-place loader reports the same error and leaves its slot empty.
    let mut slot = None;
    assert_eq!(Model::load_into(&mut slot, blob).err(), Some(err));
    assert!(slot.is_none());
    assert!(kind(&err.kind), "unexpected kind: {err:?}");
    assert_eq!(err.layer, layer, "{err:?}");
    assert_eq!(err.offset as usize, offset, "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("at byte {offset}: ")), "{text}");
    match (layer, err.layer_kind) {
        (Some(i), Some(k)) => assert!(
            text.starts_with(&format!("layer {i} ({}) ", k.name())),
            "{text}"
        ),
        (Some(i), None) => assert!(text.starts_with(&format!("layer {i} ")), "{text}"),
        (None, _) => assert!(text.starts_with("blob "), "{text}"),
    }
    // The message ends with the kind's own message, which holds its name (the `NAMES` table in error.rs).
    let name = err.kind.name();
    assert!(!name.is_empty(), "{:?} has no name", err.kind);
    assert!(text.ends_with(&err.kind.to_string()), "{text}");
    assert!(text.contains(name), "{text:?} does not name {name:?}");
    err
}

#[test]
fn header_errors() {
    let blob = every_kind_blob();
    expect(&blob[..63], None, 63, |k| *k == K::Truncated);
    expect(&[], None, 0, |k| *k == K::Truncated);
    expect(&patched(&blob, |b| b[0] = b'X'), None, 0, |k| {
        *k == K::BadMagic
    });
    for version in [0, 5] {
        expect(
            &patched(&blob, |b| put_u16(b, h::VERSION.start, version)),
            None,
            8,
            |k| *k == K::UnsupportedVersion { found: version },
        );
    }
    expect(
        &patched(&blob, |b| put_u16(b, h::FLAGS.start, 4)),
        None,
        10,
        |k| *k == K::UnknownFlags { found: 4 },
    );
    expect(&blob[..blob.len() - 1], None, 16, |k| {
        matches!(k, K::LengthMismatch { .. })
    });
    let mut bad_crc = blob.clone();
    bad_crc[200] ^= 1;
    let err = expect(&bad_crc, None, 12, |k| matches!(k, K::CrcMismatch { .. }));
    assert!(err.to_string().contains("CRC mismatch"), "{err}");
    expect(&patched(&blob, |b| b[40] = 1), None, 40, |k| {
        *k == K::ReservedNotZero
    });
    expect(&patched(&blob, |b| b[23] = 1), None, 23, |k| {
        *k == K::ReservedNotZero
    });
    expect(
        &patched(&blob, |b| put_u32(b, h::LAYER_TABLE_OFFSET.start, 128)),
        None,
        24,
        |k| *k == K::BadTableOffset,
    );
    expect(
        &patched(&blob, |b| put_u16(b, h::LAYER_COUNT.start, 0)),
        None,
        20,
        |k| *k == K::BadLayerCount { found: 0 },
    );
    expect(
        &patched(&blob, |b| put_u16(b, h::LAYER_COUNT.start, 1000)),
        None,
        20,
        |k| *k == K::BadLayerCount { found: 1000 },
    );
    let meta = get_u32(&blob, h::METADATA_OFFSET.start);
    expect(
        &patched(&blob, |b| put_u32(b, h::METADATA_OFFSET.start, 100)),
        None,
        28,
        |k| *k == K::MetadataOutOfBounds,
    );
    expect(
        &patched(&blob, |b| put_u32(b, h::METADATA_LEN.start, 3)),
        None,
        28,
        |k| *k == K::MetadataOutOfBounds,
    );
    // Moving the metadata start by 2 while keeping it last needs a longer length, and lands misaligned.
    expect(
        &patched(&blob, |b| {
            put_u32(b, h::METADATA_OFFSET.start, meta - 2);
            let len = get_u32(b, h::METADATA_LEN.start);
            put_u32(b, h::METADATA_LEN.start, len + 2);
        }),
        None,
        28,
        |k| *k == K::MetadataMisaligned,
    );
}

#[test]
fn too_many_layers() {
    let q = Qp { scale: 0.1, zp: 0 };
    let table: [i8; 256] = std::array::from_fn(|i| (i as i32 - 128) as i8);
    let mut layers = vec![identity_input(1, 2, q)];
    layers.extend((0..32).map(|_| LayerSpec::new(OpSpec::Lut { table }, q.scale, q.zp)));
    let spec33 = spec(layers.clone(), 2, 2);
    let blob = encode_unvalidated(&spec33).unwrap();
    expect(&blob, None, 20, |k| *k == K::BadLayerCount { found: 33 });
    assert!(matches!(
        encode(&spec33),
        Err(EncodeError::Invalid(BlobError {
            kind: K::BadLayerCount { found: 33 },
            ..
        }))
    ));
    layers.pop();
    assert!(encode(&spec(layers, 2, 2)).is_ok(), "32 layers are allowed");
}

#[test]
// A model one past MAX_DIM wide has 65,536 features (and names and quantizer parameters for each): seconds
// natively, longer than the whole Miri step under the interpreter. The limit itself cannot shrink, and the
// encoder's size checks are safe code, so Miri leaves this one to the native run.
#[cfg_attr(
    miri,
    ignore = "65,536-wide model: too slow under Miri; safe code, checked natively"
)]
fn size_limit_is_the_published_constant() {
    let q = Qp { scale: 0.1, zp: 0 };
    let wide = |features: usize| spec(vec![identity_input(1, features, q)], features, features);
    let err = encode(&wide(MAX_DIM + 1)).unwrap_err();
    assert_eq!(
        err,
        EncodeError::TooLarge {
            layer: Some(0),
            field: "out_channels"
        }
    );
}

#[test]
fn metadata_limit_is_the_published_constant() {
    let q = Qp { scale: 0.1, zp: 0 };
    let mut named = spec(vec![identity_input(1, 2, q)], 2, 2);
    named.name = "n".repeat(MAX_METADATA_LEN);
    encode_unvalidated(&named).expect("a name of MAX_METADATA_LEN bytes fits");
    named.name.push('n');
    assert_eq!(
        encode_unvalidated(&named).unwrap_err(),
        EncodeError::MetadataTooLong { field: "name" }
    );
}

#[test]
fn layer_entry_errors() {
    let blob = every_kind_blob();
    let l = |i: usize| Some(i as u16);
    // Layer 9 is a Dense reading layer 7; layer 1 is the causal Conv1d; layer 2 the Lut; layer 3 an Add.
    let err = expect(&patched(&blob, |b| b[entry(9)] = 42), l(9), entry(9), |k| {
        *k == K::UnknownKind { found: 42 }
    });
    assert_eq!(err.layer_kind, None);
    let err = expect(
        &patched(&blob, |b| b[entry(9) + 7] = 1),
        l(9),
        entry(9) + 7,
        |k| *k == K::ReservedNotZero,
    );
    assert_eq!(err.layer_kind, Some(LayerKind::Dense));
    assert!(
        err.to_string().starts_with("layer 9 (Dense) at byte "),
        "{err}"
    );
    expect(
        &patched(&blob, |b| b[entry(9) + 60] = 1),
        l(9),
        entry(9) + 60,
        |k| *k == K::ReservedNotZero,
    );
    expect(
        &patched(&blob, |b| b[entry(0)] = LayerKind::Dense.code()),
        l(0),
        entry(0),
        |k| *k == K::QuantizeNotFirst,
    );
    expect(
        &patched(&blob, |b| b[entry(2)] = LayerKind::Quantize.code()),
        l(2),
        entry(2),
        |k| *k == K::QuantizeNotFirst,
    );
    expect(
        &patched(&blob, |b| b[entry(1) + e::PADDING] = 2),
        l(1),
        entry(1) + 1,
        |k| *k == K::BadPadding { found: 2 },
    );
    expect(
        &patched(&blob, |b| b[entry(2) + e::PADDING] = 1),
        l(2),
        entry(2) + 1,
        |k| *k == K::BadPadding { found: 1 },
    );
    // Forward and self references, and inputs where none may be.
    expect(
        &patched(&blob, |b| put_u16(b, entry(9) + e::INPUT_A.start, 9)),
        l(9),
        entry(9) + 2,
        |k| *k == K::BadInput { found: 9 },
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(9) + e::INPUT_A.start, 11)),
        l(9),
        entry(9) + 2,
        |k| *k == K::BadInput { found: 11 },
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(9) + e::INPUT_A.start, 0xFFFF)),
        l(9),
        entry(9) + 2,
        |k| *k == K::BadInput { found: 0xFFFF },
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(0) + e::INPUT_A.start, 0)),
        l(0),
        entry(0) + 2,
        |k| *k == K::BadInput { found: 0 },
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(3) + e::INPUT_B.start, 3)),
        l(3),
        entry(3) + 4,
        |k| *k == K::BadInput { found: 3 },
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(9) + e::INPUT_B.start, 1)),
        l(9),
        entry(9) + 4,
        |k| *k == K::BadInput { found: 1 },
    );
    // Shapes.
    expect(
        &patched(&blob, |b| put_u16(b, entry(2) + e::OUT_CHANNELS.start, 5)),
        l(2),
        entry(2) + 8,
        |k| {
            *k == K::ShapeMismatch {
                expected_time: 8,
                expected_channels: 4,
            }
        },
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(4) + e::OUT_TIME.start, 3)),
        l(4),
        entry(4) + 8,
        |k| matches!(k, K::ShapeMismatch { .. }),
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(2) + e::OUT_TIME.start, 0)),
        l(2),
        entry(2) + 8,
        |k| *k == K::ZeroParameter,
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(9) + e::INPUT_A.start, 6)),
        l(9),
        entry(9) + 2,
        |k| *k == K::InputNotVector,
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(10) + e::INPUT_B.start, 7)),
        l(10),
        entry(10) + 4,
        |k| *k == K::AddShapeMismatch,
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(1) + e::KERNEL.start, 0)),
        l(1),
        entry(1) + 12,
        |k| *k == K::ZeroParameter,
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(4) + e::STRIDE.start, 0)),
        l(4),
        entry(4) + 14,
        |k| *k == K::ZeroParameter,
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(1) + e::DILATION.start, 0)),
        l(1),
        entry(1) + 16,
        |k| *k == K::ZeroParameter,
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(4) + e::DILATION.start, 1)),
        l(4),
        entry(4) + 16,
        |k| *k == K::UnusedParameter,
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(9) + e::KERNEL.start, 1)),
        l(9),
        entry(9) + 12,
        |k| *k == K::UnusedParameter,
    );
    expect(
        &patched(&blob, |b| put_u16(b, entry(4) + e::KERNEL.start, 9)),
        l(4),
        entry(4) + 12,
        |k| *k == K::WindowTooLarge,
    );
    // Quantization parameters.
    expect(
        &patched(&blob, |b| put_u32(b, entry(9) + e::OUT_SCALE.start, 0)),
        l(9),
        entry(9) + 24,
        |k| *k == K::BadScale,
    );
    expect(
        &patched(&blob, |b| {
            put_u32(b, entry(9) + e::OUT_SCALE.start, f32::NAN.to_bits())
        }),
        l(9),
        entry(9) + 24,
        |k| *k == K::BadScale,
    );
    expect(
        &patched(&blob, |b| {
            put_u32(b, entry(9) + e::OUT_SCALE.start, (-1.0f32).to_bits())
        }),
        l(9),
        entry(9) + 24,
        |k| *k == K::BadScale,
    );
    expect(
        &patched(&blob, |b| b[entry(4) + e::OUT_ZERO_POINT] ^= 1),
        l(4),
        entry(4) + 20,
        |k| *k == K::QuantParamsMismatch,
    );
    expect(
        &patched(&blob, |b| b[entry(7) + e::OUT_SCALE.start] ^= 1),
        l(7),
        entry(7) + 20,
        |k| *k == K::QuantParamsMismatch,
    );
    expect(
        &patched(&blob, |b| {
            b[entry(9) + e::ACT_MIN] = 5;
            b[entry(9) + e::ACT_MAX] = 4;
        }),
        l(9),
        entry(9) + 21,
        |k| *k == K::BadActivationRange,
    );
}

#[test]
fn section_errors() {
    let blob = every_kind_blob();
    let l = |i: usize| Some(i as u16);
    let meta = get_u32(&blob, h::METADATA_OFFSET.start);
    let w9 = get_u32(&blob, entry(9) + e::WEIGHTS_OFFSET.start);
    let w11 = get_u32(&blob, entry(11) + e::WEIGHTS_OFFSET.start);
    let section = |s| move |k: &K| matches!(k, K::SectionOutOfBounds { section } if *section == s);
    expect(
        &patched(&blob, |b| {
            put_u32(b, entry(9) + e::WEIGHTS_OFFSET.start, meta)
        }),
        l(9),
        entry(9) + 28,
        section(Section::Weights),
    );
    expect(
        &patched(&blob, |b| {
            put_u32(b, entry(9) + e::WEIGHTS_OFFSET.start, 0xFFFF_FFF0)
        }),
        l(9),
        entry(9) + 28,
        section(Section::Weights),
    );
    expect(
        &patched(&blob, |b| put_u32(b, entry(9) + e::BIAS_OFFSET.start, 0)),
        l(9),
        entry(9) + 36,
        section(Section::Bias),
    );
    expect(
        &patched(&blob, |b| {
            put_u32(b, entry(9) + e::REQUANT_OFFSET.start, 64)
        }),
        l(9),
        entry(9) + 44,
        section(Section::Requant),
    );
    expect(
        &patched(&blob, |b| {
            put_u32(b, entry(9) + e::WEIGHTS_OFFSET.start, w9 + 8)
        }),
        l(9),
        entry(9) + 28,
        |k| {
            *k == K::SectionMisaligned {
                section: Section::Weights,
            }
        },
    );
    // Layer 11's weights (5 -> 3: one block of 16 x 6) fit inside layer 9's (10 -> 5: one block of 16 x 10).
    let err = expect(
        &patched(&blob, |b| {
            put_u32(b, entry(11) + e::WEIGHTS_OFFSET.start, w9)
        }),
        l(11),
        entry(11) + 28,
        |k| {
            *k == K::SectionOverlap {
                section: Section::Weights,
            }
        },
    );
    assert!(
        err.to_string().contains("weights section overlaps"),
        "{err}"
    );
    let _ = w11;
    // Lengths: a LUT of 255 bytes, a Dense without bias, a Flatten with a section it does not use.
    expect(
        &patched(&blob, |b| put_u32(b, entry(2) + e::AUX_LEN.start, 255)),
        l(2),
        entry(2) + 56,
        |k| {
            *k == K::SectionLength {
                section: Section::Aux,
                expected: 256,
                found: 255,
            }
        },
    );
    expect(
        &patched(&blob, |b| put_u32(b, entry(9) + e::BIAS_LEN.start, 0)),
        l(9),
        entry(9) + 40,
        |k| {
            *k == K::SectionLength {
                section: Section::Bias,
                expected: 20,
                found: 0,
            }
        },
    );
    expect(
        &patched(&blob, |b| put_u32(b, entry(7) + e::AUX_OFFSET.start, 16)),
        l(7),
        entry(7) + 56,
        |k| {
            *k == K::SectionLength {
                section: Section::Aux,
                expected: 0,
                found: 0,
            }
        },
    );
    // Contents: row padding, multipliers, shifts, quantizer coefficients, Add weights.
    // Layer 11 is a Dense 5 -> 3: one tail block of 3 steps of 6 bytes; input 5 (byte 1 of a channel's last
    // step) is padding.
    let w11 = get_u32(&blob, entry(11) + e::WEIGHTS_OFFSET.start) as usize;
    expect(
        &patched(&blob, |b| b[w11 + 2 * 6 + 1] = 1),
        l(11),
        w11 + 2 * 6 + 1,
        |k| *k == K::RowPaddingNotZero,
    );
    let r9 = get_u32(&blob, entry(9) + e::REQUANT_OFFSET.start) as usize;
    expect(
        &patched(&blob, |b| put_u32(b, r9 + 8, 5)),
        l(9),
        r9 + 8,
        |k| *k == K::BadMultiplier,
    );
    expect(&patched(&blob, |b| b[r9 + 20 + 1] = 0), l(9), r9 + 4, |k| {
        *k == K::BadMultiplier
    });
    expect(
        &patched(&blob, |b| b[r9 + 20 + 4] = 63),
        l(9),
        r9 + 16,
        |k| *k == K::BadMultiplier,
    );
    let r6 = get_u32(&blob, entry(6) + e::REQUANT_OFFSET.start) as usize;
    expect(&patched(&blob, |b| b[r6 + 4] = 0), l(6), r6, |k| {
        *k == K::BadMultiplier
    });
    let a0 = get_u32(&blob, entry(0) + e::AUX_OFFSET.start) as usize;
    expect(
        &patched(&blob, |b| put_u32(b, a0 + 16, f32::INFINITY.to_bits())),
        l(0),
        a0 + 16,
        |k| *k == K::BadCoefficient,
    );
    let a3 = get_u32(&blob, entry(3) + e::AUX_OFFSET.start) as usize;
    expect(
        &patched(&blob, |b| put_u32(b, a3, 1 << 23)),
        l(3),
        a3,
        |k| *k == K::OverflowPossible,
    );
}

#[test]
fn overflow_possible_weights_are_rejected() {
    let q = Qp { scale: 0.1, zp: 0 };
    let m = QuantMultiplier::from_ratio(0.001).unwrap();
    let dense = |bias: i32, f: usize| {
        let layers = vec![
            identity_input(1, f, q),
            LayerSpec::new(
                OpSpec::Dense {
                    out_features: 2,
                    in_features: f,
                    weights: vec![-128; 2 * f],
                    bias: vec![0, bias],
                    requant: vec![m; 2],
                },
                q.scale,
                q.zp,
            ),
        ];
        encode_unvalidated(&spec(layers, f, 2)).unwrap()
    };
    // |b| + 128 * sum |w| must stay below 2^31: 4 weights of -128 give 65536, so the largest bias is 2^31 - 65537.
    let ok = dense(i32::MAX - 65536, 4);
    assert!(Model::load(&ok).is_ok());
    let bad = dense(i32::MAX - 65535, 4);
    let bias_offset = get_u32(&bad, entry(1) + e::BIAS_OFFSET.start) as usize;
    expect(&bad, Some(1), bias_offset + 4, |k| {
        *k == K::OverflowPossible
    });
    let bad = dense(i32::MIN + 65536, 4);
    expect(&bad, Some(1), bias_offset + 4, |k| {
        *k == K::OverflowPossible
    });
}

#[test]
fn activation_range_and_final_shape_errors() {
    let q = Qp { scale: 0.1, zp: 0 };
    let m = QuantMultiplier::from_ratio(0.5).unwrap();
    let dense = OpSpec::Dense {
        out_features: 2,
        in_features: 2,
        weights: vec![1; 4],
        bias: vec![0; 2],
        requant: vec![m; 2],
    };
    let layers = vec![
        identity_input(1, 2, q),
        with_clamp(LayerSpec::new(dense, q.scale, q.zp), (10, -10)),
    ];
    let blob = encode_unvalidated(&spec(layers, 2, 2)).unwrap();
    expect(&blob, Some(1), entry(1) + 21, |k| {
        *k == K::BadActivationRange
    });
    assert!(matches!(
        encode(&spec(
            vec![
                identity_input(1, 2, q),
                with_clamp(LayerSpec::new(OpSpec::Flatten, q.scale, q.zp), (1, 0))
            ],
            2,
            2
        )),
        Err(EncodeError::Invalid(_))
    ));

    // A final tensor with 4 time steps is not a vector.
    let layers = vec![
        identity_input(4, 2, q),
        LayerSpec::new(
            OpSpec::MaxPool1d {
                kernel: 1,
                stride: 1,
            },
            q.scale,
            q.zp,
        ),
    ];
    let blob = encode_unvalidated(&spec(layers, 2, 2)).unwrap();
    expect(&blob, Some(1), entry(1) + 8, |k| *k == K::OutputNotVector);
    // Too many classes for the session's logits buffer.
    let layers = vec![
        identity_input(1, 300, q),
        LayerSpec::new(OpSpec::Flatten, q.scale, q.zp),
    ];
    let blob = encode_unvalidated(&spec(layers, 300, 300)).unwrap();
    expect(&blob, Some(1), entry(1) + 8, |k| {
        *k == K::TooManyClasses { found: 300 }
    });
}

#[test]
fn metadata_errors() {
    let good = every_kind_spec();
    let blob = encode(&good).unwrap();
    let meta = get_u32(&blob, h::METADATA_OFFSET.start) as usize;
    // The name starts after its 2-byte length.
    expect(
        &patched(&blob, |b| b[meta + 2] = 0xFF),
        None,
        meta + 2,
        |k| *k == K::BadUtf8,
    );
    let mut labels = good.clone();
    labels.label_names.pop();
    expect(&encode_unvalidated(&labels).unwrap(), None, meta, |k| {
        *k == K::LabelCountMismatch {
            names: 2,
            classes: 3,
        }
    });
    let mut features = good.clone();
    features.feature_names.push("extra".into());
    expect(&encode_unvalidated(&features).unwrap(), None, meta, |k| {
        *k == K::FeatureCountMismatch {
            names: 4,
            features: 3,
        }
    });
    // A name length running past the block, and bytes after the version.
    expect(
        &patched(&blob, |b| put_u16(b, meta, 60000)),
        None,
        meta + 2,
        |k| *k == K::MetadataTruncated,
    );
    let mut longer = blob.clone();
    longer.extend_from_slice(&[0, 0, 0, 0]);
    let total = longer.len() as u32;
    let len = get_u32(&longer, h::METADATA_LEN.start) + 4;
    let longer = patched(&longer, |b| {
        put_u32(b, h::TOTAL_LEN.start, total);
        put_u32(b, h::METADATA_LEN.start, len);
    });
    expect(&longer, None, blob.len(), |k| {
        *k == K::MetadataTrailingBytes
    });
    // The version string shortened by one byte leaves one trailing byte.
    let v = blob.len() - good.tickq_version.len() - 2;
    expect(
        &patched(&blob, |b| put_u16(b, v, 4)),
        None,
        blob.len() - 1,
        |k| *k == K::MetadataTrailingBytes,
    );
}

#[test]
fn encoder_rejects_inconsistent_specs() {
    let q = Qp { scale: 0.1, zp: 0 };
    let m = QuantMultiplier::from_ratio(0.5).unwrap();
    assert_eq!(encode(&spec(vec![], 1, 1)), Err(EncodeError::NoLayers));
    let dense = |f, w: usize| OpSpec::Dense {
        out_features: 2,
        in_features: f,
        weights: vec![1; w],
        bias: vec![0; 2],
        requant: vec![m; 2],
    };
    let err = encode(&spec(
        vec![identity_input(1, 3, q), LayerSpec::new(dense(2, 4), 0.1, 0)],
        3,
        2,
    ))
    .unwrap_err();
    assert!(
        matches!(
            err,
            EncodeError::LengthMismatch {
                layer: 1,
                field: "in_features",
                ..
            }
        ),
        "{err}"
    );
    let err = encode(&spec(
        vec![identity_input(1, 2, q), LayerSpec::new(dense(2, 5), 0.1, 0)],
        2,
        2,
    ))
    .unwrap_err();
    assert!(
        matches!(
            err,
            EncodeError::LengthMismatch {
                layer: 1,
                field: "weights",
                expected: 4,
                found: 5
            }
        ),
        "{err}"
    );
    let err = encode(&spec(
        vec![identity_input(3, 2, q), LayerSpec::new(dense(2, 4), 0.1, 0)],
        2,
        2,
    ))
    .unwrap_err();
    assert!(matches!(err, EncodeError::Shape { layer: 1, .. }), "{err}");
    let err = encode(&spec(
        vec![
            identity_input(1, 2, q),
            reading(LayerSpec::new(dense(2, 4), 0.1, 0), 1),
        ],
        2,
        2,
    ))
    .unwrap_err();
    assert_eq!(err, EncodeError::BadInput { layer: 1, input: 1 });
    let err = encode(&spec(
        vec![
            identity_input(2, 2, q),
            LayerSpec::new(
                OpSpec::MaxPool1d {
                    kernel: 3,
                    stride: 1,
                },
                0.1,
                0,
            ),
        ],
        2,
        2,
    ))
    .unwrap_err();
    assert!(matches!(err, EncodeError::Shape { layer: 1, .. }), "{err}");
    assert!(err.to_string().starts_with("layer 1: "), "{err}");
}

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
    for version in [0, 6] {
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
fn the_channels_first_flag_records_the_layout_and_nothing_else() {
    use tickq_core::InputLayout;
    let blob = every_kind_blob();
    let model = Model::load(&blob).unwrap();
    assert_eq!(model.input_layout(), InputLayout::TimeMajor);
    let mut flagged = blob.clone();
    assert!(tickq_core::encode::set_input_layout(
        &mut flagged,
        InputLayout::ChannelsFirst
    ));
    assert_eq!(
        u16::from_le_bytes([flagged[10], flagged[11]]),
        h::FLAG_CHANNELS_FIRST
    );
    assert_eq!(
        Model::load(&flagged).unwrap().input_layout(),
        InputLayout::ChannelsFirst
    );
    // Only the flag and the CRC differ; clearing it gives the encoder's bytes back.
    let differ: Vec<usize> = (0..blob.len()).filter(|&i| blob[i] != flagged[i]).collect();
    assert!(
        differ
            .iter()
            .all(|i| h::FLAGS.contains(i) || h::CRC.contains(i)),
        "{differ:?}"
    );
    assert!(tickq_core::encode::set_input_layout(
        &mut flagged,
        InputLayout::TimeMajor
    ));
    assert_eq!(flagged, blob);
    // Any other bit is still unknown.
    expect(
        &patched(&blob, |b| {
            put_u16(b, h::FLAGS.start, h::FLAG_CHANNELS_FIRST | 2)
        }),
        None,
        10,
        |k| *k == K::UnknownFlags { found: 3 },
    );
    assert!(!tickq_core::encode::set_input_layout(
        &mut [0u8; 10],
        InputLayout::ChannelsFirst
    ));
    // The conversion helper: [C, T] = [2, 3] to [T, F] = [3, 2].
    let sample = [0.0, 1.0, 2.0, 10.0, 11.0, 12.0];
    let mut out = [0f32; 6];
    assert!(InputLayout::ChannelsFirst.to_time_major(&sample, 3, 2, &mut out));
    assert_eq!(out, [0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
    assert!(InputLayout::TimeMajor.to_time_major(&sample, 3, 2, &mut out));
    assert_eq!(out, sample);
    assert!(!InputLayout::ChannelsFirst.to_time_major(&sample, 4, 2, &mut out));
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

/// The feature-spec section's offset in `blob`, from its header.
fn spec_at(blob: &[u8]) -> usize {
    get_u32(blob, h::FEATURE_SPEC_OFFSET.start) as usize
}

#[test]
fn a_feature_spec_round_trips() {
    use tickq_core::decode::decode;
    use tickq_core::format::{
        FEATURE_SPEC_VERSION, METADATA_ALIGN, SECTION_ALIGN, feature_spec as fs,
    };
    let spec = feature_spec_model();
    let blob = feature_spec_blob();
    let model = Model::load(&blob).unwrap();
    assert_eq!(model.version(), FEATURE_SPEC_VERSION);
    assert_eq!(model.feature_spec(), spec.feature_spec);
    assert_eq!(model.feature_spec(), Some(feature_spec_24()));
    // The section sits after every layer section, 16-byte aligned, right before the (4-byte aligned) metadata.
    let at = spec_at(&blob);
    let meta = get_u32(&blob, h::METADATA_OFFSET.start) as usize;
    assert_eq!(get_u32(&blob, h::FEATURE_SPEC_LEN.start) as usize, fs::LEN);
    assert_eq!(at % SECTION_ALIGN, 0);
    assert_eq!(meta, (at + fs::LEN).next_multiple_of(METADATA_ALIGN));
    for l in model.layers() {
        assert!(l.index < 3);
    }
    for i in 0..3 {
        for (off, len) in [
            e::WEIGHTS_OFFSET,
            e::BIAS_OFFSET,
            e::REQUANT_OFFSET,
            e::AUX_OFFSET,
        ]
        .into_iter()
        .map(|r| (r.start, r.start + 4))
        {
            let end = get_u32(&blob, entry(i) + off) + get_u32(&blob, entry(i) + len);
            assert!(
                end as usize <= at,
                "layer {i}'s section ends after the spec"
            );
        }
    }
    // The bytes as docs/BLOB.md lays them out.
    let s = &blob[at..at + fs::LEN];
    assert_eq!(get_u32(s, 0), 30 * 60 * 1000);
    assert_eq!(get_u32(s, 4), 4096);
    assert_eq!(s[8..16], 0.25f64.to_bits().to_le_bytes());
    assert_eq!(s[16..24], 1.0f64.to_bits().to_le_bytes());
    assert_eq!(s[24..33], [2, 1, 2, 1, 1, 2, 1, 1, 1]);
    assert_eq!(s[33..40], [0; 7]);
    assert_eq!(get_u32(s, 40), 1);
    assert_eq!(get_u32(s, 44), 5);
    assert_eq!(get_u32(s, 48), 0);
    assert_eq!(get_u32(s, 40 + 32), 1_000);
    assert_eq!(get_u32(s, 40 + 32 * 8), 100);
    // decode gives the spec back, and encoding the decoded model writes the same bytes.
    let decoded = decode(&model);
    assert_eq!(decoded.feature_spec, spec.feature_spec);
    assert_eq!(decoded.feature_names, spec.feature_names);
    assert_eq!(encode_blocked(&decoded), blob);
    // Without a spec the blob keeps its old version and zero feature-spec fields.
    let plain = mlp_blob(8, 16, 3);
    let model = Model::load(&plain).unwrap();
    assert_eq!(model.version(), 3);
    assert_eq!(model.feature_spec(), None);
    assert_eq!(decode(&model).feature_spec, None);
    assert_eq!(plain[h::FEATURE_SPEC_FIELDS], [0; 8]);
    // A version 5 blob may still have none: the fields are zero, the model is fed feature vectors.
    let v5 = patched(&plain, |b| put_u16(b, h::VERSION.start, 5));
    assert_eq!(Model::load(&v5).unwrap().feature_spec(), None);
}

#[test]
fn feature_spec_section_errors() {
    use tickq_core::error::FeatureSpecError;
    use tickq_core::features::{SpecError, SpecField};
    let blob = feature_spec_blob();
    let at = spec_at(&blob);
    let (off, len) = (h::FEATURE_SPEC_OFFSET.start, h::FEATURE_SPEC_LEN.start);

    // An older version leaves the fields reserved: the first non-zero byte is refused.
    let first = off
        + blob[h::FEATURE_SPEC_FIELDS]
            .iter()
            .position(|&b| b != 0)
            .unwrap();
    for version in [1, 2, 3, 4] {
        expect(
            &patched(&blob, |b| put_u16(b, h::VERSION.start, version)),
            None,
            first,
            |k| *k == K::ReservedNotZero,
        );
    }
    let plain = mlp_blob(8, 16, 3);
    expect(&patched(&plain, |b| b[len + 3] = 1), None, len + 3, |k| {
        *k == K::ReservedNotZero
    });

    // Placement.
    for found in [0, 327, 329, 656] {
        let err = expect(
            &patched(&blob, |b| put_u32(b, len, found)),
            None,
            len,
            |k| *k == K::FeatureSpecLength { found },
        );
        assert!(err.to_string().ends_with(&format!(
            "feature spec section has wrong length (length {found}, expected 328)"
        )));
    }
    expect(
        &patched(&blob, |b| put_u32(b, off, at as u32 + 4)),
        None,
        off,
        |k| *k == K::FeatureSpecMisaligned,
    );
    for bad in [0, 64, at + 16, u32::MAX as usize & !15] {
        expect(
            &patched(&blob, |b| put_u32(b, off, bad as u32)),
            None,
            off,
            |k| *k == K::FeatureSpecOutOfBounds,
        );
    }
    let quantize_aux = get_u32(&blob, entry(0) + e::AUX_OFFSET.start);
    expect(
        &patched(&blob, |b| put_u32(b, off, quantize_aux)),
        None,
        off,
        |k| *k == K::FeatureSpecOverlap,
    );

    // Contents.
    expect(&patched(&blob, |b| b[at + 35] = 1), None, at + 35, |k| {
        *k == K::ReservedNotZero
    });
    // Byte 33 is the input kind: an unknown code is refused; a trades spec's lists under the bars kind leave
    // lists past the kind's two in use.
    let err = expect(&patched(&blob, |b| b[at + 33] = 3), None, at + 33, |k| {
        *k == K::FeatureSpecInputKind { found: 3 }
    });
    assert!(
        err.to_string()
            .ends_with("feature spec input kind unknown (found 3)"),
        "{err}"
    );
    let first_unused = at + 24 + (2..9).find(|&i| blob[at + 24 + i] != 0).unwrap();
    expect(
        &patched(&blob, |b| b[at + 33] = 1),
        None,
        first_unused,
        |k| {
            matches!(
                *k,
                K::FeatureSpecListUnused {
                    kind: tickq_core::features::InputKind::Bars,
                    ..
                }
            )
        },
    );
    let err = expect(&patched(&blob, |b| b[at + 25] = 9), None, at + 25, |k| {
        *k == K::FeatureSpecListTooLong {
            field: SpecField::ReturnLagsMs,
            found: 9,
        }
    });
    assert!(
        err.to_string()
            .ends_with("feature spec list too long: `return_lags_ms` (found 9, at most 8)"),
        "{err}"
    );
    // return_lags_ms holds one window, so its second slot is unused.
    let slot = at + 40 + 32 + 4;
    let err = expect(&patched(&blob, |b| put_u32(b, slot, 7)), None, slot, |k| {
        *k == K::FeatureSpecSlotNotZero {
            field: SpecField::ReturnLagsMs,
        }
    });
    assert!(err.to_string().contains("`return_lags_ms`"), "{err}");
    for (patch, error) in [
        ((at, 0u32.to_le_bytes().to_vec()), SpecError::SessionGap),
        (
            (at + 4, 1u32.to_le_bytes().to_vec()),
            SpecError::Capacity { found: 1 },
        ),
        (
            (at + 8, f64::NAN.to_bits().to_le_bytes().to_vec()),
            SpecError::Unit {
                field: SpecField::TickSize,
                found: f64::NAN,
            },
        ),
        (
            (at + 40, 0u32.to_le_bytes().to_vec()),
            SpecError::TradeWindow {
                field: SpecField::ReturnLagsTrades,
                found: 0,
                capacity: 4096,
            },
        ),
    ] {
        let (p, bytes) = patch;
        let err = expect(
            &patched(&blob, |b| b[p..p + bytes.len()].copy_from_slice(&bytes)),
            None,
            at,
            |k| {
                *k == K::BadFeatureSpec {
                    error: FeatureSpecError(error),
                }
            },
        );
        // The spec's own message, which names the field.
        assert!(err.to_string().ends_with(&error.to_string()), "{err}");
    }
    let err = expect(
        &patched(&blob, |b| b[at + 24 + 7] = 0),
        None,
        at + 40 + 32 * 7,
        |k| matches!(k, K::FeatureSpecSlotNotZero { .. }),
    );
    assert!(err.to_string().contains("`vwap_windows_ms`"), "{err}");

    // Against the model: the count, then the names.
    let shorter = patched(&blob, |b| {
        b[at + 24 + 7] = 0;
        put_u32(b, at + 40 + 32 * 7, 0);
    });
    let err = expect(&shorter, None, off, |k| {
        *k == K::FeatureSpecCountMismatch {
            spec: 23,
            features: 24,
        }
    });
    assert!(
        err.to_string()
            .ends_with("feature spec count mismatch (spec features 23, model features 24)"),
        "{err}"
    );
    let meta = get_u32(&blob, h::METADATA_OFFSET.start) as usize;
    let name = meta
        + blob[meta..]
            .windows(6)
            .position(|w| w == b"ret_5t")
            .unwrap();
    let err = expect(
        &patched(&blob, |b| b[name + 4] = b'6'),
        None,
        name - 2,
        |k| *k == K::FeatureNameMismatch { index: 1 },
    );
    assert!(err.to_string().ends_with("(feature 1)"), "{err}");
    // A stored name longer or shorter than the spec's is refused too (prefixes do not match).
    let mut spec = feature_spec_model();
    spec.feature_names[0] = "ret_1".into();
    // The error names the first name's length prefix: after the model name ("test") and the name count.
    let meta = get_u32(
        &encode_unvalidated(&spec).unwrap(),
        h::METADATA_OFFSET.start,
    ) as usize;
    assert_eq!(
        encode(&spec).unwrap_err(),
        EncodeError::Invalid(BlobError {
            layer: None,
            layer_kind: None,
            offset: (meta + 2 + 4 + 2) as u32,
            kind: K::FeatureNameMismatch { index: 0 },
        })
    );
    spec.feature_names[0] = "ret_1tt".into();
    assert!(matches!(
        encode(&spec),
        Err(EncodeError::Invalid(BlobError {
            kind: K::FeatureNameMismatch { index: 0 },
            ..
        }))
    ));
    // The encoder refuses a spec that does not fit the model, with the loader's error.
    let mut spec = feature_spec_model();
    spec.feature_spec = Some(tickq_core::features::FeatureSpec::default());
    assert!(matches!(
        encode(&spec),
        Err(EncodeError::Invalid(BlobError {
            kind: K::FeatureSpecCountMismatch {
                spec: 29,
                features: 24
            },
            ..
        }))
    ));
    let written = encode_unvalidated(&spec).unwrap();
    assert_eq!(
        Model::load(&written).unwrap_err().kind,
        K::FeatureSpecCountMismatch {
            spec: 29,
            features: 24
        }
    );
}

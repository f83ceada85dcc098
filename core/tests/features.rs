//! The cargo features `sparse-formats` and `dynamic`: with them a blob using their formats loads (or fails for
//! another reason), without them it is refused at load with [`BlobErrorKind::NotCompiled`] at the field that
//! asks for them, never misread.
//!
//! Run both ways: `cargo test -p tickq-core` (default features) and
//! `cargo test -p tickq-core --no-default-features --features alloc`.

use crate::support::{entry, mlp_blob, patched};
use tickq_core::format::entry as e;
use tickq_core::{BlobErrorKind, Model};

/// A dense blob (Quantize, Dense, Dense) whose layer 1 claims weight format `code`, with a valid CRC.
fn with_format(code: u8) -> Vec<u8> {
    patched(&mlp_blob(8, 16, 3), |b| {
        b[entry(1) + e::WEIGHT_FORMAT] = code
    })
}

#[test]
fn sparse_formats_are_refused_without_the_feature() {
    for code in 1..=4u8 {
        let err = Model::load(&with_format(code)).err();
        if tickq_core::SPARSE_FORMATS {
            // The dense bytes are not a valid section of that format: some other error, never `NotCompiled`.
            let kind = err.map(|e| e.kind);
            assert!(
                !matches!(kind, Some(BlobErrorKind::NotCompiled { .. })),
                "format {code}: {kind:?}"
            );
        } else {
            let err = err.expect("refused");
            assert_eq!(
                err.kind,
                BlobErrorKind::NotCompiled {
                    what: "sparse weight format",
                    feature: "sparse-formats",
                    found: code,
                }
            );
            assert_eq!(err.layer, Some(1));
            assert_eq!(err.offset as usize, entry(1) + e::WEIGHT_FORMAT);
            let text = err.to_string();
            assert!(
                text.contains("sparse weight format (") && text.contains("`sparse-formats`"),
                "{text}"
            );
        }
    }
    // Formats 0 and 5 are always compiled in.
    Model::load(&with_format(0)).unwrap();
}

#[test]
fn dynamic_blobs_are_refused_without_the_feature() {
    // The dynamic flag on every layer (the loader wants all or none).
    let blob = patched(&mlp_blob(8, 16, 3), |b| {
        for i in 0..3 {
            b[entry(i) + e::FLAGS] = 1;
        }
    });
    let err = Model::load(&blob).err();
    if tickq_core::DYNAMIC {
        let kind = err.map(|e| e.kind);
        assert!(
            !matches!(kind, Some(BlobErrorKind::NotCompiled { .. })),
            "{kind:?}"
        );
    } else {
        let err = err.expect("refused");
        assert_eq!(
            err.kind,
            BlobErrorKind::NotCompiled {
                what: "dynamic quantization",
                feature: "dynamic",
                found: 1,
            }
        );
        assert_eq!(err.layer, Some(0));
        assert_eq!(err.offset as usize, entry(0) + e::FLAGS);
    }
}

/// The encoder's `Auto` and `Smallest` pick only formats this build can load.
#[test]
fn automatic_formats_stay_loadable() {
    use tickq_core::encode::{EncodeOptions, WeightFormat, encode_with};
    let spec = crate::support::every_kind_spec();
    for weight_format in [WeightFormat::Auto, WeightFormat::Smallest] {
        let blob = encode_with(&spec, &EncodeOptions::format(weight_format)).unwrap();
        let model = Model::load(&blob).unwrap();
        if !tickq_core::SPARSE_FORMATS {
            assert!(
                model
                    .layers()
                    .filter_map(|l| l.weight_format)
                    .all(|f| f.code() == 0)
            );
        }
    }
}

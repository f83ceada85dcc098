//! Every corruption of a real exported blob is caught at load time, or (if a
//! flip survives the CRC check by chance) the model still runs to completion.
//! The blobs are the exported one, the same model carrying the default
//! feature spec (format version 5), so every byte of that section is flipped,
//! and a dynamically quantized convolutional model (causal and strided Conv1d,
//! MaxPool1d, Flatten, Dense).

use tickq_core::decode::decode;
use tickq_core::encode::encode;
use tickq_core::features::FeatureSpec;
use tickq_core::{Model, Session};

use tickq_host::model::{Architecture, Sequential};
use tickq_host::quant::ModelQuantizer;
use tickq_host::steps::export_info;

use crate::support::fixture;

/// The exported blob, the same model with the default feature spec (whose
/// 29 columns are the fixture's features) and its column names, and a dynamic
/// conv blob over 4 ticks of the fixture's features.
fn blobs() -> [Vec<u8>; 3] {
    let blob = fixture().quantized.blob.clone();
    let mut spec = decode(&Model::load(&blob).expect("the fixture loads"));
    let feature_spec = FeatureSpec::default();
    assert_eq!(spec.feature_names.len(), feature_spec.feature_count());
    spec.feature_names.clear();
    feature_spec.for_each_feature(|n| spec.feature_names.push(n.to_string()));
    spec.feature_spec = Some(feature_spec);
    let with_spec = encode(&spec).expect("the model with a feature spec encodes");
    assert_eq!(
        Model::load(&with_spec).unwrap().feature_spec(),
        Some(feature_spec)
    );
    [blob, with_spec, dynamic_conv()]
}

/// A seeded convolutional model over 4 ticks of the fixture's features, quantized dynamically by the host.
fn dynamic_conv() -> Vec<u8> {
    let arch = Architecture::from_toml_str(
        "name = \"dynconv\"\nclasses = 3\n[input]\ntime_steps = 4\nfeatures = 29\n\
         [[layers]]\ntype = \"conv1d\"\nout = 6\nkernel = 2\npadding = \"causal\"\n[[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"conv1d\"\nout = 4\nkernel = 2\nstride = 2\n[[layers]]\ntype = \"relu6\"\n\
         [[layers]]\ntype = \"maxpool1d\"\nkernel = 2\n[[layers]]\ntype = \"flatten\"\n\
         [[layers]]\ntype = \"dense\"\nout = 3\n",
    )
    .expect("the conv architecture parses");
    let model = Sequential::new(arch, 5).expect("the conv model builds");
    let info = export_info(&model, &fixture().data);
    let q = ModelQuantizer::new(&model, &info)
        .dynamic_quantize()
        .expect("the conv model quantizes dynamically");
    assert!(Model::load(&q.blob).unwrap().is_dynamic());
    q.blob
}

/// The fixture's first test sample, repeated to fill `blob`'s input.
fn input_for(blob: &[u8]) -> Vec<f32> {
    let row = fixture().data.splits.test.x.row(0).to_vec();
    let len = Model::load(blob).expect("the blob loads").input_len();
    row.iter().copied().cycle().take(len).collect()
}

/// Rewrites the header's CRC-32 (bytes 12..16) over bytes `[0, 12) ++ [16, len)`,
/// as docs/BLOB.md specifies.
fn reseal(blob: &mut [u8]) {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut digest = crc.digest();
    digest.update(&blob[..12]);
    digest.update(&blob[16..]);
    blob[12..16].copy_from_slice(&digest.finalize().to_le_bytes());
}

fn load_and_run_if_valid(bytes: &[u8], input: &[f32]) {
    if let Ok(model) = Model::load(bytes) {
        let mut arena = vec![0u8; model.arena_bytes()];
        if let Some(spec) = model.feature_spec() {
            assert_eq!(spec.feature_count(), model.input_shape().1);
            assert_eq!(spec.validate(), Ok(()));
        }
        let mut session = Session::new(&model, &mut arena).expect("exact arena accepted");
        let p = session.run(input);
        assert!(p.signal() < model.classes());
    }
}

#[test]
fn every_byte_flip_is_rejected_or_harmless() {
    for blob in &blobs() {
        every_byte_flip_of(blob);
    }
}

fn every_byte_flip_of(blob: &[u8]) {
    let input = input_for(blob);
    let mut copy = blob.to_vec();
    let mut rejected = 0usize;
    for i in 0..copy.len() {
        for mask in [0xFFu8, 0x01, 0x80] {
            copy[i] ^= mask;
            if Model::load(&copy).is_err() {
                rejected += 1;
            }
            load_and_run_if_valid(&copy, &input);
            copy[i] ^= mask;
        }
    }
    assert_eq!(copy, blob);
    // A CRC-32 catches every flip of one byte.
    assert_eq!(
        rejected,
        3 * blob.len(),
        "a single-byte flip slipped through the CRC"
    );
}

#[test]
fn every_truncation_is_rejected() {
    for blob in &blobs() {
        for len in 0..blob.len() {
            let err = Model::load(&blob[..len]);
            assert!(err.is_err(), "truncated blob of {len} bytes loaded");
        }
    }
}

#[test]
fn flips_that_bypass_the_crc_are_still_validated() {
    // Re-seal each corrupted copy with a correct CRC so the structural checks,
    // not the checksum, must catch (or tolerate) it.
    for blob in &blobs() {
        resealed_flips_of(blob);
    }
}

fn resealed_flips_of(blob: &[u8]) {
    let input = input_for(blob);
    let mut copy = blob.to_vec();
    for i in 0..copy.len() {
        if (12..16).contains(&i) {
            continue; // the CRC field itself
        }
        for mask in [0xFFu8, 0x01, 0x80] {
            copy[i] ^= mask;
            reseal(&mut copy);
            load_and_run_if_valid(&copy, &input);
            copy[i] ^= mask;
        }
    }
}

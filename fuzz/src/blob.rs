//! Blobs through `tickq_core`.

use tickq_core::decode::decode;
use tickq_core::encode::{EncodeOptions, Target, WeightFormat, encode_with};
use tickq_core::format::{HEADER_LEN, compute_crc, header};
use tickq_core::{Backend, Model, Session};

/// The largest arena the harness allocates.
///
/// A valid blob may declare tensors of up to 65535 x 65535 values and ask for gigabytes: [`Model::arena_bytes`]
/// reports that exactly, and allocating the arena is the caller's decision, so larger models are skipped rather
/// than run into libFuzzer's memory limit.
pub const MAX_ARENA: usize = 1 << 20;

/// The largest input (`T * F` values) the harness builds, for the same reason as [`MAX_ARENA`].
pub const MAX_INPUT: usize = 1 << 16;

/// Sets the header's total length to `blob.len()` and recomputes its CRC, as the encoder would.
///
/// Blobs shorter than the header are left alone: the loader refuses them before it reads either field.
pub fn reseal(blob: &mut [u8]) {
    if blob.len() < HEADER_LEN {
        return;
    }
    let len = u32::try_from(blob.len()).unwrap_or(u32::MAX);
    blob[header::TOTAL_LEN].copy_from_slice(&len.to_le_bytes());
    let crc = compute_crc(blob);
    blob[header::CRC].copy_from_slice(&crc.to_le_bytes());
}

/// Loads `data` as it is.
pub fn raw(data: &[u8]) {
    check(data);
}

/// Re-seals a copy of `data` ([`reseal`]) and loads it.
pub fn sealed(data: &[u8]) {
    let mut blob = data.to_vec();
    reseal(&mut blob);
    check(&blob);
}

/// Feature values the input generator draws from besides small ones: signed zeros, the int8 range's edges,
/// subnormals, the largest finite values, infinities and NaN.
const SPECIAL: [f32; 16] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    127.0,
    -128.0,
    1.0e-40,
    f32::MIN_POSITIVE,
    3.0e38,
    -3.0e38,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    1.0e9,
    -1.0e9,
];

/// `n` features derived from `bytes`, read backwards (the metadata at a blob's end is where mutations leave the
/// model valid): a byte with the top bit set picks a [`SPECIAL`] value, others a small multiple of 1/16.
fn features(bytes: &[u8], n: usize) -> Vec<f32> {
    if bytes.is_empty() {
        return vec![0.0; n];
    }
    (0..n)
        .map(|i| {
            let b = bytes[bytes.len() - 1 - i % bytes.len()];
            if b & 0x80 != 0 {
                SPECIAL[usize::from(b & 0x0F)]
            } else {
                f32::from(b as i8 - 64) / 16.0
            }
        })
        .collect()
}

/// What one run gives: the logits, the signal and the exponent.
type Outcome = (Vec<i8>, usize, i32);

/// Everything one model computes on the inputs derived from its blob, in a fixed order.
fn outcomes(model: &Model<'_>, arena: &mut [u8], features: &[f32], raw: &[i8]) -> Vec<Outcome> {
    let mut session = match Session::new(model, arena) {
        Ok(s) => s,
        Err(e) => panic!(
            "an arena of arena_bytes() = {} was refused: {e}",
            model.arena_bytes()
        ),
    };
    let mut all = Vec::new();
    let mut push = |p: tickq_core::Prediction<'_>| {
        assert!(p.signal() < model.classes().max(1), "signal out of range");
        assert_eq!(p.logits().len(), model.classes());
        all.push((p.logits().to_vec(), p.signal(), p.exponent()));
    };
    push(session.run(features));
    // Missing values are the training mean; extra values are ignored.
    push(session.run(&features[..features.len() / 2]));
    push(session.run(&[]));
    let mut longer = features.to_vec();
    longer.extend_from_slice(&[f32::NAN, 1.0]);
    push(session.run(&longer));
    push(session.run_quantized(raw));
    push(session.run_quantized(&raw[..raw.len() / 3]));
    all
}

/// Loads `blob`; if it loads, reads every summary, decodes it, runs it on every backend the CPU has (which must
/// all give the generic kernels' bytes), and checks that the decoded model, encoded again, computes the same.
pub fn check(blob: &[u8]) {
    let Ok(mut model) = Model::load(blob) else {
        return;
    };
    let layers = model.layers().count();
    assert!((1..=tickq_core::MAX_LAYERS).contains(&layers));
    let meta = model.metadata();
    let _ = (meta.name(), meta.tickq_version(), meta.data_hash());
    let _ = meta.feature_names().chain(meta.label_names()).count();
    let _ = (model.input_quant(), model.output_quant(), model.crc32());
    // A feature spec that loaded is valid, as wide as the input and named as the metadata names the features.
    let feature_spec = model.feature_spec();
    if let Some(fs) = feature_spec {
        assert!(fs.validate().is_ok(), "the loaded feature spec is invalid");
        assert_eq!(fs.feature_count(), model.input_shape().1);
        assert!(model.version() >= tickq_core::format::FEATURE_SPEC_VERSION);
        let mut names = meta.feature_names();
        fs.for_each_feature(|name| {
            assert_eq!(names.next(), Some(name.to_string().as_str()));
        });
    }
    if model.arena_bytes() > MAX_ARENA || model.input_len() > MAX_INPUT {
        return;
    }
    let spec = decode(&model);
    assert_eq!(
        spec.feature_spec, feature_spec,
        "decode keeps the feature spec"
    );
    let n = model.input_len();
    let features = features(blob, n);
    let raw: Vec<i8> = blob.iter().take(n).map(|&b| b as i8).collect();
    let quantized = model.quantize_inputs(&features);
    assert_eq!(quantized.len(), n);
    let mut arena = vec![0u8; model.arena_bytes()];

    if model.set_backend(Backend::Generic).is_err() {
        panic!("the generic backend is always available");
    }
    let reference = outcomes(&model, &mut arena, &features, &raw);
    if !model.is_dynamic() {
        // The batch quantizer feeds the first integer layer exactly what `run` does.
        let mut session = Session::new(&model, &mut arena).unwrap_or_else(|e| panic!("{e}"));
        let direct = session.run_quantized(&quantized);
        let via = (direct.logits().to_vec(), direct.signal(), direct.exponent());
        assert_eq!(
            via, reference[0],
            "run_quantized(quantize_inputs(x)) differs from run(x)"
        );
    }
    for backend in Backend::available() {
        if model.set_backend(backend).is_err() {
            panic!("{backend} is available but cannot be set");
        }
        let got = outcomes(&model, &mut arena, &features, &raw);
        assert_eq!(got, reference, "{backend} differs from generic");
    }

    // `encode(&decode(&model))` describes the same model: in the blocked layout (which holds every model) it
    // must compute the same bytes. An encoder refusal is not a failure: its checks may be stricter than the
    // loader's for a layout the blob did not use.
    let options = EncodeOptions {
        weight_format: WeightFormat::Blocked,
        target: Target::X86_64,
    };
    if let Ok(again) = encode_with(&spec, &options) {
        let Ok(mut twin) = Model::load(&again) else {
            panic!("encode_with returned a blob that does not load");
        };
        assert!(
            twin.arena_bytes() <= MAX_ARENA,
            "the re-encoded model needs a larger arena"
        );
        assert_eq!(
            twin.feature_spec(),
            feature_spec,
            "the re-encoded model lost its feature spec"
        );
        if twin.set_backend(Backend::Generic).is_err() {
            panic!("the generic backend is always available");
        }
        let mut arena = vec![0u8; twin.arena_bytes()];
        let got = outcomes(&twin, &mut arena, &features, &raw);
        assert_eq!(got, reference, "the decoded and re-encoded model differs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reseal_makes_the_crc_and_length_match() {
        let mut blob = vec![0u8; 80];
        blob[..8].copy_from_slice(&tickq_core::format::MAGIC);
        reseal(&mut blob);
        assert_eq!(u32::from_le_bytes(blob[16..20].try_into().unwrap()), 80);
        assert_eq!(
            u32::from_le_bytes(blob[12..16].try_into().unwrap()),
            compute_crc(&blob)
        );
    }
}

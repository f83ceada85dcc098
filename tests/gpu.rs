//! The GPU int8 evaluator on the bundled ticks: the same int8 logits as tickq-core for every sample.
//!
//! The demo MLP (and pruned sparse and 2:4 versions of it) run over the whole test split of the bundled file;
//! convolutional models, one of them with lookup-table activations and every pool kind, over a windowed slice.
//! Without a GPU adapter these tests fail in CI (`CI=true`) and skip elsewhere (`tickq_gpu::testing`).

use std::sync::OnceLock;

use ndarray::ArrayView2;
use tickq_core::encode::{EncodeOptions, OpSpec, WeightFormat, encode_with};
use tickq_core::{Model, WeightLayout};
use tickq_gpu::testing::context_or_skip;
use tickq_gpu::{GpuContext, Int8Evaluator};
use tickq_host::data::{self, DatasetConfig};
use tickq_host::eval;
use tickq_host::model::{Architecture, Sequential};
use tickq_host::quant::QuantConfig;
use tickq_host::steps::{self, PreparedData};

use crate::support::{SLICE_TRADES, fixture};

/// The bundled file prepared with the default settings: its test split is "the bundled test set".
fn full_data() -> &'static PreparedData {
    static DATA: OnceLock<PreparedData> = OnceLock::new();
    DATA.get_or_init(|| {
        steps::prepare_data(
            &data::default_data_path().expect("bundled data"),
            &DatasetConfig::default(),
            None,
        )
        .expect("bundled data prepares")
    })
}

/// Evaluates `blob` over every row of `x` on the CPU (tickq-core sessions) and the GPU, and returns the number
/// of samples whose logits differ, after printing it with the adapter's name.
fn mismatches(ctx: &GpuContext, what: &str, blob: &[u8], x: ArrayView2<'_, f32>) -> usize {
    let model = Model::load(blob).expect("blob loads");
    let (_, want) = eval::int8_predict(&model, x);
    let features: Vec<f32> = x.iter().copied().collect();
    let mut gpu = Int8Evaluator::new(ctx, blob).expect("the GPU takes the blob");
    let got = gpu.evaluate(&features, x.nrows()).expect("GPU evaluation");
    assert_eq!(got.len(), want.len());
    let classes = model.classes();
    let bad = got
        .chunks_exact(classes)
        .zip(want.chunks_exact(classes))
        .filter(|(g, w)| g != w)
        .count();
    let distinct: std::collections::BTreeSet<i8> = want.iter().copied().collect();
    eprintln!(
        "{what}: {} samples on {}: {bad} mismatches ({} distinct logit values)",
        x.nrows(),
        ctx.adapter_name(),
        distinct.len()
    );
    assert!(
        distinct.len() > 8,
        "{what}: degenerate logits, the comparison would prove little"
    );
    bad
}

/// Re-encodes `blob` with its Dense/Conv1d weights pruned: the smallest `zeros` share of each row by magnitude
/// (or, with `two_four`, the two smallest of every group of four) set to zero.
fn pruned(blob: &[u8], zeros: f64, two_four: bool, format: WeightFormat) -> Vec<u8> {
    pruned_for(blob, zeros, two_four, EncodeOptions::format(format))
}

/// [`pruned`] encoded with `options` (a weight format and a target).
fn pruned_for(blob: &[u8], zeros: f64, two_four: bool, options: EncodeOptions) -> Vec<u8> {
    let mut spec = tickq_core::decode::decode(&Model::load(blob).unwrap());
    for layer in &mut spec.layers {
        let (weights, rows) = match &mut layer.op {
            OpSpec::Dense {
                weights,
                out_features,
                ..
            } => (weights, *out_features),
            OpSpec::Conv1d {
                weights,
                out_channels,
                ..
            } => (weights, *out_channels),
            _ => continue,
        };
        let row_len = weights.len() / rows;
        for row in weights.chunks_exact_mut(row_len) {
            if two_four && row_len % 4 == 0 {
                for g in row.chunks_exact_mut(4) {
                    let mut order = [0usize, 1, 2, 3];
                    order.sort_by_key(|&i| g[i].unsigned_abs());
                    g[order[0]] = 0;
                    g[order[1]] = 0;
                }
            } else {
                let mut mags: Vec<u8> = row.iter().map(|w| w.unsigned_abs()).collect();
                mags.sort_unstable();
                let cut = mags[((row_len as f64 * zeros) as usize).min(row_len - 1)];
                row.iter_mut()
                    .filter(|w| w.unsigned_abs() < cut)
                    .for_each(|w| *w = 0);
            }
        }
    }
    encode_with(&spec, &options).expect("pruned spec encodes")
}

fn formats(blob: &[u8]) -> Vec<WeightLayout> {
    Model::load(blob)
        .unwrap()
        .layers()
        .filter_map(|l| l.weight_format)
        .collect()
}

#[test]
fn demo_model_gpu_logits_equal_core_on_the_whole_bundled_test_set() {
    let Some(ctx) =
        context_or_skip("demo_model_gpu_logits_equal_core_on_the_whole_bundled_test_set")
    else {
        return;
    };
    let test = &full_data().splits.test;
    let blob = &fixture().quantized.blob;
    assert_eq!(mismatches(&ctx, "demo MLP", blob, test.x.view()), 0);
}

#[test]
fn pruned_and_re_encoded_demo_models_match_core_on_the_bundled_test_set() {
    let Some(ctx) = context_or_skip("pruned_sparse_and_two_four_demo_models") else {
        return;
    };
    let test = &full_data().splits.test;
    let blob = &fixture().quantized.blob;
    let sparse = pruned(blob, 0.8, false, WeightFormat::Sparse);
    assert!(formats(&sparse).iter().all(|f| *f == WeightLayout::Sparse));
    assert_eq!(
        mismatches(&ctx, "demo MLP, 80 % sparse", &sparse, test.x.view()),
        0
    );
    // The first layer's rows (29 inputs) cannot be N:M; auto keeps them in another format. On a scalar
    // microcontroller target, where a 2:4 row does half the work of a dense one, auto picks N:M for the others.
    let options = EncodeOptions {
        weight_format: WeightFormat::Auto,
        target: tickq_core::encode::Target::CortexM0,
    };
    let nm = pruned_for(blob, 0.5, true, options);
    let f = formats(&nm);
    assert!(f.contains(&WeightLayout::NM { n: 2, m: 4 }), "{f:?}");
    assert_eq!(mismatches(&ctx, "demo MLP, 2:4", &nm, test.x.view()), 0);
    // The Dense-only formats (column-sparse, bit-packed column-sparse, the Cortex-M4 DSP layout) and the two
    // other dense layouts.
    for (zeros, format, layout) in [
        (0.8, WeightFormat::Columns, WeightLayout::Columns),
        (0.8, WeightFormat::Packed, WeightLayout::Packed),
        (0.0, WeightFormat::DenseDsp, WeightLayout::DenseDsp),
        (0.0, WeightFormat::DenseDot, WeightLayout::DenseDot),
        (0.0, WeightFormat::Blocked, WeightLayout::Blocked),
    ] {
        let blob = pruned(blob, zeros, false, format);
        assert!(formats(&blob).iter().all(|f| *f == layout), "{format}");
        let what = format!("demo MLP, {format}");
        assert_eq!(mismatches(&ctx, &what, &blob, test.x.view()), 0);
    }
}

#[test]
fn dynamic_demo_model_matches_core_logits_and_exponents_on_the_bundled_test_set() {
    let Some(ctx) = context_or_skip("dynamic_demo_model_matches_core") else {
        return;
    };
    let f = fixture();
    let q = steps::quantize_model_dynamic(&f.model, &f.data).expect("quantizes dynamically");
    let model = Model::load(&q.blob).unwrap();
    assert!(model.is_dynamic());
    let x = full_data().splits.test.x.view();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut session = tickq_core::Session::new(&model, &mut arena).unwrap();
    let (mut want, mut want_e) = (Vec::new(), Vec::new());
    for row in x.rows() {
        let p = session.run(&row.to_vec());
        want.extend_from_slice(p.logits());
        want_e.push(p.exponent());
    }
    let features: Vec<f32> = x.iter().copied().collect();
    let mut gpu = Int8Evaluator::new(&ctx, &q.blob).unwrap();
    let (got, got_e) = gpu.evaluate_with_exponents(&features, x.nrows()).unwrap();
    let bad = (0..x.nrows())
        .filter(|&i| got[3 * i..3 * i + 3] != want[3 * i..3 * i + 3] || got_e[i] != want_e[i])
        .count();
    let exps: std::collections::BTreeSet<i32> = want_e.iter().copied().collect();
    eprintln!(
        "dynamic demo MLP: {} samples on {}: {bad} mismatches ({} distinct exponents)",
        x.nrows(),
        ctx.adapter_name(),
        exps.len()
    );
    assert_eq!(bad, 0);
}

/// An untrained (seeded) model of `arch`, quantized with calibration on a windowed slice of the bundled ticks,
/// and that slice's data.
fn windowed_blob(arch: &str, time_steps: usize) -> (Vec<u8>, PreparedData) {
    let trades = data::load_trades(&data::default_data_path().expect("bundled data"))
        .expect("bundled data loads");
    let data = steps::prepare_from_trades(
        &trades[..SLICE_TRADES],
        "bundled slice".into(),
        [0; 32],
        &DatasetConfig {
            time_steps,
            ..DatasetConfig::default()
        },
        None,
    )
    .expect("slice prepares");
    let arch = Architecture::from_toml_str(arch).expect("arch parses");
    let model = Sequential::new(arch, 7).expect("model builds");
    let q = steps::quantize_model(&model, &data, &QuantConfig::default()).expect("quantizes");
    (q.blob, data)
}

#[test]
fn conv_window_model_matches_core_dense_and_sparse() {
    let Some(ctx) = context_or_skip("conv_window_model_matches_core_dense_and_sparse") else {
        return;
    };
    let arch = include_str!("../host/models/conv-window.toml");
    let (blob, data) = windowed_blob(arch, 32);
    let x = data.splits.test.x.view();
    assert_eq!(mismatches(&ctx, "conv-window", &blob, x), 0);
    let sparse = pruned(&blob, 0.7, false, WeightFormat::Sparse);
    assert_eq!(mismatches(&ctx, "conv-window, 70 % sparse", &sparse, x), 0);
}

/// Causal dilated and strided convolutions, Tanh and Sigmoid tables, average, max and global average pooling.
const LUT_POOL_ARCH: &str = r#"
name = "gpu-lut-pool"
classes = 3
[input]
time_steps = 16
features = 29
[[layers]]
type = "conv1d"
out = 12
kernel = 3
dilation = 2
padding = "causal"
[[layers]]
type = "tanh"
[[layers]]
type = "avgpool1d"
kernel = 2
stride = 2
[[layers]]
type = "conv1d"
out = 8
kernel = 3
stride = 1
[[layers]]
type = "sigmoid"
[[layers]]
type = "maxpool1d"
kernel = 2
[[layers]]
type = "global_avg_pool"
[[layers]]
type = "dense"
out = 3
"#;

#[test]
fn lut_and_pooling_model_matches_core() {
    let Some(ctx) = context_or_skip("lut_and_pooling_model_matches_core") else {
        return;
    };
    let (blob, data) = windowed_blob(LUT_POOL_ARCH, 16);
    let kinds: Vec<&str> = Model::load(&blob)
        .unwrap()
        .layers()
        .map(|l| l.kind.name())
        .collect();
    for k in ["Lut", "AvgPool1d", "MaxPool1d", "GlobalAvgPool", "Conv1d"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert_eq!(
        mismatches(&ctx, "lut-pool", &blob, data.splits.test.x.view()),
        0
    );
}

//! Tests of `quant`.

use super::*;
use crate::model::Architecture;
use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tickq_core::requant::QuantMultiplier;
use tickq_core::{Model, Session};

fn inputs(n: usize, width: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, width), |_| {
        (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7
    })
}

fn info(features: usize) -> ExportInfo {
    ExportInfo {
        name: "test".into(),
        feature_names: (0..features).map(|i| format!("f{i}")).collect(),
        label_names: vec!["down".into(), "flat".into(), "up".into()],
        mean: vec![0.0; features],
        std: vec![1.0; features],
        data_hash: [7; 32],
    }
}

/// Quantizes `arch` with random weights and compares the core's
/// dequantized logits with the f32 model's on fresh inputs. Returns the
/// argmax agreement, the largest logit error relative to the largest
/// |logit|, and the root-mean-square logit error relative to the logits'
/// root-mean-square.
fn compare(arch: &str, seed: u64) -> (f64, f32, f32) {
    compare_with(arch, seed, &QuantConfig::default())
}

fn compare_with(arch: &str, seed: u64, config: &QuantConfig) -> (f64, f32, f32) {
    let arch = Architecture::from_toml_str(arch).unwrap();
    let features = arch.input.features;
    let width = arch.input.time_steps * features;
    let model = Sequential::new(arch, seed).unwrap();
    let calibration = inputs(2048, width, seed + 1);
    let q = static_quantize(&model, calibration.view(), &info(features), config).unwrap();
    let test = inputs(500, width, seed + 2);
    let expected = model.forward(test.view());
    let core = Model::load(&q.blob).unwrap();
    let mut arena = vec![0u8; core.arena_bytes()];
    let mut session = Session::new(&core, &mut arena).unwrap();
    let range = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let mut agree = 0usize;
    let mut worst = 0f32;
    let mut sq_err = 0f64;
    let mut scores = vec![0f32; core.classes()];
    for (row, want) in test.rows().into_iter().zip(expected.rows()) {
        let p = session.run(row.as_slice().unwrap());
        p.scores(&mut scores);
        for (got, want) in scores.iter().zip(want.iter()) {
            worst = worst.max((got - want).abs() / range);
            sq_err += f64::from(got - want).powi(2);
        }
        let want_arg = want
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap();
        agree += usize::from(p.signal() == want_arg);
    }
    let rms_logit = (expected.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>()
        / expected.len() as f64)
        .sqrt();
    let rms_err = (sq_err / expected.len() as f64).sqrt();
    (
        agree as f64 / 500.0,
        worst,
        (rms_err / rms_logit.max(1e-9)) as f32,
    )
}

const MLP: &str = r#"
name = "mlp"
classes = 3
[input]
time_steps = 1
features = 12
[[layers]]
type = "dense"
out = 32
[[layers]]
type = "relu6"
[[layers]]
type = "dense"
out = 16
[[layers]]
type = "tanh"
[[layers]]
type = "dense"
out = 3
"#;

/// Exercises causal and dilated convs, a sigmoid table, max pooling and
/// Flatten, whose channel-major to time-major column permutation must be
/// right for the results to agree at all.
const CONV_FLATTEN: &str = r#"
name = "conv"
classes = 3
[input]
time_steps = 16
features = 4
[[layers]]
type = "conv1d"
out = 8
kernel = 3
padding = "causal"
[[layers]]
type = "relu"
[[layers]]
type = "conv1d"
out = 8
kernel = 3
stride = 2
dilation = 2
[[layers]]
type = "sigmoid"
[[layers]]
type = "maxpool1d"
kernel = 2
[[layers]]
type = "flatten"
[[layers]]
type = "dense"
out = 3
"#;

const CONV_POOL: &str = r#"
name = "conv-pool"
classes = 3
[input]
time_steps = 24
features = 3
[[layers]]
type = "conv1d"
out = 6
kernel = 5
[[layers]]
type = "clamp"
min = -1.0
max = 2.0
[[layers]]
type = "avgpool1d"
kernel = 2
[[layers]]
type = "relu"
[[layers]]
type = "global_avg_pool"
[[layers]]
type = "dense"
out = 3
"#;

#[test]
fn mlp_with_fused_and_table_activations_matches_f32() {
    let (agree, worst, rms) = compare(MLP, 3);
    eprintln!("mlp: agreement {agree}, worst {worst}, rms {rms}");
    let minmax = QuantConfig {
        observer: observer::ObserverKind::MinMax,
        ..QuantConfig::default()
    };
    let (agree_mm, _, rms_mm) = compare_with(MLP, 3, &minmax);
    assert!(
        agree_mm >= 0.95 && rms_mm < 0.06,
        "min-max: {agree_mm} {rms_mm}"
    );
    assert!(agree >= 0.95, "agreement {agree}");
    assert!(worst < 0.2, "worst relative logit error {worst}");
    assert!(rms < 0.06, "relative RMS logit error {rms}");
}

#[test]
fn conv_flatten_model_matches_f32() {
    let (agree, worst, rms) = compare(CONV_FLATTEN, 5);
    eprintln!("conv-flatten: agreement {agree}, worst {worst}, rms {rms}");
    assert!(agree >= 0.95, "agreement {agree}");
    assert!(worst < 0.2, "worst relative logit error {worst}");
    assert!(rms < 0.06, "relative RMS logit error {rms}");
}

#[test]
fn conv_pool_model_matches_f32() {
    let (agree, worst, rms) = compare(CONV_POOL, 9);
    eprintln!("conv-pool: agreement {agree}, worst {worst}, rms {rms}");
    assert!(agree >= 0.95, "agreement {agree}");
    assert!(worst < 0.2, "worst relative logit error {worst}");
    assert!(rms < 0.06, "relative RMS logit error {rms}");
}

#[test]
fn standardization_is_folded_into_the_input_quantizer() {
    let arch = Architecture::from_toml_str(MLP).unwrap();
    let model = Sequential::new(arch, 1).unwrap();
    let normalized = inputs(1000, 12, 4);
    let mut info = info(12);
    info.mean = (0..12).map(|i| 100.0 + i as f32).collect();
    info.std = (0..12).map(|i| 0.5 + i as f32 * 0.25).collect();
    let q = static_quantize(&model, normalized.view(), &info, &QuantConfig::default()).unwrap();
    let core = Model::load(&q.blob).unwrap();
    let mut arena = vec![0u8; core.arena_bytes()];
    let mut session = Session::new(&core, &mut arena).unwrap();
    let expected = model.predict(normalized.view());
    let mut agree = 0;
    for (row, want) in normalized.rows().into_iter().zip(&expected) {
        let raw: Vec<f32> = row
            .iter()
            .enumerate()
            .map(|(f, v)| v * info.std[f] + info.mean[f])
            .collect();
        agree += usize::from(session.run(&raw).signal() == *want);
    }
    assert!(agree >= 950, "raw-feature agreement {agree}/1000");
}

#[test]
fn bad_calibration_data_is_refused() {
    let arch = Architecture::from_toml_str(MLP).unwrap();
    let model = Sequential::new(arch, 1).unwrap();
    let mut x = inputs(10, 12, 4);
    x[[3, 5]] = f32::NAN;
    let err = static_quantize(&model, x.view(), &info(12), &QuantConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("sample 3 column 5"), "{err}");
    let narrow = inputs(10, 11, 4);
    let err = static_quantize(&model, narrow.view(), &info(12), &QuantConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("11 values"), "{err}");
    let empty = inputs(0, 12, 4);
    assert!(static_quantize(&model, empty.view(), &info(12), &QuantConfig::default()).is_err());
}

#[test]
fn non_finite_weights_name_the_layer() {
    let arch = Architecture::from_toml_str(MLP).unwrap();
    let mut model = Sequential::new(arch, 1).unwrap();
    if let Layer::Dense(d) = &mut model.layers[2] {
        d.weight[[4, 1]] = f32::INFINITY;
    }
    let err = static_quantize(
        &model,
        inputs(10, 12, 4).view(),
        &info(12),
        &QuantConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("layer 2") && err.contains("channel 4"),
        "{err}"
    );
}

fn all_multipliers(spec: &ModelSpec) -> Vec<QuantMultiplier> {
    spec.layers
        .iter()
        .flat_map(|l| match &l.op {
            OpSpec::Dense { requant, .. } | OpSpec::Conv1d { requant, .. } => requant.clone(),
            OpSpec::AvgPool1d { requant, .. } | OpSpec::GlobalAvgPool { requant } => {
                vec![*requant]
            }
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn fpga_backend_makes_every_requantization_a_shift() {
    let fpga = QuantConfig {
        backend: Backend::Fpga,
        ..QuantConfig::default()
    };
    for (arch, seed) in [(MLP, 3), (CONV_FLATTEN, 5)] {
        let (agree, _, rms) = compare_with(arch, seed, &fpga);
        assert!(agree >= 0.9, "fpga agreement {agree}");
        assert!(rms < 0.15, "fpga rms {rms}");
        let model = Sequential::new(Architecture::from_toml_str(arch).unwrap(), seed).unwrap();
        let width = model.arch.input.time_steps * model.arch.input.features;
        let q = static_quantize(
            &model,
            inputs(512, width, 1).view(),
            &info(model.arch.input.features),
            &fpga,
        )
        .unwrap();
        let ms = all_multipliers(&q.spec);
        assert!(!ms.is_empty());
        for m in ms {
            assert_eq!(m.multiplier(), 1 << 30, "{m:?} is not a pure shift");
        }
        for l in &q.spec.layers {
            assert_eq!(
                l.out_scale.log2().fract(),
                0.0,
                "scale {} is not a power of two",
                l.out_scale
            );
        }
    }
    // A pool window that is not a power of two cannot be a shift.
    let err = compare_with_result(CONV_POOL, 9, &fpga)
        .unwrap_err()
        .to_string();
    assert!(err.contains("power-of-two"), "{err}");
}

fn compare_with_result(
    arch: &str,
    seed: u64,
    config: &QuantConfig,
) -> Result<QuantizedModel, QuantError> {
    let model = Sequential::new(Architecture::from_toml_str(arch).unwrap(), seed).unwrap();
    let width = model.arch.input.time_steps * model.arch.input.features;
    static_quantize(
        &model,
        inputs(512, width, 1).view(),
        &info(model.arch.input.features),
        config,
    )
}

#[test]
fn reduce_range_keeps_activations_in_seven_bits() {
    let reduced = QuantConfig {
        reduce_range: true,
        ..QuantConfig::default()
    };
    let (agree, _, _) = compare_with(CONV_FLATTEN, 5, &reduced);
    assert!(agree >= 0.95, "reduced-range agreement {agree}");
    let q = compare_with_result(MLP, 3, &reduced).unwrap();
    for l in &q.spec.layers {
        if !matches!(l.op, OpSpec::MaxPool1d { .. } | OpSpec::Flatten) {
            assert!(
                l.act_min >= -64 && l.act_max <= 63,
                "{:?}",
                (l.act_min, l.act_max)
            );
        }
        if let OpSpec::Lut { table } = &l.op {
            assert!(table.iter().all(|v| (-64..=63).contains(v)));
        }
    }
}

#[test]
fn quint8_uses_the_same_grid_as_qint8() {
    let a = compare_with_result(MLP, 3, &QuantConfig::default()).unwrap();
    let b = compare_with_result(
        MLP,
        3,
        &QuantConfig {
            dtype: QuantDtype::QUInt8,
            ..QuantConfig::default()
        },
    )
    .unwrap();
    assert_eq!(a.blob, b.blob);
}

#[test]
fn every_observer_quantizes_a_model() {
    for observer in [
        observer::ObserverKind::MinMax,
        observer::ObserverKind::MovingAverageMinMax {
            averaging_constant: 0.1,
        },
        observer::ObserverKind::Percentile { percentile: 99.9 },
        observer::ObserverKind::Mse,
        observer::ObserverKind::KlEntropy,
    ] {
        let cfg = QuantConfig {
            observer,
            ..QuantConfig::default()
        };
        let (agree, _, _) = compare_with(CONV_FLATTEN, 5, &cfg);
        assert!(agree >= 0.9, "{observer}: agreement {agree}");
    }
}

#[test]
fn suspicious_calibration_data_gives_warnings() {
    let model = Sequential::new(Architecture::from_toml_str(MLP).unwrap(), 1).unwrap();
    let few = static_quantize(
        &model,
        inputs(40, 12, 4).view(),
        &info(12),
        &QuantConfig::default(),
    )
    .unwrap();
    assert!(
        few.warnings
            .iter()
            .any(|w| w.contains("only 40 calibration samples")),
        "{:?}",
        few.warnings
    );
    let mut shifted = inputs(1000, 12, 4);
    shifted.column_mut(2).mapv_inplace(|v| v + 5.0);
    let q = static_quantize(&model, shifted.view(), &info(12), &QuantConfig::default()).unwrap();
    assert!(
        q.warnings.iter().any(|w| w.contains("feature 2 `f2`")),
        "{:?}",
        q.warnings
    );
    let fine = static_quantize(
        &model,
        inputs(1000, 12, 4).view(),
        &info(12),
        &QuantConfig::default(),
    )
    .unwrap();
    assert!(fine.warnings.is_empty(), "{:?}", fine.warnings);
    let err = static_quantize(
        &model,
        inputs(5, 12, 4).view(),
        &info(12),
        &QuantConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("5 samples"), "{err}");
}

//! Tests of `quant`.

use super::*;
use crate::model::{Architecture, LayerSpec};
use crate::test_support::*;
use tickq_core::requant::QuantMultiplier;
use tickq_core::{Model, Session};

/// Quantizes `arch` with random weights and compares the core's
/// dequantized logits with the f32 model's on fresh inputs. Returns the
/// argmax agreement, the largest logit error relative to the largest
/// |logit|, and the root-mean-square logit error relative to the logits'
/// root-mean-square.
fn compare(arch: Architecture, seed: u64) -> (f64, f32, f32) {
    compare_with(arch, seed, &QuantConfig::default())
}

fn compare_with(arch: Architecture, seed: u64, config: &QuantConfig) -> (f64, f32, f32) {
    let features = arch.input.features;
    let width = arch.input.time_steps * features;
    let model = Sequential::new(arch, seed).unwrap();
    let calibration = random_inputs(2048, width, seed + 1);
    let q = static_quantize(&model, calibration.view(), &export_info(features), config).unwrap();
    let test = random_inputs(500, width, seed + 2);
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

/// Dense layers with fused (ReLU6) and table (tanh) activations.
fn mlp_net() -> Architecture {
    mlp(12, &[(32, ReLU6), (16, Tanh)])
}

/// Exercises causal and dilated convs, a sigmoid table, max pooling and
/// Flatten, whose channel-major to time-major column permutation must be
/// right for the results to agree at all.
fn conv_flatten() -> Architecture {
    let layers = [
        conv(8, 3).causal(),
        ReLU,
        conv(8, 3).stride(2).dilation(2),
        Sigmoid,
        max_pool(2),
        Flatten,
        dense(3),
    ];
    arch("conv", 3, [16, 4], &layers)
}

/// A clamp, mean pooling and the global mean.
fn conv_pool() -> Architecture {
    let clamp = LayerSpec::Clamp {
        min: -1.0,
        max: 2.0,
    };
    let layers = [
        conv(6, 5),
        clamp,
        avg_pool(2),
        ReLU,
        GlobalAvgPool,
        dense(3),
    ];
    arch("conv-pool", 3, [24, 3], &layers)
}

/// Statically quantizes `model` (of 12 features) with the default configuration, calibrated on `x`.
fn quantize_on(
    model: &Sequential,
    x: ndarray::ArrayView2<f32>,
) -> Result<QuantizedModel, QuantError> {
    static_quantize(model, x, &export_info(12), &QuantConfig::default())
}

/// Quantizes `arch` (as [`compare`]) and asserts the default observer's accuracy bounds.
fn assert_matches_f32(what: &str, arch: Architecture, seed: u64) {
    let (agree, worst, rms) = compare(arch, seed);
    eprintln!("{what}: agreement {agree}, worst {worst}, rms {rms}");
    assert!(agree >= 0.95, "agreement {agree}");
    assert!(worst < 0.2, "worst relative logit error {worst}");
    assert!(rms < 0.06, "relative RMS logit error {rms}");
}

#[test]
fn mlp_with_fused_and_table_activations_matches_f32() {
    assert_matches_f32("mlp", mlp_net(), 3);
    let minmax = QuantConfig {
        observer: observer::ObserverKind::MinMax,
        ..QuantConfig::default()
    };
    let (agree_mm, _, rms_mm) = compare_with(mlp_net(), 3, &minmax);
    assert!(
        agree_mm >= 0.95 && rms_mm < 0.06,
        "min-max: {agree_mm} {rms_mm}"
    );
}

#[test]
fn conv_flatten_model_matches_f32() {
    assert_matches_f32("conv-flatten", conv_flatten(), 5);
}

#[test]
fn conv_pool_model_matches_f32() {
    assert_matches_f32("conv-pool", conv_pool(), 9);
}

#[test]
fn standardization_is_folded_into_the_input_quantizer() {
    let arch = mlp_net();
    let model = Sequential::new(arch, 1).unwrap();
    let normalized = random_inputs(1000, 12, 4);
    let mut info = export_info(12);
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
    let arch = mlp_net();
    let model = Sequential::new(arch, 1).unwrap();
    let mut x = random_inputs(10, 12, 4);
    x[[3, 5]] = f32::NAN;
    let err = quantize_on(&model, x.view()).unwrap_err().to_string();
    assert!(err.contains("sample 3 column 5"), "{err}");
    let narrow = random_inputs(10, 11, 4);
    let err = quantize_on(&model, narrow.view()).unwrap_err().to_string();
    assert!(err.contains("11 values"), "{err}");
    let empty = random_inputs(0, 12, 4);
    assert!(quantize_on(&model, empty.view()).is_err());
}

#[test]
fn non_finite_weights_name_the_layer() {
    let arch = mlp_net();
    let mut model = Sequential::new(arch, 1).unwrap();
    if let Layer::Dense(d) = &mut model.layers[2] {
        d.weight[[4, 1]] = f32::INFINITY;
    }
    let err = quantize_on(&model, random_inputs(10, 12, 4).view())
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
    for (arch, seed) in [(mlp_net(), 3), (conv_flatten(), 5)] {
        let (agree, _, rms) = compare_with(arch.clone(), seed, &fpga);
        assert!(agree >= 0.9, "fpga agreement {agree}");
        assert!(rms < 0.15, "fpga rms {rms}");
        let model = seeded_model(arch, seed);
        let width = model.arch.input.time_steps * model.arch.input.features;
        let q = static_quantize(
            &model,
            random_inputs(512, width, 1).view(),
            &export_info(model.arch.input.features),
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
    let err = compare_with_result(conv_pool(), 9, &fpga)
        .unwrap_err()
        .to_string();
    assert!(err.contains("power-of-two"), "{err}");
}

fn compare_with_result(
    arch: Architecture,
    seed: u64,
    config: &QuantConfig,
) -> Result<QuantizedModel, QuantError> {
    let model = seeded_model(arch, seed);
    let width = model.arch.input.time_steps * model.arch.input.features;
    static_quantize(
        &model,
        random_inputs(512, width, 1).view(),
        &export_info(model.arch.input.features),
        config,
    )
}

#[test]
fn reduce_range_keeps_activations_in_seven_bits() {
    let reduced = QuantConfig {
        reduce_range: true,
        ..QuantConfig::default()
    };
    let (agree, _, _) = compare_with(conv_flatten(), 5, &reduced);
    assert!(agree >= 0.95, "reduced-range agreement {agree}");
    let q = compare_with_result(mlp_net(), 3, &reduced).unwrap();
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
    let a = compare_with_result(mlp_net(), 3, &QuantConfig::default()).unwrap();
    let b = compare_with_result(
        mlp_net(),
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
        let (agree, _, _) = compare_with(conv_flatten(), 5, &cfg);
        assert!(agree >= 0.9, "{observer}: agreement {agree}");
    }
}

#[test]
fn suspicious_calibration_data_gives_warnings() {
    let model = Sequential::new(mlp_net(), 1).unwrap();
    let few = quantize_on(&model, random_inputs(40, 12, 4).view()).unwrap();
    assert!(
        few.warnings
            .iter()
            .any(|w| w.contains("only 40 calibration samples")),
        "{:?}",
        few.warnings
    );
    let mut shifted = random_inputs(1000, 12, 4);
    shifted.column_mut(2).mapv_inplace(|v| v + 5.0);
    let q = quantize_on(&model, shifted.view()).unwrap();
    assert!(
        q.warnings.iter().any(|w| w.contains("feature 2 `f2`")),
        "{:?}",
        q.warnings
    );
    let fine = quantize_on(&model, random_inputs(1000, 12, 4).view()).unwrap();
    assert!(fine.warnings.is_empty(), "{:?}", fine.warnings);
    let err = quantize_on(&model, random_inputs(5, 12, 4).view())
        .unwrap_err()
        .to_string();
    assert!(err.contains("5 samples"), "{err}");
}

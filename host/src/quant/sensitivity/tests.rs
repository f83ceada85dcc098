//! Tests of `sensitivity`.

use super::*;
use crate::model::Architecture;
use crate::quant::{Backend, static_quantize};
use crate::test_support::*;

/// Dense layers named `fc1` to `fc3`.
fn mlp_net() -> Architecture {
    let layers = [
        dense(32).named("fc1"),
        ReLU,
        dense(16).named("fc2"),
        ReLU,
        dense(3).named("fc3"),
    ];
    arch("mlp", 3, [1, 12], &layers)
}

/// A causal `conv1`, mean pooling, a tanh table and the dense head `fc1`.
fn conv_net() -> Architecture {
    let layers = [
        conv(8, 3).named("conv1").causal(),
        ReLU,
        avg_pool(2),
        Tanh,
        Flatten,
        dense(3).named("fc1"),
    ];
    arch("conv", 3, [16, 4], &layers)
}

fn labels() -> Vec<String> {
    vec!["down".into(), "flat".into(), "up".into()]
}

fn model(arch: Architecture, seed: u64) -> Sequential {
    seeded_model(arch, seed)
}

/// Runs quantization sensitivity with the f32 model's own predictions as
/// labels, so the f32 accuracy is 1 and every change is a loss.
fn run(model: &Sequential, config: &QuantConfig) -> QuantSensitivity {
    let width = model.input_len();
    let calibration = random_inputs(1024, width, 11);
    let x = random_inputs(600, width, 12);
    let y: Vec<u8> = model
        .predict(x.view())
        .into_iter()
        .map(|c| c as u8)
        .collect();
    let labels = labels();
    let eval = EvalSet {
        x: x.view(),
        y: &y,
        labels: &labels,
    };
    quantization_sensitivity(
        model,
        calibration.view(),
        &export_info(model.arch.input.features),
        config,
        &EncodeOptions::default(),
        &eval,
    )
    .unwrap()
}

/// Makes `fc2` fragile: hidden unit 0 of fc1 is always 0 after the ReLU,
/// and fc2 gives it a huge weight in every row, so the f32 model does not
/// change but each fc2 channel's int8 scale is set by that one weight and
/// every other fc2 weight rounds to 0.
fn fragile_mlp() -> Sequential {
    let mut m = model(mlp_net(), 3);
    if let Layer::Dense(d) = &mut m.layers[0] {
        d.weight.row_mut(0).fill(0.0);
        d.bias[0] = -1.0;
    }
    if let Layer::Dense(d) = &mut m.layers[2] {
        let big = 1000.0 * d.weight.iter().fold(0f32, |a, w| a.max(w.abs()));
        d.weight.column_mut(0).fill(big);
    }
    m
}

#[test]
fn the_fragile_layer_comes_out_worst() {
    let m = fragile_mlp();
    let s = run(&m, &QuantConfig::default());
    assert_eq!(s.float.accuracy, 1.0);
    let names: Vec<&str> = s.layers.iter().map(|r| r.layer.as_str()).collect();
    assert_eq!(names.len(), 4, "input, fc1, fc2, fc3: {names:?}");
    assert_eq!(names[0], "fc2", "{:#?}", s.layers);
    let worst = &s.layers[0];
    assert_eq!((worst.kind.as_str(), worst.index), ("dense", Some(2)));
    assert!(worst.accuracy_change < -0.2, "{worst:?}");
    for r in &s.layers[1..] {
        assert!(r.accuracy_change > -0.05, "{r:?}");
    }
    assert!(names.contains(&"input"));
    let input = s.layers.iter().find(|r| r.layer == "input").unwrap();
    assert_eq!((input.kind.as_str(), input.index), ("input", None));
}

#[test]
fn rows_are_sorted_worst_first() {
    let s = run(&fragile_mlp(), &QuantConfig::default());
    assert!(
        s.layers
            .windows(2)
            .all(|w| w[0].accuracy_change <= w[1].accuracy_change)
    );
    let row = |name: &str, acc: f64, f1: f64| LayerSensitivity {
        layer: name.into(),
        kind: "dense".into(),
        index: None,
        accuracy: 0.5 + acc,
        macro_f1: 0.5 + f1,
        accuracy_change: acc,
        macro_f1_change: f1,
        agreement: 1.0,
    };
    let mut rows = vec![
        row("a", 0.0, 0.0),
        row("b", -0.1, 0.0),
        row("c", 0.0, -0.2),
        row("d", 0.0, 0.0),
    ];
    sort_worst_first(&mut rows);
    let order: Vec<&str> = rows.iter().map(|r| r.layer.as_str()).collect();
    assert_eq!(order, ["b", "c", "a", "d"]);
}

#[test]
fn simulated_parameters_are_the_quantizers() {
    // The weights of each channel take at most 255 distinct values on the
    // quantizer's grid; with fpga the grid step is a power of two.
    let m = model(mlp_net(), 5);
    let fpga = QuantConfig {
        backend: Backend::Fpga,
        ..QuantConfig::default()
    };
    let mut layer = m.layers[0].clone();
    fake_quantize_weights(&mut layer, &fpga);
    let Layer::Dense(d) = layer else { panic!() };
    let Layer::Dense(orig) = &m.layers[0] else {
        panic!()
    };
    for (row, orig_row) in d.weight.rows().into_iter().zip(orig.weight.rows()) {
        let max_abs = orig_row.iter().fold(0f32, |a, w| a.max(w.abs()));
        let step = channel_weight_scale(max_abs, &fpga);
        assert_eq!(step.log2().fract(), 0.0);
        for (w, o) in row.iter().zip(orig_row) {
            let q = f64::from(*w) / step;
            assert_eq!(q, q.round(), "{w} is not on the grid of step {step}");
            assert!((f64::from(*w) - f64::from(*o)).abs() <= step / 2.0 + 1e-9);
        }
    }
    // Every tensor the quantizer calibrates has a row: input, conv1 (relu
    // fused), the average pool, the tanh table and fc1.
    let conv = model(conv_net(), 7);
    for config in [QuantConfig::default(), fpga] {
        let s = run(&conv, &config);
        let mut kinds: Vec<(&str, &str)> = s
            .layers
            .iter()
            .map(|r| (r.layer.as_str(), r.kind.as_str()))
            .collect();
        kinds.sort_unstable();
        assert_eq!(
            kinds,
            [
                ("#2 avgpool1d", "avgpool1d"),
                ("#3 tanh", "tanh"),
                ("conv1", "conv1d"),
                ("fc1", "dense"),
                ("input", "input"),
            ]
        );
        assert_eq!(s.quantized.ranges.len(), 5);
    }
}

#[test]
fn pruning_sensitivity_prunes_one_clone_at_a_time() {
    let m = model(mlp_net(), 3);
    let x = random_inputs(400, 12, 12);
    let y: Vec<u8> = m.predict(x.view()).into_iter().map(|c| c as u8).collect();
    let labels = labels();
    let eval = EvalSet {
        x: x.view(),
        y: &y,
        labels: &labels,
    };
    let before = m.clone();
    let p = pruning_sensitivity(&m, 0.9, &eval).unwrap();
    assert_eq!(m, before, "the model itself is not pruned");
    let mut names: Vec<&str> = p.layers.iter().map(|r| r.layer.as_str()).collect();
    assert!(
        p.layers
            .windows(2)
            .all(|w| w[0].accuracy_change <= w[1].accuracy_change)
    );
    names.sort_unstable();
    assert_eq!(names, ["fc1", "fc2", "fc3"]);
    assert!(p.layers[0].accuracy_change < 0.0, "{:?}", p.layers);
    // Nothing pruned: nothing changes.
    let zero = pruning_sensitivity(&m, 0.0, &eval).unwrap();
    assert!(zero.layers.iter().all(|r| r.accuracy_change == 0.0));
    assert!(matches!(
        pruning_sensitivity(&m, 1.0, &eval),
        Err(PruneError::Amount { .. })
    ));
}

#[test]
fn report_json_has_a_stable_shape() {
    let m = fragile_mlp();
    let s = run(&m, &QuantConfig::default());
    let x = random_inputs(300, 12, 13);
    let report = SensitivityReport {
        model: "mlp".into(),
        split: "validation".into(),
        samples: 600,
        float: s.float,
        quantization: Some(QuantSection {
            settings: crate::steps::quant_summary(&QuantConfig::default(), 1024),
            ranges: range_rows(&m, &s.quantized, x.view()),
            warnings: s.quantized.warnings.clone(),
            layers: s.layers.clone(),
        }),
        pruning: None,
    };
    let v = serde_json::to_value(&report).unwrap();
    for key in [
        "/model",
        "/split",
        "/samples",
        "/float/accuracy",
        "/float/macro_f1",
    ] {
        assert!(v.pointer(key).is_some(), "{key} missing: {v}");
    }
    assert!(v["pruning"].is_null());
    let rows = v["quantization"]["layers"].as_array().unwrap();
    assert_eq!(rows[0]["layer"], "fc2");
    for key in [
        "layer",
        "kind",
        "index",
        "accuracy",
        "macro_f1",
        "accuracy_change",
        "macro_f1_change",
        "agreement",
    ] {
        assert!(rows[0].get(key).is_some(), "row lacks {key}");
    }
    let ranges = v["quantization"]["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 4);
    assert_eq!(ranges[0]["tensor"], "input");
    assert!(ranges.iter().all(|r| r["clipped_test"].is_number()));
    let text = report.to_text();
    assert!(text.contains("fc2") && text.contains("clip test"), "{text}");
}

/// Quantizes `model` (whose layers may have been edited past what an
/// architecture file allows) and asserts that it is refused with a message
/// that contains every one of `needles`.
fn assert_refused(model: &Sequential, config: &QuantConfig, needles: &[&str]) {
    let width = model.input_len();
    let err = static_quantize(
        model,
        random_inputs(64, width, 1).view(),
        &export_info(model.arch.input.features),
        config,
    )
    .unwrap_err()
    .to_string();
    assert!(needles.iter().all(|n| err.contains(n)), "{err}");
}

#[test]
fn unsupported_layers_are_refused_naming_the_layer_and_the_fix() {
    // A Dense layer on a sequence: drop the Flatten of the conv model.
    let mut m = model(conv_net(), 1);
    m.layers.remove(4);
    assert_refused(
        &m,
        &QuantConfig::default(),
        &["layer 4 (fc1 dense)", "add a flatten"],
    );

    // A Conv1d layer on a vector: the model takes one time step.
    let mut m = model(mlp_net(), 1);
    let conv = model(conv_net(), 1);
    m.layers[0] = conv.layers[0].clone();
    assert_refused(
        &m,
        &QuantConfig::default(),
        &["layer 0 (conv1 conv1d)", "time_steps > 1"],
    );

    // Pooling on a vector.
    let mut m = model(mlp_net(), 1);
    m.layers.insert(
        1,
        Layer::MaxPool1d {
            kernel: 2,
            stride: 2,
        },
    );
    assert_refused(
        &m,
        &QuantConfig::default(),
        &["layer 1", "maxpool1d", "sequence"],
    );
    let mut m = model(mlp_net(), 1);
    m.layers.insert(1, Layer::GlobalAvgPool);
    assert_refused(&m, &QuantConfig::default(), &["layer 1", "sequence"]);

    // A model that does not end in a vector.
    let mut m = model(conv_net(), 1);
    m.layers.truncate(4);
    assert_refused(&m, &QuantConfig::default(), &["layer 3", "end in a vector"]);

    // A conv layer whose input channels do not match.
    let mut m = model(conv_net(), 1);
    if let Layer::Conv1d(c) = &mut m.layers[0] {
        c.weight = ndarray::Array3::zeros((8, 5, 3));
    }
    assert_refused(&m, &QuantConfig::default(), &["layer 0", "5 channels"]);

    // A bias vector of the wrong length.
    let mut m = model(mlp_net(), 1);
    if let Layer::Dense(d) = &mut m.layers[2] {
        d.bias = ndarray::Array1::zeros(15);
    }
    assert_refused(
        &m,
        &QuantConfig::default(),
        &["layer 2 (fc2 dense)", "16 outputs but 15 biases"],
    );

    // A window shorter than a valid convolution's kernel span.
    let mut m = model(conv_net(), 1);
    if let Layer::Conv1d(c) = &mut m.layers[0] {
        c.weight = ndarray::Array3::zeros((8, 4, 20));
        c.padding = crate::model::Padding::Valid;
    }
    assert_refused(
        &m,
        &QuantConfig::default(),
        &["layer 0", "shorter than the kernel span 20"],
    );

    // A non-finite bias.
    let mut m = model(mlp_net(), 1);
    if let Layer::Dense(d) = &mut m.layers[4] {
        d.bias[1] = f32::NAN;
    }
    assert_refused(
        &m,
        &QuantConfig::default(),
        &["layer 4 (fc3 dense)", "channel 1"],
    );
}

#[test]
fn fpga_refuses_windows_that_are_not_powers_of_two() {
    let fpga = QuantConfig {
        backend: Backend::Fpga,
        ..QuantConfig::default()
    };
    // Average pooling over 3 steps.
    let mut m = model(conv_net(), 1);
    m.layers[2] = Layer::AvgPool1d {
        kernel: 3,
        stride: 3,
    };
    m.layers.truncate(3);
    m.layers.push(Layer::GlobalAvgPool);
    assert_refused(&m, &fpga, &["layer 2", "power-of-two pool window"]);
    // Global average pooling over 12 steps (a 12-step conv output).
    let arch = arch("gap", 3, [14, 4], &[conv(3, 3), GlobalAvgPool]);
    let m = model(arch, 1);
    assert_refused(&m, &fpga, &["layer 1", "averaging 12 steps"]);
    // The same models quantize for x86, and the sensitivity run refuses
    // them for fpga with the same message.
    assert!(
        static_quantize(
            &m,
            random_inputs(64, 56, 1).view(),
            &export_info(4),
            &QuantConfig::default()
        )
        .is_ok()
    );
    let x = random_inputs(50, 56, 2);
    let y = vec![0u8; 50];
    let labels = labels();
    let eval = EvalSet {
        x: x.view(),
        y: &y,
        labels: &labels,
    };
    let err = quantization_sensitivity(
        &m,
        random_inputs(64, 56, 1).view(),
        &export_info(4),
        &fpga,
        &EncodeOptions::default(),
        &eval,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("averaging 12 steps"), "{err}");
}

//! Tests of training: learning, determinism, resuming, refusals of damaged states, early stopping, bad input.

use std::collections::HashMap;
use std::path::PathBuf;

use ndarray::{Array2, ArrayView2};

use super::state::STATE_KEY;
use super::*;
use crate::checkpoint::{decode_safetensors, encode_safetensors};
use crate::model::{OptimizerConfig, StateDict};
use crate::test_support::{self as ts, LayerExt};

/// Three Gaussian-ish blobs in `features` dimensions, deterministic.
fn blobs(n: usize, features: usize, seed: u64) -> (Array2<f32>, Vec<u8>) {
    ts::blobs(n, features, seed, |on, uni| {
        let center = if on { 1.5 } else { 0.0 };
        center + uni() + uni()
    })
}

fn mlp(features: usize) -> Sequential {
    let layers = [ts::dense(16), ts::ReLU, ts::dense(3)];
    ts::seeded_model(ts::arch("t", 3, [1, features], &layers), 1)
}

fn conv_model() -> Sequential {
    let layers = [
        ts::conv(4, 3).causal(),
        ts::ReLU,
        ts::GlobalAvgPool,
        ts::dense(3),
    ];
    ts::seeded_model(ts::arch("c", 3, [8, 3], &layers), 2)
}

fn bits(m: &Sequential) -> Vec<(String, Vec<u32>)> {
    m.state_dict()
        .into_iter()
        .map(|(n, _, d)| (n, d.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickq-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn no_timing(h: &TrainHistory) -> Vec<EpochReport> {
    h.epochs
        .iter()
        .map(|r| EpochReport {
            seconds: 0.0,
            ..r.clone()
        })
        .collect()
}

#[test]
fn learns_separable_blobs_and_reports_every_epoch() {
    let (x, y) = blobs(600, 6, 1);
    let (vx, vy) = blobs(150, 6, 2);
    let mut model = mlp(6);
    let cfg = TrainConfig {
        epochs: 8,
        batch_size: 32,
        optimizer: OptimizerConfig::adam(1e-2),
        ..TrainConfig::default()
    };
    let mut seen = Vec::new();
    let h = train(&mut model, x.view(), &y, vx.view(), &vy, &cfg, &mut |r| {
        seen.push(r.epoch)
    })
    .unwrap();
    assert_eq!(seen, (1..=h.epochs.len()).collect::<Vec<_>>());
    let last = h.epochs.last().unwrap();
    assert!(last.val_accuracy > 0.9, "{last:?}");
    assert!(h.epochs[0].train_loss > last.train_loss);
    let (loss, acc) = evaluate(&model, vx.view(), &vy, None).unwrap();
    assert_eq!(loss, h.best_val_loss);
    assert!(acc > 0.9);
}

#[test]
fn fixed_seed_gives_bit_identical_weights() {
    let (x, y) = blobs(200, 24, 3);
    let (vx, vy) = blobs(50, 24, 4);
    let run = |seed: u64| {
        let mut m = conv_model();
        let cfg = TrainConfig {
            epochs: 3,
            batch_size: 16,
            seed,
            class_weights: ClassWeights::Balanced,
            ..TrainConfig::default()
        };
        let h = ts::fit(&mut m, x.view(), &y, vx.view(), &vy, &cfg).unwrap();
        (bits(&m), no_timing(&h))
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a.0, run(8).0);
}

#[test]
fn resume_after_interruption_matches_an_uninterrupted_run() {
    let (x, y) = blobs(160, 24, 5);
    let (vx, vy) = blobs(40, 24, 6);
    for optimizer in [
        OptimizerConfig::adam(5e-3),
        OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-4,
        },
    ] {
        let cfg = |epochs: usize, dir: Option<PathBuf>| TrainConfig {
            epochs,
            batch_size: 24,
            optimizer: optimizer.clone(),
            patience: 0,
            checkpoint_dir: dir,
            ..TrainConfig::default()
        };
        let mut straight = conv_model();
        let hs = ts::fit(&mut straight, x.view(), &y, vx.view(), &vy, &cfg(4, None)).unwrap();

        let dir = temp_dir("resume");
        let mut first = conv_model();
        let h1 = ts::fit(
            &mut first,
            x.view(),
            &y,
            vx.view(),
            &vy,
            &cfg(2, Some(dir.clone())),
        )
        .unwrap();
        assert_eq!(h1.epochs.len(), 2);
        assert_eq!(h1.resumed_from, None);
        // The directory holds a loadable checkpoint of the best weights so far.
        let (saved, _) = crate::checkpoint::load_checkpoint(&dir).unwrap();
        assert_eq!(bits(&saved), bits(&first));

        // A fresh process: a newly initialized model with another seed, same directory.
        let mut resumed = Sequential::new(conv_model().arch, 99).unwrap();
        let mut new_epochs = Vec::new();
        let h2 = train(
            &mut resumed,
            x.view(),
            &y,
            vx.view(),
            &vy,
            &cfg(4, Some(dir.clone())),
            &mut |r| new_epochs.push(r.epoch),
        )
        .unwrap();
        assert_eq!(new_epochs, vec![3, 4]);
        assert_eq!(h2.resumed_from, Some(2));
        assert_eq!(bits(&resumed), bits(&straight), "{optimizer:?}");
        assert_eq!(no_timing(&h2), no_timing(&hs));
        assert_eq!(h2.best_epoch, hs.best_epoch);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn resume_refuses_other_runs() {
    let (x, y) = blobs(60, 24, 7);
    let (vx, vy) = blobs(20, 24, 8);
    let dir = temp_dir("refuse");
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 16,
        checkpoint_dir: Some(dir.clone()),
        ..TrainConfig::default()
    };
    ts::fit(&mut conv_model(), x.view(), &y, vx.view(), &vy, &cfg).unwrap();
    let other_seed = TrainConfig {
        seed: 1,
        epochs: 2,
        ..cfg.clone()
    };
    let e = ts::fit(&mut conv_model(), x.view(), &y, vx.view(), &vy, &other_seed).unwrap_err();
    assert!(
        matches!(&e, TrainError::Resume { reason, .. } if reason.contains("configuration")),
        "{e}"
    );
    let mut y2 = y.clone();
    y2[0] = (y2[0] + 1) % 3;
    let e = ts::fit(&mut conv_model(), x.view(), &y2, vx.view(), &vy, &cfg).unwrap_err();
    assert!(
        matches!(&e, TrainError::Resume { reason, .. } if reason.contains("data")),
        "{e}"
    );
    let mut other_arch = conv_model().arch;
    other_arch.name = "other".to_string();
    let e = ts::fit(
        &mut Sequential::new(other_arch, 1).unwrap(),
        x.view(),
        &y,
        vx.view(),
        &vy,
        &cfg,
    )
    .unwrap_err();
    assert!(e.to_string().contains("architecture"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A training state whose metadata was edited, or whose tensors hold non-finite values, is refused naming the
/// file and the field or tensor, and the model is left as it was.
#[test]
fn edited_training_states_are_refused_naming_the_field() {
    let (x, y) = blobs(60, 24, 9);
    let (vx, vy) = blobs(20, 24, 10);
    let dir = temp_dir("edited");
    let cfg = |epochs| TrainConfig {
        epochs,
        batch_size: 16,
        patience: 0,
        checkpoint_dir: Some(dir.clone()),
        ..TrainConfig::default()
    };
    let run = |epochs| {
        let mut model = conv_model();
        let before = bits(&model);
        let r = ts::fit(&mut model, x.view(), &y, vx.view(), &vy, &cfg(epochs));
        (r, before == bits(&model))
    };
    run(3).0.unwrap();
    let path = dir.join(TRAIN_STATE_FILE);
    let original = std::fs::read(&path).unwrap();
    let (tensors, meta) = decode_safetensors(&original, &path).unwrap();
    let state: serde_json::Value = serde_json::from_str(&meta[STATE_KEY]).unwrap();
    // The untouched state resumes.
    run(4).0.unwrap();
    let rewrite = |edit: &dyn Fn(&mut serde_json::Value, &mut StateDict)| {
        let mut state = state.clone();
        let mut tensors = tensors.clone();
        edit(&mut state, &mut tensors);
        let meta = HashMap::from([(STATE_KEY.to_string(), state.to_string())]);
        let bytes = encode_safetensors(&tensors, Some(meta), &path).unwrap();
        std::fs::write(&path, bytes).unwrap();
    };
    let field_of = |e: &TrainError| match e {
        TrainError::InvalidState { field, .. } => field.clone(),
        TrainError::InvalidStateTensors { part, .. } => format!("{part}/"),
        other => panic!("not an invalid state: {other}"),
    };
    type Edit = Box<dyn Fn(&mut serde_json::Value, &mut StateDict)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "best_epoch",
            Box::new(|s, _| s["best_epoch"] = 1_000_000.into()),
        ),
        ("epochs_done", Box::new(|s, _| s["epochs_done"] = 2.into())),
        (
            "history[1].epoch",
            Box::new(|s, _| s["history"][1]["epoch"] = 7.into()),
        ),
        (
            "history[0].improved",
            Box::new(|s, _| s["history"][0]["improved"] = false.into()),
        ),
        (
            "history[2].val_accuracy",
            Box::new(|s, _| s["history"][2]["val_accuracy"] = 1.5.into()),
        ),
        (
            "since_improvement",
            Box::new(|s, _| {
                let v = s["since_improvement"].as_u64().unwrap();
                s["since_improvement"] = (v + 1).into();
            }),
        ),
        (
            "best_val_loss_bits",
            Box::new(|s, _| {
                let v = s["best_val_loss_bits"].as_u64().unwrap();
                s["best_val_loss_bits"] = (v + 1).into();
            }),
        ),
        (
            "optimizer_step",
            Box::new(|s, _| {
                let v = s["optimizer_step"].as_u64().unwrap();
                s["optimizer_step"] = (v + 1).into();
            }),
        ),
        ("rng", Box::new(|s, _| s["rng"]["word_pos"] = "0".into())),
        (
            "stopped_early",
            Box::new(|s, _| s["stopped_early"] = true.into()),
        ),
        (
            "history[1].train_loss",
            Box::new(|s, _| s["history"][1]["train_loss"] = (-0.5).into()),
        ),
        (
            "model/",
            Box::new(|_, t| {
                let i = t.iter().position(|t| t.0.starts_with("model/")).unwrap();
                t[i].2[0] = f32::NAN;
            }),
        ),
        (
            "best/",
            Box::new(|_, t| {
                let i = t.iter().position(|t| t.0.starts_with("best/")).unwrap();
                t[i].1.push(1);
            }),
        ),
        (
            "optim/conv1.weight.exp_avg_sq",
            Box::new(|_, t| {
                let i = t
                    .iter()
                    .position(|t| t.0 == "optim/conv1.weight.exp_avg_sq")
                    .unwrap();
                t[i].2[3] = -1.0;
            }),
        ),
    ];
    for (field, edit) in &cases {
        rewrite(edit.as_ref());
        let (result, unchanged) = run(5);
        let e = result.unwrap_err();
        assert_eq!(&field_of(&e), field, "{e}");
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );
        assert!(unchanged, "{field}: the model changed");
    }
    rewrite(&|s, _| s["best_epoch"] = 1_000_000.into());
    let e = run(5).0.unwrap_err();
    assert!(
        e.to_string()
            .ends_with("best_epoch: 1000000 is beyond the 3 epochs run"),
        "{e}"
    );
    // Unknown keys, at any level of the metadata, are refused too.
    for edit in [
        Box::new(|s: &mut serde_json::Value, _: &mut StateDict| s["note"] = 1.into()) as Edit,
        Box::new(|s, _| s["history"][0]["lr"] = 0.1.into()),
        Box::new(|s, _| s["rng"]["offset"] = 0.into()),
    ] {
        rewrite(edit.as_ref());
        let (result, unchanged) = run(5);
        let e = result.unwrap_err();
        assert!(
            matches!(&e, TrainError::Resume { reason, .. } if reason.contains("unknown field")),
            "{e}"
        );
        assert!(unchanged);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn early_stopping_restores_the_best_weights() {
    let (x, y) = blobs(300, 6, 9);
    // Validation labels disagree with the training rule, so the validation loss rises once the model learns.
    let (vx, mut vy) = blobs(90, 6, 10);
    vy.iter_mut().for_each(|v| *v = (*v + 1) % 3);
    let mut model = mlp(6);
    let cfg = TrainConfig {
        epochs: 30,
        batch_size: 16,
        optimizer: OptimizerConfig::adam(1e-2),
        patience: 2,
        ..TrainConfig::default()
    };
    let h = ts::fit(&mut model, x.view(), &y, vx.view(), &vy, &cfg).unwrap();
    assert!(h.stopped_early);
    assert_eq!(h.epochs.len(), h.best_epoch + 2);
    assert!(h.epochs[h.best_epoch - 1].improved);
    assert!(h.epochs[h.best_epoch..].iter().all(|r| !r.improved));
    let (loss, _) = evaluate(&model, vx.view(), &vy, None).unwrap();
    assert_eq!(loss, h.best_val_loss);
    assert!(loss < h.epochs.last().unwrap().val_loss);
}

#[test]
fn rejects_bad_configuration_and_data() {
    let (x, y) = blobs(30, 6, 11);
    let mut m = mlp(6);
    let run = |m: &mut Sequential, x: ArrayView2<f32>, y: &[u8], cfg: &TrainConfig| {
        ts::fit(m, x, y, x, y, cfg).unwrap_err()
    };
    let base = TrainConfig::default();
    let e = run(
        &mut m,
        x.view(),
        &y,
        &TrainConfig {
            batch_size: 0,
            ..base.clone()
        },
    );
    assert!(matches!(
        e,
        TrainError::Setting {
            setting: "batch_size",
            ..
        }
    ));
    let e = run(
        &mut m,
        x.view(),
        &y,
        &TrainConfig {
            optimizer: OptimizerConfig::adam(-1.0),
            ..base.clone()
        },
    );
    assert!(
        matches!(e, TrainError::Model(ModelError::Optimizer(_))) && e.to_string().contains("lr"),
        "{e}"
    );
    // No epoch would save the random initial weights as if trained.
    let e = run(
        &mut m,
        x.view(),
        &y,
        &TrainConfig {
            epochs: 0,
            ..base.clone()
        },
    );
    assert_eq!(
        e.to_string(),
        "invalid training configuration: epochs: 0 is out of range: expected a whole number from 1 to 1000000"
    );
    let e = run(
        &mut m,
        x.view(),
        &y,
        &TrainConfig {
            optimizer: OptimizerConfig::sgd(0.1, 2.0),
            ..base.clone()
        },
    );
    assert_eq!(
        e.to_string(),
        "invalid optimizer setting: sgd momentum: 2 is out of range: expected a number in [0, 1)"
    );
    let e = run(
        &mut m,
        x.view(),
        &y,
        &TrainConfig {
            class_weights: ClassWeights::Manual(vec![1.0]),
            ..base.clone()
        },
    );
    assert!(
        matches!(&e, TrainError::ClassWeights(_))
            && e.to_string().contains("1 weights for 3 classes")
    );
    let e = run(&mut m, x.view(), &y[1..], &base);
    assert!(
        matches!(&e, TrainError::Data { .. }) && e.to_string().contains("30 rows but 29 labels")
    );
    let mut bad_y = y.clone();
    bad_y[4] = 3;
    let e = run(&mut m, x.view(), &bad_y, &base);
    assert!(matches!(&e, TrainError::Data { .. }) && e.to_string().contains("label 4 is 3"));
    let mut bad_x = x.clone();
    bad_x[[2, 1]] = f32::NAN;
    let e = run(&mut m, bad_x.view(), &y, &base);
    assert!(matches!(&e, TrainError::Data { .. }) && e.to_string().contains("row 2 column 1"));
    let e = run(&mut m, x.slice(ndarray::s![.., 1..]), &y, &base);
    assert!(matches!(&e, TrainError::Data { .. }) && e.to_string().contains("5 columns"));
    let e = run(&mut m, x.slice(ndarray::s![0..0, ..]), &[], &base);
    assert!(matches!(&e, TrainError::Data { .. }) && e.to_string().contains("empty"));
}

#[test]
fn divergence_is_reported() {
    let (mut x, y) = blobs(64, 6, 12);
    x.mapv_inplace(|v| v * 1e18);
    let mut m = mlp(6);
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 8,
        optimizer: OptimizerConfig::sgd(1e6, 0.0),
        ..TrainConfig::default()
    };
    let e = ts::fit(&mut m, x.view(), &y, x.view(), &y, &cfg).unwrap_err();
    assert!(matches!(e, TrainError::Diverged { .. }), "{e}");
}

#[test]
fn config_reads_from_toml_with_defaults() {
    let cfg: TrainConfig = toml::from_str(
        "epochs = 5\nclass_weights = \"balanced\"\n[optimizer]\ntype = \"sgd\"\nlr = 0.1\nmomentum = 0.9\nnesterov = true\n",
    )
    .unwrap();
    assert_eq!(cfg.epochs, 5);
    assert_eq!(cfg.batch_size, 256);
    assert_eq!(cfg.class_weights, ClassWeights::Balanced);
    assert!(matches!(
        cfg.optimizer,
        OptimizerConfig::Sgd {
            nesterov: true,
            weight_decay: 0.0,
            ..
        }
    ));
    let cfg: TrainConfig = serde_json::from_str(
        r#"{"optimizer": {"type": "adam", "lr": 0.01}, "class_weights": {"manual": [1, 2, 0.5]}}"#,
    )
    .unwrap();
    assert_eq!(cfg.optimizer, OptimizerConfig::adam(0.01));
    assert_eq!(cfg.class_weights, ClassWeights::Manual(vec![1.0, 2.0, 0.5]));
    let bad: Result<TrainConfig, _> = toml::from_str("[optimizer]\ntype = \"adam\"\n");
    assert!(bad.unwrap_err().to_string().contains("lr"));
}

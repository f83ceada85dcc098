//! Tests of distillation: the loss and its gradient by hand and by finite differences, whole runs (determinism,
//! best epoch, resuming, masks) and the errors of bad input.

use super::*;
use crate::prune::ModelPruner;
use crate::test_support as ts;
use crate::train::{ClassWeights, evaluate};
use ndarray::array;

/// Three noisy blobs in `features` dimensions, deterministic.
fn blobs(n: usize, features: usize, seed: u64) -> (Array2<f32>, Vec<u8>) {
    ts::blobs(n, features, seed, |on, uni| {
        let center = if on { 1.0 } else { 0.0 };
        center + 1.5 * (uni() + uni())
    })
}

fn mlp(features: usize, hidden: usize, classes: usize, seed: u64) -> Sequential {
    let layers = [ts::dense(hidden), ts::ReLU, ts::dense(classes)];
    let arch = ts::arch(&format!("m{hidden}"), classes, [1, features], &layers);
    ts::seeded_model(arch, seed)
}

fn bits(m: &Sequential) -> Vec<u32> {
    m.state_dict()
        .into_iter()
        .flat_map(|(_, _, d)| d.into_iter().map(f32::to_bits))
        .collect()
}

fn trained_teacher(x: &Array2<f32>, y: &[u8]) -> Sequential {
    let mut teacher = mlp(6, 32, 3, 11);
    let cfg = TrainConfig {
        epochs: 10,
        batch_size: 32,
        optimizer: OptimizerConfig::adam(1e-2),
        patience: 0,
        ..TrainConfig::default()
    };
    ts::fit(&mut teacher, x.view(), y, x.view(), y, &cfg).unwrap();
    teacher
}

fn softmax(z: &[f64], t: f64) -> Vec<f64> {
    let e: Vec<f64> = z.iter().map(|v| (v / t).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// A distillation interrupted after 2 of 4 epochs and resumed, by a fresh student of another seed, ends with
/// the weights and history of an uninterrupted run; a state of another run is refused saying why.
#[test]
fn interrupted_distillation_resumes_to_the_uninterrupted_weights() {
    let (x, y) = blobs(240, 6, 31);
    let (vx, vy) = blobs(60, 6, 32);
    let teacher = trained_teacher(&x, &y);
    let kd = DistillConfig {
        temperature: 3.0,
        alpha: 0.6,
    };
    let dir = std::env::temp_dir().join(format!("tickq-distill-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = |epochs: usize, dir: Option<std::path::PathBuf>| TrainConfig {
        epochs,
        batch_size: 32,
        optimizer: OptimizerConfig::adam(5e-3),
        class_weights: ClassWeights::Balanced,
        patience: 0,
        checkpoint_dir: dir,
        ..TrainConfig::default()
    };
    let run = |student: &mut Sequential, teacher: &Sequential, kd: &DistillConfig, cfg| {
        distill_train(
            teacher,
            student,
            x.view(),
            &y,
            vx.view(),
            &vy,
            kd,
            &cfg,
            &mut |_| {},
        )
    };
    let no_timing = |h: &TrainHistory| {
        h.epochs
            .iter()
            .map(|r| EpochReport {
                seconds: 0.0,
                ..r.clone()
            })
            .collect::<Vec<_>>()
    };
    let mut straight = mlp(6, 4, 3, 5);
    let hs = run(&mut straight, &teacher, &kd, cfg(4, None)).unwrap();
    let mut first = mlp(6, 4, 3, 5);
    let h1 = run(&mut first, &teacher, &kd, cfg(2, Some(dir.clone()))).unwrap();
    assert_eq!((h1.epochs.len(), h1.resumed_from), (2, None));
    let mut resumed = mlp(6, 4, 3, 99);
    let h2 = run(&mut resumed, &teacher, &kd, cfg(4, Some(dir.clone()))).unwrap();
    assert_eq!(h2.resumed_from, Some(2));
    assert_eq!(bits(&resumed), bits(&straight));
    assert_eq!(no_timing(&h2), no_timing(&hs));
    assert_eq!(h2.best_epoch, hs.best_epoch);

    let refusal = |student: &mut Sequential, teacher: &Sequential, kd: &DistillConfig| {
        let before = bits(student);
        let e = run(student, teacher, kd, cfg(5, Some(dir.clone()))).unwrap_err();
        assert_eq!(bits(student), before, "a refused state changed the student");
        match e {
            DistillError::Train(TrainError::Resume { reason, .. }) => reason,
            other => panic!("not a resume refusal: {other}"),
        }
    };
    let other_kd = DistillConfig {
        temperature: 2.0,
        ..kd
    };
    let reason = refusal(&mut mlp(6, 4, 3, 5), &teacher, &other_kd);
    assert!(reason.contains("configuration differs"), "{reason}");
    let other_teacher = mlp(6, 32, 3, 12);
    let reason = refusal(&mut mlp(6, 4, 3, 5), &other_teacher, &kd);
    assert_eq!(
        reason,
        "the teacher differs (its logits on the training set)"
    );
    // Plain training refuses the distillation's state, and distillation a training state.
    let e = ts::fit(
        &mut mlp(6, 4, 3, 5),
        x.view(),
        &y,
        vx.view(),
        &vy,
        &cfg(5, Some(dir.clone())),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("the state is of distillation, not of a training run"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    ts::fit(
        &mut mlp(6, 4, 3, 5),
        x.view(),
        &y,
        vx.view(),
        &vy,
        &cfg(1, Some(dir.clone())),
    )
    .unwrap();
    let reason = refusal(&mut mlp(6, 4, 3, 5), &teacher, &kd);
    assert_eq!(
        reason,
        "the state is of a training run, not of distillation"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loss_matches_hand_computation() {
    let zs = array![[1.0f32, 0.0, -1.0], [0.5, 0.5, 2.0]];
    let zt = array![[2.0f32, 1.0, -3.0], [0.0, 1.0, 0.0]];
    let y = [0u8, 2];
    let cfg = DistillConfig {
        temperature: 2.0,
        alpha: 0.25,
    };
    let out = kd_loss(zs.view(), zt.view(), &y, &cfg, None).unwrap();
    let mut kl = 0.0;
    let mut ce = 0.0;
    for (i, &label) in y.iter().enumerate() {
        let s: Vec<f64> = zs.row(i).iter().map(|&v| f64::from(v)).collect();
        let t: Vec<f64> = zt.row(i).iter().map(|&v| f64::from(v)).collect();
        let (ps, pt) = (softmax(&s, 2.0), softmax(&t, 2.0));
        kl += (0..3).map(|j| pt[j] * (pt[j] / ps[j]).ln()).sum::<f64>();
        ce -= softmax(&s, 1.0)[usize::from(label)].ln();
    }
    let soft = 4.0 * kl / 2.0;
    let hard = ce / 2.0;
    assert!(
        (f64::from(out.soft_loss) - soft).abs() < 1e-6,
        "{out:?} {soft}"
    );
    assert!(
        (f64::from(out.hard_loss) - hard).abs() < 1e-6,
        "{out:?} {hard}"
    );
    let total = 0.25 * soft + 0.75 * hard;
    assert!(
        (f64::from(out.loss) - total).abs() < 1e-6,
        "{out:?} {total}"
    );
    assert_eq!(out.correct, 2);
    // The same logits for student and teacher give a zero soft term.
    let same = kd_loss(zt.view(), zt.view(), &[0, 1], &cfg, None).unwrap();
    assert!(same.soft_loss.abs() < 1e-7, "{}", same.soft_loss);
}

#[test]
fn gradient_matches_finite_differences() {
    let zs = array![
        [0.3f32, -1.2, 2.0, 0.1],
        [1.5, 0.2, -0.7, 0.0],
        [0.0, 0.4, 0.9, -2.0]
    ];
    let zt = array![
        [1.0f32, 0.5, -0.5, 2.5],
        [-1.0, 2.0, 0.3, 0.3],
        [0.2, -0.4, 1.5, 0.0]
    ];
    let y = [1u8, 0, 3];
    let w = [0.5f32, 2.0, 1.0, 1.5];
    for temperature in [0.5f32, 1.0, 2.0, 4.0, 10.0] {
        for alpha in [0.0f32, 0.3, 0.7, 1.0] {
            for weights in [None, Some(&w[..])] {
                let cfg = DistillConfig { temperature, alpha };
                let out = kd_loss(zs.view(), zt.view(), &y, &cfg, weights).unwrap();
                let loss = |z: &Array2<f32>| {
                    f64::from(
                        kd_loss(z.view(), zt.view(), &y, &cfg, weights)
                            .unwrap()
                            .loss,
                    )
                };
                let eps = 1e-2f32;
                for i in 0..zs.nrows() {
                    for j in 0..zs.ncols() {
                        let mut plus = zs.clone();
                        plus[[i, j]] += eps;
                        let mut minus = zs.clone();
                        minus[[i, j]] -= eps;
                        let numeric = (loss(&plus) - loss(&minus)) / (2.0 * f64::from(eps));
                        let analytic = f64::from(out.grad[[i, j]]);
                        assert!(
                            (numeric - analytic).abs() <= 1e-3 + 1e-2 * analytic.abs(),
                            "T {temperature} alpha {alpha} weights {} ({i},{j}): numeric {numeric}, analytic {analytic}",
                            weights.is_some()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn soft_gradient_has_the_temperature_factor_and_sign() {
    // With alpha = 1 the gradient is exactly T * (p_s - p_t) / N; a missing T or a flipped sign fails here.
    let zs = array![[2.0f32, 0.0, -1.0]];
    let zt = array![[-1.0f32, 0.0, 2.0]];
    for t in [1.0f32, 3.0, 8.0] {
        let cfg = DistillConfig {
            temperature: t,
            alpha: 1.0,
        };
        let out = kd_loss(zs.view(), zt.view(), &[0], &cfg, None).unwrap();
        let ps = softmax(&[2.0, 0.0, -1.0], f64::from(t));
        let pt = softmax(&[-1.0, 0.0, 2.0], f64::from(t));
        for j in 0..3 {
            let want = f64::from(t) * (ps[j] - pt[j]);
            assert!((f64::from(out.grad[[0, j]]) - want).abs() < 1e-6, "T {t}");
        }
        // The student overrates class 0 relative to the teacher: descending must lower it.
        assert!(out.grad[[0, 0]] > 0.0 && out.grad[[0, 2]] < 0.0);
    }
}

#[test]
fn alpha_zero_step_equals_a_plain_cross_entropy_step() {
    let (x, y) = blobs(32, 6, 1);
    let teacher = mlp(6, 32, 3, 5);
    let student = mlp(6, 8, 3, 6);
    let opt = OptimizerConfig::adam(1e-2);
    let mut kd = KnowledgeDistillation::new(&teacher, student.clone(), opt.clone())
        .unwrap()
        .with_alpha(0.0)
        .unwrap();
    let mut plain = student;
    let mut plain_opt = Optimizer::new(opt, &plain).unwrap();
    for _ in 0..3 {
        let m = kd.train_step(x.view(), &y).unwrap();
        let (logits, caches) = plain.forward_train(x.view());
        let ce = cross_entropy(logits.view(), &y, None).unwrap();
        assert_eq!(m.loss.to_bits(), ce.loss.to_bits());
        assert_eq!(m.hard_loss.to_bits(), ce.loss.to_bits());
        assert_eq!(m.accuracy, ce.correct as f32 / 32.0);
        let grads = plain.backward(&caches, ce.grad);
        plain_opt.step(&mut plain, &grads).unwrap();
        assert_eq!(bits(kd.student()), bits(&plain));
    }
}

#[test]
fn distillation_trains_deterministically_and_restores_the_best_epoch() {
    let (x, y) = blobs(300, 6, 2);
    let (vx, vy) = blobs(90, 6, 3);
    let teacher = trained_teacher(&x, &y);
    let run = |seed: u64| {
        let mut student = mlp(6, 4, 3, 1);
        let train = TrainConfig {
            epochs: 6,
            batch_size: 32,
            optimizer: OptimizerConfig::adam(1e-2),
            class_weights: ClassWeights::Balanced,
            seed,
            ..TrainConfig::default()
        };
        let mut seen = Vec::new();
        let h = distill_train(
            &teacher,
            &mut student,
            x.view(),
            &y,
            vx.view(),
            &vy,
            &DistillConfig::default(),
            &train,
            &mut |r| seen.push(r.epoch),
        )
        .unwrap();
        assert_eq!(seen, (1..=h.epochs.len()).collect::<Vec<_>>());
        let w = class_weights_for(&y);
        let (loss, acc) = evaluate(&student, vx.view(), &vy, Some(&w)).unwrap();
        assert_eq!(loss, h.best_val_loss);
        assert!(acc > 0.6, "{acc} {h:?}");
        (bits(&student), h.best_epoch)
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a.0, run(8).0);
}

fn class_weights_for(y: &[u8]) -> Vec<f32> {
    crate::model::class_weights_balanced(y, 3)
}

#[test]
fn a_pruned_student_keeps_its_zeros() {
    let (x, y) = blobs(200, 6, 4);
    let teacher = trained_teacher(&x, &y);
    let mut student = mlp(6, 8, 3, 2);
    ModelPruner::new(&mut student)
        .unstructured_pruning(&["fc1", "fc2"], 0.5)
        .unwrap();
    let masks = student.mask_dict();
    assert_eq!(masks.len(), 2);
    let train = TrainConfig {
        epochs: 3,
        batch_size: 16,
        optimizer: OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 1e-3,
        },
        patience: 0,
        ..TrainConfig::default()
    };
    let before = bits(&student);
    distill_train(
        &teacher,
        &mut student,
        x.view(),
        &y,
        x.view(),
        &y,
        &DistillConfig::default(),
        &train,
        &mut |_| {},
    )
    .unwrap();
    assert_ne!(bits(&student), before);
    assert_eq!(student.mask_dict(), masks);
    let state = student.state_dict();
    for (name, _, mask) in &masks {
        let weight = name.strip_suffix("_mask").unwrap();
        let (_, _, w) = state.iter().find(|t| t.0 == weight).unwrap();
        for (v, m) in w.iter().zip(mask) {
            if *m == 0.0 {
                assert_eq!(v.to_bits(), 0, "{weight}");
            }
        }
        assert!(w.iter().zip(mask).any(|(v, m)| *m != 0.0 && *v != 0.0));
    }
    // The single-step API keeps the masks too.
    let mut kd = KnowledgeDistillation::new(&teacher, student, OptimizerConfig::adam(0.1))
        .unwrap()
        .with_temperature(2.0)
        .unwrap();
    kd.train_step(x.view(), &y).unwrap();
    assert_eq!(kd.student().mask_dict(), masks);
    assert_eq!(
        kd.student().pruned_state_dict().len(),
        kd.student().state_dict().len() + 2
    );
}

#[test]
fn bad_inputs_give_clear_errors() {
    let (x, y) = blobs(40, 6, 5);
    let teacher = mlp(6, 16, 3, 1);
    let student = || mlp(6, 4, 3, 2);
    let opt = OptimizerConfig::adam(1e-2);
    for t in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        let e = KnowledgeDistillation::new(&teacher, student(), opt.clone())
            .unwrap()
            .with_temperature(t)
            .unwrap_err();
        assert!(matches!(e, DistillError::Temperature(_)), "{e}");
        assert!(e.to_string().contains("temperature"), "{e}");
    }
    for a in [-0.1f32, 1.1, f32::NAN] {
        let e = KnowledgeDistillation::new(&teacher, student(), opt.clone())
            .unwrap()
            .with_alpha(a)
            .unwrap_err();
        assert!(matches!(e, DistillError::Alpha(_)), "{e}");
        assert!(e.to_string().contains("[0, 1]"), "{e}");
    }
    let e = KnowledgeDistillation::new(&teacher, mlp(5, 4, 3, 2), opt.clone()).unwrap_err();
    assert!(
        matches!(e, DistillError::InputMismatch { .. }) && e.to_string().contains("(1, 5)"),
        "{e}"
    );
    let e = KnowledgeDistillation::new(&teacher, mlp(6, 4, 2, 2), opt.clone()).unwrap_err();
    assert!(
        matches!(e, DistillError::ClassMismatch { .. })
            && e.to_string().contains("3 classes")
            && e.to_string().contains("has 2"),
        "{e}"
    );
    let e =
        KnowledgeDistillation::new(&teacher, student(), OptimizerConfig::adam(-1.0)).unwrap_err();
    assert!(matches!(e, DistillError::Model(_)), "{e}");
    let mut kd = KnowledgeDistillation::new(&teacher, student(), opt.clone()).unwrap();
    let e = kd
        .train_step(x.slice(ndarray::s![.., 1..]), &y)
        .unwrap_err();
    assert!(matches!(e, DistillError::Model(_)), "{e}");
    let e = kd.train_step(x.view(), &y[1..]).unwrap_err();
    assert!(matches!(e, DistillError::Model(_)), "{e}");
    let e = kd_loss(
        x.slice(ndarray::s![.., ..3]),
        x.slice(ndarray::s![..39, ..3]),
        &y,
        &DistillConfig::default(),
        None,
    )
    .unwrap_err();
    assert!(matches!(e, DistillError::LogitsShape { .. }), "{e}");

    let run = |student: &mut Sequential, cfg: &DistillConfig, train: &TrainConfig| {
        distill_train(
            &teacher,
            student,
            x.view(),
            &y,
            x.view(),
            &y,
            cfg,
            train,
            &mut |_| {},
        )
        .unwrap_err()
    };
    let base = TrainConfig::default();
    let d = DistillConfig::default();
    let bad_t = DistillConfig {
        temperature: 0.0,
        ..d
    };
    assert!(matches!(
        run(&mut student(), &bad_t, &base),
        DistillError::Temperature(_)
    ));
    let bad_a = DistillConfig { alpha: 2.0, ..d };
    assert!(matches!(
        run(&mut student(), &bad_a, &base),
        DistillError::Alpha(_)
    ));
    assert!(matches!(
        run(&mut mlp(7, 4, 3, 1), &d, &base),
        DistillError::InputMismatch { .. }
    ));
    let e = run(
        &mut student(),
        &d,
        &TrainConfig {
            batch_size: 0,
            ..base.clone()
        },
    );
    assert!(
        matches!(e, DistillError::Train(TrainError::Setting { .. })),
        "{e}"
    );
    let mut bad_y = y.clone();
    bad_y[3] = 3;
    let e = distill_train(
        &teacher,
        &mut student(),
        x.view(),
        &bad_y,
        x.view(),
        &y,
        &d,
        &base,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("label 3 is 3"), "{e}");
}

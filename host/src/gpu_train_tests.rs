//! The GPU training kernels against the CPU implementation, layer by layer, and whole runs against CPU runs.
//!
//! Every test needs an adapter: in CI (`CI=true`) a missing one fails the test (see
//! [`tickq_gpu::testing::context_or_skip`]); software Vulkan is enough.

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tickq_gpu::testing::context_or_skip;
use tickq_gpu::train::{GpuTrainer, LossDesc, ModelDesc, StepTrace, TrainGpuError};

use super::*;
use crate::distill::{DistillConfig, kd_loss};
use crate::model::{Architecture, Tensor, cross_entropy};

/// An explicit float tolerance: `|got - want| <= abs + rel * |want|`.
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    abs: f32,
    rel: f32,
}

/// Single kernels (one matrix multiply, one activation, one loss): f32 with another summation order.
const KERNEL: Tolerance = Tolerance {
    abs: 2e-5,
    rel: 2e-4,
};

/// Values that went through a whole backward pass or an optimizer step (Adam divides by sqrt(v), which
/// magnifies rounding where v is tiny).
const STEP: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-3,
};

#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: Tolerance) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let mut worst = (0usize, 0.0f32);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let excess = (g - w).abs() - (tol.abs + tol.rel * w.abs());
        // A NaN or infinite value on either side is as bad as it gets.
        let excess = if excess.is_finite() {
            excess
        } else {
            f32::INFINITY
        };
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    let (i, excess) = worst;
    assert!(
        excess <= 0.0,
        "{what}: value {i} is {} on the GPU, {} on the CPU (tolerance {tol:?})",
        got[i],
        want[i]
    );
}

fn model(toml_layers: &str, time_steps: usize, features: usize, seed: u64) -> Sequential {
    let arch = Architecture::from_toml_str(&format!(
        "name = \"g\"\nclasses = 3\n[input]\ntime_steps = {time_steps}\nfeatures = {features}\n{toml_layers}"
    ))
    .unwrap();
    Sequential::new(arch, seed).unwrap()
}

fn random(rows: usize, cols: usize, seed: u64) -> (Array2<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array2::from_shape_simple_fn((rows, cols), || {
        (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    });
    let y = (0..rows).map(|i| ((i * 7 + 1) % 3) as u8).collect();
    (x, y)
}

/// What the CPU computes for one step: each layer's output and input gradient, the parameter gradients and
/// the loss gradient, as [`Sequential::forward_train`] / [`Sequential::backward`] do it, layer by layer.
struct CpuTrace {
    outputs: Vec<Tensor>,
    input_grads: Vec<Option<Tensor>>,
    param_grads: Vec<(Vec<f32>, Vec<f32>)>,
}

fn cpu_trace(m: &Sequential, x: ArrayView2<f32>, grad_logits: Array2<f32>) -> CpuTrace {
    let mut h = m.input_tensor(x);
    let mut caches = Vec::new();
    let mut outputs = Vec::new();
    for layer in &m.layers {
        let (y, c) = layer.forward_cached(h);
        outputs.push(y.clone());
        caches.push(c);
        h = y;
    }
    let mut grad = Tensor::Flat(grad_logits);
    let mut input_grads = vec![None; m.layers.len()];
    let mut param_grads = Vec::new();
    for (i, (layer, cache)) in m.layers.iter().zip(&caches).enumerate().rev() {
        let (dx, pg) = layer.backward(cache, grad.clone(), true);
        if let Some(pg) = pg {
            param_grads.push((pg.weight, pg.bias));
        }
        let dx = dx.unwrap();
        if i > 0 {
            input_grads[i] = Some(dx.clone());
        }
        grad = dx;
    }
    param_grads.reverse();
    CpuTrace {
        outputs,
        input_grads,
        param_grads,
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.iter().copied().collect()
}

fn trainer(
    ctx: &GpuContext,
    m: &Sequential,
    opt: &OptimizerConfig,
    loss: LossDesc,
    batch: usize,
) -> GpuTrainer {
    GpuTrainer::new(
        ctx,
        &model_desc(m).unwrap(),
        &param_tensors(m),
        optimizer_desc(opt),
        loss,
        batch,
    )
    .unwrap()
}

/// Compares a GPU step trace with the CPU, layer by layer, then the parameters after one optimizer step.
fn check_step(
    name: &str,
    m: &Sequential,
    rows: usize,
    class_weights: Option<&[f32]>,
    opt: OptimizerConfig,
) {
    let Some(ctx) = context_or_skip(name) else {
        return;
    };
    let (x, y) = random(rows, m.input_len(), 11);
    let mut t = trainer(&ctx, m, &opt, LossDesc::CrossEntropy, rows);
    t.set_class_weights(class_weights).unwrap();
    let got: StepTrace = t.trace_step(x.as_slice().unwrap(), &y, None).unwrap();

    let input = m.input_tensor(x.view());
    assert_close(
        &format!("{name}: gathered input"),
        &got.input,
        &values(&input),
        KERNEL,
    );
    let (logits, _) = m.forward_train(x.view());
    let ce = cross_entropy(logits.view(), &y, class_weights).unwrap();
    let cpu = cpu_trace(m, x.view(), ce.grad.clone());
    for (i, layer) in m.layers.iter().enumerate() {
        let what = format!("{name}: layer {i} ({}) forward", layer.kind());
        // Outputs feed on outputs, so later layers carry earlier rounding.
        assert_close(&what, &got.outputs[i], &values(&cpu.outputs[i]), STEP);
    }
    assert_close(
        &format!("{name}: loss gradient"),
        &got.logits_grad,
        ce.grad.as_slice().unwrap(),
        KERNEL,
    );
    let loss = got.stats.mean_loss();
    assert!(
        (loss - ce.loss).abs() <= 1e-5 + 1e-5 * ce.loss.abs(),
        "{name}: loss {loss} vs {}",
        ce.loss
    );
    assert_eq!(got.stats.correct as usize, ce.correct, "{name}: correct");
    for (i, layer) in m.layers.iter().enumerate().skip(1) {
        let what = format!("{name}: layer {i} ({}) input gradient", layer.kind());
        let want = values(cpu.input_grads[i].as_ref().unwrap());
        assert_close(&what, got.input_grads[i].as_ref().unwrap(), &want, STEP);
    }
    for (j, ((gw, gb), (cw, cb))) in got.param_grads.iter().zip(&cpu.param_grads).enumerate() {
        assert_close(
            &format!("{name}: parameter layer {j} weight gradient"),
            gw,
            cw,
            STEP,
        );
        assert_close(
            &format!("{name}: parameter layer {j} bias gradient"),
            gb,
            cb,
            STEP,
        );
    }

    // One optimizer step from the same gradients.
    let mut cpu_model = m.clone();
    let mut optimizer = Optimizer::new(opt, &cpu_model).unwrap();
    let (logits, caches) = cpu_model.forward_train(x.view());
    let ce = cross_entropy(logits.view(), &y, class_weights).unwrap();
    let grads = cpu_model.backward(&caches, ce.grad);
    optimizer.step(&mut cpu_model, &grads).unwrap();
    let want = cpu_model.state_dict();
    for (j, (w, b)) in got.params_after.iter().enumerate() {
        assert_close(
            &format!("{name}: {} after the step", want[2 * j].0),
            w,
            &want[2 * j].2,
            STEP,
        );
        assert_close(
            &format!("{name}: {} after the step", want[2 * j + 1].0),
            b,
            &want[2 * j + 1].2,
            STEP,
        );
    }
}

/// Dense layers wider than one 64 x 64 tile and not multiples of it exercise all three matrix multiply forms
/// (X W^T, dY^T X, dY W); every activation runs forward and backward.
#[test]
fn dense_and_activation_kernels_match_the_cpu() {
    let m = model(
        "[[layers]]\ntype = \"dense\"\nout = 70\n[[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"dense\"\nout = 65\n[[layers]]\ntype = \"relu6\"\n\
         [[layers]]\ntype = \"dense\"\nout = 33\n[[layers]]\ntype = \"clamp\"\nmin = -0.3\nmax = 0.4\n\
         [[layers]]\ntype = \"dense\"\nout = 17\n[[layers]]\ntype = \"tanh\"\n\
         [[layers]]\ntype = \"dense\"\nout = 9\n[[layers]]\ntype = \"sigmoid\"\n\
         [[layers]]\ntype = \"dense\"\nout = 3\n",
        1,
        130,
        3,
    );
    check_step(
        "dense",
        &m,
        77,
        Some(&[0.5, 2.0, 1.25]),
        OptimizerConfig::adam(1e-2),
    );
}

/// Conv1d (causal with dilation, valid with stride), max pooling with overlapping windows, average pooling,
/// global average pooling.
#[test]
fn conv_and_pooling_kernels_match_the_cpu() {
    let m = model(
        "[[layers]]\ntype = \"conv1d\"\nout = 6\nkernel = 3\ndilation = 2\npadding = \"causal\"\n\
         [[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"maxpool1d\"\nkernel = 3\nstride = 1\n\
         [[layers]]\ntype = \"conv1d\"\nout = 5\nkernel = 3\nstride = 2\n\
         [[layers]]\ntype = \"tanh\"\n\
         [[layers]]\ntype = \"avgpool1d\"\nkernel = 2\n\
         [[layers]]\ntype = \"global_avg_pool\"\n\
         [[layers]]\ntype = \"dense\"\nout = 3\n",
        20,
        4,
        5,
    );
    check_step("conv", &m, 9, None, OptimizerConfig::adam(1e-2));
}

/// The conv-window shape: conv1d, max pooling and flatten into a dense layer.
#[test]
fn conv_flatten_kernels_match_the_cpu() {
    let m = model(
        "[[layers]]\ntype = \"conv1d\"\nout = 8\nkernel = 5\npadding = \"causal\"\n\
         [[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"conv1d\"\nout = 8\nkernel = 5\nstride = 2\ndilation = 2\n\
         [[layers]]\ntype = \"sigmoid\"\n\
         [[layers]]\ntype = \"maxpool1d\"\nkernel = 2\n\
         [[layers]]\ntype = \"flatten\"\n\
         [[layers]]\ntype = \"dense\"\nout = 3\n",
        32,
        7,
        6,
    );
    check_step(
        "conv-flatten",
        &m,
        13,
        Some(&[1.0, 0.0, 3.0]),
        OptimizerConfig::sgd(0.05, 0.0),
    );
}

/// The distillation loss and its gradient against `kd_loss`.
#[test]
fn distillation_loss_matches_the_cpu() {
    let Some(ctx) = context_or_skip("distillation_loss_matches_the_cpu") else {
        return;
    };
    let student = model("[[layers]]\ntype = \"dense\"\nout = 3\n", 1, 5, 1);
    for (alpha, temperature, weights) in [
        (0.7f32, 4.0f32, None),
        (0.3, 1.5, Some(&[2.0f32, 0.5, 1.0][..])),
        (1.0, 0.5, None),
        (0.0, 2.0, Some(&[1.0f32, 1.0, 4.0][..])),
    ] {
        let (x, y) = random(300, 5, 3);
        let (teacher, _) = random(300, 3, 4);
        let teacher = teacher.mapv(|v| v * 4.0);
        let mut t = trainer(
            &ctx,
            &student,
            &OptimizerConfig::adam(1e-3),
            LossDesc::Distill { alpha, temperature },
            300,
        );
        t.set_class_weights(weights).unwrap();
        let got = t
            .trace_step(x.as_slice().unwrap(), &y, Some(teacher.as_slice().unwrap()))
            .unwrap();
        let logits = student.forward(x.view());
        let cfg = DistillConfig { temperature, alpha };
        let want = kd_loss(logits.view(), teacher.view(), &y, &cfg, weights).unwrap();
        let what = format!("kd alpha {alpha} T {temperature}");
        assert_close(
            &format!("{what}: gradient"),
            &got.logits_grad,
            want.grad.as_slice().unwrap(),
            KERNEL,
        );
        let loss = got.stats.mean_loss();
        assert!(
            (loss - want.loss).abs() <= 1e-4 * (1.0 + want.loss.abs()),
            "{what}: loss {loss} vs {}",
            want.loss
        );
        assert_eq!(got.stats.correct as usize, want.correct, "{what}");
    }
}

/// SGD with Nesterov momentum and weight decay, and Adam with weight decay, over several steps on a pruned model:
/// the parameters follow the CPU optimizer and pruned weights stay exactly +0.0.
#[test]
fn optimizers_and_masks_match_the_cpu_over_several_steps() {
    let Some(ctx) = context_or_skip("optimizers_and_masks_match_the_cpu_over_several_steps") else {
        return;
    };
    let mut m = model(
        "[[layers]]\ntype = \"dense\"\nout = 24\n[[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"dense\"\nout = 3\n",
        1,
        10,
        8,
    );
    crate::prune::ModelPruner::new(&mut m)
        .global_unstructured_pruning(0.5)
        .unwrap();
    assert!(m.has_masks());
    let configs = [
        OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-3,
        },
        OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.5,
            nesterov: false,
            weight_decay: 0.0,
        },
        OptimizerConfig::Adam {
            lr: 1e-2,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 1e-2,
        },
    ];
    let (x, y) = random(64, 10, 9);
    for opt in configs {
        let mut t = trainer(&ctx, &m, &opt, LossDesc::CrossEntropy, 16);
        t.upload_train_set(x.as_slice().unwrap(), &y, None).unwrap();
        let order: Vec<usize> = (0..64).collect();
        t.run_epoch(&order).unwrap();
        let got = t.params().unwrap();
        let mut cpu = m.clone();
        let mut optimizer = Optimizer::new(opt.clone(), &cpu).unwrap();
        for idx in order.chunks(16) {
            let xb = x.select(ndarray::Axis(0), idx);
            let yb: Vec<u8> = idx.iter().map(|&i| y[i]).collect();
            let (logits, caches) = cpu.forward_train(xb.view());
            let ce = cross_entropy(logits.view(), &yb, None).unwrap();
            let grads = cpu.backward(&caches, ce.grad);
            optimizer.step(&mut cpu, &grads).unwrap();
        }
        let want = cpu.state_dict();
        let masks = m.mask_dict();
        for (j, (w, b)) in got.iter().enumerate() {
            assert_close(
                &format!("{opt:?}: {}", want[2 * j].0),
                w,
                &want[2 * j].2,
                STEP,
            );
            assert_close(
                &format!("{opt:?}: {}", want[2 * j + 1].0),
                b,
                &want[2 * j + 1].2,
                STEP,
            );
            let mask = &masks[j].2;
            for (k, (&v, &mk)) in w.iter().zip(mask).enumerate() {
                if mk == 0.0 {
                    assert_eq!(
                        v.to_bits(),
                        0,
                        "{opt:?}: pruned weight {k} of layer {j} is {v}"
                    );
                }
            }
        }
        // The optimizer state comes back in the host's layout and continues the CPU run.
        let mut gpu_model = m.clone();
        let mut gpu_opt = Optimizer::new(opt.clone(), &gpu_model).unwrap();
        let mut engine = GpuEngine {
            trainer: t,
            names: gpu_model.parameter_shapes(),
            snapshot: false,
            val_rows: 0,
        };
        engine.sync(&mut gpu_model, &mut gpu_opt).unwrap();
        assert_eq!(gpu_opt.steps(), optimizer.steps());
        for (a, b) in gpu_opt
            .state()
            .tensors
            .iter()
            .zip(optimizer.state().tensors.iter())
        {
            assert_eq!(a.0, b.0);
            assert_close(&format!("{opt:?}: {}", a.0), &a.2, &b.2, STEP);
        }
    }
}

/// A layer whose shapes do not fit is named in the error.
#[test]
fn bad_layers_are_named() {
    let Some(ctx) = context_or_skip("bad_layers_are_named") else {
        return;
    };
    let desc = ModelDesc {
        time_steps: 8,
        features: 2,
        classes: 3,
        layers: vec![
            tickq_gpu::train::LayerDesc::Conv1d {
                in_channels: 2,
                out_channels: 4,
                kernel: 3,
                stride: 1,
                dilation: 1,
                pad_left: 0,
            },
            tickq_gpu::train::LayerDesc::Dense {
                inputs: 24,
                outputs: 3,
            },
        ],
    };
    let params = vec![
        tickq_gpu::train::ParamTensors {
            weight: vec![0.0; 24],
            bias: vec![0.0; 4],
            mask: None,
        };
        2
    ];
    let err = GpuTrainer::new(
        &ctx,
        &desc,
        &params,
        optimizer_desc(&OptimizerConfig::adam(1e-3)),
        LossDesc::CrossEntropy,
        8,
    )
    .unwrap_err();
    assert!(
        matches!(err, TrainGpuError::Layer { index: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("layer 1 (dense)"), "{err}");
    assert!(err.to_string().contains("flatten"), "{err}");
}

/// Epochs on the bundled ticks: the GPU run ends within one accuracy point of the CPU run from the same seed.
/// (That two GPU runs are bit-identical is checked on a smaller run by
/// `streamed_data_sets_train_like_resident_ones`.)
#[test]
fn training_on_the_bundled_data_matches_the_cpu_run() {
    let Some(ctx) = context_or_skip("training_on_the_bundled_data_matches_the_cpu_run") else {
        return;
    };
    let path = crate::data::default_data_path().unwrap();
    let trades = crate::data::load_trades(&path).unwrap();
    // A contiguous slice from the start keeps the test fast on software Vulkan with two cores (40,000 trades and
    // four epochs took four minutes of CI's time; 20,000 and three still cover several epochs of every kernel).
    let data = crate::steps::prepare_from_trades(
        &trades[..20_000],
        "bundled slice".into(),
        [0; 32],
        &crate::data::DatasetConfig::default(),
        None,
    )
    .unwrap();
    let arch = Architecture::from_toml_str(crate::steps::DEMO_ARCH).unwrap();
    let cfg = crate::train::TrainConfig {
        epochs: 3,
        patience: 0,
        ..crate::steps::demo_train_config()
    };
    let run = |device: &TrainDevice| {
        crate::steps::train_model_on(device, arch.clone(), &data, &cfg, &mut |_| {}).unwrap()
    };
    let (cpu, cpu_history) = run(&TrainDevice::Cpu);
    let (gpu, gpu_history) = run(&TrainDevice::Gpu(ctx.clone()));
    assert_eq!(gpu_history.epochs.len(), cpu_history.epochs.len());
    let test_x = data.normalized(data.splits.test.x.view());
    let accuracy = |m: &Sequential| {
        let p = m.predict(test_x.view());
        let hits = p
            .iter()
            .zip(&data.splits.test.y)
            .filter(|(p, y)| **p == usize::from(**y))
            .count();
        hits as f64 / p.len() as f64
    };
    let (a_cpu, a_gpu) = (accuracy(&cpu), accuracy(&gpu));
    eprintln!(
        "test accuracy after {} epochs: CPU {a_cpu:.4}, GPU {a_gpu:.4}; final validation loss CPU {}, GPU {}",
        cfg.epochs,
        cpu_history.epochs.last().unwrap().val_loss,
        gpu_history.epochs.last().unwrap().val_loss
    );
    assert!((a_cpu - a_gpu).abs() <= 0.01, "CPU {a_cpu} vs GPU {a_gpu}");
    for (c, g) in cpu_history.epochs.iter().zip(&gpu_history.epochs) {
        assert!(
            (c.train_accuracy - g.train_accuracy).abs() <= 0.01,
            "{c:?} vs {g:?}"
        );
        assert!(
            (c.val_accuracy - g.val_accuracy).abs() <= 0.01,
            "{c:?} vs {g:?}"
        );
    }
}

/// A data set too large to stay resident is streamed in chunks of batches: same kernels, same order, so the
/// weights and statistics are bit-identical to the resident run.
#[test]
fn streamed_data_sets_train_like_resident_ones() {
    let Some(ctx) = context_or_skip("streamed_data_sets_train_like_resident_ones") else {
        return;
    };
    let m = model(
        "[[layers]]\ntype = \"conv1d\"\nout = 4\nkernel = 3\n[[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nout = 3\n",
        6,
        3,
        2,
    );
    let (x, y) = random(203, 18, 5);
    let (vx, vy) = random(45, 18, 6);
    let (teacher, _) = random(203, 3, 7);
    let mut order: Vec<usize> = (0..203).rev().collect();
    order.swap(3, 100);
    let run = |limit: Option<u64>| {
        let loss = LossDesc::Distill {
            alpha: 0.5,
            temperature: 2.0,
        };
        let mut t = trainer(&ctx, &m, &OptimizerConfig::adam(1e-2), loss, 16);
        if let Some(l) = limit {
            t.set_resident_limit(l);
        }
        t.upload_train_set(x.as_slice().unwrap(), &y, Some(teacher.as_slice().unwrap()))
            .unwrap();
        t.upload_val_set(vx.as_slice().unwrap(), &vy).unwrap();
        let mut stats = Vec::new();
        for _ in 0..2 {
            stats.push(t.run_epoch(&order).unwrap());
        }
        (stats, t.params().unwrap())
    };
    let resident = run(None);
    // Two batches of 16 rows of 18 values per chunk: several chunks per epoch and per validation pass.
    let streamed = run(Some(2 * 16 * 18 * 4));
    assert_eq!(resident, streamed);
}

/// When the GPU cannot run a model (here: batches too large for the adapter's buffers), `auto` trains on the
/// CPU (the same weights as a CPU run) and `gpu` is an error naming the buffer.
#[test]
fn auto_falls_back_to_the_cpu_and_gpu_refuses() {
    let Some(ctx) = context_or_skip("auto_falls_back_to_the_cpu_and_gpu_refuses") else {
        return;
    };
    let m = model(
        "[[layers]]\ntype = \"dense\"\nout = 64\n[[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"dense\"\nout = 3\n",
        1,
        4,
        3,
    );
    let (x, y) = random(40, 4, 1);
    // 4 M rows x 64 values x 4 bytes is beyond any adapter's storage binding.
    let cfg = crate::train::TrainConfig {
        epochs: 2,
        batch_size: 4_000_000,
        ..Default::default()
    };
    let run = |device: &TrainDevice| {
        let mut m = m.clone();
        crate::train::train_on(
            device,
            &mut m,
            x.view(),
            &y,
            x.view(),
            &y,
            &cfg,
            &mut |_| {},
        )
        .map(|_| m.state_dict())
    };
    let cpu = run(&TrainDevice::Cpu).unwrap();
    assert_eq!(run(&TrainDevice::Auto(ctx.clone())).unwrap(), cpu);
    let err = run(&TrainDevice::Gpu(ctx.clone())).unwrap_err().to_string();
    assert!(
        err.contains("GPU training") && err.contains("train.act"),
        "{err}"
    );
}

/// `distill_train_on` on the GPU follows the CPU run: same epochs, losses and final weights within rounding.
#[test]
fn distillation_on_the_gpu_follows_the_cpu_run() {
    let Some(ctx) = context_or_skip("distillation_on_the_gpu_follows_the_cpu_run") else {
        return;
    };
    let teacher = model(
        "[[layers]]\ntype = \"dense\"\nout = 32\n[[layers]]\ntype = \"tanh\"\n[[layers]]\ntype = \"dense\"\nout = 3\n",
        1,
        6,
        4,
    );
    let student = model(
        "[[layers]]\ntype = \"dense\"\nout = 8\n[[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"dense\"\nout = 3\n",
        1,
        6,
        5,
    );
    let (x, y) = random(500, 6, 12);
    let (vx, vy) = random(120, 6, 13);
    let cfg = DistillConfig {
        temperature: 3.0,
        alpha: 0.6,
    };
    let train = crate::train::TrainConfig {
        epochs: 3,
        batch_size: 64,
        patience: 0,
        class_weights: crate::train::ClassWeights::Balanced,
        ..Default::default()
    };
    let run = |device: &TrainDevice| {
        let mut s = student.clone();
        let h = crate::distill::distill_train_on(
            device,
            &teacher,
            &mut s,
            x.view(),
            &y,
            vx.view(),
            &vy,
            &cfg,
            &train,
            &mut |_| {},
        )
        .unwrap();
        (s, h)
    };
    let (cpu, cpu_h) = run(&TrainDevice::Cpu);
    let (gpu, gpu_h) = run(&TrainDevice::Gpu(ctx.clone()));
    assert_eq!(cpu_h.best_epoch, gpu_h.best_epoch);
    for (c, g) in cpu_h.epochs.iter().zip(&gpu_h.epochs) {
        assert!(
            (c.train_loss - g.train_loss).abs() <= 1e-4 * (1.0 + c.train_loss.abs()),
            "{c:?} vs {g:?}"
        );
        assert!(
            (c.val_loss - g.val_loss).abs() <= 1e-4 * (1.0 + c.val_loss.abs()),
            "{c:?} vs {g:?}"
        );
        assert!(
            (c.train_accuracy - g.train_accuracy).abs() <= 0.005,
            "{c:?} vs {g:?}"
        );
    }
    for ((name, _, c), (_, _, g)) in cpu.state_dict().iter().zip(gpu.state_dict().iter()) {
        assert_close(&format!("distilled {name}"), g, c, STEP);
    }
}

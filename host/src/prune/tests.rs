use ndarray::{Array2, Axis};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::model::{Architecture, LayerSpec, Optimizer, OptimizerConfig, cross_entropy};
use crate::test_support::*;
use crate::train::TrainConfig;

/// Hidden dense layers `fc1` (12, followed by `first`) and `fc2` (16, followed by ReLU).
fn mlp_with(first: LayerSpec) -> Architecture {
    mlp(8, &[(12, first), (16, ReLU)])
}

fn mlp_net() -> Architecture {
    mlp_with(ReLU)
}

/// A causal `conv1` (6 channels) followed by `first`, then `second` (the 8-channel `conv2`), ReLU, max
/// pooling and the dense head.
fn conv_with(first: LayerSpec, second: LayerSpec) -> Architecture {
    let layers = [
        conv(6, 3).causal(),
        first,
        second,
        ReLU,
        max_pool(2),
        Flatten,
        dense(3),
    ];
    arch("conv", 3, [12, 4], &layers)
}

fn conv_net() -> Architecture {
    conv_with(ReLU, conv(8, 2))
}

fn model(arch: Architecture, seed: u64) -> Sequential {
    seeded_model(arch, seed)
}

fn inputs(model: &Sequential, n: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((n, model.input_len()), || rng.random::<f32>() * 4.0 - 2.0)
}

/// Labels that depend on the input, so training has something to learn.
fn labels(x: &Array2<f32>) -> Vec<u8> {
    x.rows()
        .into_iter()
        .map(|r| {
            let s: f32 = r.iter().take(3).sum();
            if s < -0.7 {
                0
            } else if s > 0.7 {
                2
            } else {
                1
            }
        })
        .collect()
}

fn weights(model: &Sequential, name: &str) -> Vec<f32> {
    model
        .layers
        .iter()
        .find(|l| layer_name(l) == Some(name))
        .map(weight_values)
        .unwrap()
}

fn mask(model: &Sequential, name: &str) -> Vec<f32> {
    model
        .layers
        .iter()
        .find(|l| layer_name(l) == Some(name))
        .and_then(Layer::mask_values)
        .unwrap()
}

fn zeros(v: &[f32]) -> usize {
    v.iter().filter(|x| **x == 0.0).count()
}

/// The largest difference between two logit matrices, relative to their scale.
fn max_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

// Float tolerance for comparing a shrunk model with its zeroed twin: the sums run over different numbers of
// exact zeros, which may change the rounding of the last bits only.
const TOL: f32 = 1e-5;

#[test]
fn unstructured_pruning_zeroes_the_smallest_weights_of_each_layer() {
    let mut m = model(mlp_net(), 1);
    let before = m.clone();
    let mut p = ModelPruner::new(&mut m);
    p.unstructured_pruning(&["fc1", "fc2"], 0.5).unwrap();
    let stats = p.get_pruning_statistics();
    for (name, n) in [("fc1", 96), ("fc2", 192)] {
        let w = weights(&m, name);
        let mk = mask(&m, name);
        assert_eq!(zeros(&mk), n / 2, "{name}");
        assert_eq!(zeros(&w), n / 2, "{name}");
        // Every pruned original weight is no larger than every kept one.
        let orig = weights(&before, name);
        let pruned_max = orig
            .iter()
            .zip(&mk)
            .filter(|(_, m)| **m == 0.0)
            .fold(0.0f32, |a, (w, _)| a.max(w.abs()));
        let kept_min = orig
            .iter()
            .zip(&mk)
            .filter(|(_, m)| **m == 1.0)
            .fold(f32::INFINITY, |a, (w, _)| a.min(w.abs()));
        assert!(pruned_max <= kept_min, "{name}: {pruned_max} > {kept_min}");
    }
    assert!(m.layers[4].mask_values().is_none(), "fc3 is untouched");
    assert_eq!(stats.layers[0].sparsity, 50.0);
    assert_eq!(stats.layers[2].sparsity, 0.0);

    // The amount is the resulting sparsity, counting earlier pruning: 0.3 after 0.5 changes nothing,
    // 0.75 prunes a further quarter.
    let mut p = ModelPruner::new(&mut m);
    p.unstructured_pruning(&["fc1"], 0.3).unwrap();
    assert_eq!(zeros(&mask(&m, "fc1")), 48);
    let kept_before = mask(&m, "fc1");
    ModelPruner::new(&mut m)
        .unstructured_pruning(&["fc1"], 0.75)
        .unwrap();
    let after = mask(&m, "fc1");
    assert_eq!(zeros(&after), 72);
    assert!(
        kept_before
            .iter()
            .zip(&after)
            .all(|(b, a)| *b == 1.0 || *a == 0.0),
        "masks never revive a weight"
    );
}

#[test]
fn statistics_match_counted_zeros() {
    let mut m = model(conv_net(), 2);
    let mut p = ModelPruner::new(&mut m);
    p.unstructured_pruning(&["conv2"], 0.6).unwrap();
    p.nm_pruning_layers(&["conv1"], 1, 4).unwrap();
    let stats = p.get_pruning_statistics();
    let mut zero_total = 0;
    let mut all_total = 0;
    for (l, name) in stats.layers.iter().zip(["conv1", "conv2", "fc1"]) {
        let w = weights(&m, name);
        assert_eq!(l.name, name);
        assert_eq!(l.zero_parameters, zeros(&w), "{name}");
        assert_eq!(l.total_parameters, w.len(), "{name}");
        assert!((l.sparsity - 100.0 * zeros(&w) as f64 / w.len() as f64).abs() < 1e-12);
        zero_total += zeros(&w);
        all_total += w.len();
    }
    assert_eq!(stats.zero_parameters, zero_total);
    assert_eq!(stats.total_parameters, all_total);
    assert_eq!(stats.parameters, m.num_parameters());
    assert!((stats.global_sparsity - 100.0 * zero_total as f64 / all_total as f64).abs() < 1e-12);
    assert_eq!(
        stats.layers.iter().map(|l| l.masked).collect::<Vec<_>>(),
        vec![true, true, false]
    );
    // conv1: 6 x 4 x 3 weights at 12 output steps; conv2: 8 x 6 x 2 at 11; fc1: 3 x 40 once.
    assert_eq!(
        stats.layers.iter().map(|l| l.macs).collect::<Vec<_>>(),
        vec![72 * 12, 96 * 11, 120]
    );
    let json = serde_json::to_value(&stats).unwrap();
    assert!(
        json["global_sparsity"].is_number() && json["layers"][1]["zero_parameters"].is_number()
    );
}

#[test]
fn global_pruning_uses_one_threshold_across_layers() {
    let mut m = model(mlp_net(), 3);
    let before = m.clone();
    ModelPruner::new(&mut m)
        .global_unstructured_pruning(0.7)
        .unwrap();
    let mut pruned_max = 0.0f32;
    let mut kept_min = f32::INFINITY;
    let mut pruned = 0;
    let mut total = 0;
    let mut per_layer = Vec::new();
    for name in ["fc1", "fc2", "fc3"] {
        let (orig, mk) = (weights(&before, name), mask(&m, name));
        for (w, k) in orig.iter().zip(&mk) {
            if *k == 0.0 {
                pruned_max = pruned_max.max(w.abs());
                pruned += 1;
            } else {
                kept_min = kept_min.min(w.abs());
            }
        }
        total += orig.len();
        per_layer.push(zeros(&mk) as f64 / orig.len() as f64);
    }
    assert_eq!(pruned, (0.7 * total as f64).round() as usize);
    assert!(pruned_max <= kept_min, "{pruned_max} > {kept_min}");
    // fc1 has the largest initial weights (fan-in 8), so one global threshold prunes it least.
    assert!(per_layer[0] < per_layer[1], "{per_layer:?}");
}

#[test]
fn nm_pruning_keeps_the_n_largest_of_every_group() {
    for (n, m) in [(2, 4), (1, 4)] {
        // Dense: groups of consecutive input columns.
        let mut md = model(mlp_net(), 4);
        let before = md.clone();
        ModelPruner::new(&mut md)
            .nm_pruning_layers(&["fc1", "fc2"], n, m)
            .unwrap();
        for (name, width) in [("fc1", 8), ("fc2", 12)] {
            let (orig, w) = (weights(&before, name), weights(&md, name));
            for (row_o, row_w) in orig.chunks(width).zip(w.chunks(width)) {
                for (go, gw) in row_o.chunks(m).zip(row_w.chunks(m)) {
                    assert_keeps_n_largest(go, gw, n, &format!("{name} {n}:{m}"));
                    // Kept weights are unchanged.
                    assert!(go.iter().zip(gw).all(|(o, w)| *w == 0.0 || o == w));
                }
            }
        }
        // Conv1d: groups along the tap-major row [k][in] of tickq-core.
        let mut mc = model(conv_net(), 5);
        let before = mc.clone();
        ModelPruner::new(&mut mc)
            .nm_pruning_layers(&["conv2"], n, m)
            .unwrap();
        let (Layer::Conv1d(c0), Layer::Conv1d(c1)) = (&before.layers[2], &mc.layers[2]) else {
            panic!("conv2 expected");
        };
        let (o, c_in, k) = c1.weight.dim();
        for ch in 0..o {
            let tap_major = |w: &ndarray::Array3<f32>| -> Vec<f32> {
                (0..k)
                    .flat_map(|t| (0..c_in).map(move |ci| (t, ci)))
                    .map(|(t, ci)| w[[ch, ci, t]])
                    .collect()
            };
            let (row_o, row_w) = (tap_major(&c0.weight), tap_major(&c1.weight));
            for (go, gw) in row_o.chunks(m).zip(row_w.chunks(m)) {
                assert_keeps_n_largest(go, gw, n, &format!("conv {n}:{m}"));
            }
        }
    }
}

/// One N:M group after pruning: `pruned` keeps exactly `n` of the `original` weights, and none it dropped
/// is larger in magnitude than one it kept.
fn assert_keeps_n_largest(original: &[f32], pruned: &[f32], n: usize, what: &str) {
    assert_eq!(pruned.iter().filter(|v| **v != 0.0).count(), n, "{what}");
    let kept_min = original
        .iter()
        .zip(pruned)
        .filter(|(_, w)| **w != 0.0)
        .fold(f32::INFINITY, |a, (o, _)| a.min(o.abs()));
    let dropped_max = original
        .iter()
        .zip(pruned)
        .filter(|(_, w)| **w == 0.0)
        .fold(0.0f32, |a, (o, _)| a.max(o.abs()));
    assert!(dropped_max <= kept_min, "{what}");
}

#[test]
fn bad_arguments_are_clear_errors_and_leave_the_model_alone() {
    let mut m = model(mlp_net(), 6);
    let before = m.clone();
    let mut p = ModelPruner::new(&mut m);
    let e = p.unstructured_pruning(&["fc9"], 0.5).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown layer `fc9`; the prunable layers are: fc1, fc2, fc3"
    );
    let e = p.unstructured_pruning(&[] as &[&str], 0.5).unwrap_err();
    assert!(matches!(e, PruneError::NoLayers { .. }), "{e}");
    for amount in [1.0, -0.1, f32::NAN, 1.5] {
        let e = p.unstructured_pruning(&["fc1"], amount).unwrap_err();
        assert!(matches!(e, PruneError::Amount { .. }), "{e}");
        assert!(e.to_string().contains("[0, 1)"), "{e}");
        assert!(matches!(
            p.global_unstructured_pruning(amount),
            Err(PruneError::Amount { .. })
        ));
        assert!(matches!(
            p.structured_pruning(&["fc1"], amount, 0, Norm::L1),
            Err(PruneError::Amount { .. })
        ));
    }
    let e = p
        .structured_pruning(&["fc1"], 0.5, 2, Norm::L2)
        .unwrap_err();
    assert!(
        matches!(e, PruneError::Dim { dim: 2, .. }) && e.to_string().contains("[out, in]"),
        "{e}"
    );
    let e = p
        .structured_pruning(&["fc3"], 0.5, 0, Norm::L2)
        .unwrap_err();
    assert!(e.to_string().contains("classes"), "{e}");
    let e = p
        .structured_pruning(&["fc1"], 0.5, 1, Norm::L2)
        .unwrap_err();
    assert!(e.to_string().contains("input features"), "{e}");
    let e = p
        .structured_pruning(&["fc2"], 0.99, 0, Norm::L2)
        .unwrap_err();
    assert!(e.to_string().contains("at least one must remain"), "{e}");
    // fc1 would shrink before fc3 refuses; the model must stay whole.
    assert!(
        p.structured_pruning(&["fc1", "fc3"], 0.5, 0, Norm::L1)
            .is_err()
    );
    for (n, m_) in [(0, 4), (3, 2), (2, 0)] {
        let e = p.nm_pruning(n, m_).unwrap_err();
        assert!(matches!(e, PruneError::NmArgs { .. }), "{e}");
    }
    let e = p.nm_pruning(2, 3).unwrap_err();
    assert_eq!(
        e.to_string(),
        "layer `fc1`: groups of m = 3 do not divide its 8 inputs"
    );
    assert_eq!(*p.model(), before);

    let mut c = model(conv_net(), 6);
    let mut p = ModelPruner::new(&mut c);
    let e = p
        .structured_pruning(&["conv1"], 0.5, 2, Norm::L1)
        .unwrap_err();
    assert!(e.to_string().contains("kernel taps"), "{e}");
    let e = p.nm_pruning_layers(&["conv1"], 2, 8).unwrap_err();
    assert!(e.to_string().contains("12 kernel x input weights"), "{e}");
    assert!(PolynomialSchedule::new(0.5, 0.4, 3).is_err());
    assert!(PolynomialSchedule::new(0.0, 1.0, 3).is_err());
    assert!(PolynomialSchedule::new(0.0, 0.5, 0).is_err());
    assert!("3".parse::<Norm>().is_err());
    assert_eq!("inf".parse::<Norm>(), Ok(Norm::Linf));
}

#[test]
fn masks_persist_through_training() {
    let mut m = model(mlp_net(), 7);
    let x = inputs(&m, 600, 1);
    let y = labels(&x);
    ModelPruner::new(&mut m)
        .unstructured_pruning(&["fc1", "fc2", "fc3"], 0.6)
        .unwrap();
    let pruned = m.clone();
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 64,
        patience: 0,
        optimizer: OptimizerConfig::adam(1e-2),
        ..TrainConfig::default()
    };
    fit(&mut m, x.view(), &y, x.view(), &y, &cfg).unwrap();
    for name in ["fc1", "fc2", "fc3"] {
        let (w0, w1, mk) = (weights(&pruned, name), weights(&m, name), mask(&m, name));
        assert_eq!(mk, mask(&pruned, name), "{name}: the mask is unchanged");
        let mut moved = 0;
        for ((a, b), k) in w0.iter().zip(&w1).zip(&mk) {
            if *k == 0.0 {
                assert_eq!(
                    b.to_bits(),
                    0.0f32.to_bits(),
                    "{name}: a pruned weight moved"
                );
            } else if a != b {
                moved += 1;
            }
        }
        assert!(
            moved * 10 > zeros(&mk) * 4,
            "{name}: only {moved} kept weights moved"
        );
    }

    // An optimizer with momentum from before pruning cannot revive pruned weights either.
    let mut m = model(mlp_net(), 8);
    let mut opt = Optimizer::new(OptimizerConfig::sgd(0.1, 0.9), &m).unwrap();
    let step = |m: &mut Sequential, opt: &mut Optimizer| {
        let (logits, caches) = m.forward_train(x.view());
        let ce = cross_entropy(logits.view(), &y, None).unwrap();
        let grads = m.backward(&caches, ce.grad);
        opt.step(m, &grads).unwrap();
    };
    for _ in 0..3 {
        step(&mut m, &mut opt);
    }
    ModelPruner::new(&mut m)
        .global_unstructured_pruning(0.5)
        .unwrap();
    for _ in 0..3 {
        step(&mut m, &mut opt);
    }
    assert_eq!(PruningStatistics::of_model(&m).global_sparsity, 50.0);
    // The masked gradient is zero where the mask is.
    let (logits, caches) = m.forward_train(x.view());
    let ce = cross_entropy(logits.view(), &y, None).unwrap();
    let grads = m.backward(&caches, ce.grad);
    let mk = mask(&m, "fc2");
    assert!(
        grads.tensors[2]
            .iter()
            .zip(&mk)
            .all(|(g, k)| *k == 1.0 || *g == 0.0)
    );

    // remove() bakes the masks in, and from then on training may move those weights.
    let sparse = PruningStatistics::of_model(&m).zero_parameters;
    ModelPruner::new(&mut m).remove();
    assert!(!m.has_masks());
    assert_eq!(PruningStatistics::of_model(&m).zero_parameters, sparse);
    step(&mut m, &mut opt);
    assert!(PruningStatistics::of_model(&m).zero_parameters < sparse);
}

/// Zeroes output channels `removed` of weighted layer `i` (weight rows and bias), as dim-0 pruning's reference.
fn zero_outputs(m: &mut Sequential, i: usize, removed: &[usize]) {
    for &c in removed {
        match &mut m.layers[i] {
            Layer::Dense(d) => {
                d.weight.row_mut(c).fill(0.0);
                d.bias[c] = 0.0;
            }
            Layer::Conv1d(cv) => {
                cv.weight.index_axis_mut(Axis(0), c).fill(0.0);
                cv.bias[c] = 0.0;
            }
            _ => panic!("not weighted"),
        }
    }
}

/// The output channels of layer `i` whose rows are gone after pruning: the ones not matching a kept row.
fn removed_rows(before: &Sequential, after: &Sequential, i: usize) -> Vec<usize> {
    let rows = |m: &Sequential| -> Vec<Vec<f32>> {
        match &m.layers[i] {
            Layer::Dense(d) => d.weight.rows().into_iter().map(|r| r.to_vec()).collect(),
            Layer::Conv1d(c) => c
                .weight
                .outer_iter()
                .map(|r| r.iter().copied().collect())
                .collect(),
            _ => Vec::new(),
        }
    };
    let (b, a) = (rows(before), rows(after));
    (0..b.len()).filter(|r| !a.contains(&b[*r])).collect()
}

#[test]
fn structured_dense_shrink_equals_the_zeroed_model() {
    let m0 = model(mlp_net(), 9);
    let x = inputs(&m0, 64, 2);
    for norm in [Norm::L1, Norm::L2, Norm::Linf] {
        // dim 0 on fc1: 3 of 12 neurons go, with fc2's matching columns.
        let mut m = m0.clone();
        ModelPruner::new(&mut m)
            .structured_pruning(&["fc1"], 0.25, 0, norm)
            .unwrap();
        assert_eq!(m.arch.layers[0], LayerSpec::Dense { name: None, out: 9 });
        assert_eq!(
            m.num_parameters(),
            m0.num_parameters() - 3 * (8 + 1) - 3 * 16
        );
        let removed = removed_rows(&m0, &m, 0);
        assert_eq!(removed.len(), 3);
        // They are the rows with the smallest norms.
        let Layer::Dense(d) = &m0.layers[0] else {
            panic!()
        };
        let norms: Vec<f64> = d
            .weight
            .rows()
            .into_iter()
            .map(|r| norm.of(r.iter().copied()))
            .collect();
        let max_removed = removed.iter().map(|&r| norms[r]).fold(0.0, f64::max);
        assert!(
            (0..12)
                .filter(|r| !removed.contains(r))
                .all(|r| norms[r] >= max_removed)
        );
        let mut zeroed = m0.clone();
        zero_outputs(&mut zeroed, 0, &removed);
        assert!(max_diff(&m.forward(x.view()), &zeroed.forward(x.view())) < TOL);
    }

    // dim 1 on fc3: fc3 loses 8 of its 16 inputs (by column norm) and fc2 the matching neurons.
    let mut m = m0.clone();
    ModelPruner::new(&mut m)
        .structured_pruning(&["fc3"], 0.5, 1, Norm::L2)
        .unwrap();
    assert_eq!(m.arch.layers[2], LayerSpec::Dense { name: None, out: 8 });
    let removed = removed_rows(&m0, &m, 2);
    let mut zeroed = m0.clone();
    let Layer::Dense(d) = &mut zeroed.layers[4] else {
        panic!()
    };
    for &c in &removed {
        d.weight.column_mut(c).fill(0.0);
    }
    assert!(max_diff(&m.forward(x.view()), &zeroed.forward(x.view())) < TOL);

    // Masks shrink along with the weights, and the checkpoint of a shrunk model exports.
    let mut m = m0.clone();
    let mut p = ModelPruner::new(&mut m);
    p.unstructured_pruning(&["fc2"], 0.5).unwrap();
    p.structured_pruning(&["fc1", "fc2"], 0.25, 0, Norm::L1)
        .unwrap();
    let Layer::Dense(d) = &m.layers[2] else {
        panic!()
    };
    assert_eq!(d.weight_mask.as_ref().unwrap().dim(), (12, 9));
    assert!(m.forward(x.view()).iter().all(|v| v.is_finite()));
}

#[test]
fn structured_conv_shrink_through_pool_and_flatten_equals_the_zeroed_model() {
    let m0 = model(conv_net(), 10);
    let x = inputs(&m0, 32, 3);
    // conv2 feeds maxpool (11 -> 5 steps) and flatten: each removed channel takes 5 columns of fc1.
    let mut m = m0.clone();
    ModelPruner::new(&mut m)
        .structured_pruning(&["conv2"], 0.5, 0, Norm::L2)
        .unwrap();
    let Layer::Dense(fc) = &m.layers[6] else {
        panic!()
    };
    assert_eq!(fc.weight.dim(), (3, 20));
    let removed = removed_rows(&m0, &m, 2);
    assert_eq!(removed.len(), 4);
    let mut zeroed = m0.clone();
    zero_outputs(&mut zeroed, 2, &removed);
    assert!(max_diff(&m.forward(x.view()), &zeroed.forward(x.view())) < TOL);
    let stats = PruningStatistics::of_model(&m);
    assert!(stats.macs < PruningStatistics::of_model(&m0).macs);

    // conv1 (causal) feeds conv2 through ReLU: conv2 loses input channels.
    let mut m = m0.clone();
    ModelPruner::new(&mut m)
        .structured_pruning(&["conv1"], 0.5, 0, Norm::L1)
        .unwrap();
    let removed = removed_rows(&m0, &m, 0);
    let mut zeroed = m0.clone();
    zero_outputs(&mut zeroed, 0, &removed);
    assert!(max_diff(&m.forward(x.view()), &zeroed.forward(x.view())) < TOL);

    // dim 1 on fc1 after flatten ranks conv2's channels by their 5-column blocks.
    let mut m = m0.clone();
    ModelPruner::new(&mut m)
        .structured_pruning(&["fc1"], 0.25, 1, Norm::L1)
        .unwrap();
    let removed = removed_rows(&m0, &m, 2);
    assert_eq!(removed.len(), 2);
    let mut zeroed = m0.clone();
    let Layer::Dense(d) = &mut zeroed.layers[6] else {
        panic!()
    };
    for &c in &removed {
        d.weight
            .slice_mut(ndarray::s![.., c * 5..c * 5 + 5])
            .fill(0.0);
    }
    assert!(max_diff(&m.forward(x.view()), &zeroed.forward(x.view())) < TOL);
    let shapes = m.arch.shapes().unwrap();
    assert_eq!(shapes[5], crate::model::Shape::Flat(30));
}

#[test]
fn structured_removal_folds_a_nonzero_activation_constant() {
    // sigmoid(0) = 0.5: a zeroed neuron still feeds 0.5 forward, which the next layer's bias absorbs.
    let m0 = model(mlp_with(Sigmoid), 11);
    let x = inputs(&m0, 32, 4);
    let mut m = m0.clone();
    ModelPruner::new(&mut m)
        .structured_pruning(&["fc1"], 0.5, 0, Norm::L1)
        .unwrap();
    let mut zeroed = m0.clone();
    zero_outputs(&mut zeroed, 0, &removed_rows(&m0, &m, 0));
    assert!(max_diff(&m.forward(x.view()), &zeroed.forward(x.view())) < TOL);

    // Into a causally padded convolution the constant cannot be folded: refused, model unchanged.
    let mut m = model(conv_with(Sigmoid, conv(8, 2).causal()), 12);
    let before = m.clone();
    let e = ModelPruner::new(&mut m)
        .structured_pruning(&["conv1"], 0.5, 0, Norm::L1)
        .unwrap_err();
    assert!(e.to_string().contains("causally"), "{e}");
    assert_eq!(m, before);
}

#[test]
fn masks_round_trip_through_checkpoints() {
    let dir = std::env::temp_dir().join(format!("tickq-prune-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut m = model(conv_net(), 13);
    let mut p = ModelPruner::new(&mut m);
    p.unstructured_pruning(&["conv1", "fc1"], 0.5).unwrap();
    crate::checkpoint::save_checkpoint(&dir, &m, None).unwrap();
    let (state, _) = crate::checkpoint::read_safetensors(&dir.join("model.safetensors")).unwrap();
    let mut names: Vec<&str> = state.iter().map(|t| t.0.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "conv1.bias",
            "conv1.weight_mask",
            "conv1.weight_orig",
            "conv2.bias",
            "conv2.weight",
            "fc1.bias",
            "fc1.weight_mask",
            "fc1.weight_orig"
        ]
    );
    let (back, _) = crate::checkpoint::load_checkpoint(&dir).unwrap();
    assert_eq!(back, m);
    assert!(back.layers[0].is_masked() && !back.layers[2].is_masked());

    // `weight` + `weight_mask` loads too, and applies the mask.
    let mut alt: crate::model::StateDict = m.state_dict();
    alt.extend(m.mask_dict());
    for t in &mut alt {
        if t.0 == "fc1.weight" {
            t.2.iter_mut().for_each(|v| *v = 1.0);
        }
    }
    let mut loaded = model(conv_net(), 99);
    loaded.load_pruned_state_dict(&alt).unwrap();
    assert_eq!(mask(&loaded, "fc1"), mask(&m, "fc1"));
    assert_eq!(
        weights(&loaded, "fc1"),
        mask(&m, "fc1"),
        "ones times the mask is the mask"
    );

    // Broken mask sets are errors that leave the model unchanged.
    let good = m.pruned_state_dict();
    let before = loaded.clone();
    let mut bad = good.clone();
    bad.retain(|t| t.0 != "fc1.weight_mask");
    let e = loaded.load_pruned_state_dict(&bad).unwrap_err();
    assert!(e.to_string().contains("fc1.weight_mask: missing"), "{e}");
    let mut bad = good.clone();
    bad.iter_mut()
        .filter(|t| t.0 == "fc1.weight_mask")
        .for_each(|t| t.2[3] = 0.5);
    let e = loaded.load_pruned_state_dict(&bad).unwrap_err();
    assert!(e.to_string().contains("only 0 and 1"), "{e}");
    let mut bad = good.clone();
    bad.push(("conv9.weight_mask".into(), vec![1], vec![1.0]));
    let e = loaded.load_pruned_state_dict(&bad).unwrap_err();
    assert!(e.to_string().contains("conv9.weight_mask"), "{e}");
    let mut bad = good;
    bad.push(("fc1.weight".into(), vec![3, 40], vec![0.0; 120]));
    let e = loaded.load_pruned_state_dict(&bad).unwrap_err();
    assert!(e.to_string().contains("both present"), "{e}");
    assert_eq!(loaded, before);

    // A structurally pruned model saves its smaller architecture.
    let mut s = model(conv_net(), 14);
    ModelPruner::new(&mut s)
        .structured_pruning(&["conv1"], 0.5, 0, Norm::L2)
        .unwrap();
    crate::checkpoint::save_checkpoint(&dir, &s, None).unwrap();
    assert_eq!(crate::checkpoint::load_checkpoint(&dir).unwrap().0, s);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn polynomial_schedule_matches_hand_computed_values() {
    // s_t = 0.9 + (0 - 0.9) (1 - t/3)^3: 0, 0.9 - 0.9 * 8/27, 0.9 - 0.9 / 27, 0.9.
    let s = PolynomialSchedule::new(0.0, 0.9, 3).unwrap();
    let want = [0.0, 0.633_333_3, 0.866_666_7, 0.9];
    for (t, w) in want.iter().enumerate() {
        assert!(
            (s.sparsity_at(t) - w).abs() < 1e-6,
            "t = {t}: {}",
            s.sparsity_at(t)
        );
    }
    assert_eq!(s.sparsity_at(7), s.sparsity_at(3));
    assert_eq!(
        s.targets().iter().map(|t| t.0).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // From 0.5 to 0.8 over 2 steps: 0.5, 0.8 - 0.3 / 8 = 0.7625, 0.8.
    let s = PolynomialSchedule::new(0.5, 0.8, 2).unwrap();
    let targets = s.targets();
    assert_eq!(targets.len(), 3);
    for ((t, v), w) in targets.iter().zip([0.5, 0.7625, 0.8]) {
        assert!((v - w).abs() < 1e-6, "t = {t}: {v}");
    }
    let one = PolynomialSchedule::one_shot(0.4).unwrap();
    assert_eq!(one.targets(), vec![(1, 0.4)]);
}

#[test]
fn gradual_pruning_reports_every_step() {
    let mut m = model(mlp_net(), 15);
    let x = inputs(&m, 400, 5);
    let y = labels(&x);
    let data = FineTuneData {
        train_x: x.view(),
        train_y: &y,
        val_x: x.view(),
        val_y: &y,
        test: Some((x.view(), &y)),
    };
    let plan = PruningPlan {
        method: PruneMethod::Global,
        schedule: PolynomialSchedule::new(0.0, 0.8, 3).unwrap(),
        fine_tune: TrainConfig {
            epochs: 1,
            batch_size: 100,
            patience: 0,
            ..TrainConfig::default()
        },
    };
    let mut seen = 0;
    let mut epochs = 0;
    let history = prune_and_fine_tune(&mut m, &plan, &data, &mut |_| seen += 1, &mut |_| {
        epochs += 1
    })
    .unwrap();
    assert_eq!((history.len(), seen, epochs), (4, 4, 3));
    assert_eq!(history[0].target_sparsity, None);
    assert_eq!(history[0].sparsity, 0.0);
    let total = PruningStatistics::of_model(&m).total_parameters as f64;
    for (r, s) in history[1..].iter().zip([0.563_f64, 0.770, 0.8]) {
        let want = (s * total).round() / total * 100.0;
        assert!((r.sparsity - want).abs() < 0.2, "{r:?}");
        assert_eq!(r.fine_tune_epochs, 1);
        assert!(r.test_accuracy.is_some());
    }

    // Structured steps count channels of the original layers; N:M refuses a multi-step schedule.
    let mut s = model(mlp_net(), 16);
    let plan = PruningPlan {
        method: PruneMethod::Structured {
            layers: None,
            dim: 0,
            norm: Norm::L2,
        },
        schedule: PolynomialSchedule::new(0.0, 0.5, 2).unwrap(),
        fine_tune: TrainConfig {
            epochs: 0,
            ..TrainConfig::default()
        },
    };
    let history = prune_and_fine_tune(&mut s, &plan, &data, &mut |_| {}, &mut |_| {}).unwrap();
    // Step 1: s = 0.5 - 0.5 / 8 = 0.4375 of 12 and 16 channels (5 and 7); step 2: half (6 and 8).
    assert_eq!(
        s.arch.layers[..3],
        [
            LayerSpec::Dense { name: None, out: 6 },
            LayerSpec::ReLU,
            LayerSpec::Dense { name: None, out: 8 }
        ]
    );
    assert!(history[1].parameters > history[2].parameters);
    let plan = PruningPlan {
        method: PruneMethod::NM {
            n: 2,
            m: 4,
            layers: None,
        },
        ..plan
    };
    let e = prune_and_fine_tune(&mut s, &plan, &data, &mut |_| {}, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("one-shot"), "{e}");
}

#[test]
fn blob_statistics_count_the_int8_zeros() {
    let mut m = model(conv_net(), 17);
    ModelPruner::new(&mut m)
        .global_unstructured_pruning(0.6)
        .unwrap();
    let calib = inputs(&m, 64, 6);
    let info = crate::quant::ExportInfo {
        name: "conv".into(),
        feature_names: (0..4).map(|i| format!("f{i}")).collect(),
        label_names: vec!["down".into(), "flat".into(), "up".into()],
        mean: vec![0.0; 4],
        std: vec![1.0; 4],
        data_hash: [0; 32],
        feature_spec: None,
    };
    let q = crate::quant::static_quantize(
        &m,
        calib.view(),
        &info,
        &crate::quant::QuantConfig::default(),
    )
    .unwrap();
    let f32_stats = PruningStatistics::of_model(&m);
    let blob_stats = PruningStatistics::of_blob(&q.blob).unwrap();
    assert_eq!(blob_stats.layers.len(), 3);
    for (b, f) in blob_stats.layers.iter().zip(&f32_stats.layers) {
        assert_eq!(b.total_parameters, f.total_parameters);
        assert_eq!(b.shape, f.shape);
        // Every f32 zero is an int8 zero; a tiny weight may round to zero as well.
        assert!(b.zero_parameters >= f.zero_parameters, "{b:?} vs {f:?}");
        assert!(
            b.zero_parameters <= f.zero_parameters + f.total_parameters / 20,
            "{b:?}"
        );
    }
    // The int8 weights the spec holds give the same count, independently of the blob layout.
    let spec_zeros: usize = q
        .spec
        .layers
        .iter()
        .map(|l| match &l.op {
            tickq_core::encode::OpSpec::Dense { weights, .. }
            | tickq_core::encode::OpSpec::Conv1d { weights, .. } => {
                weights.iter().filter(|w| **w == 0).count()
            }
            _ => 0,
        })
        .sum();
    assert_eq!(blob_stats.zero_parameters, spec_zeros);
    // The count does not depend on how the blob stores the weights.
    use tickq_core::encode::{EncodeOptions, WeightFormat};
    for (format, name) in [
        (WeightFormat::Blocked, "blocked"),
        (WeightFormat::DenseDot, "dense-dot"),
        (WeightFormat::Sparse, "sparse"),
    ] {
        let q = crate::quant::static_quantize_with(
            &m,
            calib.view(),
            &info,
            &crate::quant::QuantConfig::default(),
            &EncodeOptions::format(format),
        )
        .unwrap();
        let stats = PruningStatistics::of_blob(&q.blob).unwrap();
        assert_eq!(stats.zero_parameters, spec_zeros, "{name}");
        assert!(
            stats
                .layers
                .iter()
                .all(|l| l.encoding.as_deref() == Some(name)),
            "{name}: {stats:?}"
        );
    }
    let mut bad = q.blob.clone();
    bad[100] ^= 1;
    assert!(matches!(
        PruningStatistics::of_blob(&bad),
        Err(PruneError::Blob(_))
    ));
}

#[test]
fn resumable_training_keeps_the_masks() {
    let x = inputs(&model(mlp_net(), 0), 300, 8);
    let y = labels(&x);
    let pruned = || {
        let mut m = model(mlp_net(), 18);
        ModelPruner::new(&mut m)
            .global_unstructured_pruning(0.5)
            .unwrap();
        m
    };
    let dir = std::env::temp_dir().join(format!("tickq-prune-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = |epochs: usize, dir: Option<std::path::PathBuf>| TrainConfig {
        epochs,
        batch_size: 50,
        patience: 0,
        checkpoint_dir: dir,
        ..TrainConfig::default()
    };
    let mut straight = pruned();
    fit(&mut straight, x.view(), &y, x.view(), &y, &cfg(3, None)).unwrap();
    let mut first = pruned();
    fit(
        &mut first,
        x.view(),
        &y,
        x.view(),
        &y,
        &cfg(1, Some(dir.clone())),
    )
    .unwrap();
    // The plain checkpoint in the state directory keeps the masks.
    let (saved, _) = crate::checkpoint::load_checkpoint(&dir).unwrap();
    assert_eq!(saved.mask_dict(), first.mask_dict());
    let mut resumed = pruned();
    fit(
        &mut resumed,
        x.view(),
        &y,
        x.view(),
        &y,
        &cfg(3, Some(dir.clone())),
    )
    .unwrap();
    assert_eq!(resumed, straight);
    // Other masks are another run.
    let mut other = model(mlp_net(), 18);
    ModelPruner::new(&mut other)
        .global_unstructured_pruning(0.6)
        .unwrap();
    let e = fit(
        &mut other,
        x.view(),
        &y,
        x.view(),
        &y,
        &cfg(4, Some(dir.clone())),
    )
    .unwrap_err();
    assert!(e.to_string().contains("pruning masks differ"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

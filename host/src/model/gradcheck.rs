//! Finite-difference checks of every layer's backward pass, plus known-answer forward tests.
//!
//! Each check defines the scalar `L = sum(r * layer(x))` for a fixed random `r`, perturbs every input and
//! parameter value by `+-EPS`, and compares the central difference with the analytic gradient.
//! Inputs are kept away from kinks (ReLU at 0, clamp bounds, max-pool ties) by more than `EPS`.

use ndarray::{Array1, Array2, Array3, array};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::test_support::{self as ts, Flatten, LayerExt, Sigmoid, Tanh};

const EPS: f32 = 1e-2;
const ATOL: f64 = 2e-3;
const RTOL: f64 = 1e-2;

fn rand_vec(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|_| lo + (hi - lo) * (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32)
        .collect()
}

/// Pushes values that are within `margin` of any kink to exactly `margin` away from it.
fn away_from(mut v: Vec<f32>, kinks: &[f32], margin: f32) -> Vec<f32> {
    for x in &mut v {
        for &k in kinks {
            if (*x - k).abs() < margin {
                *x = if *x >= k { k + margin } else { k - margin };
            }
        }
    }
    v
}

fn seq(n: usize, c: usize, t: usize, data: Vec<f32>) -> Tensor {
    Tensor::Seq(Array3::from_shape_vec((n, c, t), data).unwrap())
}

fn flat(n: usize, f: usize, data: Vec<f32>) -> Tensor {
    Tensor::Flat(Array2::from_shape_vec((n, f), data).unwrap())
}

fn like(t: &Tensor, data: Vec<f32>) -> Tensor {
    match t {
        Tensor::Seq(a) => Tensor::Seq(Array3::from_shape_vec(a.raw_dim(), data).unwrap()),
        Tensor::Flat(a) => Tensor::Flat(Array2::from_shape_vec(a.raw_dim(), data).unwrap()),
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.iter().copied().collect()
}

/// `L = sum(r * layer(x))`, accumulated in f64.
fn objective(layer: &Layer, x: &Tensor, r: &[f32]) -> f64 {
    let y = layer.forward(x.clone());
    y.iter()
        .zip(r)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

/// Returns a description of the first value where analytic and numeric gradients disagree.
fn compare(what: &str, analytic: &[f32], numeric: &[f64]) -> Result<(), String> {
    assert_eq!(analytic.len(), numeric.len(), "{what}: length");
    for (i, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        let a = f64::from(a);
        if (a - n).abs() > ATOL + RTOL * a.abs().max(n.abs()) {
            return Err(format!("{what}[{i}]: analytic {a}, numeric {n}"));
        }
    }
    Ok(())
}

fn with_params(layer: &Layer, tensor: usize, index: usize, delta: f32) -> Layer {
    let mut l = layer.clone();
    let slot = match &mut l {
        Layer::Dense(d) if tensor == 0 => d.weight.as_slice_mut().unwrap(),
        Layer::Dense(d) => d.bias.as_slice_mut().unwrap(),
        Layer::Conv1d(c) if tensor == 0 => c.weight.as_slice_mut().unwrap(),
        Layer::Conv1d(c) => c.bias.as_slice_mut().unwrap(),
        _ => unreachable!(),
    };
    slot[index] += delta;
    l
}

/// Checks input and parameter gradients of `layer` at `x`; returns the first mismatch.
fn gradcheck_with(
    layer: &Layer,
    x: &Tensor,
    seed: u64,
    corrupt: impl Fn(&mut Vec<f32>),
) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let y = layer.forward(x.clone());
    let r = rand_vec(&mut rng, y.iter().count(), -1.0, 1.0);
    let (y2, cache) = layer.forward_cached(x.clone());
    assert_eq!(y, y2, "{}: forward and forward_cached differ", layer.kind());
    let (dx, pg) = layer.backward(&cache, like(&y, r.clone()), true);
    let mut dx = values(&dx.expect("input gradient requested"));
    corrupt(&mut dx);
    let xv = values(x);
    let numeric: Vec<f64> = (0..xv.len())
        .map(|i| {
            let mut p = xv.clone();
            p[i] += EPS;
            let mut m = xv.clone();
            m[i] -= EPS;
            (objective(layer, &like(x, p), &r) - objective(layer, &like(x, m), &r))
                / (2.0 * f64::from(EPS))
        })
        .collect();
    compare(&format!("{} input", layer.kind()), &dx, &numeric)?;
    let n_params = layer.num_parameters();
    match pg {
        None => assert_eq!(
            n_params,
            0,
            "{} has parameters but no gradients",
            layer.kind()
        ),
        Some(pg) => {
            for (t, grad) in [pg.weight, pg.bias].into_iter().enumerate() {
                let numeric: Vec<f64> = (0..grad.len())
                    .map(|i| {
                        let p = objective(&with_params(layer, t, i, EPS), x, &r);
                        let m = objective(&with_params(layer, t, i, -EPS), x, &r);
                        (p - m) / (2.0 * f64::from(EPS))
                    })
                    .collect();
                compare(&format!("{} param {t}", layer.kind()), &grad, &numeric)?;
            }
        }
    }
    Ok(())
}

fn gradcheck(layer: &Layer, x: &Tensor) {
    if let Err(e) = gradcheck_with(layer, x, 99, |_| {}) {
        panic!("{e}");
    }
}

fn dense(rng: &mut ChaCha8Rng, i: usize, o: usize) -> Layer {
    Layer::Dense(Dense {
        name: "fc1".into(),
        weight: Array2::from_shape_vec((o, i), rand_vec(rng, o * i, -1.0, 1.0)).unwrap(),
        bias: Array1::from(rand_vec(rng, o, -1.0, 1.0)),
        weight_mask: None,
    })
}

fn conv(
    rng: &mut ChaCha8Rng,
    c_in: usize,
    o: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
) -> Layer {
    Layer::Conv1d(Conv1d {
        name: "conv1".into(),
        weight: Array3::from_shape_vec((o, c_in, k), rand_vec(rng, o * c_in * k, -1.0, 1.0))
            .unwrap(),
        bias: Array1::from(rand_vec(rng, o, -1.0, 1.0)),
        weight_mask: None,
        stride,
        dilation,
        padding,
    })
}

#[test]
fn dense_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let layer = dense(&mut rng, 5, 4);
    gradcheck(&layer, &flat(3, 5, rand_vec(&mut rng, 15, -1.0, 1.0)));
}

#[test]
fn conv1d_gradients_for_all_paddings_strides_and_dilations() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (k, stride, dilation, padding) in [
        (3, 1, 1, Padding::Valid),
        (3, 2, 1, Padding::Valid),
        (2, 1, 3, Padding::Valid),
        (3, 1, 1, Padding::Causal),
        (3, 2, 2, Padding::Causal),
        (1, 3, 1, Padding::Causal),
    ] {
        let layer = conv(&mut rng, 3, 4, k, stride, dilation, padding);
        let x = seq(2, 3, 9, rand_vec(&mut rng, 54, -1.0, 1.0));
        if let Err(e) = gradcheck_with(&layer, &x, 5, |_| {}) {
            panic!("k {k} stride {stride} dilation {dilation} {padding:?}: {e}");
        }
    }
}

#[test]
fn activation_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = away_from(rand_vec(&mut rng, 24, -2.0, 8.0), &[0.0, 6.0], 0.1);
    gradcheck(&Layer::ReLU, &seq(2, 3, 4, x.clone()));
    gradcheck(&Layer::ReLU, &flat(4, 6, x.clone()));
    gradcheck(&Layer::ReLU6, &flat(4, 6, x.clone()));
    let xc = away_from(rand_vec(&mut rng, 24, -1.5, 1.5), &[-0.5, 0.7], 0.1);
    gradcheck(
        &Layer::Clamp {
            min: -0.5,
            max: 0.7,
        },
        &seq(2, 3, 4, xc),
    );
    let xs = rand_vec(&mut rng, 24, -3.0, 3.0);
    gradcheck(&Layer::Tanh, &flat(4, 6, xs.clone()));
    gradcheck(&Layer::Sigmoid, &seq(2, 3, 4, xs));
}

#[test]
fn pool_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // Distinct values 0.05 apart, shuffled, so no max-pool window has a near tie.
    let mut v: Vec<f32> = (0..54).map(|i| i as f32 * 0.05 - 1.3).collect();
    for i in (1..v.len()).rev() {
        let j = (rng.next_u32() as usize) % (i + 1);
        v.swap(i, j);
    }
    let x = seq(2, 3, 9, v);
    for (kernel, stride) in [(3, 2), (2, 2), (3, 1), (9, 1)] {
        gradcheck(&Layer::MaxPool1d { kernel, stride }, &x);
        gradcheck(&Layer::AvgPool1d { kernel, stride }, &x);
    }
    gradcheck(&Layer::GlobalAvgPool, &x);
    gradcheck(&Layer::Flatten, &x);
    gradcheck(
        &Layer::Flatten,
        &flat(2, 5, rand_vec(&mut rng, 10, -1.0, 1.0)),
    );
}

#[test]
fn gradcheck_detects_wrong_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let layer = dense(&mut rng, 4, 3);
    let x = flat(2, 4, rand_vec(&mut rng, 8, -1.0, 1.0));
    assert!(gradcheck_with(&layer, &x, 1, |_| {}).is_ok());
    assert!(gradcheck_with(&layer, &x, 1, |g| g[3] *= 1.05).is_err());
    assert!(gradcheck_with(&layer, &x, 1, |g| g[0] += 0.01).is_err());
    let xs = seq(1, 2, 6, rand_vec(&mut rng, 12, -1.0, 1.0));
    assert!(
        gradcheck_with(&Layer::Tanh, &xs, 1, |g| g
            .iter_mut()
            .for_each(|v| *v *= 0.97))
        .is_err()
    );
}

/// A whole model with every trainable layer kind, checked end to end through the weighted loss.
#[test]
fn sequential_parameter_gradients_through_the_loss() {
    let layers = [
        ts::conv(4, 3).dilation(2).causal(),
        Tanh,
        ts::avg_pool(2),
        ts::conv(3, 2),
        Sigmoid,
        Flatten,
        ts::dense(5),
        Tanh,
        ts::dense(3),
    ];
    let arch = ts::arch("g", 3, [10, 3], &layers);
    let mut model = Sequential::new(arch, 11).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = Array2::from_shape_vec((4, 30), rand_vec(&mut rng, 120, -2.0, 2.0)).unwrap();
    let y = [0u8, 2, 1, 2];
    let w = [0.5f32, 1.0, 2.0];
    let loss = |m: &Sequential| -> f64 {
        let logits = m.forward(x.view());
        f64::from(cross_entropy(logits.view(), &y, Some(&w)).unwrap().loss)
    };
    let (logits, caches) = model.forward_train(x.view());
    assert_eq!(logits, model.forward(x.view()));
    let ce = cross_entropy(logits.view(), &y, Some(&w)).unwrap();
    let grads = model.backward(&caches, ce.grad);
    let names = model.parameter_shapes();
    assert_eq!(grads.tensors.len(), names.len());
    for (p, analytic) in grads.tensors.iter().enumerate() {
        let numeric: Vec<f64> = (0..analytic.len())
            .map(|i| {
                model.params_mut()[p][i] += EPS;
                let lp = loss(&model);
                model.params_mut()[p][i] -= 2.0 * EPS;
                let lm = loss(&model);
                model.params_mut()[p][i] += EPS;
                (lp - lm) / (2.0 * f64::from(EPS))
            })
            .collect();
        // The loss is a mean over a tiny batch, so its gradients are small: tighten the absolute tolerance.
        for (i, (&a, &n)) in analytic.iter().zip(&numeric).enumerate() {
            let a = f64::from(a);
            assert!(
                (a - n).abs() <= 2e-4 + RTOL * a.abs().max(n.abs()),
                "{}[{i}]: analytic {a}, numeric {n}",
                names[p].0
            );
        }
    }
}

/// PyTorch-semantics reference convolution by direct summation.
fn conv_reference(c: &Conv1d, x: &Array3<f32>) -> Array3<f32> {
    let (n, c_in, t_in) = x.dim();
    let (o, _, k) = c.weight.dim();
    let pad = c.pad_left();
    let t_out = c.out_len(t_in);
    Array3::from_shape_fn((n, o, t_out), |(s, oc, t)| {
        let mut acc = c.bias[oc];
        for ic in 0..c_in {
            for kk in 0..k {
                let pos = (t * c.stride + kk * c.dilation) as isize - pad as isize;
                if pos >= 0 {
                    acc += c.weight[[oc, ic, kk]] * x[[s, ic, pos as usize]];
                }
            }
        }
        acc
    })
}

#[test]
fn conv_matches_direct_summation() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (k, stride, dilation, padding) in [
        (5, 1, 1, Padding::Valid),
        (5, 2, 1, Padding::Causal),
        (3, 3, 2, Padding::Valid),
        (4, 1, 3, Padding::Causal),
    ] {
        let Layer::Conv1d(c) = conv(&mut rng, 3, 5, k, stride, dilation, padding) else {
            unreachable!()
        };
        let x = Array3::from_shape_vec((2, 3, 17), rand_vec(&mut rng, 102, -1.0, 1.0)).unwrap();
        let got = match Layer::Conv1d(c.clone()).forward(Tensor::Seq(x.clone())) {
            Tensor::Seq(a) => a,
            Tensor::Flat(_) => unreachable!(),
        };
        let want = conv_reference(&c, &x);
        assert_eq!(got.dim(), want.dim());
        for (a, b) in got.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

#[test]
fn known_answers_for_causal_conv_pools_and_layouts() {
    // Causal kernel [1, 10] on [1, 2, 3, 4]: the padded input is [0, 1, 2, 3, 4].
    let c = Layer::Conv1d(Conv1d {
        name: "conv1".into(),
        weight: array![[[1.0f32, 10.0]]],
        bias: array![0.5f32],
        weight_mask: None,
        stride: 1,
        dilation: 1,
        padding: Padding::Causal,
    });
    let y = c.forward(seq(1, 1, 4, vec![1.0, 2.0, 3.0, 4.0]));
    assert_eq!(values(&y), vec![10.5, 21.5, 32.5, 43.5]);
    let x = seq(
        1,
        2,
        5,
        vec![1.0, 5.0, 2.0, 4.0, 3.0, -1.0, -5.0, 0.0, 2.0, 9.0],
    );
    let mp = Layer::MaxPool1d {
        kernel: 2,
        stride: 2,
    }
    .forward(x.clone());
    assert_eq!(values(&mp), vec![5.0, 4.0, -1.0, 2.0]);
    let ap = Layer::AvgPool1d {
        kernel: 3,
        stride: 2,
    }
    .forward(x.clone());
    assert_eq!(values(&ap), vec![8.0 / 3.0, 3.0, -2.0, 11.0 / 3.0]);
    let gap = Layer::GlobalAvgPool.forward(x.clone());
    assert_eq!(values(&gap), vec![3.0, 1.0]);
    // Flatten is channel-major, like PyTorch's flatten of [N, C, T].
    let fl = Layer::Flatten.forward(x.clone());
    assert_eq!(fl.shape(), Shape::Flat(10));
    assert_eq!(values(&fl), values(&x));
}

#[test]
fn model_input_is_time_major_and_becomes_channels_by_time() {
    let arch = ts::arch("w", 2, [3, 2], &[Flatten, ts::dense(2)]);
    let model = Sequential::new(arch, 1).unwrap();
    // Row: t0 = (f0, f1) = (0, 1), t1 = (2, 3), t2 = (4, 5).
    let x = array![[0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]];
    let Tensor::Seq(t) = model.input_tensor(x.view()) else {
        panic!("expected a sequence")
    };
    assert_eq!(t, array![[[0.0f32, 2.0, 4.0], [1.0, 3.0, 5.0]]]);
    let trace = model.forward_trace(x.view());
    assert_eq!(trace.len(), 2);
    assert_eq!(values(&trace[0]), vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
    assert_eq!(trace[1].to_rows(), model.forward(x.view()));
}

//! Softmax cross-entropy with optional class weights, as PyTorch's `nn.CrossEntropyLoss(weight=...)`.

use ndarray::{Array2, ArrayView2};

use super::error::{ClassWeightsProblem, ModelError, Result};

/// The result of [`cross_entropy`] on one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropy {
    /// The weighted mean loss: `sum_i w[y_i] * nll_i / sum_i w[y_i]` (0 when the weight sum is 0).
    pub loss: f32,
    /// `sum_i w[y_i]` (the batch size when unweighted); lets callers combine batches into an exact mean.
    pub weight_sum: f32,
    /// How many rows have their first maximum logit at the target class.
    pub correct: usize,
    /// The gradient of `loss` with respect to the logits, `[N, classes]`.
    pub grad: Array2<f32>,
}

/// Computes the softmax cross-entropy of `logits` (`[N, classes]`) against `targets`, and its gradient.
///
/// With `class_weights`, each sample counts with the weight of its target class and the loss is the weighted
/// mean, exactly as PyTorch's `CrossEntropyLoss(weight=w, reduction="mean")`.
/// Sums are accumulated in f64.
///
/// # Errors
///
/// [`ModelError::BatchMismatch`] when the lengths disagree, [`ModelError::LabelOutOfRange`] for a bad target,
/// and [`ModelError::ClassWeights`] when the weights have the wrong length or are negative or not finite.
pub fn cross_entropy(
    logits: ArrayView2<f32>,
    targets: &[u8],
    class_weights: Option<&[f32]>,
) -> Result<CrossEntropy> {
    let (n, classes) = logits.dim();
    if n != targets.len() {
        return Err(ModelError::BatchMismatch {
            logits: n,
            targets: targets.len(),
        });
    }
    if let Some(w) = class_weights {
        check_class_weights(w, classes)?;
    }
    let mut grad = Array2::<f32>::zeros((n, classes));
    let mut total = 0.0f64;
    let mut weight_sum = 0.0f64;
    let mut correct = 0usize;
    for (i, (row, &y)) in logits.rows().into_iter().zip(targets).enumerate() {
        let y = usize::from(y);
        if y >= classes {
            return Err(ModelError::LabelOutOfRange {
                index: i,
                label: y as u8,
                classes,
            });
        }
        let w = class_weights.map_or(1.0, |w| w[y]);
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let sum_exp: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
        let log_z = f64::from(max) + sum_exp.ln();
        total += f64::from(w) * (log_z - f64::from(row[y]));
        weight_sum += f64::from(w);
        let argmax = row
            .iter()
            .enumerate()
            .fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
        correct += usize::from(argmax == y);
        // Store w * (softmax - onehot); the division by the weight sum happens below.
        let mut g = grad.row_mut(i);
        for (j, (gv, &v)) in g.iter_mut().zip(row.iter()).enumerate() {
            let p = (f64::from(v) - log_z).exp();
            let target = if j == y { 1.0 } else { 0.0 };
            *gv = (f64::from(w) * (p - target)) as f32;
        }
    }
    let loss = if weight_sum > 0.0 {
        grad.mapv_inplace(|g| (f64::from(g) / weight_sum) as f32);
        (total / weight_sum) as f32
    } else {
        grad.fill(0.0);
        0.0
    };
    Ok(CrossEntropy {
        loss,
        weight_sum: weight_sum as f32,
        correct,
        grad,
    })
}

/// Checks that `weights` has one finite, non-negative value per class and is not all zero.
///
/// # Errors
///
/// [`ModelError::ClassWeights`] describing the problem.
pub fn check_class_weights(weights: &[f32], classes: usize) -> Result<()> {
    if weights.len() != classes {
        return Err(ModelError::ClassWeights(ClassWeightsProblem::Count {
            given: weights.len(),
            classes,
        }));
    }
    if let Some((i, w)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !w.is_finite() || **w < 0.0)
    {
        return Err(ModelError::ClassWeights(ClassWeightsProblem::Invalid {
            index: i,
            value: *w,
        }));
    }
    if weights.iter().all(|&w| w == 0.0) {
        return Err(ModelError::ClassWeights(ClassWeightsProblem::AllZero));
    }
    Ok(())
}

/// Class weights inversely proportional to class frequency: `n / (k * count[c])`, where `k` is the number of
/// classes that occur in `y`.
///
/// This is scikit-learn's "balanced" rule: each present class contributes the same total weight, and the
/// weights average to 1 over the samples.
/// A class that does not occur in `y` gets weight 1, and labels `>= classes` are ignored.
pub fn class_weights_balanced(y: &[u8], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &label in y {
        if let Some(c) = counts.get_mut(usize::from(label)) {
            *c += 1;
        }
    }
    let n: usize = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0).count();
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                1.0
            } else {
                (n as f64 / (present as f64 * c as f64)) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn unweighted_loss_matches_hand_computation() {
        let logits = array![[1.0f32, 2.0, 3.0], [0.0, 0.0, 0.0]];
        let out = cross_entropy(logits.view(), &[2, 0], None).unwrap();
        let l0 = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 3.0;
        let l1 = 3f64.ln();
        assert!((f64::from(out.loss) - (l0 + l1) / 2.0).abs() < 1e-6);
        assert_eq!(out.weight_sum, 2.0);
        // Row 1 ties everywhere; the first maximum (class 0) is the target.
        assert_eq!(out.correct, 2);
        // Each gradient row sums to zero (softmax minus one-hot).
        for row in out.grad.rows() {
            assert!(row.sum().abs() < 1e-6);
        }
    }

    #[test]
    fn weighted_loss_is_the_weighted_mean_like_pytorch() {
        let logits = array![[1.0f32, 2.0, 3.0], [0.5, -1.0, 0.0], [2.0, 0.0, 0.0]];
        let y = [2u8, 1, 0];
        let w = [1.0f32, 3.0, 0.5];
        let out = cross_entropy(logits.view(), &y, Some(&w)).unwrap();
        let single = |i: usize| {
            cross_entropy(logits.slice(ndarray::s![i..i + 1, ..]), &y[i..i + 1], None)
                .unwrap()
                .loss as f64
        };
        let expected = (0.5 * single(0) + 3.0 * single(1) + 1.0 * single(2)) / (0.5 + 3.0 + 1.0);
        assert!(
            (f64::from(out.loss) - expected).abs() < 1e-6,
            "{} {expected}",
            out.loss
        );
        assert!((out.weight_sum - 4.5).abs() < 1e-6);
    }

    #[test]
    fn loss_gradient_matches_finite_differences() {
        let logits = array![
            [0.3f32, -1.2, 2.0, 0.1],
            [1.5, 0.2, -0.7, 0.0],
            [0.0, 0.4, 0.4, -2.0]
        ];
        let y = [1u8, 0, 3];
        let w = [0.5f32, 2.0, 1.0, 1.5];
        for weights in [None, Some(&w[..])] {
            let out = cross_entropy(logits.view(), &y, weights).unwrap();
            let eps = 1e-2f32;
            for i in 0..logits.nrows() {
                for j in 0..logits.ncols() {
                    let mut plus = logits.clone();
                    plus[[i, j]] += eps;
                    let mut minus = logits.clone();
                    minus[[i, j]] -= eps;
                    let lp = cross_entropy(plus.view(), &y, weights).unwrap().loss;
                    let lm = cross_entropy(minus.view(), &y, weights).unwrap().loss;
                    let numeric = (lp - lm) / (2.0 * eps);
                    let analytic = out.grad[[i, j]];
                    assert!(
                        (numeric - analytic).abs() <= 1e-3 + 1e-2 * analytic.abs(),
                        "({i},{j}): numeric {numeric}, analytic {analytic}"
                    );
                }
            }
        }
    }

    #[test]
    fn stable_for_large_logits() {
        let logits = array![[1000.0f32, 0.0], [-1000.0, 1000.0]];
        let out = cross_entropy(logits.view(), &[0, 0], None).unwrap();
        assert!((out.loss - 1000.0).abs() < 1e-3, "{}", out.loss);
        assert!(out.grad.iter().all(|g| g.is_finite()));
    }

    #[test]
    fn rejects_bad_input() {
        let logits = array![[0.0f32, 1.0]];
        assert!(matches!(
            cross_entropy(logits.view(), &[2], None),
            Err(ModelError::LabelOutOfRange {
                label: 2,
                classes: 2,
                ..
            })
        ));
        assert!(matches!(
            cross_entropy(logits.view(), &[0, 1], None),
            Err(ModelError::BatchMismatch { .. })
        ));
        for w in [&[1.0f32][..], &[1.0, -1.0], &[f32::NAN, 1.0], &[0.0, 0.0]] {
            assert!(matches!(
                cross_entropy(logits.view(), &[0], Some(w)),
                Err(ModelError::ClassWeights(_))
            ));
        }
    }

    #[test]
    fn balanced_weights_follow_the_sklearn_rule() {
        let y = [0u8, 0, 0, 0, 1, 1, 2, 2];
        let w = class_weights_balanced(&y, 4);
        assert_eq!(w, vec![8.0 / 12.0, 8.0 / 6.0, 8.0 / 6.0, 1.0]);
    }
}

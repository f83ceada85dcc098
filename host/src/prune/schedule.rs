//! One-shot and gradual pruning with fine-tuning between steps.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::{ModelPruner, PruneError, PruneMethod, PruningStatistics, Result, structured};
use crate::model::{Layer, Sequential};
use crate::train::{self, EpochReport, TrainConfig};

/// The polynomial-decay sparsity schedule of Zhu and Gupta (2017), "To prune, or not to prune":
/// `s_t = s_f + (s_i - s_f) * (1 - t / N)^3` for `t = 0, 1, ..., N`.
///
/// It prunes fast while many redundant weights remain and slows down as the target nears.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PolynomialSchedule {
    /// The sparsity at step 0, `s_i`, as a fraction.
    pub initial: f32,
    /// The sparsity at step `N`, `s_f`, as a fraction.
    pub final_sparsity: f32,
    /// The number of steps `N` after step 0.
    pub steps: usize,
}

impl PolynomialSchedule {
    /// A schedule from `initial` to `final_sparsity` over `steps` steps.
    ///
    /// # Errors
    ///
    /// [`PruneError::FinalSparsity`], [`PruneError::InitialSparsity`] or [`PruneError::NoSteps`] unless `0 <= initial <= final_sparsity < 1` and `steps >= 1`.
    pub fn new(initial: f32, final_sparsity: f32, steps: usize) -> Result<Self> {
        if !(0.0..1.0).contains(&final_sparsity) {
            return Err(PruneError::FinalSparsity { final_sparsity });
        }
        if !(0.0..=final_sparsity).contains(&initial) {
            return Err(PruneError::InitialSparsity {
                initial,
                final_sparsity,
            });
        }
        if steps == 0 {
            return Err(PruneError::NoSteps);
        }
        Ok(Self {
            initial,
            final_sparsity,
            steps,
        })
    }

    /// One step straight to `amount`: `s_0 = 0`, `s_1 = amount`.
    ///
    /// # Errors
    ///
    /// [`PruneError::Amount`] unless `0 <= amount < 1`.
    pub fn one_shot(amount: f32) -> Result<Self> {
        super::check_amount(amount)?;
        Ok(Self {
            initial: 0.0,
            final_sparsity: amount,
            steps: 1,
        })
    }

    /// The sparsity `s_t` (a fraction) at step `t`; steps after `N` give `s_f`.
    pub fn sparsity_at(&self, t: usize) -> f32 {
        let progress = t.min(self.steps) as f64 / self.steps.max(1) as f64;
        let (s_i, s_f) = (f64::from(self.initial), f64::from(self.final_sparsity));
        (s_f + (s_i - s_f) * (1.0 - progress).powi(3)) as f32
    }

    /// The pruning steps `(t, s_t)`: `t = 1..=N`, preceded by `t = 0` when `s_i > 0`.
    pub fn targets(&self) -> Vec<(usize, f32)> {
        let first = if self.initial > 0.0 { 0 } else { 1 };
        (first..=self.steps)
            .map(|t| (t, self.sparsity_at(t)))
            .collect()
    }
}

/// A pruning method, its schedule and the fine-tuning between steps.
#[derive(Debug, Clone, PartialEq)]
pub struct PruningPlan {
    /// What to prune and how.
    pub method: PruneMethod,
    /// The sparsity per step: for unstructured and global pruning the fraction of weights that are zero, for
    /// structured pruning the fraction of each named layer's original channels that are gone.
    /// N:M pruning needs a one-step schedule and ignores the sparsity.
    pub schedule: PolynomialSchedule,
    /// Fine-tuning after every step; `epochs = 0` skips it, and `checkpoint_dir` is ignored.
    pub fine_tune: TrainConfig,
}

/// Normalized data for fine-tuning and evaluation.
#[derive(Debug, Clone, Copy)]
pub struct FineTuneData<'a> {
    /// Training rows.
    pub train_x: ArrayView2<'a, f32>,
    /// Training labels.
    pub train_y: &'a [u8],
    /// Validation rows (early stopping and the reported validation accuracy).
    pub val_x: ArrayView2<'a, f32>,
    /// Validation labels.
    pub val_y: &'a [u8],
    /// Test rows and labels, when the test accuracy should be reported.
    pub test: Option<(ArrayView2<'a, f32>, &'a [u8])>,
}

/// The state of the model after one step of a [`PruningPlan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// The schedule step `t`; the report before any pruning is step 0 without a target.
    pub step: usize,
    /// The schedule's `N`.
    pub steps: usize,
    /// The step's target `s_t`, in percent; `None` before pruning and for N:M pruning, which has no amount.
    pub target_sparsity: Option<f64>,
    /// The weights that are zero after the step, in percent of all Dense and Conv1d weights.
    pub sparsity: f64,
    /// Weights plus biases after the step.
    pub parameters: usize,
    /// Multiply-accumulates per inference after the step.
    pub macs: u64,
    /// Fine-tuning epochs run in this step.
    pub fine_tune_epochs: usize,
    /// Validation loss after fine-tuning (unweighted cross-entropy).
    pub val_loss: f32,
    /// Validation accuracy after fine-tuning, as a fraction.
    pub val_accuracy: f32,
    /// Test accuracy after fine-tuning, as a fraction, when test data was given.
    pub test_accuracy: Option<f32>,
}

/// Runs `plan` on `model`: reports the model as it is, then for every schedule step prunes to `s_t`, fine-tunes
/// and reports again.
///
/// `on_step` sees every [`StepReport`] as it is made and `on_epoch` every fine-tuning epoch; the reports are also
/// returned, the unpruned one first.
/// The masks stay on the model; call [`ModelPruner::remove`] to bake them in.
///
/// # Errors
///
/// [`PruneError::GradualNM`] for an N:M plan with more than one step, the errors of the pruning method (the model
/// may then hold the steps done so far), and [`PruneError::Train`] for data that does not fit or a diverging
/// fine-tune.
pub fn prune_and_fine_tune(
    model: &mut Sequential,
    plan: &PruningPlan,
    data: &FineTuneData<'_>,
    on_step: &mut dyn FnMut(&StepReport),
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Vec<StepReport>> {
    let targets = plan.schedule.targets();
    if matches!(plan.method, PruneMethod::NM { .. }) && targets.len() > 1 {
        return Err(PruneError::GradualNM {
            steps: targets.len(),
        });
    }
    let mut fine_tune = plan.fine_tune.clone();
    fine_tune.checkpoint_dir = None;
    let mut history = Vec::with_capacity(targets.len() + 1);
    let before = report(model, plan.schedule.steps, 0, None, 0, data)?;
    on_step(&before);
    history.push(before);
    // Structured targets count channels of the layers as they were before the first step.
    let originals = match &plan.method {
        PruneMethod::Structured { layers, dim, .. } => {
            let names = layers
                .clone()
                .unwrap_or_else(|| structured::default_layers(model, *dim));
            let indices =
                super::resolve(model, &names.iter().map(String::as_str).collect::<Vec<_>>())?;
            let mut out = Vec::with_capacity(indices.len());
            for i in indices {
                structured::check_dim(model, i, *dim)?;
                out.push((i, structured::channel_count(model, i, *dim)?));
            }
            out
        }
        _ => Vec::new(),
    };
    for (t, target) in targets {
        let mut pruner = ModelPruner::new(model);
        match &plan.method {
            PruneMethod::Structured { dim, norm, .. } => {
                for &(i, original) in &originals {
                    let name = match &pruner.model().layers[i] {
                        Layer::Dense(d) => d.name.clone(),
                        Layer::Conv1d(c) => c.name.clone(),
                        _ => continue,
                    };
                    let current = structured::channel_count(pruner.model(), i, *dim)?;
                    let gone = original - current;
                    let want = super::count_for(target, original);
                    if want > gone {
                        // `round(amount * current)` gives back exactly `want - gone`.
                        let amount = (want - gone) as f32 / current as f32;
                        pruner.structured_pruning(&[name], amount.min(0.999_999), *dim, *norm)?;
                    }
                }
            }
            method => pruner.apply(method, target)?,
        }
        let epochs = if fine_tune.epochs > 0 {
            let h = train::train(
                model,
                data.train_x,
                data.train_y,
                data.val_x,
                data.val_y,
                &fine_tune,
                on_epoch,
            )?;
            h.epochs.len()
        } else {
            0
        };
        let target = match plan.method {
            PruneMethod::NM { .. } => None,
            _ => Some(f64::from(target) * 100.0),
        };
        let r = report(model, plan.schedule.steps, t, target, epochs, data)?;
        on_step(&r);
        history.push(r);
    }
    Ok(history)
}

fn report(
    model: &Sequential,
    steps: usize,
    step: usize,
    target: Option<f64>,
    fine_tune_epochs: usize,
    data: &FineTuneData<'_>,
) -> Result<StepReport> {
    let stats = PruningStatistics::of_model(model);
    let (val_loss, val_accuracy) = train::evaluate(model, data.val_x, data.val_y, None)?;
    let test_accuracy = match data.test {
        Some((x, y)) => Some(train::evaluate(model, x, y, None)?.1),
        None => None,
    };
    Ok(StepReport {
        step,
        steps,
        target_sparsity: target,
        sparsity: stats.global_sparsity,
        parameters: stats.parameters,
        macs: stats.macs,
        fine_tune_epochs,
        val_loss,
        val_accuracy,
        test_accuracy,
    })
}

//! Where a run's training steps are computed: an [`Engine`] runs one epoch of batches in a given order, and an
//! [`EngineChoice`] picks the engine when a run starts.
//!
//! [`super::epochs::run`] owns everything between epochs (the order, early stopping, the best weights, the
//! checkpoints) and asks the engine only for an epoch's steps. The CPU engine here runs them with ndarray
//! against any [`Objective`]; [`crate::gpu_train`] implements both traits for the GPU, so this module knows
//! nothing of the GPU and the training loop nothing of either.

use ndarray::ArrayView2;

use super::objective::{Loss, Objective};
use super::{Result, TrainError};
use crate::model::{Optimizer, Sequential, StateDict};

/// What an engine reports of one epoch: the training pass (each batch measured before its update) and, if the
/// engine computed it, the validation pass after the epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// The sum of the batch losses, each times its weight ([`EpochStats::weight_sum`]).
    pub loss_sum: f64,
    /// The sum of the batch weights: class-weight sums for cross-entropy, rows for distillation.
    pub weight_sum: f64,
    /// Training samples classified correctly.
    pub correct: usize,
    /// The validation loss and accuracy after the epoch, when the engine computed them; otherwise the loop
    /// evaluates the model on the CPU.
    pub validation: Option<(f32, f32)>,
}

/// Runs the training steps of a run.
///
/// An engine may keep the weights and the optimizer's state to itself between epochs (the GPU does):
/// [`Engine::sync`] brings them to the host.
pub trait Engine {
    /// Runs one epoch (number `epoch`, 1-based) of batches over the training rows in `order`, updating the weights
    /// after every batch.
    ///
    /// # Errors
    ///
    /// [`TrainError::Diverged`] naming the epoch and the batch whose loss was not finite, or the engine's own
    /// failure.
    fn epoch(
        &mut self,
        model: &mut Sequential,
        optimizer: &mut Optimizer,
        order: &[usize],
        epoch: usize,
    ) -> Result<EpochStats>;

    /// Keeps the current weights as the best so far; returns them when `to_host` (or when the engine keeps them on
    /// the host anyway), else `None` and keeps them itself for [`Engine::best`].
    ///
    /// # Errors
    ///
    /// The engine's failure to read its weights.
    fn keep_best(&mut self, model: &Sequential, to_host: bool) -> Result<Option<StateDict>>;

    /// Brings the current weights and the optimizer's state into `model` and `optimizer`.
    ///
    /// # Errors
    ///
    /// The engine's failure to read them, or weights that do not fit the model.
    fn sync(&mut self, model: &mut Sequential, optimizer: &mut Optimizer) -> Result<()>;

    /// The best weights that [`Engine::keep_best`] kept in the engine, if any.
    ///
    /// # Errors
    ///
    /// The engine's failure to read them.
    fn best(&mut self) -> Result<Option<StateDict>>;
}

/// What an engine is started with.
#[derive(Debug, Clone, Copy)]
pub struct EngineSetup<'a> {
    /// The model with the run's current weights (and masks).
    pub model: &'a Sequential,
    /// The optimizer with its current state (a resumed run's buffers).
    pub optimizer: &'a Optimizer,
    /// Training rows.
    pub train_x: ArrayView2<'a, f32>,
    /// Training labels.
    pub train_y: &'a [u8],
    /// Validation rows.
    pub val_x: ArrayView2<'a, f32>,
    /// Validation labels.
    pub val_y: &'a [u8],
    /// One loss weight per class, or `None`.
    pub class_weights: Option<&'a [f32]>,
    /// Rows per optimizer step.
    pub batch_size: usize,
    /// The loss to minimize.
    pub loss: Loss<'a>,
}

/// Picks the engine of a run.
pub trait EngineChoice {
    /// An engine for `setup`, or `None` to train on the CPU.
    ///
    /// # Errors
    ///
    /// When the chosen engine cannot run (a GPU that was asked for explicitly and fails to start, say).
    fn start(&self, setup: &EngineSetup<'_>) -> Result<Option<Box<dyn Engine>>>;
}

/// Always trains on the CPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuOnly;

impl EngineChoice for CpuOnly {
    fn start(&self, _setup: &EngineSetup<'_>) -> Result<Option<Box<dyn Engine>>> {
        Ok(None)
    }
}

/// The CPU engine: ndarray, single-threaded, every step in a fixed order, so a seed gives bit-identical weights.
pub(super) struct CpuEngine<'a> {
    pub(super) train: super::epochs::SampleSource<'a>,
    pub(super) batch_size: usize,
    pub(super) objective: &'a dyn Objective,
}

impl Engine for CpuEngine<'_> {
    fn epoch(
        &mut self,
        model: &mut Sequential,
        optimizer: &mut Optimizer,
        order: &[usize],
        epoch: usize,
    ) -> Result<EpochStats> {
        let mut stats = EpochStats {
            loss_sum: 0.0,
            weight_sum: 0.0,
            correct: 0,
            validation: None,
        };
        for (batch, idx) in order.chunks(self.batch_size).enumerate() {
            let xb = self.train.rows(idx)?;
            let labels = self.train.labels();
            let yb: Vec<u8> = idx.iter().map(|&i| labels[i]).collect();
            let (logits, caches) = model.forward_train(xb.view());
            let b = self.objective.batch_loss(logits.view(), idx, &yb)?;
            if !b.loss.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch,
                    loss: b.loss,
                });
            }
            let grads = model.backward(&caches, b.grad);
            optimizer.step(model, &grads)?;
            stats.loss_sum += f64::from(b.loss) * b.weight;
            stats.weight_sum += b.weight;
            stats.correct += b.correct;
        }
        Ok(stats)
    }

    fn keep_best(&mut self, model: &Sequential, _to_host: bool) -> Result<Option<StateDict>> {
        Ok(Some(model.state_dict()))
    }

    fn sync(&mut self, _model: &mut Sequential, _optimizer: &mut Optimizer) -> Result<()> {
        Ok(())
    }

    fn best(&mut self) -> Result<Option<StateDict>> {
        Ok(None)
    }
}

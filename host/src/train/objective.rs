//! What a run minimizes: the loss of a batch and its gradient with respect to the model's logits.
//!
//! [`super::epochs`] trains any [`Objective`]; [`CrossEntropy`] (with class weights) is plain training, and
//! [`crate::distill`] implements the distillation loss. An objective also says what it is ([`Objective::loss`]),
//! which a GPU engine needs to run the same loss in its kernels and the resumable state needs to tell one run
//! from another.

use ndarray::{Array2, ArrayView2};

use crate::model::{ModelError, cross_entropy};

/// The loss of one batch, measured before the update.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchLoss {
    /// The batch's loss (a weighted mean over its rows).
    pub(crate) loss: f32,
    /// The weight the loss is averaged over: the epoch's training loss is the mean of the batch losses weighted by
    /// it.
    pub(crate) weight: f64,
    /// Rows whose first maximum logit is the label.
    pub(crate) correct: usize,
    /// The gradient of `loss` with respect to the logits, `[rows, classes]`.
    pub(crate) grad: Array2<f32>,
}

/// Which loss an objective computes, for engines that compute it themselves (the GPU) and for the resumable state.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Loss<'a> {
    /// Cross-entropy against the labels, with the run's class weights.
    CrossEntropy,
    /// Knowledge distillation ([`crate::distill::kd_loss`]).
    Distill {
        /// Weight of the soft term.
        alpha: f32,
        /// Softmax temperature of the soft term.
        temperature: f32,
        /// The teacher's logits on every training row, row-major `[rows, classes]`.
        teacher_logits: &'a [f32],
    },
}

/// A loss that [`super::epochs::run`] minimizes.
pub(crate) trait Objective {
    /// The loss of the batch of training rows `rows` (indices into the training set), whose labels are `labels`,
    /// given the model's `logits` on them.
    ///
    /// # Errors
    ///
    /// [`ModelError`] for a label out of range or a length mismatch (the loop checks the data first, so neither
    /// happens there).
    fn batch_loss(
        &self,
        logits: ArrayView2<f32>,
        rows: &[usize],
        labels: &[u8],
    ) -> Result<BatchLoss, ModelError>;

    /// Which loss this is.
    fn loss(&self) -> Loss<'_>;
}

/// Cross-entropy against the labels, each sample weighted by its class's weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CrossEntropy<'a> {
    /// One weight per class, or `None` for equal weights.
    pub(crate) class_weights: Option<&'a [f32]>,
}

impl Objective for CrossEntropy<'_> {
    /// The weighted mean cross-entropy; its weight is the batch's class-weight sum.
    fn batch_loss(
        &self,
        logits: ArrayView2<f32>,
        _rows: &[usize],
        labels: &[u8],
    ) -> Result<BatchLoss, ModelError> {
        let ce = cross_entropy(logits, labels, self.class_weights)?;
        Ok(BatchLoss {
            loss: ce.loss,
            weight: f64::from(ce.weight_sum),
            correct: ce.correct,
            grad: ce.grad,
        })
    }

    fn loss(&self) -> Loss<'_> {
        Loss::CrossEntropy
    }
}

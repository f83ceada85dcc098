//! What the trainer reads back: the statistics of a pass, of an epoch, and the trace of one step.

use super::LayerParams;

/// Loss, weight sum and correct predictions summed over the batches of a pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassStats {
    /// For cross-entropy the weighted loss sum (the batch mean times its weight sum, added up); for
    /// distillation each batch's loss times its rows.
    pub loss_sum: f32,
    /// The class-weight sum (cross-entropy) or the row count (distillation).
    pub weight_sum: f32,
    /// Samples whose largest logit is their label.
    pub correct: u32,
    /// The first step (0-based) whose loss was not finite, if any.
    pub diverged_at: Option<u32>,
}

impl PassStats {
    /// Words of a pass's statistics buffer, as the loss kernel leaves them.
    pub(super) const WORDS: usize = 4;

    /// Decodes the loss kernel's statistics buffer: loss sum and weight sum as f32 bits, the correct count,
    /// and the first non-finite step plus one (0 for none).
    pub(super) fn from_words(w: &[u32]) -> Self {
        let get = |i: usize| w.get(i).copied().unwrap_or(0);
        Self {
            loss_sum: f32::from_bits(get(0)),
            weight_sum: f32::from_bits(get(1)),
            correct: get(2),
            diverged_at: get(3).checked_sub(1),
        }
    }

    /// `loss_sum / weight_sum`, or 0 for a zero weight sum.
    pub fn mean_loss(&self) -> f32 {
        if self.weight_sum > 0.0 {
            self.loss_sum / self.weight_sum
        } else {
            0.0
        }
    }
}

/// The outcome of [`super::GpuTrainer::run_epoch`]: the training pass (measured before each update, as on
/// the CPU) and the evaluation pass over the validation set after the epoch (plain cross-entropy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// Training batches.
    pub train: PassStats,
    /// Validation set, when one is uploaded.
    pub val: Option<PassStats>,
}

/// Everything one training step computed, read back for tests ([`super::GpuTrainer::trace_step`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StepTrace {
    /// The model input after the gather (`[N, F, T]` for sequence models).
    pub input: Vec<f32>,
    /// Each layer's output.
    pub outputs: Vec<Vec<f32>>,
    /// The loss gradient with respect to each layer's input (`None` for the first layer, which needs none).
    pub input_grads: Vec<Option<Vec<f32>>>,
    /// The loss gradient with respect to the logits.
    pub logits_grad: Vec<f32>,
    /// Weight and bias gradients of each dense or conv1d layer, in layer order (before masking).
    pub param_grads: Vec<LayerParams>,
    /// The batch's loss statistics.
    pub stats: PassStats,
    /// The parameters after the optimizer step.
    pub params_after: Vec<LayerParams>,
}

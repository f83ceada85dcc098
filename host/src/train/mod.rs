//! Mini-batch training with early stopping and resumable checkpoints.
//!
//! [`train`] runs epochs of shuffled mini-batches over the training set, evaluates the validation set after
//! each epoch, stops after `patience` epochs without a lower validation loss, and leaves the best weights in
//! the model.
//! The same seed, data and configuration give bit-identical weights: all randomness comes from one seeded
//! ChaCha8 generator and all arithmetic is single-threaded.
//!
//! With [`TrainConfig::checkpoint_dir`] set, the full training state is written after every epoch, replacing the
//! directory as one unit ([`crate::fsutil::replace_dir`]), and a later call with the same directory, model
//! architecture, data and configuration continues where the earlier one stopped, giving the same weights as an
//! uninterrupted run.
//! A stored state is checked before it is believed: every tensor against the model, and the counters and history
//! in its metadata against each other and the data (see [`TrainError::InvalidState`]).
//!
//! The parts:
//!
//! - `epochs`: the one training loop (order, early stopping, best weights, checkpoints, resume), shared by
//!   training, [`crate::distill`] and the fine-tunes of [`crate::prune`];
//! - `objective`: what the loop minimizes, cross-entropy with class weights here and distillation in
//!   [`crate::distill`];
//! - `engine`: where the steps run, the CPU engine here, the GPU one in [`crate::gpu_train`], picked by an
//!   [`EngineChoice`];
//! - `state`: the resumable training state on disk.

mod engine;
mod epochs;
mod objective;
mod state;

use std::path::PathBuf;

use ndarray::{ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointError;
use crate::model::{
    ModelError, OptimizerConfig, Sequential, check_class_weights, class_weights_balanced,
    cross_entropy,
};

pub use engine::{CpuOnly, Engine, EngineChoice, EngineSetup, EpochStats};
pub(crate) use epochs::{RunData, run, shuffle};
pub use epochs::{SampleSource, StoreRun, evaluate_source};
pub use objective::Loss;
pub(crate) use objective::{BatchLoss, CrossEntropy, Objective};

/// File name of the resumable training state inside [`TrainConfig::checkpoint_dir`].
pub const TRAIN_STATE_FILE: &str = "train_state.safetensors";

/// Rows per forward pass when evaluating.
const EVAL_BATCH: usize = 1024;

/// How samples are weighted in the loss.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeights {
    /// Every sample counts the same.
    #[default]
    None,
    /// Weights from [`class_weights_balanced`] on the training labels.
    Balanced,
    /// One weight per class, finite and non-negative.
    Manual(Vec<f32>),
}

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Maximum number of passes over the training set.
    pub epochs: usize,
    /// Samples per optimizer step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// The optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Loss weighting by class, used for both the training and the validation loss.
    pub class_weights: ClassWeights,
    /// Stop after this many epochs without a lower validation loss; 0 never stops early.
    /// Either way the best weights are restored at the end.
    pub patience: usize,
    /// Seed of the shuffling generator.
    pub seed: u64,
    /// Shuffle the training set every epoch (otherwise batches follow the data order).
    pub shuffle: bool,
    /// Where to keep a resumable training state; see the module documentation.
    pub checkpoint_dir: Option<PathBuf>,
}

impl Default for TrainConfig {
    /// 20 epochs of batches of 256 with Adam (lr 1e-3), no class weights, patience 4, seed 7, shuffled.
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 256,
            optimizer: OptimizerConfig::default(),
            class_weights: ClassWeights::None,
            patience: 4,
            seed: 7,
            shuffle: true,
            checkpoint_dir: None,
        }
    }
}

impl TrainConfig {
    /// Checks `epochs`, `batch_size` and `patience` against their ranges in [`crate::limits`] and the optimizer
    /// with [`OptimizerConfig::validate`], so a bad setting from a config file is refused before any data is
    /// touched. A run of 0 epochs is refused: it would save the random initial weights as if trained.
    ///
    /// # Errors
    ///
    /// [`TrainError::Setting`] naming the setting, its value and its range, or [`TrainError::Model`] with
    /// [`ModelError::Optimizer`].
    pub fn validate(&self) -> Result<()> {
        use crate::limits::{BATCH_SIZE, EPOCHS, PATIENCE};
        for (setting, range, value) in [
            ("epochs", EPOCHS, self.epochs),
            ("batch_size", BATCH_SIZE, self.batch_size),
            ("patience", PATIENCE, self.patience),
        ] {
            range
                .check_usize(value)
                .map_err(|source| TrainError::Setting { setting, source })?;
        }
        self.optimizer.validate().map_err(ModelError::Optimizer)?;
        Ok(())
    }
}

/// About how many bytes training `model` takes beyond the data set, with batches of `batch` rows: the parameters
/// six times over (weights, gradients, two optimizer moments, the best weights and a copy to save), and per row
/// of a batch every layer's activation three times over (the forward cache, its gradient and scratch), plus a
/// convolution's unfolded input.
pub fn training_memory_bytes(model: &Sequential, batch: usize) -> u64 {
    let params = model.num_parameters() as u64;
    let shapes = model.arch.shapes().unwrap_or_default();
    let mut per_row = model.input_len() as u64;
    let mut input = model.arch.input_shape();
    for (spec, shape) in model.arch.layers.iter().zip(&shapes) {
        per_row = per_row.saturating_add(shape.len() as u64);
        if let (
            crate::model::LayerSpec::Conv1d { kernel, .. },
            crate::model::Shape::Seq { channels, .. },
            crate::model::Shape::Seq { time, .. },
        ) = (spec, input, *shape)
        {
            per_row = per_row.saturating_add((channels * kernel * time) as u64);
        }
        input = *shape;
    }
    4u64.saturating_mul(
        params
            .saturating_mul(6)
            .saturating_add(per_row.saturating_mul(3).saturating_mul(batch as u64)),
    )
}

/// Refuses a training run whose [`training_memory_bytes`] exceed the memory tickq may use
/// ([`crate::limits::check_memory`]).
pub(crate) fn check_training_memory(model: &Sequential, batch: usize) -> Result<()> {
    let needed = training_memory_bytes(model, batch);
    crate::limits::check_memory(needed, || {
        format!(
            "training `{}` ({} parameters) in batches of {batch}",
            crate::limits::excerpt(&model.arch.name),
            model.num_parameters()
        )
    })?;
    Ok(())
}

/// Metrics of one finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// The epoch number, starting at 1.
    pub epoch: usize,
    /// Weighted mean training loss over the epoch's batches (taken during the epoch, before each update).
    pub train_loss: f32,
    /// Fraction of training samples classified correctly during the epoch.
    pub train_accuracy: f32,
    /// Weighted mean validation loss after the epoch.
    pub val_loss: f32,
    /// Fraction of validation samples classified correctly after the epoch.
    pub val_accuracy: f32,
    /// Wall-clock seconds spent on the epoch's training and validation (not on writing the checkpoint).
    pub seconds: f64,
    /// Whether the validation loss is the lowest so far.
    pub improved: bool,
}

/// The outcome of [`train`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainHistory {
    /// Every epoch run so far, including those of a resumed earlier run.
    pub epochs: Vec<EpochReport>,
    /// The epoch whose weights the model holds now (1-based; 0 if no epoch ran).
    pub best_epoch: usize,
    /// The validation loss of that epoch (infinite if no epoch ran).
    pub best_val_loss: f32,
    /// Whether training stopped because of `patience`.
    pub stopped_early: bool,
    /// The number of epochs that were already done when training resumed from a checkpoint.
    pub resumed_from: Option<usize>,
}

/// Errors from [`train`] and [`evaluate`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Manual class weights that do not fit the model.
    #[error("invalid training configuration: {0}")]
    ClassWeights(#[source] ModelError),
    /// The training state could not be serialized (a bug in tickq).
    #[error("cannot serialize the training state: {0}")]
    StateSerialize(#[source] serde_json::Error),
    /// A setting is outside its range in [`crate::limits`].
    #[error("invalid training configuration: {setting}: {source}")]
    Setting {
        /// The setting, as written in a config file (`epochs`).
        setting: &'static str,
        /// The value and the range.
        #[source]
        source: crate::limits::RangeError,
    },
    /// Training would need more memory than there is.
    #[error(transparent)]
    Memory(#[from] crate::limits::MemoryError),
    /// The data does not fit the model or is malformed.
    #[error("invalid training data: {what} {problem}")]
    Data {
        /// Which data: `training set`, `validation set`, `data`.
        what: &'static str,
        /// What is wrong with it.
        problem: DataProblem,
    },
    /// A model operation failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A sample store could not be read.
    #[error(transparent)]
    Store(Box<crate::data::StoreError>),
    /// Reading or writing the training state failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The training state in the checkpoint directory belongs to another run.
    #[error(
        "{}: cannot resume training: {reason}; remove {TRAIN_STATE_FILE} or use another checkpoint directory to start over",
        dir.display()
    )]
    Resume {
        /// The checkpoint directory.
        dir: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The training state file is damaged or was edited by hand: the numbers in its metadata contradict each
    /// other, the data or the configuration (a best epoch beyond the epochs run, say).
    #[error("{}: {field}: {problem}", path.display())]
    InvalidState {
        /// The training state file.
        path: PathBuf,
        /// The metadata field (`best_epoch`, `history[3].val_loss`) or tensor (`optim/fc1.weight.exp_avg`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A group of tensors in the training state file does not fit the model (names, shapes, non-finite values).
    #[error("{}: the `{part}/` tensors: {source}", path.display())]
    InvalidStateTensors {
        /// The training state file.
        path: PathBuf,
        /// The group: `model` (current weights), `best` (best weights) or `optim` (optimizer buffers).
        part: &'static str,
        /// What does not fit.
        source: Box<ModelError>,
    },
    /// The GPU trainer failed, or cannot run this model on `--device gpu`.
    #[error("GPU training: {0}")]
    Gpu(#[from] crate::device::TrainGpuError),
    /// The loss became NaN or infinite.
    #[error(
        "training diverged in epoch {epoch}, batch {batch}: loss is {loss}; lower the learning rate"
    )]
    Diverged {
        /// The epoch (1-based).
        epoch: usize,
        /// The batch within the epoch (0-based).
        batch: usize,
        /// The loss value.
        loss: f32,
    },
}

/// Shorthand for results in this module.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// Computes the weighted mean loss and the accuracy of `model` on a data set, in batches.
///
/// # Errors
///
/// [`TrainError::Data`] when the input width or a label is wrong, and [`TrainError::Model`] for bad class weights.
pub fn evaluate(
    model: &Sequential,
    x: ArrayView2<f32>,
    y: &[u8],
    class_weights: Option<&[f32]>,
) -> Result<(f32, f32)> {
    check_data(model, x, y, "data")?;
    Ok(evaluate_checked(model, x, y, class_weights)?)
}

/// [`evaluate`] without the data checks, for callers that checked the data once already.
pub(crate) fn evaluate_checked(
    model: &Sequential,
    x: ArrayView2<f32>,
    y: &[u8],
    class_weights: Option<&[f32]>,
) -> Result<(f32, f32), ModelError> {
    let mut loss_sum = 0.0f64;
    let mut weight_sum = 0.0f64;
    let mut correct = 0usize;
    for (xb, yb) in x
        .axis_chunks_iter(Axis(0), EVAL_BATCH)
        .zip(y.chunks(EVAL_BATCH))
    {
        let logits = model.forward(xb);
        let ce = cross_entropy(logits.view(), yb, class_weights)?;
        loss_sum += f64::from(ce.loss) * f64::from(ce.weight_sum);
        weight_sum += f64::from(ce.weight_sum);
        correct += ce.correct;
    }
    let loss = if weight_sum > 0.0 {
        (loss_sum / weight_sum) as f32
    } else {
        0.0
    };
    Ok((loss, correct as f32 / y.len().max(1) as f32))
}

/// Why training data does not fit a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataProblem {
    /// Rows of the wrong width.
    #[error("has {columns} columns but the model takes {expected} (time_steps x features)")]
    Width {
        /// Values per row.
        columns: usize,
        /// The model's input length.
        expected: usize,
    },
    /// Not one label per row.
    #[error("has {rows} rows but {labels} labels")]
    Rows {
        /// Rows.
        rows: usize,
        /// Labels.
        labels: usize,
    },
    /// No rows.
    #[error("is empty")]
    Empty,
    /// A label is not a class of the model.
    #[error("label {index} is {label}, but the model has {classes} classes")]
    Label {
        /// The row.
        index: usize,
        /// Its label.
        label: u8,
        /// The model's classes.
        classes: usize,
    },
    /// A value is NaN or infinite.
    #[error("row {row} column {column} is {value}")]
    NonFinite {
        /// The row.
        row: usize,
        /// The column.
        column: usize,
        /// The value.
        value: f32,
    },
}

/// Checks that `x` and `y` fit `model`: width, lengths, non-empty, labels in range, finite values.
pub(crate) fn check_data(
    model: &Sequential,
    x: ArrayView2<f32>,
    y: &[u8],
    what: &'static str,
) -> Result<()> {
    let bad = |problem| Err(TrainError::Data { what, problem });
    if x.ncols() != model.input_len() {
        return bad(DataProblem::Width {
            columns: x.ncols(),
            expected: model.input_len(),
        });
    }
    if x.nrows() != y.len() {
        return bad(DataProblem::Rows {
            rows: x.nrows(),
            labels: y.len(),
        });
    }
    if x.nrows() == 0 {
        return bad(DataProblem::Empty);
    }
    if let Some((index, &label)) = y
        .iter()
        .enumerate()
        .find(|(_, l)| usize::from(**l) >= model.classes())
    {
        return bad(DataProblem::Label {
            index,
            label,
            classes: model.classes(),
        });
    }
    if let Some(((row, column), &value)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return bad(DataProblem::NonFinite { row, column, value });
    }
    Ok(())
}

/// The per-class loss weights that `class_weights` asks for, given the training labels.
///
/// # Errors
///
/// [`TrainError::ClassWeights`] for manual weights of the wrong length, negative, not finite or all zero.
pub(crate) fn resolve_class_weights(
    class_weights: &ClassWeights,
    train_y: &[u8],
    classes: usize,
) -> Result<Option<Vec<f32>>> {
    Ok(match class_weights {
        ClassWeights::None => None,
        ClassWeights::Balanced => Some(class_weights_balanced(train_y, classes)),
        ClassWeights::Manual(w) => {
            check_class_weights(w, classes).map_err(TrainError::ClassWeights)?;
            Some(w.clone())
        }
    })
}

/// Trains `model` on `(train_x, train_y)` with early stopping on `(val_x, val_y)`, calling `observer` after every epoch.
///
/// Inputs are rows of `time_steps * features` values (time-major), labels are class indices.
/// On success the model holds the weights of the epoch with the lowest validation loss.
/// A pruned model keeps its masks: the gradients of pruned weights are masked and the mask is re-applied after
/// every optimizer step, so pruned weights stay exactly zero (see [`crate::prune`]).
/// When `cfg.checkpoint_dir` holds a training state from an earlier call, training continues from it
/// (the model's current weights are replaced by the stored ones); `cfg.epochs` and `cfg.patience` may
/// differ from the earlier call, everything else must match.
///
/// # Errors
///
/// [`TrainError::ClassWeights`] for bad hyper-parameters, [`TrainError::Data`] for data that does not fit the model
/// (wrong width, length mismatch, empty set, label out of range, non-finite value), [`TrainError::Resume`]
/// when the stored state belongs to another run, [`TrainError::Checkpoint`] for I/O problems, and
/// [`TrainError::Diverged`] when the loss stops being finite.
pub fn train(
    model: &mut Sequential,
    train_x: ArrayView2<f32>,
    train_y: &[u8],
    val_x: ArrayView2<f32>,
    val_y: &[u8],
    cfg: &TrainConfig,
    observer: &mut dyn FnMut(&EpochReport),
) -> Result<TrainHistory> {
    train_on(
        &CpuOnly, model, train_x, train_y, val_x, val_y, cfg, observer,
    )
}

/// [`train`] on the engine `device` picks: [`CpuOnly`], or a [`crate::gpu_train::TrainDevice`].
///
/// On a GPU the epochs follow the same seeded order from the same initial weights, with the same early stopping
/// and checkpoints, but in f32 arithmetic on the GPU: the weights agree with the CPU run within rounding, not bit
/// for bit (see [`crate::gpu_train`]). The validation loss and accuracy are computed on the GPU too.
///
/// # Errors
///
/// As [`train`], plus [`TrainError::Gpu`] when the GPU fails or, on a GPU asked for explicitly, cannot run the
/// model.
#[allow(clippy::too_many_arguments)] // `train`'s arguments plus the device.
pub fn train_on(
    device: &dyn EngineChoice,
    model: &mut Sequential,
    train_x: ArrayView2<f32>,
    train_y: &[u8],
    val_x: ArrayView2<f32>,
    val_y: &[u8],
    cfg: &TrainConfig,
    observer: &mut dyn FnMut(&EpochReport),
) -> Result<TrainHistory> {
    let data = RunData {
        train_x,
        train_y,
        val_x,
        val_y,
        store: None,
    };
    let weights = prepare(model, data, cfg)?;
    let objective = CrossEntropy {
        class_weights: weights.as_deref(),
    };
    run(
        device,
        model,
        data,
        cfg,
        weights.as_deref(),
        &objective,
        observer,
    )
}

/// The checks every run makes before it starts, in this order: the configuration, the training and validation
/// sets against the model, the memory the run needs; returns the resolved class weights.
///
/// # Errors
///
/// [`TrainError::Setting`], [`TrainError::Model`] or [`TrainError::ClassWeights`] for the configuration,
/// [`TrainError::Data`] for the data and [`TrainError::Memory`].
pub(crate) fn prepare(
    model: &Sequential,
    data: RunData<'_>,
    cfg: &TrainConfig,
) -> Result<Option<Vec<f32>>> {
    cfg.validate()?;
    let train_y = match data.store {
        None => {
            check_data(model, data.train_x, data.train_y, "training set")?;
            check_data(model, data.val_x, data.val_y, "validation set")?;
            data.train_y
        }
        Some(s) => {
            // The store's rows are checked as they are read; the shapes and labels here.
            for (part, what) in [(s.train, "training set"), (s.val, "validation set")] {
                let empty = ndarray::Array2::<f32>::zeros((0, part.width()));
                check_data(model, empty.view(), &[], what).or_else(|e| match e {
                    TrainError::Data {
                        problem: DataProblem::Empty,
                        ..
                    } if !part.is_empty() => Ok(()),
                    e => Err(e),
                })?;
            }
            s.train.labels()
        }
    };
    check_training_memory(model, cfg.batch_size.min(train_y.len()))?;
    resolve_class_weights(&cfg.class_weights, train_y, model.classes())
}

/// [`train`] on samples read from a sample store chunk by chunk ([`crate::data::StoreSamples`]): the same loop,
/// with the epoch order shuffled chunk-wise; on the CPU.
///
/// # Errors
///
/// As [`train`], plus [`TrainError::Store`] when the store cannot be read.
pub fn train_from_store(
    model: &mut Sequential,
    train: &crate::data::StoreSamples<'_>,
    val: &crate::data::StoreSamples<'_>,
    cfg: &TrainConfig,
    observer: &mut dyn FnMut(&EpochReport),
) -> Result<TrainHistory> {
    let empty = ndarray::Array2::<f32>::zeros((0, train.width()));
    let data = RunData {
        train_x: empty.view(),
        train_y: &[],
        val_x: empty.view(),
        val_y: &[],
        store: Some(StoreRun { train, val }),
    };
    let weights = prepare(model, data, cfg)?;
    let objective = CrossEntropy {
        class_weights: weights.as_deref(),
    };
    run(
        &CpuOnly,
        model,
        data,
        cfg,
        weights.as_deref(),
        &objective,
        observer,
    )
}

#[cfg(test)]
mod tests;

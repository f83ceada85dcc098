//! Mini-batch training with early stopping and resumable checkpoints.
//!
//! [`train`] runs epochs of shuffled mini-batches over the training set, evaluates the validation set after
//! each epoch, stops after `patience` epochs without a lower validation loss, and leaves the best weights in
//! the model.
//! The same seed, data and configuration give bit-identical weights: all randomness comes from one seeded
//! ChaCha8 generator and all arithmetic is single-threaded.
//!
//! With [`TrainConfig::checkpoint_dir`] set, the full training state is written after every epoch, replacing the
//! directory as one unit ([`replace_dir`]), and a later call with the same directory, model architecture, data and
//! configuration continues where the earlier one stopped, giving the same weights as an uninterrupted run.
//! A stored state is checked before it is believed: every tensor against the model, and the counters and history
//! in its metadata against each other and the data (see [`TrainError::InvalidState`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checkpoint::{
    ARCH_FILE, CheckpointError, WEIGHTS_FILE, checkpoint_weights, decode_safetensors,
    encode_safetensors,
};
use crate::fsutil::replace_dir;
use crate::gpu_train::{GpuEngine, GpuRun, TrainDevice};
use crate::model::{
    Architecture, ModelError, Optimizer, OptimizerConfig, OptimizerState, Sequential, StateDict,
    check_class_weights, class_weights_balanced, cross_entropy,
};
use tickq_gpu::train::LossDesc;

/// File name of the resumable training state inside [`TrainConfig::checkpoint_dir`].
pub const TRAIN_STATE_FILE: &str = "train_state.safetensors";

/// Version of the training state format; a state with another version is not resumed.
const STATE_VERSION: u32 = 1;

/// Metadata key under which the training state JSON is stored in [`TRAIN_STATE_FILE`].
const STATE_KEY: &str = "tickq.train_state";

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
    /// A hyper-parameter is out of range.
    #[error("invalid training configuration: {0}")]
    Config(String),
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
    #[error("invalid training data: {0}")]
    Data(String),
    /// A model operation failed.
    #[error(transparent)]
    Model(#[from] ModelError),
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
    Gpu(#[from] tickq_gpu::train::TrainGpuError),
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

/// Checks that `x` and `y` fit `model`: width, lengths, non-empty, labels in range, finite values.
pub(crate) fn check_data(
    model: &Sequential,
    x: ArrayView2<f32>,
    y: &[u8],
    what: &str,
) -> Result<()> {
    let bad = |m: String| Err(TrainError::Data(m));
    if x.ncols() != model.input_len() {
        return bad(format!(
            "{what} has {} columns but the model takes {} (time_steps x features)",
            x.ncols(),
            model.input_len()
        ));
    }
    if x.nrows() != y.len() {
        return bad(format!(
            "{what} has {} rows but {} labels",
            x.nrows(),
            y.len()
        ));
    }
    if x.nrows() == 0 {
        return bad(format!("{what} is empty"));
    }
    if let Some((i, &label)) = y
        .iter()
        .enumerate()
        .find(|(_, l)| usize::from(**l) >= model.classes())
    {
        return bad(format!(
            "{what} label {i} is {label}, but the model has {} classes",
            model.classes()
        ));
    }
    if let Some(((r, c), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return bad(format!("{what} row {r} column {c} is {v}"));
    }
    Ok(())
}

/// The per-class loss weights that `class_weights` asks for, given the training labels.
///
/// # Errors
///
/// [`TrainError::Config`] for manual weights of the wrong length, negative, not finite or all zero.
pub(crate) fn resolve_class_weights(
    class_weights: &ClassWeights,
    train_y: &[u8],
    classes: usize,
) -> Result<Option<Vec<f32>>> {
    Ok(match class_weights {
        ClassWeights::None => None,
        ClassWeights::Balanced => Some(class_weights_balanced(train_y, classes)),
        ClassWeights::Manual(w) => {
            check_class_weights(w, classes).map_err(|e| TrainError::Config(e.to_string()))?;
            Some(w.clone())
        }
    })
}

/// The configuration fields that must match for a run to resume (everything but `epochs`, `patience` and
/// `checkpoint_dir`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeKey {
    batch_size: usize,
    optimizer: OptimizerConfig,
    class_weights: ClassWeights,
    seed: u64,
    shuffle: bool,
}

/// An epoch report with f64 numbers, which JSON round-trips exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredReport {
    epoch: usize,
    train_loss: f64,
    train_accuracy: f64,
    val_loss: f64,
    val_accuracy: f64,
    seconds: f64,
    improved: bool,
}

impl From<&EpochReport> for StoredReport {
    fn from(r: &EpochReport) -> Self {
        Self {
            epoch: r.epoch,
            train_loss: f64::from(r.train_loss),
            train_accuracy: f64::from(r.train_accuracy),
            val_loss: f64::from(r.val_loss),
            val_accuracy: f64::from(r.val_accuracy),
            seconds: r.seconds,
            improved: r.improved,
        }
    }
}

impl From<&StoredReport> for EpochReport {
    fn from(r: &StoredReport) -> Self {
        Self {
            epoch: r.epoch,
            train_loss: r.train_loss as f32,
            train_accuracy: r.train_accuracy as f32,
            val_loss: r.val_loss as f32,
            val_accuracy: r.val_accuracy as f32,
            seconds: r.seconds,
            improved: r.improved,
        }
    }
}

/// The generator's position, enough to recreate it exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RngState {
    seed_hex: String,
    stream: u64,
    word_pos: String,
}

impl RngState {
    fn capture(rng: &ChaCha8Rng) -> Self {
        Self {
            seed_hex: hex(&rng.get_seed()),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    fn restore(&self) -> Option<ChaCha8Rng> {
        let bytes = unhex(&self.seed_hex)?;
        let seed: [u8; 32] = bytes.try_into().ok()?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos.parse().ok()?);
        Some(rng)
    }
}

/// Everything besides tensors that a resumed run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredState {
    version: u32,
    arch: Architecture,
    key: ResumeKey,
    data_sha256: String,
    epochs_done: usize,
    best_epoch: usize,
    best_val_loss_bits: u32,
    since_improvement: usize,
    stopped_early: bool,
    optimizer_step: u64,
    rng: RngState,
    history: Vec<StoredReport>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A SHA-256 over both data sets, so a resumed run can check that it sees the same data.
fn data_fingerprint(
    train_x: ArrayView2<f32>,
    train_y: &[u8],
    val_x: ArrayView2<f32>,
    val_y: &[u8],
) -> String {
    let mut h = Sha256::new();
    for (x, y) in [(train_x, train_y), (val_x, val_y)] {
        h.update((x.nrows() as u64).to_le_bytes());
        h.update((x.ncols() as u64).to_le_bytes());
        for row in x.rows() {
            let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
            h.update(&bytes);
        }
        h.update(y);
    }
    hex(h.finalize().as_slice())
}

/// Fisher-Yates shuffle driven by 64-bit draws, independent of `rand`'s slice helpers.
pub(crate) fn shuffle(order: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

fn prefixed(
    prefix: &str,
    state: StateDict,
) -> impl Iterator<Item = (String, Vec<usize>, Vec<f32>)> {
    state
        .into_iter()
        .map(move |(n, s, d)| (format!("{prefix}/{n}"), s, d))
}

/// The mutable state of a run, between epochs.
struct RunState {
    rng: ChaCha8Rng,
    optimizer: Optimizer,
    best: Option<StateDict>,
    best_epoch: usize,
    best_val_loss: f32,
    since_improvement: usize,
    stopped_early: bool,
    history: Vec<EpochReport>,
}

fn save_state(
    dir: &Path,
    model: &Sequential,
    run: &RunState,
    key: &ResumeKey,
    data_sha256: &str,
) -> Result<()> {
    let stored = StoredState {
        version: STATE_VERSION,
        arch: model.arch.clone(),
        key: key.clone(),
        data_sha256: data_sha256.to_string(),
        epochs_done: run.history.len(),
        best_epoch: run.best_epoch,
        best_val_loss_bits: run.best_val_loss.to_bits(),
        since_improvement: run.since_improvement,
        stopped_early: run.stopped_early,
        optimizer_step: run.optimizer.steps(),
        rng: RngState::capture(&run.rng),
        history: run.history.iter().map(StoredReport::from).collect(),
    };
    let json = serde_json::to_string(&stored)
        .map_err(|e| TrainError::Config(format!("cannot serialize the training state: {e}")))?;
    let best = run.best.clone().unwrap_or_else(|| model.state_dict());
    let mut tensors: StateDict = prefixed("model", model.state_dict()).collect();
    tensors.extend(prefixed("best", best.clone()));
    tensors.extend(prefixed("optim", run.optimizer.state().tensors));
    tensors.extend(prefixed("mask", model.mask_dict()));
    let path = dir.join(TRAIN_STATE_FILE);
    let meta = HashMap::from([(STATE_KEY.to_string(), json)]);
    let state = encode_safetensors(&tensors, Some(meta), &path)?;
    // A plain checkpoint of the best weights so far, loadable with `load_checkpoint`, in the same unit; a
    // `preprocess.json` that the caller keeps in the same directory is left alone.
    let mut best_model = model.clone();
    best_model.load_state_dict(&best)?;
    let weights = checkpoint_weights(&best_model, &dir.join(WEIGHTS_FILE))?;
    let arch = model.arch.to_toml_string()?;
    let files = [
        (TRAIN_STATE_FILE, state.as_slice()),
        (WEIGHTS_FILE, weights.as_slice()),
        (ARCH_FILE, arch.as_bytes()),
    ];
    replace_dir(dir, &files, &[]).map_err(|source| CheckpointError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Loads a stored run from `dir`, or `None` when there is none; checks that it belongs to this run (same
/// architecture, configuration, data and masks) and that it is consistent ([`check_stored`], the tensors).
fn load_state(
    dir: &Path,
    model: &mut Sequential,
    key: &ResumeKey,
    data_sha256: &str,
    optimizer: OptimizerConfig,
    train_rows: usize,
) -> Result<Option<RunState>> {
    let path = dir.join(TRAIN_STATE_FILE);
    let bytes = match crate::limits::read_file_limited(
        &path,
        crate::limits::MAX_WEIGHTS_BYTES,
        "a safetensors file",
    ) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Io { path, source }.into()),
    };
    let resume_err = |reason: String| TrainError::Resume {
        dir: dir.to_path_buf(),
        reason,
    };
    let (tensors, meta) = decode_safetensors(&bytes, &path)?;
    let json = meta
        .get(STATE_KEY)
        .ok_or_else(|| resume_err(format!("{TRAIN_STATE_FILE} has no {STATE_KEY} metadata")))?;
    let stored: StoredState = serde_json::from_str(json)
        .map_err(|e| resume_err(format!("unreadable training state: {e}")))?;
    if stored.version != STATE_VERSION {
        return Err(resume_err(format!(
            "state version {} is not {STATE_VERSION}",
            stored.version
        )));
    }
    if stored.arch != model.arch {
        return Err(resume_err("the model architecture differs".to_string()));
    }
    if stored.key != *key {
        return Err(resume_err(format!(
            "the configuration differs (stored {:?}, now {:?})",
            stored.key, key
        )));
    }
    if stored.data_sha256 != data_sha256 {
        return Err(resume_err(
            "the training or validation data differs".to_string(),
        ));
    }
    check_stored(&stored, key, train_rows).map_err(|(field, problem)| {
        TrainError::InvalidState {
            path: path.clone(),
            field,
            problem,
        }
    })?;
    let mut parts: HashMap<&str, StateDict> = HashMap::new();
    for (name, shape, data) in tensors {
        let Some((prefix, rest)) = name.split_once('/') else {
            return Err(resume_err(format!("unexpected tensor {name}")));
        };
        let prefix = match prefix {
            "model" => "model",
            "best" => "best",
            "optim" => "optim",
            "mask" => "mask",
            _ => return Err(resume_err(format!("unexpected tensor {name}"))),
        };
        parts
            .entry(prefix)
            .or_default()
            .push((rest.to_string(), shape, data));
    }
    // Masks never change during training, so different masks mean a different run.
    let mut stored_masks = parts.remove("mask").unwrap_or_default();
    let mut model_masks = model.mask_dict();
    stored_masks.sort_by(|a, b| a.0.cmp(&b.0));
    model_masks.sort_by(|a, b| a.0.cmp(&b.0));
    if stored_masks != model_masks {
        return Err(resume_err("the pruning masks differ".to_string()));
    }
    let tensors_err = |part: &'static str| {
        let path = path.clone();
        move |source| TrainError::InvalidStateTensors {
            path,
            part,
            source: Box::new(source),
        }
    };
    let current = parts.remove("model").unwrap_or_default();
    let best = parts.remove("best").unwrap_or_default();
    let mut check = model.clone();
    check.load_state_dict(&best).map_err(tensors_err("best"))?;
    check
        .load_state_dict(&current)
        .map_err(tensors_err("model"))?;
    let optim = parts.remove("optim").unwrap_or_default();
    for (name, _, data) in &optim {
        let bad = data.iter().enumerate().find(|(_, v)| {
            // Adam's second moments are averages of squares.
            !v.is_finite() || (name.ends_with(".exp_avg_sq") && **v < 0.0)
        });
        if let Some((index, value)) = bad {
            return Err(TrainError::InvalidState {
                path: path.clone(),
                field: format!("optim/{name}"),
                problem: format!("value at index {index} is {value}"),
            });
        }
    }
    let mut opt = Optimizer::new(optimizer, &check)?;
    opt.restore(&OptimizerState {
        step: stored.optimizer_step,
        tensors: optim,
    })
    .map_err(tensors_err("optim"))?;
    let rng = stored
        .rng
        .restore()
        .ok_or_else(|| resume_err("unreadable generator state".to_string()))?;
    // Everything checked: only now does the model change.
    *model = check;
    Ok(Some(RunState {
        rng,
        optimizer: opt,
        best: (stored.best_epoch > 0).then_some(best),
        best_epoch: stored.best_epoch,
        best_val_loss: f32::from_bits(stored.best_val_loss_bits),
        since_improvement: stored.since_improvement,
        stopped_early: stored.stopped_early,
        history: stored.history.iter().map(EpochReport::from).collect(),
    }))
}

/// Checks the numbers of a stored run against each other and against what `key` and `train_rows` imply, so a
/// hand-edited or damaged state is refused instead of believed; on failure gives the field and the problem.
///
/// The history must count epochs 1, 2, ... with finite losses and accuracies in [0, 1]; its `improved` flags must
/// be exactly the epochs whose validation loss is below every earlier one; the best epoch must be the last of
/// them, with its loss; the epochs since must match; a run that stopped early must have had an epoch without
/// improvement; and the optimizer step and the generator's position must be what that many epochs of
/// `train_rows` samples in batches of `key.batch_size` (shuffled or not) give.
fn check_stored(
    stored: &StoredState,
    key: &ResumeKey,
    train_rows: usize,
) -> std::result::Result<(), (String, String)> {
    let fail = |field: &str, problem: String| Err((field.to_string(), problem));
    let epochs = stored.epochs_done;
    if stored.history.len() != epochs {
        return fail(
            "epochs_done",
            format!(
                "{epochs}, but the history lists {} epochs",
                stored.history.len()
            ),
        );
    }
    let mut lowest = f64::INFINITY;
    let mut last_improved = 0;
    for (i, r) in stored.history.iter().enumerate() {
        let at = |name: &str| format!("history[{i}].{name}");
        if r.epoch != i + 1 {
            return fail(&at("epoch"), format!("{}, expected {}", r.epoch, i + 1));
        }
        for (name, v) in [("train_loss", r.train_loss), ("val_loss", r.val_loss)] {
            if !v.is_finite() || v < 0.0 {
                return fail(&at(name), format!("{v} is not a finite loss >= 0"));
            }
        }
        for (name, v) in [
            ("train_accuracy", r.train_accuracy),
            ("val_accuracy", r.val_accuracy),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return fail(&at(name), format!("{v} is not an accuracy in [0, 1]"));
            }
        }
        if !(r.seconds.is_finite() && r.seconds >= 0.0) {
            return fail(&at("seconds"), format!("{} is not a duration", r.seconds));
        }
        // Epochs are compared in f32, as training compares them.
        let improved = (r.val_loss as f32) < lowest as f32;
        if r.improved != improved {
            return fail(
                &at("improved"),
                format!(
                    "{}, but validation loss {} {} every earlier one",
                    r.improved,
                    r.val_loss,
                    if improved { "is below" } else { "is not below" }
                ),
            );
        }
        if improved {
            lowest = r.val_loss;
            last_improved = i + 1;
        }
    }
    if stored.best_epoch > epochs {
        return fail(
            "best_epoch",
            format!("{} is beyond the {epochs} epochs run", stored.best_epoch),
        );
    }
    if stored.best_epoch != last_improved {
        return fail(
            "best_epoch",
            format!(
                "{}, but the history's last improvement is epoch {last_improved}",
                stored.best_epoch
            ),
        );
    }
    let best_loss = f32::from_bits(stored.best_val_loss_bits);
    let expected_loss = match stored.best_epoch {
        0 => f32::INFINITY,
        e => stored.history[e - 1].val_loss as f32,
    };
    if best_loss.to_bits() != expected_loss.to_bits() {
        return fail(
            "best_val_loss_bits",
            format!(
                "{best_loss}, but epoch {}'s validation loss is {expected_loss}",
                stored.best_epoch
            ),
        );
    }
    if stored.since_improvement != epochs - stored.best_epoch {
        return fail(
            "since_improvement",
            format!(
                "{}, but the best epoch is {} of {epochs}",
                stored.since_improvement, stored.best_epoch
            ),
        );
    }
    if stored.stopped_early && stored.since_improvement == 0 {
        return fail(
            "stopped_early",
            "true, but the last epoch improved".to_string(),
        );
    }
    let steps_per_epoch = train_rows.div_ceil(key.batch_size.max(1)) as u64;
    let expected_steps = steps_per_epoch.saturating_mul(epochs as u64);
    if stored.optimizer_step != expected_steps {
        return fail(
            "optimizer_step",
            format!(
                "{}, but {epochs} epochs of {steps_per_epoch} batches make {expected_steps}",
                stored.optimizer_step
            ),
        );
    }
    // Each shuffle draws `train_rows - 1` 64-bit numbers, two 32-bit words of the ChaCha stream each.
    let draws_per_epoch = if key.shuffle {
        train_rows.saturating_sub(1)
    } else {
        0
    };
    let expected = RngState {
        seed_hex: hex(&ChaCha8Rng::seed_from_u64(key.seed).get_seed()),
        stream: 0,
        word_pos: (2 * draws_per_epoch as u128 * epochs as u128).to_string(),
    };
    if (
        &stored.rng.seed_hex,
        stored.rng.stream,
        &stored.rng.word_pos,
    ) != (&expected.seed_hex, expected.stream, &expected.word_pos)
    {
        return fail(
            "rng",
            format!(
                "the generator is not where {epochs} epochs with seed {} leave it",
                key.seed
            ),
        );
    }
    Ok(())
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
/// [`TrainError::Config`] for bad hyper-parameters, [`TrainError::Data`] for data that does not fit the model
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
        &TrainDevice::Cpu,
        model,
        train_x,
        train_y,
        val_x,
        val_y,
        cfg,
        observer,
    )
}

/// [`train`] on a chosen device.
///
/// On a GPU ([`TrainDevice::Gpu`], or [`TrainDevice::Auto`] when the GPU trainer can run the model) the epochs
/// follow the same seeded order from the same initial weights, with the same early stopping and checkpoints,
/// but in f32 arithmetic on the GPU: the weights agree with the CPU run within rounding, not bit for bit
/// (see [`crate::gpu_train`]). The validation loss and accuracy are computed on the GPU too.
///
/// # Errors
///
/// As [`train`], plus [`TrainError::Gpu`] when the GPU fails or, on [`TrainDevice::Gpu`], cannot run the model.
#[allow(clippy::too_many_arguments)] // `train`'s arguments plus the device.
pub fn train_on(
    device: &TrainDevice,
    model: &mut Sequential,
    train_x: ArrayView2<f32>,
    train_y: &[u8],
    val_x: ArrayView2<f32>,
    val_y: &[u8],
    cfg: &TrainConfig,
    observer: &mut dyn FnMut(&EpochReport),
) -> Result<TrainHistory> {
    cfg.validate()?;
    check_data(model, train_x, train_y, "training set")?;
    check_data(model, val_x, val_y, "validation set")?;
    check_training_memory(model, cfg.batch_size.min(train_x.nrows()))?;
    let weights = resolve_class_weights(&cfg.class_weights, train_y, model.classes())?;
    let weights = weights.as_deref();
    let key = ResumeKey {
        batch_size: cfg.batch_size,
        optimizer: cfg.optimizer.clone(),
        class_weights: cfg.class_weights.clone(),
        seed: cfg.seed,
        shuffle: cfg.shuffle,
    };
    let data_sha256 = match cfg.checkpoint_dir {
        Some(_) => data_fingerprint(train_x, train_y, val_x, val_y),
        None => String::new(),
    };
    let resumed = match &cfg.checkpoint_dir {
        Some(dir) => load_state(
            dir,
            model,
            &key,
            &data_sha256,
            cfg.optimizer.clone(),
            train_x.nrows(),
        )?,
        None => None,
    };
    let resumed_from = resumed.as_ref().map(|r| r.history.len());
    let mut run = match resumed {
        Some(run) => run,
        None => RunState {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            optimizer: Optimizer::new(cfg.optimizer.clone(), model)?,
            best: None,
            best_epoch: 0,
            best_val_loss: f32::INFINITY,
            since_improvement: 0,
            stopped_early: false,
            history: Vec::new(),
        },
    };

    let n = train_x.nrows();
    let mut order: Vec<usize> = (0..n).collect();
    let mut gpu = if run.stopped_early || run.history.len() >= cfg.epochs {
        None
    } else {
        GpuEngine::start(
            device,
            model,
            &run.optimizer,
            GpuRun {
                train_x,
                train_y,
                teacher: None,
                val_x,
                val_y,
                class_weights: weights,
                batch_size: cfg.batch_size,
                loss: LossDesc::CrossEntropy,
            },
        )?
    };
    while !run.stopped_early && run.history.len() < cfg.epochs {
        let epoch = run.history.len() + 1;
        let start = Instant::now();
        order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
        if cfg.shuffle {
            shuffle(&mut order, &mut run.rng);
        }
        let mut loss_sum = 0.0f64;
        let mut weight_sum = 0.0f64;
        let mut correct = 0usize;
        let mut gpu_val = None;
        if let Some(g) = gpu.as_mut() {
            let stats = g.epoch(&order)?;
            if let Some(batch) = stats.train.diverged_at {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: batch as usize,
                    loss: f32::NAN,
                });
            }
            loss_sum = f64::from(stats.train.loss_sum);
            weight_sum = f64::from(stats.train.weight_sum);
            correct = stats.train.correct as usize;
            gpu_val = stats
                .val
                .map(|v| (v.mean_loss(), v.correct as f32 / val_y.len().max(1) as f32));
        }
        let cpu_batches = if gpu.is_some() { 0 } else { n };
        for (batch, idx) in order[..cpu_batches].chunks(cfg.batch_size).enumerate() {
            let xb = train_x.select(Axis(0), idx);
            let yb: Vec<u8> = idx.iter().map(|&i| train_y[i]).collect();
            let (logits, caches) = model.forward_train(xb.view());
            let ce = cross_entropy(logits.view(), &yb, weights)?;
            if !ce.loss.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch,
                    loss: ce.loss,
                });
            }
            let grads = model.backward(&caches, ce.grad);
            run.optimizer.step(model, &grads)?;
            loss_sum += f64::from(ce.loss) * f64::from(ce.weight_sum);
            weight_sum += f64::from(ce.weight_sum);
            correct += ce.correct;
        }
        let (val_loss, val_accuracy) = match gpu_val {
            Some(v) => v,
            None => evaluate_checked(model, val_x, val_y, weights)?,
        };
        if !val_loss.is_finite() {
            return Err(TrainError::Diverged {
                epoch,
                batch: 0,
                loss: val_loss,
            });
        }
        let improved = val_loss < run.best_val_loss;
        if improved {
            run.best = match gpu.as_mut() {
                Some(g) => g.improved(cfg.checkpoint_dir.is_some())?,
                None => Some(model.state_dict()),
            };
            run.best_epoch = epoch;
            run.best_val_loss = val_loss;
            run.since_improvement = 0;
        } else {
            run.since_improvement += 1;
        }
        run.stopped_early = cfg.patience > 0 && run.since_improvement >= cfg.patience;
        let report = EpochReport {
            epoch,
            train_loss: if weight_sum > 0.0 {
                (loss_sum / weight_sum) as f32
            } else {
                0.0
            },
            train_accuracy: correct as f32 / n as f32,
            val_loss,
            val_accuracy,
            seconds: start.elapsed().as_secs_f64(),
            improved,
        };
        run.history.push(report.clone());
        if let Some(dir) = &cfg.checkpoint_dir {
            if let Some(g) = gpu.as_mut() {
                g.sync(model, &mut run.optimizer)?;
            }
            save_state(dir, model, &run, &key, &data_sha256)?;
        }
        observer(&report);
    }
    let gpu_best = match gpu.as_mut() {
        Some(g) => g.best()?,
        None => None,
    };
    if let Some(best) = gpu_best.as_ref().or(run.best.as_ref()) {
        model.load_state_dict(best)?;
    } else if let Some(g) = gpu.as_mut() {
        g.sync(model, &mut run.optimizer)?;
    }
    Ok(TrainHistory {
        epochs: run.history,
        best_epoch: run.best_epoch,
        best_val_loss: run.best_val_loss,
        stopped_early: run.stopped_early,
        resumed_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Three Gaussian-ish blobs in `features` dimensions, deterministic.
    fn blobs(n: usize, features: usize, seed: u64) -> (Array2<f32>, Vec<u8>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uni = || (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
        let mut x = Array2::<f32>::zeros((n, features));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let class = (i * 7 + 3) % 3;
            for f in 0..features {
                let center = if f % 3 == class { 1.5 } else { 0.0 };
                x[[i, f]] = center + uni() + uni();
            }
            y.push(class as u8);
        }
        (x, y)
    }

    fn mlp(features: usize) -> Sequential {
        let arch = Architecture::from_toml_str(&format!(
            "name = \"t\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = {features}\n\
             [[layers]]\ntype = \"dense\"\nout = 16\n[[layers]]\ntype = \"relu\"\n\
             [[layers]]\ntype = \"dense\"\nout = 3\n"
        ))
        .unwrap();
        Sequential::new(arch, 1).unwrap()
    }

    fn conv_model() -> Sequential {
        let arch = Architecture::from_toml_str(
            "name = \"c\"\nclasses = 3\n[input]\ntime_steps = 8\nfeatures = 3\n\
             [[layers]]\ntype = \"conv1d\"\nout = 4\nkernel = 3\npadding = \"causal\"\n\
             [[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"global_avg_pool\"\n\
             [[layers]]\ntype = \"dense\"\nout = 3\n",
        )
        .unwrap();
        Sequential::new(arch, 2).unwrap()
    }

    fn bits(m: &Sequential) -> Vec<(String, Vec<u32>)> {
        m.state_dict()
            .into_iter()
            .map(|(n, _, d)| (n, d.iter().map(|v| v.to_bits()).collect()))
            .collect()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tickq-train-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn no_timing(h: &TrainHistory) -> Vec<EpochReport> {
        h.epochs
            .iter()
            .map(|r| EpochReport {
                seconds: 0.0,
                ..r.clone()
            })
            .collect()
    }

    #[test]
    fn learns_separable_blobs_and_reports_every_epoch() {
        let (x, y) = blobs(600, 6, 1);
        let (vx, vy) = blobs(150, 6, 2);
        let mut model = mlp(6);
        let cfg = TrainConfig {
            epochs: 8,
            batch_size: 32,
            optimizer: OptimizerConfig::adam(1e-2),
            ..TrainConfig::default()
        };
        let mut seen = Vec::new();
        let h = train(&mut model, x.view(), &y, vx.view(), &vy, &cfg, &mut |r| {
            seen.push(r.epoch)
        })
        .unwrap();
        assert_eq!(seen, (1..=h.epochs.len()).collect::<Vec<_>>());
        let last = h.epochs.last().unwrap();
        assert!(last.val_accuracy > 0.9, "{last:?}");
        assert!(h.epochs[0].train_loss > last.train_loss);
        let (loss, acc) = evaluate(&model, vx.view(), &vy, None).unwrap();
        assert_eq!(loss, h.best_val_loss);
        assert!(acc > 0.9);
    }

    #[test]
    fn fixed_seed_gives_bit_identical_weights() {
        let (x, y) = blobs(200, 24, 3);
        let (vx, vy) = blobs(50, 24, 4);
        let run = |seed: u64| {
            let mut m = conv_model();
            let cfg = TrainConfig {
                epochs: 3,
                batch_size: 16,
                seed,
                class_weights: ClassWeights::Balanced,
                ..TrainConfig::default()
            };
            let h = train(&mut m, x.view(), &y, vx.view(), &vy, &cfg, &mut |_| {}).unwrap();
            (bits(&m), no_timing(&h))
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a.0, run(8).0);
    }

    #[test]
    fn resume_after_interruption_matches_an_uninterrupted_run() {
        let (x, y) = blobs(160, 24, 5);
        let (vx, vy) = blobs(40, 24, 6);
        for optimizer in [
            OptimizerConfig::adam(5e-3),
            OptimizerConfig::Sgd {
                lr: 0.05,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-4,
            },
        ] {
            let cfg = |epochs: usize, dir: Option<PathBuf>| TrainConfig {
                epochs,
                batch_size: 24,
                optimizer: optimizer.clone(),
                patience: 0,
                checkpoint_dir: dir,
                ..TrainConfig::default()
            };
            let mut straight = conv_model();
            let hs = train(
                &mut straight,
                x.view(),
                &y,
                vx.view(),
                &vy,
                &cfg(4, None),
                &mut |_| {},
            )
            .unwrap();

            let dir = temp_dir("resume");
            let mut first = conv_model();
            let h1 = train(
                &mut first,
                x.view(),
                &y,
                vx.view(),
                &vy,
                &cfg(2, Some(dir.clone())),
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(h1.epochs.len(), 2);
            assert_eq!(h1.resumed_from, None);
            // The directory holds a loadable checkpoint of the best weights so far.
            let (saved, _) = crate::checkpoint::load_checkpoint(&dir).unwrap();
            assert_eq!(bits(&saved), bits(&first));

            // A fresh process: a newly initialized model with another seed, same directory.
            let mut resumed = Sequential::new(conv_model().arch, 99).unwrap();
            let mut new_epochs = Vec::new();
            let h2 = train(
                &mut resumed,
                x.view(),
                &y,
                vx.view(),
                &vy,
                &cfg(4, Some(dir.clone())),
                &mut |r| new_epochs.push(r.epoch),
            )
            .unwrap();
            assert_eq!(new_epochs, vec![3, 4]);
            assert_eq!(h2.resumed_from, Some(2));
            assert_eq!(bits(&resumed), bits(&straight), "{optimizer:?}");
            assert_eq!(no_timing(&h2), no_timing(&hs));
            assert_eq!(h2.best_epoch, hs.best_epoch);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn resume_refuses_other_runs() {
        let (x, y) = blobs(60, 24, 7);
        let (vx, vy) = blobs(20, 24, 8);
        let dir = temp_dir("refuse");
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: 16,
            checkpoint_dir: Some(dir.clone()),
            ..TrainConfig::default()
        };
        train(
            &mut conv_model(),
            x.view(),
            &y,
            vx.view(),
            &vy,
            &cfg,
            &mut |_| {},
        )
        .unwrap();
        let other_seed = TrainConfig {
            seed: 1,
            epochs: 2,
            ..cfg.clone()
        };
        let e = train(
            &mut conv_model(),
            x.view(),
            &y,
            vx.view(),
            &vy,
            &other_seed,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(&e, TrainError::Resume { reason, .. } if reason.contains("configuration")),
            "{e}"
        );
        let mut y2 = y.clone();
        y2[0] = (y2[0] + 1) % 3;
        let e = train(
            &mut conv_model(),
            x.view(),
            &y2,
            vx.view(),
            &vy,
            &cfg,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(&e, TrainError::Resume { reason, .. } if reason.contains("data")),
            "{e}"
        );
        let mut other_arch = conv_model().arch;
        other_arch.name = "other".to_string();
        let e = train(
            &mut Sequential::new(other_arch, 1).unwrap(),
            x.view(),
            &y,
            vx.view(),
            &vy,
            &cfg,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("architecture"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A training state whose metadata was edited, or whose tensors hold non-finite values, is refused naming the
    /// file and the field or tensor, and the model is left as it was.
    #[test]
    fn edited_training_states_are_refused_naming_the_field() {
        let (x, y) = blobs(60, 24, 9);
        let (vx, vy) = blobs(20, 24, 10);
        let dir = temp_dir("edited");
        let cfg = |epochs| TrainConfig {
            epochs,
            batch_size: 16,
            patience: 0,
            checkpoint_dir: Some(dir.clone()),
            ..TrainConfig::default()
        };
        let run = |epochs| {
            let mut model = conv_model();
            let before = bits(&model);
            let r = train(
                &mut model,
                x.view(),
                &y,
                vx.view(),
                &vy,
                &cfg(epochs),
                &mut |_| {},
            );
            (r, before == bits(&model))
        };
        run(3).0.unwrap();
        let path = dir.join(TRAIN_STATE_FILE);
        let original = std::fs::read(&path).unwrap();
        let (tensors, meta) = decode_safetensors(&original, &path).unwrap();
        let state: serde_json::Value = serde_json::from_str(&meta[STATE_KEY]).unwrap();
        // The untouched state resumes.
        run(4).0.unwrap();
        let rewrite = |edit: &dyn Fn(&mut serde_json::Value, &mut StateDict)| {
            let mut state = state.clone();
            let mut tensors = tensors.clone();
            edit(&mut state, &mut tensors);
            let meta = HashMap::from([(STATE_KEY.to_string(), state.to_string())]);
            let bytes = encode_safetensors(&tensors, Some(meta), &path).unwrap();
            std::fs::write(&path, bytes).unwrap();
        };
        let field_of = |e: &TrainError| match e {
            TrainError::InvalidState { field, .. } => field.clone(),
            TrainError::InvalidStateTensors { part, .. } => format!("{part}/"),
            other => panic!("not an invalid state: {other}"),
        };
        type Edit = Box<dyn Fn(&mut serde_json::Value, &mut StateDict)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "best_epoch",
                Box::new(|s, _| s["best_epoch"] = 1_000_000.into()),
            ),
            ("epochs_done", Box::new(|s, _| s["epochs_done"] = 2.into())),
            (
                "history[1].epoch",
                Box::new(|s, _| s["history"][1]["epoch"] = 7.into()),
            ),
            (
                "history[0].improved",
                Box::new(|s, _| s["history"][0]["improved"] = false.into()),
            ),
            (
                "history[2].val_accuracy",
                Box::new(|s, _| s["history"][2]["val_accuracy"] = 1.5.into()),
            ),
            (
                "since_improvement",
                Box::new(|s, _| {
                    let v = s["since_improvement"].as_u64().unwrap();
                    s["since_improvement"] = (v + 1).into();
                }),
            ),
            (
                "best_val_loss_bits",
                Box::new(|s, _| {
                    let v = s["best_val_loss_bits"].as_u64().unwrap();
                    s["best_val_loss_bits"] = (v + 1).into();
                }),
            ),
            (
                "optimizer_step",
                Box::new(|s, _| {
                    let v = s["optimizer_step"].as_u64().unwrap();
                    s["optimizer_step"] = (v + 1).into();
                }),
            ),
            ("rng", Box::new(|s, _| s["rng"]["word_pos"] = "0".into())),
            (
                "stopped_early",
                Box::new(|s, _| s["stopped_early"] = true.into()),
            ),
            (
                "history[1].train_loss",
                Box::new(|s, _| s["history"][1]["train_loss"] = (-0.5).into()),
            ),
            (
                "model/",
                Box::new(|_, t| {
                    let i = t.iter().position(|t| t.0.starts_with("model/")).unwrap();
                    t[i].2[0] = f32::NAN;
                }),
            ),
            (
                "best/",
                Box::new(|_, t| {
                    let i = t.iter().position(|t| t.0.starts_with("best/")).unwrap();
                    t[i].1.push(1);
                }),
            ),
            (
                "optim/conv1.weight.exp_avg_sq",
                Box::new(|_, t| {
                    let i = t
                        .iter()
                        .position(|t| t.0 == "optim/conv1.weight.exp_avg_sq")
                        .unwrap();
                    t[i].2[3] = -1.0;
                }),
            ),
        ];
        for (field, edit) in &cases {
            rewrite(edit.as_ref());
            let (result, unchanged) = run(5);
            let e = result.unwrap_err();
            assert_eq!(&field_of(&e), field, "{e}");
            assert!(
                e.to_string().starts_with(&path.display().to_string()),
                "{e}"
            );
            assert!(unchanged, "{field}: the model changed");
        }
        rewrite(&|s, _| s["best_epoch"] = 1_000_000.into());
        let e = run(5).0.unwrap_err();
        assert!(
            e.to_string()
                .ends_with("best_epoch: 1000000 is beyond the 3 epochs run"),
            "{e}"
        );
        // Unknown keys, at any level of the metadata, are refused too.
        for edit in [
            Box::new(|s: &mut serde_json::Value, _: &mut StateDict| s["note"] = 1.into()) as Edit,
            Box::new(|s, _| s["history"][0]["lr"] = 0.1.into()),
            Box::new(|s, _| s["rng"]["offset"] = 0.into()),
        ] {
            rewrite(edit.as_ref());
            let (result, unchanged) = run(5);
            let e = result.unwrap_err();
            assert!(
                matches!(&e, TrainError::Resume { reason, .. } if reason.contains("unknown field")),
                "{e}"
            );
            assert!(unchanged);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn early_stopping_restores_the_best_weights() {
        let (x, y) = blobs(300, 6, 9);
        // Validation labels disagree with the training rule, so the validation loss rises once the model learns.
        let (vx, mut vy) = blobs(90, 6, 10);
        vy.iter_mut().for_each(|v| *v = (*v + 1) % 3);
        let mut model = mlp(6);
        let cfg = TrainConfig {
            epochs: 30,
            batch_size: 16,
            optimizer: OptimizerConfig::adam(1e-2),
            patience: 2,
            ..TrainConfig::default()
        };
        let h = train(&mut model, x.view(), &y, vx.view(), &vy, &cfg, &mut |_| {}).unwrap();
        assert!(h.stopped_early);
        assert_eq!(h.epochs.len(), h.best_epoch + 2);
        assert!(h.epochs[h.best_epoch - 1].improved);
        assert!(h.epochs[h.best_epoch..].iter().all(|r| !r.improved));
        let (loss, _) = evaluate(&model, vx.view(), &vy, None).unwrap();
        assert_eq!(loss, h.best_val_loss);
        assert!(loss < h.epochs.last().unwrap().val_loss);
    }

    #[test]
    fn rejects_bad_configuration_and_data() {
        let (x, y) = blobs(30, 6, 11);
        let mut m = mlp(6);
        let run = |m: &mut Sequential, x: ArrayView2<f32>, y: &[u8], cfg: &TrainConfig| {
            train(m, x, y, x, y, cfg, &mut |_| {}).unwrap_err()
        };
        let base = TrainConfig::default();
        let e = run(
            &mut m,
            x.view(),
            &y,
            &TrainConfig {
                batch_size: 0,
                ..base.clone()
            },
        );
        assert!(matches!(
            e,
            TrainError::Setting {
                setting: "batch_size",
                ..
            }
        ));
        let e = run(
            &mut m,
            x.view(),
            &y,
            &TrainConfig {
                optimizer: OptimizerConfig::adam(-1.0),
                ..base.clone()
            },
        );
        assert!(
            matches!(e, TrainError::Model(ModelError::Optimizer(_)))
                && e.to_string().contains("lr"),
            "{e}"
        );
        // No epoch would save the random initial weights as if trained.
        let e = run(
            &mut m,
            x.view(),
            &y,
            &TrainConfig {
                epochs: 0,
                ..base.clone()
            },
        );
        assert_eq!(
            e.to_string(),
            "invalid training configuration: epochs: 0 is out of range: expected a whole number from 1 to 1000000"
        );
        let e = run(
            &mut m,
            x.view(),
            &y,
            &TrainConfig {
                optimizer: OptimizerConfig::sgd(0.1, 2.0),
                ..base.clone()
            },
        );
        assert_eq!(
            e.to_string(),
            "invalid optimizer setting: sgd momentum: 2 is out of range: expected a number in [0, 1)"
        );
        let e = run(
            &mut m,
            x.view(),
            &y,
            &TrainConfig {
                class_weights: ClassWeights::Manual(vec![1.0]),
                ..base.clone()
            },
        );
        assert!(matches!(e, TrainError::Config(m) if m.contains("1 weights for 3 classes")));
        let e = run(&mut m, x.view(), &y[1..], &base);
        assert!(matches!(e, TrainError::Data(m) if m.contains("30 rows but 29 labels")));
        let mut bad_y = y.clone();
        bad_y[4] = 3;
        let e = run(&mut m, x.view(), &bad_y, &base);
        assert!(matches!(e, TrainError::Data(m) if m.contains("label 4 is 3")));
        let mut bad_x = x.clone();
        bad_x[[2, 1]] = f32::NAN;
        let e = run(&mut m, bad_x.view(), &y, &base);
        assert!(matches!(e, TrainError::Data(m) if m.contains("row 2 column 1")));
        let e = run(&mut m, x.slice(ndarray::s![.., 1..]), &y, &base);
        assert!(matches!(e, TrainError::Data(m) if m.contains("5 columns")));
        let e = run(&mut m, x.slice(ndarray::s![0..0, ..]), &[], &base);
        assert!(matches!(e, TrainError::Data(m) if m.contains("empty")));
    }

    #[test]
    fn divergence_is_reported() {
        let (mut x, y) = blobs(64, 6, 12);
        x.mapv_inplace(|v| v * 1e18);
        let mut m = mlp(6);
        let cfg = TrainConfig {
            epochs: 3,
            batch_size: 8,
            optimizer: OptimizerConfig::sgd(1e6, 0.0),
            ..TrainConfig::default()
        };
        let e = train(&mut m, x.view(), &y, x.view(), &y, &cfg, &mut |_| {}).unwrap_err();
        assert!(matches!(e, TrainError::Diverged { .. }), "{e}");
    }

    #[test]
    fn config_reads_from_toml_with_defaults() {
        let cfg: TrainConfig = toml::from_str(
            "epochs = 5\nclass_weights = \"balanced\"\n[optimizer]\ntype = \"sgd\"\nlr = 0.1\nmomentum = 0.9\nnesterov = true\n",
        )
        .unwrap();
        assert_eq!(cfg.epochs, 5);
        assert_eq!(cfg.batch_size, 256);
        assert_eq!(cfg.class_weights, ClassWeights::Balanced);
        assert!(matches!(
            cfg.optimizer,
            OptimizerConfig::Sgd {
                nesterov: true,
                weight_decay: 0.0,
                ..
            }
        ));
        let cfg: TrainConfig = serde_json::from_str(
            r#"{"optimizer": {"type": "adam", "lr": 0.01}, "class_weights": {"manual": [1, 2, 0.5]}}"#,
        )
        .unwrap();
        assert_eq!(cfg.optimizer, OptimizerConfig::adam(0.01));
        assert_eq!(cfg.class_weights, ClassWeights::Manual(vec![1.0, 2.0, 0.5]));
        let bad: Result<TrainConfig, _> = toml::from_str("[optimizer]\ntype = \"adam\"\n");
        assert!(bad.unwrap_err().to_string().contains("lr"));
    }
}

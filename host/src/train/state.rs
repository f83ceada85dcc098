//! The resumable training state: what [`super::epochs`] writes into [`TrainConfig::checkpoint_dir`] after every
//! epoch and reads back to continue an interrupted run.
//!
//! [`TRAIN_STATE_FILE`] holds the current weights (`model/`), the best weights so far (`best/`), the optimizer's
//! buffers (`optim/`) and the masks (`mask/`) as tensors, and the counters, history, generator position and
//! [`ResumeKey`] as JSON metadata. A stored state is checked before it is believed: the key, the data's
//! fingerprint and the masks against this run, every tensor against the model, and the numbers of the metadata
//! against each other ([`check_stored`]).

use std::collections::HashMap;
use std::path::Path;

use ndarray::ArrayView2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::objective::{Loss, Objective};
use super::{ClassWeights, EpochReport, Result, TRAIN_STATE_FILE, TrainConfig, TrainError};
use crate::checkpoint::{
    ARCH_FILE, CheckpointError, WEIGHTS_FILE, checkpoint_weights, decode_safetensors,
    encode_safetensors,
};
use crate::fsutil::replace_dir;
use crate::model::{
    Architecture, Optimizer, OptimizerConfig, OptimizerState, Sequential, StateDict,
};

/// Version of the training state format; a state with another version is not resumed.
const STATE_VERSION: u32 = 1;

/// Metadata key under which the training state JSON is stored in [`TRAIN_STATE_FILE`].
pub(super) const STATE_KEY: &str = "tickq.train_state";

/// The settings that must match for a run to resume: the configuration fields but `epochs`, `patience` and
/// `checkpoint_dir`, and for distillation the objective's settings and teacher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResumeKey {
    batch_size: usize,
    optimizer: OptimizerConfig,
    class_weights: ClassWeights,
    seed: u64,
    shuffle: bool,
    /// `None` for plain training, whose stored key has no such field (the format of version 1 as it was before
    /// distillation could resume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    distill: Option<DistillKey>,
}

impl ResumeKey {
    /// The key of a run of `cfg` with `objective`; `resumable` computes the teacher's fingerprint, which only a
    /// run with a checkpoint directory needs.
    pub(super) fn new(cfg: &TrainConfig, objective: &dyn Objective, resumable: bool) -> Self {
        let distill = match objective.loss() {
            Loss::CrossEntropy => None,
            Loss::Distill {
                alpha,
                temperature,
                teacher_logits,
            } => Some(DistillKey {
                temperature,
                alpha,
                teacher_sha256: if resumable {
                    let mut h = Sha256::new();
                    h.update((teacher_logits.len() as u64).to_le_bytes());
                    for v in teacher_logits {
                        h.update(v.to_le_bytes());
                    }
                    hex(h.finalize().as_slice())
                } else {
                    String::new()
                },
            }),
        };
        Self {
            batch_size: cfg.batch_size,
            optimizer: cfg.optimizer.clone(),
            class_weights: cfg.class_weights.clone(),
            seed: cfg.seed,
            shuffle: cfg.shuffle,
            distill,
        }
    }

    /// Why a stored run with key `stored` is not this run, or `None` when it is.
    fn mismatch(&self, stored: &Self) -> Option<String> {
        if stored == self {
            return None;
        }
        Some(match (&stored.distill, &self.distill) {
            (None, Some(_)) => "the state is of a training run, not of distillation".to_string(),
            (Some(_), None) => "the state is of distillation, not of a training run".to_string(),
            (Some(a), Some(b)) if a.teacher_sha256 != b.teacher_sha256 => {
                "the teacher differs (its logits on the training set)".to_string()
            }
            _ => format!(
                "the configuration differs (stored {:?}, now {:?})",
                stored, self
            ),
        })
    }
}

/// The distillation part of a [`ResumeKey`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DistillKey {
    temperature: f32,
    alpha: f32,
    /// A SHA-256 over the teacher's logits on the training set.
    teacher_sha256: String,
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
pub(super) fn data_fingerprint(
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

fn prefixed(
    prefix: &str,
    state: StateDict,
) -> impl Iterator<Item = (String, Vec<usize>, Vec<f32>)> {
    state
        .into_iter()
        .map(move |(n, s, d)| (format!("{prefix}/{n}"), s, d))
}

/// The mutable state of a run, between epochs.
pub(super) struct RunState {
    pub(super) rng: ChaCha8Rng,
    pub(super) optimizer: Optimizer,
    pub(super) best: Option<StateDict>,
    pub(super) best_epoch: usize,
    pub(super) best_val_loss: f32,
    pub(super) since_improvement: usize,
    pub(super) stopped_early: bool,
    pub(super) history: Vec<EpochReport>,
}

pub(super) fn save_state(
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
    let json = serde_json::to_string(&stored).map_err(TrainError::StateSerialize)?;
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
pub(super) fn load_state(
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
    if let Some(reason) = key.mismatch(&stored.key) {
        return Err(resume_err(reason));
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

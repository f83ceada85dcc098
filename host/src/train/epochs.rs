//! The one training loop: epochs of seeded, shuffled batches, early stopping on the validation loss, the best
//! weights restored at the end, and a resumable state written after every epoch.
//!
//! [`run`] is shared by [`super::train_on`], [`crate::distill::distill_train_on`] and, through [`super::train`],
//! the fine-tunes of [`crate::prune`]. What differs between them is the [`Objective`] (cross-entropy with class
//! weights, or distillation) and the [`Engine`] (CPU or GPU) that an [`EngineChoice`] picks; everything between
//! two epochs happens here, the same for all of them.

use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::engine::{CpuEngine, Engine, EngineChoice, EngineSetup};
use super::objective::Objective;
use super::state::{ResumeKey, RunState, data_fingerprint, load_state, save_state};
use super::{EpochReport, Result, TrainConfig, TrainError, TrainHistory, evaluate_checked};
use crate::data::StoreSamples;
use crate::model::{Optimizer, Sequential};

/// The four data sets of a run, checked against the model already.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunData<'a> {
    /// Training rows.
    pub(crate) train_x: ArrayView2<'a, f32>,
    /// Training labels.
    pub(crate) train_y: &'a [u8],
    /// Validation rows.
    pub(crate) val_x: ArrayView2<'a, f32>,
    /// Validation labels.
    pub(crate) val_y: &'a [u8],
    /// Training and validation samples read from a sample store instead of the four views (then empty).
    pub(crate) store: Option<StoreRun<'a>>,
}

/// The training and validation parts of a sample store ([`crate::data::StoreSamples`]).
#[derive(Debug, Clone, Copy)]
pub struct StoreRun<'a> {
    /// Training samples.
    pub train: &'a StoreSamples<'a>,
    /// Validation samples.
    pub val: &'a StoreSamples<'a>,
}

/// Where the training loop takes its samples from: rows in memory, or a sample store read chunk by chunk.
#[derive(Debug, Clone, Copy)]
pub enum SampleSource<'a> {
    /// A matrix of rows and its labels.
    Memory(ArrayView2<'a, f32>, &'a [u8]),
    /// A standardized range of a sample store.
    Store(&'a StoreSamples<'a>),
}

impl SampleSource<'_> {
    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels().len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels().is_empty()
    }

    /// The labels.
    #[must_use]
    pub fn labels(&self) -> &[u8] {
        match self {
            SampleSource::Memory(_, y) => y,
            SampleSource::Store(s) => s.labels(),
        }
    }

    /// The rows of the samples `idx`, in that order.
    ///
    /// # Errors
    ///
    /// [`TrainError::Store`] when a store cannot be read.
    pub fn rows(&self, idx: &[usize]) -> Result<Array2<f32>> {
        match self {
            SampleSource::Memory(x, _) => Ok(x.select(Axis(0), idx)),
            SampleSource::Store(s) => s.rows(idx).map_err(|e| TrainError::Store(Box::new(e))),
        }
    }

    /// The epoch order (`order` holds `0..len()` in any order): shuffled in memory; chunk-wise for a store.
    pub fn shuffle(&self, order: &mut [usize], rng: &mut ChaCha8Rng) {
        match self {
            SampleSource::Memory(..) => {
                order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
                shuffle(order, rng);
            }
            SampleSource::Store(s) => s.epoch_order(order, rng),
        }
    }
}

/// The loss and accuracy of `model` on `source`, in batches of the evaluation size.
pub fn evaluate_source(
    model: &Sequential,
    source: SampleSource<'_>,
    class_weights: Option<&[f32]>,
) -> Result<(f32, f32)> {
    match source {
        SampleSource::Memory(x, y) => Ok(evaluate_checked(model, x, y, class_weights)?),
        SampleSource::Store(_) => {
            let y = source.labels();
            let mut loss_sum = 0.0f64;
            let mut weight_sum = 0.0f64;
            let mut correct = 0usize;
            let mut at = 0;
            while at < y.len() {
                let next = (at + super::EVAL_BATCH).min(y.len());
                let idx: Vec<usize> = (at..next).collect();
                let xb = source.rows(&idx)?;
                let logits = model.forward(xb.view());
                let ce = crate::model::cross_entropy(logits.view(), &y[at..next], class_weights)?;
                loss_sum += f64::from(ce.loss) * f64::from(ce.weight_sum);
                weight_sum += f64::from(ce.weight_sum);
                correct += ce.correct;
                at = next;
            }
            let loss = if weight_sum > 0.0 {
                (loss_sum / weight_sum) as f32
            } else {
                0.0
            };
            Ok((loss, correct as f32 / y.len().max(1) as f32))
        }
    }
}

/// Fisher-Yates shuffle driven by 64-bit draws, independent of `rand`'s slice helpers.
pub(crate) fn shuffle(order: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

/// Trains `model` on `data` for `objective` with the settings of `cfg`, on the engine `choice` picks, calling
/// `observer` after every epoch; the caller has validated `cfg`, checked the data and resolved `class_weights`.
///
/// With `cfg.checkpoint_dir` the state of the run is saved after every epoch, and a state found there at the start
/// is resumed (after the checks of [`load_state`]). The validation loss, which early stopping watches, is the
/// cross-entropy with the class weights whatever the objective, so runs of different objectives compare.
///
/// # Errors
///
/// [`TrainError::Resume`] or [`TrainError::InvalidState`] for a stored state of another run or a damaged one,
/// [`TrainError::Checkpoint`] for I/O, [`TrainError::Diverged`] when a loss stops being finite, and the engine's
/// errors.
pub(crate) fn run(
    choice: &dyn EngineChoice,
    model: &mut Sequential,
    data: RunData<'_>,
    cfg: &TrainConfig,
    class_weights: Option<&[f32]>,
    objective: &dyn Objective,
    observer: &mut dyn FnMut(&EpochReport),
) -> Result<TrainHistory> {
    let RunData {
        train_x,
        train_y,
        val_x,
        val_y,
        store,
    } = data;
    let (train, val) = match store {
        Some(s) => (SampleSource::Store(s.train), SampleSource::Store(s.val)),
        None => (
            SampleSource::Memory(train_x, train_y),
            SampleSource::Memory(val_x, val_y),
        ),
    };
    let resumable = cfg.checkpoint_dir.is_some();
    let key = ResumeKey::new(cfg, objective, resumable);
    let data_sha256 = match (resumable, store) {
        (false, _) => String::new(),
        (true, None) => data_fingerprint(train_x, train_y, val_x, val_y),
        (true, Some(s)) => format!("store:{}:{}", s.train.fingerprint(), s.val.fingerprint()),
    };
    let resumed = match &cfg.checkpoint_dir {
        Some(dir) => load_state(
            dir,
            model,
            &key,
            &data_sha256,
            cfg.optimizer.clone(),
            train.len(),
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
    let finished = |run: &RunState| run.stopped_early || run.history.len() >= cfg.epochs;
    // A store's samples are not in memory for a GPU engine to upload: it trains on the CPU.
    let started = if finished(&run) || store.is_some() {
        None
    } else {
        choice.start(&EngineSetup {
            model,
            optimizer: &run.optimizer,
            train_x,
            train_y,
            val_x,
            val_y,
            class_weights,
            batch_size: cfg.batch_size,
            loss: objective.loss(),
        })?
    };
    let mut engine: Box<dyn Engine + '_> = match started {
        Some(engine) => engine,
        None => Box::new(CpuEngine {
            train,
            batch_size: cfg.batch_size,
            objective,
        }),
    };

    let n = train.len();
    let mut order: Vec<usize> = (0..n).collect();
    while !finished(&run) {
        let epoch = run.history.len() + 1;
        let start = Instant::now();
        order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
        if cfg.shuffle {
            train.shuffle(&mut order, &mut run.rng);
        }
        let stats = engine.epoch(model, &mut run.optimizer, &order, epoch)?;
        let (val_loss, val_accuracy) = match stats.validation {
            Some(v) => v,
            None => evaluate_source(model, val, class_weights)?,
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
            run.best = engine.keep_best(model, resumable)?;
            run.best_epoch = epoch;
            run.best_val_loss = val_loss;
            run.since_improvement = 0;
        } else {
            run.since_improvement += 1;
        }
        run.stopped_early = cfg.patience > 0 && run.since_improvement >= cfg.patience;
        let report = EpochReport {
            epoch,
            train_loss: if stats.weight_sum > 0.0 {
                (stats.loss_sum / stats.weight_sum) as f32
            } else {
                0.0
            },
            train_accuracy: stats.correct as f32 / n as f32,
            val_loss,
            val_accuracy,
            seconds: start.elapsed().as_secs_f64(),
            improved,
        };
        run.history.push(report.clone());
        if let Some(dir) = &cfg.checkpoint_dir {
            engine.sync(model, &mut run.optimizer)?;
            save_state(dir, model, &run, &key, &data_sha256)?;
        }
        observer(&report);
    }
    let engine_best = engine.best()?;
    if let Some(best) = engine_best.as_ref().or(run.best.as_ref()) {
        model.load_state_dict(best)?;
    } else {
        engine.sync(model, &mut run.optimizer)?;
    }
    Ok(TrainHistory {
        epochs: run.history,
        best_epoch: run.best_epoch,
        best_val_loss: run.best_val_loss,
        stopped_early: run.stopped_early,
        resumed_from,
    })
}

//! Knowledge distillation: train a small student to match a trained teacher's softened outputs.
//!
//! Hinton, Vinyals and Dean's loss, as PyTorch code usually writes it:
//!
//! ```text
//! loss = alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(z_s, y)
//! ```
//!
//! where `z_t` and `z_s` are the teacher's and the student's logits, `T` is the temperature and `CE` is
//! [`cross_entropy`] (with the class weights the trainer supports).
//! The KL term is the mean over the batch (PyTorch's `kl_div(..., reduction="batchmean")`); the `T^2` factor keeps
//! its gradient on the scale of the hard term's as `T` changes.
//! Its gradient with respect to the student's logits is `alpha * T * (softmax(z_s / T) - softmax(z_t / T)) / N`:
//! the KL term differentiates to `(p_s - p_t) / T` per row, times `T^2`, divided by the batch size `N`.
//!
//! [`KnowledgeDistillation`] takes single steps on batches the caller chooses; [`distill_train`] runs whole
//! epochs in the training loop of [`crate::train`] with this loss as its objective, so it shuffles, stops early,
//! keeps a resumable state and is deterministic exactly as [`crate::train::train`] is.
//! The student keeps its pruning masks: [`Sequential::backward`] masks the gradients and the [`Optimizer`]
//! re-applies the masks after every step, so pruned weights stay exactly zero.
//!
//! # Example
//!
//! ```
//! use ndarray::Array2;
//! use tickq_host::distill::{DistillConfig, KnowledgeDistillation};
//! use tickq_host::model::{Architecture, OptimizerConfig, Sequential};
//!
//! let arch = |hidden: usize| Architecture::from_toml_str(&format!(
//!     "name = \"m\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 4\n\
//!      [[layers]]\ntype = \"dense\"\nout = {hidden}\n[[layers]]\ntype = \"relu\"\n\
//!      [[layers]]\ntype = \"dense\"\nout = 3\n"));
//! let teacher = Sequential::new(arch(32)?, 1)?;
//! let student = Sequential::new(arch(4)?, 2)?;
//! let mut kd = KnowledgeDistillation::new(&teacher, student, OptimizerConfig::adam(1e-2))?
//!     .with_config(DistillConfig { temperature: 2.0, alpha: 0.5 })?;
//! let step = kd.train_step(Array2::zeros((8, 4)).view(), &[0, 1, 2, 0, 1, 2, 0, 1])?;
//! assert!(step.loss.is_finite() && step.soft_loss >= 0.0);
//! let student = kd.into_student();
//! assert_eq!(student.classes(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::model::{
    ModelError, Optimizer, OptimizerConfig, Sequential, check_class_weights, cross_entropy,
};
use crate::train::{
    BatchLoss, CpuOnly, EngineChoice, EpochReport, Loss, Objective, RunData, TrainConfig,
    TrainError, TrainHistory,
};

/// Rows per teacher forward pass when precomputing its logits.
const TEACHER_BATCH: usize = 1024;

/// The distillation hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    /// Softmax temperature `T` applied to both models' logits in the soft term; finite and > 0 (default 4).
    pub temperature: f32,
    /// Weight `alpha` of the soft term, in [0, 1]; the hard cross-entropy gets `1 - alpha` (default 0.7).
    pub alpha: f32,
}

impl Default for DistillConfig {
    /// Temperature 4, alpha 0.7.
    fn default() -> Self {
        Self {
            temperature: 4.0,
            alpha: 0.7,
        }
    }
}

impl DistillConfig {
    /// Checks the temperature and alpha.
    ///
    /// # Errors
    ///
    /// [`DistillError::Temperature`] or [`DistillError::Alpha`].
    pub fn validate(&self) -> Result<(), DistillError> {
        if !crate::limits::TEMPERATURE.contains(f64::from(self.temperature)) {
            return Err(DistillError::Temperature(self.temperature));
        }
        if !crate::limits::ALPHA.contains(f64::from(self.alpha)) {
            return Err(DistillError::Alpha(self.alpha));
        }
        Ok(())
    }
}

/// Errors from distillation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistillError {
    /// The temperature is not finite and positive.
    #[error("distillation temperature must be finite and > 0, got {0}")]
    Temperature(f32),
    /// Alpha is outside [0, 1] (or NaN).
    #[error("distillation alpha must be in [0, 1], got {0}")]
    Alpha(f32),
    /// The teacher and the student take different inputs.
    #[error(
        "the teacher `{teacher}` takes {teacher_shape:?} (time steps, features) inputs but the student `{student}` takes {student_shape:?}"
    )]
    InputMismatch {
        /// The teacher's architecture name.
        teacher: String,
        /// The teacher's `(time_steps, features)`.
        teacher_shape: (usize, usize),
        /// The student's architecture name.
        student: String,
        /// The student's `(time_steps, features)`.
        student_shape: (usize, usize),
    },
    /// The teacher and the student predict different numbers of classes.
    #[error(
        "the teacher `{teacher}` has {teacher_classes} classes but the student `{student}` has {student_classes}"
    )]
    ClassMismatch {
        /// The teacher's architecture name.
        teacher: String,
        /// The teacher's class count.
        teacher_classes: usize,
        /// The student's architecture name.
        student: String,
        /// The student's class count.
        student_classes: usize,
    },
    /// The teacher's and the student's logits have different shapes.
    #[error("teacher logits are {teacher:?} but student logits are {student:?}")]
    LogitsShape {
        /// `[N, classes]` of the teacher's logits.
        teacher: (usize, usize),
        /// `[N, classes]` of the student's logits.
        student: (usize, usize),
    },
    /// A step's loss is NaN or infinite; the step was not applied.
    #[error("the distillation loss is {0}; lower the learning rate or the temperature")]
    NonFiniteLoss(f32),
    /// Bad training configuration or data, or divergence during [`distill_train`].
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A model operation failed (bad input width, label or class weights).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Shorthand for results in this module.
pub type Result<T, E = DistillError> = std::result::Result<T, E>;

/// The distillation loss of one batch and its gradient with respect to the student's logits.
#[derive(Debug, Clone, PartialEq)]
pub struct KdLoss {
    /// `alpha * soft_loss + (1 - alpha) * hard_loss`.
    pub loss: f32,
    /// `T^2 * KL(softmax(z_t / T) || softmax(z_s / T))`, the mean over the batch, before the `alpha` factor.
    pub soft_loss: f32,
    /// The student's cross-entropy against the labels (weighted mean with class weights), before `1 - alpha`.
    pub hard_loss: f32,
    /// Rows whose first maximum student logit is the label.
    pub correct: usize,
    /// The gradient of `loss` with respect to the student's logits, `[N, classes]`.
    pub grad: Array2<f32>,
}

/// What one [`KnowledgeDistillation::train_step`] measured, before its update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// The total distillation loss ([`KdLoss::loss`]).
    pub loss: f32,
    /// The soft term `T^2 * KL` before the `alpha` factor.
    pub soft_loss: f32,
    /// The hard cross-entropy before the `1 - alpha` factor.
    pub hard_loss: f32,
    /// The fraction of the batch the student classified correctly.
    pub accuracy: f32,
}

/// Computes the distillation loss of a batch from both models' logits, and its gradient.
///
/// Sums are accumulated in f64; both softmaxes use the log-sum-exp trick.
///
/// # Errors
///
/// [`DistillError::Temperature`] or [`DistillError::Alpha`] for a bad `cfg`, [`DistillError::LogitsShape`] when the
/// logits differ in shape, and [`DistillError::Model`] for a label out of range, a length mismatch or bad class
/// weights.
pub fn kd_loss(
    student_logits: ArrayView2<f32>,
    teacher_logits: ArrayView2<f32>,
    targets: &[u8],
    cfg: &DistillConfig,
    class_weights: Option<&[f32]>,
) -> Result<KdLoss> {
    cfg.validate()?;
    if student_logits.dim() != teacher_logits.dim() {
        return Err(DistillError::LogitsShape {
            teacher: teacher_logits.dim(),
            student: student_logits.dim(),
        });
    }
    Ok(kd_loss_checked(
        student_logits,
        teacher_logits,
        targets,
        cfg,
        class_weights,
    )?)
}

/// [`kd_loss`] for a checked `cfg` and logits of the same shape.
fn kd_loss_checked(
    student_logits: ArrayView2<f32>,
    teacher_logits: ArrayView2<f32>,
    targets: &[u8],
    cfg: &DistillConfig,
    class_weights: Option<&[f32]>,
) -> Result<KdLoss, ModelError> {
    let ce = cross_entropy(student_logits, targets, class_weights)?;
    let n = student_logits.nrows();
    let t = f64::from(cfg.temperature);
    let alpha = cfg.alpha;
    // Each row of `soft_grad` first holds p_s - p_t at temperature T.
    let mut soft_grad = Array2::<f32>::zeros(student_logits.raw_dim());
    let mut kl_sum = 0.0f64;
    let mut log_ps = vec![0.0f64; student_logits.ncols()];
    let mut log_pt = vec![0.0f64; student_logits.ncols()];
    for ((zs, zt), mut g) in student_logits
        .rows()
        .into_iter()
        .zip(teacher_logits.rows())
        .zip(soft_grad.rows_mut())
    {
        log_softmax_into(zs.iter().map(|&v| f64::from(v) / t), &mut log_ps);
        log_softmax_into(zt.iter().map(|&v| f64::from(v) / t), &mut log_pt);
        for ((gv, &lps), &lpt) in g.iter_mut().zip(&log_ps).zip(&log_pt) {
            let pt = lpt.exp();
            // 0 * log(0 / p) is 0; skipping it also avoids -inf * 0 when p_t underflows.
            if pt > 0.0 {
                kl_sum += pt * (lpt - lps);
            }
            *gv = (lps.exp() - pt) as f32;
        }
    }
    let (soft_loss, soft_scale) = if n > 0 {
        (t * t * kl_sum / n as f64, t / n as f64)
    } else {
        (0.0, 0.0)
    };
    let soft_loss = soft_loss as f32;
    // d(alpha T^2 KL_mean)/dz_s = alpha * T * (p_s - p_t) / N.
    let a = f64::from(alpha) * soft_scale;
    let mut grad = ce.grad;
    grad.zip_mut_with(&soft_grad, |h, &s| {
        *h = (a * f64::from(s) + f64::from(1.0 - alpha) * f64::from(*h)) as f32;
    });
    Ok(KdLoss {
        loss: alpha * soft_loss + (1.0 - alpha) * ce.loss,
        soft_loss,
        hard_loss: ce.loss,
        correct: ce.correct,
        grad,
    })
}

/// Writes `log_softmax(values)` into `out`.
fn log_softmax_into(values: impl Iterator<Item = f64> + Clone, out: &mut [f64]) {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    let log_z = max + values.clone().map(|v| (v - max).exp()).sum::<f64>().ln();
    for (o, v) in out.iter_mut().zip(values) {
        *o = v - log_z;
    }
}

/// Checks that `student` can learn from `teacher`: same input window and features, same classes.
///
/// # Errors
///
/// [`DistillError::InputMismatch`] or [`DistillError::ClassMismatch`].
pub fn check_pair(teacher: &Sequential, student: &Sequential) -> Result<()> {
    let shape = |m: &Sequential| (m.arch.input.time_steps, m.arch.input.features);
    if shape(teacher) != shape(student) {
        return Err(DistillError::InputMismatch {
            teacher: teacher.arch.name.clone(),
            teacher_shape: shape(teacher),
            student: student.arch.name.clone(),
            student_shape: shape(student),
        });
    }
    if teacher.classes() != student.classes() {
        return Err(DistillError::ClassMismatch {
            teacher: teacher.arch.name.clone(),
            teacher_classes: teacher.classes(),
            student: student.arch.name.clone(),
            student_classes: student.classes(),
        });
    }
    Ok(())
}

/// One distillation step on a batch whose teacher logits are known: forward, loss, backward, update.
fn step(
    student: &mut Sequential,
    optimizer: &mut Optimizer,
    batch: ArrayView2<f32>,
    teacher_logits: ArrayView2<f32>,
    labels: &[u8],
    cfg: &DistillConfig,
    class_weights: Option<&[f32]>,
) -> Result<(StepMetrics, usize)> {
    let (logits, caches) = student.forward_train(batch);
    let KdLoss {
        loss,
        soft_loss,
        hard_loss,
        correct,
        grad,
    } = kd_loss(logits.view(), teacher_logits, labels, cfg, class_weights)?;
    if !loss.is_finite() {
        return Err(DistillError::NonFiniteLoss(loss));
    }
    let grads = student.backward(&caches, grad);
    optimizer.step(student, &grads)?;
    let metrics = StepMetrics {
        loss,
        soft_loss,
        hard_loss,
        accuracy: correct as f32 / labels.len().max(1) as f32,
    };
    Ok((metrics, correct))
}

/// A teacher, a student being trained, its optimizer and the distillation settings.
///
/// The teacher is only read; the student is owned and updated by [`KnowledgeDistillation::train_step`], and
/// [`KnowledgeDistillation::into_student`] gives it back.
#[derive(Debug, Clone)]
pub struct KnowledgeDistillation<'t> {
    teacher: &'t Sequential,
    student: Sequential,
    optimizer: Optimizer,
    config: DistillConfig,
    class_weights: Option<Vec<f32>>,
}

impl<'t> KnowledgeDistillation<'t> {
    /// Pairs `teacher` and `student` with a fresh optimizer for the student and the default [`DistillConfig`].
    ///
    /// # Errors
    ///
    /// [`DistillError::InputMismatch`] or [`DistillError::ClassMismatch`] when the models do not fit each other,
    /// and [`DistillError::Model`] for bad optimizer settings.
    pub fn new(
        teacher: &'t Sequential,
        student: Sequential,
        optimizer: OptimizerConfig,
    ) -> Result<Self> {
        check_pair(teacher, &student)?;
        let optimizer = Optimizer::new(optimizer, &student)?;
        Ok(Self {
            teacher,
            student,
            optimizer,
            config: DistillConfig::default(),
            class_weights: None,
        })
    }

    /// Replaces the temperature and alpha.
    ///
    /// # Errors
    ///
    /// [`DistillError::Temperature`] or [`DistillError::Alpha`].
    pub fn with_config(mut self, config: DistillConfig) -> Result<Self> {
        config.validate()?;
        self.config = config;
        Ok(self)
    }

    /// Sets the temperature.
    ///
    /// # Errors
    ///
    /// [`DistillError::Temperature`] unless it is finite and > 0.
    pub fn with_temperature(self, temperature: f32) -> Result<Self> {
        let config = DistillConfig {
            temperature,
            ..self.config
        };
        self.with_config(config)
    }

    /// Sets alpha, the weight of the soft term.
    ///
    /// # Errors
    ///
    /// [`DistillError::Alpha`] unless it is in [0, 1].
    pub fn with_alpha(self, alpha: f32) -> Result<Self> {
        let config = DistillConfig {
            alpha,
            ..self.config
        };
        self.with_config(config)
    }

    /// Weights the hard cross-entropy by class, as [`cross_entropy`] does.
    ///
    /// # Errors
    ///
    /// [`DistillError::Model`] for weights of the wrong length, negative, not finite or all zero.
    pub fn with_class_weights(mut self, weights: Vec<f32>) -> Result<Self> {
        check_class_weights(&weights, self.student.classes())?;
        self.class_weights = Some(weights);
        Ok(self)
    }

    /// The temperature and alpha in use.
    pub fn config(&self) -> &DistillConfig {
        &self.config
    }

    /// The teacher.
    pub fn teacher(&self) -> &'t Sequential {
        self.teacher
    }

    /// The student as trained so far.
    pub fn student(&self) -> &Sequential {
        &self.student
    }

    /// The student's optimizer.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// Ends distillation and returns the student.
    pub fn into_student(self) -> Sequential {
        self.student
    }

    /// Runs the teacher and the student on `batch`, and takes one optimizer step on the student's distillation loss.
    ///
    /// The metrics are measured before the update.
    ///
    /// # Errors
    ///
    /// [`DistillError::Model`] for a batch of the wrong width, a label count that differs from the rows or a label
    /// out of range, and [`DistillError::NonFiniteLoss`] when the loss is not finite (the student is unchanged then).
    pub fn train_step(&mut self, batch: ArrayView2<f32>, labels: &[u8]) -> Result<StepMetrics> {
        self.student.check_input(batch)?;
        let teacher_logits = self.teacher.try_forward(batch)?;
        step(
            &mut self.student,
            &mut self.optimizer,
            batch,
            teacher_logits.view(),
            labels,
            &self.config,
            self.class_weights.as_deref(),
        )
        .map(|(metrics, _)| metrics)
    }
}

/// The teacher's logits on every row of `x`, in batches.
fn teacher_logits(teacher: &Sequential, x: ArrayView2<f32>) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((x.nrows(), teacher.classes()));
    for (xb, mut ob) in x
        .axis_chunks_iter(Axis(0), TEACHER_BATCH)
        .zip(out.axis_chunks_iter_mut(Axis(0), TEACHER_BATCH))
    {
        ob.assign(&teacher.forward(xb));
    }
    out
}

/// Distillation as an [`Objective`] of the training loop: the student's loss on a batch against the teacher's
/// precomputed logits on the same rows.
struct Distillation<'a> {
    config: DistillConfig,
    /// The teacher's logits on every training row, `[rows, classes]` in standard layout.
    teacher_logits: Array2<f32>,
    class_weights: Option<&'a [f32]>,
}

impl Objective for Distillation<'_> {
    /// [`kd_loss`]; its weight is the batch's row count (the soft term is a plain mean over the rows).
    fn batch_loss(
        &self,
        logits: ArrayView2<f32>,
        rows: &[usize],
        labels: &[u8],
    ) -> Result<BatchLoss, ModelError> {
        let teacher = self.teacher_logits.select(Axis(0), rows);
        let kd = kd_loss_checked(
            logits,
            teacher.view(),
            labels,
            &self.config,
            self.class_weights,
        )?;
        Ok(BatchLoss {
            loss: kd.loss,
            weight: rows.len() as f64,
            correct: kd.correct,
            grad: kd.grad,
        })
    }

    fn loss(&self) -> Loss<'_> {
        Loss::Distill {
            alpha: self.config.alpha,
            temperature: self.config.temperature,
            // `teacher_logits` builds a standard-layout array, so the slice always exists.
            teacher_logits: self.teacher_logits.as_slice().unwrap_or(&[]),
        }
    }
}

/// Distills `teacher` into `student` on `(train_x, train_y)`, with early stopping on `(val_x, val_y)`.
///
/// The epochs are those of [`crate::train::train`], in the same loop: the same seeded shuffle, batch size,
/// optimizer, class weights and patience, one [`EpochReport`] per epoch passed to `on_epoch`, and at the end the
/// student holds the weights of the epoch with the lowest validation loss.
/// The validation loss is the student's plain cross-entropy (with the class weights), so it is comparable with a
/// student trained without a teacher; the reported training loss is the distillation loss, the mean of the batch
/// losses weighted by their rows.
/// The same models, data, configurations and seed give bit-identical weights.
/// With `train.checkpoint_dir` the run keeps a resumable state there, as training does: a later call with the
/// same directory, student architecture, data, teacher and settings continues where the earlier one stopped and
/// ends with the weights of an uninterrupted run; a state of another run (another teacher, temperature or alpha
/// included, or a plain training run) is refused with [`TrainError::Resume`].
///
/// # Errors
///
/// [`DistillError::Temperature`], [`DistillError::Alpha`], [`DistillError::InputMismatch`] or
/// [`DistillError::ClassMismatch`] before anything runs; [`DistillError::Train`] with [`TrainError::ClassWeights`] or
/// [`TrainError::Data`] for a bad training configuration or data that does not fit the models, with
/// [`TrainError::Resume`] or [`TrainError::InvalidState`] for a stored state that is not this run's, and with
/// [`TrainError::Diverged`] when the loss stops being finite.
#[allow(clippy::too_many_arguments)] // The signature mirrors `train::train` plus the teacher and the settings.
pub fn distill_train(
    teacher: &Sequential,
    student: &mut Sequential,
    train_x: ArrayView2<f32>,
    train_y: &[u8],
    val_x: ArrayView2<f32>,
    val_y: &[u8],
    cfg: &DistillConfig,
    train: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<TrainHistory> {
    distill_train_on(
        &CpuOnly, teacher, student, train_x, train_y, val_x, val_y, cfg, train, on_epoch,
    )
}

/// [`distill_train`] on the engine `device` picks ([`CpuOnly`], or a [`crate::gpu_train::TrainDevice`]).
///
/// The teacher's logits are computed once on the CPU; on a GPU the student's epochs run there (see
/// [`crate::train::train_on`] for what agrees with the CPU run and how closely).
///
/// # Errors
///
/// As [`distill_train`], plus [`DistillError::Train`] with [`TrainError::Gpu`] when the GPU fails or, on a GPU
/// asked for explicitly, cannot run the student.
#[allow(clippy::too_many_arguments)] // `distill_train`'s arguments plus the device.
pub fn distill_train_on(
    device: &dyn EngineChoice,
    teacher: &Sequential,
    student: &mut Sequential,
    train_x: ArrayView2<f32>,
    train_y: &[u8],
    val_x: ArrayView2<f32>,
    val_y: &[u8],
    cfg: &DistillConfig,
    train: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<TrainHistory> {
    cfg.validate()?;
    check_pair(teacher, student)?;
    let data = RunData {
        train_x,
        train_y,
        val_x,
        val_y,
        store: None,
    };
    let weights = crate::train::prepare(student, data, train)?;
    let objective = Distillation {
        config: *cfg,
        teacher_logits: teacher_logits(teacher, train_x),
        class_weights: weights.as_deref(),
    };
    Ok(crate::train::run(
        device,
        student,
        data,
        train,
        weights.as_deref(),
        &objective,
        on_epoch,
    )?)
}

#[cfg(test)]
#[path = "distill_tests.rs"]
mod tests;

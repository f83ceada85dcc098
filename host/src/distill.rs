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
/// [`DistillError::ClassMismatch`] before anything runs; [`DistillError::Train`] with [`TrainError::Config`] or
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
mod tests {
    use super::*;
    use crate::model::Architecture;
    use crate::prune::ModelPruner;
    use crate::train::{ClassWeights, evaluate};
    use ndarray::array;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Three noisy blobs in `features` dimensions, deterministic.
    fn blobs(n: usize, features: usize, seed: u64) -> (Array2<f32>, Vec<u8>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uni = || (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
        let mut x = Array2::<f32>::zeros((n, features));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let class = (i * 7 + 3) % 3;
            for f in 0..features {
                let center = if f % 3 == class { 1.0 } else { 0.0 };
                x[[i, f]] = center + 1.5 * (uni() + uni());
            }
            y.push(class as u8);
        }
        (x, y)
    }

    fn mlp(features: usize, hidden: usize, classes: usize, seed: u64) -> Sequential {
        let arch = Architecture::from_toml_str(&format!(
            "name = \"m{hidden}\"\nclasses = {classes}\n[input]\ntime_steps = 1\nfeatures = {features}\n\
             [[layers]]\ntype = \"dense\"\nout = {hidden}\n[[layers]]\ntype = \"relu\"\n\
             [[layers]]\ntype = \"dense\"\nout = {classes}\n"
        ))
        .unwrap();
        Sequential::new(arch, seed).unwrap()
    }

    fn bits(m: &Sequential) -> Vec<u32> {
        m.state_dict()
            .into_iter()
            .flat_map(|(_, _, d)| d.into_iter().map(f32::to_bits))
            .collect()
    }

    fn trained_teacher(x: &Array2<f32>, y: &[u8]) -> Sequential {
        let mut teacher = mlp(6, 32, 3, 11);
        let cfg = TrainConfig {
            epochs: 10,
            batch_size: 32,
            optimizer: OptimizerConfig::adam(1e-2),
            patience: 0,
            ..TrainConfig::default()
        };
        crate::train::train(&mut teacher, x.view(), y, x.view(), y, &cfg, &mut |_| {}).unwrap();
        teacher
    }

    fn softmax(z: &[f64], t: f64) -> Vec<f64> {
        let e: Vec<f64> = z.iter().map(|v| (v / t).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    /// A distillation interrupted after 2 of 4 epochs and resumed, by a fresh student of another seed, ends with
    /// the weights and history of an uninterrupted run; a state of another run is refused saying why.
    #[test]
    fn interrupted_distillation_resumes_to_the_uninterrupted_weights() {
        let (x, y) = blobs(240, 6, 31);
        let (vx, vy) = blobs(60, 6, 32);
        let teacher = trained_teacher(&x, &y);
        let kd = DistillConfig {
            temperature: 3.0,
            alpha: 0.6,
        };
        let dir = std::env::temp_dir().join(format!("tickq-distill-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = |epochs: usize, dir: Option<std::path::PathBuf>| TrainConfig {
            epochs,
            batch_size: 32,
            optimizer: OptimizerConfig::adam(5e-3),
            class_weights: ClassWeights::Balanced,
            patience: 0,
            checkpoint_dir: dir,
            ..TrainConfig::default()
        };
        let run = |student: &mut Sequential, teacher: &Sequential, kd: &DistillConfig, cfg| {
            distill_train(
                teacher,
                student,
                x.view(),
                &y,
                vx.view(),
                &vy,
                kd,
                &cfg,
                &mut |_| {},
            )
        };
        let no_timing = |h: &TrainHistory| {
            h.epochs
                .iter()
                .map(|r| EpochReport {
                    seconds: 0.0,
                    ..r.clone()
                })
                .collect::<Vec<_>>()
        };
        let mut straight = mlp(6, 4, 3, 5);
        let hs = run(&mut straight, &teacher, &kd, cfg(4, None)).unwrap();
        let mut first = mlp(6, 4, 3, 5);
        let h1 = run(&mut first, &teacher, &kd, cfg(2, Some(dir.clone()))).unwrap();
        assert_eq!((h1.epochs.len(), h1.resumed_from), (2, None));
        let mut resumed = mlp(6, 4, 3, 99);
        let h2 = run(&mut resumed, &teacher, &kd, cfg(4, Some(dir.clone()))).unwrap();
        assert_eq!(h2.resumed_from, Some(2));
        assert_eq!(bits(&resumed), bits(&straight));
        assert_eq!(no_timing(&h2), no_timing(&hs));
        assert_eq!(h2.best_epoch, hs.best_epoch);

        let refusal = |student: &mut Sequential, teacher: &Sequential, kd: &DistillConfig| {
            let before = bits(student);
            let e = run(student, teacher, kd, cfg(5, Some(dir.clone()))).unwrap_err();
            assert_eq!(bits(student), before, "a refused state changed the student");
            match e {
                DistillError::Train(TrainError::Resume { reason, .. }) => reason,
                other => panic!("not a resume refusal: {other}"),
            }
        };
        let other_kd = DistillConfig {
            temperature: 2.0,
            ..kd
        };
        let reason = refusal(&mut mlp(6, 4, 3, 5), &teacher, &other_kd);
        assert!(reason.contains("configuration differs"), "{reason}");
        let other_teacher = mlp(6, 32, 3, 12);
        let reason = refusal(&mut mlp(6, 4, 3, 5), &other_teacher, &kd);
        assert_eq!(
            reason,
            "the teacher differs (its logits on the training set)"
        );
        // Plain training refuses the distillation's state, and distillation a training state.
        let e = crate::train::train(
            &mut mlp(6, 4, 3, 5),
            x.view(),
            &y,
            vx.view(),
            &vy,
            &cfg(5, Some(dir.clone())),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("the state is of distillation, not of a training run"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        crate::train::train(
            &mut mlp(6, 4, 3, 5),
            x.view(),
            &y,
            vx.view(),
            &vy,
            &cfg(1, Some(dir.clone())),
            &mut |_| {},
        )
        .unwrap();
        let reason = refusal(&mut mlp(6, 4, 3, 5), &teacher, &kd);
        assert_eq!(
            reason,
            "the state is of a training run, not of distillation"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loss_matches_hand_computation() {
        let zs = array![[1.0f32, 0.0, -1.0], [0.5, 0.5, 2.0]];
        let zt = array![[2.0f32, 1.0, -3.0], [0.0, 1.0, 0.0]];
        let y = [0u8, 2];
        let cfg = DistillConfig {
            temperature: 2.0,
            alpha: 0.25,
        };
        let out = kd_loss(zs.view(), zt.view(), &y, &cfg, None).unwrap();
        let mut kl = 0.0;
        let mut ce = 0.0;
        for (i, &label) in y.iter().enumerate() {
            let s: Vec<f64> = zs.row(i).iter().map(|&v| f64::from(v)).collect();
            let t: Vec<f64> = zt.row(i).iter().map(|&v| f64::from(v)).collect();
            let (ps, pt) = (softmax(&s, 2.0), softmax(&t, 2.0));
            kl += (0..3).map(|j| pt[j] * (pt[j] / ps[j]).ln()).sum::<f64>();
            ce -= softmax(&s, 1.0)[usize::from(label)].ln();
        }
        let soft = 4.0 * kl / 2.0;
        let hard = ce / 2.0;
        assert!(
            (f64::from(out.soft_loss) - soft).abs() < 1e-6,
            "{out:?} {soft}"
        );
        assert!(
            (f64::from(out.hard_loss) - hard).abs() < 1e-6,
            "{out:?} {hard}"
        );
        let total = 0.25 * soft + 0.75 * hard;
        assert!(
            (f64::from(out.loss) - total).abs() < 1e-6,
            "{out:?} {total}"
        );
        assert_eq!(out.correct, 2);
        // The same logits for student and teacher give a zero soft term.
        let same = kd_loss(zt.view(), zt.view(), &[0, 1], &cfg, None).unwrap();
        assert!(same.soft_loss.abs() < 1e-7, "{}", same.soft_loss);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let zs = array![
            [0.3f32, -1.2, 2.0, 0.1],
            [1.5, 0.2, -0.7, 0.0],
            [0.0, 0.4, 0.9, -2.0]
        ];
        let zt = array![
            [1.0f32, 0.5, -0.5, 2.5],
            [-1.0, 2.0, 0.3, 0.3],
            [0.2, -0.4, 1.5, 0.0]
        ];
        let y = [1u8, 0, 3];
        let w = [0.5f32, 2.0, 1.0, 1.5];
        for temperature in [0.5f32, 1.0, 2.0, 4.0, 10.0] {
            for alpha in [0.0f32, 0.3, 0.7, 1.0] {
                for weights in [None, Some(&w[..])] {
                    let cfg = DistillConfig { temperature, alpha };
                    let out = kd_loss(zs.view(), zt.view(), &y, &cfg, weights).unwrap();
                    let loss = |z: &Array2<f32>| {
                        f64::from(
                            kd_loss(z.view(), zt.view(), &y, &cfg, weights)
                                .unwrap()
                                .loss,
                        )
                    };
                    let eps = 1e-2f32;
                    for i in 0..zs.nrows() {
                        for j in 0..zs.ncols() {
                            let mut plus = zs.clone();
                            plus[[i, j]] += eps;
                            let mut minus = zs.clone();
                            minus[[i, j]] -= eps;
                            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * f64::from(eps));
                            let analytic = f64::from(out.grad[[i, j]]);
                            assert!(
                                (numeric - analytic).abs() <= 1e-3 + 1e-2 * analytic.abs(),
                                "T {temperature} alpha {alpha} weights {} ({i},{j}): numeric {numeric}, analytic {analytic}",
                                weights.is_some()
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn soft_gradient_has_the_temperature_factor_and_sign() {
        // With alpha = 1 the gradient is exactly T * (p_s - p_t) / N; a missing T or a flipped sign fails here.
        let zs = array![[2.0f32, 0.0, -1.0]];
        let zt = array![[-1.0f32, 0.0, 2.0]];
        for t in [1.0f32, 3.0, 8.0] {
            let cfg = DistillConfig {
                temperature: t,
                alpha: 1.0,
            };
            let out = kd_loss(zs.view(), zt.view(), &[0], &cfg, None).unwrap();
            let ps = softmax(&[2.0, 0.0, -1.0], f64::from(t));
            let pt = softmax(&[-1.0, 0.0, 2.0], f64::from(t));
            for j in 0..3 {
                let want = f64::from(t) * (ps[j] - pt[j]);
                assert!((f64::from(out.grad[[0, j]]) - want).abs() < 1e-6, "T {t}");
            }
            // The student overrates class 0 relative to the teacher: descending must lower it.
            assert!(out.grad[[0, 0]] > 0.0 && out.grad[[0, 2]] < 0.0);
        }
    }

    #[test]
    fn alpha_zero_step_equals_a_plain_cross_entropy_step() {
        let (x, y) = blobs(32, 6, 1);
        let teacher = mlp(6, 32, 3, 5);
        let student = mlp(6, 8, 3, 6);
        let opt = OptimizerConfig::adam(1e-2);
        let mut kd = KnowledgeDistillation::new(&teacher, student.clone(), opt.clone())
            .unwrap()
            .with_alpha(0.0)
            .unwrap();
        let mut plain = student;
        let mut plain_opt = Optimizer::new(opt, &plain).unwrap();
        for _ in 0..3 {
            let m = kd.train_step(x.view(), &y).unwrap();
            let (logits, caches) = plain.forward_train(x.view());
            let ce = cross_entropy(logits.view(), &y, None).unwrap();
            assert_eq!(m.loss.to_bits(), ce.loss.to_bits());
            assert_eq!(m.hard_loss.to_bits(), ce.loss.to_bits());
            assert_eq!(m.accuracy, ce.correct as f32 / 32.0);
            let grads = plain.backward(&caches, ce.grad);
            plain_opt.step(&mut plain, &grads).unwrap();
            assert_eq!(bits(kd.student()), bits(&plain));
        }
    }

    #[test]
    fn distillation_trains_deterministically_and_restores_the_best_epoch() {
        let (x, y) = blobs(300, 6, 2);
        let (vx, vy) = blobs(90, 6, 3);
        let teacher = trained_teacher(&x, &y);
        let run = |seed: u64| {
            let mut student = mlp(6, 4, 3, 1);
            let train = TrainConfig {
                epochs: 6,
                batch_size: 32,
                optimizer: OptimizerConfig::adam(1e-2),
                class_weights: ClassWeights::Balanced,
                seed,
                ..TrainConfig::default()
            };
            let mut seen = Vec::new();
            let h = distill_train(
                &teacher,
                &mut student,
                x.view(),
                &y,
                vx.view(),
                &vy,
                &DistillConfig::default(),
                &train,
                &mut |r| seen.push(r.epoch),
            )
            .unwrap();
            assert_eq!(seen, (1..=h.epochs.len()).collect::<Vec<_>>());
            let w = class_weights_for(&y);
            let (loss, acc) = evaluate(&student, vx.view(), &vy, Some(&w)).unwrap();
            assert_eq!(loss, h.best_val_loss);
            assert!(acc > 0.6, "{acc} {h:?}");
            (bits(&student), h.best_epoch)
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a.0, run(8).0);
    }

    fn class_weights_for(y: &[u8]) -> Vec<f32> {
        crate::model::class_weights_balanced(y, 3)
    }

    #[test]
    fn a_pruned_student_keeps_its_zeros() {
        let (x, y) = blobs(200, 6, 4);
        let teacher = trained_teacher(&x, &y);
        let mut student = mlp(6, 8, 3, 2);
        ModelPruner::new(&mut student)
            .unstructured_pruning(&["fc1", "fc2"], 0.5)
            .unwrap();
        let masks = student.mask_dict();
        assert_eq!(masks.len(), 2);
        let train = TrainConfig {
            epochs: 3,
            batch_size: 16,
            optimizer: OptimizerConfig::Sgd {
                lr: 0.05,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 1e-3,
            },
            patience: 0,
            ..TrainConfig::default()
        };
        let before = bits(&student);
        distill_train(
            &teacher,
            &mut student,
            x.view(),
            &y,
            x.view(),
            &y,
            &DistillConfig::default(),
            &train,
            &mut |_| {},
        )
        .unwrap();
        assert_ne!(bits(&student), before);
        assert_eq!(student.mask_dict(), masks);
        let state = student.state_dict();
        for (name, _, mask) in &masks {
            let weight = name.strip_suffix("_mask").unwrap();
            let (_, _, w) = state.iter().find(|t| t.0 == weight).unwrap();
            for (v, m) in w.iter().zip(mask) {
                if *m == 0.0 {
                    assert_eq!(v.to_bits(), 0, "{weight}");
                }
            }
            assert!(w.iter().zip(mask).any(|(v, m)| *m != 0.0 && *v != 0.0));
        }
        // The single-step API keeps the masks too.
        let mut kd = KnowledgeDistillation::new(&teacher, student, OptimizerConfig::adam(0.1))
            .unwrap()
            .with_temperature(2.0)
            .unwrap();
        kd.train_step(x.view(), &y).unwrap();
        assert_eq!(kd.student().mask_dict(), masks);
        assert_eq!(
            kd.student().pruned_state_dict().len(),
            kd.student().state_dict().len() + 2
        );
    }

    #[test]
    fn bad_inputs_give_clear_errors() {
        let (x, y) = blobs(40, 6, 5);
        let teacher = mlp(6, 16, 3, 1);
        let student = || mlp(6, 4, 3, 2);
        let opt = OptimizerConfig::adam(1e-2);
        for t in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
            let e = KnowledgeDistillation::new(&teacher, student(), opt.clone())
                .unwrap()
                .with_temperature(t)
                .unwrap_err();
            assert!(matches!(e, DistillError::Temperature(_)), "{e}");
            assert!(e.to_string().contains("temperature"), "{e}");
        }
        for a in [-0.1f32, 1.1, f32::NAN] {
            let e = KnowledgeDistillation::new(&teacher, student(), opt.clone())
                .unwrap()
                .with_alpha(a)
                .unwrap_err();
            assert!(matches!(e, DistillError::Alpha(_)), "{e}");
            assert!(e.to_string().contains("[0, 1]"), "{e}");
        }
        let e = KnowledgeDistillation::new(&teacher, mlp(5, 4, 3, 2), opt.clone()).unwrap_err();
        assert!(
            matches!(e, DistillError::InputMismatch { .. }) && e.to_string().contains("(1, 5)"),
            "{e}"
        );
        let e = KnowledgeDistillation::new(&teacher, mlp(6, 4, 2, 2), opt.clone()).unwrap_err();
        assert!(
            matches!(e, DistillError::ClassMismatch { .. })
                && e.to_string().contains("3 classes")
                && e.to_string().contains("has 2"),
            "{e}"
        );
        let e = KnowledgeDistillation::new(&teacher, student(), OptimizerConfig::adam(-1.0))
            .unwrap_err();
        assert!(matches!(e, DistillError::Model(_)), "{e}");
        let mut kd = KnowledgeDistillation::new(&teacher, student(), opt.clone()).unwrap();
        let e = kd
            .train_step(x.slice(ndarray::s![.., 1..]), &y)
            .unwrap_err();
        assert!(matches!(e, DistillError::Model(_)), "{e}");
        let e = kd.train_step(x.view(), &y[1..]).unwrap_err();
        assert!(matches!(e, DistillError::Model(_)), "{e}");
        let e = kd_loss(
            x.slice(ndarray::s![.., ..3]),
            x.slice(ndarray::s![..39, ..3]),
            &y,
            &DistillConfig::default(),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, DistillError::LogitsShape { .. }), "{e}");

        let run = |student: &mut Sequential, cfg: &DistillConfig, train: &TrainConfig| {
            distill_train(
                &teacher,
                student,
                x.view(),
                &y,
                x.view(),
                &y,
                cfg,
                train,
                &mut |_| {},
            )
            .unwrap_err()
        };
        let base = TrainConfig::default();
        let d = DistillConfig::default();
        let bad_t = DistillConfig {
            temperature: 0.0,
            ..d
        };
        assert!(matches!(
            run(&mut student(), &bad_t, &base),
            DistillError::Temperature(_)
        ));
        let bad_a = DistillConfig { alpha: 2.0, ..d };
        assert!(matches!(
            run(&mut student(), &bad_a, &base),
            DistillError::Alpha(_)
        ));
        assert!(matches!(
            run(&mut mlp(7, 4, 3, 1), &d, &base),
            DistillError::InputMismatch { .. }
        ));
        let e = run(
            &mut student(),
            &d,
            &TrainConfig {
                batch_size: 0,
                ..base.clone()
            },
        );
        assert!(
            matches!(e, DistillError::Train(TrainError::Setting { .. })),
            "{e}"
        );
        let mut bad_y = y.clone();
        bad_y[3] = 3;
        let e = distill_train(
            &teacher,
            &mut student(),
            x.view(),
            &bad_y,
            x.view(),
            &y,
            &d,
            &base,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("label 3 is 3"), "{e}");
    }
}

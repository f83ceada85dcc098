//! `tickq distill`: distill a teacher checkpoint into a student.

use clap::Args;
use std::path::PathBuf;
use tickq_host::fsutil::write_atomic;
use tickq_host::model::Architecture;
use tickq_host::paths::check_output_dir;
use tickq_host::steps::{self, PipelineError};
use tickq_host::train::TrainConfig;

use crate::args::*;
use crate::{out, progress};

#[derive(Args, Debug)]
pub(crate) struct DistillArgs {
    /// Teacher checkpoint directory (with the preprocess.json that `tickq train` writes); its data settings and
    /// standardization rebuild the training, validation and test splits.
    #[arg(long, value_name = "CKPT")]
    pub(crate) teacher: PathBuf,
    /// Student: an architecture file (a fresh student initialized with --seed) or a checkpoint directory, such as
    /// a pruned model whose masks stay in place.
    #[arg(long, value_name = "ARCH_OR_CKPT")]
    pub(crate) student: PathBuf,
    /// Checkpoint directory to write (with the teacher's preprocess.json).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Resume an interrupted run from the training state kept in OUT/train-state.
    #[arg(long)]
    pub(crate) resume: bool,
    #[command(flatten)]
    pub(crate) distill: tickq_host::options::DistillOptions,
    /// Also train the same student alone (same initial weights, seed, epochs and optimizer), print test accuracy
    /// and macro-F1 of teacher, student alone and student distilled, and write OUT/distill-comparison.json.
    #[arg(long)]
    pub(crate) compare: bool,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[command(flatten)]
    pub(crate) train: tickq_host::options::TrainOptions,
    #[command(flatten)]
    pub(crate) device: TrainDeviceArg,
}

/// One row of `tickq distill --compare`.
#[derive(serde::Serialize)]
pub(crate) struct DistillRow {
    pub(crate) model: String,
    pub(crate) parameters: usize,
    pub(crate) nonzero_parameters: usize,
    pub(crate) accuracy: f64,
    pub(crate) macro_f1: f64,
    pub(crate) best_epoch: Option<usize>,
    pub(crate) epochs_run: Option<usize>,
}

/// `OUT/distill-comparison.json`.
#[derive(serde::Serialize)]
pub(crate) struct DistillComparison {
    pub(crate) test_samples: usize,
    pub(crate) temperature: f32,
    pub(crate) alpha: f32,
    pub(crate) train: TrainConfig,
    pub(crate) teacher: DistillRow,
    pub(crate) student_alone: DistillRow,
    pub(crate) student_distilled: DistillRow,
}

pub(crate) fn run(a: DistillArgs) -> Result<(), PipelineError> {
    use tickq_host::distill::DistillError;
    use tickq_host::model::Sequential;
    let kd_err = |e: DistillError| match e {
        DistillError::Train(e) => PipelineError::Train(e),
        DistillError::Model(e) => PipelineError::Model(e),
        other => PipelineError::Distill(other),
    };
    let kd = a.distill.config()?;
    let cfg = a.train.apply(TrainConfig::default())?;
    check_output_dir(&a.out, "the student checkpoint")?;
    let (teacher, data, pre) = load_with_data(&a.teacher, &a.data)?;
    // The distilled student keeps a resumable state as `tickq train` does; the student trained alone does not.
    let state_dir = a.out.join("train-state");
    if !a.resume {
        tickq_host::fsutil::remove_dir_atomic(&state_dir)?;
    }
    let distill_cfg = TrainConfig {
        checkpoint_dir: Some(state_dir),
        ..cfg.clone()
    };
    let student = if a.student.is_dir() {
        let (model, student_pre) = tickq_host::checkpoint::load_checkpoint(&a.student)?;
        if student_pre.is_some_and(|p| Some(p) != serde_json::to_value(&pre).ok()) {
            progress(&format!(
                "warning: {} was prepared differently from the teacher; the student trains on the teacher's data",
                a.student.display()
            ));
        }
        model
    } else {
        Sequential::new(Architecture::load(&a.student)?, cfg.seed)?
    };
    tickq_host::distill::check_pair(&teacher, &student).map_err(kd_err)?;
    let train_x = data.normalized(data.splits.train.x.view());
    let val_x = data.normalized(data.splits.validation.x.view());
    let (train_y, val_y) = (&data.splits.train.y, &data.splits.validation.y);
    progress(&format!(
        "distilling `{}` ({} parameters) into `{}` ({} parameters{}) on {} samples, T {} alpha {}",
        teacher.arch.name,
        teacher.num_parameters(),
        student.arch.name,
        student.num_parameters(),
        if student.has_masks() { ", masked" } else { "" },
        train_y.len(),
        kd.temperature,
        kd.alpha
    ));
    let device = a.device.resolve()?;
    let mut distilled = student.clone();
    let history = tickq_host::distill::distill_train_on(
        &device,
        &teacher,
        &mut distilled,
        train_x.view(),
        train_y,
        val_x.view(),
        val_y,
        &kd,
        &distill_cfg,
        &mut |e| progress(&steps::format_epoch(e)),
    )
    .map_err(kd_err)?;
    steps::save_checkpoint(&a.out, &distilled, &pre)?;
    progress(&format!(
        "best epoch {} of {}",
        history.best_epoch,
        history.epochs.len()
    ));
    if a.compare {
        progress("training the student alone for comparison");
        let mut alone = student;
        let alone_history = tickq_host::train::train_on(
            &device,
            &mut alone,
            train_x.view(),
            train_y,
            val_x.view(),
            val_y,
            &cfg,
            &mut |e| progress(&steps::format_epoch(e)),
        )?;
        let test = &data.splits.test;
        let test_x = data.normalized(test.x.view());
        let row = |name: &str, m: &Sequential, h: Option<&tickq_host::train::TrainHistory>| {
            let metrics = tickq_host::eval::Metrics::compute(
                &m.predict(test_x.view()),
                &test.y,
                &test.label_names,
            );
            DistillRow {
                model: name.to_string(),
                parameters: m.num_parameters(),
                nonzero_parameters: m
                    .state_dict()
                    .iter()
                    .flat_map(|t| &t.2)
                    .filter(|v| **v != 0.0)
                    .count(),
                accuracy: metrics.accuracy,
                macro_f1: metrics.macro_f1,
                best_epoch: h.map(|h| h.best_epoch),
                epochs_run: h.map(|h| h.epochs.len()),
            }
        };
        let cmp = DistillComparison {
            test_samples: test.y.len(),
            temperature: kd.temperature,
            alpha: kd.alpha,
            train: cfg.clone(),
            teacher: row(&teacher.arch.name, &teacher, None),
            student_alone: row(&alone.arch.name, &alone, Some(&alone_history)),
            student_distilled: row(&distilled.arch.name, &distilled, Some(&history)),
        };
        out(&format!(
            "{:<18} {:>10} {:>10} {:>9}",
            "model", "non-zero", "test acc", "macro-F1"
        ))?;
        for (label, r) in [
            ("teacher", &cmp.teacher),
            ("student alone", &cmp.student_alone),
            ("student distilled", &cmp.student_distilled),
        ] {
            out(&format!(
                "{label:<18} {:>10} {:>9.2} % {:>9.4}",
                r.nonzero_parameters,
                100.0 * r.accuracy,
                r.macro_f1
            ))?;
        }
        let path = a.out.join("distill-comparison.json");
        let mut text =
            serde_json::to_string_pretty(&cmp).map_err(|source| PipelineError::JsonWrite {
                what: "distill-comparison.json",
                source,
            })?;
        text.push('\n');
        write_atomic(&path, text.as_bytes())?;
        out(&format!("wrote {}", path.display()))?;
    }
    out(&format!("wrote checkpoint {}", a.out.display()))
}

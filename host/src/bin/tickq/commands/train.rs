//! `tickq train`: train an f32 model from an architecture file.

use clap::Args;
use std::path::PathBuf;
use tickq_host::model::Architecture;
use tickq_host::paths::check_output_dir;
use tickq_host::steps::{self, PipelineError};
use tickq_host::train::TrainConfig;

use crate::args::*;
use crate::{out, progress};

#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    /// Architecture file (TOML or JSON); see docs/MODELS.md.
    #[arg(long, value_name = "FILE")]
    pub(crate) arch: PathBuf,
    /// Checkpoint directory to write (model.safetensors, arch.toml, preprocess.json).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Resume an interrupted run from the training state kept in OUT/train-state.
    #[arg(long)]
    pub(crate) resume: bool,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[command(flatten)]
    pub(crate) dataset: tickq_host::options::DataOptions,
    #[command(flatten)]
    pub(crate) train: tickq_host::options::TrainOptions,
    #[command(flatten)]
    pub(crate) device: TrainDeviceArg,
}

pub(crate) fn run(a: TrainArgs) -> Result<(), PipelineError> {
    let arch = Architecture::load(&a.arch)?;
    let mut cfg = a.train.apply(TrainConfig::default())?;
    check_output_dir(&a.out, "the checkpoint")?;
    let path = a.data.path();
    progress(&format!("reading {}", path.display()));
    let data = steps::prepare_data(&path, &a.data.dataset(a.dataset.config()), None)?;
    crate::args::print_read_notes(&data);
    for w in data.label_warnings() {
        progress(&format!("warning: {w}"));
    }
    let state_dir = a.out.join("train-state");
    if a.resume {
        cfg.checkpoint_dir = Some(state_dir.clone());
    } else {
        tickq_host::fsutil::remove_dir_atomic(&state_dir)?;
        cfg.checkpoint_dir = Some(state_dir);
    }
    progress(&format!(
        "training `{}` on {} samples ({} validation)",
        arch.name,
        data.splits.train.y.len(),
        data.splits.validation.y.len()
    ));
    let device = a.device.resolve()?;
    let (model, history) = steps::train_model_on(&device, arch, &data, &cfg, &mut |e| {
        progress(&steps::format_epoch(e))
    })?;
    steps::save_checkpoint(&a.out, &model, &data.preprocess())?;
    progress(&format!(
        "best epoch {} of {}",
        history.best_epoch,
        history.epochs.len()
    ));
    let test = &data.splits.test;
    let predicted = model.predict(data.normalized(test.x.view()).view());
    let accuracy =
        tickq_host::eval::Metrics::compute(&predicted, &test.y, &test.label_names).accuracy;
    out(&format!(
        "wrote checkpoint {}; f32 test {}",
        a.out.display(),
        data.accuracy_with_baseline(accuracy)
    ))
}

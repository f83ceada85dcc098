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
    /// Build (or reuse) an on-disk sample store in DIR and train from it chunk by chunk, for trade files larger
    /// than memory (docs/DATA.md, "Histories larger than memory"); trains on the CPU.
    #[arg(long, value_name = "DIR")]
    pub(crate) store: Option<PathBuf>,
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
    let path = a.data.path()?;
    let state_dir = a.out.join("train-state");
    if a.resume {
        cfg.checkpoint_dir = Some(state_dir.clone());
    } else {
        tickq_host::fsutil::remove_dir_atomic(&state_dir)?;
        cfg.checkpoint_dir = Some(state_dir.clone());
    }
    if let Some(dir) = &a.store {
        return train_from_store(&a, arch, &cfg, &path, dir);
    }
    progress(&format!("reading {}", path.display()));
    let data = steps::prepare_data(&path, &a.data.dataset(a.dataset.config()), None)?;
    crate::args::print_read_notes(&data);
    for w in data.label_warnings() {
        progress(&format!("warning: {w}"));
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

/// `tickq train --store DIR`: the samples built into (or reused from) a store, trained and evaluated chunk by chunk.
fn train_from_store(
    a: &TrainArgs,
    arch: Architecture,
    cfg: &TrainConfig,
    path: &std::path::Path,
    dir: &std::path::Path,
) -> Result<(), PipelineError> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let dataset = a.data.dataset(a.dataset.config());
    progress(&format!(
        "reading {} into the sample store {}",
        path.display(),
        dir.display()
    ));
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {pos} trades read ({per_sec}, {elapsed})")
    {
        bar.set_style(style);
    }
    let data = steps::prepare_store(
        path,
        &dataset,
        None,
        dir,
        &mut |note| progress(note),
        &mut |trades| bar.set_position(trades),
    )?;
    bar.finish_and_clear();
    progress(&format!(
        "training `{}` on {} samples ({} validation) from the store {} ({} samples of {} trades)",
        arch.name,
        data.ranges[0].len(),
        data.ranges[1].len(),
        dir.display(),
        data.store.len(),
        data.store.header.trades
    ));
    let (model, history, accuracy) = steps::train_model_from_store(arch, &data, cfg, &mut |e| {
        progress(&steps::format_epoch(e))
    })?;
    steps::save_checkpoint(&a.out, &model, &data.preprocess())?;
    progress(&format!(
        "best epoch {} of {}",
        history.best_epoch,
        history.epochs.len()
    ));
    out(&format!(
        "wrote checkpoint {}; f32 test accuracy {:.2} % ({} test samples read from the store)",
        a.out.display(),
        accuracy * 100.0,
        data.ranges[2].len()
    ))
}

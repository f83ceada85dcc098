//! `tickq import`: PyTorch-style safetensors plus an architecture file as a checkpoint.

use clap::Args;
use std::path::PathBuf;
use tickq_host::data::DatasetConfig;
use tickq_host::paths::check_output_dir;
use tickq_host::steps::{self, PipelineError};

use crate::args::*;
use crate::{out, progress};

#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// safetensors file with PyTorch state_dict names (fc1.weight as [out, in], conv1.weight as [out, in, k]).
    #[arg(long, value_name = "FILE")]
    pub(crate) weights: PathBuf,
    /// Architecture file describing the same network.
    #[arg(long, value_name = "FILE")]
    pub(crate) arch: PathBuf,
    /// Checkpoint directory to write.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// preprocess.json describing the standardization the model was trained with;
    /// without it, the data settings below (default: the defaults) are fitted on --data's training split.
    #[arg(long, value_name = "FILE")]
    pub(crate) preprocess: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// The data settings without --preprocess (the window length defaults to the architecture's).
    #[command(flatten)]
    pub(crate) dataset: tickq_host::options::DataOptions,
}

pub(crate) fn run(a: ImportArgs) -> Result<(), PipelineError> {
    check_output_dir(&a.out, "the checkpoint")?;
    let model = tickq_host::checkpoint::import_safetensors(&a.weights, &a.arch)?;
    let pre = match &a.preprocess {
        Some(p) => steps::Preprocess::read(p, &model.arch)?,
        None => {
            let dataset = a.dataset.apply(DatasetConfig {
                time_steps: model.arch.input.time_steps,
                ..DatasetConfig::default()
            });
            let path = a.data.path()?;
            progress(&format!(
                "no --preprocess given: fitting standardization on the training split of {}",
                path.display()
            ));
            let data = steps::prepare_data(&path, &a.data.dataset(dataset), None)?;
            crate::args::print_read_notes(&data);
            steps::check_arch_fits(&model.arch, &data)?;
            data.preprocess()
        }
    };
    steps::save_checkpoint(&a.out, &model, &pre)?;
    out(&format!(
        "imported {} parameters into {}",
        model.num_parameters(),
        a.out.display()
    ))
}

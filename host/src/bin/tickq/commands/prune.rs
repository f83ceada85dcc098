//! `tickq prune`: prune a checkpoint, optionally gradually with fine-tuning.

use clap::Args;
use std::path::PathBuf;
use tickq_host::options::PruneOptions;
use tickq_host::paths::check_output_dir;
use tickq_host::prune::{ModelPruner, PruningStatistics};
use tickq_host::steps::{self, PipelineError};

use crate::args::*;
use crate::{out, progress};

pub(crate) const PRUNE_EXAMPLES: &str = "\
Examples:
  tickq prune ckpt --method unstructured --amount 0.5 --layers fc1,fc2 --out ckpt-50
  tickq prune ckpt --method global --amount 0.9 --schedule gradual --steps 4 --fine-tune-epochs 2 --out ckpt-90
  tickq prune ckpt --method structured --amount 0.25 --dim 0 --norm 2 --fine-tune-epochs 2 --out ckpt-s25
  tickq prune ckpt --method nm --n 2 --m 4 --layers fc2,fc3 --remove --out ckpt-24

Masks: unstructured, global and nm pruning keep a 0/1 mask per pruned weight; the checkpoint stores them
as fc1.weight_orig + fc1.weight_mask (the names torch.nn.utils.prune uses), and later fine-tuning keeps
the pruned weights at exactly zero. --remove bakes the masks in and drops them. Structured pruning needs
no masks: it removes the channels, so the checkpoint's layers really are smaller.
See docs/PRUNING.md.";

#[derive(Args, Debug)]
pub(crate) struct PruneArgs {
    /// Checkpoint directory to prune (with the preprocess.json that `tickq train` writes).
    pub(crate) checkpoint: PathBuf,
    #[command(flatten)]
    pub(crate) options: PruneOptions,
    /// Bake the masks into the weights and drop them before saving (PyTorch's prune.remove). Without it the
    /// checkpoint keeps its masks; structured pruning removes channels and needs none.
    #[arg(long)]
    pub(crate) remove: bool,
    /// Checkpoint directory to write.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

pub(crate) fn run(a: PruneArgs) -> Result<(), PipelineError> {
    // A checkpoint does not record how it was trained: the fine-tunes start from the default training settings.
    let plan = a.options.plan(None)?;
    let epochs = plan.fine_tune.epochs;
    check_output_dir(&a.out, "the pruned checkpoint")?;
    let (mut model, data, pre) = load_with_data(&a.checkpoint, &a.data)?;
    progress(&format!(
        "pruning `{}` ({}, {} fine-tune epochs per step)",
        model.arch.name,
        plan.method.name(),
        epochs
    ));
    let steps = steps::prune_model(
        &mut model,
        &data,
        &plan,
        &mut |r| progress(&steps::format_step(r)),
        &mut |e| progress(&format!("  {}", steps::format_epoch(e))),
    )?;
    if a.remove {
        ModelPruner::new(&mut model).remove();
    }
    steps::save_checkpoint(&a.out, &model, &pre)?;
    for r in &steps {
        out(&steps::format_step(r))?;
    }
    out("")?;
    out(&PruningStatistics::of_model(&model).to_text())?;
    out(&format!(
        "wrote checkpoint {}{}",
        a.out.display(),
        if model.has_masks() {
            " (with masks)"
        } else {
            ""
        }
    ))
}

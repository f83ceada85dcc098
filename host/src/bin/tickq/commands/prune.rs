//! `tickq prune`: prune a checkpoint, optionally gradually with fine-tuning.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tickq_host::limits::{self};
use tickq_host::model::OptimizerConfig;
use tickq_host::paths::check_output_dir;
use tickq_host::prune::{
    ModelPruner, Norm, PolynomialSchedule, PruneMethod, PruningPlan, PruningStatistics,
};
use tickq_host::steps::{self, PipelineError};
use tickq_host::train::TrainConfig;

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

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PruneMethodArg {
    /// L1 magnitude, ranked per layer.
    Unstructured,
    /// L1 magnitude with one threshold across all dense and conv1d layers.
    Global,
    /// Remove whole channels or neurons ranked by --norm; the model shrinks.
    Structured,
    /// N:M: keep the --n largest of every --m consecutive input weights.
    Nm,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScheduleArg {
    /// Prune to --amount in one step.
    OneShot,
    /// Polynomial decay from --initial to --amount over --steps steps, fine-tuning after each.
    Gradual,
}

#[derive(Args, Debug)]
pub(crate) struct PruneArgs {
    /// Checkpoint directory to prune (with the preprocess.json that `tickq train` writes).
    pub(crate) checkpoint: PathBuf,
    /// Pruning method.
    #[arg(long, value_enum)]
    pub(crate) method: PruneMethodArg,
    #[arg(long, required_if_eq_any([("method", "unstructured"), ("method", "global"), ("method", "structured")]),
          allow_negative_numbers = true, value_parser = real(limits::SPARSITY),
          help = ranged("Target: the fraction of weights that are zero afterwards, counting earlier pruning \
                         (unstructured per layer, global over all layers), or the fraction of each layer's channels \
                         removed (structured); the final sparsity with --schedule gradual. Not used by nm", limits::SPARSITY))]
    pub(crate) amount: Option<f32>,
    /// Comma-separated layer names, such as fc1,fc2. Default: every dense and conv1d layer (structured: every
    /// layer that can lose channels along --dim). Global pruning always ranks all layers together.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub(crate) layers: Option<Vec<String>>,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = whole(limits::STRUCTURED_DIM),
          help = ranged("Structured: 0 removes output channels (neurons) of the named layers and the next layer's \
                         matching inputs; 1 removes their input channels and the previous layer's matching outputs",
                        limits::STRUCTURED_DIM))]
    pub(crate) dim: usize,
    /// Structured: the norm that ranks channels: 1, 2 or inf.
    #[arg(long, default_value = "1")]
    pub(crate) norm: Norm,
    #[arg(long, default_value_t = 2, allow_negative_numbers = true, value_parser = whole(limits::NM),
          help = ranged("N:M: weights kept in each group, at most --m", limits::NM))]
    pub(crate) n: usize,
    #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = whole(limits::NM),
          help = ranged("N:M: group size, in consecutive inputs of a row (conv1d rows are tap-major: the inputs of tap 0, \
                         then those of tap 1, ...)", limits::NM))]
    pub(crate) m: usize,
    /// one-shot, or gradual: Zhu & Gupta's s_t = s_f + (s_i - s_f)(1 - t/N)^3 from --initial (s_i) to --amount (s_f).
    #[arg(long, value_enum, default_value = "one-shot")]
    pub(crate) schedule: ScheduleArg,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = real(limits::SPARSITY),
          help = ranged("Gradual: the initial sparsity s_i, at most --amount", limits::SPARSITY))]
    pub(crate) initial: f32,
    #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = whole(limits::PRUNE_STEPS),
          help = ranged("Gradual: the number of pruning steps N", limits::PRUNE_STEPS))]
    pub(crate) steps: usize,
    #[arg(long, value_name = "E", allow_negative_numbers = true, value_parser = whole(limits::FINE_TUNE_EPOCHS),
          help = ranged("Fine-tuning epochs after each pruning step [default: 2 with --schedule gradual, 0 otherwise]",
                        limits::FINE_TUNE_EPOCHS))]
    pub(crate) fine_tune_epochs: Option<usize>,
    /// Fine-tuning learning rate (Adam) and mini-batch size.
    #[command(flatten)]
    pub(crate) lr: LrArg,
    #[command(flatten)]
    pub(crate) batch_size: BatchSizeArg,
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
    let method = match a.method {
        PruneMethodArg::Unstructured => PruneMethod::Unstructured {
            layers: a.layers.clone(),
        },
        PruneMethodArg::Global => PruneMethod::Global,
        PruneMethodArg::Structured => PruneMethod::Structured {
            layers: a.layers.clone(),
            dim: a.dim,
            norm: a.norm,
        },
        PruneMethodArg::Nm => PruneMethod::NM {
            n: a.n,
            m: a.m,
            layers: a.layers.clone(),
        },
    };
    let amount = a.amount.unwrap_or(0.0);
    let schedule = match a.schedule {
        ScheduleArg::OneShot => PolynomialSchedule::one_shot(amount)?,
        ScheduleArg::Gradual => PolynomialSchedule::new(a.initial, amount, a.steps)?,
    };
    if a.method == PruneMethodArg::Nm && a.n > a.m {
        return Err(PipelineError::NAboveM { n: a.n, m: a.m });
    }
    let epochs = a.fine_tune_epochs.unwrap_or(match a.schedule {
        ScheduleArg::Gradual => 2,
        ScheduleArg::OneShot => 0,
    });
    let plan = PruningPlan {
        method,
        schedule,
        fine_tune: TrainConfig {
            epochs,
            batch_size: a.batch_size.batch_size.unwrap_or(256),
            optimizer: OptimizerConfig::adam(a.lr.lr.unwrap_or(1e-3)),
            patience: 0,
            ..TrainConfig::default()
        },
    };
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

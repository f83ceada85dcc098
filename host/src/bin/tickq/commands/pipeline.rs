//! `tickq pipeline`: run the stages of a pipeline config.

use clap::Args;
use std::path::PathBuf;
use tickq_host::device::DeviceChoice;
use tickq_host::paths::check_output_dir;
use tickq_host::steps::PipelineError;

use crate::out;

#[derive(Args, Debug)]
pub(crate) struct PipelineArgs {
    /// Pipeline config (TOML): a `[data]` table and `[[stages]]`; see docs/PIPELINE.md.
    pub(crate) config: PathBuf,
    /// Output directory: one directory per stage, comparison.{md,json} and the charts.
    #[arg(long, default_value = "tickq-pipeline")]
    pub(crate) out: PathBuf,
    /// Recompute every stage, even those a previous run left unchanged.
    #[arg(long)]
    pub(crate) force: bool,
    /// Where the stages train and run their whole-split int8 evaluation: auto takes a hardware GPU when there
    /// is one; gpu takes any adapter, software Vulkan too. GPU training agrees with the CPU within rounding.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) device: DeviceChoice,
}

pub(crate) fn run(a: PipelineArgs) -> Result<(), PipelineError> {
    let cfg = tickq_host::pipeline::PipelineConfig::load(&a.config)?;
    check_output_dir(&a.out, "the stage directories and the comparison")?;
    let opts = tickq_host::pipeline::RunOptions {
        out: a.out,
        force: a.force,
        progress: true,
        device: a.device.resolve()?,
    };
    let run = tickq_host::pipeline::run_pipeline(&cfg, &opts, &mut |l| {
        let _ = out(l);
    })?;
    for path in &run.files {
        out(&format!("wrote {}", path.display()))?;
    }
    Ok(())
}

//! `tickq demo`: the bundled demo pipeline.

use clap::Args;
use std::path::PathBuf;
use tickq_host::device::DeviceChoice;
use tickq_host::paths::check_output_dir;
use tickq_host::steps::PipelineError;

use crate::args::*;
use crate::out;

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Output directory: the pipeline's stage directories and comparison, plus checkpoint/, model.blob and
    /// report.{md,json} of the trained model and its default int8 blob.
    #[arg(long, default_value = "tickq-demo")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// Recompute every stage, even those a previous run left unchanged.
    #[arg(long)]
    pub(crate) force: bool,
    /// Where the stages train and run their whole-split int8 evaluation: auto takes a hardware GPU when there
    /// is one; gpu takes any adapter, software Vulkan too. GPU training agrees with the CPU within rounding.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) device: DeviceChoice,
}

pub(crate) fn run(a: DemoArgs) -> Result<(), PipelineError> {
    check_output_dir(&a.out, "the demo's stages, checkpoint, blob and report")?;
    let opts = tickq_host::pipeline::RunOptions {
        out: a.out.clone(),
        force: a.force,
        progress: true,
        device: a.device.resolve()?,
    };
    if let Some(given) = &a.data.data {
        crate::args::data_path(Some(given))?;
    }
    let outputs =
        tickq_host::pipeline::run_demo(a.data.data.as_deref(), &a.data.read, &opts, &mut |l| {
            let _ = out(l);
        })?;
    let mut written = outputs.run.files.clone();
    written.extend([outputs.checkpoint, outputs.blob]);
    written.extend(outputs.report);
    for path in &written {
        out(&format!("wrote {}", path.display()))?;
    }
    Ok(())
}

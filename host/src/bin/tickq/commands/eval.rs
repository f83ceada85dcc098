//! `tickq eval`: evaluate a checkpoint and its blob on the test split.

use clap::Args;
use std::path::PathBuf;
use tickq_host::device::DeviceChoice;
use tickq_host::limits::{self};
use tickq_host::paths::check_output_dir;
use tickq_host::steps::{self, PipelineError};

use crate::args::*;
use crate::{out, progress};

#[derive(Args, Debug)]
pub(crate) struct EvalArgs {
    /// Checkpoint directory.
    pub(crate) checkpoint: PathBuf,
    /// Blob exported from that checkpoint.
    #[arg(long, value_name = "FILE")]
    pub(crate) blob: PathBuf,
    /// Directory for report.md and report.json.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[arg(long, value_name = "N", default_value_t = 200_000, allow_negative_numbers = true,
          value_parser = whole(limits::LATENCY_CALLS),
          help = ranged("Single-sample calls timed for the latency percentiles", limits::LATENCY_CALLS))]
    pub(crate) latency_calls: usize,
    /// Where the int8 logits of the test split are computed (bit-exact on either): auto takes a hardware GPU
    /// when there is one; gpu takes any adapter, software Vulkan too.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) device: DeviceChoice,
}

pub(crate) fn run(a: EvalArgs) -> Result<(), PipelineError> {
    check_output_dir(&a.out, "report.md and report.json")?;
    let (model, data, pre) = load_with_data(&a.checkpoint, &a.data)?;
    for w in data.label_warnings() {
        progress(&format!("warning: {w}"));
    }
    let blob = read_blob(&a.blob)?;
    steps::check_blob_file(&a.blob, &blob, &a.checkpoint, &model, &pre)?;
    let sidecar = steps::QuantSidecar::read(&a.blob)?;
    let (summary, ranges) = match sidecar {
        Some(s) => (s.quantization, s.ranges),
        None => {
            progress(&format!(
                "note: {} not found; the report will not list quantization settings",
                steps::QuantSidecar::path_for(&a.blob).display()
            ));
            (steps::unknown_quant_summary(), Vec::new())
        }
    };
    progress(&format!(
        "evaluating on {} test samples and timing {} calls",
        data.splits.test.y.len(),
        a.latency_calls
    ));
    let device = a.device.resolve()?;
    let report = steps::evaluate_on(
        &device,
        &model,
        steps::BlobFile {
            path: &a.blob,
            bytes: &blob,
        },
        &data,
        summary,
        ranges,
        a.latency_calls,
    )?;
    if let Some(ctx) = device.gpu() {
        progress(&format!(
            "GPU memory: {} KiB held by tickq buffers at peak",
            ctx.peak_bytes_on_gpu().div_ceil(1024)
        ));
    }
    report.write(&a.out)?;
    out(&format!(
        "f32 accuracy {:.2} %, int8 accuracy {:.2} %, agreement {:.2} %, p50 {:.0} ns; wrote {}",
        100.0 * report.float.accuracy,
        100.0 * report.int8.accuracy,
        100.0 * report.int8.agreement,
        report.latency_ns.p50,
        a.out.join("report.md").display()
    ))
}

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
    /// Evaluate on input vectors from a file with labels instead of --data's test split (required for a
    /// checkpoint fed vectors from files): prints the f32 and int8 accuracy and their agreement and writes
    /// them to report.json. See docs/BYO_MODEL.md.
    #[command(flatten)]
    pub(crate) inputs: InputsArgs,
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
    let (model, record) = steps::load_checkpoint_inputs(&a.checkpoint)?;
    if a.inputs.inputs.is_some() || matches!(record, steps::InputRecord::Vectors(_)) {
        return run_on_vectors(&a, &model, &record);
    }
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

/// `tickq eval --inputs`: the checkpoint and the blob on the vectors of a file with labels.
fn run_on_vectors(
    a: &EvalArgs,
    model: &tickq_host::model::Sequential,
    record: &steps::InputRecord,
) -> Result<(), PipelineError> {
    let Some(inputs) = &a.inputs.inputs else {
        return Err(PipelineError::NeedsInputs {
            what: format!("the checkpoint {}", a.checkpoint.display()),
            flag: "--inputs FILE (with labels: a `label` column, or --labels FILE)",
        });
    };
    let blob = read_blob(&a.blob)?;
    let core = tickq_core::Model::load(&blob).map_err(|source| PipelineError::Blob {
        path: a.blob.clone(),
        source,
    })?;
    steps::check_blob_of_record(&core, model, record).map_err(|mismatch| {
        PipelineError::NotCheckpointBlob {
            blob: a.blob.clone(),
            checkpoint: a.checkpoint.clone(),
            mismatch,
        }
    })?;
    let shape = steps::input_shape(&model.arch, record);
    let set = steps::read_vectors(inputs, &a.inputs.source(), &shape)?;
    for note in &set.notes {
        progress(note);
    }
    let Some(labels) = set.labels.as_deref() else {
        return Err(PipelineError::NeedsInputs {
            what: format!("{} has no labels: the evaluation", inputs.display()),
            flag: "a `label` column or --labels FILE",
        });
    };
    let labels_path = a.inputs.labels.as_deref().unwrap_or(inputs);
    let float = steps::predict_float(model, record.normalizer(), set.x.view());
    let int8 = steps::predict_blob(&core, &a.blob, set.x.view())?;
    let float_summary = steps::summarize_run(
        "checkpoint (f32)",
        record.label_names(),
        &float,
        Some((labels_path, labels)),
        None,
    )?;
    let int8_summary = steps::summarize_run(
        "blob (int8 through tickq-core)",
        record.label_names(),
        &int8,
        Some((labels_path, labels)),
        None,
    )?;
    let accuracy = |s: &steps::RunSummary| s.labels.as_ref().map_or(0.0, |l| l.accuracy);
    let baseline = int8_summary
        .labels
        .as_ref()
        .map_or(0.0, |l| l.majority_accuracy);
    let agreement = tickq_host::eval::agreement(&float.signals, &int8.signals);
    let report = serde_json::json!({
        "model": model.arch.name,
        "inputs": inputs.display().to_string(),
        "rows": set.x.nrows(),
        "float": float_summary,
        "int8": int8_summary,
        "agreement": agreement,
        "blob_bytes": blob.len(),
    });
    let json =
        serde_json::to_string_pretty(&report).map_err(|source| PipelineError::JsonWrite {
            what: "report.json",
            source,
        })?;
    std::fs::create_dir_all(&a.out)?;
    tickq_host::fsutil::write_atomic(&a.out.join("report.json"), json.as_bytes())?;
    let md = format!(
        "# {}\n\n{} rows of {}\n\n| | accuracy |\n| --- | --- |\n| f32 | {:.2} % |\n| int8 | {:.2} % |\n\n\
         agreement {:.2} %, majority-class baseline {:.2} %\n",
        model.arch.name,
        set.x.nrows(),
        inputs.display(),
        100.0 * accuracy(&float_summary),
        100.0 * accuracy(&int8_summary),
        100.0 * agreement,
        100.0 * baseline,
    );
    tickq_host::fsutil::write_atomic(&a.out.join("report.md"), md.as_bytes())?;
    out(&format!(
        "f32 accuracy {:.2} %, int8 accuracy {:.2} %, agreement {:.2} %; wrote {}",
        100.0 * accuracy(&float_summary),
        100.0 * accuracy(&int8_summary),
        100.0 * agreement,
        a.out.join("report.md").display()
    ))
}

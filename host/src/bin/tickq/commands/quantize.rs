//! `tickq quantize`: calibrate a checkpoint and write an int8 blob (static or dynamic).

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tickq_host::fsutil::write_atomic;
use tickq_host::paths::check_output_file;
use tickq_host::report::RangeRow;
use tickq_host::steps::{self, PipelineError};

use crate::args::*;
use crate::{out, progress};

#[derive(Args, Debug)]
pub(crate) struct QuantizeArgs {
    /// Checkpoint directory.
    pub(crate) checkpoint: PathBuf,
    /// Blob file to write.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[command(flatten)]
    pub(crate) quant: QuantArgs,
    /// static: calibrated activation scales (the quantization options apply); dynamic: no calibration, activation
    /// exponents chosen per inference (Dense and Conv1d with fused ReLU/ReLU6, pools and flatten; see
    /// docs/ARITHMETIC.md).
    #[arg(long, value_enum, default_value = "static")]
    pub(crate) mode: QuantMode,
}

/// How `tickq quantize` quantizes activations.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuantMode {
    /// Calibrated per-tensor scales.
    Static,
    /// Power-of-two exponents chosen at run time.
    Dynamic,
}

pub(crate) fn run(a: QuantizeArgs) -> Result<(), PipelineError> {
    let cfg = a.quant.config()?;
    check_output_file(&a.out, "the blob")?;
    let (model, data, _) = load_with_data(&a.checkpoint, &a.data)?;
    if a.mode == QuantMode::Dynamic {
        progress("dynamic quantization: no calibration");
        let q = steps::quantize_model_dynamic(&model, &data)?;
        write_atomic(&a.out, &q.blob)?;
        // A dynamic blob has no calibration settings; a sidecar left by an earlier static run would misreport them.
        let sidecar = steps::QuantSidecar::path_for(&a.out);
        if sidecar.exists() {
            std::fs::remove_file(&sidecar)?;
        }
        return out(&format!(
            "wrote {} ({} bytes, dynamic)",
            a.out.display(),
            q.blob.len()
        ));
    }
    progress(&format!(
        "calibrating on {} training samples ({})",
        cfg.calibration_samples.min(data.splits.train.y.len()),
        cfg.observer
    ));
    let q = steps::quantize_model_with(&model, &data, &cfg, &a.quant.encode_options())?;
    for w in &q.warnings {
        progress(&format!("warning: {w}"));
    }
    write_atomic(&a.out, &q.blob)?;
    let sidecar = steps::QuantSidecar {
        quantization: steps::quant_summary(
            &cfg,
            cfg.calibration_samples.min(data.splits.train.y.len()),
        ),
        ranges: q.ranges.iter().map(RangeRow::from).collect(),
        dataset: Some(data.dataset.clone()),
        split: Some(data.split),
    };
    sidecar.write(&a.out)?;
    out(&format!(
        "wrote {} ({} bytes) and {}",
        a.out.display(),
        q.blob.len(),
        steps::QuantSidecar::path_for(&a.out).display()
    ))
}

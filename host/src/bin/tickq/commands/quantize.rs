//! `tickq quantize`: calibrate a checkpoint and write an int8 blob (static or dynamic).

use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use tickq_host::fsutil::write_atomic;
use tickq_host::limits;
use tickq_host::paths::check_output_file;
use tickq_host::quant::{QuantConfig, QuantizedModel};
use tickq_host::report::RangeRow;
use tickq_host::steps::{self, InputRecord, PipelineError};

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
    /// Calibrate on the input vectors of this file (.npy, .safetensors, .csv or .parquet, the values the blob
    /// takes, before standardization) instead of the training split of --data; required for a checkpoint fed
    /// vectors from files. See docs/BYO_MODEL.md.
    #[arg(long, value_name = "FILE")]
    pub(crate) calibration: Option<PathBuf>,
    /// The tensor of a safetensors --calibration file [default: its only tensor, or `inputs` or `x`].
    #[arg(long, value_name = "NAME", requires = "calibration")]
    pub(crate) calibration_tensor: Option<String>,
    #[arg(long, value_name = "START..END", value_parser = row_range, requires = "calibration",
          conflicts_with = "calibration_count", help = rows_help("Calibrate on these rows of --calibration only"))]
    pub(crate) calibration_rows: Option<(usize, usize)>,
    #[arg(long, value_name = "N", allow_negative_numbers = true, requires = "calibration",
          value_parser = whole(limits::CALIBRATION_SAMPLES),
          help = ranged("Calibrate on the first N rows of --calibration only", limits::CALIBRATION_SAMPLES))]
    pub(crate) calibration_count: Option<usize>,
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
    let (model, record) = steps::load_checkpoint_inputs(&a.checkpoint)?;
    let vectors = matches!(record, InputRecord::Vectors(_));
    if a.mode == QuantMode::Dynamic {
        if a.calibration.is_some() {
            return Err(PipelineError::DynamicCalibration);
        }
        progress("dynamic quantization: no calibration");
        let q = if vectors {
            steps::quantize_dynamic_of(&model, &record)?
        } else {
            let (model, data, _) = load_with_data(&a.checkpoint, &a.data)?;
            steps::quantize_model_dynamic(&model, &data)?
        };
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
    if let Some(file) = &a.calibration {
        let source = steps::InputSource {
            path: Some(file),
            tensor: a.calibration_tensor.as_deref(),
            labels: None,
            rows: a.calibration_rows.or(a.calibration_count.map(|n| (0, n))),
        };
        let shape = steps::input_shape(&model.arch, &record);
        let set = steps::read_vectors(file, &source, &shape)?;
        for note in &set.notes {
            progress(note);
        }
        let used = cfg.calibration_samples.min(set.x.nrows());
        progress(&format!(
            "calibrating on {used} rows of {} ({}){}",
            file.display(),
            cfg.observer,
            if used < set.x.nrows() {
                format!(
                    "; {} more rows are past --calibration-samples {}",
                    set.x.nrows() - used,
                    cfg.calibration_samples
                )
            } else {
                String::new()
            }
        ));
        let q = steps::quantize_with_calibration(
            &model,
            &record,
            set.x.view(),
            &cfg,
            &a.quant.encode_options(),
        )?;
        let (dataset, split) = match &record {
            InputRecord::Trades(p) => (Some(p.dataset.clone()), Some(p.split)),
            InputRecord::Vectors(_) => (None, None),
        };
        return write_static(&a.out, &q, &cfg, used, dataset, split);
    }
    if vectors {
        return Err(PipelineError::NeedsInputs {
            what: format!("the checkpoint {}", a.checkpoint.display()),
            flag: "--calibration FILE (the calibration vectors; --calibration-rows or --calibration-count to \
                   take part of it)",
        });
    }
    let (model, data, _) = load_with_data(&a.checkpoint, &a.data)?;
    let used = cfg.calibration_samples.min(data.splits.train.y.len());
    progress(&format!(
        "calibrating on {used} training samples ({})",
        cfg.observer
    ));
    let q = steps::quantize_model_with(&model, &data, &cfg, &a.quant.encode_options())?;
    write_static(
        &a.out,
        &q,
        &cfg,
        used,
        Some(data.dataset.clone()),
        Some(data.split),
    )
}

/// Writes a static blob and its sidecar, printing the quantizer's warnings.
fn write_static(
    path: &Path,
    q: &QuantizedModel,
    cfg: &QuantConfig,
    samples: usize,
    dataset: Option<tickq_host::data::DatasetConfig>,
    split: Option<tickq_host::data::SplitConfig>,
) -> Result<(), PipelineError> {
    for w in &q.warnings {
        progress(&format!("warning: {w}"));
    }
    write_atomic(path, &q.blob)?;
    let sidecar = steps::QuantSidecar {
        quantization: steps::quant_summary(cfg, samples),
        ranges: q.ranges.iter().map(RangeRow::from).collect(),
        dataset,
        split,
    };
    sidecar.write(path)?;
    out(&format!(
        "wrote {} ({} bytes) and {}",
        path.display(),
        q.blob.len(),
        steps::QuantSidecar::path_for(path).display()
    ))
}

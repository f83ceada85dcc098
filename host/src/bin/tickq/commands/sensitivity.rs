//! `tickq sensitivity`: per-layer quantization or pruning sensitivity.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tickq_host::fsutil::write_atomic;
use tickq_host::limits::{self};
use tickq_host::paths::check_output_file;
use tickq_host::steps::{self, PipelineError};

use crate::args::*;
use crate::{out, progress};

pub(crate) const SENSITIVITY_EXAMPLES: &str = "\
Examples:
  tickq sensitivity ckpt
  tickq sensitivity ckpt --mode both --amount 0.5 --split test
  tickq sensitivity ckpt --backend fpga --observer percentile --json --out sensitivity.json

Quantize mode fake-quantizes one tensor at a time in f32 (the input quantizer; each dense/conv1d layer's
per-channel int8 weights and its int8 output, with a following relu/relu6/clamp fused; each pool or table
output) with exactly the parameters `tickq quantize` would export, after checking that the whole model
quantizes. Prune mode zeroes --amount of one layer's weights at a time (L1 unstructured, no fine-tuning).
Rows are scored on --split and sorted worst first. See docs/TROUBLESHOOTING.md.";

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SensitivityMode {
    /// Quantize one tensor at a time (and print the range report).
    Quantize,
    /// Prune one layer at a time.
    Prune,
    /// Both.
    Both,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SplitArg {
    Validation,
    Test,
}

#[derive(Args, Debug)]
pub(crate) struct SensitivityArgs {
    /// Checkpoint directory.
    pub(crate) checkpoint: PathBuf,
    /// What to apply one layer at a time.
    #[arg(long, value_enum, default_value = "quantize")]
    pub(crate) mode: SensitivityMode,
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true, value_parser = real(limits::SPARSITY),
          help = ranged("Prune mode: the fraction of each layer's weights that is zero in its row", limits::SPARSITY))]
    pub(crate) amount: f32,
    /// The split the rows are scored on (the range report's held-out clipping always uses the test split).
    #[arg(long, value_enum, default_value = "validation")]
    pub(crate) split: SplitArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write the report (JSON with --json, text otherwise) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[command(flatten)]
    pub(crate) quant: QuantArgs,
}

pub(crate) fn run(a: SensitivityArgs) -> Result<(), PipelineError> {
    use tickq_host::quant::sensitivity::{self as sens, EvalSet};
    let config = a.quant.config()?;
    if let Some(path) = &a.out {
        check_output_file(path, "the report")?;
    }
    let (model, data, _) = load_with_data(&a.checkpoint, &a.data)?;
    let (split_name, split) = match a.split {
        SplitArg::Validation => ("validation", &data.splits.validation),
        SplitArg::Test => ("test", &data.splits.test),
    };
    let x = data.normalized(split.x.view());
    let eval = EvalSet {
        x: x.view(),
        y: &split.y,
        labels: &split.label_names,
    };
    let mut report = sens::SensitivityReport {
        model: model.arch.name.clone(),
        split: split_name.to_string(),
        samples: split.y.len(),
        float: sens::Score {
            accuracy: 0.0,
            macro_f1: 0.0,
        },
        quantization: None,
        pruning: None,
    };
    if a.mode != SensitivityMode::Prune {
        let calibration = steps::calibration_set(&data, &config);
        progress(&format!(
            "quantizing one tensor at a time ({} calibration samples, {}), scoring on {} {split_name} samples",
            calibration.nrows(),
            config.observer,
            split.y.len()
        ));
        let q = sens::quantization_sensitivity(
            &model,
            calibration.view(),
            &steps::export_info(&model, &data),
            &config,
            &a.quant.encode_options(),
            &eval,
        )?;
        let test_x = data.normalized(data.splits.test.x.view());
        report.float = q.float;
        report.quantization = Some(sens::QuantSection {
            settings: steps::quant_summary(&config, calibration.nrows()),
            ranges: sens::range_rows(&model, &q.quantized, test_x.view()),
            warnings: q.quantized.warnings.clone(),
            layers: q.layers,
        });
    }
    if a.mode != SensitivityMode::Quantize {
        progress(&format!(
            "pruning one layer at a time to {} % zeros",
            100.0 * a.amount
        ));
        let p = sens::pruning_sensitivity(&model, a.amount, &eval)?;
        report.float = p.float;
        report.pruning = Some(sens::PruneSection {
            amount: p.amount,
            layers: p.layers,
        });
    }
    let text = if a.json {
        serde_json::to_string_pretty(&report).map_err(|source| PipelineError::JsonWrite {
            what: "the sensitivity report",
            source,
        })?
    } else {
        report.to_text()
    };
    if let Some(path) = &a.out {
        write_atomic(path, text.as_bytes())?;
    }
    out(text.trim_end())
}

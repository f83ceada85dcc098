//! The steps the `tickq` subcommands and the staged pipeline ([`crate::pipeline`]) are made of: prepare data,
//! train, checkpoint, calibrate and quantize, prune, evaluate, check a blob against its checkpoint, inspect.
//!
//! Each step is a plain function, so the subcommands, the pipeline's stages, tests and other tools call them in
//! whatever order they need; none of them chains the others.

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::data::{self, DatasetConfig, Normalizer, SplitConfig, Splits};
use crate::eval::{self, Metrics};
use crate::fsutil::write_atomic;
use crate::gpu_train::TrainDevice;
use crate::model::{Architecture, Sequential};
pub use crate::preprocess::Preprocess;
use crate::prune::{self, FineTuneData, PruningPlan, StepReport};
use crate::quant::observer::Range;
use crate::quant::{self, ExportInfo, QuantConfig, QuantizedModel};
use crate::report::{
    Baseline, DataSummary, FloatSection, Int8Section, QuantSummary, RangeRow, Report,
};
use crate::train::{self, EpochReport, TrainConfig, TrainHistory};
pub use tickq_core::encode::{EncodeOptions, Target, WeightFormat};

/// Everything that can stop the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading or preparing the trade data failed.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// The model, its architecture file or its training failed.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] train::TrainError),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// Quantization failed.
    #[error(transparent)]
    Quant(#[from] quant::QuantError),
    /// Pruning failed.
    #[error(transparent)]
    Prune(#[from] prune::PruneError),
    /// A blob did not load.
    #[error("{}: not a blob tickq-core loads", path.display())]
    Blob {
        /// The blob file.
        path: PathBuf,
        /// What tickq-core reported.
        #[source]
        source: tickq_core::BlobError,
    },
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The requested compute device is not available.
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    /// Work on the GPU failed.
    #[error("GPU: {0}")]
    Gpu(#[from] crate::device::GpuError),
    /// A blob is not the model of the checkpoint it is evaluated with.
    #[error(
        "{} is not a blob of the checkpoint {}: {mismatch}",
        blob.display(),
        checkpoint.display()
    )]
    NotCheckpointBlob {
        /// The blob file.
        blob: PathBuf,
        /// The checkpoint directory.
        checkpoint: PathBuf,
        /// The first thing that differs.
        mismatch: BlobMismatch,
    },
    /// An architecture takes other inputs than the data gives.
    #[error(
        "architecture `{arch}` takes {features} features x {time_steps} time steps, the data gives {data_features} x {data_time_steps}"
    )]
    ArchInputs {
        /// The architecture's name.
        arch: String,
        /// The features it takes.
        features: usize,
        /// The time steps it takes.
        time_steps: usize,
        /// The features the data gives.
        data_features: usize,
        /// The time steps the data gives.
        data_time_steps: usize,
    },
    /// An architecture has another number of classes than the labels.
    #[error("architecture `{arch}` has {classes} classes, the labels have {labels}")]
    ArchClasses {
        /// The architecture's name.
        arch: String,
        /// Its classes.
        classes: usize,
        /// The label names the data has.
        labels: usize,
    },
    /// A checkpoint directory has no preprocessing record.
    #[error(
        "{}: the checkpoint has no preprocess.json (import it with `tickq import --data` to record one)",
        checkpoint.display()
    )]
    NoPreprocess {
        /// The checkpoint directory.
        checkpoint: PathBuf,
    },
    /// A blob takes another number of inputs than the data gives.
    #[error("{}: the blob takes {inputs} inputs, the data gives {data_inputs}", blob.display())]
    BlobInputs {
        /// The blob file.
        blob: PathBuf,
        /// The inputs the blob takes.
        inputs: usize,
        /// The inputs per sample the data gives.
        data_inputs: usize,
    },
    /// A JSON file tickq reads (a blob's `.quant.json` sidecar) does not parse.
    #[error("{}: not valid JSON of the expected form", path.display())]
    JsonRead {
        /// The file.
        path: PathBuf,
        /// What serde_json reported, with the line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A record could not be turned into JSON (a bug: every record tickq writes serializes).
    #[error("{what}: cannot be written as JSON")]
    JsonWrite {
        /// What was being written (`preprocess.json`, `the inspect report`).
        what: &'static str,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
    /// Two options were given that do not go together, or one without the one it needs.
    #[error("{option} applies only to {requires}")]
    OptionRequires {
        /// The option given (`--momentum`).
        option: &'static str,
        /// What it needs (`--optimizer sgd`).
        requires: &'static str,
    },
    /// The N:M pruning pattern keeps more weights than its group holds.
    #[error("--n {n} is above --m {m}: N:M pruning keeps n of every m weights")]
    NAboveM {
        /// Weights kept per group.
        n: usize,
        /// The group size.
        m: usize,
    },
    /// A backend the blob was asked to run on is not available on this machine.
    #[error("--backend {backend}")]
    Backend {
        /// The backend asked for.
        backend: tickq_core::Backend,
        /// What tickq-core reported.
        #[source]
        source: tickq_core::BackendUnavailable,
    },
    /// Pruning statistics of a blob could not be read.
    #[error("{}: no pruning statistics", path.display())]
    BlobStats {
        /// The blob file.
        path: PathBuf,
        /// Why (boxed: a pruning error is large).
        #[source]
        source: Box<crate::prune::PruneError>,
    },
    /// A pipeline stage got another kind of input than it needs from its `from` stage (the config checks prevent
    /// this: a bug).
    #[error("the `from` stage produced no {expected}")]
    StageInput {
        /// What the stage needs: `model` or `blob`.
        expected: &'static str,
    },
    /// Distillation failed.
    #[error(transparent)]
    Distill(#[from] crate::distill::DistillError),
    /// A staged pipeline (`tickq pipeline`, `tickq demo`) failed.
    #[error(transparent)]
    Stages(#[from] crate::pipeline::StagesError),
    /// A setting is outside its range in [`crate::limits`].
    #[error("{setting}: {source}")]
    Setting {
        /// The setting (`--latency-calls`, `latency_calls`).
        setting: &'static str,
        /// The value and the range.
        #[source]
        source: crate::limits::RangeError,
    },
    /// An output path is blocked by something already there.
    #[error(transparent)]
    OutputPath(#[from] crate::paths::OutputPathError),
    /// An export failed.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

impl PipelineError {
    /// Whether this failure is the user's input or tickq's own; the `tickq` command exits with
    /// [`ErrorKind::exit_code`](crate::error::ErrorKind::exit_code) of it. See [`crate::error`].
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::of(self)
    }

    /// Whether this failure is a bad input (exit code 2) rather than an internal failure (exit code 1).
    #[must_use]
    pub fn is_bad_input(&self) -> bool {
        self.kind() == crate::error::ErrorKind::BadInput
    }
}

/// The first difference between a blob and the checkpoint it is evaluated with ([`check_blob_of`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobMismatch {
    /// Something the blob records about its model differs from the checkpoint.
    #[error("the {field} is {blob} in the blob and {checkpoint} in the checkpoint")]
    Field {
        /// What differs: `model name`, `input shape`, `number of classes`, `weighted layer 2`, `feature 3`,
        /// `label 0` or `training data (SHA-256)`.
        field: String,
        /// The blob's value.
        blob: String,
        /// The checkpoint's value.
        checkpoint: String,
    },
    /// A layer's int8 weights are not the checkpoint's f32 weights quantized (another training run, say).
    #[error(
        "the int8 weights of layer `{layer}`, output channel {channel}, are not the checkpoint's f32 weights quantized"
    )]
    Weights {
        /// The layer's name in the checkpoint.
        layer: String,
        /// The output channel.
        channel: usize,
    },
}

/// Trade data turned into normalized, split samples.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// Where the trades came from, for reports.
    pub source: String,
    /// SHA-256 of the trade file.
    pub sha256: [u8; 32],
    /// SHA-256 of the trade file the model was trained on, which a blob records: `sha256` for freshly prepared
    /// data, the checkpoint's `data_sha256` for data rebuilt for a checkpoint ([`prepare_data_for`]).
    pub training_sha256: [u8; 32],
    /// Trades read.
    pub trades: usize,
    /// Raw (unstandardized) splits.
    pub splits: Splits,
    /// Standardization fitted on the training split.
    pub normalizer: Normalizer,
    /// Dataset settings used.
    pub dataset: DatasetConfig,
    /// Split settings used.
    pub split: SplitConfig,
}

impl PreparedData {
    /// The standardized copy of `x` (what the f32 model takes).
    pub fn normalized(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        self.normalizer.transform(x)
    }

    /// The preprocessing record for a checkpoint.
    pub fn preprocess(&self) -> Preprocess {
        Preprocess {
            feature_names: self.splits.train.feature_names.clone(),
            label_names: self.splits.train.label_names.clone(),
            normalizer: self.normalizer.clone(),
            data_sha256: hex(&self.sha256),
            dataset: self.dataset.clone(),
            split: self.split,
        }
    }

    /// Number of features per time step.
    pub fn features(&self) -> usize {
        self.splits.train.features
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes written as 64 hex digits in `text`, or `None`.
fn unhex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Reads `path`, builds features and labels, splits chronologically and fits
/// the standardization on the training split.
///
/// Without an explicit `split`, the default 70 / 15 / 15 split is used with the
/// smallest leak-free gap for the dataset's horizon and window
/// ([`SplitConfig::for_dataset`]).
///
/// # Errors
///
/// [`PipelineError::Data`] naming the file, line and field of bad input.
pub fn prepare_data(
    path: &Path,
    dataset: &DatasetConfig,
    split: Option<&SplitConfig>,
) -> Result<PreparedData, PipelineError> {
    let trades = data::load_trades(path)?;
    let sha256 = data::file_sha256(path)?;
    prepare_from_trades(&trades, display_source(path), sha256, dataset, split)
}

/// Like [`prepare_data`], for trades already in memory (a slice of a file, say).
///
/// # Errors
///
/// [`PipelineError::Data`] when there are too few trades for the settings.
pub fn prepare_from_trades(
    trades: &[data::Trade],
    source: String,
    sha256: [u8; 32],
    dataset: &DatasetConfig,
    split: Option<&SplitConfig>,
) -> Result<PreparedData, PipelineError> {
    let ds = data::build_dataset(trades, dataset)?;
    let split = split
        .copied()
        .unwrap_or_else(|| SplitConfig::for_dataset(&ds));
    let splits = data::chronological_split(&ds, &split)?;
    let normalizer = Normalizer::fit(&splits.train);
    Ok(PreparedData {
        source,
        sha256,
        training_sha256: sha256,
        trades: trades.len(),
        splits,
        normalizer,
        dataset: dataset.clone(),
        split,
    })
}

/// The data path as shown in reports: relative to the workspace for the
/// bundled default, as given otherwise.
fn display_source(path: &Path) -> String {
    if path == data::default_data_path() {
        "data/es-ticks-2013/ticks.csv (bundled)".to_string()
    } else {
        path.display().to_string()
    }
}

/// Checks that `arch` takes the inputs `data` produces.
///
/// # Errors
///
/// [`PipelineError::ArchInputs`] or [`PipelineError::ArchClasses`] saying what differs.
pub fn check_arch_fits(arch: &Architecture, data: &PreparedData) -> Result<(), PipelineError> {
    let ds = &data.splits.train;
    if arch.input.features != ds.features || arch.input.time_steps != ds.time_steps {
        return Err(PipelineError::ArchInputs {
            arch: arch.name.clone(),
            features: arch.input.features,
            time_steps: arch.input.time_steps,
            data_features: ds.features,
            data_time_steps: ds.time_steps,
        });
    }
    if arch.classes != ds.label_names.len() {
        return Err(PipelineError::ArchClasses {
            arch: arch.name.clone(),
            classes: arch.classes,
            labels: ds.label_names.len(),
        });
    }
    Ok(())
}

/// Trains a fresh model of architecture `arch` on `data`.
///
/// # Errors
///
/// Architecture, data-shape or training errors.
pub fn train_model(
    arch: Architecture,
    data: &PreparedData,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Sequential, TrainHistory), PipelineError> {
    train_model_on(&TrainDevice::Cpu, arch, data, config, on_epoch)
}

/// [`train_model`] on a chosen device (see [`train::train_on`]).
///
/// # Errors
///
/// As [`train_model`], plus GPU failures.
pub fn train_model_on(
    device: &TrainDevice,
    arch: Architecture,
    data: &PreparedData,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Sequential, TrainHistory), PipelineError> {
    check_arch_fits(&arch, data)?;
    let mut model = Sequential::new(arch, config.seed)?;
    let train_x = data.normalized(data.splits.train.x.view());
    let val_x = data.normalized(data.splits.validation.x.view());
    let history = train::train_on(
        device,
        &mut model,
        train_x.view(),
        &data.splits.train.y,
        val_x.view(),
        &data.splits.validation.y,
        config,
        on_epoch,
    )?;
    Ok((model, history))
}

/// Saves `model` with the preprocessing record of `data` into `dir`.
///
/// # Errors
///
/// Checkpoint I/O errors.
pub fn save_checkpoint(
    dir: &Path,
    model: &Sequential,
    pre: &Preprocess,
) -> Result<(), PipelineError> {
    let value = serde_json::to_value(pre).map_err(|source| PipelineError::JsonWrite {
        what: "preprocess.json",
        source,
    })?;
    checkpoint::save_checkpoint(dir, model, Some(&value))?;
    Ok(())
}

/// Loads a checkpoint and its preprocessing record, checked against the checkpoint's architecture
/// ([`Preprocess::read`]).
///
/// # Errors
///
/// Checkpoint errors (the preprocessing record's naming the file and field), or [`PipelineError::NoPreprocess`] when
/// the checkpoint has no `preprocess.json`.
pub fn load_checkpoint(dir: &Path) -> Result<(Sequential, Preprocess), PipelineError> {
    let model = checkpoint::import_safetensors(
        &dir.join(checkpoint::WEIGHTS_FILE),
        &dir.join(checkpoint::ARCH_FILE),
    )?;
    let path = dir.join(checkpoint::PREPROCESS_FILE);
    if !path.exists() {
        return Err(PipelineError::NoPreprocess {
            checkpoint: dir.to_path_buf(),
        });
    }
    let pre = Preprocess::read(&path, &model.arch)?;
    Ok((model, pre))
}

/// Rebuilds the data a checkpoint was trained with, from `path`, and warns
/// (through the returned flag) when the file's hash differs.
///
/// # Errors
///
/// Data errors.
pub fn prepare_data_for(
    pre: &Preprocess,
    path: &Path,
) -> Result<(PreparedData, bool), PipelineError> {
    let mut data = prepare_data(path, &pre.dataset, Some(&pre.split))?;
    // The model was standardized with the training data's statistics: keep them, and its training data's hash.
    data.normalizer = pre.normalizer.clone();
    if let Some(hash) = unhex32(&pre.data_sha256) {
        data.training_sha256 = hash;
    }
    let same = hex(&data.sha256) == pre.data_sha256;
    Ok((data, same))
}

/// Calibrates on the training split and quantizes `model` to a blob.
///
/// A pruned model exports its effective weights (`weight * mask`); an exactly zero f32 weight quantizes to an
/// exactly zero int8 weight, so the blob keeps the sparsity pattern (and may add zeros of its own where a weight
/// rounds to 0).
///
/// # Errors
///
/// Quantization errors naming the layer or setting.
pub fn quantize_model(
    model: &Sequential,
    data: &PreparedData,
    config: &QuantConfig,
) -> Result<QuantizedModel, PipelineError> {
    quantize_model_with(model, data, config, &EncodeOptions::default())
}

/// [`quantize_model`] with blob encoding options (`--weight-format`).
///
/// # Errors
///
/// Quantization errors naming the layer or setting, including a forced
/// weight format that does not fit a layer.
pub fn quantize_model_with(
    model: &Sequential,
    data: &PreparedData,
    config: &QuantConfig,
    options: &EncodeOptions,
) -> Result<QuantizedModel, PipelineError> {
    // The model keeps masked weights at zero itself; applying the masks here also covers weights edited by hand.
    let masked;
    let model = if model.has_masks() {
        let mut m = model.clone();
        m.apply_masks();
        masked = m;
        &masked
    } else {
        model
    };
    let info = export_info(model, data);
    let sample = calibration_set(data, config);
    Ok(quant::static_quantize_with(
        model,
        sample.view(),
        &info,
        config,
        options,
    )?)
}

/// Dynamically quantizes `model` (no calibration data): [`quant::ModelQuantizer::dynamic_quantize`].
///
/// # Errors
///
/// Quantization errors naming the first layer dynamic quantization does not support.
pub fn quantize_model_dynamic(
    model: &Sequential,
    data: &PreparedData,
) -> Result<QuantizedModel, PipelineError> {
    let info = export_info(model, data);
    Ok(quant::ModelQuantizer::new(model, &info).dynamic_quantize()?)
}

/// What the blob records about `model` trained on `data`: names, standardization and the data hash.
pub fn export_info(model: &Sequential, data: &PreparedData) -> ExportInfo {
    ExportInfo {
        name: model.arch.name.clone(),
        feature_names: data.splits.train.feature_names.clone(),
        label_names: data.splits.train.label_names.clone(),
        mean: data.normalizer.mean.clone(),
        std: data.normalizer.std.clone(),
        data_hash: data.training_sha256,
    }
}

/// The calibration set [`quantize_model`] uses: `config.calibration_samples` evenly spaced samples of the
/// standardized training split, so the whole training span is seen.
pub fn calibration_set(data: &PreparedData, config: &QuantConfig) -> Array2<f32> {
    let calibration = data.normalized(data.splits.train.x.view());
    let n = calibration.nrows();
    let take = config.calibration_samples.min(n).max(1);
    let rows: Vec<usize> = (0..take).map(|i| i * n / take).collect();
    calibration.select(ndarray::Axis(0), &rows)
}

/// Prunes `model` by `plan`, fine-tuning on `data`'s training split between steps and reporting validation and
/// test accuracy after each step; see [`prune::prune_and_fine_tune`].
///
/// # Errors
///
/// [`PipelineError::ArchInputs`] or [`PipelineError::ArchClasses`] when the model does not fit the data, and
/// [`PipelineError::Prune`].
pub fn prune_model(
    model: &mut Sequential,
    data: &PreparedData,
    plan: &PruningPlan,
    on_step: &mut dyn FnMut(&StepReport),
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Vec<StepReport>, PipelineError> {
    check_arch_fits(&model.arch, data)?;
    let train_x = data.normalized(data.splits.train.x.view());
    let val_x = data.normalized(data.splits.validation.x.view());
    let test_x = data.normalized(data.splits.test.x.view());
    let fine_tune = FineTuneData {
        train_x: train_x.view(),
        train_y: &data.splits.train.y,
        val_x: val_x.view(),
        val_y: &data.splits.validation.y,
        test: Some((test_x.view(), &data.splits.test.y)),
    };
    Ok(prune::prune_and_fine_tune(
        model, plan, &fine_tune, on_step, on_epoch,
    )?)
}

/// One line per pruning step for progress output.
pub fn format_step(r: &StepReport) -> String {
    let step = match r.target_sparsity {
        None if r.step == 0 => "before pruning".to_string(),
        None => format!("step {}/{}", r.step, r.steps),
        Some(t) => format!("step {}/{} (target {t:.2} %)", r.step, r.steps),
    };
    let test = r
        .test_accuracy
        .map(|a| format!(", test acc {:.2} %", 100.0 * a))
        .unwrap_or_default();
    format!(
        "{step}: sparsity {:.2} %, {} parameters, {} MACs, {} fine-tune epochs, val acc {:.2} %{test}",
        r.sparsity,
        r.parameters,
        r.macs,
        r.fine_tune_epochs,
        100.0 * r.val_accuracy
    )
}

/// A blob's bytes and the file they came from (which errors name).
#[derive(Debug, Clone, Copy)]
pub struct BlobFile<'a> {
    /// The blob file.
    pub path: &'a Path,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// Evaluates the f32 model and the blob (through tickq-core) on the test split.
///
/// # Errors
///
/// [`PipelineError::Blob`] naming the blob's file when the blob does not load, or
/// [`PipelineError::BlobInputs`] when it takes other inputs than the data gives.
pub fn evaluate(
    model: &Sequential,
    blob: BlobFile<'_>,
    data: &PreparedData,
    quant: QuantSummary,
    ranges: Vec<RangeRow>,
    latency_calls: usize,
) -> Result<Report, PipelineError> {
    evaluate_on(
        &crate::device::ComputeDevice::Cpu,
        model,
        blob,
        data,
        quant,
        ranges,
        latency_calls,
    )
}

/// [`evaluate`] with the int8 predictions over the test split computed on
/// `device` (bit-exact either way; the latency is always timed on the CPU, with
/// tickq-core, since that is what a device runs).
///
/// # Errors
///
/// As [`evaluate`], and [`PipelineError::Gpu`] when the GPU cannot run the blob.
pub fn evaluate_on(
    device: &crate::device::ComputeDevice,
    model: &Sequential,
    blob: BlobFile<'_>,
    data: &PreparedData,
    quant: QuantSummary,
    ranges: Vec<RangeRow>,
    latency_calls: usize,
) -> Result<Report, PipelineError> {
    crate::limits::LATENCY_CALLS
        .check_usize(latency_calls)
        .map_err(|source| PipelineError::Setting {
            setting: "latency calls",
            source,
        })?;
    let core_model = tickq_core::Model::load(blob.bytes).map_err(|source| PipelineError::Blob {
        path: blob.path.to_path_buf(),
        source,
    })?;
    let test = &data.splits.test;
    if core_model.input_len() != test.x.ncols() {
        return Err(PipelineError::BlobInputs {
            blob: blob.path.to_path_buf(),
            inputs: core_model.input_len(),
            data_inputs: test.x.ncols(),
        });
    }
    let labels = &test.label_names;
    let float_pred = model.predict(data.normalized(test.x.view()).view());
    let (int8_pred, _) = eval::int8_predict_on(device, &core_model, test.x.view())?;
    let float_metrics = Metrics::compute(&float_pred, &test.y, labels);
    let int8_metrics = Metrics::compute(&int8_pred, &test.y, labels);
    let (majority_class, majority_accuracy) =
        eval::majority_baseline(&data.splits.train.y, &test.y, labels.len());
    let latency = eval::measure_latency(&core_model, test.x.view(), latency_calls);
    let mut ranges = ranges;
    let probes: Vec<_> = ranges
        .iter()
        .map(|r| {
            (
                r.layer,
                Range::new(r.calibrated[0], r.calibrated[1]),
                r.scale,
            )
        })
        .collect();
    let test_norm = data.normalized(test.x.view());
    for (row, clipped) in
        ranges
            .iter_mut()
            .zip(quant::clipped_fractions(model, test_norm.view(), &probes))
    {
        row.clipped_test = Some(clipped);
    }
    let size_bytes = model.num_parameters() * 4;
    let mut test_class_counts = vec![0usize; labels.len()];
    for &y in &test.y {
        if let Some(c) = test_class_counts.get_mut(usize::from(y)) {
            *c += 1;
        }
    }
    Ok(Report {
        model: model.arch.name.clone(),
        tickq_version: env!("CARGO_PKG_VERSION").to_string(),
        data: DataSummary {
            source: data.source.clone(),
            sha256: hex(&data.sha256),
            trades: data.trades,
            features: test.features,
            time_steps: test.time_steps,
            samples: [
                data.splits.train.y.len(),
                data.splits.validation.y.len(),
                test.y.len(),
            ],
            labels: labels.clone(),
            test_class_counts,
        },
        float: FloatSection {
            accuracy: float_metrics.accuracy,
            macro_f1: float_metrics.macro_f1,
            size_bytes,
            parameters: model.num_parameters(),
            metrics: float_metrics,
        },
        int8: Int8Section {
            accuracy: int8_metrics.accuracy,
            macro_f1: int8_metrics.macro_f1,
            blob_bytes: blob.bytes.len(),
            blob_fraction_of_float: blob.bytes.len() as f64 / size_bytes.max(1) as f64,
            agreement: eval::agreement(&float_pred, &int8_pred),
            arena_bytes: core_model.arena_bytes(),
            crc32: format!("{:08x}", core_model.crc32()),
            metrics: int8_metrics,
        },
        compression_ratio: size_bytes as f64 / blob.bytes.len().max(1) as f64,
        baseline: Baseline {
            majority_class,
            majority_accuracy,
        },
        latency_ns: latency,
        peak_rss_bytes: eval::peak_rss_bytes(),
        quantization: quant,
        ranges,
    })
}

/// Checks that `blob` was quantized from the checkpoint `model` with the record `pre`: the same model name,
/// input shape, classes, weighted layers (kind, channels, kernel, stride, dilation, padding, in order), feature
/// and label names, training data hash and, last, int8 weights: each output channel of each Dense and Conv1d
/// layer must hold exactly the int8 values its f32 weights quantize to (per-channel symmetric, with the x86 / arm
/// or the power-of-two fpga scale, in any order within the channel, since the blob may store the inputs in
/// another order).
///
/// # Errors
///
/// The first [`BlobMismatch`], in the order above.
pub fn check_blob_of(
    blob: &tickq_core::Model<'_>,
    model: &Sequential,
    pre: &Preprocess,
) -> Result<(), BlobMismatch> {
    let differ = |field: String, blob: String, checkpoint: String| {
        if blob == checkpoint {
            Ok(())
        } else {
            Err(BlobMismatch::Field {
                field,
                blob,
                checkpoint,
            })
        }
    };
    let meta = blob.metadata();
    let arch = &model.arch;
    differ(
        "model name".into(),
        format!("`{}`", meta.name()),
        format!("`{}`", arch.name),
    )?;
    let (t, f) = blob.input_shape();
    differ(
        "input shape".into(),
        format!("{t} time steps x {f} features"),
        format!(
            "{} time steps x {} features",
            arch.input.time_steps, arch.input.features
        ),
    )?;
    differ(
        "number of classes".into(),
        blob.classes().to_string(),
        arch.classes.to_string(),
    )?;
    let blob_layers: Vec<String> = blob
        .layers()
        .filter_map(|l| match l.kind {
            tickq_core::LayerKind::Dense => {
                Some(format!("dense {} -> {}", l.in_shape.1, l.out_shape.1))
            }
            tickq_core::LayerKind::Conv1d => Some(format!(
                "conv1d {} -> {}, kernel {}, stride {}, dilation {}, {} padding",
                l.in_shape.1,
                l.out_shape.1,
                l.kernel,
                l.stride,
                l.dilation,
                padding_name(l.padding)
            )),
            _ => None,
        })
        .collect();
    let model_layers: Vec<String> = model
        .layers
        .iter()
        .filter_map(|l| match l {
            crate::model::Layer::Dense(d) => Some(format!(
                "dense {} -> {}",
                d.weight.ncols(),
                d.weight.nrows()
            )),
            crate::model::Layer::Conv1d(c) => {
                let (out, inp, kernel) = c.weight.dim();
                Some(format!(
                    "conv1d {inp} -> {out}, kernel {kernel}, stride {}, dilation {}, {} padding",
                    c.stride,
                    c.dilation,
                    padding_name(c.padding)
                ))
            }
            _ => None,
        })
        .collect();
    differ(
        "number of dense and conv1d layers".into(),
        blob_layers.len().to_string(),
        model_layers.len().to_string(),
    )?;
    for (i, (b, m)) in blob_layers.iter().zip(&model_layers).enumerate() {
        differ(format!("weighted layer {}", i + 1), b.clone(), m.clone())?;
    }
    let names = |field: &str, blob: Vec<&str>, checkpoint: &[String]| {
        differ(
            format!("number of {field}s"),
            blob.len().to_string(),
            checkpoint.len().to_string(),
        )?;
        for (i, (b, c)) in blob.iter().zip(checkpoint).enumerate() {
            differ(format!("{field} {i}"), format!("`{b}`"), format!("`{c}`"))?;
        }
        Ok(())
    };
    names(
        "feature",
        meta.feature_names().collect(),
        &pre.feature_names,
    )?;
    names("label", meta.label_names().collect(), &pre.label_names)?;
    differ(
        "training data (SHA-256)".into(),
        hex(meta.data_hash()),
        pre.data_sha256.clone(),
    )?;
    check_blob_weights(blob, model)
}

/// The int8 part of [`check_blob_of`]: every output channel of every weighted layer holds the multiset of int8
/// values that the channel's f32 weights (masks applied) quantize to.
fn check_blob_weights(
    blob: &tickq_core::Model<'_>,
    model: &Sequential,
) -> Result<(), BlobMismatch> {
    use tickq_core::encode::OpSpec;
    let spec = tickq_core::decode::decode(blob);
    let stored = spec.layers.iter().filter_map(|l| match &l.op {
        OpSpec::Dense {
            out_features,
            weights,
            ..
        } => Some((*out_features, weights)),
        OpSpec::Conv1d {
            out_channels,
            weights,
            ..
        } => Some((*out_channels, weights)),
        _ => None,
    });
    let mut masked = model.clone();
    masked.apply_masks();
    let f32_layers = masked.layers.iter().filter_map(|l| match l {
        // Row-major: output channel by output channel.
        crate::model::Layer::Dense(d) => Some((
            d.name.as_str(),
            d.weight.iter().copied().collect::<Vec<f32>>(),
        )),
        crate::model::Layer::Conv1d(c) => Some((
            c.name.as_str(),
            c.weight.iter().copied().collect::<Vec<f32>>(),
        )),
        _ => None,
    });
    let scales = [
        QuantConfig::default(),
        QuantConfig {
            backend: quant::config::Backend::Fpga,
            ..QuantConfig::default()
        },
    ];
    for ((out, q), (name, w)) in stored.zip(f32_layers) {
        let per_channel = w.len() / out.max(1);
        if per_channel * out != w.len() || q.len() != w.len() {
            return Err(BlobMismatch::Weights {
                layer: name.to_string(),
                channel: 0,
            });
        }
        for (channel, (q_row, w_row)) in q
            .chunks_exact(per_channel.max(1))
            .zip(w.chunks_exact(per_channel.max(1)))
            .enumerate()
        {
            let mut found = q_row.to_vec();
            found.sort_unstable();
            let max_abs = w_row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let matches = scales.iter().any(|config| {
                let scale = quant::channel_weight_scale(max_abs, config);
                let mut expected: Vec<i8> = w_row
                    .iter()
                    .map(|&v| quant::quantize_weight(v, scale))
                    .collect();
                expected.sort_unstable();
                expected == found
            });
            if !matches {
                return Err(BlobMismatch::Weights {
                    layer: name.to_string(),
                    channel,
                });
            }
        }
    }
    Ok(())
}

/// `valid` or `causal`, for the blob's and the model's padding alike.
fn padding_name(padding: impl std::fmt::Debug) -> String {
    format!("{padding:?}").to_lowercase()
}

/// [`check_blob_of`] for the blob file `path` holding `bytes` and the checkpoint directory `checkpoint` that
/// `model` and `pre` were loaded from, as `tickq eval` runs it.
///
/// # Errors
///
/// [`PipelineError::Blob`] when the blob does not load, and [`PipelineError::NotCheckpointBlob`] naming both files
/// and the first difference.
pub fn check_blob_file(
    path: &Path,
    bytes: &[u8],
    checkpoint: &Path,
    model: &Sequential,
    pre: &Preprocess,
) -> Result<(), PipelineError> {
    let blob = tickq_core::Model::load(bytes).map_err(|source| PipelineError::Blob {
        path: path.to_path_buf(),
        source,
    })?;
    check_blob_of(&blob, model, pre).map_err(|mismatch| PipelineError::NotCheckpointBlob {
        blob: path.to_path_buf(),
        checkpoint: checkpoint.to_path_buf(),
        mismatch,
    })
}

/// The quantization summary for a report.
pub fn quant_summary(config: &QuantConfig, calibration_samples: usize) -> QuantSummary {
    QuantSummary {
        backend: config.backend.to_string(),
        dtype: config.dtype.to_string(),
        observer: config.observer.to_string(),
        calibration_samples,
    }
}

/// The architecture `tickq demo` trains, embedded so the demo runs anywhere.
pub const DEMO_ARCH: &str = crate::shapes::DEMO_MLP;

/// One line per epoch for progress output.
pub fn format_epoch(e: &EpochReport) -> String {
    format!(
        "epoch {:>3}: train loss {:.4} acc {:.2} % | val loss {:.4} acc {:.2} % | {:.1} s{}",
        e.epoch,
        e.train_loss,
        100.0 * e.train_accuracy,
        e.val_loss,
        100.0 * e.val_accuracy,
        e.seconds,
        if e.improved { " *" } else { "" }
    )
}

/// Training settings of `tickq demo`: sized to finish in about a minute on two cores.
pub fn demo_train_config() -> TrainConfig {
    TrainConfig {
        epochs: 15,
        patience: 4,
        ..TrainConfig::default()
    }
}

/// The quantization settings and calibrated ranges saved beside a blob
/// (`model.quant.json` for `model.blob`), so `tickq eval` can report them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuantSidecar {
    /// Settings used.
    pub quantization: QuantSummary,
    /// Calibrated ranges.
    pub ranges: Vec<RangeRow>,
}

impl QuantSidecar {
    /// Where the sidecar of `blob` lives.
    pub fn path_for(blob: &Path) -> PathBuf {
        blob.with_extension("quant.json")
    }

    /// Writes the sidecar of `blob` atomically.
    ///
    /// # Errors
    ///
    /// The I/O error.
    pub fn write(&self, blob: &Path) -> Result<(), PipelineError> {
        let json =
            serde_json::to_string_pretty(self).map_err(|source| PipelineError::JsonWrite {
                what: "the quantization sidecar",
                source,
            })?;
        write_atomic(&Self::path_for(blob), json.as_bytes())?;
        Ok(())
    }

    /// Reads the sidecar of `blob`, or `None` when there is none (a blob from
    /// elsewhere); a sidecar that exists but does not parse is an error.
    ///
    /// # Errors
    ///
    /// [`PipelineError::JsonRead`] naming the file.
    pub fn read(blob: &Path) -> Result<Option<Self>, PipelineError> {
        let path = Self::path_for(blob);
        match crate::limits::read_file_limited(&path, crate::limits::MAX_JSON_BYTES, "a JSON file")
        {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| PipelineError::JsonRead { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PipelineError::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))),
        }
    }
}

/// Inputs for `tickq bench`: the test split of `path` when its features fit
/// the blob, otherwise seeded pseudo-random standard-normal-like features.
/// Returns the inputs and a description of where they came from.
///
/// # Errors
///
/// Data errors other than a feature-count mismatch.
pub fn bench_inputs(
    model: &tickq_core::Model<'_>,
    path: &Path,
) -> Result<(Array2<f32>, String), PipelineError> {
    let (time_steps, features) = model.input_shape();
    let dataset = DatasetConfig {
        time_steps,
        ..DatasetConfig::default()
    };
    let names: Vec<&str> = model.metadata().feature_names().collect();
    let data = prepare_data(path, &dataset, None)?;
    let test = data.splits.test;
    if test.features == features && test.feature_names.iter().map(String::as_str).eq(names) {
        let source = format!("{} test-split samples of {}", test.y.len(), data.source);
        return Ok((test.x, source));
    }
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let inputs = Array2::from_shape_fn((1024, time_steps * features), |_| {
        // A sum of four uniforms: a cheap, seeded bell shape around zero.
        (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7
    });
    Ok((
        inputs,
        "1024 seeded random inputs (the data's features do not match the blob's)".into(),
    ))
}

/// The quantization summary of a blob whose settings were not recorded.
pub fn unknown_quant_summary() -> QuantSummary {
    QuantSummary {
        backend: "unknown".into(),
        dtype: "qint8".into(),
        observer: "unknown".into(),
        calibration_samples: 0,
    }
}

/// One layer of a blob, as `tickq inspect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    /// Index in the layer table.
    pub index: usize,
    /// Operation name.
    pub kind: String,
    /// Producing layer of the first input (`None`: the model input).
    pub input: Option<usize>,
    /// Producing layer of the second input (Add).
    pub input_b: Option<usize>,
    /// Input shape (time steps, channels).
    pub in_shape: [usize; 2],
    /// Output shape (time steps, channels).
    pub out_shape: [usize; 2],
    /// Kernel, stride and dilation (0 where unused).
    pub kernel_stride_dilation: [usize; 3],
    /// Conv padding.
    pub padding: String,
    /// Output scale and zero point.
    pub out_scale: f32,
    /// Output zero point.
    pub out_zero_point: i8,
    /// Fused clamp `[act_min, act_max]`.
    pub clamp: [i8; 2],
    /// Stored parameters.
    pub params: usize,
    /// Blob bytes of this layer's sections.
    pub bytes: usize,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Output offset and length in the arena.
    pub arena: [usize; 2],
    /// How the weights are stored (`dense-dot`, `columns`, ...); `None` for layers without weights.
    pub weight_format: Option<String>,
}

/// Everything `tickq inspect` reports about a blob.
#[derive(Debug, Clone, Serialize)]
pub struct BlobInspection {
    /// Blob format version.
    pub format_version: u16,
    /// Blob size.
    pub blob_bytes: usize,
    /// CRC-32 (hex).
    pub crc32: String,
    /// Exact arena bytes.
    pub arena_bytes: usize,
    /// Input shape (time steps, features).
    pub input_shape: [usize; 2],
    /// Input quantization (scale, zero point).
    pub input_quant: (f32, i8),
    /// Output quantization (scale, zero point).
    pub output_quant: (f32, i8),
    /// Number of classes.
    pub classes: usize,
    /// Total multiply-accumulates per inference.
    pub macs: u64,
    /// Model name.
    pub name: String,
    /// Feature names.
    pub feature_names: Vec<String>,
    /// Label names.
    pub label_names: Vec<String>,
    /// SHA-256 of the training data (hex).
    pub data_sha256: String,
    /// tickq version that exported the blob.
    pub tickq_version: String,
    /// The layers.
    pub layers: Vec<LayerRow>,
    /// The kernel backend `Model::load` picks on this machine (`tickq bench --backend` can pin another).
    pub backend: String,
    /// The backends this machine can run, slowest first.
    pub backends_available: Vec<String>,
}

/// Summarizes a loaded blob.
pub fn inspect_blob(model: &tickq_core::Model<'_>) -> BlobInspection {
    let meta = model.metadata();
    let layers: Vec<LayerRow> = model
        .layers()
        .map(|l| LayerRow {
            index: l.index,
            kind: l.kind.name().to_string(),
            input: l.input,
            input_b: l.input_b,
            in_shape: [l.in_shape.0, l.in_shape.1],
            out_shape: [l.out_shape.0, l.out_shape.1],
            kernel_stride_dilation: [l.kernel, l.stride, l.dilation],
            padding: format!("{:?}", l.padding).to_lowercase(),
            out_scale: l.out_scale,
            out_zero_point: l.out_zero_point,
            clamp: [l.act_min, l.act_max],
            params: l.params,
            bytes: l.bytes,
            macs: l.macs,
            arena: [l.arena_offset, l.arena_len],
            weight_format: l.weight_format.map(|f| f.to_string()),
        })
        .collect();
    let (t, f) = model.input_shape();
    BlobInspection {
        format_version: model.version(),
        blob_bytes: model.blob_len(),
        crc32: format!("{:08x}", model.crc32()),
        arena_bytes: model.arena_bytes(),
        input_shape: [t, f],
        input_quant: model.input_quant(),
        output_quant: model.output_quant(),
        classes: model.classes(),
        macs: layers.iter().map(|l| l.macs).sum(),
        name: meta.name().to_string(),
        feature_names: meta.feature_names().map(str::to_string).collect(),
        label_names: meta.label_names().map(str::to_string).collect(),
        data_sha256: hex(meta.data_hash()),
        tickq_version: meta.tickq_version().to_string(),
        layers,
        backend: model.backend().to_string(),
        backends_available: tickq_core::Backend::available()
            .map(|b| b.to_string())
            .collect(),
    }
}

impl BlobInspection {
    /// Human-readable text, as `tickq inspect` prints it.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "model        {}", self.name);
        let _ = writeln!(
            s,
            "format       v{}, {} bytes, CRC-32 {}",
            self.format_version, self.blob_bytes, self.crc32
        );
        let _ = writeln!(
            s,
            "input        {} time steps x {} features, int8 scale {:.6} zero point {}",
            self.input_shape[0], self.input_shape[1], self.input_quant.0, self.input_quant.1
        );
        let _ = writeln!(
            s,
            "output       {} classes ({}), scale {:.6} zero point {}",
            self.classes,
            self.label_names.join(", "),
            self.output_quant.0,
            self.output_quant.1
        );
        let _ = writeln!(s, "arena        {} bytes", self.arena_bytes);
        let _ = writeln!(
            s,
            "backend      {} on this machine (available: {})",
            self.backend,
            self.backends_available.join(", ")
        );
        let _ = writeln!(s, "work         {} MACs per inference", self.macs);
        let _ = writeln!(s, "data sha256  {}", self.data_sha256);
        let _ = writeln!(s, "exported by  tickq {}", self.tickq_version);
        let _ = writeln!(s, "features     {}", self.feature_names.join(", "));
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:>3}  {:<13} {:>5} {:>11} {:>11} {:>9} {:>11} {:>9} {:>8} {:>8}  {:<10} clamp",
            "#",
            "kind",
            "input",
            "in (TxC)",
            "out (TxC)",
            "k/s/d",
            "scale",
            "zp",
            "params",
            "bytes",
            "weights"
        );
        for l in &self.layers {
            let input = match (l.input, l.input_b) {
                (None, _) => "x".to_string(),
                (Some(a), None) => a.to_string(),
                (Some(a), Some(b)) => format!("{a}+{b}"),
            };
            let ksd = if l.kernel_stride_dilation == [0, 0, 0] {
                "-".to_string()
            } else {
                format!(
                    "{}/{}/{}",
                    l.kernel_stride_dilation[0],
                    l.kernel_stride_dilation[1],
                    l.kernel_stride_dilation[2]
                )
            };
            let kind = if l.kind == "Conv1d" {
                format!("Conv1d {}", l.padding)
            } else {
                l.kind.clone()
            };
            let _ = writeln!(
                s,
                "{:>3}  {:<13} {:>5} {:>11} {:>11} {:>9} {:>11.6} {:>9} {:>8} {:>8}  {:<10} [{}, {}]",
                l.index,
                kind,
                input,
                format!("{}x{}", l.in_shape[0], l.in_shape[1]),
                format!("{}x{}", l.out_shape[0], l.out_shape[1]),
                ksd,
                l.out_scale,
                l.out_zero_point,
                l.params,
                l.bytes,
                l.weight_format.as_deref().unwrap_or("-"),
                l.clamp[0],
                l.clamp[1]
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointError;
    use crate::data::{LABEL_NAMES, label_names};
    use crate::prune::ModelPruner;
    use rand::{RngExt, SeedableRng};

    /// A Dense MLP, a Conv1d model with global average pooling, and one that flattens a sequence into a Dense
    /// layer (whose weight columns the blob stores in another order); every layer's inputs a multiple of 4, so
    /// that 2:4 pruning applies.
    const ARCHS: [&str; 3] = [
        "name = \"mlp\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 8\n\
         [[layers]]\ntype = \"dense\"\nout = 8\n[[layers]]\ntype = \"relu\"\n\
         [[layers]]\ntype = \"dense\"\nout = 3\n",
        "name = \"gap\"\nclasses = 3\n[input]\ntime_steps = 8\nfeatures = 4\n\
         [[layers]]\ntype = \"conv1d\"\nout = 8\nkernel = 3\npadding = \"causal\"\n\
         [[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"global_avg_pool\"\n\
         [[layers]]\ntype = \"dense\"\nout = 3\n",
        "name = \"flat\"\nclasses = 3\n[input]\ntime_steps = 4\nfeatures = 4\n\
         [[layers]]\ntype = \"conv1d\"\nout = 4\nkernel = 2\nstride = 2\n\
         [[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"flatten\"\n\
         [[layers]]\ntype = \"dense\"\nout = 3\n",
    ];

    /// What the blob and the checkpoint record about `model`'s data.
    fn records(model: &Sequential) -> (ExportInfo, Preprocess) {
        let f = model.arch.input.features;
        let names: Vec<String> = (0..f).map(|i| format!("f{i}")).collect();
        let info = ExportInfo {
            name: model.arch.name.clone(),
            feature_names: names.clone(),
            label_names: label_names(),
            mean: vec![0.0; f],
            std: vec![1.0; f],
            data_hash: [7; 32],
        };
        let pre = Preprocess {
            feature_names: names,
            label_names: LABEL_NAMES.iter().map(|s| (*s).to_string()).collect(),
            normalizer: Normalizer {
                mean: vec![0.0; f],
                std: vec![1.0; f],
            },
            data_sha256: hex(&[7; 32]),
            dataset: DatasetConfig::default(),
            split: SplitConfig::default(),
        };
        (info, pre)
    }

    /// `model`'s blob, calibrated on seeded random inputs; `None` when the format does not fit a layer.
    fn blob(model: &Sequential, config: &QuantConfig, format: WeightFormat) -> Option<Vec<u8>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let calibration =
            Array2::from_shape_fn((64, model.input_len()), |_| rng.random::<f32>() * 4.0 - 2.0);
        let (info, _) = records(model);
        let options = EncodeOptions {
            weight_format: format,
            target: Target::native(),
        };
        quant::static_quantize_with(model, calibration.view(), &info, config, &options)
            .ok()
            .map(|q| q.blob)
    }

    #[test]
    fn a_blob_matches_its_own_checkpoint_in_every_format_and_no_other() {
        let configs = [
            QuantConfig::default(),
            QuantConfig {
                backend: quant::config::Backend::Fpga,
                ..QuantConfig::default()
            },
        ];
        let formats = [
            WeightFormat::Auto,
            WeightFormat::Smallest,
            WeightFormat::Blocked,
            WeightFormat::DenseDot,
            WeightFormat::Sparse,
            WeightFormat::Columns,
            WeightFormat::Packed,
            WeightFormat::NM,
        ];
        let mut checked = 0;
        for arch in ARCHS {
            let arch = Architecture::from_toml_str(arch).unwrap();
            let plain = Sequential::new(arch.clone(), 1).unwrap();
            // Pruned 2:4 (so the N:M format applies) with masks kept.
            let mut pruned = plain.clone();
            ModelPruner::new(&mut pruned).nm_pruning(2, 4).unwrap();
            let other_seed = Sequential::new(arch, 2).unwrap();
            for model in [&plain, &pruned] {
                let (_, pre) = records(model);
                for config in &configs {
                    for format in formats {
                        let Some(bytes) = blob(model, config, format) else {
                            continue;
                        };
                        let loaded = tickq_core::Model::load(&bytes).unwrap();
                        let what = format!("{} {format:?} {:?}", model.arch.name, config.backend);
                        assert_eq!(check_blob_of(&loaded, model, &pre), Ok(()), "{what}");
                        checked += 1;
                        // Another training run of the same architecture, on the same data.
                        assert!(
                            matches!(
                                check_blob_of(&loaded, &other_seed, &pre),
                                Err(BlobMismatch::Weights { .. })
                            ),
                            "{what}"
                        );
                    }
                }
            }
            // One weight moved by a few quantization steps is caught, naming the layer and channel.
            let mut edited = plain.clone();
            let Some(crate::model::Layer::Dense(d)) = edited.layers.last_mut() else {
                panic!("the last layer is dense")
            };
            let max = d.weight.row(2).iter().fold(0.0f32, |m, v| m.max(v.abs()));
            d.weight[[2, 0]] += 0.05 * max;
            let name = d.name.clone();
            let bytes = blob(&edited, &configs[0], WeightFormat::Auto).unwrap();
            let loaded = tickq_core::Model::load(&bytes).unwrap();
            let (_, pre) = records(&plain);
            assert_eq!(
                check_blob_of(&loaded, &plain, &pre),
                Err(BlobMismatch::Weights {
                    layer: name,
                    channel: 2
                })
            );
        }
        assert!(checked >= 40, "{checked} blobs checked");
    }

    /// The library's `load_checkpoint` refuses what `tickq` refuses: a `preprocess.json` that does not fit the
    /// architecture, naming the file, the field and the index.
    #[test]
    fn load_checkpoint_checks_the_preprocess_record() {
        let dir = std::env::temp_dir().join(format!("tickq-pipeline-pre-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let model = Sequential::new(Architecture::from_toml_str(ARCHS[0]).unwrap(), 1).unwrap();
        let (_, mut pre) = records(&model);
        // `records` names the features `f0`, `f1`, ...; a real record has the dataset's names.
        pre.feature_names = pre.dataset.features.feature_names();
        let features = pre.feature_names.len();
        let model = {
            let mut arch = model.arch.clone();
            arch.input.features = features;
            Sequential::new(arch, 1).unwrap()
        };
        pre.normalizer = Normalizer {
            mean: vec![0.0; features],
            std: vec![1.0; features],
        };
        save_checkpoint(&dir, &model, &pre).unwrap();
        let (back, pre_back) = load_checkpoint(&dir).unwrap();
        assert_eq!((back, &pre_back), (model.clone(), &pre));
        pre.normalizer.std[1] = -1.0;
        save_checkpoint(&dir, &model, &pre).unwrap();
        let e = load_checkpoint(&dir).unwrap_err();
        assert!(
            matches!(
                &e,
                PipelineError::Checkpoint(CheckpointError::InvalidPreprocess {
                    field: "normalizer.std",
                    index: Some(1),
                    ..
                })
            ),
            "{e}"
        );
        assert!(
            e.to_string().starts_with(&format!(
                "{}: normalizer.std[1]: -1 is below 1e-6",
                dir.join("preprocess.json").display()
            )),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dynamic_blobs_match_their_checkpoint() {
        let model = Sequential::new(Architecture::from_toml_str(ARCHS[0]).unwrap(), 4).unwrap();
        let (info, pre) = records(&model);
        let q = quant::ModelQuantizer::new(&model, &info)
            .dynamic_quantize()
            .unwrap();
        let loaded = tickq_core::Model::load(&q.blob).unwrap();
        assert_eq!(check_blob_of(&loaded, &model, &pre), Ok(()));
    }

    #[test]
    fn a_blob_of_another_model_names_the_first_difference() {
        let archs: Vec<Architecture> = ARCHS
            .iter()
            .map(|a| Architecture::from_toml_str(a).unwrap())
            .collect();
        let model = Sequential::new(archs[0].clone(), 1).unwrap();
        let (_, pre) = records(&model);
        let bytes = blob(&model, &QuantConfig::default(), WeightFormat::Auto).unwrap();
        let loaded = tickq_core::Model::load(&bytes).unwrap();
        let field = |m: &Sequential, p: &Preprocess| match check_blob_of(&loaded, m, p) {
            Err(BlobMismatch::Field { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut renamed = model.clone();
        renamed.arch.name = "other".into();
        assert_eq!(field(&renamed, &pre), "model name");
        let e = check_blob_of(&loaded, &renamed, &pre).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the model name is `mlp` in the blob and `other` in the checkpoint"
        );
        let mut wider = archs[0].clone();
        wider.input.features = 12;
        let wider = Sequential::new(wider, 1).unwrap();
        assert_eq!(field(&wider, &pre), "input shape");
        let mut p = pre.clone();
        p.feature_names[5] = "g".into();
        assert_eq!(field(&model, &p), "feature 5");
        let mut p = pre.clone();
        p.label_names.pop();
        assert_eq!(field(&model, &p), "number of labels");
        let mut p = pre.clone();
        p.data_sha256 = hex(&[8; 32]);
        assert_eq!(field(&model, &p), "training data (SHA-256)");
        let mut deeper = archs[0].to_toml_string().unwrap();
        deeper = deeper.replace("out = 8", "out = 9");
        let deeper = Sequential::new(Architecture::from_toml_str(&deeper).unwrap(), 1).unwrap();
        assert_eq!(field(&deeper, &pre), "weighted layer 1");
    }
}

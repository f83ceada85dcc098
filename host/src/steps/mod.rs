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
pub use crate::preprocess::{InputRecord, Preprocess, VectorInputs};
use crate::prune::{self, FineTuneData, PruningPlan, StepReport};
use crate::quant::observer::Range;
use crate::quant::{self, ExportInfo, QuantConfig, QuantizedModel};
use crate::report::{
    Baseline, DataSummary, FloatSection, Int8Section, QuantSummary, RangeRow, Report,
};
use crate::train::{self, EpochReport, TrainConfig, TrainHistory};
pub use tickq_core::encode::{EncodeOptions, Target, WeightFormat};

mod blob_check;
mod error;
mod inspect;
mod predict;
mod store;
mod vectors;

pub use blob_check::{BlobMismatch, check_blob_file, check_blob_of, check_blob_of_record};
pub use error::PipelineError;
pub use inspect::{
    BlobInspection, CheckpointInspection, LayerRow, SHOWN_NAMES, inspect_blob, inspect_checkpoint,
    names_summary,
};
pub use predict::{
    AccuracySummary, Predictions, ReferenceSummary, RunSummary, predict_blob, predict_float,
    summarize_run, write_predictions,
};
pub use store::{StoreData, prepare_store, train_model_from_store};
pub use vectors::{
    InputSource, blob_layout, export_info_of, input_shape, load_checkpoint_inputs,
    quantize_dynamic_of, quantize_with_calibration, read_vectors, save_checkpoint_inputs,
    vector_inputs_for,
};

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
    /// Input rows read: trades, bars, quotes, or (for a book) the two-sided snapshots fed to the engine.
    pub trades: usize,
    /// Raw (unstandardized) splits.
    pub splits: Splits,
    /// Standardization fitted on the training split.
    pub normalizer: Normalizer,
    /// Dataset settings used.
    pub dataset: DatasetConfig,
    /// Split settings used.
    pub split: SplitConfig,
    /// What the reader noticed in the file (a reversed newest-first file, repeated rows), for the caller to
    /// show.
    pub read_notes: data::ReadNotes,
    /// What building the samples noticed (a book's skipped one-sided snapshots), one line each, for the caller
    /// to show.
    pub input_notes: Vec<String>,
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

    /// The warnings about the class shares of the three splits ([`data::label_warnings`]).
    pub fn label_warnings(&self) -> Vec<data::LabelWarning> {
        let s = &self.splits;
        data::label_warnings(
            &[
                ("train", &s.train.y),
                ("validation", &s.validation.y),
                ("test", &s.test.y),
            ],
            &s.train.label_names,
        )
    }

    /// The majority-class baseline: the most common training class and its share of the test split, the
    /// accuracy of a model that always says it.
    pub fn majority_baseline(&self) -> (usize, f64) {
        let s = &self.splits;
        eval::majority_baseline(&s.train.y, &s.test.y, s.train.label_names.len())
    }

    /// `accuracy` with the majority-class baseline beside it, as the one-line summaries show it:
    /// `accuracy 35.46 % (majority-class baseline 34.90 %, always `flat`)`.
    pub fn accuracy_with_baseline(&self, accuracy: f64) -> String {
        let (class, baseline) = self.majority_baseline();
        let name = self
            .splits
            .train
            .label_names
            .get(class)
            .map_or("?", String::as_str);
        format!(
            "accuracy {:.2} % (majority-class baseline {:.2} %, always `{name}`)",
            100.0 * accuracy,
            100.0 * baseline
        )
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
    let input = &dataset.input;
    let market = || data::MarketDatasetConfig {
        market: input.market(),
        labels: dataset.labels,
        time_steps: dataset.time_steps,
    };
    let source = display_source(path);
    let (ds, rows, read_notes, notes) = match input.kind {
        data::DataInput::Trades => {
            let loaded = data::load_trades_with(path, &dataset.read)?;
            let sha256 = data::file_sha256(path)?;
            let mut data = prepare_from_trades(&loaded.trades, source, sha256, dataset, split)?;
            data.read_notes = loaded.notes;
            return Ok(data);
        }
        data::DataInput::Bars => {
            let loaded = data::load_bars_with(path, &dataset.read)?;
            let rows = data::MarketRows::Bars(&loaded.rows);
            let ds = data::build_market_dataset(rows, &market())?;
            (ds, loaded.rows.len(), loaded.notes, Vec::new())
        }
        data::DataInput::Quotes => {
            let loaded = data::load_quotes_with(path, &dataset.read)?;
            let rows = data::MarketRows::Quotes(&loaded.rows);
            let ds = data::build_market_dataset(rows, &market())?;
            (ds, loaded.rows.len(), loaded.notes, Vec::new())
        }
        data::DataInput::Book => {
            let opts = input.book.options(&input.market)?;
            let replay = data::load_book(path, input.book.trades.as_deref(), &opts)?;
            let built = data::build_book_dataset(&replay.events, &market())?;
            let notes = built.notes(&source);
            (
                built.dataset,
                built.snapshots,
                data::ReadNotes::default(),
                notes,
            )
        }
    };
    let sha256 = data::file_sha256(path)?;
    let mut data = prepare_from_dataset(ds, rows, source, sha256, dataset, split)?;
    data.read_notes = read_notes;
    data.input_notes = notes;
    Ok(data)
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
    prepare_from_dataset(ds, trades.len(), source, sha256, dataset, split)
}

/// The split and standardization of samples built from `rows` input rows (trades, bars, quotes or book
/// snapshots): the one path every input kind ends in.
fn prepare_from_dataset(
    ds: data::Dataset,
    rows: usize,
    source: String,
    sha256: [u8; 32],
    dataset: &DatasetConfig,
    split: Option<&SplitConfig>,
) -> Result<PreparedData, PipelineError> {
    let split = split
        .copied()
        .unwrap_or_else(|| SplitConfig::for_dataset(&ds));
    let splits = data::chronological_split(&ds, &split)?;
    let normalizer = Normalizer::fit(&splits.train);
    Ok(PreparedData {
        source,
        sha256,
        training_sha256: sha256,
        trades: rows,
        splits,
        normalizer,
        dataset: dataset.clone(),
        split,
        read_notes: data::ReadNotes::default(),
        input_notes: Vec::new(),
    })
}

/// The data path as shown in reports: relative to the workspace for the
/// bundled default, as given otherwise.
fn display_source(path: &Path) -> String {
    if data::is_default_data_path(path) {
        format!("{} (bundled)", data::BUNDLED_DATA_NAME)
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
/// Checkpoint errors (the preprocessing record's naming the file and field), [`PipelineError::NoPreprocess`] when
/// the checkpoint has no `preprocess.json`, and [`PipelineError::VectorCheckpoint`] for a checkpoint fed
/// vectors from files (see [`load_checkpoint_inputs`]).
pub fn load_checkpoint(dir: &Path) -> Result<(Sequential, Preprocess), PipelineError> {
    match load_checkpoint_inputs(dir)? {
        (model, InputRecord::Trades(pre)) => Ok((model, *pre)),
        (_, InputRecord::Vectors(_)) => Err(PipelineError::VectorCheckpoint {
            checkpoint: dir.to_path_buf(),
            hint: "this command rebuilds its data from a trade file; `tickq quantize --calibration FILE`, \
                   `tickq eval --inputs FILE` and `tickq run --inputs FILE` take vectors from files \
                   (docs/BYO_MODEL.md)",
        }),
    }
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
    let info = export_info(model, data);
    let sample = calibration_set(data, config);
    quantize_calibrated(model, &info, sample.view(), config, options)
}

/// Quantizes `model` (its masks applied) on a standardized calibration set: what [`quantize_model_with`] and
/// [`quantize_with_calibration`] share.
fn quantize_calibrated(
    model: &Sequential,
    info: &ExportInfo,
    calibration: ArrayView2<'_, f32>,
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
    Ok(quant::static_quantize_with(
        model,
        calibration,
        info,
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
        feature_spec: feature_spec(&data.dataset, &data.splits.train.feature_names),
    }
}

/// The spec of the data set's features (trades, bars or book, as its input says) when its column names are
/// `names` (the model reads exactly those features); `None` otherwise, for example for an imported model whose
/// inputs are not tickq's features.
fn feature_spec(
    dataset: &DatasetConfig,
    names: &[String],
) -> Option<tickq_core::features::FeatureSpec> {
    let spec = match dataset.input.kind {
        data::DataInput::Trades => dataset.features.to_spec().ok()?,
        _ => dataset.input.market().checked_spec().ok()?,
    };
    let mut same = spec.feature_count() == names.len();
    let mut i = 0usize;
    spec.for_each_feature(|n| {
        same &= names.get(i).is_some_and(|name| *name == n.to_string());
        i += 1;
    });
    same.then_some(spec)
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
        warnings: data.label_warnings(),
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
    /// The dataset settings of the data the blob was calibrated on (absent in sidecars written before they
    /// were recorded), which `tickq export --vectors` and `tickq bench --data` rebuild the test split with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetConfig>,
    /// The split settings of that data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitConfig>,
}

/// The data settings that rebuild the samples a blob was made for: see [`blob_data_settings`].
#[derive(Debug, Clone, PartialEq)]
pub struct BlobDataSettings {
    /// The dataset settings.
    pub dataset: DatasetConfig,
    /// The split settings; `None`: the default for the dataset ([`SplitConfig::for_dataset`]).
    pub split: Option<SplitConfig>,
    /// Whether the labels and split came from the blob's sidecar (else they are the defaults).
    pub from_sidecar: bool,
}

/// The data settings of the blob at `path`: the dataset and split its sidecar (`model.quant.json`) records
/// when it has them, with the features of the blob's own feature spec when it carries one and the window length
/// of the blob's input; without a sidecar, the blob's feature spec and window with the default labels and split.
///
/// # Errors
///
/// [`PipelineError::JsonRead`] for a sidecar that exists but does not parse.
pub fn blob_data_settings(
    model: &tickq_core::Model<'_>,
    path: &Path,
) -> Result<BlobDataSettings, PipelineError> {
    let sidecar = QuantSidecar::read(path)?;
    let (mut dataset, split, from_sidecar) = match sidecar {
        Some(QuantSidecar {
            dataset: Some(d),
            split,
            ..
        }) => (d, split, true),
        _ => (DatasetConfig::default(), None, false),
    };
    dataset.time_steps = model.input_shape().0;
    // A bar or book spec is the sidecar's `input` settings (the blob does not carry the replay settings).
    if let Some(spec) = model
        .feature_spec()
        .filter(|s| s.input.kind == tickq_core::features::InputKind::Trades)
    {
        dataset.features = data::FeatureConfig::from_spec(&spec);
    }
    Ok(BlobDataSettings {
        dataset,
        split,
        from_sidecar,
    })
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

/// Inputs for `tickq bench`: the test split of `path`, built with the blob's data `settings`
/// ([`blob_data_settings`]), when its features fit the blob, otherwise seeded pseudo-random
/// standard-normal-like features.
/// Returns the inputs and a description of where they came from.
///
/// # Errors
///
/// Data errors other than a feature-count mismatch.
pub fn bench_inputs(
    model: &tickq_core::Model<'_>,
    path: &Path,
    settings: &BlobDataSettings,
) -> Result<(Array2<f32>, String), PipelineError> {
    let (time_steps, features) = model.input_shape();
    let names: Vec<&str> = model.metadata().feature_names().collect();
    let data = prepare_data(path, &settings.dataset, settings.split.as_ref())?;
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

#[cfg(test)]
mod tests;

//! The steps for checkpoints of either input kind, and for models fed vectors from files (docs/BYO_MODEL.md):
//! load a checkpoint with its [`InputRecord`], read input files for it, and quantize with a calibration set
//! taken from a file.

use std::path::Path;

use ndarray::ArrayView2;

use super::{PipelineError, feature_spec, unhex32};
use crate::checkpoint;
use crate::data::vectors::{self, InputShape, VectorSet};
use crate::model::{Architecture, Sequential};
use crate::preprocess::InputRecord;
use crate::quant::{self, ExportInfo, QuantConfig, QuantizedModel};
use tickq_core::encode::EncodeOptions;

/// Loads a checkpoint and its input record, whichever kind it is ([`InputRecord::read`]).
///
/// # Errors
///
/// As [`super::load_checkpoint`].
pub fn load_checkpoint_inputs(dir: &Path) -> Result<(Sequential, InputRecord), PipelineError> {
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
    let record = InputRecord::read(&path, &model.arch)?;
    Ok((model, record))
}

/// Saves `model` with its input record into `dir` (a trade record exactly as [`super::save_checkpoint`]
/// writes it).
///
/// # Errors
///
/// Checkpoint I/O errors.
pub fn save_checkpoint_inputs(
    dir: &Path,
    model: &Sequential,
    record: &InputRecord,
) -> Result<(), PipelineError> {
    let value = match record {
        InputRecord::Trades(p) => return super::save_checkpoint(dir, model, p),
        InputRecord::Vectors(v) => {
            serde_json::to_value(v).map_err(|source| PipelineError::JsonWrite {
                what: "preprocess.json",
                source,
            })?
        }
    };
    checkpoint::save_checkpoint(dir, model, Some(&value))?;
    Ok(())
}

/// The input a file is read for, for a model of `arch` with input record `record`.
pub fn input_shape<'a>(arch: &Architecture, record: &'a InputRecord) -> InputShape<'a> {
    InputShape {
        time_steps: arch.input.time_steps,
        features: arch.input.features,
        layout: record.layout(),
        names: record.input_names(),
        classes: arch.classes,
    }
}

/// Where input vectors come from: the file, the tensor of a safetensors file, a labels file, and the rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct InputSource<'a> {
    /// The inputs file (`.npy`, `.safetensors`, `.csv`, `.parquet`).
    pub path: Option<&'a Path>,
    /// The tensor of a safetensors inputs file (default: the only one, `inputs` or `x`).
    pub tensor: Option<&'a str>,
    /// A separate labels file (default: the inputs file's `label` column, or none).
    pub labels: Option<&'a Path>,
    /// The rows to take, `start..end` (0-based, end excluded); `None`: all.
    pub rows: Option<(usize, usize)>,
}

/// Reads the vectors `source` names for a model taking `shape`: the inputs, the labels (from the labels file
/// over the inputs file's own), the row selection.
///
/// # Errors
///
/// [`PipelineError::Vectors`] naming the file; [`vectors::VectorError::Rows`] when a labels file has another
/// number of rows than the inputs.
pub fn read_vectors(
    path: &Path,
    source: &InputSource<'_>,
    shape: &InputShape<'_>,
) -> Result<VectorSet, PipelineError> {
    let mut set = vectors::read_inputs(path, source.tensor, shape)?;
    if let Some(labels_path) = source.labels {
        let labels = vectors::read_labels(labels_path, None, shape.classes)?;
        if labels.len() != set.x.nrows() {
            return Err(vectors::VectorError::Rows {
                path: labels_path.to_path_buf(),
                found: labels.len(),
                expected: set.x.nrows(),
                what: "labels",
            }
            .into());
        }
        set.labels = Some(labels);
    }
    if let Some((start, end)) = source.rows {
        set = vectors::select_rows(&set, start, end)?;
    }
    Ok(set)
}

/// What a blob records about `model` with input record `record`: the names, the standardization, the data
/// hash (all zero for a model fed vectors, which tickq did not train on a file) and, for market features, the
/// feature spec.
pub fn export_info_of(model: &Sequential, record: &InputRecord) -> ExportInfo {
    let normalizer = record.normalizer();
    let (data_hash, spec) = match record {
        InputRecord::Trades(p) => (
            unhex32(&p.data_sha256).unwrap_or([0; 32]),
            feature_spec(&p.dataset, &p.feature_names),
        ),
        InputRecord::Vectors(_) => ([0; 32], None),
    };
    ExportInfo {
        name: model.arch.name.clone(),
        feature_names: record.input_names().to_vec(),
        label_names: record.label_names().to_vec(),
        mean: normalizer.mean.clone(),
        std: normalizer.std.clone(),
        data_hash,
        feature_spec: spec,
    }
}

/// Quantizes `model` calibrating on `calibration`, raw rows as the blob takes them (`T*F` time-major values
/// per row, before standardization), standardized here with the record's normalizer; at most
/// `config.calibration_samples` of the rows are used, the first ones.
///
/// # Errors
///
/// Quantization errors naming the layer or setting.
pub fn quantize_with_calibration(
    model: &Sequential,
    record: &InputRecord,
    calibration: ArrayView2<'_, f32>,
    config: &QuantConfig,
    options: &EncodeOptions,
) -> Result<QuantizedModel, PipelineError> {
    let info = export_info_of(model, record);
    let normalized = record.normalizer().transform(calibration);
    let mut q = super::quantize_calibrated(model, &info, normalized.view(), config, options)?;
    record_layout(&mut q, record);
    Ok(q)
}

/// Records a channels-first layout in the blob's header ([`tickq_core::encode::set_input_layout`]); a
/// time-major blob is left as encoded.
fn record_layout(q: &mut QuantizedModel, record: &InputRecord) {
    let layout = record.layout();
    if layout == vectors::InputLayout::ChannelsFirst {
        let done = tickq_core::encode::set_input_layout(&mut q.blob, layout.into());
        debug_assert!(done, "an encoded blob has a header");
    }
}

/// The layout a blob records (its header flag), as the input readers take it.
pub fn blob_layout(model: &tickq_core::Model<'_>) -> vectors::InputLayout {
    model.input_layout().into()
}

/// [`quant::ModelQuantizer::dynamic_quantize`] of a model of either input kind (no calibration data).
///
/// # Errors
///
/// Quantization errors naming the first layer dynamic quantization does not support.
pub fn quantize_dynamic_of(
    model: &Sequential,
    record: &InputRecord,
) -> Result<QuantizedModel, PipelineError> {
    let info = export_info_of(model, record);
    let mut q = quant::ModelQuantizer::new(model, &info).dynamic_quantize()?;
    record_layout(&mut q, record);
    Ok(q)
}

/// The input record `tickq import` writes for a model fed vectors: `names` (default `x0` to `x{F-1}`) for the
/// architecture's `F` features (or channels), `layout`, and `label_names` (default `class0` to
/// `class{K-1}`), with the identity standardization.
///
/// # Errors
///
/// [`PipelineError::ImportNames`] naming where the names came from (`names_from`, `label_names_from`) when
/// their count is not the architecture's, and [`PipelineError::Checkpoint`] for names the record refuses
/// (empty, too long, repeated).
pub fn vector_inputs_for(
    arch: &Architecture,
    names: Option<(Vec<String>, String)>,
    layout: vectors::InputLayout,
    label_names: Option<(Vec<String>, String)>,
) -> Result<crate::preprocess::VectorInputs, PipelineError> {
    let features = arch.input.features;
    let take =
        |given: Option<(Vec<String>, String)>, expected: usize, what, prefix: &str| match given {
            None => Ok((0..expected).map(|i| format!("{prefix}{i}")).collect()),
            Some((names, _)) if names.len() == expected => Ok(names),
            Some((names, given)) => Err(PipelineError::ImportNames {
                given,
                found: names.len(),
                expected,
                what,
            }),
        };
    let what = match layout {
        vectors::InputLayout::TimeMajor => "features per time step",
        vectors::InputLayout::ChannelsFirst => "channels",
    };
    let input_names = take(names, features, what, "x")?;
    let label_names = take(label_names, arch.classes, "classes", "class")?;
    let record = crate::preprocess::VectorInputs::identity(input_names, layout, label_names);
    record.check(arch).map_err(|(field, index, problem)| {
        crate::checkpoint::CheckpointError::InvalidPreprocess {
            path: checkpoint::PREPROCESS_FILE.into(),
            field,
            index,
            problem: Box::new(problem),
        }
    })?;
    Ok(record)
}

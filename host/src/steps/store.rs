//! The steps of training from a sample store (`tickq train --store DIR`): build or reuse the store, split it,
//! fit the normalizer by a streaming pass, train and evaluate chunk by chunk. See [`crate::data::SampleStore`].

use std::ops::Range;
use std::path::Path;

use super::{PipelineError, Preprocess, hex};
use crate::data::{self, DatasetConfig, Normalizer, SampleStore, SplitConfig, StoreSamples};
use crate::model::{Architecture, Sequential};
use crate::train::{self, EpochReport, SampleSource, TrainConfig, TrainHistory};

/// A sample store opened for a run, with its split and the normalizer of its training part.
#[derive(Debug)]
pub struct StoreData {
    /// The store.
    pub store: SampleStore,
    /// The data file, for reports.
    pub source: String,
    /// The dataset settings.
    pub dataset: DatasetConfig,
    /// The split settings.
    pub split: SplitConfig,
    /// The train, validation and test sample ranges.
    pub ranges: [Range<usize>; 3],
    /// Standardization fitted on the training part.
    pub normalizer: Normalizer,
    /// Samples per chunk when reading.
    pub chunk: usize,
}

impl StoreData {
    /// Part `i` (0 train, 1 validation, 2 test), standardized.
    #[must_use]
    pub fn part(&self, i: usize) -> StoreSamples<'_> {
        StoreSamples::new(
            &self.store,
            self.ranges[i].clone(),
            &self.normalizer,
            self.chunk,
        )
    }

    /// The preprocessing record for a checkpoint.
    #[must_use]
    pub fn preprocess(&self) -> Preprocess {
        Preprocess {
            feature_names: self.dataset.features.feature_names(),
            label_names: data::label_names(),
            normalizer: self.normalizer.clone(),
            data_sha256: hex(&self.store.header.data_sha256),
            dataset: self.dataset.clone(),
            split: self.split,
        }
    }
}

/// Builds (or reuses, see [`data::open_or_build`]) the store of `path` in `dir`, splits it (`split`, or the
/// default for the dataset) and fits the normalizer on the training part in a streaming pass. `note` gets the
/// notes (a store rebuilt, and why), `progress` the trades read while building.
///
/// # Errors
///
/// The store's and the data file's errors, and [`data::DataError::TooFewSamples`] for a split with an empty
/// part.
pub fn prepare_store(
    path: &Path,
    dataset: &DatasetConfig,
    split: Option<&SplitConfig>,
    dir: &Path,
    note: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(u64),
) -> Result<StoreData, PipelineError> {
    let mut store = data::open_or_build(path, dataset, dir, note, progress)?;
    store.set_feature_names(dataset.features.feature_names());
    let split = split.copied().unwrap_or_else(|| store.default_split());
    let ranges = store.split(&split)?;
    let chunk = data::DEFAULT_CHUNK_SAMPLES;
    let normalizer = store.fit_normalizer(ranges[0].clone(), chunk)?;
    Ok(StoreData {
        store,
        source: path.display().to_string(),
        dataset: dataset.clone(),
        split,
        ranges,
        normalizer,
        chunk,
    })
}

/// Trains a model of `arch` from the store's training part, validating on its validation part
/// ([`train::train_from_store`]); returns it with its history and its test accuracy, read chunk by chunk.
///
/// # Errors
///
/// Model and training errors, and the store's read errors.
pub fn train_model_from_store(
    arch: Architecture,
    data: &StoreData,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Sequential, TrainHistory, f32), PipelineError> {
    let mut model = Sequential::new(arch, config.seed)?;
    let (train_part, val_part, test_part) = (data.part(0), data.part(1), data.part(2));
    let history = train::train_from_store(&mut model, &train_part, &val_part, config, on_epoch)?;
    let (_, accuracy) = train::evaluate_source(&model, SampleSource::Store(&test_part), None)?;
    Ok((model, history, accuracy))
}

//! The settings a user gives, each defined once for the command line and the config files.
//!
//! One struct per concern: [`DataOptions`] (how samples are built: [`LabelOptions`], how they are labelled, and
//! [`FeatureOptions`], which features over which windows), [`TrainOptions`] (how a model is trained, for `tickq train`, `tickq distill` and the
//! pipeline's `train` and `distill` stages), [`DistillOptions`] (the soft-target loss), [`QuantOptions`] (static
//! quantization: `--quant-config` files, `tickq quantize` and `quantize` stages), [`EncodeChoice`] (the blob's
//! weight format and target), [`PruneOptions`] (`tickq prune` and `prune` stages) and [`ExportSettings`]
//! (`tickq export` and `export` stages) and [`ReadOptions`] (how a data file is read: `--data`'s companions and
//! `[data.read]`). Each field is an `Option`: absent means the default, which lives in one
//! place (the resolved config's `Default`, or a named constant). Fields with a fixed set of values are enums
//! declared with [`choice!`](crate::choice), so the command line, the TOML files and `--help` share one list of
//! names.
//!
//! The structs read TOML through serde with `deny_unknown_fields`; with the `cli` feature they are also clap
//! argument groups. A pipeline stage's flat table is split over them by [`fields`].

mod choice;
#[cfg(feature = "cli")]
pub mod cli;
mod data;
mod error;
mod export;
pub mod fields;
mod prune;
mod quant;
pub mod read;
mod train;

pub use choice::ChoiceError;
pub use data::{DataOptions, FeatureOptions, InputOptions, LabelOptions};
pub use error::OptionError;
pub use export::{ExportSettings, VectorInputChoice};
pub use prune::{PruneMethodName, PruneOptions, ScheduleName};
pub use quant::{EncodeChoice, ObserverName, QuantOptions};
pub use read::ReadOptions;
pub use train::{ClassWeighting, DistillOptions, OptimizerKind, TrainOptions};

/// `value` checked against `range`, or [`OptionError::Range`] naming `field`.
pub(crate) fn whole(
    field: &'static str,
    range: crate::limits::Count,
    value: Option<usize>,
) -> Result<Option<usize>, OptionError> {
    value
        .map(|v| {
            range
                .check_usize(v)
                .map_err(|source| OptionError::Range { field, source })
        })
        .transpose()
}

/// `value` checked against `range`, or [`OptionError::Range`] naming `field`.
pub(crate) fn real(
    field: &'static str,
    range: crate::limits::Real,
    value: Option<f32>,
) -> Result<Option<f32>, OptionError> {
    value
        .map(|v| {
            range
                .check_f32(v)
                .map_err(|source| OptionError::Range { field, source })
        })
        .transpose()
}

/// [`real`] for an `f64`.
pub(crate) fn real_f64(
    field: &'static str,
    range: crate::limits::Real,
    value: Option<f64>,
) -> Result<Option<f64>, OptionError> {
    value
        .map(|v| {
            range
                .check(v)
                .map_err(|source| OptionError::Range { field, source })
        })
        .transpose()
}

/// The numeric fields of an options struct with their ranges: whole numbers, then reals. The pipeline checks a
/// stage's TOML values against them before serde reads the table, so `epochs = -1` or `epochs = 2.5` names the
/// field and its range.
#[derive(Debug, Clone, Copy)]
pub struct NumericFields {
    /// Whole-number fields.
    pub whole: &'static [(&'static str, crate::limits::Count)],
    /// Real-number fields.
    pub real: &'static [(&'static str, crate::limits::Real)],
}

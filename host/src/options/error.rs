//! Why a setting was refused.

use crate::limits::RangeError;

/// A setting that is out of range or does not fit the others; [`Display`](std::fmt::Display) names the field as
/// config files write it (the command line's `--flag` is the same name with dashes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptionError {
    /// A number outside its range in [`crate::limits`].
    #[error("field `{field}`: {source}")]
    Range {
        /// The field.
        field: &'static str,
        /// The value and the range.
        #[source]
        source: RangeError,
    },
    /// A field that only some value of another field uses was given without it.
    #[error("field `{field}`: only {needs} uses it (this run has {actual})")]
    NeedsOther {
        /// The field given.
        field: &'static str,
        /// The setting it needs, as `optimizer = sgd`.
        needs: &'static str,
        /// The setting the run has instead.
        actual: String,
    },
    /// A field the chosen method needs is missing.
    #[error("missing field `{field}` ({why})")]
    Missing {
        /// The field.
        field: &'static str,
        /// What needs it.
        why: String,
    },
    /// The N:M pruning group keeps more weights than it has.
    #[error("fields `n`, `m`: n = {n} is above m = {m}; N:M keeps n of every m weights")]
    NAboveM {
        /// Weights kept per group.
        n: usize,
        /// Group size.
        m: usize,
    },
    /// The training settings do not form a valid run.
    #[error(transparent)]
    Train(Box<crate::train::TrainError>),
    /// The distillation settings are out of range.
    #[error("fields `temperature`, `alpha`: {0}")]
    Distill(#[source] crate::distill::DistillError),
    /// The pruning schedule is impossible.
    #[error("fields `amount`, `initial`, `steps`: {0}")]
    Schedule(#[source] crate::prune::PruneError),
    /// An export file name that is not a plain name in the output directory.
    #[error(
        "field `file`: `{}` must be a plain file name (no directories, not stage.json or metrics.json)",
        crate::limits::excerpt(.0)
    )]
    FileName(String),
}

impl From<crate::train::TrainError> for OptionError {
    fn from(e: crate::train::TrainError) -> Self {
        OptionError::Train(Box::new(e))
    }
}

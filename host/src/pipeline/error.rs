//! What can stop a pipeline.

use std::path::PathBuf;

use crate::steps::PipelineError;

/// Everything that can stop a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StagesError {
    /// The config file does not read, parse or check.
    #[error("{file}: {source}")]
    Config {
        /// The config file.
        file: String,
        /// What is wrong, and where.
        #[source]
        source: Box<ConfigError>,
    },
    /// The `[data]` section's trades could not be read or turned into samples.
    #[error("[data]: {0}")]
    Data(#[source] Box<PipelineError>),
    /// A stage failed while running.
    #[error("stage `{stage}` ({kind}): {source}")]
    Stage {
        /// The stage's name.
        stage: String,
        /// Its kind.
        kind: &'static str,
        /// What failed.
        #[source]
        source: Box<PipelineError>,
    },
    /// The output directory (or a parent) exists and is not a directory.
    #[error(transparent)]
    OutputPath(#[from] crate::paths::OutputPathError),
    /// A report file could not be written.
    #[error("{}: {source}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The comparison could not be serialized.
    #[error("{}: {source}", path.display())]
    OutputJson {
        /// The file it was for.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A chart could not be drawn.
    #[error("{}: {reason}", path.display())]
    Chart {
        /// The file it was for.
        path: PathBuf,
        /// The plotting library's message.
        reason: String,
    },
}

/// What is wrong in a pipeline config file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{0}")]
    Read(#[source] std::io::Error),
    /// The file is not TOML, or its top level or `[data]` table has an unknown key or a wrong value.
    #[error("{}", crate::limits::toml_message(.0))]
    Syntax(#[source] Box<toml::de::Error>),
    /// `[data.split]` leaves no training, validation or test data.
    #[error("[data.split]: train and validation must be positive and sum to less than 1")]
    SplitFractions,
    /// The `[data]` settings are out of range.
    #[error("[data]: {0}")]
    Data(#[source] crate::data::DataError),
    /// The file has no stage.
    #[error("no [[stages]]: a pipeline needs at least one stage")]
    NoStages,
    /// A stage is wrong.
    #[error("{stage}: {problem}")]
    Stage {
        /// Which stage.
        stage: StageAt,
        /// What is wrong with it.
        #[source]
        problem: Box<StageProblem>,
    },
}

/// A stage of a config file, as far as it is known when the problem is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageAt {
    /// Its place in the file (1 for the first), before its name is read.
    Position(usize),
    /// Its name, before its kind is read.
    Name(String),
    /// Its name and kind.
    Named {
        /// The stage's name.
        name: String,
        /// Its kind, as written.
        kind: String,
    },
}

impl std::fmt::Display for StageAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StageAt::Position(n) => write!(f, "stage {n}"),
            StageAt::Name(name) => write!(f, "stage `{name}`"),
            StageAt::Named { name, kind } => write!(f, "stage `{name}` ({kind})"),
        }
    }
}

/// What is wrong with a stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageProblem {
    /// A setting of one of the shared option structs is out of range or does not fit the others.
    #[error(transparent)]
    Option(#[from] crate::options::OptionError),
    /// A field's value is wrong.
    #[error("field `{field}`: {reason}")]
    Field {
        /// The field.
        field: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// Two fields do not go together.
    #[error("fields {}: {reason}", .fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "))]
    Fields {
        /// The fields.
        fields: &'static [&'static str],
        /// What is wrong.
        reason: String,
    },
    /// A field that must be a string is not.
    #[error("field `{0}` must be a string")]
    NotAString(&'static str),
    /// A required field is missing.
    #[error("missing field `{field}`{hint}")]
    Missing {
        /// The field.
        field: &'static str,
        /// What it may be, in parentheses, or nothing.
        hint: &'static str,
    },
    /// A distill stage names no student or two.
    #[error(
        "give exactly one of `student` (an architecture) and `student_from` (an earlier model stage)"
    )]
    StudentChoice,
    /// The table does not read as the stage's settings (an unknown or missing key, a value of the wrong type),
    /// in serde's words.
    #[error("{0}")]
    Table(String),
}

//! What can stop a pipeline.

use std::path::PathBuf;

use crate::steps::PipelineError;

/// Everything that can stop a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StagesError {
    /// The config file does not read, parse or check; the message names the stage and field.
    #[error("{file}: {message}")]
    Config {
        /// The config file.
        file: String,
        /// What is wrong, starting with the stage and field.
        message: String,
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

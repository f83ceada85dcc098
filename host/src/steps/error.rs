//! [`PipelineError`]: everything that can stop a step, and whether it is the user's input or tickq's failure.

use super::*;

/// Everything that can stop the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading or preparing the trade data failed.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// Reading or replaying an order-by-order book file failed (boxed: the error names file, line, column,
    /// field and text, and would make every `PipelineError` larger).
    #[error(transparent)]
    Book(Box<data::BookError>),
    /// Building or reading a sample store failed (boxed, as `Book`).
    #[error(transparent)]
    Store(Box<data::StoreError>),
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
    /// An ONNX model file could not be imported (boxed: the error names the file, the node and what is
    /// supported, and would make every `PipelineError` larger).
    #[error(transparent)]
    Onnx(Box<crate::onnx::OnnxError>),
    /// Reading input vectors, labels or reference logits from a file failed.
    #[error(transparent)]
    Vectors(#[from] data::vectors::VectorError),
    /// A calibration file was given to dynamic quantization, which reads none.
    #[error(
        "--calibration is for static quantization: --mode dynamic chooses its activation scales at every inference and reads no calibration data"
    )]
    DynamicCalibration,
    /// `tickq import` was named no model (clap normally refuses this first).
    #[error("tickq import needs a model: an ONNX file, or --weights FILE and --arch FILE")]
    NoImportModel,
    /// A command that rebuilds market data was given a checkpoint fed vectors from files.
    #[error(
        "{}: its input is vectors from files (preprocess.json has \"kind\": \"vectors\"), not market data: {hint}",
        checkpoint.display()
    )]
    VectorCheckpoint {
        /// The checkpoint directory.
        checkpoint: PathBuf,
        /// What to do instead.
        hint: &'static str,
    },
    /// A checkpoint fed vectors from files needs them, and no file was named.
    #[error("{what} reads vectors from files: give them with {flag}")]
    NeedsInputs {
        /// The checkpoint or blob.
        what: String,
        /// The option that names the file.
        flag: &'static str,
    },
    /// The input names or label names given to `tickq import` do not fit the architecture.
    #[error("{given} gives {found} names, but the architecture takes {expected} {what}")]
    ImportNames {
        /// Where the names came from (`--input-names`, `the header of FILE`).
        given: String,
        /// Names given.
        found: usize,
        /// Names the architecture needs.
        expected: usize,
        /// What the architecture counts (`features per time step`, `classes`).
        what: &'static str,
    },
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
    /// A setting is out of range or does not fit the others.
    #[error(transparent)]
    Option(Box<crate::options::OptionError>),
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
    /// A replay of trades through the device path could not run.
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
    /// The device path and the host pipeline disagree: a bug in tickq.
    #[error(
        "{mismatches} of {compared} predictions differ between the device path and the host pipeline (expected 0)"
    )]
    ReplayMismatch {
        /// Predictions that differ.
        mismatches: usize,
        /// Predictions compared.
        compared: usize,
    },
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

impl From<crate::options::OptionError> for PipelineError {
    fn from(e: crate::options::OptionError) -> Self {
        PipelineError::Option(Box::new(e))
    }
}

impl From<data::StoreError> for PipelineError {
    fn from(e: data::StoreError) -> Self {
        PipelineError::Store(Box::new(e))
    }
}

impl From<data::BookError> for PipelineError {
    fn from(e: data::BookError) -> Self {
        PipelineError::Book(Box::new(e))
    }
}

impl From<crate::onnx::OnnxError> for PipelineError {
    fn from(e: crate::onnx::OnnxError) -> Self {
        PipelineError::Onnx(Box::new(e))
    }
}

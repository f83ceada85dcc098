//! The error type of the model module.

use std::path::PathBuf;

/// Everything that can go wrong while reading an architecture, building a model,
/// moving weights in and out of it, or feeding it data.
///
/// Each variant names the file, layer or tensor it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The architecture file could not be read.
    #[error("cannot read architecture file {}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The architecture text is not valid TOML or JSON, or does not have the expected fields.
    #[error("{origin}: {message}")]
    Parse {
        /// The file name, or `<string>` for text that did not come from a file.
        origin: String,
        /// The parser's message, which includes the line and column.
        message: String,
    },
    /// The architecture parses but describes an impossible or unsupported network.
    #[error("{}", describe_invalid(origin, layer, reason))]
    InvalidArch {
        /// The file name, when the architecture came from a file.
        origin: Option<String>,
        /// The layer index and a short description such as `dense "fc2"`; `None` for model-wide problems.
        layer: Option<(usize, String)>,
        /// What is wrong, and where possible how to fix it.
        reason: String,
    },
    /// The architecture could not be written as TOML.
    #[error("cannot write the architecture as TOML")]
    SerializeToml(#[source] toml::ser::Error),
    /// The architecture could not be written as JSON.
    #[error("cannot write the architecture as JSON")]
    SerializeJson(#[source] serde_json::Error),
    /// A state dict does not have exactly the tensor names the model expects.
    #[error("{}", describe_names(missing, unexpected))]
    TensorNames {
        /// Names the model needs that the state dict lacks.
        missing: Vec<String>,
        /// Names in the state dict that the model has no use for.
        unexpected: Vec<String>,
    },
    /// A tensor has the wrong shape.
    #[error("tensor {name}: expected shape {expected:?}, got {got:?}")]
    TensorShape {
        /// The tensor name, such as `fc1.weight`.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape that was supplied.
        got: Vec<usize>,
    },
    /// A tensor's data length does not match the product of its declared shape.
    #[error("tensor {name}: shape {shape:?} needs {} values, got {len}", shape.iter().product::<usize>())]
    TensorLength {
        /// The tensor name.
        name: String,
        /// The declared shape.
        shape: Vec<usize>,
        /// The number of values supplied.
        len: usize,
    },
    /// A tensor holds NaN or an infinity.
    #[error("tensor {name}: value at flat index {index} is not finite ({value})")]
    NonFinite {
        /// The tensor name.
        name: String,
        /// The row-major index of the first bad value.
        index: usize,
        /// The bad value.
        value: f32,
    },
    /// A pruning mask does not fit its weight or holds something other than 0 and 1.
    #[error("pruning mask {name}: {reason}")]
    Mask {
        /// The tensor name, such as `fc1.weight_mask`.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The input matrix does not have `time_steps * features` columns.
    #[error("model input needs {expected} columns (time_steps x features), got {got}")]
    InputWidth {
        /// `time_steps * features` of the architecture.
        expected: usize,
        /// The number of columns supplied.
        got: usize,
    },
    /// A target label is not a valid class index.
    #[error("target {index} is class {label}, but the model has only {classes} classes")]
    LabelOutOfRange {
        /// The position of the label in the target slice.
        index: usize,
        /// The label value.
        label: u8,
        /// The number of classes.
        classes: usize,
    },
    /// The class weights do not fit the logits.
    #[error("class weights: {0}")]
    ClassWeights(ClassWeightsProblem),
    /// An optimizer hyper-parameter is out of range.
    #[error("invalid optimizer setting: {0}")]
    Optimizer(#[from] super::optim::OptimizerError),
    /// Logits and targets disagree in length.
    #[error("{logits} rows of logits but {targets} targets")]
    BatchMismatch {
        /// Rows of logits.
        logits: usize,
        /// Number of targets.
        targets: usize,
    },
}

fn describe_invalid(
    origin: &Option<String>,
    layer: &Option<(usize, String)>,
    reason: &str,
) -> String {
    let mut s = String::new();
    if let Some(o) = origin {
        s.push_str(o);
        s.push_str(": ");
    }
    match layer {
        Some((i, what)) => s.push_str(&format!("layer {i} ({what}): ")),
        None => s.push_str("architecture: "),
    }
    s.push_str(reason);
    s
}

fn describe_names(missing: &[String], unexpected: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing tensors: {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected tensors: {}", unexpected.join(", ")));
    }
    parts.join("; ")
}

/// Shorthand for results in this module.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// What is wrong with manual class weights.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassWeightsProblem {
    /// Not one weight per class.
    #[error("{given} weights for {classes} classes")]
    Count {
        /// Weights given.
        given: usize,
        /// The model's classes.
        classes: usize,
    },
    /// A weight is negative or not finite.
    #[error("weight {index} is {value}; weights must be finite and non-negative")]
    Invalid {
        /// The class.
        index: usize,
        /// Its weight.
        value: f32,
    },
    /// Every weight is zero, so no sample would count.
    #[error("all weights are zero")]
    AllZero,
}

//! Why a model could not be quantized.

/// What went wrong while quantizing.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// A quantization config file could not be read.
    #[error("quantization config: {}: {source}", path.display())]
    ConfigRead {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A quantization config is not TOML, or has an unknown key or a value of the wrong type or name.
    #[error("quantization config: {}{}", file_prefix(file.as_deref()), crate::limits::toml_message(source))]
    ConfigSyntax {
        /// The file, when the config came from one.
        file: Option<std::path::PathBuf>,
        /// The parser's error, with its line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A quantization setting is out of range.
    #[error("quantization config: {}{source}", file_prefix(file.as_deref()))]
    Setting {
        /// The file, when the config came from one.
        file: Option<std::path::PathBuf>,
        /// The setting and its range.
        #[source]
        source: Box<crate::options::OptionError>,
    },
    /// Fewer calibration samples than quantization needs.
    #[error(
        "calibration data: {samples} samples: at least {needed} are needed (a few thousand are better)"
    )]
    TooFewCalibrationSamples {
        /// The samples given.
        samples: usize,
        /// The fewest that are accepted ([`MIN_CALIBRATION_SAMPLES`](super::MIN_CALIBRATION_SAMPLES)).
        needed: usize,
    },
    /// A calibration value is NaN or infinite.
    #[error("calibration data: non-finite value in sample {sample} column {column}")]
    NonFiniteCalibration {
        /// The sample (row).
        sample: usize,
        /// The value's column.
        column: usize,
    },
    /// The calibration samples are not as wide as the model's input.
    #[error(
        "calibration data: samples have {values} values, the model takes {} ({time_steps} time steps x {features} features)",
        time_steps * features
    )]
    CalibrationWidth {
        /// Values per sample.
        values: usize,
        /// The model's time steps.
        time_steps: usize,
        /// The model's features per step.
        features: usize,
    },
    /// The standardization does not have one mean and one deviation per feature.
    #[error(
        "calibration data: normalizer has {means} means and {stds} standard deviations for {features} features"
    )]
    NormalizerWidth {
        /// Means given.
        means: usize,
        /// Standard deviations given.
        stds: usize,
        /// The model's features.
        features: usize,
    },
    /// A layer cannot be represented in tickq-core's int8 arithmetic.
    #[error("layer {index} ({name}): {reason}")]
    Layer {
        /// Index of the layer in the f32 model.
        index: usize,
        /// Its name or kind.
        name: String,
        /// What is wrong and what to change.
        reason: String,
    },
    /// The blob encoder rejected the quantized model.
    #[error("blob encoding")]
    Encode(#[source] tickq_core::encode::EncodeError),
    /// The encoded blob did not pass tickq-core's validation (a bug in tickq).
    #[error("the exported blob does not load in tickq-core")]
    Load(#[source] tickq_core::BlobError),
}

/// `path: ` for a message about a file, nothing otherwise.
pub(super) fn file_prefix(file: Option<&std::path::Path>) -> String {
    file.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

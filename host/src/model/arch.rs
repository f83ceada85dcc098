//! The architecture file: a declarative description of a sequential network.
//!
//! An [`Architecture`] is read from TOML (or JSON, chosen by the `.json` extension),
//! and every constructor that parses text also runs [`Architecture::validate`],
//! so a parsed architecture always has a consistent shape chain.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{ModelError, Result};
use crate::limits::{
    MAX_BLOB_LAYERS, MAX_CLASSES, MAX_CONFIG_BYTES, MAX_NAME_BYTES, MAX_PARAMETERS,
    MAX_TENSOR_VALUES, MAX_UNITS, excerpt,
};

/// How a convolution treats the start of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// No padding: the output is shorter than the input by `dilation * (kernel - 1)` steps (before striding).
    #[default]
    Valid,
    /// Left padding with `dilation * (kernel - 1)` zeros, so output step `t` sees only inputs up to `t`.
    Causal,
}

/// The shape of one sample (the batch dimension is left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A sequence of `time` steps with `channels` values each (PyTorch `[C, T]`).
    Seq {
        /// Channels (features) per step.
        channels: usize,
        /// Number of time steps.
        time: usize,
    },
    /// A plain vector of this many values.
    Flat(usize),
}

impl Shape {
    /// The number of values in one sample of this shape.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Seq { channels, time } => channels * time,
            Shape::Flat(n) => n,
        }
    }

    /// Whether the shape holds no values (never true for a validated architecture).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Seq { channels, time } => {
                write!(f, "sequence of {time} steps x {channels} channels")
            }
            Shape::Flat(n) => write!(f, "vector of {n}"),
        }
    }
}

/// The model input: `time_steps` ticks of `features` values each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Number of ticks in the window (1 for a plain vector input).
    pub time_steps: usize,
    /// Number of features per tick.
    pub features: usize,
}

/// One entry of the `[[layers]]` list, tagged by its `type` field.
///
/// In the file, `type` is one of `dense`, `conv1d`, `relu`, `relu6`, `clamp`, `tanh`, `sigmoid`,
/// `maxpool1d`, `avgpool1d`, `global_avg_pool` and `flatten`; a field that the type does not use is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLayer", into = "RawLayer")]
pub enum LayerSpec {
    /// Fully connected layer on a vector: `y = W x + b`, weight `[out, in]`.
    Dense {
        /// Parameter name prefix; defaults to `fc1`, `fc2`, ... by position among dense layers.
        name: Option<String>,
        /// Output features.
        out: usize,
    },
    /// 1-D convolution over time on a sequence, weight `[out, in, kernel]`.
    Conv1d {
        /// Parameter name prefix; defaults to `conv1`, `conv2`, ... by position among conv1d layers.
        name: Option<String>,
        /// Output channels.
        out: usize,
        /// Kernel size in time steps.
        kernel: usize,
        /// Step between output positions (default 1).
        stride: usize,
        /// Spacing between kernel taps (default 1).
        dilation: usize,
        /// `valid` (default) or `causal`.
        padding: Padding,
    },
    /// `max(x, 0)`.
    ReLU,
    /// `min(max(x, 0), 6)`.
    ReLU6,
    /// `min(max(x, min), max)`.
    Clamp {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// Maximum over time windows, per channel.
    MaxPool1d {
        /// Window length.
        kernel: usize,
        /// Step between windows (default: `kernel`).
        stride: Option<usize>,
    },
    /// Mean over time windows, per channel.
    AvgPool1d {
        /// Window length.
        kernel: usize,
        /// Step between windows (default: `kernel`).
        stride: Option<usize>,
    },
    /// Mean over all time steps: a sequence becomes a vector of its channels.
    GlobalAvgPool,
    /// A sequence `[C, T]` becomes a vector of `C * T` values in channel-major order (`c * T + t`), as in PyTorch.
    Flatten,
}

impl LayerSpec {
    /// The `type` string of this layer, as written in the architecture file.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Conv1d { .. } => "conv1d",
            LayerSpec::ReLU => "relu",
            LayerSpec::ReLU6 => "relu6",
            LayerSpec::Clamp { .. } => "clamp",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::MaxPool1d { .. } => "maxpool1d",
            LayerSpec::AvgPool1d { .. } => "avgpool1d",
            LayerSpec::GlobalAvgPool => "global_avg_pool",
            LayerSpec::Flatten => "flatten",
        }
    }

    /// Whether the layer has a weight and a bias.
    pub fn has_parameters(&self) -> bool {
        matches!(self, LayerSpec::Dense { .. } | LayerSpec::Conv1d { .. })
    }

    /// The output shape of this layer for `input`, or why it does not fit: the rule [`Architecture::shapes`]
    /// applies to every layer (the size limits of a whole architecture are checked there, not here).
    pub(crate) fn output_shape(&self, input: Shape) -> std::result::Result<Shape, String> {
        check_fields(self)?;
        next_shape(self, input)
    }
}

/// A sequential network: the input window, the layers in order and the number of classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// A short model name (it ends up in the blob metadata).
    pub name: String,
    /// Number of output classes; the last layer must produce a vector of this length.
    pub classes: usize,
    /// The input window.
    pub input: InputSpec,
    /// The layers, applied in order.
    pub layers: Vec<LayerSpec>,
}

impl Architecture {
    /// Reads and validates an architecture file: JSON when the extension is `.json`, TOML otherwise.
    ///
    /// # Errors
    ///
    /// [`ModelError::Io`] when the file cannot be read, [`ModelError::Parse`] for syntax or field errors,
    /// and [`ModelError::InvalidArch`] (naming the file and the layer) when the network is inconsistent.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::limits::read_text_limited(path, MAX_CONFIG_BYTES, "a config file")
            .map_err(|source| ModelError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let origin = path.display().to_string();
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let arch = if is_json {
            Self::parse_json(&text, &origin)?
        } else {
            Self::parse_toml(&text, &origin)?
        };
        arch.validate().map_err(|e| with_origin(e, &origin))?;
        Ok(arch)
    }

    /// Parses and validates an architecture written in TOML.
    ///
    /// # Errors
    ///
    /// [`ModelError::Parse`] or [`ModelError::InvalidArch`].
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let arch = Self::parse_toml(text, "<string>")?;
        arch.validate()?;
        Ok(arch)
    }

    /// Parses and validates an architecture written in JSON (same fields as the TOML form).
    ///
    /// # Errors
    ///
    /// [`ModelError::Parse`] or [`ModelError::InvalidArch`].
    pub fn from_json_str(text: &str) -> Result<Self> {
        let arch = Self::parse_json(text, "<string>")?;
        arch.validate()?;
        Ok(arch)
    }

    fn parse_toml(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| ModelError::Parse {
            origin: origin.to_string(),
            message: crate::limits::toml_message(&e),
        })
    }

    fn parse_json(text: &str, origin: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| ModelError::Parse {
            origin: origin.to_string(),
            message: crate::limits::excerpt_lines(&e.to_string()),
        })
    }

    /// Writes the architecture as TOML; [`Architecture::from_toml_str`] reads it back unchanged.
    ///
    /// # Errors
    ///
    /// [`ModelError::SerializeToml`] if a value has no TOML form (a non-finite clamp bound).
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(ModelError::SerializeToml)
    }

    /// Writes the architecture as pretty-printed JSON.
    ///
    /// # Errors
    ///
    /// [`ModelError::SerializeJson`] if a value has no JSON form.
    pub fn to_json_string(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(ModelError::SerializeJson)
    }

    /// Checks the whole architecture: sizes, names, the shape chain and the limits of [`crate::limits`] (units,
    /// fan-in and parameters per layer, parameters in all, blob layers, classes, name lengths), so that a model
    /// that validates can be trained, quantized and run by tickq-core.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidArch`] naming the first offending layer, the limit and the value.
    pub fn validate(&self) -> Result<()> {
        self.shapes().map(|_| ())
    }

    /// The number of parameters (weights plus biases) of each layer, index-aligned with
    /// [`Architecture::layers`], for a validated architecture.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidArch`] as [`Architecture::validate`].
    pub fn layer_parameters(&self) -> Result<Vec<usize>> {
        let shapes = self.shapes()?;
        Ok(self
            .layers
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let input = if i == 0 {
                    self.input_shape()
                } else {
                    shapes[i - 1]
                };
                layer_size(spec, input).unwrap_or(0)
            })
            .collect())
    }

    /// The number of layers the blob of this architecture has: one for the input quantizer, one per layer,
    /// except a `relu`, `relu6` or `clamp` right after a `dense` or `conv1d` layer (fused into its
    /// requantization) and a `flatten` of a vector (nothing to do). At most [`MAX_BLOB_LAYERS`].
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidArch`] as [`Architecture::validate`].
    pub fn blob_layers(&self) -> Result<usize> {
        let shapes = self.shapes()?;
        Ok(self.count_blob_layers(&shapes))
    }

    fn count_blob_layers(&self, shapes: &[Shape]) -> usize {
        1 + self
            .layers
            .iter()
            .enumerate()
            .filter(|&(i, spec)| {
                let after_weighted = i > 0 && self.layers[i - 1].has_parameters();
                let input = if i == 0 {
                    self.input_shape()
                } else {
                    shapes[i - 1]
                };
                match spec {
                    LayerSpec::ReLU | LayerSpec::ReLU6 | LayerSpec::Clamp { .. } => !after_weighted,
                    LayerSpec::Flatten => matches!(input, Shape::Seq { .. }),
                    _ => true,
                }
            })
            .count()
    }

    /// The input shape of one sample: a vector of `features` when `time_steps == 1`, else a sequence.
    ///
    /// The result is only meaningful for a validated architecture (both sizes at least 1).
    pub fn input_shape(&self) -> Shape {
        if self.input.time_steps == 1 {
            Shape::Flat(self.input.features)
        } else {
            Shape::Seq {
                channels: self.input.features,
                time: self.input.time_steps,
            }
        }
    }

    /// The number of input values per sample, `time_steps * features`.
    pub fn input_len(&self) -> usize {
        self.input.time_steps.saturating_mul(self.input.features)
    }

    /// The parameter name prefix of layer `index` (`fc2`, `conv1` or the explicit `name`),
    /// or `None` when the layer has no parameters or does not exist.
    pub fn param_name(&self, index: usize) -> Option<String> {
        let spec = self.layers.get(index)?;
        let (explicit, prefix) = match spec {
            LayerSpec::Dense { name, .. } => (name, "fc"),
            LayerSpec::Conv1d { name, .. } => (name, "conv"),
            _ => return None,
        };
        if let Some(n) = explicit {
            return Some(n.clone());
        }
        let ordinal = self.layers[..=index]
            .iter()
            .filter(|l| l.kind() == spec.kind())
            .count();
        Some(format!("{prefix}{ordinal}"))
    }

    fn describe(&self, index: usize) -> String {
        match (self.layers.get(index), self.param_name(index)) {
            (Some(spec), Some(name)) => format!("{} \"{}\"", spec.kind(), excerpt(&name)),
            (Some(spec), None) => spec.kind().to_string(),
            (None, _) => "?".to_string(),
        }
    }

    /// Computes the output shape of every layer, index-aligned with [`Architecture::layers`].
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidArch`] for zero sizes, a dense layer on a sequence, a convolution or pool on a vector,
    /// a window shorter than a kernel, duplicate or malformed names, or a last layer that is not a vector of `classes`.
    pub fn shapes(&self) -> Result<Vec<Shape>> {
        let global = |reason: String| ModelError::InvalidArch {
            origin: None,
            layer: None,
            reason,
        };
        check_model_name(&self.name).map_err(global)?;
        if !(2..=MAX_CLASSES).contains(&self.classes) {
            return Err(global(format!(
                "classes must be from 2 to {MAX_CLASSES} (the most tickq-core predicts), got {}",
                self.classes
            )));
        }
        if self.input.time_steps == 0 || self.input.features == 0 {
            return Err(global(format!(
                "input time_steps and features must be at least 1, got {} and {}",
                self.input.time_steps, self.input.features
            )));
        }
        for (field, v) in [
            ("time_steps", self.input.time_steps),
            ("features", self.input.features),
        ] {
            if v > MAX_UNITS {
                return Err(global(format!(
                    "input {field} {v} is above {MAX_UNITS}, the most the blob format's 16-bit size fields hold"
                )));
            }
        }
        if self
            .input
            .time_steps
            .checked_mul(self.input.features)
            .is_none_or(|n| n > MAX_TENSOR_VALUES)
        {
            return Err(global(format!(
                "the input has {} x {} values per sample, above {MAX_TENSOR_VALUES}, the most a tensor may have",
                self.input.time_steps, self.input.features
            )));
        }
        if self.layers.is_empty() {
            return Err(global("the model has no layers".to_string()));
        }
        self.check_names()?;
        let mut shape = self.input_shape();
        let mut out = Vec::with_capacity(self.layers.len());
        let mut parameters = 0usize;
        for (i, spec) in self.layers.iter().enumerate() {
            let err = |reason: String| ModelError::InvalidArch {
                origin: None,
                layer: Some((i, self.describe(i))),
                reason,
            };
            check_fields(spec).map_err(err)?;
            let input = shape;
            shape = next_shape(spec, shape).map_err(err)?;
            check_output(shape).map_err(err)?;
            parameters = parameters.saturating_add(layer_size(spec, input).map_err(err)?);
            out.push(shape);
        }
        if parameters > MAX_PARAMETERS {
            return Err(global(format!(
                "{parameters} parameters in all, above {MAX_PARAMETERS}, the most a model may have"
            )));
        }
        let blob_layers = self.count_blob_layers(&out);
        if blob_layers > MAX_BLOB_LAYERS {
            return Err(global(format!(
                "its {} layers make {blob_layers} blob layers (the input quantizer counts as one; a relu, relu6 or \
                 clamp right after dense or conv1d is fused into it), above {MAX_BLOB_LAYERS}, the most a \
                 tickq-core blob holds",
                self.layers.len()
            )));
        }
        let last = self.layers.len() - 1;
        let bad_end = |reason: String| ModelError::InvalidArch {
            origin: None,
            layer: Some((last, self.describe(last))),
            reason,
        };
        match shape {
            Shape::Flat(n) if n == self.classes => Ok(out),
            Shape::Flat(n) => Err(bad_end(format!(
                "the last layer outputs {n} values but the model has {} classes",
                self.classes
            ))),
            Shape::Seq { .. } => Err(bad_end(format!(
                "the last layer outputs a {shape}; end with flatten or global_avg_pool and a dense layer of {} outputs",
                self.classes
            ))),
        }
    }

    fn check_names(&self) -> Result<()> {
        let mut seen: Vec<(String, usize)> = Vec::new();
        for i in 0..self.layers.len() {
            let Some(name) = self.param_name(i) else {
                continue;
            };
            let err = |reason: String| ModelError::InvalidArch {
                origin: None,
                layer: Some((i, self.describe(i))),
                reason,
            };
            if name.len() > MAX_NAME_BYTES {
                return Err(err(format!(
                    "name \"{}\" is {} bytes long, above {MAX_NAME_BYTES}, the most a layer name may have",
                    excerpt(&name),
                    name.len()
                )));
            }
            if !is_layer_name_form(&name) {
                return Err(err(format!(
                    "name \"{}\" must be non-empty ASCII letters, digits, '_' and inner single '.'",
                    excerpt(&name)
                )));
            }
            if let Some((_, j)) = seen.iter().find(|(n, _)| *n == name) {
                return Err(err(format!(
                    "name \"{}\" is already used by layer {j}",
                    excerpt(&name)
                )));
            }
            seen.push((name, i));
        }
        Ok(())
    }
}

/// Whether `name` has the form of a layer name: non-empty ASCII letters, digits, `_` and inner single `.`
/// (its length is checked separately).
pub(crate) fn is_layer_name_form(name: &str) -> bool {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    !name.is_empty()
        && valid_chars
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
}

fn with_origin(e: ModelError, origin: &str) -> ModelError {
    match e {
        ModelError::InvalidArch {
            origin: None,
            layer,
            reason,
        } => ModelError::InvalidArch {
            origin: Some(origin.to_string()),
            layer,
            reason,
        },
        other => other,
    }
}

/// Checks a model name: 1 to [`MAX_NAME_BYTES`] bytes without control characters (it is copied into the blob
/// metadata and into the comments of exported C and Rust files).
fn check_model_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("name must not be empty".to_string());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "name \"{}\" is {} bytes long, above {MAX_NAME_BYTES}, the most a model name may have",
            excerpt(name),
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "name \"{}\" has a control character; use printable characters",
            excerpt(name)
        ));
    }
    Ok(())
}

mod file;
mod shape;

use file::RawLayer;
use shape::{check_fields, check_output, layer_size, next_shape};

#[cfg(test)]
mod tests;

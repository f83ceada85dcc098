//! ONNX import: a model exported from PyTorch (`torch.onnx.export`) or built with `onnx.helper` becomes a
//! tickq [`Sequential`] with its [`Architecture`], ready to be calibrated, quantized and exported like a model
//! trained by tickq.
//!
//! [`import_onnx`] reads the file (its size checked first against [`MAX_WEIGHTS_BYTES`]), decodes the protobuf
//! with hand-written `prost` messages for the few fields it needs (`proto`), checks the graph as a whole
//! (`graph`: the default operator set, versions 7 to 28, at most [`MAX_ONNX_NODES`](crate::limits::MAX_ONNX_NODES)
//! nodes, one input, one output), then walks the nodes in order as a single chain from the input (`ops`), each
//! operator becoming a tickq layer. docs/ONNX.md lists the operators, the attributes each accepts and every
//! refusal.
//!
//! # Input layouts
//!
//! The graph's input decides the model's input:
//!
//! - `[N, F]` is a vector model: `time_steps = 1`, `features = F`; a sample is passed as is.
//! - `[N, C, T]` is a sequence model whose input is channels-first, as PyTorch's `Conv1d` takes it:
//!   `time_steps = T`, `features = C`. tickq's f32 [`Sequential`] (and the blob quantized from it) takes one
//!   sample as a time-major buffer of `T * C` values, value `(t, c)` at index `t * C + c`, while PyTorch's
//!   `[C, T]` sample, flattened row-major, has it at `c * T + t`. The caller transposes each sample from `[C, T]`
//!   to `[T, C]` before feeding it: [`InputShape::to_model_row`] does exactly that. Feeding the channels-first
//!   values untransposed gives wrong predictions, not an error.
//!
//! Everything after the input uses PyTorch's layouts inside the model, so a `Flatten` of `[N, C, T]` is
//! channel-major (`c * T + t`) in both.
//!
//! # Example
//!
//! ```no_run
//! let import = tickq_host::onnx::import_onnx(std::path::Path::new("model.onnx"))?;
//! println!("{} takes {}", import.input.name, import.input.layout);
//! let logits = import.model.forward(ndarray::Array2::zeros((1, import.model.input_len())).view());
//! # Ok::<(), tickq_host::onnx::OnnxError>(())
//! ```

mod error;
mod graph;
mod ops;
mod proto;
mod tensor;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

use prost::Message;

pub use error::{
    GraphProblem, NodeProblem, NodeRef, OnnxError, SUPPORTED_OPERATORS, TensorProblem,
};

use crate::checkpoint::model_from_state;
use crate::limits::{MAX_NAME_BYTES, MAX_WEIGHTS_BYTES};
use crate::model::{Architecture, InputSpec, LayerSpec, Sequential, Shape};

/// A model imported from an ONNX file.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxImport {
    /// The f32 model, its weights taken from the graph's initializers in tickq's (PyTorch's) layouts.
    pub model: Sequential,
    /// The graph's input: its name, batch size and layout.
    pub input: OnnxInput,
    /// The name of the graph's output (the class scores).
    pub output: String,
    /// The version of the default operator set the file uses.
    pub opset: i64,
    /// The tool that wrote the file, as the file says (`pytorch`, may be empty).
    pub producer: String,
}

impl OnnxImport {
    /// The model's architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.model.arch
    }

    /// Writes the model's architecture file (TOML, as a checkpoint's `arch.toml`) atomically to `path`.
    ///
    /// # Errors
    ///
    /// [`OnnxError::Arch`] if the architecture has no TOML form, [`OnnxError::Io`] naming `path`.
    pub fn write_architecture(&self, path: &Path) -> Result<(), OnnxError> {
        let text = self
            .model
            .arch
            .to_toml_string()
            .map_err(|source| OnnxError::Arch {
                path: path.to_path_buf(),
                source,
            })?;
        crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|source| OnnxError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The graph's one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxInput {
    /// Its name in the graph.
    pub name: String,
    /// The batch size when the file fixes it; `None` for a symbolic (dynamic) batch.
    pub batch: Option<usize>,
    /// The shape of one sample and how its values are laid out.
    pub layout: InputShape,
}

/// The shape of one input sample as the ONNX graph takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputShape {
    /// `[N, F]`: a vector of `features` values, passed to tickq unchanged.
    Vector {
        /// Values per sample.
        features: usize,
    },
    /// `[N, C, T]`: `channels` sequences of `time` steps, channels-first as PyTorch's `Conv1d` takes them; tickq
    /// takes the same sample time-major (see [`InputShape::to_model_row`]).
    ChannelsFirst {
        /// Channels (tickq's features per step).
        channels: usize,
        /// Time steps.
        time: usize,
    },
}

impl InputShape {
    /// The number of values in one sample.
    pub fn len(&self) -> usize {
        match *self {
            InputShape::Vector { features } => features,
            InputShape::ChannelsFirst { channels, time } => channels * time,
        }
    }

    /// Whether a sample holds no values (never, for an imported model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How tickq records this shape's layout in a checkpoint and a blob: a vector and a time-major window are
    /// the same to it; `[N, C, T]` is channels-first.
    pub fn layout(&self) -> crate::data::vectors::InputLayout {
        match self {
            InputShape::Vector { .. } => crate::data::vectors::InputLayout::TimeMajor,
            InputShape::ChannelsFirst { .. } => crate::data::vectors::InputLayout::ChannelsFirst,
        }
    }

    /// Converts one sample from the graph's layout to the row tickq's [`Sequential`] takes: a vector is copied;
    /// a channels-first `[C, T]` sample (value `(c, t)` at `c * T + t`) is transposed to time-major `[T, C]`
    /// (value `(c, t)` at `t * C + c`), by the core's [`tickq_core::InputLayout::to_time_major`], the one
    /// transposition every tickq path uses.
    ///
    /// # Panics
    ///
    /// If `sample` or `row` does not hold [`InputShape::len`] values.
    pub fn to_model_row(&self, sample: &[f32], row: &mut [f32]) {
        let (layout, time_steps, features) = match *self {
            InputShape::Vector { features } => (tickq_core::InputLayout::TimeMajor, 1, features),
            InputShape::ChannelsFirst { channels, time } => {
                (tickq_core::InputLayout::ChannelsFirst, time, channels)
            }
        };
        assert!(
            layout.to_time_major(sample, time_steps, features, row),
            "sample and row must hold {} values",
            self.len()
        );
    }
}

impl fmt::Display for InputShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputShape::Vector { features } => write!(f, "[N, {features}]"),
            InputShape::ChannelsFirst { channels, time } => {
                write!(f, "[N, {channels}, {time}] (channels-first)")
            }
        }
    }
}

/// Imports the ONNX model file at `path`.
///
/// # Errors
///
/// [`OnnxError::Io`] when the file cannot be read or is larger than [`MAX_WEIGHTS_BYTES`], and otherwise as
/// [`import_onnx_bytes`].
pub fn import_onnx(path: &Path) -> Result<OnnxImport, OnnxError> {
    let bytes = crate::limits::read_file_limited(path, MAX_WEIGHTS_BYTES, "an ONNX file").map_err(
        |source| OnnxError::Io {
            path: path.to_path_buf(),
            source,
        },
    )?;
    import_onnx_bytes(&bytes, path)
}

/// Imports an ONNX model from its bytes; `origin` names the file in errors, and its stem becomes the model's
/// name.
///
/// # Errors
///
/// [`OnnxError::Decode`] for bytes that are not a protobuf model, [`OnnxError::Graph`] for a graph tickq cannot
/// import as a whole, [`OnnxError::Node`] naming the node refused and what is supported, [`OnnxError::Tensor`]
/// naming a weight that cannot be read, and [`OnnxError::Arch`] or [`OnnxError::Weights`] when the layers do not
/// make a valid tickq model.
pub fn import_onnx_bytes(bytes: &[u8], origin: &Path) -> Result<OnnxImport, OnnxError> {
    let path = || origin.to_path_buf();
    let model = proto::ModelProto::decode(bytes).map_err(|source| OnnxError::Decode {
        path: path(),
        source,
    })?;
    let graph = graph::read_graph(&model).map_err(|problem| OnnxError::Graph {
        path: path(),
        problem,
    })?;
    let mapped = ops::map_graph(&graph).map_err(|e| match e {
        ops::MapError::Node(index, problem) => OnnxError::Node {
            path: path(),
            node: graph::node_ref(index, &graph.nodes[index]),
            problem: Box::new(problem),
        },
        ops::MapError::Tensor(tensor, problem) => OnnxError::Tensor {
            path: path(),
            tensor,
            problem,
        },
    })?;
    let graph_problem = |problem| OnnxError::Graph {
        path: path(),
        problem,
    };
    if mapped.end != graph.output.name {
        return Err(graph_problem(GraphProblem::OutputNotReached {
            output: graph.output.name.clone(),
            end: mapped.end,
        }));
    }
    let classes = match mapped.shape {
        Shape::Flat(n) => n,
        shape @ Shape::Seq { .. } => {
            return Err(graph_problem(GraphProblem::OutputNotVector {
                shape: shape.to_string(),
            }));
        }
    };
    graph::check_output(graph.output, classes).map_err(graph_problem)?;
    let input = match graph.input.layout {
        InputShape::Vector { features } => InputSpec {
            time_steps: 1,
            features,
        },
        InputShape::ChannelsFirst { channels, time } => InputSpec {
            time_steps: time,
            features: channels,
        },
    };
    let mut arch = Architecture {
        name: model_name(origin, graph_name(&model)),
        classes,
        input,
        layers: mapped.layers.iter().map(|l| l.spec.clone()).collect(),
    };
    name_layers(&mut arch, &mapped.layers);
    arch.validate().map_err(|source| OnnxError::Arch {
        path: path(),
        source,
    })?;
    let mut state = Vec::new();
    for (i, layer) in mapped.layers.into_iter().enumerate() {
        if let (Some(p), Some(name)) = (layer.params, arch.param_name(i)) {
            let out = p.bias.len();
            state.push((format!("{name}.weight"), p.weight_shape, p.weight));
            state.push((format!("{name}.bias"), vec![out], p.bias));
        }
    }
    let model_f32 =
        model_from_state(arch, &state, origin).map_err(|source| OnnxError::Weights {
            path: path(),
            source: Box::new(source),
        })?;
    Ok(OnnxImport {
        model: model_f32,
        input: graph.input,
        output: graph.output.name.clone(),
        opset: graph.opset,
        producer: model.producer_name.clone(),
    })
}

fn graph_name(model: &proto::ModelProto) -> &str {
    model.graph.as_ref().map_or("", |g| g.name.as_str())
}

/// The model's name: the file's stem, else the graph's name, else `onnx`, cut to [`MAX_NAME_BYTES`] without
/// control characters.
fn model_name(origin: &Path, graph: &str) -> String {
    let stem = origin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = [stem.as_str(), graph]
        .into_iter()
        .map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>())
        .find(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "onnx".to_string());
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Names each dense and conv1d layer after its ONNX weight (`fc1.weight` gives `fc1`, as PyTorch names the
/// module) when every such name is a valid tickq layer name and they are all different; otherwise the layers keep
/// tickq's default names (`fc1`, `conv1`, ...).
fn name_layers(arch: &mut Architecture, layers: &[ops::MappedLayer]) {
    let names: Vec<Option<String>> = layers
        .iter()
        .map(|l| {
            let p = l.params.as_ref()?;
            let name = p.weight_name.strip_suffix(".weight")?;
            (name.len() <= MAX_NAME_BYTES && crate::model::is_layer_name_form(name))
                .then(|| name.to_string())
        })
        .collect();
    let wanted = layers.iter().filter(|l| l.params.is_some()).count();
    let mut given: Vec<&String> = names.iter().flatten().collect();
    if given.len() != wanted {
        return;
    }
    given.sort();
    given.dedup();
    if given.len() != wanted {
        return;
    }
    for (spec, name) in arch.layers.iter_mut().zip(names) {
        if let LayerSpec::Dense { name: n, .. } | LayerSpec::Conv1d { name: n, .. } = spec {
            *n = name;
        }
    }
}

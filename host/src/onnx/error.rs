//! What can go wrong while importing an ONNX file; every error names the file, and the node, tensor or graph
//! field it is about.

use std::fmt;
use std::path::PathBuf;

use crate::checkpoint::CheckpointError;
use crate::model::ModelError;

/// The operators tickq imports, as listed in refusals.
pub const SUPPORTED_OPERATORS: &str = "Gemm, MatMul (+ Add of a bias), Conv (one spatial axis), Relu, Clip, \
     Tanh, Sigmoid, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape (as a flatten), Squeeze (after \
     GlobalAveragePool), Identity, Dropout and Constant";

/// An error from [`import_onnx`](super::import_onnx).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The file could not be read, or is larger than tickq reads.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a protobuf `ModelProto`.
    #[error("{}: not an ONNX model file", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The protobuf decoder's error.
        source: prost::DecodeError,
    },
    /// The model or graph as a whole cannot be imported.
    #[error("{}: {problem}", path.display())]
    Graph {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: GraphProblem,
    },
    /// A node cannot be imported.
    #[error("{}: {node}: {problem}", path.display())]
    Node {
        /// The file.
        path: PathBuf,
        /// The node: its index, name and operator.
        node: NodeRef,
        /// What is wrong.
        problem: Box<NodeProblem>,
    },
    /// A constant tensor (an initializer or a `Constant` node's value) cannot be read.
    #[error("{}: tensor \"{tensor}\": {problem}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        problem: TensorProblem,
    },
    /// The graph maps to a layer chain that is not a valid tickq architecture (too large, too many classes, ...).
    #[error("{}: the graph maps to an invalid tickq architecture", path.display())]
    Arch {
        /// The file.
        path: PathBuf,
        /// The architecture's own error, naming the layer.
        source: ModelError,
    },
    /// The weights taken from the graph do not load into the model.
    #[error("{}: the weights do not load into the model", path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// The checkpoint loader's error.
        source: Box<CheckpointError>,
    },
}

/// A node, as errors name it: its index in the graph, its name (when it has one) and its operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// The node's position in the graph's node list, from 0.
    pub index: usize,
    /// The node's name; empty when the file gives none.
    pub name: String,
    /// The operator (`op_type`).
    pub op: String,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = crate::limits::excerpt(&self.op);
        if self.name.is_empty() {
            write!(f, "node {} ({op})", self.index)
        } else {
            let name = crate::limits::excerpt(&self.name);
            write!(f, "node {} \"{name}\" ({op})", self.index)
        }
    }
}

/// Why the model or graph as a whole is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphProblem {
    /// The model has no graph.
    #[error("the model has no graph")]
    NoGraph,
    /// The model does not import the default operator set.
    #[error("the model imports no version of the default ONNX operator set")]
    NoDefaultOpset,
    /// The default operator set's version is outside the range tickq reads.
    #[error(
        "default operator set version {version} is not supported; tickq reads versions {min} to {max}"
    )]
    Opset {
        /// The version found.
        version: i64,
        /// The lowest version read.
        min: i64,
        /// The highest version read.
        max: i64,
    },
    /// The graph has more nodes than tickq reads.
    #[error("the graph has {count} nodes, above {limit}, the most tickq imports")]
    TooManyNodes {
        /// Nodes in the graph.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The graph has no nodes.
    #[error("the graph has no nodes")]
    NoNodes,
    /// The graph has sparse initializers.
    #[error("the graph has sparse initializers; tickq reads dense initializers only")]
    SparseInitializers,
    /// The graph does not have exactly one input besides its initializers.
    #[error("the graph has {} inputs ({}); tickq imports models with exactly one", names.len(), quoted(names))]
    Inputs {
        /// The inputs that are not initializers.
        names: Vec<String>,
    },
    /// The graph does not have exactly one output.
    #[error("the graph has {} outputs ({}); tickq imports models with exactly one", names.len(), quoted(names))]
    Outputs {
        /// The outputs.
        names: Vec<String>,
    },
    /// The input is not a FLOAT tensor.
    #[error("input \"{name}\" has element type {}; tickq imports FLOAT inputs", super::proto::data_type::name(*elem_type))]
    InputType {
        /// The input's name.
        name: String,
        /// Its element type code.
        elem_type: i32,
    },
    /// The input's shape is not `[N, F]` or `[N, C, T]`.
    #[error(
        "input \"{name}\" has shape {shape}; tickq imports [N, F] (a vector) or [N, C, T] (channels-first \
             sequences), with fixed F, C and T"
    )]
    InputShape {
        /// The input's name.
        name: String,
        /// The shape as the file gives it (`[batch, 8, ?]`).
        shape: String,
    },
    /// The chain of nodes from the input ends somewhere other than the graph's output.
    #[error(
        "the graph's output \"{output}\" is not the end of the chain of layers from the input, which ends at \
             \"{end}\"; tickq imports a single chain of layers"
    )]
    OutputNotReached {
        /// The graph's output.
        output: String,
        /// The last value of the chain.
        end: String,
    },
    /// The output is still a sequence.
    #[error("the graph's output is a {shape}; tickq models end with a vector of class scores")]
    OutputNotVector {
        /// The output's shape.
        shape: String,
    },
    /// The output's declared shape disagrees with what the layers produce.
    #[error(
        "the graph declares its output \"{name}\" with shape {declared}, but the layers produce [N, {classes}]"
    )]
    OutputShape {
        /// The output's name.
        name: String,
        /// The declared shape.
        declared: String,
        /// The values the layers produce per sample.
        classes: usize,
    },
}

/// Why a node is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeProblem {
    /// The operator is not one tickq imports.
    #[error("operator not supported; tickq imports {}", SUPPORTED_OPERATORS)]
    UnsupportedOperator,
    /// The operator belongs to another domain than the default operator set.
    #[error(
        "operator domain \"{domain}\" is not supported; tickq imports operators of the default ONNX domain"
    )]
    Domain {
        /// The node's domain.
        domain: String,
    },
    /// An attribute has a value tickq cannot express.
    #[error("attribute {name} = {value} is not supported; {supported}")]
    Attribute {
        /// The attribute's name.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What is supported.
        supported: &'static str,
    },
    /// An `Add` of two computed values.
    #[error(
        "adds two computed values (\"{left}\" and \"{right}\"), a residual connection; tickq's Sequential \
             models are one chain of layers, so skip connections cannot be expressed"
    )]
    Residual {
        /// The first input.
        left: String,
        /// The second input.
        right: String,
    },
    /// The node reads a value that is not the previous layer's output (a branch, or an unknown value).
    #[error(
        "reads \"{input}\", which is not the output of the layer before it (\"{expected}\"); tickq imports a \
             single chain of layers, without branches"
    )]
    NotChain {
        /// The value read.
        input: String,
        /// The chain's current value.
        expected: String,
    },
    /// An input that must be a constant is computed.
    #[error(
        "input {position} ({what}) \"{input}\" must be a constant (an initializer or a Constant node)"
    )]
    NotConstant {
        /// The input's position among the node's inputs.
        position: usize,
        /// What the input is for.
        what: &'static str,
        /// The value read.
        input: String,
    },
    /// A required input is missing.
    #[error("input {position} ({what}) is missing")]
    MissingInput {
        /// The input's position.
        position: usize,
        /// What it is for.
        what: &'static str,
    },
    /// More outputs than the operator can give through a single chain.
    #[error("has {count} outputs; tickq imports this operator with {supported}")]
    Outputs {
        /// The outputs the node declares.
        count: usize,
        /// What is supported.
        supported: &'static str,
    },
    /// A weight or bias tensor has a shape that does not fit the layer's input.
    #[error("{what} \"{tensor}\" has shape {got:?}; expected {expected}")]
    TensorShape {
        /// What the tensor is for (`weight`, `bias`, `shape`).
        what: &'static str,
        /// The tensor's name.
        tensor: String,
        /// Its dimensions.
        got: Vec<i64>,
        /// The shape expected, in words.
        expected: String,
    },
    /// The operator does not fit the shape of what reaches it.
    #[error("{reason}")]
    Shape {
        /// What does not fit, and how to fix it.
        reason: String,
    },
}

/// Why a constant tensor is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TensorProblem {
    /// The tensor's data lives in another file.
    #[error(
        "its data is stored in an external file; tickq imports self-contained ONNX files (save with \
             onnx.save_model(model, path, save_as_external_data=False))"
    )]
    ExternalData,
    /// The tensor is a segment of a larger one.
    #[error("it is a segment of a larger tensor, which tickq does not read")]
    Segment,
    /// A type tickq cannot convert.
    #[error("it has type {}; {expected}", super::proto::data_type::name(*data_type))]
    DataType {
        /// The type code.
        data_type: i32,
        /// What is accepted here.
        expected: &'static str,
    },
    /// A negative dimension.
    #[error("dimension {axis} is {value}")]
    Dimension {
        /// The axis.
        axis: usize,
        /// The dimension.
        value: i64,
    },
    /// More elements than any tensor tickq builds.
    #[error("it has {elements} elements, above {limit}, the most a tickq layer's tensor may have")]
    TooLarge {
        /// Elements implied by the dimensions (saturated).
        elements: usize,
        /// The limit.
        limit: usize,
    },
    /// The data does not hold as many values as the dimensions say.
    #[error("its dimensions {dims:?} make {expected} values, but its {field} holds {got}")]
    DataLength {
        /// The dimensions.
        dims: Vec<i64>,
        /// Values the dimensions make.
        expected: usize,
        /// The field the data came from.
        field: &'static str,
        /// Values (or for `raw_data`, bytes / element size) found.
        got: usize,
    },
    /// A value is NaN or infinite (after conversion to f32).
    #[error("value {index} is not finite in f32 ({value:e})")]
    NonFinite {
        /// The value's index, row-major.
        index: usize,
        /// The value as read, before conversion.
        value: f64,
    },
}

fn quoted(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    names
        .iter()
        .map(|n| format!("\"{}\"", crate::limits::excerpt(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

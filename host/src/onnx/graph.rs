//! Reading the graph around the nodes: the operator set, the one input and its shape, the one output, and the
//! constants (initializers and `Constant` nodes) the nodes may read.

use std::collections::HashMap;

use super::error::{GraphProblem, NodeProblem, NodeRef};
use super::proto::{ModelProto, NodeProto, TensorProto, ValueInfoProto, data_type};
use super::{InputShape, OnnxInput};
use crate::limits::MAX_ONNX_NODES;

/// The lowest default operator set version read (Gemm, Conv, pooling and Flatten as they are today).
pub(super) const MIN_OPSET: i64 = 7;
/// The highest default operator set version read.
pub(super) const MAX_OPSET: i64 = 28;

/// A graph checked as a whole, ready for its nodes to be mapped.
pub(super) struct Graph<'a> {
    /// The default operator set's version.
    pub opset: i64,
    /// The nodes in order.
    pub nodes: &'a [NodeProto],
    /// The initializers by name; `Constant` nodes are added as the mapping reaches them.
    pub constants: HashMap<&'a str, &'a TensorProto>,
    /// The one input.
    pub input: OnnxInput,
    /// The one output's name and declared type.
    pub output: &'a ValueInfoProto,
}

/// Checks the model's operator set, its graph's size, its one input and its one output.
pub(super) fn read_graph(model: &ModelProto) -> Result<Graph<'_>, GraphProblem> {
    let graph = model.graph.as_ref().ok_or(GraphProblem::NoGraph)?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| is_default_domain(&o.domain))
        .map(|o| o.version)
        .ok_or(GraphProblem::NoDefaultOpset)?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(GraphProblem::Opset {
            version: opset,
            min: MIN_OPSET,
            max: MAX_OPSET,
        });
    }
    if graph.node.len() > MAX_ONNX_NODES {
        return Err(GraphProblem::TooManyNodes {
            count: graph.node.len(),
            limit: MAX_ONNX_NODES,
        });
    }
    if graph.node.is_empty() {
        return Err(GraphProblem::NoNodes);
    }
    if !graph.sparse_initializer.is_empty() {
        return Err(GraphProblem::SparseInitializers);
    }
    let constants: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|v| !constants.contains_key(v.name.as_str()))
        .collect();
    let [input] = inputs[..] else {
        return Err(GraphProblem::Inputs {
            names: inputs.iter().map(|v| v.name.clone()).collect(),
        });
    };
    let [output] = &graph.output[..] else {
        return Err(GraphProblem::Outputs {
            names: graph.output.iter().map(|v| v.name.clone()).collect(),
        });
    };
    Ok(Graph {
        opset,
        nodes: &graph.node,
        constants,
        input: read_input(input)?,
        output,
    })
}

/// Whether a domain names the default ONNX operator set.
pub(super) fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// One axis of a declared shape: a fixed size, or none (a symbolic or unknown size).
fn dims_of(value: &ValueInfoProto) -> Option<Vec<Option<i64>>> {
    let tensor = value.r#type.as_ref()?.tensor_type.as_ref()?;
    let shape = tensor.shape.as_ref()?;
    Some(shape.dim.iter().map(|d| d.dim_value).collect())
}

/// A declared shape as text: `[batch, 8, 64]`, `?` for an unnamed unknown size.
pub(super) fn shape_text(value: &ValueInfoProto) -> String {
    let Some(shape) = value
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
    else {
        return "unknown".to_string();
    };
    let dims: Vec<String> = shape
        .dim
        .iter()
        .map(|d| match (&d.dim_value, &d.dim_param) {
            (Some(v), _) => v.to_string(),
            (None, Some(p)) if !p.is_empty() => crate::limits::excerpt(p),
            _ => "?".to_string(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// The graph's input: a FLOAT tensor `[N, F]` or `[N, C, T]` with every axis but the batch fixed.
fn read_input(value: &ValueInfoProto) -> Result<OnnxInput, GraphProblem> {
    let elem_type = value
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .map_or(0, |t| t.elem_type);
    if elem_type != data_type::FLOAT {
        return Err(GraphProblem::InputType {
            name: value.name.clone(),
            elem_type,
        });
    }
    let bad = || GraphProblem::InputShape {
        name: value.name.clone(),
        shape: shape_text(value),
    };
    let dims = dims_of(value).ok_or_else(bad)?;
    let size = |d: Option<i64>| {
        d.and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(bad)
    };
    let batch = match dims.first() {
        Some(Some(v)) => Some(size(Some(*v))?),
        _ => None,
    };
    let layout = match dims[..] {
        [_, f] => InputShape::Vector { features: size(f)? },
        [_, c, t] => InputShape::ChannelsFirst {
            channels: size(c)?,
            time: size(t)?,
        },
        _ => return Err(bad()),
    };
    Ok(OnnxInput {
        name: value.name.clone(),
        batch,
        layout,
    })
}

/// Checks the graph output's declared shape, where it gives one, against the `classes` values the layers make.
pub(super) fn check_output(output: &ValueInfoProto, classes: usize) -> Result<(), GraphProblem> {
    let Some(dims) = dims_of(output) else {
        return Ok(());
    };
    let fits = match dims[..] {
        [_, c] => c.is_none_or(|c| c == classes as i64),
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(GraphProblem::OutputShape {
            name: output.name.clone(),
            declared: shape_text(output),
            classes,
        })
    }
}

/// The node as errors name it.
pub(super) fn node_ref(index: usize, node: &NodeProto) -> NodeRef {
    NodeRef {
        index,
        name: node.name.clone(),
        op: node.op_type.clone(),
    }
}

/// The `value` tensor of a `Constant` node (a `value_float(s)` or `value_int(s)` attribute is turned into one).
pub(super) fn constant_value(node: &NodeProto) -> Result<TensorProto, NodeProblem> {
    use super::proto::attribute_type as at;
    let [attr] = &node.attribute[..] else {
        return Err(NodeProblem::Attribute {
            name: "value",
            value: format!("{} attributes", node.attribute.len()),
            supported: "a Constant node needs exactly one of value, value_float, value_floats, value_int and \
                        value_ints",
        });
    };
    let tensor = |dims: Vec<i64>, data_type: i32| TensorProto {
        dims,
        data_type,
        ..TensorProto::default()
    };
    match (attr.name.as_str(), attr.r#type) {
        ("value", at::TENSOR) => attr.t.clone().ok_or(NodeProblem::Attribute {
            name: "value",
            value: "no tensor".to_string(),
            supported: "a Constant node's value must hold a tensor",
        }),
        ("value_float", at::FLOAT) => Ok(TensorProto {
            float_data: vec![attr.f],
            ..tensor(Vec::new(), data_type::FLOAT)
        }),
        ("value_floats", at::FLOATS) => Ok(TensorProto {
            float_data: attr.floats.clone(),
            ..tensor(vec![attr.floats.len() as i64], data_type::FLOAT)
        }),
        ("value_int", at::INT) => Ok(TensorProto {
            int64_data: vec![attr.i],
            ..tensor(Vec::new(), data_type::INT64)
        }),
        ("value_ints", at::INTS) => Ok(TensorProto {
            int64_data: attr.ints.clone(),
            ..tensor(vec![attr.ints.len() as i64], data_type::INT64)
        }),
        _ => Err(NodeProblem::Attribute {
            name: "value",
            value: format!("attribute {}", crate::limits::excerpt(&attr.name)),
            supported: "a Constant node needs exactly one of value, value_float, value_floats, value_int and \
                        value_ints",
        }),
    }
}

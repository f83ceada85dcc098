//! Operator mapping: the graph's nodes, walked in order as one chain from the input, become tickq layers
//! ([`LayerSpec`]) with their weights in tickq's (PyTorch's) layouts.

use std::collections::HashMap;

use super::error::{NodeProblem, TensorProblem};
use super::graph::{Graph, constant_value, is_default_domain};
use super::proto::{AttributeProto, NodeProto, TensorProto, attribute_type as at};
use crate::model::{LayerSpec, Padding, Shape};

/// A layer taken from the graph, with its weights when it has parameters.
pub(super) struct MappedLayer {
    /// The layer.
    pub spec: LayerSpec,
    /// Weight (`[out, in]` or `[out, in, kernel]`, row-major) and bias, for dense and conv1d layers.
    pub params: Option<Params>,
}

/// A layer's parameters in tickq's layouts.
pub(super) struct Params {
    /// The weight's shape.
    pub weight_shape: Vec<usize>,
    /// The weight, row-major.
    pub weight: Vec<f32>,
    /// The bias, one per output.
    pub bias: Vec<f32>,
    /// The ONNX name of the weight tensor (`fc1.weight`), from which the layer's name is taken when it is one.
    pub weight_name: String,
}

/// What the mapping gives: the layers, the shape they end with and the chain's last value.
pub(super) struct Mapped {
    /// The layers in order.
    pub layers: Vec<MappedLayer>,
    /// The output shape of the last layer.
    pub shape: Shape,
    /// The name of the chain's last value.
    pub end: String,
}

/// A node refusal, or a tensor refusal (with the tensor's name), found while mapping.
pub(super) enum MapError {
    /// The node at this index is refused.
    Node(usize, NodeProblem),
    /// A constant tensor is refused.
    Tensor(String, TensorProblem),
}

/// The walk's state: the chain's current value and the shape tickq sees there.
struct Chain<'a> {
    graph: &'a Graph<'a>,
    /// Values of `Constant` nodes met so far.
    constants: HashMap<String, TensorProto>,
    value: String,
    shape: Shape,
    /// After `GlobalAveragePool`, ONNX holds `[N, C, 1]` where tickq's global pooling already gives a vector of
    /// `C`; the `Flatten`, `Reshape` or `Squeeze` that follows is then nothing to do.
    pooled: bool,
    /// The layer index of a `MatMul` whose bias an `Add` may still supply.
    open_matmul: Option<usize>,
    layers: Vec<MappedLayer>,
}

/// Maps every node of `graph` onto tickq layers.
pub(super) fn map_graph(graph: &Graph<'_>) -> Result<Mapped, MapError> {
    let shape = match graph.input.layout {
        super::InputShape::Vector { features } => Shape::Flat(features),
        super::InputShape::ChannelsFirst { channels, time } => Shape::Seq { channels, time },
    };
    let mut chain = Chain {
        graph,
        constants: HashMap::new(),
        value: graph.input.name.clone(),
        shape,
        pooled: false,
        open_matmul: None,
        layers: Vec::new(),
    };
    for (index, node) in graph.nodes.iter().enumerate() {
        chain.node(node).map_err(|e| e.into_map_error(index))?;
    }
    Ok(Mapped {
        layers: chain.layers,
        shape: chain.shape,
        end: chain.value,
    })
}

/// A failure inside one node, before it is tagged with the node's index.
enum Fail {
    Node(NodeProblem),
    Tensor(String, TensorProblem),
}

impl Fail {
    fn into_map_error(self, index: usize) -> MapError {
        match self {
            Fail::Node(p) => MapError::Node(index, p),
            Fail::Tensor(name, p) => MapError::Tensor(name, p),
        }
    }
}

impl From<NodeProblem> for Fail {
    fn from(p: NodeProblem) -> Self {
        Fail::Node(p)
    }
}

type Step<T = ()> = Result<T, Fail>;

/// What `Gemm`'s and `MatMul`'s weight must look like, for refusals.
const SUPPORTED_GEMM: &str = "tickq imports Gemm with transA = 0, transB 0 or 1, and alpha and beta 1 (or values \
                              whose products with every weight and bias are exact in f32, such as powers of two)";

impl Chain<'_> {
    fn node(&mut self, node: &NodeProto) -> Step {
        if !is_default_domain(&node.domain) {
            return Err(NodeProblem::Domain {
                domain: node.domain.clone(),
            }
            .into());
        }
        let op = node.op_type.as_str();
        if op == "Constant" {
            let value = constant_value(node)?;
            for name in &node.output {
                self.constants.insert(name.clone(), value.clone());
            }
            return Ok(());
        }
        if op == "Add" {
            return self.add(node);
        }
        let known = [
            "Gemm",
            "MatMul",
            "Conv",
            "Relu",
            "Clip",
            "Tanh",
            "Sigmoid",
            "MaxPool",
            "AveragePool",
            "GlobalAveragePool",
            "Flatten",
            "Reshape",
            "Squeeze",
            "Identity",
            "Dropout",
        ];
        if !known.contains(&op) {
            return Err(NodeProblem::UnsupportedOperator.into());
        }
        let data = node.input.first().map(String::as_str).unwrap_or("");
        if data != self.value {
            return Err(NodeProblem::NotChain {
                input: data.to_string(),
                expected: self.value.clone(),
            }
            .into());
        }
        let outputs = if op == "Dropout" { 2 } else { 1 };
        if node.output.is_empty() || node.output.len() > outputs {
            return Err(NodeProblem::Outputs {
                count: node.output.len(),
                supported: if op == "Dropout" {
                    "one output, or an output and a mask no node reads"
                } else {
                    "one output"
                },
            }
            .into());
        }
        let open_matmul = self.open_matmul.take();
        match op {
            "Gemm" => self.gemm(node)?,
            "MatMul" => {
                self.matmul(node)?;
            }
            "Conv" => self.conv(node)?,
            "Relu" => self.push(LayerSpec::ReLU, None)?,
            "Tanh" => self.push(LayerSpec::Tanh, None)?,
            "Sigmoid" => self.push(LayerSpec::Sigmoid, None)?,
            "Clip" => self.clip(node)?,
            "MaxPool" | "AveragePool" => self.pool(node)?,
            "GlobalAveragePool" => {
                self.need_sequence()?;
                self.push(LayerSpec::GlobalAvgPool, None)?;
                self.pooled = true;
            }
            "Flatten" => self.flatten(node)?,
            "Reshape" => self.reshape(node)?,
            "Squeeze" => self.squeeze(node)?,
            "Dropout" => self.dropout(node)?,
            _ => {
                // Identity.
                self.open_matmul = open_matmul;
            }
        }
        self.value = node.output[0].clone();
        Ok(())
    }

    /// Appends a layer and moves the shape on, with the architecture's own shape rule.
    fn push(&mut self, spec: LayerSpec, params: Option<Params>) -> Step {
        self.shape = spec
            .output_shape(self.shape)
            .map_err(|reason| NodeProblem::Shape { reason })?;
        self.layers.push(MappedLayer { spec, params });
        Ok(())
    }

    /// A constant input of the node: an initializer or a `Constant` node's value.
    fn constant(
        &self,
        node: &NodeProto,
        position: usize,
        what: &'static str,
    ) -> Step<Option<&TensorProto>> {
        let Some(name) = node.input.get(position).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        self.lookup(name).map(Some).ok_or_else(|| {
            NodeProblem::NotConstant {
                position,
                what,
                input: name.clone(),
            }
            .into()
        })
    }

    fn lookup(&self, name: &str) -> Option<&TensorProto> {
        self.constants
            .get(name)
            .or_else(|| self.graph.constants.get(name).copied())
    }

    fn required(
        &self,
        node: &NodeProto,
        position: usize,
        what: &'static str,
    ) -> Step<&TensorProto> {
        self.constant(node, position, what)?
            .ok_or(Fail::Node(NodeProblem::MissingInput { position, what }))
    }

    /// Refuses inputs past `count` that are given.
    fn at_most_inputs(&self, node: &NodeProto, count: usize) -> Step {
        if node.input.iter().skip(count).any(|n| !n.is_empty()) {
            return Err(NodeProblem::Attribute {
                name: "inputs",
                value: format!("{} inputs", node.input.len()),
                supported: input_counts(&node.op_type),
            }
            .into());
        }
        Ok(())
    }

    fn need_vector(&self, op: &str) -> Step<usize> {
        if self.pooled {
            return Err(NodeProblem::Shape {
                reason: format!(
                    "{op} needs a vector input [N, F] but gets GlobalAveragePool's [N, C, 1]; add Flatten, \
                     Reshape or Squeeze before it"
                ),
            }
            .into());
        }
        match self.shape {
            Shape::Flat(n) => Ok(n),
            shape => Err(NodeProblem::Shape {
                reason: format!(
                    "{op} needs a vector input [N, F] but gets a {shape}; add Flatten or GlobalAveragePool before it"
                ),
            }
            .into()),
        }
    }

    fn need_sequence(&self) -> Step<(usize, usize)> {
        match self.shape {
            Shape::Seq { channels, time } => Ok((channels, time)),
            shape => Err(NodeProblem::Shape {
                reason: format!(
                    "needs a sequence input [N, C, T] but gets a {shape}; sequence operators come before \
                     GlobalAveragePool or Flatten"
                ),
            }
            .into()),
        }
    }

    fn gemm(&mut self, node: &NodeProto) -> Step {
        let n = self.need_vector("Gemm")?;
        self.at_most_inputs(node, 3)?;
        let attrs = Attrs::new(node, &["alpha", "beta", "transA", "transB"])?;
        let alpha = attrs.float("alpha", 1.0)?;
        let beta = attrs.float("beta", 1.0)?;
        let trans_a = attrs.int("transA", 0)?;
        let trans_b = attrs.int("transB", 0)?;
        if trans_a != 0 {
            return Err(attribute("transA", trans_a, SUPPORTED_GEMM));
        }
        if trans_b != 0 && trans_b != 1 {
            return Err(attribute("transB", trans_b, SUPPORTED_GEMM));
        }
        let b = self.required(node, 1, "weight B")?;
        let (shape, values) = floats(b)?;
        let [rows, cols] = shape[..] else {
            return Err(weight_shape("weight", b, format!("a matrix of {n} inputs")));
        };
        let (out, inputs) = if trans_b == 1 {
            (rows, cols)
        } else {
            (cols, rows)
        };
        if inputs != n {
            let expected = if trans_b == 1 {
                format!(
                    "[out, {n}] (transB = 1, as torch.nn.Linear exports), {n} being the input's width"
                )
            } else {
                format!("[{n}, out] (transB = 0), {n} being the input's width")
            };
            return Err(weight_shape("weight", b, expected));
        }
        let mut weight = if trans_b == 1 {
            values
        } else {
            transpose(&values, rows, cols)
        };
        scale_exactly(&mut weight, alpha, "alpha")?;
        let bias = match self.constant(node, 2, "bias C")? {
            Some(c) => {
                let mut bias = bias_values(c, out, true)?;
                scale_exactly(&mut bias, beta, "beta")?;
                bias
            }
            None => vec![0.0; out],
        };
        self.push(
            LayerSpec::Dense { name: None, out },
            Some(Params {
                weight_shape: vec![out, n],
                weight,
                bias,
                weight_name: b.name.clone(),
            }),
        )
    }

    fn matmul(&mut self, node: &NodeProto) -> Step {
        let n = self.need_vector("MatMul")?;
        self.at_most_inputs(node, 2)?;
        Attrs::new(node, &[])?;
        let b = self.required(node, 1, "weight")?;
        let (shape, values) = floats(b)?;
        let [rows, out] = shape[..] else {
            return Err(weight_shape("weight", b, format!("[{n}, out]")));
        };
        if rows != n {
            return Err(weight_shape(
                "weight",
                b,
                format!("[{n}, out], {n} being the input's width"),
            ));
        }
        self.push(
            LayerSpec::Dense { name: None, out },
            Some(Params {
                weight_shape: vec![out, n],
                weight: transpose(&values, rows, out),
                bias: vec![0.0; out],
                weight_name: b.name.clone(),
            }),
        )?;
        self.open_matmul = Some(self.layers.len() - 1);
        Ok(())
    }

    /// `Add`: the bias of the `MatMul` just before it, or a refusal (a residual connection, or a constant added
    /// anywhere else).
    fn add(&mut self, node: &NodeProto) -> Step {
        let open = self.open_matmul.take();
        let [left, right] = &node.input[..] else {
            return Err(NodeProblem::Attribute {
                name: "inputs",
                value: format!("{} inputs", node.input.len()),
                supported: "Add takes two inputs",
            }
            .into());
        };
        let (constant, data) = match (self.lookup(left), self.lookup(right)) {
            (None, Some(c)) => (c, left),
            (Some(c), None) => (c, right),
            (None, None) => {
                return Err(NodeProblem::Residual {
                    left: left.clone(),
                    right: right.clone(),
                }
                .into());
            }
            (Some(_), Some(_)) => {
                return Err(NodeProblem::NotChain {
                    input: left.clone(),
                    expected: self.value.clone(),
                }
                .into());
            }
        };
        if *data != self.value {
            return Err(NodeProblem::NotChain {
                input: data.clone(),
                expected: self.value.clone(),
            }
            .into());
        }
        if node.output.len() != 1 {
            return Err(NodeProblem::Outputs {
                count: node.output.len(),
                supported: "one output",
            }
            .into());
        }
        let Some(layer) = open else {
            return Err(NodeProblem::Shape {
                reason: "adds a constant that is not the bias of a MatMul right before it; tickq imports Add as \
                         MatMul's bias or refuses it"
                    .to_string(),
            }
            .into());
        };
        let out = self.layers[layer]
            .params
            .as_ref()
            .map_or(0, |p| p.bias.len());
        let bias = bias_values(constant, out, false)?;
        if let Some(params) = self.layers[layer].params.as_mut() {
            params.bias = bias;
        }
        self.value = node.output[0].clone();
        Ok(())
    }

    fn conv(&mut self, node: &NodeProto) -> Step {
        let (channels, _) = self.need_sequence()?;
        if self.pooled {
            return Err(NodeProblem::Shape {
                reason: "Conv after GlobalAveragePool is not supported".to_string(),
            }
            .into());
        }
        self.at_most_inputs(node, 3)?;
        let attrs = Attrs::new(
            node,
            &[
                "auto_pad",
                "dilations",
                "group",
                "kernel_shape",
                "pads",
                "strides",
            ],
        )?;
        let w = self.required(node, 1, "weight W")?;
        let (shape, weight) = floats(w)?;
        let [out, c_in, kernel] = shape[..] else {
            return Err(weight_shape(
                "weight",
                w,
                format!("[out, {channels}, kernel] (one spatial axis)"),
            ));
        };
        let group = attrs.int("group", 1)?;
        if group != 1 {
            return Err(attribute(
                "group",
                group,
                "tickq imports Conv with group = 1",
            ));
        }
        if c_in != channels {
            return Err(weight_shape(
                "weight",
                w,
                format!("[out, {channels}, kernel], {channels} being the input's channels"),
            ));
        }
        if let Some(k) = attrs.ints("kernel_shape")?
            && k != [kernel as i64]
        {
            return Err(attribute_list(
                "kernel_shape",
                &k,
                "kernel_shape must be the weight's last dimension",
            ));
        }
        let stride = attrs.axis(
            "strides",
            1,
            "tickq imports Conv with one spatial axis and strides >= 1",
        )?;
        let dilation = attrs.axis(
            "dilations",
            1,
            "tickq imports Conv with one spatial axis and dilations >= 1",
        )?;
        attrs.no_auto_pad()?;
        let causal = (kernel.saturating_sub(1) * dilation) as i64;
        let pads = attrs.ints("pads")?.unwrap_or_else(|| vec![0, 0]);
        let padding = match pads[..] {
            [0, 0] => Padding::Valid,
            [b, 0] if b == causal => Padding::Causal,
            _ => {
                return Err(attribute_list(
                    "pads",
                    &pads,
                    "tickq imports Conv pads [0, 0] (valid) or [(kernel - 1) * dilation, 0] (causal)",
                ));
            }
        };
        let bias = match self.constant(node, 2, "bias B")? {
            Some(b) => bias_values(b, out, false)?,
            None => vec![0.0; out],
        };
        self.push(
            LayerSpec::Conv1d {
                name: None,
                out,
                kernel,
                stride,
                dilation,
                padding,
            },
            Some(Params {
                weight_shape: vec![out, c_in, kernel],
                weight,
                bias,
                weight_name: w.name.clone(),
            }),
        )
    }

    fn clip(&mut self, node: &NodeProto) -> Step {
        let (min, max) = if self.graph.opset >= 11 {
            self.at_most_inputs(node, 3)?;
            Attrs::new(node, &[])?;
            let bound = |position, what| -> Step<Option<f32>> {
                match self.constant(node, position, what)? {
                    Some(t) => {
                        let (_, v) = floats(t)?;
                        match v[..] {
                            [x] => Ok(Some(x)),
                            _ => Err(weight_shape("bound", t, "a scalar".to_string())),
                        }
                    }
                    None => Ok(None),
                }
            };
            (bound(1, "min")?, bound(2, "max")?)
        } else {
            self.at_most_inputs(node, 1)?;
            let attrs = Attrs::new(node, &["min", "max"])?;
            (attrs.float_opt("min")?, attrs.float_opt("max")?)
        };
        let min = min.filter(|v| *v != f32::MIN && v.is_finite());
        let max = max.filter(|v| *v != f32::MAX && v.is_finite());
        let spec = match (min, max) {
            (Some(0.0), None) => LayerSpec::ReLU,
            (Some(0.0), Some(6.0)) => LayerSpec::ReLU6,
            (Some(min), Some(max)) if min < max => LayerSpec::Clamp { min, max },
            _ => {
                return Err(NodeProblem::Attribute {
                    name: "min/max",
                    value: format!("{} / {}", bound_text(min), bound_text(max)),
                    supported: "tickq imports Clip with min 0 and no max (ReLU), [0, 6] (ReLU6) or finite \
                                min < max (Clamp)",
                }
                .into());
            }
        };
        self.push(spec, None)
    }

    fn pool(&mut self, node: &NodeProto) -> Step {
        let (_, time) = self.need_sequence()?;
        self.at_most_inputs(node, 1)?;
        let average = node.op_type == "AveragePool";
        let known: &[&str] = if average {
            &[
                "auto_pad",
                "ceil_mode",
                "count_include_pad",
                "dilations",
                "kernel_shape",
                "pads",
                "strides",
            ]
        } else {
            &[
                "auto_pad",
                "ceil_mode",
                "dilations",
                "kernel_shape",
                "pads",
                "storage_order",
                "strides",
            ]
        };
        let attrs = Attrs::new(node, known)?;
        let kernel = match attrs.ints("kernel_shape")? {
            Some(k) => match k[..] {
                [k] if k >= 1 => k as usize,
                _ => {
                    return Err(attribute_list(
                        "kernel_shape",
                        &k,
                        "tickq imports pooling over one spatial axis",
                    ));
                }
            },
            None => {
                return Err(NodeProblem::Attribute {
                    name: "kernel_shape",
                    value: "missing".to_string(),
                    supported: "pooling needs kernel_shape",
                }
                .into());
            }
        };
        let stride = attrs.axis(
            "strides",
            1,
            "tickq imports pooling over one spatial axis with strides >= 1",
        )?;
        let dilation = attrs.axis("dilations", 1, "tickq imports pooling with dilations [1]")?;
        if dilation != 1 {
            return Err(attribute_list(
                "dilations",
                &[dilation as i64],
                "tickq imports pooling with dilations [1]",
            ));
        }
        if let Some(pads) = attrs.ints("pads")?
            && pads.iter().any(|&p| p != 0)
        {
            return Err(attribute_list(
                "pads",
                &pads,
                "tickq imports pooling without padding",
            ));
        }
        attrs.no_auto_pad()?;
        let ceil = attrs.int("ceil_mode", 0)?;
        // ceil_mode changes nothing when the windows tile the input exactly.
        if ceil != 0 && (time < kernel || (time - kernel) % stride != 0) {
            return Err(attribute(
                "ceil_mode",
                ceil,
                "tickq imports ceil_mode 1 only where the windows tile the input exactly (as ceil_mode 0)",
            ));
        }
        let stride = (stride != kernel).then_some(stride);
        let spec = if average {
            LayerSpec::AvgPool1d { kernel, stride }
        } else {
            LayerSpec::MaxPool1d { kernel, stride }
        };
        self.push(spec, None)
    }

    /// Ends the flattening that `GlobalAveragePool` started, flattens a sequence, or passes a vector through.
    fn flatten_here(&mut self) -> Step {
        if self.pooled {
            self.pooled = false;
            return Ok(());
        }
        match self.shape {
            Shape::Seq { .. } => self.push(LayerSpec::Flatten, None),
            Shape::Flat(_) => Ok(()),
        }
    }

    fn flatten(&mut self, node: &NodeProto) -> Step {
        self.at_most_inputs(node, 1)?;
        let attrs = Attrs::new(node, &["axis"])?;
        let rank = match self.shape {
            Shape::Seq { .. } => 3,
            Shape::Flat(_) if self.pooled => 3,
            Shape::Flat(_) => 2,
        };
        let axis = attrs.int("axis", 1)?;
        if axis != 1 && axis != 1 - rank {
            return Err(attribute(
                "axis",
                axis,
                "tickq imports Flatten with axis 1 (the batch axis kept)",
            ));
        }
        self.flatten_here()
    }

    fn reshape(&mut self, node: &NodeProto) -> Step {
        self.at_most_inputs(node, 2)?;
        let attrs = Attrs::new(node, &["allowzero"])?;
        let allow_zero = attrs.int("allowzero", 0)? != 0;
        let t = self.required(node, 1, "shape")?;
        let (_, target) = ints(t)?;
        let width = self.shape.len() as i64;
        let batch_ok = |a: i64| {
            (a == 0 && !allow_zero) || self.graph.input.batch.is_some_and(|b| b as i64 == a)
        };
        let flattens = match target[..] {
            [a, b] => (batch_ok(a) && (b == -1 || b == width)) || (a == -1 && b == width),
            _ => false,
        };
        if !flattens {
            return Err(NodeProblem::Shape {
                reason: format!(
                    "reshapes to {target:?}, which is not a flatten of the {} values per sample; tickq imports \
                     Reshape to [0, -1], [-1, {width}], [N, -1] or [N, {width}] (N the input's fixed batch size)",
                    width
                ),
            }
            .into());
        }
        self.flatten_here()
    }

    fn squeeze(&mut self, node: &NodeProto) -> Step {
        let axes = if self.graph.opset >= 13 {
            self.at_most_inputs(node, 2)?;
            Attrs::new(node, &[])?;
            match self.constant(node, 1, "axes")? {
                Some(t) => Some(ints(t)?.1),
                None => None,
            }
        } else {
            self.at_most_inputs(node, 1)?;
            Attrs::new(node, &["axes"])?.ints("axes")?
        };
        let squeezes_time = matches!(axes.as_deref(), Some([2]) | Some([-1]));
        if !self.pooled || !squeezes_time {
            return Err(NodeProblem::Shape {
                reason: format!(
                    "squeezes axes {}; tickq imports Squeeze only of the time axis (axes [2] or [-1]) right after \
                     GlobalAveragePool",
                    axes.map_or("(all of size 1)".to_string(), |a| format!("{a:?}"))
                ),
            }
            .into());
        }
        self.pooled = false;
        Ok(())
    }

    fn dropout(&mut self, node: &NodeProto) -> Step {
        self.at_most_inputs(node, 3)?;
        Attrs::new(node, &["ratio", "seed", "is_test"])?;
        if let Some(t) = self.constant(node, 2, "training_mode")? {
            let (_, v) = match t.data_type {
                BOOL => bools(t),
                _ => super::tensor::ints(t),
            }
            .map_err(|p| Fail::Tensor(t.name.clone(), p))?;
            if v.iter().any(|&x| x != 0) {
                return Err(NodeProblem::Attribute {
                    name: "training_mode",
                    value: "true".to_string(),
                    supported: "tickq imports Dropout for inference (training_mode false), where it does nothing",
                }
                .into());
            }
        }
        Ok(())
    }
}

/// `TensorProto.DataType` BOOL.
const BOOL: i32 = 9;

/// A BOOL tensor's values (`Dropout`'s `training_mode`), read from `raw_data` or `int32_data`.
fn bools(t: &TensorProto) -> Result<(Vec<usize>, Vec<i64>), TensorProblem> {
    let (dims, _) = super::tensor::dims(t)?;
    let values = if t.raw_data.is_empty() {
        t.int32_data.iter().map(|&v| i64::from(v)).collect()
    } else {
        t.raw_data.iter().map(|&v| i64::from(v)).collect()
    };
    Ok((dims, values))
}

fn bound_text(v: Option<f32>) -> String {
    v.map_or("none".to_string(), |v| v.to_string())
}

/// The operator's accepted input counts, for refusals.
fn input_counts(op: &str) -> &'static str {
    match op {
        "Gemm" | "Conv" | "Clip" | "Dropout" => "this operator takes at most 3 inputs",
        "MatMul" | "Reshape" | "Squeeze" => "this operator takes at most 2 inputs",
        _ => "this operator takes one input",
    }
}

fn floats(t: &TensorProto) -> Step<(Vec<usize>, Vec<f32>)> {
    super::tensor::floats(t).map_err(|p| Fail::Tensor(t.name.clone(), p))
}

fn ints(t: &TensorProto) -> Step<(Vec<usize>, Vec<i64>)> {
    super::tensor::ints(t).map_err(|p| Fail::Tensor(t.name.clone(), p))
}

fn weight_shape(what: &'static str, t: &TensorProto, expected: String) -> Fail {
    Fail::Node(NodeProblem::TensorShape {
        what,
        tensor: t.name.clone(),
        got: t.dims.clone(),
        expected,
    })
}

fn attribute(name: &'static str, value: impl ToString, supported: &'static str) -> Fail {
    Fail::Node(NodeProblem::Attribute {
        name,
        value: value.to_string(),
        supported,
    })
}

fn attribute_list(name: &'static str, value: &[i64], supported: &'static str) -> Fail {
    attribute(name, format!("{value:?}"), supported)
}

/// A bias of `out` values: shape `[out]`, or `[1, out]` where `row` allows it (Gemm's broadcast `C`).
fn bias_values(t: &TensorProto, out: usize, row: bool) -> Step<Vec<f32>> {
    let (shape, values) = floats(t)?;
    match shape[..] {
        [n] if n == out => Ok(values),
        [1, n] if row && n == out => Ok(values),
        _ => Err(weight_shape(
            "bias",
            t,
            if row {
                format!("[{out}] or [1, {out}]")
            } else {
                format!("[{out}]")
            },
        )),
    }
}

/// `[rows, cols]` row-major to `[cols, rows]` row-major.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Multiplies every value by `factor` when every product is exact in f32; refuses the attribute otherwise.
fn scale_exactly(values: &mut [f32], factor: f32, name: &'static str) -> Step {
    if factor == 1.0 {
        return Ok(());
    }
    let exact = values.iter().all(|&v| {
        let product = f64::from(v) * f64::from(factor);
        f64::from(product as f32) == product && (product as f32).is_finite()
    });
    if !exact || !factor.is_finite() {
        return Err(attribute(name, factor, SUPPORTED_GEMM));
    }
    values.iter_mut().for_each(|v| *v *= factor);
    Ok(())
}

/// A node's attributes, with every name outside the operator's known set refused.
struct Attrs<'a> {
    list: &'a [AttributeProto],
}

impl<'a> Attrs<'a> {
    fn new(node: &'a NodeProto, known: &[&str]) -> Step<Self> {
        if let Some(a) = node
            .attribute
            .iter()
            .find(|a| !known.contains(&a.name.as_str()))
        {
            return Err(NodeProblem::Attribute {
                name: "(unknown)",
                value: format!("\"{}\"", crate::limits::excerpt(&a.name)),
                supported: "an attribute this operator does not have in the ONNX specification, or one tickq \
                            does not read",
            }
            .into());
        }
        Ok(Self {
            list: &node.attribute,
        })
    }

    fn get(&self, name: &str, kind: i32) -> Step<Option<&'a AttributeProto>> {
        let Some(a) = self.list.iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        // Files from old writers may leave the type unset; the value fields then decide.
        if a.r#type != kind && a.r#type != 0 {
            return Err(NodeProblem::Attribute {
                name: "(type)",
                value: format!("{name} of attribute type {}", a.r#type),
                supported: "the attribute type the ONNX specification gives it",
            }
            .into());
        }
        Ok(Some(a))
    }

    fn float(&self, name: &str, default: f32) -> Step<f32> {
        Ok(self.get(name, at::FLOAT)?.map_or(default, |a| a.f))
    }

    fn float_opt(&self, name: &str) -> Step<Option<f32>> {
        Ok(self.get(name, at::FLOAT)?.map(|a| a.f))
    }

    fn int(&self, name: &str, default: i64) -> Step<i64> {
        Ok(self.get(name, at::INT)?.map_or(default, |a| a.i))
    }

    fn ints(&self, name: &str) -> Step<Option<Vec<i64>>> {
        Ok(self.get(name, at::INTS)?.map(|a| a.ints.clone()))
    }

    /// A per-axis attribute of one spatial axis (`strides`, `dilations`), at least 1.
    fn axis(&self, name: &'static str, default: usize, supported: &'static str) -> Step<usize> {
        match self.ints(name)? {
            None => Ok(default),
            Some(v) => match v[..] {
                [x] if x >= 1 && x <= crate::limits::MAX_UNITS as i64 => Ok(x as usize),
                _ => Err(attribute_list(name, &v, supported)),
            },
        }
    }

    /// Refuses `auto_pad` other than `NOTSET` or `VALID`.
    fn no_auto_pad(&self) -> Step {
        let Some(a) = self.get("auto_pad", at::STRING)? else {
            return Ok(());
        };
        match a.s.as_slice() {
            b"NOTSET" | b"VALID" | b"" => Ok(()),
            other => Err(attribute(
                "auto_pad",
                String::from_utf8_lossy(other),
                "tickq imports auto_pad NOTSET (with explicit pads) or VALID",
            )),
        }
    }
}

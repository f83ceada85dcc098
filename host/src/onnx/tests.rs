//! Graphs built in Rust with the importer's own messages (prost encodes what it decodes), one per operator and
//! per refusal, with the exact messages.

use std::path::Path;

use prost::Message;

use super::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto,
    ValueInfoProto, attribute_type as at, data_type,
};
use super::*;
use crate::model::{Layer, Padding};

fn raw(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A FLOAT initializer stored as `raw_data`, as torch writes them.
fn init(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        raw_data: raw(values),
        ..TensorProto::default()
    }
}

fn init_i64(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: vec![values.len() as i64],
        data_type: data_type::INT64,
        int64_data: values.to_vec(),
        ..TensorProto::default()
    }
}

/// `0.01 * i` for `i` in `0..n`, a weight whose every value is distinct.
fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32 * 0.01 - 0.3).collect()
}

fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: String::new(),
        op_type: op.to_string(),
        ..NodeProto::default()
    }
}

trait NodeExt {
    fn named(self, name: &str) -> Self;
    fn int(self, name: &str, v: i64) -> Self;
    fn float(self, name: &str, v: f32) -> Self;
    fn ints(self, name: &str, v: &[i64]) -> Self;
    fn string(self, name: &str, v: &str) -> Self;
}

impl NodeExt for NodeProto {
    fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }
    fn int(mut self, name: &str, v: i64) -> Self {
        self.attribute.push(AttributeProto {
            name: name.to_string(),
            r#type: at::INT,
            i: v,
            ..AttributeProto::default()
        });
        self
    }
    fn float(mut self, name: &str, v: f32) -> Self {
        self.attribute.push(AttributeProto {
            name: name.to_string(),
            r#type: at::FLOAT,
            f: v,
            ..AttributeProto::default()
        });
        self
    }
    fn ints(mut self, name: &str, v: &[i64]) -> Self {
        self.attribute.push(AttributeProto {
            name: name.to_string(),
            r#type: at::INTS,
            ints: v.to_vec(),
            ..AttributeProto::default()
        });
        self
    }
    fn string(mut self, name: &str, v: &str) -> Self {
        self.attribute.push(AttributeProto {
            name: name.to_string(),
            r#type: at::STRING,
            s: v.as_bytes().to_vec(),
            ..AttributeProto::default()
        });
        self
    }
}

fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| match d {
                            Some(v) => Dimension {
                                dim_value: Some(*v),
                                dim_param: None,
                            },
                            None => Dimension {
                                dim_value: None,
                                dim_param: Some("batch".to_string()),
                            },
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// A graph under construction: input `x` with the given per-sample shape and a dynamic batch, output `y`.
struct G {
    opset: i64,
    input: Vec<Option<i64>>,
    output: Option<ValueInfoProto>,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
}

fn g(sample: &[i64]) -> G {
    let mut input = vec![None];
    input.extend(sample.iter().map(|&d| Some(d)));
    G {
        opset: 17,
        input,
        output: None,
        nodes: Vec::new(),
        inits: Vec::new(),
    }
}

impl G {
    fn n(mut self, node: NodeProto) -> Self {
        self.nodes.push(node);
        self
    }
    fn i(mut self, t: TensorProto) -> Self {
        self.inits.push(t);
        self
    }
    fn opset(mut self, v: i64) -> Self {
        self.opset = v;
        self
    }
    fn model(&self) -> ModelProto {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            producer_name: "test".to_string(),
            graph: Some(GraphProto {
                node: self.nodes.clone(),
                name: "g".to_string(),
                initializer: self.inits.clone(),
                sparse_initializer: Vec::new(),
                input: vec![value("x", &self.input)],
                output: vec![
                    self.output
                        .clone()
                        .unwrap_or_else(|| value("y", &[None, None])),
                ],
            }),
        }
    }
    fn import(&self) -> Result<OnnxImport, OnnxError> {
        import_model(&self.model())
    }
    fn ok(&self) -> OnnxImport {
        self.import().unwrap_or_else(|e| panic!("{e}"))
    }
    fn err(&self) -> String {
        match self.import() {
            Ok(i) => panic!("imported: {:?}", i.model.arch),
            Err(e) => e.to_string(),
        }
    }
}

fn import_model(model: &ModelProto) -> Result<OnnxImport, OnnxError> {
    import_onnx_bytes(&model.encode_to_vec(), Path::new("t.onnx"))
}

/// `x [N, 4] -> Gemm(W [3, 4], transB = 1) -> y`: the smallest model, to which the refusals add.
fn dense_head() -> G {
    g(&[4])
        .n(node("Gemm", &["x", "w", "b"], &["y"]).int("transB", 1))
        .i(init("w", &[3, 4], &ramp(12)))
        .i(init("b", &[3], &[0.5, -0.5, 1.0]))
}

fn kinds(import: &OnnxImport) -> Vec<&'static str> {
    import
        .model
        .arch
        .layers
        .iter()
        .map(LayerSpec::kind)
        .collect()
}

fn dense_weight(import: &OnnxImport, layer: usize) -> (Vec<f32>, Vec<f32>) {
    match &import.model.layers[layer] {
        Layer::Dense(d) => (d.weight.iter().copied().collect(), d.bias.to_vec()),
        other => panic!("layer {layer} is {}", other.kind()),
    }
}

#[test]
fn gemm_with_transposed_weight_is_a_dense_layer() {
    let import = dense_head().ok();
    assert_eq!(kinds(&import), ["dense"]);
    assert_eq!(import.input.layout, InputShape::Vector { features: 4 });
    assert_eq!(
        (import.input.name.as_str(), import.output.as_str()),
        ("x", "y")
    );
    let (w, b) = dense_weight(&import, 0);
    assert_eq!(w, ramp(12));
    assert_eq!(b, [0.5, -0.5, 1.0]);
    // The name comes from the file; the layer from the weight's name only when it is `NAME.weight`.
    assert_eq!(import.model.arch.name, "t");
    assert_eq!(import.model.state_dict()[0].0, "fc1.weight");
    let logits = import
        .model
        .forward(ndarray::arr2(&[[1.0f32, 0.0, 0.0, 2.0]]).view());
    let want0 = -0.3 + 2.0 * (0.03 - 0.3) + 0.5;
    assert!((logits[[0, 0]] - want0).abs() < 1e-6, "{logits}");
}

#[test]
fn gemm_without_transposition_alpha_beta_and_no_bias() {
    // B [4, 3] (transB = 0) is the transposed [3, 4] weight.
    let b = ramp(12);
    let mut bt = vec![0.0; 12];
    for r in 0..3 {
        for c in 0..4 {
            bt[c * 3 + r] = b[r * 4 + c];
        }
    }
    let import = g(&[4])
        .n(node("Gemm", &["x", "w", "c"], &["y"])
            .float("alpha", 2.0)
            .float("beta", 0.5))
        .i(init("w", &[4, 3], &bt))
        .i(init("c", &[1, 3], &[1.0, 2.0, -4.0]))
        .ok();
    let (w, bias) = dense_weight(&import, 0);
    assert_eq!(w, b.iter().map(|v| v * 2.0).collect::<Vec<_>>());
    assert_eq!(bias, [0.5, 1.0, -2.0]);
    let import = g(&[4])
        .n(node("Gemm", &["x", "w"], &["y"]).int("transB", 1))
        .i(init("w", &[3, 4], &b))
        .ok();
    assert_eq!(dense_weight(&import, 0).1, [0.0; 3]);
}

#[test]
fn gemm_refusals() {
    let msg = g(&[4])
        .n(node("Gemm", &["x", "w"], &["y"])
            .named("head")
            .int("transA", 1))
        .i(init("w", &[3, 4], &ramp(12)))
        .err();
    assert_eq!(
        msg,
        "t.onnx: node 0 \"head\" (Gemm): attribute transA = 1 is not supported; tickq imports Gemm with \
         transA = 0, transB 0 or 1, and alpha and beta 1 (or values whose products with every weight and bias are \
         exact in f32, such as powers of two)"
    );
    let msg = g(&[4])
        .n(node("Gemm", &["x", "w"], &["y"])
            .int("transB", 1)
            .float("alpha", 0.3))
        .i(init("w", &[3, 4], &ramp(12)))
        .err();
    assert!(
        msg.starts_with("t.onnx: node 0 (Gemm): attribute alpha = 0.3 is not supported"),
        "{msg}"
    );
    // A weight of the wrong width names it, its shape and what fits.
    let msg = g(&[5])
        .n(dense_head().nodes[0].clone())
        .i(init("w", &[3, 4], &ramp(12)))
        .err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (Gemm): weight \"w\" has shape [3, 4]; expected [out, 5] (transB = 1, as torch.nn.Linear \
         exports), 5 being the input's width"
    );
    let msg = g(&[4])
        .n(node("Gemm", &["x", "w", "b"], &["y"]).int("transB", 1))
        .i(init("w", &[3, 4], &ramp(12)))
        .i(init("b", &[4], &[0.0; 4]))
        .err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (Gemm): bias \"b\" has shape [4]; expected [3] or [1, 3]"
    );
    // A computed weight.
    let msg = g(&[4])
        .n(node("Relu", &["x"], &["r"]))
        .n(node("Gemm", &["r", "x"], &["y"]).int("transB", 1))
        .err();
    assert_eq!(
        msg,
        "t.onnx: node 1 (Gemm): input 1 (weight B) \"x\" must be a constant (an initializer or a Constant node)"
    );
}

#[test]
fn matmul_plus_add_is_a_dense_layer_with_its_bias() {
    let w = ramp(12); // [4, 3]
    for order in [["m", "b"], ["b", "m"]] {
        let import = g(&[4])
            .n(node("MatMul", &["x", "w"], &["m"]))
            .n(node("Add", &order, &["y"]))
            .i(init("w", &[4, 3], &w))
            .i(init("b", &[3], &[1.0, 2.0, 3.0]))
            .ok();
        assert_eq!(kinds(&import), ["dense"]);
        let (weight, bias) = dense_weight(&import, 0);
        assert_eq!(weight[1], w[3], "transposed to [out, in]");
        assert_eq!(weight[4], w[1]);
        assert_eq!(bias, [1.0, 2.0, 3.0]);
    }
    // Without an Add the bias is zero.
    let import = g(&[4])
        .n(node("MatMul", &["x", "w"], &["y"]))
        .i(init("w", &[4, 3], &w))
        .ok();
    assert_eq!(dense_weight(&import, 0).1, [0.0; 3]);
    // An Add of a constant anywhere else is refused.
    let msg = dense_head().n(node("Add", &["y", "b"], &["z"])).err();
    assert!(
        msg.starts_with(
            "t.onnx: node 1 (Add): adds a constant that is not the bias of a MatMul right before it"
        ),
        "{msg}"
    );
}

#[test]
fn a_residual_add_is_refused() {
    let msg = g(&[3])
        .n(node("MatMul", &["x", "w"], &["m"]))
        .n(node("Relu", &["m"], &["r"]))
        .n(node("Add", &["r", "x"], &["y"]).named("/res/Add"))
        .i(init("w", &[3, 3], &ramp(9)))
        .err();
    assert_eq!(
        msg,
        "t.onnx: node 2 \"/res/Add\" (Add): adds two computed values (\"r\" and \"x\"), a residual connection; \
         tickq's Sequential models are one chain of layers, so skip connections cannot be expressed"
    );
}

/// `x [N, 2, 8] -> Conv(W [3, 2, 3]) with the given attributes -> GlobalAveragePool -> Flatten -> Gemm -> y`.
fn conv_model(conv: NodeProto) -> G {
    g(&[2, 8])
        .n(conv)
        .n(node("GlobalAveragePool", &["c"], &["p"]))
        .n(node("Flatten", &["p"], &["f"]).int("axis", 1))
        .n(node("Gemm", &["f", "fc.weight", "fc.bias"], &["y"]).int("transB", 1))
        .i(init("conv1.weight", &[3, 2, 3], &ramp(18)))
        .i(init("conv1.bias", &[3], &[0.1, 0.2, 0.3]))
        .i(init("fc.weight", &[2, 3], &ramp(6)))
        .i(init("fc.bias", &[2], &[0.0, 0.0]))
}

fn conv_node() -> NodeProto {
    node("Conv", &["x", "conv1.weight", "conv1.bias"], &["c"])
}

#[test]
fn conv_maps_padding_strides_and_dilations() {
    let import = conv_model(conv_node().ints("pads", &[0, 0]).ints("kernel_shape", &[3])).ok();
    assert_eq!(kinds(&import), ["conv1d", "global_avg_pool", "dense"]);
    assert_eq!(
        import.input.layout,
        InputShape::ChannelsFirst {
            channels: 2,
            time: 8
        }
    );
    assert_eq!(
        (
            import.model.arch.input.time_steps,
            import.model.arch.input.features
        ),
        (8, 2)
    );
    // Layers are named after their PyTorch modules.
    assert_eq!(import.model.state_dict()[0].0, "conv1.weight");
    assert_eq!(import.model.state_dict()[2].0, "fc.weight");
    let Layer::Conv1d(c) = &import.model.layers[0] else {
        panic!()
    };
    assert_eq!(c.weight.iter().copied().collect::<Vec<_>>(), ramp(18));
    assert_eq!(c.padding, Padding::Valid);
    let import = conv_model(
        conv_node()
            .ints("pads", &[4, 0])
            .ints("dilations", &[2])
            .ints("strides", &[2])
            .string("auto_pad", "NOTSET"),
    )
    .ok();
    assert_eq!(
        import.model.arch.layers[0],
        LayerSpec::Conv1d {
            name: Some("conv1".to_string()),
            out: 3,
            kernel: 3,
            stride: 2,
            dilation: 2,
            padding: Padding::Causal
        }
    );
}

#[test]
fn conv_refusals_name_the_attribute_and_value() {
    let msg = conv_model(conv_node().named("c1").ints("pads", &[1, 1])).err();
    assert_eq!(
        msg,
        "t.onnx: node 0 \"c1\" (Conv): attribute pads = [1, 1] is not supported; tickq imports Conv pads [0, 0] \
         (valid) or [(kernel - 1) * dilation, 0] (causal)"
    );
    let msg = conv_model(conv_node().int("group", 2)).err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (Conv): attribute group = 2 is not supported; tickq imports Conv with group = 1"
    );
    let msg = conv_model(conv_node().string("auto_pad", "SAME_UPPER")).err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (Conv): attribute auto_pad = SAME_UPPER is not supported; tickq imports auto_pad NOTSET \
         (with explicit pads) or VALID"
    );
    let msg = conv_model(conv_node().ints("strides", &[1, 1])).err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (Conv): attribute strides = [1, 1] is not supported; tickq imports Conv with one spatial \
         axis and strides >= 1"
    );
    let msg = conv_model(conv_node().int("spatial", 1)).err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (Conv): attribute (unknown) = \"spatial\" is not supported; an attribute this operator \
         does not have in the ONNX specification, or one tickq does not read"
    );
    // A 2-D convolution's weight.
    let msg = conv_model(conv_node())
        .i(init("conv1.weight", &[3, 2, 1, 3], &ramp(18)))
        .err();
    assert!(msg.contains("weight \"conv1.weight\" has shape"), "{msg}");
    // A convolution on a vector input.
    let msg = g(&[4]).n(conv_node()).err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (Conv): needs a sequence input [N, C, T] but gets a vector of 4; sequence operators come \
         before GlobalAveragePool or Flatten"
    );
}

#[test]
fn activations_and_clip_forms() {
    let with = |act: NodeProto, extra: Vec<TensorProto>, opset: i64| {
        let mut m = g(&[4])
            .opset(opset)
            .n(node("Gemm", &["x", "w"], &["h"]).int("transB", 1))
            .n(act)
            .n(node("Gemm", &["a", "w2"], &["y"]).int("transB", 1))
            .i(init("w", &[4, 4], &ramp(16)))
            .i(init("w2", &[2, 4], &ramp(8)));
        for t in extra {
            m = m.i(t);
        }
        m
    };
    for (op, kind) in [("Relu", "relu"), ("Tanh", "tanh"), ("Sigmoid", "sigmoid")] {
        let import = with(node(op, &["h"], &["a"]), vec![], 17).ok();
        assert_eq!(kinds(&import)[1], kind);
    }
    let lo = init("lo", &[], &[0.0]);
    let six = init("six", &[], &[6.0]);
    let one = init("one", &[], &[1.0]);
    let import = with(
        node("Clip", &["h", "lo", "six"], &["a"]),
        vec![lo.clone(), six.clone()],
        13,
    )
    .ok();
    assert_eq!(import.model.arch.layers[1], LayerSpec::ReLU6);
    let import = with(node("Clip", &["h", "lo"], &["a"]), vec![lo.clone()], 13).ok();
    assert_eq!(import.model.arch.layers[1], LayerSpec::ReLU);
    let minus = init("minus", &[], &[-1.0]);
    let import = with(
        node("Clip", &["h", "minus", "one"], &["a"]),
        vec![minus, one],
        13,
    )
    .ok();
    assert_eq!(
        import.model.arch.layers[1],
        LayerSpec::Clamp {
            min: -1.0,
            max: 1.0
        }
    );
    // Before opset 11 the bounds are attributes.
    let import = with(
        node("Clip", &["h"], &["a"])
            .float("min", 0.0)
            .float("max", 6.0),
        vec![],
        9,
    )
    .ok();
    assert_eq!(import.model.arch.layers[1], LayerSpec::ReLU6);
    // A bound from a Constant node.
    let import = g(&[4])
        .n(node("Constant", &[], &["k6"]).float("value_float", 6.0))
        .n(node("Gemm", &["x", "w"], &["h"]).int("transB", 1))
        .n(node("Clip", &["h", "lo", "k6"], &["a"]))
        .n(node("Gemm", &["a", "w2"], &["y"]).int("transB", 1))
        .i(init("w", &[4, 4], &ramp(16)))
        .i(init("w2", &[2, 4], &ramp(8)))
        .i(lo)
        .ok();
    assert_eq!(import.model.arch.layers[1], LayerSpec::ReLU6);
    let msg = with(node("Clip", &["h", "", "six"], &["a"]), vec![six], 13).err();
    assert_eq!(
        msg,
        "t.onnx: node 1 (Clip): attribute min/max = none / 6 is not supported; tickq imports Clip with min 0 and \
         no max (ReLU), [0, 6] (ReLU6) or finite min < max (Clamp)"
    );
}

/// `x [N, 2, 8] -> POOL -> Flatten -> Gemm -> y`.
fn pool_model(pool: NodeProto) -> G {
    g(&[2, 8])
        .n(pool)
        .n(node("Flatten", &["p"], &["f"]))
        .n(node("Gemm", &["f", "w"], &["y"]).int("transB", 1))
}

#[test]
fn pooling_maps_kernel_and_stride() {
    let import = pool_model(
        node("MaxPool", &["x"], &["p"])
            .ints("kernel_shape", &[2])
            .ints("strides", &[2])
            .ints("pads", &[0, 0])
            .int("ceil_mode", 1),
    )
    .i(init("w", &[2, 8], &ramp(16)))
    .ok();
    assert_eq!(kinds(&import), ["maxpool1d", "flatten", "dense"]);
    assert_eq!(
        import.model.arch.layers[0],
        LayerSpec::MaxPool1d {
            kernel: 2,
            stride: None
        }
    );
    // ONNX's default stride is 1, not the kernel.
    let import = pool_model(
        node("AveragePool", &["x"], &["p"])
            .ints("kernel_shape", &[3])
            .int("count_include_pad", 1),
    )
    .i(init("w", &[2, 12], &ramp(24)))
    .ok();
    assert_eq!(
        import.model.arch.layers[0],
        LayerSpec::AvgPool1d {
            kernel: 3,
            stride: Some(1)
        }
    );
    let msg = pool_model(
        node("MaxPool", &["x"], &["p"])
            .ints("kernel_shape", &[2])
            .ints("pads", &[1, 0]),
    )
    .i(init("w", &[2, 8], &ramp(16)))
    .err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (MaxPool): attribute pads = [1, 0] is not supported; tickq imports pooling without padding"
    );
    let msg = pool_model(
        node("MaxPool", &["x"], &["p"])
            .ints("kernel_shape", &[3])
            .ints("strides", &[2])
            .int("ceil_mode", 1),
    )
    .err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (MaxPool): attribute ceil_mode = 1 is not supported; tickq imports ceil_mode 1 only where \
         the windows tile the input exactly (as ceil_mode 0)"
    );
    let msg =
        pool_model(node("MaxPool", &["x", "idx"], &["p", "i"]).ints("kernel_shape", &[2])).err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (MaxPool): has 2 outputs; tickq imports this operator with one output"
    );
}

#[test]
fn global_pooling_is_followed_by_a_flatten_reshape_or_squeeze() {
    let tail = |n: NodeProto, extra: Option<TensorProto>| {
        let mut m = g(&[2, 8])
            .n(node("GlobalAveragePool", &["x"], &["p"]))
            .n(n)
            .n(node("Gemm", &["f", "w"], &["y"]).int("transB", 1))
            .i(init("w", &[2, 2], &ramp(4)));
        if let Some(t) = extra {
            m = m.i(t);
        }
        m
    };
    for (n, extra) in [
        (node("Flatten", &["p"], &["f"]), None),
        (
            node("Reshape", &["p", "s"], &["f"]),
            Some(init_i64("s", &[0, -1])),
        ),
        (
            node("Reshape", &["p", "s"], &["f"]),
            Some(init_i64("s", &[-1, 2])),
        ),
        (
            node("Squeeze", &["p", "s"], &["f"]),
            Some(init_i64("s", &[2])),
        ),
    ] {
        let import = tail(n, extra).ok();
        assert_eq!(kinds(&import), ["global_avg_pool", "dense"]);
    }
    // Squeeze's axes were an attribute before opset 13.
    let import = tail(node("Squeeze", &["p"], &["f"]).ints("axes", &[-1]), None)
        .opset(11)
        .ok();
    assert_eq!(kinds(&import), ["global_avg_pool", "dense"]);
    let msg = tail(
        node("Squeeze", &["p", "s"], &["f"]),
        Some(init_i64("s", &[1])),
    )
    .err();
    assert_eq!(
        msg,
        "t.onnx: node 1 (Squeeze): squeezes axes [1]; tickq imports Squeeze only of the time axis (axes [2] or \
         [-1]) right after GlobalAveragePool"
    );
    let msg = g(&[2, 8])
        .n(node("GlobalAveragePool", &["x"], &["p"]))
        .n(node("Gemm", &["p", "w"], &["y"]).int("transB", 1))
        .i(init("w", &[2, 2], &ramp(4)))
        .err();
    assert_eq!(
        msg,
        "t.onnx: node 1 (Gemm): Gemm needs a vector input [N, F] but gets GlobalAveragePool's [N, C, 1]; add \
         Flatten, Reshape or Squeeze before it"
    );
}

#[test]
fn flatten_and_reshape_of_a_sequence() {
    let model = |n: NodeProto, shape: Option<&[i64]>| {
        let mut m = g(&[2, 8])
            .n(n)
            .n(node("Gemm", &["f", "w"], &["y"]).int("transB", 1))
            .i(init("w", &[2, 16], &ramp(32)));
        if let Some(s) = shape {
            m = m.i(init_i64("s", s));
        }
        m
    };
    for (n, s) in [
        (node("Flatten", &["x"], &["f"]).int("axis", -2), None),
        (node("Reshape", &["x", "s"], &["f"]), Some(&[0i64, 16][..])),
        (node("Reshape", &["x", "s"], &["f"]), Some(&[-1i64, 16][..])),
    ] {
        assert_eq!(kinds(&model(n, s).ok()), ["flatten", "dense"]);
    }
    // The shape from a Constant node.
    let import = g(&[2, 8])
        .n(node("Constant", &[], &["s"]).ints("value_ints", &[0, -1]))
        .n(node("Reshape", &["x", "s"], &["f"]))
        .n(node("Gemm", &["f", "w"], &["y"]).int("transB", 1))
        .i(init("w", &[2, 16], &ramp(32)))
        .ok();
    assert_eq!(kinds(&import), ["flatten", "dense"]);
    let msg = model(node("Reshape", &["x", "s"], &["f"]), Some(&[0, 8, 2])).err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (Reshape): reshapes to [0, 8, 2], which is not a flatten of the 16 values per sample; \
         tickq imports Reshape to [0, -1], [-1, 16], [N, -1] or [N, 16] (N the input's fixed batch size)"
    );
    // With a dynamic batch, a literal batch size is not a flatten.
    let msg = model(node("Reshape", &["x", "s"], &["f"]), Some(&[1, -1])).err();
    assert!(msg.contains("reshapes to [1, -1]"), "{msg}");
    let msg = model(node("Flatten", &["x"], &["f"]).int("axis", 2), None).err();
    assert_eq!(
        msg,
        "t.onnx: node 0 (Flatten): attribute axis = 2 is not supported; tickq imports Flatten with axis 1 (the \
         batch axis kept)"
    );
}

#[test]
fn identity_and_dropout_are_no_ops() {
    let import = dense_head()
        .n(node("Identity", &["y"], &["z"]))
        .n(node("Dropout", &["z", "ratio"], &["out", "mask"]))
        .i(init("ratio", &[], &[0.5]))
        .import();
    // The graph's output is still `y`: the chain now ends at `out`.
    assert_eq!(
        import.unwrap_err().to_string(),
        "t.onnx: the graph's output \"y\" is not the end of the chain of layers from the input, which ends at \
         \"out\"; tickq imports a single chain of layers"
    );
    let mut m = g(&[4])
        .n(node("Identity", &["x"], &["i"]))
        .n(node("Gemm", &["i", "w"], &["d"]).int("transB", 1))
        .n(node("Dropout", &["d"], &["y"]))
        .i(init("w", &[3, 4], &ramp(12)));
    assert_eq!(kinds(&m.ok()), ["dense"]);
    m.nodes[2] = node("Dropout", &["d", "", "train"], &["y"]);
    m.inits.push(TensorProto {
        name: "train".to_string(),
        data_type: 9,
        raw_data: vec![1],
        ..TensorProto::default()
    });
    assert_eq!(
        m.err(),
        "t.onnx: node 2 (Dropout): attribute training_mode = true is not supported; tickq imports Dropout for \
         inference (training_mode false), where it does nothing"
    );
}

#[test]
fn unsupported_operators_and_branches_are_refused_by_node() {
    let msg = dense_head()
        .n(node("Softmax", &["y"], &["z"]).named("/softmax"))
        .err();
    assert_eq!(
        msg,
        format!(
            "t.onnx: node 1 \"/softmax\" (Softmax): operator not supported; tickq imports {SUPPORTED_OPERATORS}"
        )
    );
    // Two nodes reading the input: a branch.
    let msg = g(&[4])
        .n(node("Relu", &["x"], &["a"]))
        .n(node("Tanh", &["x"], &["b"]))
        .err();
    assert_eq!(
        msg,
        "t.onnx: node 1 (Tanh): reads \"x\", which is not the output of the layer before it (\"a\"); tickq \
         imports a single chain of layers, without branches"
    );
    let mut m = dense_head();
    m.nodes[0].domain = "com.microsoft".to_string();
    assert_eq!(
        m.err(),
        "t.onnx: node 0 (Gemm): operator domain \"com.microsoft\" is not supported; tickq imports operators of the \
         default ONNX domain"
    );
}

#[test]
fn graph_shape_refusals() {
    let mut m = dense_head().model();
    let graph = m.graph.as_mut().unwrap();
    graph.input.push(value("x2", &[None, Some(4)]));
    assert_eq!(
        import_model(&m).unwrap_err().to_string(),
        "t.onnx: the graph has 2 inputs (\"x\", \"x2\"); tickq imports models with exactly one"
    );
    // Initializers listed among the inputs (older exporters) are not inputs.
    let mut m = dense_head().model();
    m.graph
        .as_mut()
        .unwrap()
        .input
        .push(value("w", &[Some(3), Some(4)]));
    assert!(import_model(&m).is_ok());
    let mut m = dense_head().model();
    m.graph
        .as_mut()
        .unwrap()
        .output
        .push(value("z", &[None, Some(3)]));
    assert_eq!(
        import_model(&m).unwrap_err().to_string(),
        "t.onnx: the graph has 2 outputs (\"y\", \"z\"); tickq imports models with exactly one"
    );
    // A dynamic dimension other than the batch.
    let mut m = dense_head();
    m.input = vec![None, None];
    assert_eq!(
        m.err(),
        "t.onnx: input \"x\" has shape [batch, batch]; tickq imports [N, F] (a vector) or [N, C, T] \
         (channels-first sequences), with fixed F, C and T"
    );
    let mut m = dense_head();
    m.input = vec![None, Some(2), Some(2), Some(1)];
    assert!(m.err().contains("has shape [batch, 2, 2, 1]"));
    // The declared output shape must agree with the layers.
    let mut m = dense_head();
    m.output = Some(value("y", &[None, Some(4)]));
    assert_eq!(
        m.err(),
        "t.onnx: the graph declares its output \"y\" with shape [batch, 4], but the layers produce [N, 3]"
    );
    // A fixed batch size is kept.
    let mut m = dense_head();
    m.input = vec![Some(1), Some(4)];
    assert_eq!(m.ok().input.batch, Some(1));
    // Operator set versions.
    assert_eq!(
        dense_head().opset(6).err(),
        "t.onnx: default operator set version 6 is not supported; tickq reads versions 7 to 28"
    );
    let mut m = dense_head().model();
    m.opset_import[0].domain = "ai.onnx.ml".to_string();
    assert_eq!(
        import_model(&m).unwrap_err().to_string(),
        "t.onnx: the model imports no version of the default ONNX operator set"
    );
    let mut m = dense_head().model();
    m.graph = None;
    assert_eq!(
        import_model(&m).unwrap_err().to_string(),
        "t.onnx: the model has no graph"
    );
    // Too many nodes, checked before any is mapped.
    let mut m = dense_head();
    m.nodes = vec![node("Identity", &["x"], &["x"]); crate::limits::MAX_ONNX_NODES + 1];
    assert_eq!(
        m.err(),
        format!(
            "t.onnx: the graph has {} nodes, above 1024, the most tickq imports",
            crate::limits::MAX_ONNX_NODES + 1
        )
    );
    // A graph ending in a sequence, and one that maps to too many classes for tickq.
    let msg = g(&[2, 8]).n(node("Relu", &["x"], &["y"])).err();
    assert_eq!(
        msg,
        "t.onnx: the graph's output is a sequence of 8 steps x 2 channels; tickq models end with a vector of class \
         scores"
    );
    let msg = g(&[1]).n(node("Relu", &["x"], &["y"])).err();
    assert_eq!(
        msg,
        "t.onnx: the graph maps to an invalid tickq architecture"
    );
}

#[test]
fn weights_in_other_types_and_fields() {
    let w = [
        0.5f32, -0.25, 1.0, 2.0, 0.125, -1.0, 0.0, 3.0, -2.0, 0.75, 1.5, -0.5,
    ];
    let typed = |t: TensorProto| {
        g(&[4])
            .n(node("Gemm", &["x", "w"], &["y"]).int("transB", 1))
            .i(t)
            .import()
            .map(|i| dense_weight(&i, 0).0)
    };
    let base = TensorProto {
        name: "w".to_string(),
        dims: vec![3, 4],
        ..TensorProto::default()
    };
    let as_float_data = TensorProto {
        data_type: data_type::FLOAT,
        float_data: w.to_vec(),
        ..base.clone()
    };
    assert_eq!(typed(as_float_data).unwrap(), w);
    let as_double = TensorProto {
        data_type: data_type::DOUBLE,
        double_data: w.iter().map(|&v| f64::from(v)).collect(),
        ..base.clone()
    };
    assert_eq!(typed(as_double).unwrap(), w);
    let as_raw_double = TensorProto {
        data_type: data_type::DOUBLE,
        raw_data: w.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect(),
        ..base.clone()
    };
    assert_eq!(typed(as_raw_double).unwrap(), w);
    // Half precision: the bit patterns of w (all exact in f16) in int32_data.
    let half: Vec<u16> = vec![
        0x3800, 0xb400, 0x3c00, 0x4000, 0x3000, 0xbc00, 0x0000, 0x4200, 0xc000, 0x3a00, 0x3e00,
        0xb800,
    ];
    let as_f16 = TensorProto {
        data_type: data_type::FLOAT16,
        int32_data: half.iter().map(|&h| i32::from(h)).collect(),
        ..base.clone()
    };
    assert_eq!(typed(as_f16).unwrap(), w);
    let as_bf16 = TensorProto {
        data_type: data_type::BFLOAT16,
        raw_data: w
            .iter()
            .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
        ..base.clone()
    };
    assert_eq!(typed(as_bf16).unwrap(), w);

    let err = |t: TensorProto| typed(t).unwrap_err().to_string();
    let as_int8 = TensorProto {
        data_type: 3,
        raw_data: vec![0; 12],
        ..base.clone()
    };
    assert_eq!(
        err(as_int8),
        "t.onnx: tensor \"w\": it has type INT8; weights and bounds must be FLOAT (FLOAT16 and BFLOAT16 are widened \
         exactly, DOUBLE is rounded to the nearest f32)"
    );
    let external = TensorProto {
        data_type: data_type::FLOAT,
        data_location: 1,
        external_data: vec![StringStringEntryProto {
            key: "location".to_string(),
            value: "weights.bin".to_string(),
        }],
        ..base.clone()
    };
    assert_eq!(
        err(external),
        "t.onnx: tensor \"w\": its data is stored in an external file; tickq imports self-contained ONNX files \
         (save with onnx.save_model(model, path, save_as_external_data=False))"
    );
    let short = TensorProto {
        data_type: data_type::FLOAT,
        raw_data: raw(&w[..11]),
        ..base.clone()
    };
    assert_eq!(
        err(short),
        "t.onnx: tensor \"w\": its dimensions [3, 4] make 12 values, but its raw_data holds 11"
    );
    let huge = TensorProto {
        data_type: data_type::FLOAT,
        dims: vec![1 << 20, 1 << 20],
        ..base.clone()
    };
    assert_eq!(
        err(huge),
        "t.onnx: tensor \"w\": it has 1099511627776 elements, above 16777216, the most a tickq layer's tensor may \
         have"
    );
    let mut nan = w;
    nan[5] = f32::NAN;
    let with_nan = TensorProto {
        data_type: data_type::FLOAT,
        raw_data: raw(&nan),
        ..base.clone()
    };
    assert_eq!(
        err(with_nan),
        "t.onnx: tensor \"w\": value 5 is not finite in f32 (NaN)"
    );
    let too_big_for_f32 = TensorProto {
        data_type: data_type::DOUBLE,
        double_data: (0..12).map(|i| if i == 2 { 1e300 } else { 0.0 }).collect(),
        ..base
    };
    assert_eq!(
        err(too_big_for_f32),
        "t.onnx: tensor \"w\": value 2 is not finite in f32 (1e300)"
    );
}

#[test]
fn not_an_onnx_file() {
    let e = import_onnx_bytes(&[0xff; 8], Path::new("t.onnx")).unwrap_err();
    assert!(matches!(e, OnnxError::Decode { .. }));
    assert_eq!(e.to_string(), "t.onnx: not an ONNX model file");
}

#[test]
fn channels_first_samples_are_transposed_to_time_major() {
    let layout = InputShape::ChannelsFirst {
        channels: 2,
        time: 3,
    };
    // [C, T] = [[c0t0, c0t1, c0t2], [c1t0, c1t1, c1t2]].
    let sample = [0.0, 1.0, 2.0, 10.0, 11.0, 12.0];
    let mut row = [0.0; 6];
    layout.to_model_row(&sample, &mut row);
    assert_eq!(row, [0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
    assert_eq!(layout.to_string(), "[N, 2, 3] (channels-first)");
    let vector = InputShape::Vector { features: 2 };
    vector.to_model_row(&[4.0, 5.0], &mut row[..2]);
    assert_eq!(row[..2], [4.0, 5.0]);
}

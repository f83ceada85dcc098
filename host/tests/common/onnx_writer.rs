//! A minimal ONNX writer for tests, independent of tickq's own protobuf messages: the protobuf wire format
//! (varints and length-delimited fields) written by hand with the field numbers of onnx.proto, so a test's
//! model reaches `tickq import` the way a file from `torch.onnx.export` would.

/// One protobuf message under construction.
#[derive(Default)]
pub struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    /// A varint field (int32, int64, enum).
    pub fn int(mut self, field: u32, v: i64) -> Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }

    /// A length-delimited field: bytes, a string or a nested message.
    pub fn bytes(mut self, field: u32, data: &[u8]) -> Self {
        self.key(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
        self
    }

    /// A string field.
    pub fn text(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }

    /// A nested message field.
    pub fn message(self, field: u32, m: Message) -> Self {
        self.bytes(field, &m.0)
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// `AttributeProto` with a list of ints (`type` INTS = 7).
pub fn ints_attribute(name: &str, values: &[i64]) -> Message {
    let mut m = Message::default().text(1, name);
    for &v in values {
        m = m.int(8, v);
    }
    m.int(20, 7)
}

/// `AttributeProto` with one int (`type` INT = 2).
pub fn int_attribute(name: &str, value: i64) -> Message {
    Message::default().text(1, name).int(3, value).int(20, 2)
}

/// `NodeProto`: inputs, outputs, name, operator and attributes.
pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<Message>,
) -> Message {
    let mut m = Message::default();
    for i in inputs {
        m = m.text(1, i);
    }
    for o in outputs {
        m = m.text(2, o);
    }
    m = m.text(3, name).text(4, op);
    for a in attrs {
        m = m.message(5, a);
    }
    m
}

/// `TensorProto` of FLOAT (1) values in `raw_data`, little-endian.
pub fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> Message {
    let mut m = Message::default();
    for &d in dims {
        m = m.int(1, d as i64);
    }
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    m.int(2, 1).text(8, name).bytes(9, &raw)
}

/// `ValueInfoProto` of a FLOAT tensor whose first dimension is the symbolic batch `N`.
pub fn float_value(name: &str, dims: &[usize]) -> Message {
    let mut shape = Message::default().message(1, Message::default().text(2, "N"));
    for &d in dims {
        shape = shape.message(1, Message::default().int(1, d as i64));
    }
    let tensor = Message::default().int(1, 1).message(2, shape);
    Message::default()
        .text(1, name)
        .message(2, Message::default().message(1, tensor))
}

/// `ModelProto` (IR version 8, opset 17) around a graph of `nodes` and `initializers` with one input and one
/// output.
pub fn model(
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    input: Message,
    output: Message,
) -> Vec<u8> {
    let mut graph = Message::default();
    for n in nodes {
        graph = graph.message(1, n);
    }
    graph = graph.text(2, "test_graph");
    for t in initializers {
        graph = graph.message(5, t);
    }
    graph = graph.message(11, input).message(12, output);
    Message::default()
        .int(1, 8)
        .text(2, "tickq-tests")
        .message(7, graph)
        .message(8, Message::default().text(1, "").int(2, 17))
        .into_bytes()
}

"""Writes the ONNX files and reference data of host/tests/onnx.rs.

Run from anywhere with the `onnx` and `numpy` PyPI packages (torch is not needed):

    python3 host/tests/data/onnx/gen.py

The graphs are laid out the way `torch.onnx.export` writes the equivalent PyTorch modules (initializers named
after the module's parameters, Linear as Gemm with transB = 1 or as MatMul + Add, Conv1d as Conv with explicit
pads, strides and dilations, a dynamic batch axis). For each model the script writes MODEL.onnx and MODEL.json:
the inputs (in the graph's own layout, channels-first for the conv model) and the logits computed in numpy
float64 from the float32 weights. It checks every file with onnx.checker and compares the numpy reference with
onnx's own reference evaluator. The output is deterministic (a fixed seed), so rerunning it rewrites the same
bytes.
"""

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

HERE = os.path.dirname(os.path.abspath(__file__))
RNG = np.random.default_rng(20261204)


def weight(*shape):
    fan_in = int(np.prod(shape[1:]))
    return (RNG.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def bias(n):
    return (RNG.standard_normal(n) * 0.1).astype(np.float32)


def inputs(*shape):
    # Multiples of 1/64 in [-2, 2): exact in float32 and short in JSON.
    return (RNG.integers(-128, 128, size=shape) / 64.0).astype(np.float32)


def relu(x):
    return np.maximum(x, 0.0)


def save(name, graph, opset, x, logits):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="tickq-gen",
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    got = ReferenceEvaluator(model).run(None, {graph.input[0].name: x})[0]
    assert np.allclose(got, logits, rtol=1e-4, atol=1e-5), (name, np.abs(got - logits).max())
    onnx.save_model(model, os.path.join(HERE, f"{name}.onnx"))
    data = {
        "input": graph.input[0].name,
        "shape": list(x.shape),
        "inputs": [[float(v) for v in row.reshape(-1)] for row in x],
        "logits": [[float(v) for v in row] for row in logits],
    }
    with open(os.path.join(HERE, f"{name}.json"), "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")


def init(name, array):
    return numpy_helper.from_array(array, name)


def mlp():
    """nn.Sequential(Linear(32, 64), ReLU(), Linear(64, 32), ReLU6(), Linear(32, 3)), the middle Linear
    exported as MatMul + Add (as torch does for inputs of more than two dimensions) and ReLU6 as Clip."""
    w1, b1 = weight(64, 32), bias(64)
    w2, b2 = weight(32, 64), bias(32)
    w3, b3 = weight(3, 32), bias(3)
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["/fc1/Gemm_output_0"],
                         name="/fc1/Gemm", alpha=1.0, beta=1.0, transB=1),
        helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/act1/Relu_output_0"], name="/act1/Relu"),
        helper.make_node("MatMul", ["/act1/Relu_output_0", "onnx::MatMul_21"], ["/fc2/MatMul_output_0"],
                         name="/fc2/MatMul"),
        helper.make_node("Add", ["fc2.bias", "/fc2/MatMul_output_0"], ["/fc2/Add_output_0"], name="/fc2/Add"),
        helper.make_node("Constant", [], ["/act2/Constant_output_0"], name="/act2/Constant",
                         value=helper.make_tensor("", TensorProto.FLOAT, [], [0.0])),
        helper.make_node("Constant", [], ["/act2/Constant_1_output_0"], name="/act2/Constant_1",
                         value=helper.make_tensor("", TensorProto.FLOAT, [], [6.0])),
        helper.make_node("Clip", ["/fc2/Add_output_0", "/act2/Constant_output_0", "/act2/Constant_1_output_0"],
                         ["/act2/Clip_output_0"], name="/act2/Clip"),
        helper.make_node("Gemm", ["/act2/Clip_output_0", "fc3.weight", "fc3.bias"], ["logits"],
                         name="/fc3/Gemm", alpha=1.0, beta=1.0, transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [init("fc1.weight", w1), init("fc1.bias", b1), init("onnx::MatMul_21", np.ascontiguousarray(w2.T)),
         init("fc2.bias", b2), init("fc3.weight", w3), init("fc3.bias", b3)],
    )
    x = inputs(32, 32)
    h = relu(x.astype(np.float64) @ w1.T.astype(np.float64) + b1)
    h = np.clip(h @ w2.T.astype(np.float64) + b2, 0.0, 6.0)
    logits = h @ w3.T.astype(np.float64) + b3
    save("mlp", graph, 13, x, logits)


def conv1d(x, w, b, dilation=1, pad_left=0):
    """x [N, C, T], w [O, C, K]: PyTorch's Conv1d with stride 1 and `pad_left` zeros on the left."""
    x = np.pad(x, ((0, 0), (0, 0), (pad_left, 0)))
    n, _, t = x.shape
    o, _, k = w.shape
    t_out = t - dilation * (k - 1)
    y = np.zeros((n, o, t_out))
    for j in range(k):
        y += np.einsum("nct,oc->not", x[:, :, j * dilation:j * dilation + t_out], w[:, :, j])
    return y + b[None, :, None]


def conv():
    """Conv1d(8, 16, 3) -> ReLU -> MaxPool1d(2) -> Conv1d(16, 16, 3, dilation=2) left-padded by 4 (causal) ->
    ReLU -> AdaptiveAvgPool1d(1) -> Flatten -> Linear(16, 3), over 8 channels x 64 steps, channels-first."""
    w1, b1 = weight(16, 8, 3), bias(16)
    w2, b2 = weight(16, 16, 3), bias(16)
    w3, b3 = weight(3, 16), bias(3)
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["/conv1/Conv_output_0"], name="/conv1/Conv",
                         dilations=[1], group=1, kernel_shape=[3], pads=[0, 0], strides=[1]),
        helper.make_node("Relu", ["/conv1/Conv_output_0"], ["/relu1/Relu_output_0"], name="/relu1/Relu"),
        helper.make_node("MaxPool", ["/relu1/Relu_output_0"], ["/pool/MaxPool_output_0"], name="/pool/MaxPool",
                         ceil_mode=0, dilations=[1], kernel_shape=[2], pads=[0, 0], strides=[2]),
        helper.make_node("Conv", ["/pool/MaxPool_output_0", "conv2.weight", "conv2.bias"], ["/conv2/Conv_output_0"],
                         name="/conv2/Conv", dilations=[2], group=1, kernel_shape=[3], pads=[4, 0], strides=[1]),
        helper.make_node("Relu", ["/conv2/Conv_output_0"], ["/relu2/Relu_output_0"], name="/relu2/Relu"),
        helper.make_node("GlobalAveragePool", ["/relu2/Relu_output_0"], ["/gap/GlobalAveragePool_output_0"],
                         name="/gap/GlobalAveragePool"),
        helper.make_node("Flatten", ["/gap/GlobalAveragePool_output_0"], ["/flatten/Flatten_output_0"],
                         name="/flatten/Flatten", axis=1),
        helper.make_node("Gemm", ["/flatten/Flatten_output_0", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm",
                         alpha=1.0, beta=1.0, transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [init("conv1.weight", w1), init("conv1.bias", b1), init("conv2.weight", w2), init("conv2.bias", b2),
         init("fc.weight", w3), init("fc.bias", b3)],
    )
    x = inputs(6, 8, 64)
    h = relu(conv1d(x.astype(np.float64), w1.astype(np.float64), b1.astype(np.float64)))
    h = h.reshape(h.shape[0], h.shape[1], -1, 2).max(axis=3)
    h = relu(conv1d(h, w2.astype(np.float64), b2.astype(np.float64), dilation=2, pad_left=4))
    logits = h.mean(axis=2) @ w3.T.astype(np.float64) + b3
    save("conv", graph, 17, x, logits)


if __name__ == "__main__":
    mlp()
    conv()

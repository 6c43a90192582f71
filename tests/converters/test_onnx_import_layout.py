"""Import-side layout conversions (converters/onnx/layout.py) and layout-aware import:
NCHW trunks become channels_last layers with the transposes at the edges."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx import layout
from modelkit.models import import_onnx

RNG = np.random.default_rng(3)


def test_conv_kernel_inverse():
    k = RNG.normal(size=(3, 2, 4, 5))
    np.testing.assert_array_equal(layout.onnx_conv_kernel_to_keras(layout.conv_kernel_to_onnx(k)), k)


def test_depthwise_kernel_inverse():
    k = RNG.normal(size=(3, 3, 4, 2))
    onnx_w = layout.depthwise_kernel_to_onnx(k)
    np.testing.assert_array_equal(layout.onnx_depthwise_kernel_to_keras(onnx_w, 4), k)


def test_lstm_weights_round_trip_and_bias_sum():
    k, rk, b = RNG.normal(size=(3, 8)), RNG.normal(size=(2, 8)), RNG.normal(size=(8,))
    W, R, B = layout.lstm_weights(k, rk, b)
    B = B.copy()
    B[0, 8:] = 0.5                          # ONNX's recurrent bias adds to the input bias
    k2, rk2, b2 = layout.keras_rnn_weights_from_onnx("LSTM", W[0], R[0], B[0])
    np.testing.assert_allclose(k2, k)
    np.testing.assert_allclose(rk2, rk)
    np.testing.assert_allclose(b2, b + 0.5)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_weights_round_trip(reset_after):
    k, rk = RNG.normal(size=(3, 6)), RNG.normal(size=(2, 6))
    b = RNG.normal(size=(2, 6)) if reset_after else RNG.normal(size=(6,))
    W, R, B, lbr = layout.gru_weights(k, rk, b, reset_after)
    out = layout.keras_rnn_weights_from_onnx("GRU", W[0], R[0], B[0], lbr)
    for got, want in zip(out, [k, rk, b]):
        np.testing.assert_allclose(got, want)


def test_gru_without_reset_after_refuses_recurrent_h_bias():
    W, R = RNG.normal(size=(6, 3)), RNG.normal(size=(6, 2))
    B = np.zeros(12)
    B[-1] = 1.0
    with pytest.raises(ValueError, match="no Keras form"):
        layout.keras_rnn_weights_from_onnx("GRU", W, R, B, 0)


def test_flatten_rows_permutation_matches_numpy():
    c, h, w, units = 3, 2, 4, 5
    kernel = RNG.normal(size=(c * h * w, units))
    x = RNG.normal(size=(7, c, h, w))
    want = x.reshape(7, -1) @ kernel
    got = x.transpose(0, 2, 3, 1).reshape(7, -1) @ \
        layout.channels_first_rows_to_channels_last(kernel, (h, w), c)
    np.testing.assert_allclose(got, want)


def conv_flatten_dense_model():
    W = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = RNG.normal(size=(4,)).astype(np.float32)
    G = RNG.normal(size=(5, 4 * 6 * 6)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "G"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (b, "b"), (G, "G"))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_nchw_trunk_runs_channels_last_with_transposes_at_the_edges():
    proto = conv_flatten_dense_model()
    graph = onnx_conv.import_graph(proto)
    assert [n.op for n in graph.nodes] == ["Permute", "Conv2D", "Activation", "MaxPooling2D",
                                           "Flatten", "Dense"]
    assert graph.nodes[1].config["padding"] == "same"            # pads (1, 1) at 3x3
    assert graph.nodes[0].config["dims"] == [2, 3, 1]        # the one transpose, at the input
    assert graph.nodes[1].config["data_format"] == "channels_last"
    assert graph.inputs[0].shape == (None, 3, 12, 12)          # input contract unchanged
    model = import_onnx(proto)
    x = RNG.normal(size=(2, 3, 12, 12)).astype(np.float32)
    ref = ort.InferenceSession(proto.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(model.predict(x, verbose=0), ref, atol=1e-5, rtol=1e-4)


def test_flatten_with_other_consumers_flattens_in_onnx_order():
    proto = conv_flatten_dense_model()
    proto.graph.output.append(helper.make_tensor_value_info("f", TensorProto.FLOAT, None))
    graph = onnx_conv.import_graph(proto)
    ops = [n.op for n in graph.nodes]
    assert ops.count("Permute") == 2 and ops.index("Permute", 1) < ops.index("Flatten")
    model = import_onnx(proto)
    x = RNG.normal(size=(2, 3, 12, 12)).astype(np.float32)
    refs = ort.InferenceSession(proto.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for got, ref in zip(model.predict(x, verbose=0), refs):
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-4)


def test_elementwise_onnx_ops_stay_on_the_channels_last_trunk():
    W = RNG.normal(size=(4, 3, 1, 1)).astype(np.float32)
    scale = RNG.normal(size=(4, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]),
             helper.make_node("HardSwish", ["c"], ["h"]),
             helper.make_node("Mul", ["h", "scale"], ["m"]),
             helper.make_node("PRelu", ["m", "scale"], ["p"]),
             helper.make_node("Conv", ["p", "W2"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 5, 5])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(scale, "scale"),
         numpy_helper.from_array(RNG.normal(size=(2, 4, 1, 1)).astype(np.float32), "W2")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    ir = onnx_conv.import_graph(proto)
    ops = [n.op for n in ir.nodes]
    assert ops.count("Permute") == 2            # into the trunk, and back for the output
    assert ops == ["Permute", "Conv2D", "OnnxOp", "OnnxOp", "OnnxOp", "Conv2D", "Permute"]
    x = RNG.normal(size=(2, 3, 5, 5)).astype(np.float32)
    ref = ort.InferenceSession(proto.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(import_onnx(proto).predict(x, verbose=0), ref,
                               atol=1e-5, rtol=1e-4)


def test_nhwc_graph_edges_cost_no_transpose():
    """tf2onnx-style graphs: NHWC input -> Transpose to NCHW -> convs -> Transpose back."""
    W = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 6, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, 6, 4])],
        [numpy_helper.from_array(W, "W")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert [n.op for n in onnx_conv.import_graph(proto).nodes] == ["Conv2D", "Activation"]
    x = RNG.normal(size=(2, 6, 6, 3)).astype(np.float32)
    ref = ort.InferenceSession(proto.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(import_onnx(proto).predict(x, verbose=0), ref,
                               atol=1e-5, rtol=1e-4)


def test_view_batch_minus_one_with_a_dynamic_batch_feeds_a_dense():
    """PyTorch's `x.view(x.size(0), -1)` exported with a dynamic batch: the Reshape target
    comes from Shape/Gather/Concat, so ONNX inference leaves the features dim unknown; the
    importer finds it by a sample run, and the Gemm after it becomes a Dense."""
    W, Wd = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32), \
        RNG.normal(size=(5, 4 * 2 * 2)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["c"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["c", "target"], ["flat"]),
             helper.make_node("Gemm", ["flat", "Wd"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(Wd, "Wd"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    graph = helper.make_graph(nodes, "view", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["batch", 3, 4, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["batch", 5])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model = import_onnx(proto)
    assert "Dense" in {type(la).__name__ for la in model.layers}
    x = RNG.normal(size=(3, 3, 4, 4)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-5)

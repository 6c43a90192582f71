"""Each import handler on small models built with onnx.helper: modelkit's prediction against
onnxruntime's (ONNX's reference evaluator where onnxruntime does not implement the case:
RNN layout=1, dilated SAME padding), and the IR op the handler chose (a Keras layer when the
pattern fits, OnnxOp otherwise). One row per case."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelkit.converters import onnx as onnx_conv
from modelkit.models import import_onnx

RNG = np.random.default_rng(9)
F = TensorProto.FLOAT
CASES = []


def r(*shape, positive=False):
    a = RNG.normal(size=shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


def case(name, nodes, inputs, output_shape, inits=(), expect=None, out="y", opset=17):
    """inputs: [(name, shape with None for the batch, dtype)]; expect: IR ops that must appear."""
    CASES.append(pytest.param(nodes, inputs, output_shape, inits, expect or set(), out, opset,
                              id=name))


def reference(proto, feeds, name):
    if "layout1" in name or "bidirectional" in name or "lbr0" in name or "dil" in name:
        from onnx.reference import ReferenceEvaluator
        return ReferenceEvaluator(proto).run(None, feeds)[0]
    return ort.InferenceSession(proto.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def n(op, ins, outs="y", **kw):
    return helper.make_node(op, ins, [outs] if isinstance(outs, str) else outs, **kw)


X4 = [("x", (None, 3, 6, 6), np.float32)]
X3 = [("x", (None, 3, 7), np.float32)]
X2 = [("x", (None, 6), np.float32)]

case("Gemm-transB-alpha-beta", [n("Gemm", ["x", "W", "C"], transB=1, alpha=0.5, beta=2.0)], X2,
     [None, 4], [("W", r(4, 6)), ("C", r(4))], {"Dense"})
case("Gemm-C-row", [n("Gemm", ["x", "W", "C"])], X2, [None, 4], [("W", r(6, 4)),
                                                                 ("C", r(1, 4))], {"Dense"})
case("Gemm-transA-generic", [n("Gemm", ["x", "W"], transA=1)], [("x", (6, None), np.float32)],
     [4, None], [("W", r(6, 4))], {"OnnxOp"})
case("MatMul+Add-fused", [n("MatMul", ["x", "W"], "h"), n("Add", ["h", "b"])], X2, [None, 4],
     [("W", r(6, 4)), ("b", r(4))], {"Dense"})
case("MatMul-rank3", [n("MatMul", ["x", "W"])], X3, [None, 3, 2], [("W", r(7, 2))], {"Dense"})
case("Conv-asym-pads-stride", [n("Conv", ["x", "W", "B"], pads=[0, 1, 2, 1], strides=[2, 1])],
     X4, [None, 4, 4, 6], [("W", r(4, 3, 3, 2)), ("B", r(4))], {"Conv2D", "ZeroPadding2D"})
case("Conv-same-upper-dil", [n("Conv", ["x", "W"], auto_pad="SAME_UPPER", dilations=[2, 2])],
     X4, [None, 4, 6, 6], [("W", r(4, 3, 3, 3))], {"Conv2D"})
case("Conv-stride-and-dilation-generic",      # Keras refuses strides > 1 with dilation > 1
     [n("Conv", ["x", "W"], strides=[2, 2], dilations=[2, 1])], X4, [None, 4, 1, 2],
     [("W", r(4, 3, 3, 3))], {"OnnxOp"})
case("Add-batch-broadcast-generic",           # (N, 6) + (1, 6): no Keras merge broadcasts N
     [n("Add", ["x", "z"])], X2 + [("z", (1, 6), np.float32)], [None, 6], (), {"OnnxOp"})
case("Mul-batch-1-by-3-generic", [n("Mul", ["x", "z"])],
     [("x", (3, 6), np.float32), ("z", (1, 6), np.float32)], [3, 6], (), {"OnnxOp"})
case("Pad-zero-spatial", [n("Pad", ["x", "p"])], X4, [None, 3, 9, 7],
     [("p", np.array([0, 0, 2, 1, 0, 0, 1, 0], np.int64))], {"ZeroPadding2D"})
case("Pad-zero-spatial-axes-input", [n("Pad", ["x", "p", "", "ax"])], X3, [None, 3, 10],
     [("p", np.array([1, 2], np.int64)), ("ax", np.array([-1], np.int64))], {"ZeroPadding1D"},
     opset=18)
case("Pad-attribute-form", [n("Pad", ["x"], pads=[0, 0, 1, 1, 0, 0, 1, 1])], X4,
     [None, 3, 8, 8], (), {"ZeroPadding2D"}, opset=10)
case("Pad-value-generic", [n("Pad", ["x", "p", "v"])], X4, [None, 3, 7, 6],
     [("p", np.array([0, 0, 1, 0, 0, 0, 0, 0], np.int64)), ("v", np.array(1.5, np.float32))],
     {"OnnxOp"})
case("Pad-channels-generic", [n("Pad", ["x", "p"])], X4, [None, 4, 6, 6],
     [("p", np.array([0, 1, 0, 0, 0, 0, 0, 0], np.int64))], {"OnnxOp"})
case("Pad-reflect-generic", [n("Pad", ["x", "p"], mode="reflect")], X4, [None, 3, 8, 6],
     [("p", np.array([0, 0, 1, 0, 0, 0, 1, 0], np.int64))], {"OnnxOp"})
case("Conv-same-lower-stride", [n("Conv", ["x", "W"], auto_pad="SAME_LOWER", strides=[2, 2])],
     X4, [None, 4, 3, 3], [("W", r(4, 3, 2, 2))], {"Conv2D"})
case("Conv-depthwise", [n("Conv", ["x", "W", "B"], group=3, pads=[1, 1, 1, 1])], X4,
     [None, 6, 6, 6], [("W", r(6, 1, 3, 3)), ("B", r(6))], {"DepthwiseConv2D"})
case("Conv-groups", [n("Conv", ["x", "W"], group=3)], [("x", (None, 6, 5, 5), np.float32)],
     [None, 3, 3, 3], [("W", r(3, 2, 3, 3))], {"Conv2D"})
case("Conv1D", [n("Conv", ["x", "W", "B"], pads=[2, 0], strides=[2])], X3, [None, 5, 4],
     [("W", r(5, 3, 3)), ("B", r(5))], {"Conv1D"})
case("Conv3D-generic", [n("Conv", ["x", "W"])], [("x", (None, 2, 3, 3, 3), np.float32)],
     [None, 2, 2, 2, 2], [("W", r(2, 2, 2, 2, 2))], {"OnnxOp"})
case("ConvTranspose", [n("ConvTranspose", ["x", "W", "B"], strides=[2, 2], pads=[1, 0, 0, 1])],
     X4, [None, 2, 10, 10], [("W", r(3, 2, 2, 2)), ("B", r(2))], {"Conv2DTranspose"})
case("ConvTranspose-keras", [n("ConvTranspose", ["x", "W", "B"], strides=[2, 2],
                               pads=[1, 0, 0, 1], output_padding=[1, 0])],
     X4, [None, 2, 12, 11], [("W", r(3, 2, 3, 2)), ("B", r(2))],
     {"Conv2DTranspose", "Cropping2D"})
case("ConvTranspose1D", [n("ConvTranspose", ["x", "W"], strides=[3])], X3, [None, 2, 23],
     [("W", r(3, 2, 4))], {"Conv1DTranspose"})
case("ConvTranspose-groups-generic", [n("ConvTranspose", ["x", "W"], group=3)], X4,
     [None, 3, 8, 8], [("W", r(3, 1, 3, 3))], {"OnnxOp"})
case("LayerNorm-last-axis", [n("LayerNormalization", ["x", "s", "b"], epsilon=1e-3)], X3,
     [None, 3, 7], [("s", r(7)), ("b", r(7))], {"LayerNormalization"})
case("LayerNorm-axis1-generic", [n("LayerNormalization", ["x", "s"], axis=1)], X3,
     [None, 3, 7], [("s", r(3, 7))], {"OnnxOp"})
case("BN-4d", [n("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3)], X4,
     [None, 3, 6, 6], [("s", r(3)), ("b", r(3)), ("m", r(3)), ("v", r(3, positive=True))],
     {"BatchNormalization"})
case("BN-2d", [n("BatchNormalization", ["x", "s", "b", "m", "v"])], X2, [None, 6],
     [("s", r(6)), ("b", r(6)), ("m", r(6)), ("v", r(6, positive=True))], {"BatchNormalization"})
case("BN-3d", [n("BatchNormalization", ["x", "s", "b", "m", "v"])], X3, [None, 3, 7],
     [("s", r(3)), ("b", r(3)), ("m", r(3)), ("v", r(3, positive=True))], {"BatchNormalization"})
case("MaxPool-valid", [n("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], X4,
     [None, 3, 3, 3], expect={"MaxPooling2D"})
case("MaxPool-pads-after-relu", [n("Relu", ["x"], "h"),
                                 n("MaxPool", ["h"], kernel_shape=[3, 3], strides=[2, 2],
                                   pads=[1, 1, 1, 1])], X4, [None, 3, 3, 3],
     expect={"MaxPooling2D", "ZeroPadding2D"})
case("MaxPool-pads-generic", [n("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                                pads=[1, 1, 1, 1])], X4, [None, 3, 3, 3], expect={"OnnxOp"})
case("MaxPool-ceil", [n("MaxPool", ["x"], kernel_shape=[2], strides=[2], ceil_mode=1)], X3,
     [None, 3, 4], expect={"OnnxOp"})
case("AvgPool-include-pad", [n("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                               count_include_pad=1)], X4, [None, 3, 6, 6],
     expect={"AveragePooling2D"})
case("AvgPool-exclude-pad", [n("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
     X4, [None, 3, 6, 6], expect={"OnnxOp"})
case("AvgPool1D", [n("AveragePool", ["x"], kernel_shape=[2], strides=[1])], X3, [None, 3, 6],
     expect={"AveragePooling1D"})
case("GlobalAvg+Flatten", [n("GlobalAveragePool", ["x"], "g"), n("Flatten", ["g"])], X4,
     [None, 3], expect={"GlobalAveragePooling2D"})
case("GlobalMax-keepdims", [n("GlobalMaxPool", ["x"])], X4, [None, 3, 1, 1],
     expect={"GlobalMaxPooling2D"})
case("ReduceMean-spatial", [n("ReduceMean", ["x"], axes=[2, 3], keepdims=0)], X4, [None, 3],
     expect={"GlobalAveragePooling2D"})
case("LeakyRelu", [n("LeakyRelu", ["x"], alpha=0.2)], X2, [None, 6], expect={"LeakyReLU"})
case("Elu-alpha-generic", [n("Elu", ["x"], alpha=0.5)], X2, [None, 6], expect={"OnnxOp"})
case("HardSigmoid", [n("HardSigmoid", ["x"])], X2, [None, 6], expect={"Activation"})
case("Gelu", [n("Gelu", ["x"])], X2, [None, 6], expect={"Activation"}, opset=20)
case("Softmax-channels-of-trunk", [n("Conv", ["x", "W"], "c"), n("Softmax", ["c"], axis=1)],
     X4, [None, 2, 6, 6], [("W", r(2, 3, 1, 1))], {"Conv2D", "Activation"})
case("Softmax-axis1-rank3", [n("Softmax", ["x"], axis=1)], X3, [None, 3, 7],
     expect={"Softmax"})
case("Add-trunk-and-input", [n("Conv", ["x", "W"], "c"), n("Add", ["c", "x"])], X4,
     [None, 3, 6, 6], [("W", r(3, 3, 1, 1))], {"Add", "Conv2D"})
case("Add-broadcast-generic", [n("Add", ["x", "z"])], [("x", (None, 6), np.float32),
                                                       ("z", (None, 1), np.float32)],
     [None, 6], expect={"OnnxOp"})
case("Mul-Sub-Max-Mean", [n("Mul", ["x", "z"], "a"), n("Sub", ["a", "x"], "b"),
                          n("Max", ["a", "b"], "c"), n("Mean", ["a", "b", "c"])],
     [("x", (None, 6), np.float32), ("z", (None, 6), np.float32)], [None, 6],
     expect={"Multiply", "Subtract", "Maximum", "Average"})
case("Concat-trunk-channels", [n("Conv", ["x", "W"], "c"), n("Concat", ["c", "x"], axis=1)],
     X4, [None, 5, 6, 6], [("W", r(2, 3, 1, 1))], {"Concatenate"})
case("Concat-axis-2", [n("Concat", ["x", "x"], axis=2)], X3, [None, 3, 14],
     expect={"Concatenate"})
case("Transpose-trunk", [n("Conv", ["x", "W"], "c"), n("Transpose", ["c"], perm=[0, 2, 3, 1])],
     X4, [None, 6, 6, 2], [("W", r(2, 3, 1, 1))], {"Conv2D"})
case("Transpose-batch-generic", [n("Transpose", ["x"], perm=[1, 0, 2])], X3, [3, None, 7],
     expect={"OnnxOp"})
case("Flatten-axis2-generic", [n("Flatten", ["x"], axis=2)], X4, [None, 36],
     expect={"OnnxOp"})
case("Reshape-0-minus1", [n("Reshape", ["x", "s"])], X4, [None, 18, 6],
     [("s", np.array([0, -1, 6], np.int64))], {"Reshape"})
case("Reshape-batch-fold-generic", [n("Reshape", ["x", "s"])], X4, [None, 6],
     [("s", np.array([-1, 6], np.int64))], {"OnnxOp"})
case("ReLU6", [n("Clip", ["x", "lo", "hi"])], X2, [None, 6],
     [("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))], {"ReLU"})
case("Clip-generic", [n("Clip", ["x", "lo"])], X2, [None, 6],
     [("lo", np.array(-1, np.float32))], {"OnnxOp"})
case("Resize-nearest-x2", [n("Resize", ["x", "", "s"], mode="nearest",
                             coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
     X4, [None, 3, 12, 18], [("s", np.array([1, 1, 2, 3], np.float32))], {"UpSampling2D"})
case("Resize-bilinear", [n("Resize", ["x", "", "s"], mode="linear",
                           coordinate_transformation_mode="pytorch_half_pixel")],
     X4, [None, 3, 12, 12], [("s", np.array([1, 1, 2, 2], np.float32))], {"UpSampling2D"})
case("Resize-sizes-generic", [n("Resize", ["x", "", "", "z"], mode="linear")],
     X4, [None, 3, 12, 12], [("z", np.array([3, 3, 12, 12], np.int64))], {"OnnxOp"})
case("Resize-align-corners-generic", [n("Resize", ["x", "", "s"], mode="linear",
                                        coordinate_transformation_mode="align_corners")],
     X4, [None, 3, 12, 12], [("s", np.array([1, 1, 2, 2], np.float32))], {"OnnxOp"})
case("Resize-nearest-1d", [n("Resize", ["x", "", "s"], mode="nearest",
                             coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
     X3, [None, 3, 14], [("s", np.array([1, 1, 2], np.float32))], {"UpSampling1D"})
SQRT2, ONE, HALF = (np.array(v, np.float32) for v in (np.sqrt(2.0), 1.0, 0.5))
case("Gelu-decomposed", [n("Div", ["x", "s2"], "d"), n("Erf", ["d"], "e"),
                         n("Add", ["e", "one"], "a"), n("Mul", ["x", "a"], "m"),
                         n("Mul", ["m", "half"])], X2, [None, 6],
     [("s2", SQRT2), ("one", ONE), ("half", HALF)], {"Activation"})
case("Gelu-decomposed-half-first", [n("Mul", ["x", "half"], "h"), n("Div", ["x", "s2"], "d"),
                                    n("Erf", ["d"], "e"), n("Add", ["e", "one"], "a"),
                                    n("Mul", ["h", "a"])], X2, [None, 6],
     [("s2", SQRT2), ("one", ONE), ("half", HALF)], {"Activation"})
case("Div-not-gelu", [n("Div", ["x", "s2"], "d"), n("Erf", ["d"], "e"),
                      n("Add", ["e", "half"])], X2, [None, 6],
     [("s2", SQRT2), ("half", HALF)], {"OnnxOp"})
case("Embedding", [n("Gather", ["E", "x"])], [("x", (None, 5), np.int64)], [None, 5, 4],
     [("E", r(10, 4))], {"Embedding"})
case("Gather-axis1-generic", [n("Gather", ["x", "i"], axis=1)], X2, [None, 2],
     [("i", np.array([5, 0], np.int64))], {"OnnxOp"})
case("Dropout", [n("Dropout", ["x", "ratio"])], X2, [None, 6],
     [("ratio", np.array(0.3, np.float32))], {"Dropout"})
case("Identity-of-trunk", [n("Conv", ["x", "W"], "c"), n("Identity", ["c"])], X4,
     [None, 2, 6, 6], [("W", r(2, 3, 1, 1))], {"Conv2D"})
H = 4
for kind, g in (("LSTM", 4), ("GRU", 3), ("RNN", 1)):
    w, rr, b = r(1, g * H, 5), r(1, g * H, H), r(1, 2 * g * H)
    keras = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}[kind]
    case(f"{kind}-layout1", [n(kind, ["x", "W", "R", "B"], ["y", "yh"], hidden_size=H,
                               layout=1, **({"linear_before_reset": 1} if kind == "GRU" else {}))],
         [("x", (None, 6, 5), np.float32)], [None, 6, 1, H], [("W", w), ("R", rr), ("B", b)],
         {keras})
    case(f"{kind}-reverse-generic", [n(kind, ["x", "W", "R", "B"], ["y", "yh"], hidden_size=H,
                                       direction="reverse")],
         [("x", (6, None, 5), np.float32)], [6, 1, None, H], [("W", w), ("R", rr), ("B", b)],
         {"OnnxOp"})
wb, rb, bb = r(2, 4 * H, 5), r(2, 4 * H, H), r(2, 8 * H)
case("LSTM-zero-state-subgraph", [
    n("Shape", ["x"], "s"), n("Gather", ["s", "one"], "nb"), n("Concat", ["nb", "h"], "shp", axis=0),
    n("Expand", ["zero", "shp"], "z"), n("Unsqueeze", ["z", "zax"], "u"),
    n("Concat", ["u", "u"], "h0", axis=0),
    n("LSTM", ["x", "W", "R", "B", "", "h0", "h0"], ["y"], hidden_size=H,
      direction="bidirectional")],
    [("x", (6, None, 5), np.float32)], [6, 2, None, H],
    [("W", wb), ("R", rb), ("B", bb), ("one", np.array([1], np.int64)),
     ("h", np.array([H], np.int64)), ("zero", np.array(0, np.float32)),
     ("zax", np.array([0], np.int64))], {"Bidirectional"})
case("LSTM-bidirectional-Yh", [n("LSTM", ["x", "W", "R", "B"], ["", "yh"], hidden_size=H,
                                 direction="bidirectional", layout=1)],
     [("x", (None, 6, 5), np.float32)], [None, 2, H], [("W", wb), ("R", rb), ("B", bb)],
     {"Bidirectional"}, out="yh")
case("GRU-lbr0-zero-Rh-bias", [n("GRU", ["x", "W", "R", "B"], ["y"], hidden_size=H, layout=1)],
     [("x", (None, 6, 5), np.float32)], [None, 6, 1, H],
     [("W", r(1, 3 * H, 5)), ("R", r(1, 3 * H, H)),
      ("B", np.concatenate([r(1, 3 * H), r(1, 2 * H), np.zeros((1, H), np.float32)], 1))],
     {"GRU"})


@pytest.mark.parametrize("nodes,inputs,out_shape,inits,expect,out,opset", CASES)
def test_handler_matches_onnxruntime(nodes, inputs, out_shape, inits, expect, out, opset,
                                     request):
    in_vi = [helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(np.dtype(dt)),
                                           ["N" if d is None else d for d in shape])
             for nm, shape, dt in inputs]
    out_dt = TensorProto.FLOAT
    outs = [helper.make_tensor_value_info(out, out_dt, ["N" if d is None else d
                                                        for d in out_shape])]
    graph = helper.make_graph(nodes, "g", in_vi, outs,
                              [numpy_helper.from_array(a, nm) for nm, a in inits])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    feeds = {}
    for nm, shape, dt in inputs:
        concrete = tuple(3 if d is None else d for d in shape)
        feeds[nm] = (RNG.integers(0, 10, size=concrete) if np.dtype(dt).kind == "i"
                     else RNG.normal(size=concrete)).astype(dt)
    want = reference(proto, feeds, request.node.callspec.id)
    graph_ir = onnx_conv.import_graph(proto)
    ops = {node.op for node in graph_ir.nodes}
    assert expect <= ops, f"expected {expect}, got {sorted(ops)}"
    model = import_onnx(proto)
    xs = [feeds[nm] for nm, _, _ in inputs]
    got = model(xs if len(xs) > 1 else xs[0])
    np.testing.assert_allclose(np.asarray(got.value), want, atol=2e-5, rtol=1e-4)

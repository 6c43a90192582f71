"""ONNX If / Loop / Scan: bodies that read enclosing values (a trainable initializer and a
computed tensor) import as OnnxOp nodes, predict what onnxruntime predicts, are
differentiable (float64 finite differences through every iteration), export back to a
model onnxruntime runs identically, and bodies with unsupported ops are refused naming them."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelkit.backend import OPS
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.backend.onnx_ops import run_onnx_op
from modelkit.backend.tape import apply
from modelkit.backend.tensor import Tensor
from modelkit.converters import onnx as onnx_conv
from modelkit.errors import UnsupportedError
from modelkit.models import import_onnx
from modelkit.onnx_spec import outer_names

RNG = np.random.default_rng(5)
F = TensorProto.FLOAT


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def ort_run(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def loop_model():
    """y_{i+1} = tanh(y_i @ W + h) for M steps (h = 2x computed outside the body, W an
    initializer of the outer graph); the scan output stacks every y_i * i."""
    body = helper.make_graph(
        [helper.make_node("MatMul", ["y_in", "W"], ["m"]),
         helper.make_node("Add", ["m", "h"], ["a"]),
         helper.make_node("Tanh", ["a"], ["y_out"]),
         helper.make_node("Cast", ["i"], ["fi"], to=F),
         helper.make_node("Mul", ["y_out", "fi"], ["scan"]),
         helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body", [vi("i", [], TensorProto.INT64), vi("c_in", [], TensorProto.BOOL),
                 vi("y_in", [2, 3])],
        [vi("c_out", [], TensorProto.BOOL), vi("y_out", [2, 3]), vi("scan", [2, 3])])
    nodes = [helper.make_node("Add", ["x", "x"], ["h"]),
             helper.make_node("Loop", ["M", "", "x"], ["y", "ys"], body=body)]
    w = (RNG.normal(size=(3, 3)) * 0.5).astype(np.float32)
    graph = helper.make_graph(nodes, "g", [vi("x", [2, 3])], [vi("y", [2, 3]),
                                                               vi("ys", [None, 2, 3])],
                              [numpy_helper.from_array(w, "W"),
                               numpy_helper.from_array(np.array(4, np.int64), "M")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def if_scan_model():
    """If(sum(x) > 0): a Scan (running sum of the rows of x, plus an outer bias b) else -x."""
    scan_body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "row"], ["t"]),
         helper.make_node("Add", ["t", "b"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["out"])],
        "scan_body", [vi("s_in", [3]), vi("row", [3])], [vi("s_out", [3]), vi("out", [3])])
    then = helper.make_graph(
        [helper.make_node("Scan", ["s0", "x"], ["final", "steps"], body=scan_body,
                          num_scan_inputs=1, scan_input_directions=[1])],
        "then", [], [vi("final", [3]), vi("steps", [4, 3])])
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["nx"]),
         helper.make_node("ReduceSum", ["nx", "ax"], ["nfinal"], keepdims=0)],
        "else", [], [vi("nfinal", [3]), vi("nx", [4, 3])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
             helper.make_node("Greater", ["total", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["final", "steps"], then_branch=then,
                              else_branch=other)]
    graph = helper.make_graph(
        nodes, "g", [vi("x", [4, 3])], [vi("final", [3]), vi("steps", [4, 3])],
        [numpy_helper.from_array(np.zeros(3, np.float32), "s0"),
         numpy_helper.from_array(np.array([0.5, -1, 2], np.float32), "b"),
         numpy_helper.from_array(np.array(0, np.float32), "zero"),
         numpy_helper.from_array(np.array([0], np.int64), "ax")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("make", [loop_model, if_scan_model])
def test_import_predict_and_reexport_match_onnxruntime(make):
    proto = make()
    model = import_onnx(proto)
    shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    for sign in (1, -1):            # both If branches
        x = (sign * np.abs(RNG.normal(size=shape))).astype(np.float32)
        want = ort_run(proto, {"x": x})
        got = model.predict(x, verbose=0)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        again = onnx_conv.export(model)
        assert {n.op_type for n in again.graph.node} & {"Loop", "If"}
        for g, w in zip(ort_run(again, {"x": x}), want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def _control_layer(model, op_type):
    layer = [lyr for lyr in model.layers if getattr(lyr, "op_type", None) == op_type][0]
    return layer, dict(layer._attrs), outer_names(layer._attrs)


def test_loop_gradient_through_every_iteration_and_the_outer_weight():
    model = import_onnx(loop_model())
    layer, attrs, outer = _control_layer(model, "Loop")
    assert sorted(outer) == ["W", "h"]          # the body's reads: extra inputs of the node
    assert len(layer.trainable_weights) == 1    # W, read by the body, trains

    def fn(x, w):
        reads = {"W": w, "h": apply(OPS.get("add"), x, x)}
        return run_onnx_op("Loop", [Tensor(np.array(3)), None, x] + [reads[n] for n in outer],
                           attrs, num_outputs=2)[1]
    assert_gradients_close(fn, [RNG.normal(size=(2, 3)), RNG.normal(size=(3, 3)) * 0.5],
                           rtol=1e-4, atol=1e-6)


def test_scan_reverse_and_if_gradients():
    model = import_onnx(if_scan_model())
    layer, attrs, outer = _control_layer(model, "If")
    assert sorted(outer) == ["ax", "b", "s0", "x"]

    def fn(x, b):
        reads = {"x": x, "b": b, "s0": Tensor(np.zeros(3)), "ax": Tensor(np.array([0]))}
        outs = run_onnx_op("If", [Tensor(np.array(True))] + [reads[n] for n in outer], attrs,
                           num_outputs=2)
        return apply(OPS.get("add"), outs[1], outs[0])
    assert_gradients_close(fn, [RNG.normal(size=(4, 3)), RNG.normal(size=3)],
                           rtol=1e-4, atol=1e-6)


def test_unsupported_op_inside_a_body_is_named():
    body = helper.make_graph([helper.make_node("GlobalLpPool", ["x"], ["u"])], "body", [],
                             [vi("u", [None])])
    graph = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=body,
                                                else_branch=body)],
                              "g", [vi("c", [], TensorProto.BOOL), vi("x", [3])],
                              [vi("y", [None])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    with pytest.raises(UnsupportedError, match="GlobalLpPool node .* in subgraph 'body'"):
        import_onnx(proto)


def test_a_loop_that_would_not_end_is_refused(monkeypatch):
    from modelkit.backend.onnx_ops import control_flow
    monkeypatch.setattr(control_flow, "MAX_ITERATIONS", 50)
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]),
         helper.make_node("Identity", ["y_in"], ["y_out"])],
        "body", [vi("i", [], TensorProto.INT64), vi("c_in", [], TensorProto.BOOL),
                 vi("y_in", [2])], [vi("c_out", [], TensorProto.BOOL), vi("y_out", [2])])
    graph = helper.make_graph([helper.make_node("Loop", ["", "c", "x"], ["y"], body=body)],
                              "g", [vi("c", [], TensorProto.BOOL), vi("x", [2])],
                              [vi("y", [2])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    model = import_onnx(proto)
    np.testing.assert_array_equal(model([np.array(False), np.ones(2, np.float32)]).value,
                                  np.ones(2))
    with pytest.raises(UnsupportedError, match="Loop ran 50 iterations"):
        model([np.array(True), np.ones(2, np.float32)])

"""ONNX sequences and optionals: the ops on Python lists / None, gradients through them, a
model with sequences inside (import, run, export, onnxruntime), sequence inputs and outputs
(boxed as OnnxValue), and errors. ONNX's own node cases run in
test_onnx_import_conformance.py."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from modelkit.backend.gradcheck import numeric_vs_analytic
from modelkit.backend.onnx_ops import run_onnx_op
from modelkit.backend.tensor import Tensor
from modelkit.converters import onnx as onnx_conv
from modelkit.errors import ModelkitError, ShapeError
from modelkit.models import from_ir, import_onnx
from modelkit.onnx_spec import OnnxValue, to_numpy


def T(a):
    return Tensor(np.asarray(a))


def test_sequence_ops_on_lists():
    a, b, c = T([1.0]), T([2.0, 3.0]), T([4.0])
    (seq,) = run_onnx_op("SequenceConstruct", [a, b])
    assert isinstance(seq, list) and len(seq) == 2
    (seq2,) = run_onnx_op("SequenceInsert", [seq, c, T(np.int64(0))])
    assert [t.value.tolist() for t in seq2] == [[4.0], [1.0], [2.0, 3.0]]
    assert len(seq) == 2                                # the input sequence is not changed
    (last,) = run_onnx_op("SequenceAt", [seq2, T(np.int64(-1))])
    assert last.value.tolist() == [2.0, 3.0]
    (shorter,) = run_onnx_op("SequenceErase", [seq2])    # default: the last one
    (n,) = run_onnx_op("SequenceLength", [shorter])
    assert n.dtype == np.int64 and int(n.value) == 2
    (cat,) = run_onnx_op("ConcatFromSequence", [seq2], {"axis": 0})
    assert cat.value.tolist() == [4.0, 1.0, 2.0, 3.0]
    (empty,) = run_onnx_op("SequenceEmpty", [], {"dtype": 1})
    assert empty == []


def test_split_to_sequence_and_stack_back():
    x = T(np.arange(12.0).reshape(3, 4))
    (parts,) = run_onnx_op("SplitToSequence", [x], {"axis": 1, "keepdims": 0})
    assert [p.shape for p in parts] == [(3,)] * 4
    (uneven,) = run_onnx_op("SplitToSequence", [x, T(np.int64(3))], {"axis": 1})
    assert [p.shape for p in uneven] == [(3, 3), (3, 1)]
    (stacked,) = run_onnx_op("ConcatFromSequence", [parts], {"axis": -1, "new_axis": 1})
    np.testing.assert_array_equal(stacked.value, x.value)


def test_optionals():
    (some,) = run_onnx_op("Optional", [T([1.0])])
    (none,) = run_onnx_op("Optional", [], {"type": None})
    assert none is None
    assert bool(run_onnx_op("OptionalHasElement", [some])[0].value)
    assert not bool(run_onnx_op("OptionalHasElement", [none])[0].value)
    assert run_onnx_op("OptionalGetElement", [some])[0] is some
    with pytest.raises(ShapeError, match="optional is empty"):
        run_onnx_op("OptionalGetElement", [none])


def test_errors_name_the_problem():
    seq = [T([1.0]), T([2.0])]
    with pytest.raises(ShapeError, match="position 2 is out of range for a sequence of 2"):
        run_onnx_op("SequenceAt", [seq, T(np.int64(2))])
    with pytest.raises(ShapeError, match="takes a sequence, got a tensor"):
        run_onnx_op("SequenceLength", [T([1.0])])
    with pytest.raises(ShapeError, match="tensors of one type"):
        run_onnx_op("SequenceConstruct", [T([1.0]), T([1])])
    with pytest.raises(ShapeError, match="do not add up"):
        run_onnx_op("SplitToSequence", [T(np.zeros(5)), T(np.array([2, 2], np.int64))])


def test_gradients_flow_through_sequences():
    """d/dx of ConcatFromSequence(reversed(SplitToSequence(x))) * SequenceAt(.., 0)."""
    def fn(x):
        (parts,) = run_onnx_op("SplitToSequence", [x, Tensor(np.array([1, 2], np.int64))],
                               {"axis": 1})
        (rev,) = run_onnx_op("SequenceInsert", [parts[1:], parts[0]])
        (cat,) = run_onnx_op("ConcatFromSequence", [rev], {"axis": 1})
        (first,) = run_onnx_op("SequenceAt", [rev, Tensor(np.int64(0))])
        return cat * run_onnx_op("ReduceSum", [first], {"keepdims": 1})[0]
    x = np.random.default_rng(0).standard_normal((2, 3))
    (analytic,), (numeric,) = numeric_vs_analytic(fn, [x])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def _inner_sequence_model():
    """x (N, 6) -> split into 3 parts -> insert 2*part0 at the front -> erase the last ->
    stack on a new axis 1 -> (N, 3, 2): sequences only inside the graph."""
    nodes = [helper.make_node("SplitToSequence", ["x", "three"], ["parts"], axis=1),
             helper.make_node("SequenceAt", ["parts", "zero"], ["p0"]),
             helper.make_node("Mul", ["p0", "two"], ["p0x2"]),
             helper.make_node("SequenceInsert", ["parts", "p0x2", "zero"], ["more"]),
             helper.make_node("SequenceErase", ["more"], ["fewer"]),
             helper.make_node("ConcatFromSequence", ["fewer"], ["y"], axis=1, new_axis=1)]
    inits = [helper.make_tensor("three", TensorProto.INT64, [], [2]),
             helper.make_tensor("zero", TensorProto.INT64, [], [0]),
             helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])]
    graph = helper.make_graph(
        nodes, "seq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_model_with_inner_sequences_matches_onnxruntime_and_reexports():
    model = _inner_sequence_model()
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    want = x.reshape(4, 3, 2).copy()
    want[:, 1:] = want[:, :2].copy()
    want[:, 0] = 2 * x[:, :2]
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(ref.run(None, {"x": x})[0], want)
    ours = import_onnx(model)
    np.testing.assert_array_equal(to_numpy(ours(x)), want)
    np.testing.assert_array_equal(ours.predict(x, verbose=0), want)
    proto = onnx_conv.export(ours)
    again = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(again.run(None, {again.get_inputs()[0].name: x})[0], want)


def test_sequence_inputs_and_outputs_are_boxed():
    seq_type = helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    nodes = [helper.make_node("SequenceLength", ["s"], ["n"]),
             helper.make_node("SequenceInsert", ["s", "x"], ["s2"])]
    graph = helper.make_graph(
        nodes, "seqio", [helper.make_value_info("s", seq_type),
                         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("n", TensorProto.INT64, []),
         helper.make_value_info("s2", seq_type)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m = import_onnx(model)
    a, b = np.ones(3, np.float32), np.zeros(2, np.float32)
    n, s2 = m([OnnxValue([a]), b])
    assert int(to_numpy(n)) == 1
    out = to_numpy(s2)
    assert isinstance(out, list) and [o.tolist() for o in out] == [a.tolist(), b.tolist()]
    graph = m.to_ir()                   # the IR round trip keeps the sequence input
    assert graph.inputs[0].dtype == "object"
    n2, s3 = from_ir(graph)([OnnxValue([a, a]), b])
    assert int(to_numpy(n2)) == 2 and len(to_numpy(s3)) == 3
    with pytest.raises(ModelkitError, match="takes a sequence"):
        m([OnnxValue(None), b])
    with pytest.raises(ModelkitError, match="input 's' is an ONNX sequence, optional or string"):
        m.predict([OnnxValue([a]), b[None]], verbose=0)


def test_sequence_inputs_and_outputs_export_with_their_types():
    seq = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT,
                                                                        None))
    opt = helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT,
                                                                        None))
    nodes = [helper.make_node("SequenceInsert", ["s", "x"], ["s2"]),
             helper.make_node("OptionalHasElement", ["o"], ["has"])]
    graph = helper.make_graph(
        nodes, "seqio", [helper.make_value_info("s", seq), helper.make_value_info("o", opt),
                         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_value_info("s2", seq),
         helper.make_tensor_value_info("has", TensorProto.BOOL, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    proto = onnx_conv.export(import_onnx(model), opset=18)
    assert [i.type.WhichOneof("value") for i in proto.graph.input] == \
        ["sequence_type", "optional_type", "tensor_type"]
    assert proto.graph.output[0].type == seq
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    a, x = np.ones(3, np.float32), np.zeros(2, np.float32)
    s2, has = sess.run(None, {"s": [a], "o": a, "x": x})
    assert [v.tolist() for v in s2] == [a.tolist(), x.tolist()] and bool(has)

"""The import API: import_onnx / import_graph / load_model on paths, bytes and protos; the
OnnxOp layer (config and IR round trips, float64 gradient check through the layer, dtypes);
the one import-handler registry."""

import json
import os

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelkit.backend.gradcheck import assert_layer_gradients_close
from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.importer.registry import IMPORT_HANDLERS, handler_for, import_handler
from modelkit.errors import ConfigError, UnsupportedError
from modelkit.ir import Graph
from modelkit.ir_bridge import from_ir, to_ir
from modelkit.layers import OnnxOp
from modelkit.models import import_onnx, load_model

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "onnx")
RNG = np.random.default_rng(21)


def make(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def ort_run(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_sources_path_bytes_proto_and_load_model():
    path = os.path.join(HERE, "mlp.ts.onnx")
    x = np.load(os.path.join(HERE, "mlp.npz"))["in_0"]
    with open(path, "rb") as f:
        data = f.read()
    import onnx
    preds = [m.predict(x, verbose=0) for m in (import_onnx(path),
                                               import_onnx(data),
                                               import_onnx(onnx.load(path)),
                                               load_model(path),
                                               onnx_conv.import_model(path),
                                               onnx_conv.import_model(onnx.load(path)))]
    for p in preds[1:]:
        np.testing.assert_array_equal(p, preds[0])
    g = onnx_conv.import_graph(path)
    assert isinstance(g, Graph) and g.metadata["source"] == "onnx"
    assert g.metadata["onnx_output_names"] == ["out_0"]
    with pytest.raises(Exception, match="needs a path, bytes or onnx.ModelProto"):
        import_onnx(3.5)


def dtype_model():
    nodes = [helper.make_node("Greater", ["x", "zero"], ["pos"]),
             helper.make_node("ArgMax", ["x"], ["arg"], axis=1, keepdims=0),
             helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Cast", ["pos"], ["count_in"], to=TensorProto.INT32),
             helper.make_node("ReduceSum", ["count_in", "axes"], ["count"], keepdims=0)]
    return make(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5])],
                [helper.make_tensor_value_info("pos", TensorProto.BOOL, ["N", 5]),
                 helper.make_tensor_value_info("arg", TensorProto.INT64, ["N"]),
                 helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
                 helper.make_tensor_value_info("count", TensorProto.INT32, ["N"])],
                [("zero", np.array(0, np.float32)), ("axes", np.array([1], np.int64))])


def test_integer_and_boolean_tensors_keep_their_dtypes():
    proto = dtype_model()
    model = import_onnx(proto)
    x = RNG.normal(size=(4, 5)).astype(np.float32)
    got = [np.asarray(t.value) for t in model(x)]
    want = ort_run(proto, {"x": x})
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    assert [str(t.dtype) for t in model.outputs] == ["bool", "int64", "int64", "int32"]


def test_onnx_op_config_and_ir_round_trip():
    proto = os.path.join(HERE, "bilstm.dynamo.onnx")
    model = import_onnx(proto)
    json.dumps([layer.get_config() for layer in model.layers])      # JSON-safe configs
    again = from_ir(to_ir(model))
    x = np.load(os.path.join(HERE, "bilstm.npz"))["in_0"]
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    op = next(layer for layer in model.layers if isinstance(layer, OnnxOp))
    clone = OnnxOp.from_config(op.get_config())
    assert clone.get_config() == op.get_config()


def test_onnx_op_layer_gradients_float64():
    w = RNG.normal(size=(3, 2, 3, 3))
    layer = OnnxOp("Conv", attributes={"pads": [1, 0, 1, 2], "strides": [1, 2]},
                   inputs=["x0", "w0", "c0"], constants=[{"__array__": [0.5, -0.5, 0.25],
                                                          "dtype": "float64"}],
                   weight_shapes=[w.shape], weight_dtypes=["float64"], dtype="float64")
    x = RNG.normal(size=(1, 2, 4, 4))
    layer(x)
    layer.set_weights([w])
    assert len(layer.trainable_weights) == 1
    assert_layer_gradients_close(layer, x)


def test_onnx_op_unknown_op_type_is_refused():
    with pytest.raises(UnsupportedError, match="Unknown ONNX op 'Convv'.*Did you mean 'Conv'"):
        OnnxOp("Convv")
    with pytest.raises(ConfigError, match="input slot 'w3' does not exist"):
        OnnxOp("Relu", inputs=["w3"])(np.zeros((1, 2), np.float32))


def test_onnx_op_reexports_unchanged_with_constants_and_optional_inputs():
    nodes = [helper.make_node("Clip", ["x", "", "hi"], ["c"]),
             helper.make_node("Pad", ["c", "pads"], ["y"], mode="reflect")]
    proto = make(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 7])],
                 [("hi", np.array(0.3, np.float32)), ("pads", np.array([0, 1, 0, 2]))])
    model = import_onnx(proto)
    assert [layer.op_type for layer in model.layers[1:]] == ["Clip", "Pad"]
    out = onnx_conv.export(model)
    assert [n.op_type for n in out.graph.node] == ["Clip", "Pad"]
    assert list(out.graph.node[0].input)[1] == ""                     # omitted min kept omitted
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(ort_run(out, {"x": x})[0], ort_run(proto, {"x": x})[0])
    np.testing.assert_allclose(model.predict(x, verbose=0), ort_run(proto, {"x": x})[0])


def test_one_import_handler_registry_with_opset_ranges():
    for op in ("Conv", "Gemm", "LSTM", "Reshape", "Relu", "Shape"):
        assert handler_for(op, 17) is not None
    assert handler_for("GlobalLpPool", 17) is None
    with pytest.raises(ConfigError, match="registered twice"):
        import_handler("Conv")(lambda node, ctx: None)
    with pytest.raises(UnsupportedError, match="Did you mean 'Conv'"):
        IMPORT_HANDLERS.get("Convv")
    h = IMPORT_HANDLERS.get("Conv")
    assert h.covers(13) and h.covers(21)


def test_onnx_spec_lists_exactly_the_ops_the_backend_runs():
    from modelkit.backend.onnx_ops import ONNX_OPS, onnx_op
    from modelkit.onnx_spec import CHECKS, OP_TYPES
    assert set(ONNX_OPS.names()) == OP_TYPES
    assert set(CHECKS) <= OP_TYPES
    with pytest.raises(UnsupportedError, match="'Bogus' is missing from modelkit.onnx_spec"):
        onnx_op("Bogus")(lambda inputs, attrs, ctx: None)

"""ONNX's low-precision types (bfloat16, float8, float4, int4/int2 as ml_dtypes arrays):
Cast's saturation and rounding rules, QuantizeLinear into them, ops computed widened and
rounded back, packed initializers, and a model through import, export and onnxruntime.
ONNX's own node cases for these types run in test_onnx_import_conformance.py (bit-exact)."""

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelkit.backend.onnx_ops import run_onnx_op
from modelkit.backend.onnx_ops.low_precision import cast_into
from modelkit.backend.tensor import Tensor
from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.importer.load import tensor_to_array
from modelkit.errors import ModelLoadError
from modelkit.ir import tensor_dtype
from modelkit.models import import_onnx

INF, NAN = np.inf, np.nan


def bits(a):
    a = np.asarray(a)
    return a.view({1: np.uint8, 2: np.uint16}[a.dtype.itemsize])


def same(got, want_values, dtype):
    """got holds exactly `want_values` (given as floats) in `dtype`, bit for bit."""
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(bits(got), bits(np.asarray(want_values, np.float32)
                                                  .astype(dtype)))


# ONNX Cast's table: saturate=1 maps infinities and out-of-range values to the largest
# finite value; saturate=0 gives NaN (or inf for e5m2); NaN stays NaN
X = np.array([1e6, INF, -INF, -1e6, NAN, 0.0], np.float32)
SATURATION = [
    ("float8_e4m3fn", 1, [448, 448, -448, -448, NAN, 0]),
    ("float8_e4m3fn", 0, [NAN, NAN, NAN, NAN, NAN, 0]),
    ("float8_e4m3fnuz", 1, [240, 240, -240, -240, NAN, 0]),
    ("float8_e4m3fnuz", 0, [NAN, NAN, NAN, NAN, NAN, 0]),
    ("float8_e5m2", 1, [57344, 57344, -57344, -57344, NAN, 0]),
    ("float8_e5m2", 0, [INF, INF, -INF, -INF, NAN, 0]),
    ("float8_e5m2fnuz", 1, [57344, 57344, -57344, -57344, NAN, 0]),
    ("float8_e5m2fnuz", 0, [NAN, NAN, NAN, NAN, NAN, 0]),
]


@pytest.mark.parametrize("name,saturate,want", SATURATION)
def test_float8_cast_saturates_as_onnx_says(name, saturate, want):
    dtype = np.dtype(getattr(ml_dtypes, name))
    got = cast_into(X, dtype, saturate=saturate)
    assert got.dtype == dtype
    g = got.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(want))
    np.testing.assert_array_equal(g[~np.isnan(g)], np.asarray(want)[~np.isnan(want)])
    # from float16 and bfloat16 too (widened exactly first)
    for src in (np.float16, ml_dtypes.bfloat16):
        np.testing.assert_array_equal(bits(cast_into(X[1:3].astype(src), dtype, saturate)),
                                      bits(got[1:3]))


def test_casts_round_to_nearest_even():
    # e4m3fn has 3 mantissa bits: 1.0625 lies halfway between 1.0 and 1.125 (even: 1.0),
    # 1.1875 halfway between 1.125 and 1.25 (even: 1.25)
    same(cast_into(np.float32([1.0625, 1.1875, 1.07]), ml_dtypes.float8_e4m3fn),
         [1.0, 1.25, 1.125], ml_dtypes.float8_e4m3fn)
    # bfloat16 has 8 significant bits: 1 + 2**-8 is a tie (even: 1.0); 1 + 3 * 2**-8 rounds up
    same(cast_into(np.float32([1 + 2 ** -8, 1 + 3 * 2 ** -8]), ml_dtypes.bfloat16),
         [1.0, 1 + 2 ** -6], ml_dtypes.bfloat16)
    # float4 e2m1 (0, .5, 1, 1.5, 2, 3, 4, 6; no inf/NaN): 2.5 -> 2, 5 -> 4, 1e6 -> 6
    same(cast_into(np.float32([2.5, 5.0, 1e6, -0.25]), ml_dtypes.float4_e2m1fn),
         [2.0, 4.0, 6.0, -0.0], ml_dtypes.float4_e2m1fn)


def test_e8m0_rounding_modes():
    x = np.float32([1.0, 1.5, 3.0, 0.75, 2.0 ** 127 * 1.5, 0.0, INF, NAN])
    e8m0 = np.dtype(ml_dtypes.float8_e8m0fnu)
    up = cast_into(x, e8m0, round_mode="up").astype(np.float64)
    down = cast_into(x, e8m0, round_mode=b"down").astype(np.float64)
    near = cast_into(x, e8m0, round_mode="nearest").astype(np.float64)
    np.testing.assert_array_equal(up[:5], [1, 2, 4, 1, 2.0 ** 127])     # saturated at 2**127
    np.testing.assert_array_equal(down[:5], [1, 1, 2, 0.5, 2.0 ** 127])
    np.testing.assert_array_equal(near[:5], [1, 2, 4, 1, 2.0 ** 127])   # ties away from 0
    assert up[5] == 2.0 ** -127                 # zero has no encoding: the smallest exponent
    assert np.isnan(up[6:]).all()               # infinities and NaN become NaN
    assert np.isnan(cast_into(np.float32([2.0 ** 127 * 1.5]), e8m0, saturate=0,
                              round_mode="up").astype(np.float32)).all()


def test_int4_int2_casts_follow_onnx_reference():
    # in range: truncated toward zero; ONNX's reference (ml_dtypes) gives 0 out of range
    got = cast_into(np.float32([-8, 7, 2.7, -2.7, 9]), ml_dtypes.int4)
    np.testing.assert_array_equal(got.astype(np.int8), [-8, 7, 2, -2, 0])
    got = cast_into(np.float32([0, 3, 1.9, -1]), ml_dtypes.uint2)
    np.testing.assert_array_equal(got.astype(np.uint8), [0, 3, 1, 0])
    back = cast_into(np.array([-8, 7], ml_dtypes.int4), np.float16)
    assert back.dtype == np.float16 and back.tolist() == [-8.0, 7.0]


def test_quantize_linear_into_int4_and_float8():
    x = Tensor(np.float32([-20, -2.5, -1.5, 0.5, 1.5, 2.5, 20]))
    scale = Tensor(np.float32(1.0))
    (q,) = run_onnx_op("QuantizeLinear", [x, scale, Tensor(np.zeros((), ml_dtypes.int4))],
                       opset=21)
    assert q.dtype == np.dtype(ml_dtypes.int4)
    np.testing.assert_array_equal(q.value.astype(np.int8), [-8, -2, -2, 0, 2, 2, 7])
    (q,) = run_onnx_op("QuantizeLinear", [x, Tensor(np.float32(0.01)),
                                          Tensor(np.zeros((), ml_dtypes.float8_e4m3fn))],
                       opset=21)
    same(q.value, [-448, -256, -144, 48, 144, 256, 448], ml_dtypes.float8_e4m3fn)
    (y,) = run_onnx_op("DequantizeLinear", [q, Tensor(np.float32(0.01))], opset=21)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.value, [-4.48, -2.56, -1.44, 0.48, 1.44, 2.56, 4.48], rtol=1e-6)


def test_other_ops_compute_widened_and_round_back():
    a = np.array([1.0, 2.0, 3.0], ml_dtypes.bfloat16)
    b = np.array([2 ** -8, 2 ** -7, 1.0], ml_dtypes.bfloat16)
    (s,) = run_onnx_op("Add", [Tensor(a), Tensor(b)])
    assert s.dtype == a.dtype
    np.testing.assert_array_equal(bits(s.value), bits(a + b))   # ml_dtypes: float32, rounded
    (m,) = run_onnx_op("ReduceMax", [Tensor(a)], {"keepdims": 0})
    assert m.dtype == a.dtype and float(m.value) == 3.0
    (e,) = run_onnx_op("Equal", [Tensor(a), Tensor(a)])
    assert e.dtype == bool and e.value.all()
    i4 = np.array([[-8, 7], [1, 2]], ml_dtypes.int4)
    (t,) = run_onnx_op("Transpose", [Tensor(i4)])
    assert t.dtype == i4.dtype and t.value.astype(int).tolist() == [[-8, 1], [7, 2]]
    (sh,) = run_onnx_op("Shape", [Tensor(i4)])
    assert sh.dtype == np.int64 and sh.value.tolist() == [2, 2]


def test_low_precision_tensors_in_sequences_keep_their_type():
    x = np.array([[1.0, 2.5], [3.0, -4.0]], ml_dtypes.bfloat16)
    (parts,) = run_onnx_op("SplitToSequence", [Tensor(x)], {"axis": 0, "keepdims": 0})
    assert [p.dtype for p in parts] == [x.dtype] * 2
    (more,) = run_onnx_op("SequenceInsert", [parts, Tensor(x[0] * 2)])
    (back,) = run_onnx_op("ConcatFromSequence", [more], {"axis": 0, "new_axis": 1})
    assert back.dtype == x.dtype
    np.testing.assert_array_equal(bits(back.value), bits(np.concatenate([x, x[:1] * 2])))


# -- initializers ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["int4", "uint4", "int2", "uint2", "float4_e2m1fn",
                                  "bfloat16", "float8_e5m2"])
def test_packed_and_small_initializers_are_read_and_checked(name, tmp_path):
    dtype = np.dtype(getattr(ml_dtypes, name))
    values = np.array([1, 0, 1, 1, 0], np.float32).astype(dtype)   # odd length: padding
    raw = numpy_helper.from_array(values, "w")
    np.testing.assert_array_equal(bits(tensor_to_array(raw, "m", None)), bits(values))
    typed = helper.make_tensor("w", raw.data_type, [5], values.astype(np.float32).tolist())
    np.testing.assert_array_equal(bits(tensor_to_array(typed, "m", None)), bits(values))
    # external data: the packed bytes next to the model
    (tmp_path / "w.bin").write_bytes(raw.raw_data)
    ext = TensorProto()
    ext.CopyFrom(raw)
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    ext.external_data.add(key="location", value="w.bin")
    np.testing.assert_array_equal(bits(tensor_to_array(ext, "m", str(tmp_path))), bits(values))
    short = TensorProto()
    short.CopyFrom(raw)
    short.dims[0] = 40                          # declares more values than its bytes hold
    with pytest.raises(ModelLoadError, match="initializer 'w' declares dims"):
        tensor_to_array(short, "m", None)


def test_ir_accepts_the_low_precision_dtype_names():
    for name in ("bfloat16", "float8_e4m3fn", "int4", "uint2", "float4_e2m1fn"):
        assert tensor_dtype(name, "input x") == name


# -- a model: import, run, export, onnxruntime -------------------------------------------

def _qdq_model():
    """x (float32) -> Cast to float8 e4m3fn (saturating) -> Cast to float32, plus
    x rounded to bfloat16 and back, plus a bfloat16 initializer w (onnxruntime's CPU
    kernels take bfloat16 in casts only)."""
    nodes = [helper.make_node("Cast", ["x"], ["f8"], to=TensorProto.FLOAT8E4M3FN),
             helper.make_node("Cast", ["f8"], ["back"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["x"], ["xb"], to=TensorProto.BFLOAT16),
             helper.make_node("Cast", ["xb"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["xf", "wf"], ["s"])]
    w = numpy_helper.from_array(np.array([0.5, -1.0, 3.0, 1e-3], ml_dtypes.bfloat16), "w")
    graph = helper.make_graph(
        nodes, "lowp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("back", TensorProto.FLOAT, [None, 4]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, [None, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def test_model_matches_onnxruntime_bit_for_bit_and_reexports():
    model = _qdq_model()
    x = np.array([[0.3, 1000.0, -7.1, 1e-4], [np.inf, -np.inf, 17.0, 2.5]], np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = ref.run(None, {"x": x})
    ours = import_onnx(model)
    got = [np.asarray(t.value) for t in ours(x)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.view(np.uint32), w.view(np.uint32))
    proto = onnx_conv.export(ours)
    casts = [a.i for n in proto.graph.node if n.op_type == "Cast" for a in n.attribute]
    assert TensorProto.FLOAT8E4M3FN in casts and TensorProto.BFLOAT16 in casts
    (w,) = [numpy_helper.to_array(i) for i in proto.graph.initializer]   # Cast(w) folded
    np.testing.assert_array_equal(w, [0.5, -1.0, 3.0, np.float32(ml_dtypes.bfloat16(1e-3))])
    again = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for g, w in zip(again.run(None, {again.get_inputs()[0].name: x}), want):
        np.testing.assert_array_equal(g.view(np.uint32), w.view(np.uint32))

"""modelkit.runtime.InferenceSession on small ONNX graphs built with onnx.helper."""

import logging
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelkit.errors import (ConfigError, DTypeError, ModelLoadError, RuntimeSessionError,
                             ShapeError)
from modelkit.runtime import InferenceSession, IOSpec, concat_batches, cuda_status, iter_batches

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3)).astype(np.float32)
B = RNG.standard_normal(3).astype(np.float32)
TABLE = RNG.standard_normal((10, 2)).astype(np.float32)


def _model(nodes, inputs, outputs, inits=(), name="g"):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def mlp_model(batch="N"):
    """y = relu(x @ W + b), x: (batch, 4) float32."""
    return _model(
        [helper.make_node("MatMul", ["x", "W"], ["h"]),
         helper.make_node("Add", ["h", "b"], ["z"]),
         helper.make_node("Relu", ["z"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "b")], name="mlp")


def mlp_ref(x):
    return np.maximum(x.astype(np.float32) @ W + B, 0)


def two_io_model():
    """sum = a + b, prod = a * b; a, b: (N, 3) float32."""
    vi = helper.make_tensor_value_info
    return _model(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"], ["prod"])],
        [vi("a", TensorProto.FLOAT, ["N", 3]), vi("b", TensorProto.FLOAT, ["N", 3])],
        [vi("sum", TensorProto.FLOAT, ["N", 3]), vi("prod", TensorProto.FLOAT, ["N", 3])],
        name="two_io")


def gather_model(index_type=TensorProto.INT64):
    """out = TABLE[ids]; ids: (N,) int64 (or int32)."""
    vi = helper.make_tensor_value_info
    return _model(
        [helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0)],
        [vi("ids", index_type, ["N"])],
        [vi("emb", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(TABLE, "table")], name="gather")


def gather_elements_model():
    """out[i, j] = TABLE[ids[i, j], j]; ids: (N, 2) int64."""
    vi = helper.make_tensor_value_info
    return _model([helper.make_node("GatherElements", ["table", "ids"], ["out"], axis=0)],
                  [vi("ids", TensorProto.INT64, ["N", 2])], [vi("out", TensorProto.FLOAT, ["N", 2])],
                  [numpy_helper.from_array(TABLE, "table")], name="gather_elements")


def reshape3_model():
    """y = reshape(x, (3,)); x: (N,) float32 -- onnxruntime fails to run unless N == 3."""
    vi = helper.make_tensor_value_info
    return _model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
                  [vi("x", TensorProto.FLOAT, ["N"])], [vi("y", TensorProto.FLOAT, [3])],
                  [numpy_helper.from_array(np.array([3], np.int64), "shape")], name="to3")


@pytest.fixture(scope="module")
def mlp():
    return InferenceSession(mlp_model(), device="cpu")


@pytest.fixture(scope="module")
def two_io():
    return InferenceSession(two_io_model(), device="cpu")


@pytest.fixture(scope="module")
def gather():
    return InferenceSession(gather_model(), device="cpu")


# -- basics -------------------------------------------------------------------------------

def test_mlp_predict_and_run_match_numpy(mlp):
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    y = mlp.predict(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (5, 3)
    np.testing.assert_allclose(y, mlp_ref(x), rtol=1e-6, atol=1e-6)
    out = mlp.run({"x": x})
    assert list(out) == ["y"]
    np.testing.assert_array_equal(out["y"], y)
    np.testing.assert_array_equal(mlp(x), y)


def test_specs_and_providers(mlp, two_io, gather):
    assert mlp.providers == ["CPUExecutionProvider"]
    assert mlp.device == "cpu"
    assert mlp.input_names == ["x"] and mlp.output_names == ["y"]
    spec = mlp.inputs[0]
    assert isinstance(spec, IOSpec)
    assert spec.name == "x" and spec.shape == (None, 4) and spec.dtype == np.float32
    assert spec.dim_names == ("N", None) and spec.batch_dynamic and spec.rank == 2
    assert mlp.outputs[0].shape == (None, 3)
    assert two_io.input_names == ["a", "b"] and two_io.output_names == ["sum", "prod"]
    assert gather.inputs[0].dtype == np.int64 and gather.inputs[0].shape == (None,)
    assert "x: (None, 4) float32" in repr(mlp)


def test_fixed_batch_dim_is_reported_and_checked():
    sess = InferenceSession(mlp_model(batch=2), device="cpu")
    assert sess.inputs[0].shape == (2, 4) and not sess.inputs[0].batch_dynamic
    sess.predict(np.zeros((2, 4), np.float32), batch_size=1)   # batch_size ignored: fixed batch
    with pytest.raises(ShapeError) as e:
        sess.predict(np.zeros((3, 4), np.float32))
    assert str(e.value) == ("Input 'x' dimension 0 must be 2 (expected shape (2, 4)), "
                            "got 3 (shape (3, 4))")


def test_sources_path_bytes_proto(tmp_path):
    model = mlp_model()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    ref = mlp_ref(x)
    for src in (str(path), path, model, model.SerializeToString(),
                bytearray(model.SerializeToString())):
        np.testing.assert_allclose(InferenceSession(src, device="cpu").predict(x), ref,
                                   rtol=1e-6, atol=1e-6)


def test_bad_sources(tmp_path):
    with pytest.raises(ModelLoadError, match="Model file not found: .*nope.onnx"):
        InferenceSession(str(tmp_path / "nope.onnx"))
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ModelLoadError, match="unknown model file extension '.txt'"):
        InferenceSession(str(tmp_path / "m.txt"))
    (tmp_path / "bad.onnx").write_bytes(b"this is not protobuf")
    with pytest.raises(ModelLoadError, match="Cannot load ONNX model .*bad.onnx"):
        InferenceSession(str(tmp_path / "bad.onnx"), device="cpu")
    with pytest.raises(ConfigError, match="got int"):
        InferenceSession(42)


def test_bad_options():
    with pytest.raises(ConfigError, match="device must be one of"):
        InferenceSession(mlp_model(), device="tpu")
    with pytest.raises(ConfigError, match="cuda:N"):
        InferenceSession(mlp_model(), device="cuda:x")
    with pytest.raises(ConfigError, match="optimization_level must be one of"):
        InferenceSession(mlp_model(), device="cpu", optimization_level="max")
    with pytest.raises(ConfigError, match="intra_op_threads"):
        InferenceSession(mlp_model(), device="cpu", intra_op_threads=-1)


@pytest.mark.parametrize("level", ["all", "extended", "basic", "disable"])
def test_optimization_levels_and_threads(level):
    sess = InferenceSession(mlp_model(), device="cpu", intra_op_threads=1,
                            optimization_level=level)
    x = RNG.standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_allclose(sess.predict(x), mlp_ref(x), rtol=1e-6, atol=1e-6)


# -- batching -----------------------------------------------------------------------------

def test_predict_batches_and_concatenates(mlp, monkeypatch):
    x = RNG.standard_normal((10, 4)).astype(np.float32)
    calls = []
    real = mlp._run_list
    monkeypatch.setattr(mlp, "_run_list", lambda f, n: calls.append(len(f["x"])) or real(f, n))
    y = mlp.predict(x, batch_size=3)
    assert calls == [3, 3, 3, 1]
    np.testing.assert_allclose(y, mlp_ref(x), rtol=1e-6, atol=1e-6)
    calls.clear()
    mlp.predict(x, batch_size=10)
    assert calls == [10]


def test_predict_batches_multi_io(two_io):
    a = RNG.standard_normal((7, 3)).astype(np.float32)
    b = RNG.standard_normal((7, 3)).astype(np.float32)
    s, p = two_io.predict({"a": a, "b": b}, batch_size=2)
    np.testing.assert_allclose(s, a + b, rtol=1e-6)
    np.testing.assert_allclose(p, a * b, rtol=1e-6)


def test_bad_batch_size(mlp):
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
            mlp.predict(np.zeros((2, 4), np.float32), batch_size=bad)


def test_batching_helpers():
    feeds = {"a": np.arange(10), "b": np.arange(20).reshape(10, 2)}
    chunks = list(iter_batches(feeds, 4))
    assert [len(c["a"]) for c in chunks] == [4, 4, 2]
    assert np.shares_memory(chunks[0]["b"], feeds["b"])   # views, no copies
    joined = concat_batches([[c["a"], c["b"]] for c in chunks], ["a", "b"])
    np.testing.assert_array_equal(joined[0], feeds["a"])
    np.testing.assert_array_equal(joined[1], feeds["b"])
    with pytest.raises(ShapeError, match="different batch sizes: 'a' has 10, 'c' has 3"):
        list(iter_batches({"a": np.zeros(10), "c": np.zeros(3)}, 2))
    with pytest.raises(ShapeError, match="Output 's' is a scalar"):
        concat_batches([[np.float32(1)], [np.float32(2)]], ["s"])


# -- input forms --------------------------------------------------------------------------

def test_multi_io_forms(two_io):
    a = RNG.standard_normal((2, 3)).astype(np.float32)
    b = RNG.standard_normal((2, 3)).astype(np.float32)
    by_list = two_io.predict([a, b])
    by_dict = two_io.predict({"b": b, "a": a})
    assert isinstance(by_list, list) and len(by_list) == 2
    for u, v in zip(by_list, by_dict):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_allclose(by_list[0], a + b, rtol=1e-6)
    out = two_io.run({"a": a, "b": b}, output_names=["prod"])
    assert list(out) == ["prod"]
    np.testing.assert_allclose(out["prod"], a * b, rtol=1e-6)


def test_single_input_forms(mlp):
    x = RNG.standard_normal((2, 4))
    ref = mlp_ref(x)
    np.testing.assert_allclose(mlp.predict([x]), ref, rtol=1e-5, atol=1e-6)      # [array]
    np.testing.assert_allclose(mlp.predict(x.tolist()), ref, rtol=1e-5, atol=1e-6)  # nested list


# -- validation errors (exact messages) ----------------------------------------------------

def test_names_errors(two_io):
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(RuntimeSessionError) as e:
        two_io.run({"a": a})
    assert str(e.value) == "Missing input 'b': the model's inputs are ['a', 'b'], got ['a']"
    with pytest.raises(RuntimeSessionError) as e:
        two_io.run({"a": a, "c": a})
    assert str(e.value) == "Unknown input 'c': the model's inputs are ['a', 'b']"
    with pytest.raises(RuntimeSessionError) as e:
        two_io.run({"a": a, "b": a, "c": a})
    assert str(e.value) == "Unknown input 'c': the model's inputs are ['a', 'b']"
    with pytest.raises(RuntimeSessionError) as e:
        two_io.predict([a])
    assert str(e.value) == "The model has 2 inputs ['a', 'b'], got a list of 1 items"
    with pytest.raises(RuntimeSessionError) as e:
        two_io.predict(a)
    assert str(e.value) == ("The model has 2 inputs ['a', 'b']; pass a list (in that order) "
                            "or a dict by name, not a single ndarray")
    with pytest.raises(RuntimeSessionError, match="Unknown output 'nope': the model's outputs "
                                                  r"are \['sum', 'prod'\]"):
        two_io.run({"a": a, "b": a}, output_names=["nope"])


def test_shape_errors(mlp, two_io):
    with pytest.raises(ShapeError) as e:
        mlp.predict(np.zeros((2, 5), np.float32))
    assert str(e.value) == ("Input 'x' dimension 1 must be 4 (expected shape (None, 4)), "
                            "got 5 (shape (2, 5))")
    with pytest.raises(ShapeError) as e:
        mlp.predict(np.zeros(4, np.float32))
    assert str(e.value) == ("Input 'x' must have rank 2 (expected shape (None, 4)), "
                            "got rank 1 (shape (4,))")
    with pytest.raises(ShapeError) as e:
        two_io.predict([np.zeros((2, 3), np.float32), np.zeros((3, 3), np.float32)])
    assert str(e.value) == "Inputs have different batch sizes: 'a' has 2, 'b' has 3"


def test_dtype_rules(mlp, gather):
    x64 = RNG.standard_normal((3, 4))                        # float64 -> float32: allowed
    np.testing.assert_allclose(mlp.predict(x64), mlp_ref(x64), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mlp.predict(np.ones((1, 4), np.int64)),       # int -> float
                               mlp_ref(np.ones((1, 4))), rtol=1e-6)
    np.testing.assert_allclose(mlp.predict(np.ones((1, 4), bool)),           # bool -> float
                               mlp_ref(np.ones((1, 4))), rtol=1e-6)
    ids = np.array([0, 3, 9])
    np.testing.assert_array_equal(gather.predict(ids), TABLE[ids])
    np.testing.assert_array_equal(gather.predict(ids.astype(np.int32)), TABLE[ids])  # widening
    np.testing.assert_array_equal(gather.predict(ids.astype(np.uint8)), TABLE[ids])
    with pytest.raises(DTypeError) as e:
        gather.predict(np.array([0.0, 1.0]))
    assert str(e.value) == ("Input 'ids' expects int64, got float64: floating-point values "
                            "are not cast to int64 implicitly; round and convert them first "
                            "(e.g. x.astype('int64'))")
    with pytest.raises(DTypeError, match="Input 'ids' expects int64, got complex128"):
        gather.predict(np.array([1 + 0j]))
    with pytest.raises(DTypeError, match="Input 'x' expects float32, got str32: non-numeric"):
        mlp.predict(np.array([["a", "b", "c", "d"]]))


def test_int64_to_int32_only_when_values_fit():
    sess = InferenceSession(gather_model(TensorProto.INT32), device="cpu")
    assert sess.inputs[0].dtype == np.int32
    np.testing.assert_array_equal(sess.predict(np.array([1, 2], np.int64)), TABLE[[1, 2]])
    with pytest.raises(DTypeError) as e:
        sess.predict(np.array([1, 2**40], np.int64))
    assert str(e.value) == ("Input 'ids' expects int32, got int64 with values in "
                            f"[1, {2**40}] outside int32's range [-2147483648, 2147483647]")


def test_runtime_failure_is_wrapped():
    sess = InferenceSession(reshape3_model(), device="cpu")
    with pytest.raises(RuntimeSessionError, match="onnxruntime failed to run"):
        sess.predict(np.ones(4, np.float32))      # 4 values cannot be reshaped to (3,)


# -- index inputs: checked before running (CUDA's Gather does not check) -------------------

def test_index_out_of_table_is_refused_before_running(gather):
    np.testing.assert_array_equal(gather.predict(np.array([0, 9, -1, -10])),
                                  TABLE[[0, 9, -1, -10]])        # ONNX: negatives from the end
    for ids, bad in (([1, 10], 10), ([-11, 3], -11), ([2**40], 2**40)):
        with pytest.raises(RuntimeSessionError) as e:
            gather.predict(np.array(ids, np.int64))
        assert str(e.value).startswith(f"Input 'ids' holds index {bad} (values in "), e.value
        assert "outside [-10, 9]: it looks up a table of 10 rows in node " in str(e.value)


def test_index_bounds_follow_casts_and_reshapes_to_the_tightest_table():
    from modelkit.runtime.index_bounds import IndexBound, index_bounds
    vi = helper.make_tensor_value_info
    wide, narrow = np.zeros((3, 7), np.float32), np.zeros((5, 2), np.float32)
    model = _model(
        [helper.make_node("Cast", ["ids"], ["i32"], to=TensorProto.INT32),
         helper.make_node("Unsqueeze", ["i32", "ax"], ["u"]),
         helper.make_node("Gather", ["wide", "u"], ["a"], axis=1, name="by_column"),
         helper.make_node("Gather", ["narrow", "ids"], ["b"], name="by_row"),
         helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("Gather", ["data", "ids"], ["c"], name="fed")],   # a fed table
        [vi("ids", TensorProto.INT64, ["N"]), vi("data", TensorProto.FLOAT, [9, 2])],
        [vi("a", TensorProto.FLOAT, [3, "N", 1]), vi("b", TensorProto.FLOAT, ["N", 2]),
         vi("c", TensorProto.FLOAT, ["N", 2]), vi("f", TensorProto.FLOAT, ["N"])],
        [numpy_helper.from_array(wide, "wide"), numpy_helper.from_array(narrow, "narrow"),
         numpy_helper.from_array(np.array([1], np.int64), "ax")])
    assert index_bounds(model) == {"ids": IndexBound(5, "by_row")}
    model.graph.node.remove(model.graph.node[3])                  # without the narrow table
    assert index_bounds(model) == {"ids": IndexBound(7, "by_column")}
    model.graph.input[1].type.tensor_type.shape.dim[0].dim_param = "rows"   # table size fed
    model.graph.node.remove(model.graph.node[1])                  # and no column lookup
    model.graph.node.remove(model.graph.node[1])
    assert index_bounds(model) == {}
    computed = _model(                                            # a table computed by a node
        [helper.make_node("DequantizeLinear", ["q", "scale"], ["table"]),
         helper.make_node("Gather", ["table", "ids"], ["y"], name="dq")],
        [vi("ids", TensorProto.INT32, ["N"])], [vi("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(np.zeros((6, 2), np.int8), "q"),
         numpy_helper.from_array(np.array(0.5, np.float32), "scale")])
    assert index_bounds(computed) == {"ids": IndexBound(6, "dq")}


def test_embedding_ids_are_checked_on_a_keras_model():
    from modelkit.layers import Dense, Embedding, GlobalAveragePooling1D
    from modelkit.models import Sequential
    model = Sequential([Embedding(12, 4, input_length=3), GlobalAveragePooling1D(), Dense(2)])
    ids = np.array([[0, 5, 11]], np.int32)
    sess = InferenceSession(model, device="cpu")
    np.testing.assert_allclose(sess.predict(ids), model.predict(ids), rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeSessionError, match=r"holds index 12 .* outside \[-12, 11\]"):
        sess.predict(np.array([[0, 12, 1]], np.int32))


# -- devices ------------------------------------------------------------------------------

CUDA_PROBLEMS = cuda_status()


@pytest.mark.skipif(not CUDA_PROBLEMS, reason="CUDA works here; the fallback is not exercised")
def test_auto_falls_back_to_cpu_with_one_log_line(caplog, capfd):
    import onnxruntime
    with caplog.at_level(logging.DEBUG, logger="modelkit.runtime"):
        sess = InferenceSession(mlp_model(), device="auto")
    assert sess.providers == ["CPUExecutionProvider"] and sess.device == "cpu"
    records = [r for r in caplog.records if r.name == "modelkit.runtime"]
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert len(records) == 1
        assert records[0].getMessage().startswith("CUDA unavailable (")
        assert records[0].getMessage().endswith("running on CPUExecutionProvider")
    else:
        assert records == []
    out, err = capfd.readouterr()
    assert out == "" and err == ""       # onnxruntime's own C++ error print is avoided


@pytest.mark.skipif(not CUDA_PROBLEMS, reason="CUDA works here")
def test_cuda_raises_clear_error_without_gpu(capfd):
    with pytest.raises(RuntimeSessionError) as e:
        InferenceSession(mlp_model(), device="cuda")
    msg = str(e.value)
    assert msg.startswith("device='cuda' cannot start: ")
    assert CUDA_PROBLEMS[0] in msg
    assert msg.endswith("Use device='cpu' or device='auto' to run on the CPU")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def _cuda_session_or_skip(model):
    if CUDA_PROBLEMS:
        pytest.skip("CUDA provider cannot start here: " + "; ".join(CUDA_PROBLEMS))
    try:
        return InferenceSession(model, device="cuda")
    except RuntimeSessionError as e:
        pytest.skip(f"CUDA provider did not start: {e}")


@pytest.mark.cuda
def test_cuda_parity_with_cpu():
    sess = _cuda_session_or_skip(mlp_model())
    assert sess.providers[0] == "CUDAExecutionProvider" and sess.device == "cuda"
    assert InferenceSession(mlp_model(), device="auto").device == "cuda"
    cpu = InferenceSession(mlp_model(), device="cpu")
    x = RNG.standard_normal((300, 4)).astype(np.float32)
    np.testing.assert_allclose(sess.predict(x), cpu.predict(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sess.predict(x, batch_size=64), cpu.predict(x),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sess.run({"x": x})["y"], cpu.predict(x), rtol=1e-5, atol=1e-5)
    two = _cuda_session_or_skip(two_io_model())
    a, b = x[:, :3].copy(), x[:, 1:].copy()
    out = two.run({"a": a, "b": b}, output_names=["prod"])
    assert list(out) == ["prod"]
    np.testing.assert_allclose(out["prod"], a * b, rtol=1e-6)
    g = _cuda_session_or_skip(gather_model())
    np.testing.assert_array_equal(g.predict(np.array([1, 2, 9])), TABLE[[1, 2, 9]])
    with pytest.raises(RuntimeSessionError, match="holds index 10 "):   # CUDA's Gather: unchecked
        g.predict(np.array([1, 10]))
    _hammer(sess, cpu)
    # IO binding: outputs stay on the GPU and chain into another session without a copy.
    y = sess.run_on_device({"x": x})["y"]
    assert y.device_name().lower() == "cuda"
    np.testing.assert_allclose(y.numpy(), cpu.predict(x), rtol=1e-5, atol=1e-5)
    chained = two.run_on_device({"a": y, "b": y})
    np.testing.assert_allclose(chained["prod"].numpy(), cpu.predict(x) ** 2, rtol=1e-5, atol=1e-5)
    _hammer(sess, cpu, on_device=True)


# -- threads ------------------------------------------------------------------------------

def _hammer(sess, ref_sess, threads=8, calls=20, on_device=False):
    inputs = [RNG.standard_normal((1 + i % 5, 4)).astype(np.float32) for i in range(threads)]
    expected = [ref_sess.predict(x) for x in inputs]
    errors = []
    barrier = threading.Barrier(threads)

    def work(i):
        try:
            barrier.wait()
            for k in range(calls):
                y = sess.predict(inputs[i], batch_size=2 if k % 2 else None)
                if not np.allclose(y, expected[i], rtol=1e-5, atol=1e-5):
                    errors.append(f"thread {i} call {k}: wrong result")
                if on_device:
                    out = sess.run_on_device({"x": inputs[i]})["y"].numpy()
                else:
                    out = sess.run({"x": inputs[i]})["y"]
                if not np.allclose(out, expected[i], rtol=1e-5, atol=1e-5):
                    errors.append(f"thread {i} call {k}: wrong run() result")
        except Exception as e:   # pragma: no cover - reported below
            errors.append(f"thread {i}: {type(e).__name__}: {e}")

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


def test_threads_share_one_session(mlp):
    _hammer(mlp, mlp)


def test_run_on_device_with_io_binding_on_cpu():
    import onnxruntime
    sess = InferenceSession(mlp_model(), device="cpu")
    x = RNG.standard_normal((9, 4)).astype(np.float32)
    out = sess.run_on_device({"x": x})
    assert list(out) == ["y"] and isinstance(out["y"], onnxruntime.OrtValue)
    np.testing.assert_allclose(out["y"].numpy(), mlp_ref(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sess.run_on_device({"x": x.astype(np.float64)})["y"].numpy(),
                               mlp_ref(x), rtol=1e-6, atol=1e-6)          # numpy inputs are cast
    two = InferenceSession(two_io_model(), device="cpu")
    y = out["y"]
    chained = two.run_on_device({"a": y, "b": y}, output_names=["sum"])   # OrtValue inputs
    assert list(chained) == ["sum"]
    np.testing.assert_allclose(chained["sum"].numpy(), 2 * mlp_ref(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ShapeError, match="Inputs have different batch sizes: 'a' has 9, 'b' has 2"):
        two.run_on_device({"a": y, "b": np.zeros((2, 3), np.float32)})
    with pytest.raises(DTypeError, match="Input 'a' expects float32, got an OrtValue of float64"):
        two.run_on_device({"a": onnxruntime.OrtValue.ortvalue_from_numpy(np.zeros((2, 3))),
                           "b": np.zeros((2, 3), np.float32)})
    with pytest.raises(ShapeError, match="Input 'x' dimension 1 must be 4"):
        sess.run_on_device({"x": onnxruntime.OrtValue.ortvalue_from_numpy(np.zeros((2, 5), np.float32))})
    _hammer(sess, InferenceSession(mlp_model(), device="cpu"), on_device=True)


# -- modelkit sources: Keras .h5 files, IR graphs, models -----------------------------------

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("name", ["mlp", "cnn", "functional_multi", "lstm"])
def test_h5_and_ir_sources_match_keras_outputs(name):
    from modelkit.converters import hdf5
    path = FIXTURES / "keras2" / f"{name}.h5"
    with np.load(FIXTURES / "keras2" / f"{name}.npz") as z:
        data = dict(z)
    xs = [data[k] for k in sorted(data) if k.startswith("x")]
    ys = [data[k] for k in sorted(data) if k.startswith("y")]
    graph = hdf5.load_graph(str(path))

    class HasToIr:
        def to_ir(self):
            return graph

    for src in (str(path), graph, HasToIr()):
        sess = InferenceSession(src, device="cpu")
        out = sess.predict(xs if len(xs) > 1 else xs[0], batch_size=2)
        outs = out if isinstance(out, list) else [out]
        assert len(outs) == len(ys)
        for got, want in zip(outs, ys):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert InferenceSession(str(path), device="cpu").source == str(path)


def test_modelkit_model_source():
    from modelkit.layers import Dense
    from modelkit.models import Sequential
    model = Sequential([Dense(3, activation="relu", input_shape=(4,)), Dense(2)])
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    sess = InferenceSession(model, device="cpu")
    np.testing.assert_allclose(sess.predict(x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)

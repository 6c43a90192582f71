"""TF ops and Python operators on KerasTensors as real Keras files store them: tf-keras 2.x
TFOpLambda/SlicingOpLambda layers and Keras 3 operations (`keras.src.ops.*`), read as
BackendOp nodes through tables of names (keras_config/tf_ops.py, keras3_ops.py): loaded with
Keras's predictions, written back in the same form, exported to ONNX; unknown names refused.

Fixtures: tests/fixtures/tf_ops/make_tf_op_fixtures.py (tf-keras 2.21, Keras 3.15.1)."""

import copy
import json
import pathlib
import zipfile

import h5py
import numpy as np
import pytest

from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.errors import KerasConfigError, ModelkitError
from modelkit.keras_config import graph_to_keras_config, keras_config_to_graph
from modelkit.models import load_model, model_from_json

FIX = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "tf_ops"
NAMES = ["arith", "two_inputs", "slicing", "matmul_act", "split", "masked", "more_ops"]


def _data(name):
    d = np.load(FIX / f"{name}.npz")
    xs = [d[f"x{i}"] for i in range(sum(k.startswith("x") for k in d.files))]
    return xs, d


def _tfk_config(name):
    with h5py.File(FIX / f"tfk_{name}.h5", "r") as f:
        return json.loads(f.attrs["model_config"])


def _k3_config(name):
    return json.loads(zipfile.ZipFile(FIX / f"k3_{name}.keras").read("config.json"))


def _op_entries(config, key):
    return [(e["class_name"], e["config"].get(key), e["inbound_nodes"])
            for e in config["config"]["layers"] if e["class_name"] in ("TFOpLambda",
                                                                         "SlicingOpLambda")
            or str(e.get("module", "")).startswith("keras.src.ops.")]


@pytest.mark.parametrize("name", NAMES)
def test_tf_keras_file_predicts_as_tf_keras(name):
    xs, d = _data(name)
    m = load_model(FIX / f"tfk_{name}.h5")
    assert any(layer.__class__.__name__ == "BackendOp" for layer in m.layers)
    np.testing.assert_allclose(m.predict(xs), d["y_tfk"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_keras3_file_predicts_as_keras(name):
    xs, d = _data(name)
    m = load_model(FIX / f"k3_{name}.keras")
    # Keras 3.15 (TF backend) broadcasts (3, 3) + (3, 1) wrongly in the "slicing" model
    # (its eager ops and tf-keras agree with numpy): compare that one with tf-keras's numbers
    ref = d["y_tfk"] if name == "slicing" else d["y_k3"]
    np.testing.assert_allclose(m.predict(xs), ref, atol=1e-5, rtol=0)


def test_slicing_reference_is_numpy():
    xs, d = _data("slicing")
    x = xs[0]
    want = x[:, 1:, :].sum(1) + x[:, ::2, 0].sum(1, keepdims=True) + x[..., -1].max(-1,
                                                                                   keepdims=True)
    np.testing.assert_allclose(load_model(FIX / "tfk_slicing.h5").predict(x), want, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_tf_keras_config_written_back_the_same(name):
    m = load_model(FIX / f"tfk_{name}.h5")
    written = graph_to_keras_config(m.to_ir(), "keras2")
    assert _op_entries(written, "function") == _op_entries(_tfk_config(name), "function")


@pytest.mark.parametrize("name", NAMES)
def test_keras3_config_written_back_the_same(name):
    m = load_model(FIX / f"k3_{name}.keras")
    written = graph_to_keras_config(m.to_ir(), "keras3")
    ours = [(c, _histories(n[0]["args"])) for c, _, n in _op_entries(written, "name")]
    # the mask's NotEqual (Embedding mask_zero) is implicit in modelkit, as in Keras 2
    theirs = [(c, _histories(n[0]["args"])) for c, _, n in _op_entries(_k3_config(name), "name")
              if c != "NotEqual"]
    assert ours == theirs


def _histories(v):
    """Node arguments with each __keras_tensor__ replaced by its keras_history."""
    if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
        return v["config"]["keras_history"]
    if isinstance(v, list):
        return [_histories(x) for x in v]
    return v


@pytest.mark.parametrize("prefix,ref", [("tfk", "y_tfk"), ("k3", "y_k3")])
@pytest.mark.parametrize("name", NAMES)
def test_round_trips_and_onnx(tmp_path, prefix, ref, name):
    if prefix == "k3" and name == "slicing":
        ref = "y_tfk"
    from modelkit.runtime import InferenceSession
    xs, d = _data(name)
    ext = "h5" if prefix == "tfk" else "keras"
    m = load_model(FIX / f"{prefix}_{name}.{ext}")
    for out in ("m.h5", "m.keras"):
        m.save(tmp_path / out)
        np.testing.assert_allclose(load_model(tmp_path / out).predict(xs), d[ref], atol=1e-5)
    m2 = model_from_json(m.to_json())
    m2.set_weights(m.get_weights())
    np.testing.assert_allclose(m2.predict(xs), d[ref], atol=1e-5)
    m.save(tmp_path / "m.onnx")
    sess = InferenceSession(str(tmp_path / "m.onnx"))
    got = sess.predict(xs if len(xs) > 1 else xs[0])
    np.testing.assert_allclose(got, d[ref], atol=1e-5, rtol=0)


def test_loaded_tf_op_model_trains_with_exact_gradients():
    """The loaded graph is differentiable: float64 gradients of the output sum with respect
    to the input match finite differences."""
    from modelkit import backend as K
    from modelkit.backend.tensor import Tensor
    m = load_model(FIX / "tfk_matmul_act.h5")
    x = _data("matmul_act")[0][0].astype(np.float64)
    weights = [w.astype(np.float64) for w in m.get_weights()]
    kernel, bias = weights

    def f(t):
        w = K.matmul(t, Tensor(kernel)) + Tensor(bias)
        p = K.matmul(t, K.permute_dimensions(w, (0, 2, 1)))
        return K.softmax(p) + K.sigmoid(p) + K.tanh(p) + K.exp(-K.abs(p)) \
            + K.maximum(p, 0.5) + K.square(p) * 0.1

    np.testing.assert_allclose(f(Tensor(x)).numpy(), m.predict(x.astype(np.float32)),
                               atol=1e-5)
    assert_gradients_close(lambda t: f(t), [x[:1]])
    y = m.predict(x.astype(np.float32))
    m.compile("sgd", "mse")
    m.fit(x.astype(np.float32), y + 0.1, epochs=1, verbose=0)
    assert not np.allclose(m.predict(x.astype(np.float32)), y)


def _edited_tfk(name, edit):
    cfg = copy.deepcopy(_tfk_config(name))
    layers = [e for e in cfg["config"]["layers"] if e["class_name"] in ("TFOpLambda",
                                                                        "SlicingOpLambda")]
    edit(layers)
    return cfg


@pytest.mark.parametrize("function", ["io.write_file", "__class__", "compat.v1.py_func",
                                      "math.multiply.__globals__", 3, None])
def test_unknown_tf_function_refused_naming_layer_and_function(function):
    def edit(layers):
        layers[0]["config"]["function"] = function
    with pytest.raises(KerasConfigError) as e:
        keras_config_to_graph(_edited_tfk("arith", edit), keras_version="2.21.0")
    assert "tf.math.multiply" in str(e.value) and repr(function)[:20] in str(e.value)


def test_tf_einsum_refused_as_tf_keras_leaves_out_its_operands():
    """tf-keras writes `tf.einsum(eq, a, b)` as the equation alone (it cannot reload it
    either): refused naming the layer and why, never guessed."""
    def edit(layers):
        layers[0]["config"]["function"] = "einsum"
    with pytest.raises(KerasConfigError, match="tf.math.multiply.*einsum.*operands"):
        keras_config_to_graph(_edited_tfk("arith", edit), keras_version="2.21.0")


def test_unsupported_arguments_refused():
    def transpose_b(layers):
        mm = [e for e in layers if e["config"]["function"] == "linalg.matmul"][0]
        mm["inbound_nodes"][0][3]["transpose_b"] = True

    def newaxis(layers):
        layers[0]["inbound_nodes"][0][3]["slice_spec"].append(None)

    def missing(layers):
        del layers[0]["inbound_nodes"][0][3]["y"]

    for name, edit, words in [("matmul_act", transpose_b, "transpose_b"),
                              ("slicing", newaxis, "index None"),
                              ("arith", missing, "'y'")]:
        with pytest.raises(KerasConfigError, match=words):
            keras_config_to_graph(_edited_tfk(name, edit), keras_version="2.21.0")


def test_unknown_keras3_operation_refused():
    cfg = copy.deepcopy(_k3_config("arith"))
    ops = [e for e in cfg["config"]["layers"] if e.get("module", "").startswith("keras.src.ops")]
    ops[0]["class_name"] = "Fft2"
    with pytest.raises(KerasConfigError, match="/multiply: .*'Fft2'"):
        keras_config_to_graph(cfg, keras_version="3.15.1")
    ops[0]["class_name"] = "Multiply"
    ops[0]["config"]["axis"] = 3
    with pytest.raises(KerasConfigError, match="axis=3"):
        keras_config_to_graph(cfg, keras_version="3.15.1")


def test_keras3_op_named_like_a_layer_is_an_operation():
    """`Multiply` from keras.src.ops.numpy multiplies by a constant; it is not the merge layer."""
    g = keras_config_to_graph(_k3_config("arith"), keras_version="3.15.1")
    mul = [n for n in g.nodes if n.name == "multiply"][0]
    assert mul.op == "BackendOp" and mul.config["function"] == "multiply"
    assert mul.config["arguments"]["args"] == [{"__tensor__": 0}, 2.0]


def test_hostile_constant_refused_before_allocation():
    def edit(layers):
        layers[0]["inbound_nodes"][0][3]["y"] = {"__array__": [1.0], "dtype": "U500000000"}
    with pytest.raises(ModelkitError):
        m = model_from_json(json.dumps(_edited_tfk("arith", edit)))
        m.predict(np.zeros((1, 6), np.float32))


@pytest.mark.parametrize("parts,axis,sizes", [(3, 1, [2, 2, 2]), ([1, -1, 2], -1, [1, 3, 2]),
                                              ([4, 2], 1, [4, 2])])
def test_k_split_values_and_gradients(parts, axis, sizes):
    from modelkit import backend as K
    from modelkit.backend.tensor import Tensor
    x = np.random.default_rng(0).standard_normal((2, 6))
    got = [p.numpy() for p in K.split(Tensor(x), parts, axis)]
    want = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    weights = [np.arange(s, dtype=np.float64) + 1 for s in sizes]
    assert_gradients_close(
        lambda t: sum(K.sum(p * w) for p, w in zip(K.split(t, parts, axis), weights)), [x])


@pytest.mark.parametrize("parts", [4, 0, [2, 2], [-1, -1, 6], [7, -1]])
def test_k_split_bad_sizes(parts):
    from modelkit import backend as K
    from modelkit.backend.tensor import Tensor
    from modelkit.errors import ShapeError
    with pytest.raises(ShapeError, match="split"):
        K.split(Tensor(np.zeros((2, 6))), parts, 1)


def _one_op_config(class_name, function, node, shape=(3, 4)):
    """A tf-keras functional config: Input x -> one TF op layer (inbound node `node`)."""
    return {"class_name": "Functional", "config": {
        "name": "m", "layers": [
            {"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, *shape], "dtype": "float32", "name": "x"}},
            {"class_name": class_name, "name": "op", "inbound_nodes": [node],
             "config": {"name": "op", "trainable": True, "dtype": "float32",
                        "function": function}}],
        "input_layers": [["x", 0, 0]], "output_layers": [["op", 0, 0]]}}


X = np.random.default_rng(3).standard_normal((2, 3, 4)).astype(np.float32)
REF = ["x", 0, 0]
TABLE = [   # function, call kwargs (with the x reference first in the node), numpy result
    ("math.add", {"y": 1.5}, X + 1.5),
    ("__operators__.add", {"y": REF}, X + X),
    ("math.subtract", {"y": 0.5}, X - 0.5),
    ("math.truediv", {"y": 4.0}, X / 4),
    ("math.maximum", {"y": 0.0}, np.maximum(X, 0)),
    ("math.minimum", {"y": 0.1}, np.minimum(X, 0.1)),
    ("math.pow", {"y": 2.0}, X ** 2),
    ("math.square", {}, X ** 2),
    ("math.abs", {}, np.abs(X)),
    ("math.exp", {}, np.exp(X)),
    ("math.negative", {}, -X),
    ("math.sigmoid", {}, 1 / (1 + np.exp(-X))),
    ("nn.relu6", {}, np.clip(X, 0, 6)),
    ("nn.leaky_relu", {}, np.where(X > 0, X, 0.2 * X)),
    ("nn.leaky_relu", {"alpha": 0.1}, np.where(X > 0, X, 0.1 * X)),
    ("nn.softplus", {}, np.log1p(np.exp(X))),
    ("nn.silu", {}, X / (1 + np.exp(-X))),
    ("nn.elu", {}, np.where(X > 0, X, np.expm1(X))),
    ("nn.softmax", {"axis": 1}, np.exp(X) / np.exp(X).sum(1, keepdims=True)),
    ("math.reduce_sum", {"axis": [1, 2]}, X.sum((1, 2))),
    ("math.reduce_max", {"axis": -1, "keepdims": True}, X.max(-1, keepdims=True)),
    ("math.reduce_min", {"axis": 1}, X.min(1)),
    ("math.reduce_prod", {"axis": 2}, X.prod(2)),
    ("math.reduce_variance", {"axis": 2}, X.var(2)),
    ("math.reduce_std", {"axis": 1}, X.std(1)),
    ("math.reduce_logsumexp", {"axis": 2}, np.log(np.exp(X).sum(2))),
    ("reshape", {"shape": [-1, 12]}, X.reshape(2, 12)),
    ("expand_dims", {"axis": 1}, X[:, None]),
    ("compat.v1.transpose", {"perm": [0, 2, 1]}, X.transpose(0, 2, 1)),
    ("tile", {"multiples": [1, 2, 1]}, np.tile(X, (1, 2, 1))),
    ("clip_by_value", {"clip_value_min": -0.5, "clip_value_max": 0.5}, np.clip(X, -0.5, 0.5)),
    ("math.l2_normalize", {"axis": -1},
     X / np.sqrt(np.maximum((X ** 2).sum(-1, keepdims=True), 1e-12))),
    ("math.greater", {"y": 0.0}, X > 0),
    ("math.equal", {"y": REF}, X == X),
    ("cast", {"dtype": "float64"}, X.astype(np.float64)),
    ("nn.bias_add", {"bias": [0.5, -1.0, 0.0, 2.0]}, X + np.array([0.5, -1.0, 0.0, 2.0])),
    ("math.argmax", {"axis": -1}, X.argmax(-1)),
    ("math.argmin", {"axis": 1}, X.argmin(1)),
    ("__operators__.getitem", {"slice_spec": {"start": 1, "stop": None, "step": None}}, X[1:]),
    ("__operators__.getitem", {"slice_spec": [{"start": None, "stop": None, "step": None}, -1]},
     X[:, -1]),
]


@pytest.mark.parametrize("function,kwargs,want", TABLE,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(TABLE)])
def test_tf_function_table(tmp_path, function, kwargs, want):
    """Each mapped TF function on a crafted tf-keras config: numpy's numbers in modelkit and in
    onnxruntime, and the same TFOpLambda written back."""
    from modelkit.runtime import InferenceSession
    cls = "SlicingOpLambda" if function.endswith("getitem") else "TFOpLambda"
    config = _one_op_config(cls, function, ["x", 0, 0, dict(kwargs)])
    m = model_from_json(json.dumps(config))
    got = m.predict(X)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    entry = graph_to_keras_config(m.to_ir())["config"]["layers"][1]
    assert (entry["class_name"], entry["config"]["function"], entry["inbound_nodes"]) == \
        (cls, function, [["x", 0, 0, kwargs]])
    if want.dtype.kind == "f" and function != "cast":
        m.save(tmp_path / "m.onnx")
        np.testing.assert_allclose(InferenceSession(str(tmp_path / "m.onnx")).predict(X), want,
                                   rtol=1e-5, atol=1e-5)


def test_constant_first_argument():
    """`0.5 - x` style calls: tf-keras stores the constant first argument as
    ["_CONSTANT_VALUE", -1, value, kwargs] and the tensor among the kwargs."""
    node = ["_CONSTANT_VALUE", -1, [0.5, -0.5, 0.0, 1.0], {"y": ["x", 0, 0], "name": None}]
    m = model_from_json(json.dumps(_one_op_config("TFOpLambda", "math.subtract", node)))
    np.testing.assert_allclose(m.predict(X), np.array([0.5, -0.5, 0.0, 1.0]) - X, rtol=1e-6)
    entry = graph_to_keras_config(m.to_ir())["config"]["layers"][1]
    assert entry["inbound_nodes"] == [node]


def _chain_config(*ops):
    """Input x (batch, 4, 3) -> the (class, name, function, node) op entries in order."""
    layers = [{"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
               "config": {"batch_input_shape": [None, 4, 3], "dtype": "float32", "name": "x"}}]
    for cls, name, function, node in ops:
        layers.append({"class_name": cls, "name": name, "inbound_nodes": [node],
                       "config": {"name": name, "function": function}})
    return {"class_name": "Functional", "config": {
        "name": "m", "layers": layers, "input_layers": [["x", 0, 0]],
        "output_layers": [[ops[-1][1], 0, 0]]}}


def test_tf_shape_feeds_arithmetic():
    """tf.shape(x)[-1] (compat.v1.shape, then getitem) used as a number."""
    cfg = _chain_config(
        ("TFOpLambda", "s", "compat.v1.shape", ["x", 0, 0, {"name": None, "out_type": "int32"}]),
        ("SlicingOpLambda", "g", "__operators__.getitem", ["s", 0, 0, {"slice_spec": -1}]),
        ("TFOpLambda", "r", "math.multiply", ["x", 0, 0, {"y": ["g", 0, 0]}]))
    x = np.random.default_rng(0).random((2, 4, 3)).astype(np.float32)
    m = model_from_json(json.dumps(cfg))
    np.testing.assert_allclose(m.predict(x), x * 3, rtol=1e-6)
    from modelkit.runtime import InferenceSession
    sess = InferenceSession(m)            # the integer size is cast to float in ONNX too
    np.testing.assert_allclose(sess.predict(x), x * 3, rtol=1e-6)


def test_reshape_to_the_batch_size_from_tf_shape(tmp_path):
    """tf.reshape(x, [tf.shape(x)[0], -1]) then a Dense: the static shape (None, 12) is
    inferred, the size is read at run time, and ONNX builds the shape vector from Shape."""
    from modelkit.runtime import InferenceSession
    cfg = _chain_config(
        ("TFOpLambda", "s", "compat.v1.shape", ["x", 0, 0, {"name": None, "out_type": "int32"}]),
        ("SlicingOpLambda", "g", "__operators__.getitem", ["s", 0, 0, {"slice_spec": 0}]),
        ("TFOpLambda", "r", "reshape", ["x", 0, 0, {"shape": [["g", 0, 0], -1]}]))
    cfg["config"]["layers"].append(
        {"class_name": "Dense", "name": "d", "inbound_nodes": [[["r", 0, 0, {}]]],
         "config": {"name": "d", "units": 2}})
    cfg["config"]["output_layers"] = [["d", 0, 0]]
    m = model_from_json(json.dumps(cfg))
    assert m.get_layer("r").output.shape == (None, 12)
    x = np.random.default_rng(0).random((5, 4, 3)).astype(np.float32)
    kernel, bias = m.get_weights()
    want = x.reshape(5, 12) @ kernel + bias
    np.testing.assert_allclose(m.predict(x), want, rtol=1e-5, atol=1e-6)
    m.save(tmp_path / "m.h5")
    np.testing.assert_allclose(load_model(tmp_path / "m.h5").predict(x), want, rtol=1e-5,
                               atol=1e-6)
    m.save(tmp_path / "m.onnx")
    np.testing.assert_allclose(InferenceSession(str(tmp_path / "m.onnx")).predict(x), want,
                               rtol=1e-5, atol=1e-6)


def _k3_one_op_config(class_name, op_config, args, module="keras.src.ops.numpy"):
    """A Keras 3 functional config: Input x -> one operation entry called with `args`
    ("X" standing for the input tensor)."""
    tensor = {"class_name": "__keras_tensor__",
              "config": {"shape": [None, 3, 4], "dtype": "float32", "keras_history": ["x", 0, 0]}}
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "registered_name": "Functional", "config": {
                "name": "m", "layers": [
                    {"module": "keras.layers", "class_name": "InputLayer", "name": "x",
                     "inbound_nodes": [], "config": {"batch_shape": [None, 3, 4],
                                                     "dtype": "float32", "name": "x"}},
                    {"module": module, "class_name": class_name, "name": "op",
                     "registered_name": class_name, "config": {"name": "op", **op_config},
                     "inbound_nodes": [{"args": _with_tensor(args, tensor), "kwargs": {}}]}],
                "input_layers": [["x", 0, 0]], "output_layers": [["op", 0, 0]]}}


def _with_tensor(args, tensor):
    if isinstance(args, list):
        return [_with_tensor(a, tensor) for a in args]
    return tensor if args == "X" else args


GELU_TANH = 0.5 * X * (1 + np.tanh(np.sqrt(2 / np.pi) * (X + 0.044715 * X ** 3)))
K3_TABLE = [    # class, config, args, numpy result
    ("Maximum", {}, ["X", 0.2], np.maximum(X, 0.2)),
    ("Minimum", {}, [0.1, "X"], np.minimum(X, 0.1)),
    ("Power", {}, ["X", 2.0], X ** 2),
    ("Square", {}, ["X"], X ** 2),
    ("Floor", {}, ["X"], np.floor(X)),
    ("LeakyRelu", {"negative_slope": 0.3}, ["X"], np.where(X > 0, X, 0.3 * X)),
    ("Relu6", {}, ["X"], np.clip(X, 0, 6)),
    ("Gelu", {"approximate": True}, ["X"], GELU_TANH),
    ("Elu", {"alpha": 1.0}, ["X"], np.where(X > 0, X, np.expm1(X))),
    ("LogSoftmax", {"axis": -1}, ["X"], X - np.log(np.exp(X).sum(-1, keepdims=True))),
    ("Min", {"axis": 1, "keepdims": True, "initial": None}, ["X"], X.min(1, keepdims=True)),
    ("Prod", {"axis": 2, "keepdims": False, "dtype": None}, ["X"], X.prod(2)),
    ("Var", {"axis": 1, "keepdims": False}, ["X"], X.var(1)),
    ("Std", {"axis": 2, "keepdims": False}, ["X"], X.std(2)),
    ("Tile", {"repeats": [1, 1, 2]}, ["X"], np.tile(X, (1, 1, 2))),
    ("Clip", {"x_min": -0.5, "x_max": 0.5}, ["X"], np.clip(X, -0.5, 0.5)),
    ("Greater", {}, ["X", 0.0], X > 0),
    ("Cast", {"dtype": "float64"}, ["X"], X.astype(np.float64)),
    ("Stack", {"axis": 1}, [["X", "X"]], np.stack([X, X], 1)),
]


@pytest.mark.parametrize("cls,cfg,args,want", K3_TABLE, ids=[r[0] for r in K3_TABLE])
def test_keras3_operation_table(cls, cfg, args, want):
    """Each mapped Keras 3 operation on a crafted config: numpy's numbers, the same entry
    written back (Keras 3 dialect), and onnxruntime's numbers where ONNX has the op."""
    from modelkit.runtime import InferenceSession
    config = _k3_one_op_config(cls, cfg, args)
    m = model_from_json(json.dumps(config))
    np.testing.assert_allclose(m.predict(X), want, rtol=1e-5, atol=1e-6)
    entry = graph_to_keras_config(m.to_ir(), "keras3")["config"]["layers"][1]
    assert (entry["module"], entry["class_name"]) == ("keras.src.ops.numpy", cls)
    if want.dtype.kind == "f" and cls not in ("Cast",):
        sess = InferenceSession(m)
        np.testing.assert_allclose(sess.predict(X), want, rtol=1e-5, atol=1e-5)

"""Hostile model configs, crafted by hand: gadgets that would rebind backend functions,
activations stored as code, configs that allocate without bound, malformed configs whose
failures must stay modelkit's, and ONNX files that are not models. Each is refused with a
ModelkitError naming the file (or "model JSON") and the piece."""

import copy
import json
import os
import subprocess
import sys
import threading
import tracemalloc

import h5py
import numpy as np
import onnx
import pytest
from onnx import helper

import modelkit.layers as L
from modelkit import backend as K
from modelkit.converters import hdf5
from modelkit.converters import onnx as onnx_conv
from modelkit.errors import ModelkitError, ModelLoadError, UnsafeLoadError, UnsupportedError
from modelkit.layers.serialization import serialize_function
from modelkit.models import Model, Sequential, load_model, model_from_json
from modelkit.runtime import InferenceSession

RNG = np.random.default_rng(0)
X = RNG.standard_normal((5, 3)).astype(np.float32)


def clean_model():
    """A model using K functions (BackendOp nodes) and a named-function Lambda."""
    inp = L.Input((3,), name="x")
    h = L.Dense(4, activation="tanh", name="d1")(inp)
    h = K.sigmoid(h) * 2.0 + K.mean(h, axis=-1, keepdims=True)
    h = L.Lambda(K.relu, name="named_fn")(h)
    return Model(inp, L.Dense(2, name="d2")(h))


def sequential_json():
    m = Sequential([L.Dense(4, input_shape=(3,), name="dense"), L.Reshape((2, 2), name="reshape"),
                    L.Conv1D(2, 1, name="conv"), L.Flatten(name="flat"), L.Dense(2, name="out")])
    return m, json.loads(m.to_json())


def _h5_with_config(tmp_path, cfg, name="m.h5"):
    """An .h5 file holding `cfg` as model_config and the weights of `sequential_json()`."""
    m, _ = sequential_json()
    p = tmp_path / name
    m.save(p)
    with h5py.File(p, "a") as f:
        f.attrs["model_config"] = json.dumps(cfg)
    return p


def _layers(cfg):
    return cfg["config"]["layers"]


# --- 3. config gadgets ---------------------------------------------------------------------

def _backend_op(function, name="gadget"):
    return {"class_name": "BackendOp",
            "config": {"name": name, "trainable": True, "dtype": "float32", "function": function,
                       "arguments": {"args": [{"__tensor__": 0}], "kwargs": {}}}}


GADGETS = ["set_symbolic_handler", "__setattr__", "set_value", "k_function", "__dict__",
           "getitem_symbolic", "config", "np", "builtins", "variable"]


@pytest.mark.parametrize("function", GADGETS)
def test_backend_op_gadgets_refused_and_nothing_changes(tmp_path, function):
    model = clean_model()
    before = model.predict(X)
    _, cfg = sequential_json()
    _layers(cfg).insert(2, _backend_op(function))
    p = _h5_with_config(tmp_path, cfg)
    backend_before = dict(vars(K.functions))
    with pytest.raises(ModelLoadError, match=rf"{p}.*'gadget'.*not a backend function"):
        load_model(p)
    with pytest.raises(ModelLoadError, match="not a backend function"):
        model_from_json(json.dumps(cfg))
    # nothing was rebound: the clean model predicts the same and new graphs still build
    after = vars(K.functions)
    assert set(after) == set(backend_before)
    assert all(after[k] is v for k, v in backend_before.items())
    np.testing.assert_array_equal(model.predict(X), before)
    again = clean_model()
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again.predict(X), before, rtol=1e-6)


@pytest.mark.parametrize("function", ["set_symbolic_handler", "__setattr__", "k_function",
                                      "set_value", "is_symbolic"])
def test_named_function_lambda_gadgets_refused(function):
    _, cfg = sequential_json()
    _layers(cfg).insert(2, {"class_name": "Lambda", "config": {
        "name": "lam", "function": function, "function_type": "function", "module": "x",
        "arguments": {}, "output_shape": None}})
    with pytest.raises(ModelLoadError, match="'lam'.*unknown function"):
        model_from_json(json.dumps(cfg))


def test_named_function_lambdas_and_backend_ops_round_trip(tmp_path):
    """The registry keeps what models really use working (named K functions, activations)."""
    model = clean_model()
    p = tmp_path / "clean.h5"
    model.save(p)
    back = load_model(p)
    np.testing.assert_allclose(back.predict(X), model.predict(X), rtol=1e-6, atol=1e-6)
    cfg = json.loads(model.to_json())
    lam = next(layer for layer in _layers(cfg) if layer["class_name"] == "Lambda")
    assert lam["config"]["function"] == "relu"
    for fn in ("tanh", "softmax", "abs"):
        lam["config"]["function"] = fn
        out = model_from_json(json.dumps(cfg))
        assert out.get_layer("named_fn").function is not None


def test_backend_op_arguments_checked_before_building():
    for args, match in [
            ([{"__tensor__": 0}, [1, 10 ** 9]], "beyond"),
            ([{"__tensor__": 0}, {"__array__": [1.0], "dtype": "U500000000"}], "not a numeric"),
            ([{"__tensor__": 0}, {"__array__": [1.0], "dtype": "O"}], "not a numeric"),
            ([{"__tensor__": -1}], "bad tensor reference"),
            ([{"__tensor__": 0}, {"__slice__": ["a", 1, 2]}], "bad slice")]:
        _, cfg = sequential_json()
        op = _backend_op("tile" if "beyond" in match else "add")
        op["config"]["arguments"]["args"] = args
        _layers(cfg).insert(2, op)
        with pytest.raises(ModelLoadError, match=match):
            model_from_json(json.dumps(cfg))


# --- 4. activations stored as code ----------------------------------------------------------

def _double(x):
    return x * 2.0


CODE_ACTIVATIONS = {
    "keras2_bytecode": lambda: serialize_function(lambda x: x * 2.0, "activation")["activation"],
    "keras3_lambda": lambda: {"class_name": "__lambda__", "config": dict(zip(
        ("code", "defaults", "closure"),
        serialize_function(lambda x: x * 2.0, "activation")["activation"]))},
}


@pytest.mark.parametrize("kind", sorted(CODE_ACTIVATIONS))
def test_code_activation_refused_in_safe_mode_everywhere(tmp_path, kind):
    m, cfg = sequential_json()
    for key in ("activation",):
        _layers(cfg)[1]["config"][key] = CODE_ACTIVATIONS[kind]()
    p = _h5_with_config(tmp_path, cfg)
    with pytest.raises(UnsafeLoadError, match=r"'dense'.*activation.*serialized Python function"):
        load_model(p)
    with pytest.raises(UnsafeLoadError, match="'dense'"):
        model_from_json(json.dumps(cfg))
    # the converters never export it as the identity
    with pytest.raises(UnsupportedError, match=r"dense.*serialized Python function"):
        onnx_conv.export(hdf5.load_graph(p))
    with pytest.raises(ModelLoadError, match=rf"(?s){p}.*serialized Python function"):
        InferenceSession(str(p), device="cpu")
    # trusted: safe_mode=False runs it
    loaded = load_model(p, safe_mode=False)
    ref = loaded.get_layer("dense").get_weights()
    np.testing.assert_allclose(loaded.get_layer("dense")(X).value,
                               2.0 * (X @ ref[0] + ref[1]), rtol=1e-5, atol=1e-6)


def test_code_recurrent_activation_not_exported_as_identity():
    cfg = {"name": "lstm", "units": 2, "activation": "tanh", "return_sequences": False,
           "recurrent_activation": CODE_ACTIVATIONS["keras3_lambda"]()}
    from modelkit.ir import Graph, Node, TensorRef, TensorSpec
    g = Graph("g", [TensorSpec("x", (None, 4, 3))], [TensorRef("lstm", 0, 0)],
              [Node("lstm", "LSTM", cfg, calls=[[TensorRef("x", 0, 0)]])])
    with pytest.raises(UnsupportedError, match="serialized Python function"):
        onnx_conv.export(g)


# --- 2. configs that would allocate without bound -------------------------------------------

BOMBS = {
    "huge_units": lambda ls: ls[1]["config"].__setitem__("units", 10 ** 12),
    "huge_input": lambda ls: ls[0]["config"].__setitem__("batch_input_shape", [None, 10 ** 11]),
    "string_dtype_input": lambda ls: ls[0]["config"].__setitem__("dtype", "U500000000"),
    "string_dtype_layer": lambda ls: ls[1]["config"].__setitem__("dtype", "U500000000"),
    "huge_conv_kernel": lambda ls: ls[3]["config"].__setitem__("kernel_size", [10 ** 9]),
    "huge_filters": lambda ls: ls[3]["config"].__setitem__("filters", 10 ** 10),
    "tile_constant": lambda ls: ls.insert(2, {**_backend_op("tile"), "config": {
        **_backend_op("tile")["config"],
        "arguments": {"args": [{"__tensor__": 0}, [1, 1 << 20, 1 << 20]], "kwargs": {}}}}),
    "lambda_probe": lambda ls: (ls[0]["config"].__setitem__("batch_input_shape", [None, 1 << 40]),
                                ls.__setitem__(1, {"class_name": "Lambda", "config": {
                                    "name": "lam", "function": "tanh",
                                    "function_type": "function", "arguments": {}}})),
}


def _peak_during(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_config_bombs_refused_before_allocating(tmp_path, bomb):
    _, cfg = sequential_json()
    BOMBS[bomb](_layers(cfg))
    p = _h5_with_config(tmp_path, cfg)
    errors = []

    def load(fn, *a):
        try:
            fn(*a)
        except ModelkitError as e:
            errors.append(str(e))

    peak = _peak_during(lambda: (load(model_from_json, json.dumps(cfg)), load(load_model, p)))
    assert len(errors) == 2, errors
    assert errors[0].startswith("model JSON") and errors[1].startswith(str(p))
    assert peak < 64 << 20, f"{bomb}: {peak} bytes allocated before refusing"


def test_build_checked_against_stored_shapes(tmp_path):
    """units raised to 5e7: 600 MB of kernel the file does not hold, refused before built."""
    _, cfg = sequential_json()
    _layers(cfg)[1]["config"]["units"] = 50_000_000
    p = _h5_with_config(tmp_path, cfg)
    peak = _peak_during(lambda: pytest.raises(ModelLoadError, load_model, p))
    assert peak < 64 << 20


def test_missing_layer_weights_refused(tmp_path):
    m, cfg = sequential_json()
    p = tmp_path / "m.h5"
    m.save(p)
    with h5py.File(p, "a") as f:
        g = f["model_weights/conv"]
        for k in list(g):
            del g[k]
        g.attrs["weight_names"] = np.array([], dtype="float64")
    with pytest.raises(ModelLoadError, match=rf"{p}.*'conv'.*stores none"):
        load_model(p)


# --- 5. malformed configs stay modelkit's ---------------------------------------------------

MALFORMED = {
    "string_units": lambda ls: ls[1]["config"].__setitem__("units", "many"),
    "negative_units": lambda ls: ls[1]["config"].__setitem__("units", -4),
    "zero_strides": lambda ls: ls[3]["config"].__setitem__("strides", [0]),
    "two_minus_ones": lambda ls: ls[2]["config"].__setitem__("target_shape", [-1, -1]),
    "string_target_shape": lambda ls: ls[2]["config"].__setitem__("target_shape", "ab"),
    "bad_initializer_arg": lambda ls: ls[1]["config"].__setitem__(
        "kernel_initializer", {"class_name": "RandomUniform", "config": {"minval": "a"}}),
    "config_is_list": lambda ls: ls[1].__setitem__("config", [1]),
    "padding_dict": lambda ls: ls[3]["config"].__setitem__("padding", {"a": 1}),
    "bad_tensor_index": lambda ls: ls.insert(2, {**_backend_op("add"), "config": {
        **_backend_op("add")["config"],
        "arguments": {"args": [{"__tensor__": 7}, 1.0], "kwargs": {}}}}),
}
# Loading builds from weights and config, converting to ONNX (InferenceSession of an .h5)
# from weights and config only: a config value the weights make irrelevant may convert.
EXPORT_IGNORES = {"string_units", "negative_units", "bad_initializer_arg"}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_configs_raise_modelkit_errors(tmp_path, case):
    _, cfg = sequential_json()
    MALFORMED[case](_layers(cfg))
    p = _h5_with_config(tmp_path, cfg)
    with pytest.raises(ModelLoadError, match="^model JSON"):
        model_from_json(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=f"^{p}"):
        load_model(p)
    if case in EXPORT_IGNORES:
        InferenceSession(str(p), device="cpu").predict(X)
    else:
        with pytest.raises(ModelkitError, match=str(p)):
            InferenceSession(str(p), device="cpu")


def test_deep_json_and_self_reference(tmp_path):
    with pytest.raises(ModelLoadError, match="^model JSON"):
        model_from_json("[" * 100000 + "]" * 100000)
    deep = '{"class_name": "Dense", "config": {"name": "d", "units": 3}}'
    for i in range(2000):
        deep = f'{{"class_name": "Sequential", "config": {{"name": "s{i}", "layers": [{deep}]}}}}'
    text = ('{"class_name": "Sequential", "config": {"name": "top", "layers": [{"class_name": '
            '"InputLayer", "config": {"name": "x", "batch_input_shape": [null, 3]}}, '
            + deep + ']}}')
    with pytest.raises(ModelLoadError, match="^model JSON"):
        model_from_json(text)
    m, _ = sequential_json()
    p = tmp_path / "deep.h5"
    m.save(p)
    with h5py.File(p, "a") as f:
        f.attrs["model_config"] = text
    with pytest.raises(ModelLoadError, match=f"^{p}"):
        load_model(p)
    cfg = {"class_name": "Sequential", "config": {"name": "s", "layers": []}}
    layer = {"class_name": "Sequential", "config": cfg["config"]}
    cfg["config"]["layers"].append(layer)                 # refers to itself
    from modelkit.keras_config import keras_config_to_graph
    with pytest.raises(ModelkitError, match="nests too deeply"):
        keras_config_to_graph(cfg)


# --- 4. ONNX files that are not models, and non-regular paths -------------------------------

def _graph_proto():
    node = helper.make_node("Relu", ["x"], ["y"])
    return helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1])],
                             [helper.make_tensor_value_info("y", 1, [1])])


@pytest.fixture
def not_models(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    bare = tmp_path / "graph.onnx"
    bare.write_bytes(_graph_proto().SerializeToString())
    node = tmp_path / "node.onnx"
    node.write_bytes(helper.make_node("Relu", ["x"], ["y"]).SerializeToString())
    return [empty, bare, node]


def test_onnx_non_models_refused_by_session(not_models):
    for p in not_models:
        with pytest.raises(ModelLoadError, match=f"{p}.*not an ONNX model"):
            InferenceSession(str(p), device="cpu")
    with pytest.raises(ModelLoadError, match="not an ONNX model"):
        InferenceSession(_graph_proto().SerializeToString(), device="cpu")
    with pytest.raises(ModelLoadError, match="not an ONNX model"):
        InferenceSession(onnx.ModelProto(), device="cpu")


def _cli(*args, timeout=60):
    env = dict(os.environ, PYTHONWARNINGS="default")
    return subprocess.run([sys.executable, "-m", "modelkit.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_cli_summary_and_convert_refuse_non_models_with_one_line(not_models, tmp_path):
    empty, bare = not_models[:2]
    for args in (["summary", empty], ["convert", bare, tmp_path / "out.onnx"]):
        r = _cli(*args)
        assert r.returncode != 0 and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("modelkit: error: ") and str(args[1]) in lines[0]
        assert "not an ONNX model" in lines[0]
    assert not (tmp_path / "out.onnx").exists()


def test_cli_malformed_h5_is_one_line(tmp_path):
    _, cfg = sequential_json()
    _layers(cfg)[3]["config"]["strides"] = [0]
    p = _h5_with_config(tmp_path, cfg)
    np.save(tmp_path / "x.npy", X)
    for args in (["convert", p, tmp_path / "o.onnx"],
                 ["predict", p, "--input", tmp_path / "x.npy"]):
        r = _cli(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1, r.stderr
        assert lines[0].startswith("modelkit: error: ") and str(p) in lines[0]


def test_fifo_and_device_refused_by_session_and_summary(tmp_path):
    fifo = tmp_path / "m.onnx"
    os.mkfifo(fifo)
    results = []

    def run():
        for fn in (lambda: InferenceSession(str(fifo), device="cpu"),
                   lambda: load_model(fifo)):
            try:
                fn()
            except ModelLoadError as e:
                results.append(str(e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():
        with open(fifo, "wb"):
            pass
        pytest.fail("opening a FIFO blocked")
    assert len(results) == 2 and all("FIFO" in r for r in results), results
    r = _cli("summary", fifo, timeout=30)
    assert r.returncode != 0 and "FIFO" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    dev = tmp_path / "dev.onnx"
    dev.symlink_to("/dev/urandom")
    with pytest.raises(ModelLoadError, match="character device"):
        InferenceSession(str(dev), device="cpu")


def _external_model(folder, location):
    from onnx import TensorProto
    w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "16")):
        e = w.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("Add", ["x", "W"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    p = folder / "m.onnx"
    p.write_bytes(m.SerializeToString())
    return p


def test_onnx_external_data_must_stay_in_the_model_folder(tmp_path):
    data = np.arange(4, dtype=np.float32)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(data.tobytes())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "w.bin").write_bytes(data.tobytes())
    (model_dir / "link.bin").symlink_to(outside)
    os.mkfifo(model_dir / "pipe.bin")
    ok = _external_model(model_dir, "w.bin")
    np.testing.assert_array_equal(InferenceSession(str(ok), device="cpu").predict(data), 2 * data)
    for loc, match in [(str(outside), "outside the model's folder"),
                       ("../outside.bin", "outside the model's folder"),
                       ("link.bin", "outside the model's folder"),
                       ("pipe.bin", "FIFO")]:
        p = _external_model(model_dir, loc)
        with pytest.raises(ModelLoadError, match=match):
            InferenceSession(str(p), device="cpu")
        if loc == "pipe.bin":
            r = _cli("summary", p)
            assert r.returncode != 0 and "FIFO" in r.stderr
    with pytest.raises(ModelLoadError, match="external files"):
        InferenceSession(ok.read_bytes(), device="cpu")


def test_long_chain_listed_backwards_loads():
    """2000 layers deep, listed in reverse: no recursion limit, no quadratic ordering."""
    n = 2000
    items, prev = [], "x"
    for i in range(n):
        items.append({"class_name": "Activation", "name": f"a{i}",
                      "config": {"name": f"a{i}", "activation": "relu"},
                      "inbound_nodes": [[[prev, 0, 0, {}]]]})
        prev = f"a{i}"
    layers = [{"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
               "config": {"name": "x", "batch_input_shape": [None, 3]}}] + items[::-1]
    cfg = {"class_name": "Functional", "config": {"name": "deep", "layers": layers,
                                                  "input_layers": [["x", 0, 0]],
                                                  "output_layers": [[prev, 0, 0]]}}
    m = model_from_json(json.dumps(cfg))
    assert len(m.layers) == n + 1
    np.testing.assert_array_equal(m.predict(np.array([[-1.0, 0.5, 2.0]], np.float32)),
                                  [[0.0, 0.5, 2.0]])

"""Bad files, atomic writes, safe loading, and hand-written Keras 3 configs."""

import os

import h5py
import numpy as np
import pytest

from modelkit.converters import hdf5
from modelkit.errors import ModelLoadError
from modelkit.converters.atomic import atomic_write

from test_hdf5_roundtrip import dense_chain, multi_io, shared_nested


@pytest.fixture
def saved(tmp_path):
    p = tmp_path / "m.h5"
    hdf5.save_graph(multi_io(), p)
    return p


def _edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)


BAD = {
    "missing_config": lambda f: f.attrs.__delitem__("model_config"),
    "bad_json": lambda f: f.attrs.__setitem__("model_config", '{"class_name": "Functional", '),
    "json_not_model": lambda f: f.attrs.__setitem__("model_config", '[1, 2]'),
    "unknown_class": lambda f: f.attrs.__setitem__("model_config", '{"class_name": "Foo", "config": {}}'),
    "missing_layer_group": lambda f: f["model_weights"].__delitem__("dense_a"),
    "missing_dataset": lambda f: f["model_weights/dense_b/dense_b"].__delitem__("kernel:0"),
    "weight_names_garbage": lambda f: f["model_weights/out_reg"].attrs.__setitem__("weight_names", np.zeros((2, 2))),
    "dataset_is_group": lambda f: (f["model_weights/out_cls/out_cls"].__delitem__("bias:0"),
                                   f["model_weights/out_cls/out_cls"].create_group("bias:0")),
    "string_dataset": lambda f: (f["model_weights/out_cls/out_cls"].__delitem__("bias:0"),
                                 f["model_weights/out_cls/out_cls"].create_dataset("bias:0", data="x")),
    "bad_training_config": lambda f: f.attrs.__setitem__("training_config", "{nope"),
    "dangling_ref": lambda f: f.attrs.__setitem__("model_config", f.attrs["model_config"].replace('"concat", 0, 0', '"nowhere", 0, 0')),
    "external_link": lambda f: (f["model_weights/out_cls/out_cls"].__delitem__("bias:0"),
                                f["model_weights/out_cls/out_cls"].__setitem__("bias:0", h5py.ExternalLink("/etc/passwd", "x"))),
    "layer_names_missing": lambda f: f["model_weights"].attrs.__delitem__("layer_names"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_raise_model_load_error(saved, case):
    _edit(saved, BAD[case])
    with pytest.raises(ModelLoadError) as ei:
        hdf5.load_graph(saved)
    assert str(saved) in str(ei.value)


def test_missing_dataset_message_names_layer_and_weight(saved):
    _edit(saved, BAD["missing_dataset"])
    with pytest.raises(ModelLoadError, match=r"dense_b.*kernel:0"):
        hdf5.load_graph(saved)


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all", b"\x89HDF\r\n\x1a\n" + b"\0" * 100])
def test_not_hdf5(tmp_path, content):
    p = tmp_path / "x.h5"
    p.write_bytes(content)
    with pytest.raises(ModelLoadError, match="x.h5"):
        hdf5.load_graph(p)
    with pytest.raises(ModelLoadError):
        hdf5.load_weights_into(dense_chain(), p)


def test_missing_file_and_hdf5_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        hdf5.load_graph(tmp_path / "nope.h5")
    p = tmp_path / "data.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ModelLoadError, match="model_config"):
        hdf5.load_graph(p)
    with pytest.raises(ModelLoadError, match="not a Keras weights file"):
        hdf5.load_weights_into(dense_chain(), p)


def test_truncated(saved):
    data = saved.read_bytes()
    for frac in (0.1, 0.5, 0.9, 0.99):
        saved.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(ModelLoadError):
            hdf5.load_graph(saved)


def test_weight_count_mismatch(tmp_path):
    g = dense_chain()
    p = tmp_path / "w.h5"
    hdf5.save_weights(g, p)
    with h5py.File(p, "a") as f:
        f["dense"].attrs["weight_names"] = np.array([b"dense/kernel:0"])
    with pytest.raises(ModelLoadError, match=r"dense.*expects 2 weight\(s\).*has 1"):
        hdf5.load_weights_into(g, p)


def test_bad_archives(tmp_path):
    import zipfile
    p = tmp_path / "m.keras"
    p.write_bytes(b"PK junk")
    with pytest.raises(ModelLoadError):
        hdf5.load_keras_archive(p)
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("config.json", "{not json")
    with pytest.raises(ModelLoadError, match="config.json"):
        hdf5.load_keras_archive(p)


# -- atomic writes ---------------------------------------------------------------------

def test_atomic_write_failure_keeps_previous_file(tmp_path, monkeypatch):
    p = tmp_path / "m.h5"
    g = dense_chain()
    hdf5.save_graph(g, p)
    before = p.read_bytes()
    real = h5py.Group.create_dataset
    calls = {"n": 0}

    def flaky(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(self, *a, **kw)

    monkeypatch.setattr(h5py.Group, "create_dataset", flaky)
    with pytest.raises(OSError, match="simulated"):
        hdf5.save_graph(dense_chain(seed=5), p)
    with pytest.raises(OSError, match="simulated"):
        calls["n"] = 0
        hdf5.save_weights(dense_chain(seed=5), tmp_path / "w.h5")
    monkeypatch.setattr(h5py.Group, "create_dataset", real)
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.h5"]
    back = hdf5.load_graph(p)
    np.testing.assert_array_equal(back.weights["dense/kernel"], g.weights["dense/kernel"])


def test_atomic_write_text_mode(tmp_path):
    p = tmp_path / "a.json"
    with atomic_write(p, mode="w") as f:
        f.write("{}")
    assert p.read_text() == "{}"
    with pytest.raises(RuntimeError):
        with atomic_write(p, mode="w") as f:
            f.write("partial")
            raise RuntimeError("boom")
    assert p.read_text() == "{}" and os.listdir(tmp_path) == ["a.json"]


# -- safe loading ----------------------------------------------------------------------

def test_lambda_bytecode_stays_data(tmp_path, monkeypatch):
    import marshal, pickle, builtins
    code = "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwApAk7pAgAAAKkAKQHaAXhyAgAAAHIC"
    cfg = hdf5.graph_to_keras_config(dense_chain())
    cfg["config"]["layers"].append({"class_name": "Lambda", "config": {
        "name": "lambda", "trainable": True, "dtype": "float32",
        "function": [code, None, None], "function_type": "lambda", "module": "__main__",
        "output_shape": None, "output_shape_type": "raw", "output_shape_module": None,
        "arguments": {}}})
    for name in ("loads", "load"):
        monkeypatch.setattr(marshal, name, lambda *a, **k: pytest.fail("unmarshalled"))
        monkeypatch.setattr(pickle, name, lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: pytest.fail("eval"))
    g = hdf5.keras_config_to_graph(cfg, keras_version="2.15.0")
    lam = g.node("lambda")
    assert lam.op == "Lambda" and lam.config["function"] == [code, None, None]
    assert lam.config["function_type"] == "lambda"
    k3 = {"class_name": "__lambda__", "config": {"code": code, "defaults": None, "closure": None}}
    cfg["config"]["layers"][-1]["config"]["function"] = k3
    g = hdf5.keras_config_to_graph(cfg, keras_version="3.5.0")
    assert g.node("lambda").config["function"] == k3


# -- Keras 3 dialect written by hand, following the notes --------------------------------

def _kt(name, node=0, tensor=0, shape=(None, 4)):
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(shape), "dtype": "float32", "keras_history": [name, node, tensor]}}


POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
          "registered_name": None}


def _k3_layer(cls, name, cfg, nodes):
    return {"module": "keras.layers", "class_name": cls, "config": {"name": name, "trainable": True,
            "dtype": POLICY, **cfg}, "registered_name": None, "build_config": {"input_shape": [None, 4]},
            "name": name, "inbound_nodes": nodes}


def test_keras3_functional_config_with_mask_node():
    init = {"module": "keras.initializers", "class_name": "GlorotUniform",
            "config": {"seed": None, "input_axes": None, "output_axes": None}, "registered_name": None}
    cfg = {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
           "config": {"name": "m", "trainable": True, "layers": [
               {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                "config": {"batch_shape": [None, 7], "dtype": "int32", "sparse": False,
                           "ragged": False, "name": "tokens", "optional": False},
                "name": "tokens", "inbound_nodes": []},
               _k3_layer("Embedding", "embedding", {"input_dim": 20, "output_dim": 4, "mask_zero": True,
                                                    "embeddings_initializer": init, "lora_rank": None,
                                                    "quantization_config": None},
                         [{"args": [_kt("tokens", shape=(None, 7))], "kwargs": {}}]),
               {"module": "keras.src.ops.numpy", "class_name": "NotEqual", "config": {"name": "not_equal"},
                "registered_name": "NotEqual", "name": "not_equal",
                "inbound_nodes": [{"args": [_kt("tokens", shape=(None, 7)), 0], "kwargs": {}}]},
               _k3_layer("LSTM", "lstm", {"units": 5, "activation": "tanh",
                                          "recurrent_activation": "hard_sigmoid", "seed": None,
                                          "zero_output_for_mask": False, "use_cudnn": "auto",
                                          "kernel_initializer": init},
                         [{"args": [_kt("embedding")], "kwargs": {"training": False,
                                                                  "mask": _kt("not_equal", shape=(None, 7))}}]),
               _k3_layer("LeakyReLU", "leaky", {"negative_slope": 0.3},
                         [{"args": [_kt("lstm")], "kwargs": {}}]),
               _k3_layer("Add", "add", {}, [{"args": [[_kt("lstm"), _kt("leaky")]], "kwargs": {}}]),
           ], "input_layers": [["tokens", 0, 0]], "output_layers": ["add", 0, 0]}}
    g = hdf5.keras_config_to_graph(cfg, keras_version="3.15.1")
    assert [n.name for n in g.nodes] == ["embedding", "lstm", "leaky", "add"]   # NotEqual dropped
    assert g.inputs[0].dtype == "int32" and g.inputs[0].shape == (None, 7)
    lstm = g.node("lstm").config
    assert lstm["recurrent_activation"] == "keras3_hard_sigmoid" and lstm["activation"] == "tanh"
    assert lstm["dtype"] == "float32"
    for k in ("seed", "use_cudnn", "zero_output_for_mask", "build_config", "module"):
        assert k not in lstm
    assert lstm["kernel_initializer"] == {"class_name": "GlorotUniform", "config": {"seed": None}}
    emb = g.node("embedding").config
    assert "lora_rank" not in emb and "quantization_config" not in emb
    assert emb["input_length"] is None
    assert g.node("leaky").config["alpha"] == 0.3
    assert [[r.to_list() for r in c] for c in g.node("add").calls] == [[["lstm", 0, 0], ["leaky", 0, 0]]]
    assert [r.to_list() for r in g.outputs] == [["add", 0, 0]]
    assert g.metadata["keras_version"] == "3.15.1" and g.metadata["model_class"] == "Functional"
    # written back as Keras 3, the activation is Keras 3's name again
    k3 = hdf5.graph_to_keras_config(g, "keras3")
    lstm3 = [l for l in k3["config"]["layers"] if l["name"] == "lstm"][0]["config"]
    assert lstm3["recurrent_activation"] == "hard_sigmoid"
    assert [l for l in k3["config"]["layers"] if l["name"] == "leaky"][0]["config"]["negative_slope"] == 0.3


def test_keras3_sequential_config_and_version_guess():
    cfg = {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": {
        "name": "seq", "trainable": True, "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
             "config": {"batch_shape": [None, 3], "dtype": "float32", "name": "input_layer"}},
            {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
             "config": {"name": "dense", "dtype": POLICY, "units": 2, "activation": "hard_sigmoid"},
             "build_config": {"input_shape": [None, 3]}}],
        "build_input_shape": [None, 3]}}
    g = hdf5.keras_config_to_graph(cfg)       # no version: guessed from batch_shape
    assert g.metadata["model_class"] == "Sequential"
    assert g.inputs[0].name == "input_layer"
    assert g.node("dense").config["activation"] == "keras3_hard_sigmoid"
    # the same activation in a Keras 2 config keeps its Keras 2 meaning
    k2 = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Dense", "config": {"name": "d", "units": 2, "activation": "hard_sigmoid",
                                           "batch_input_shape": [None, 3], "dtype": "float32"}}]}}
    g2 = hdf5.keras_config_to_graph(k2)
    assert g2.inputs[0].name == "d_input" and g2.inputs[0].shape == (None, 3)
    assert g2.node("d").config["activation"] == "hard_sigmoid"
    assert "batch_input_shape" not in g2.node("d").config
    # Keras 2.0-2.2: a Sequential config was the bare layer list; "Model" class name
    g3 = hdf5.keras_config_to_graph({"class_name": "Sequential", "config": k2["config"]["layers"]})
    assert [n.name for n in g3.nodes] == ["d"]
    fn = hdf5.graph_to_keras_config(shared_nested())
    fn["class_name"] = "Model"
    assert hdf5.keras_config_to_graph(fn).metadata["model_class"] == "Functional"

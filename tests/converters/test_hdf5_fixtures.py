"""Load the real Keras-written fixtures (tests/fixtures/keras2, keras3) and check structure."""

import glob
import json
import os

import numpy as np
import pytest

from modelkit.converters import hdf5
from modelkit.ir import NESTED_MODEL_OPS

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
DIRS = [d for d in ("keras2", "keras3") if os.path.isdir(os.path.join(HERE, d))]


def fixtures(ext):
    out = []
    for d in DIRS:
        for p in sorted(glob.glob(os.path.join(HERE, d, f"*{ext}"))):
            if ext == ".h5" and p.endswith(".weights.h5"):
                continue
            out.append(pytest.param(p, id=f"{d}/{os.path.basename(p)}"))
    return out


def all_configs(g):
    for n in g.nodes:
        if n.subgraph is not None:
            yield from all_configs(n.subgraph)
        else:
            yield n.op, n.config
            for k in ("layer", "backward_layer"):
                if isinstance(n.config.get(k), dict):
                    yield n.config[k]["class_name"], n.config[k]["config"]


def check_normalised(g):
    # (a Keras 2 Lambda config has a genuine `module` key of its own)
    text = json.dumps([c for op, c in all_configs(g) if op != "Lambda"])
    for banned in ('"module"', '"registered_name"', '"build_config"', '"quantization_config"',
                   '"DTypePolicy"', '"time_major": false', '"batch_shape"', '"input_axes"'):
        assert banned not in text, banned
    for op, cfg in all_configs(g):
        assert isinstance(cfg.get("dtype", "float32"), str), op


def check_npz(path, g):
    npz = path.rsplit(".", 1)[0]
    if path.endswith(".weights.h5"):
        npz = path[: -len(".weights.h5")]
    npz += ".npz"
    if os.path.exists(npz):
        data = np.load(npz, allow_pickle=False)
        xs = sorted(k for k in data.files if k.startswith("x"))
        ys = sorted(k for k in data.files if k.startswith("y"))
        assert len(xs) == len(g.inputs) and len(ys) == len(g.outputs)
        for x, spec in zip(xs, g.inputs):
            assert data[x].shape[1:] == tuple(spec.shape[1:])


@pytest.mark.parametrize("path", fixtures(".h5"))
def test_fixture_h5_loads(path):
    g = hdf5.load_graph(path)
    major = "3" if "keras3" in path else "2"
    assert g.metadata["keras_version"].startswith(major)
    assert g.metadata["model_class"] in ("Sequential", "Functional")
    check_normalised(g)
    check_npz(path, g)
    for n in g.nodes:
        if n.op in NESTED_MODEL_OPS:
            assert n.subgraph is not None and n.subgraph.weights
        for k in n.weights:
            assert k.startswith(n.name + "/") and g.weights[k].dtype.kind == "f"
    # our writer and reader agree on what we read
    cfg = hdf5.graph_to_keras_config(g)
    back = hdf5.keras_config_to_graph(cfg, keras_version=g.metadata["keras_version"]
                                      if major == "2" else "2.15.0")
    assert [n.name for n in back.nodes] == [n.name for n in g.nodes]


@pytest.mark.parametrize("path", fixtures(".h5"))
def test_fixture_h5_resave_round_trip(path, tmp_path):
    g = hdf5.load_graph(path)
    # Keras 3's hard_sigmoid exists only in the Keras 3 dialect; Keras 2 files need no change
    keras3_only = any(c.get(k) == "keras3_hard_sigmoid" for _, c in all_configs(g)
                      for k in ("activation", "recurrent_activation"))
    p = tmp_path / "again.h5"
    hdf5.save_graph(g, p, dialect="keras3" if keras3_only else "keras2")
    back = hdf5.load_graph(p)
    assert [(n.name, n.op, n.config, n.calls) for n in back.nodes] == \
           [(n.name, n.op, n.config, n.calls) for n in g.nodes]
    for k, v in g.weights.items():
        np.testing.assert_array_equal(back.weights[k], v)


@pytest.mark.parametrize("path", [p for p in fixtures(".json")
                                  if os.path.basename(p.values[0]) != "manifest.json"])
def test_fixture_json(path):
    with open(path) as f:
        cfg = json.load(f)
    g = hdf5.keras_config_to_graph(cfg, keras_version="3" if "keras3" in path else "2")
    h5 = hdf5.load_graph(path[:-5] + ".h5")
    assert [(n.name, n.op) for n in g.nodes] == [(n.name, n.op) for n in h5.nodes]


@pytest.mark.parametrize("path", fixtures(".weights.h5"))
def test_fixture_weights(path):
    base = path[: -len(".weights.h5")]
    if not os.path.exists(base + ".h5"):              # e.g. mlp.newlayout.weights.h5
        base = os.path.join(os.path.dirname(base), os.path.basename(base).split(".")[0])
    g = hdf5.load_graph(base + ".h5")
    blank = g.copy()
    for k in blank.weights:
        blank.weights[k] = np.zeros_like(blank.weights[k])
    for n in blank.nodes:
        if n.subgraph is not None:
            for k in n.subgraph.weights:
                n.subgraph.weights[k] = np.zeros_like(n.subgraph.weights[k])
    back = hdf5.load_weights_into(blank, path)
    for k, v in g.weights.items():
        np.testing.assert_array_equal(back.weights[k], v)


@pytest.mark.parametrize("path", fixtures(".keras"))
def test_fixture_keras_archive(path):
    g = hdf5.load_keras_archive(path)
    h5 = hdf5.load_graph(path[: -len(".keras")] + ".h5")
    check_normalised(g)
    assert [(n.name, n.op, n.config) for n in g.nodes] == [(n.name, n.op, n.config) for n in h5.nodes]
    flat = lambda gr: [a for n in gr.nodes for a in (flat(n.subgraph) if n.subgraph else
                                                      [gr.weights[k] for k in n.weights])]
    for a, b in zip(flat(g), flat(h5)):
        np.testing.assert_array_equal(a, b)
    assert len(flat(g)) == len(flat(h5))


def test_fixture_details():
    if "keras2" in DIRS:
        g = hdf5.load_graph(os.path.join(HERE, "keras2", "bidirectional.h5"))
        assert g.node("bidirectional").weights[0] == "bidirectional/forward_lstm/lstm_cell/kernel"
        assert g.node("bidirectional").weights[3] == "bidirectional/backward_lstm/lstm_cell/kernel"
        g = hdf5.load_graph(os.path.join(HERE, "keras2", "lambda.h5"))
        assert isinstance(g.node("lambda").config["function"], list)      # kept as data
        g = hdf5.load_graph(os.path.join(HERE, "keras2", "mlp.h5"))
        assert g.training.metrics == ["accuracy"] and g.training.optimizer["class_name"] == "Adam"
        assert g.training.optimizer_state["iterations"] == 1
        assert "m/dense/kernel" in g.training.optimizer_state["weights"]
    if "keras3" in DIRS:
        g = hdf5.load_graph(os.path.join(HERE, "keras3", "rnn_variants.h5"))
        assert g.node("lstm").config["recurrent_activation"] == "keras3_hard_sigmoid"
        g = hdf5.load_graph(os.path.join(HERE, "keras3", "shared_nested.h5"))
        assert [[r.to_list() for r in c] for c in g.node("shared_dense").calls] == \
               [[["vision", 0, 0]], [["vision", 1, 0]]]
        g = hdf5.load_graph(os.path.join(HERE, "keras3", "mlp.h5"))
        assert "momentum/dense/kernel" in g.training.optimizer_state["weights"]

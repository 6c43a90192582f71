"""`.keras` archives modelkit writes load in BOTH tf-keras 2.21 and Keras 3.15.

The fixtures in tests/fixtures/keras_archive_both/ were written by modelkit
(`verify_in_real_keras.py write --keras`) and loaded by real tf-keras 2.21.0 and Keras 3.15.1:
predictions equal to the stored ones (<= 4.8e-7) in both, except `nested` in tf-keras (see
below). These tests check that modelkit still writes exactly those verified files, and reads
them back.
"""

import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from modelkit.models import load_model

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "keras_archive_both"
NAMES = ["mlp", "cnn", "lstm", "bidir", "multi", "nested", "tdmodel", "merge", "embed"]


def _member(path, name):
    with zipfile.ZipFile(path) as z:
        return z.read(name)


def _inputs_outputs(name):
    data = np.load(HERE / f"{name}.npz")
    xs = [data[k] for k in sorted(k for k in data.files if k.startswith("x"))]
    ys = [data[k] for k in sorted(k for k in data.files if k.startswith("y"))]
    return xs, ys


def _weights(blob):
    out = {}
    with h5py.File(io.BytesIO(blob), "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     else None)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_verified_archive_reads_back_and_writes_the_same_file(name, tmp_path):
    path = HERE / f"{name}.keras"
    model = load_model(path)
    xs, ys = _inputs_outputs(name)
    preds = model.predict(xs if len(xs) > 1 else xs[0])
    for p, y in zip(preds if isinstance(preds, list) else [preds], ys):
        np.testing.assert_allclose(p, y, atol=1e-6)
    model.save(tmp_path / "again.keras")
    assert (json.loads(_member(tmp_path / "again.keras", "config.json"))
            == json.loads(_member(path, "config.json")))
    mine, theirs = (_weights(_member(p, "model.weights.h5"))
                    for p in (tmp_path / "again.keras", path))
    assert mine.keys() == theirs.keys()
    for k in mine:
        np.testing.assert_array_equal(mine[k], theirs[k])


def _walk_layers(model_entry):
    for layer in model_entry["config"]["layers"]:
        yield layer
        if "layers" in layer["config"]:
            yield from _walk_layers(layer)
        inner = layer["config"].get("layer")
        if isinstance(inner, dict) and "layers" in inner.get("config", {}):
            yield from _walk_layers(inner)


@pytest.mark.parametrize("name", NAMES)
def test_archive_config_is_what_both_loaders_read(name, tmp_path):
    """What each loader needs (tf_keras/src/saving/saving_lib.py + serialization_lib, and
    Keras 3's): tf-keras's InputLayer takes only `batch_input_shape` (Keras 3 accepts it
    too), tf-keras reads only list-form nodes (Keras 3 reads them as its legacy case), no
    layer but the InputLayer carries `batch_input_shape` (Keras 3 refuses it), and a model
    class both resolve: `keras.Model` / `keras.Sequential`."""
    load_model(HERE / f"{name}.keras").save(tmp_path / "m.keras")
    config = json.loads(_member(tmp_path / "m.keras", "config.json"))
    assert config["module"] == "keras" and config["class_name"] in ("Model", "Sequential")
    for layer in _walk_layers(config):
        assert "module" in layer and "registered_name" in layer, layer
        cfg = layer["config"]
        assert "batch_shape" not in cfg
        if layer["class_name"] == "InputLayer":
            assert isinstance(cfg["batch_input_shape"], list)
        else:
            assert "batch_input_shape" not in cfg, layer["class_name"]
        assert not isinstance(cfg.get("dtype"), dict)
        for node in layer.get("inbound_nodes", []):
            assert isinstance(node, list)

"""`.keras` archives modelkit writes store recurrent and wrapper weights where Keras 3 does.

Keras 3 keeps an RNN's variables under its cell (`layers/lstm/cell/vars/<i>`), Bidirectional's
under `forward_layer/...` and `backward_layer/...`, TimeDistributed's under `layer/...`; a file
with them elsewhere does not load in Keras 3 ("expected 0 variables"). The references are real
Keras 3.15.1 files (tests/fixtures/keras3_rnn, made by its make_keras3_rnn.py; tests/fixtures/keras3)
with Keras's own predictions: modelkit reads each, writes it back, and the written archive must
hold the same datasets at the same paths, and read back to the same predictions.
"""

import glob
import io
import os
import zipfile

import h5py
import numpy as np
import pytest

from modelkit.converters import hdf5
from modelkit.models import load_model

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
REAL = sorted(glob.glob(os.path.join(FIXTURES, "keras3_rnn", "*.keras"))) + [
    os.path.join(FIXTURES, *p) for p in (("keras3", "lstm.keras"), ("keras3", "td_adam.keras"),
                                         ("keras3", "td_model.keras"),
                                         ("tf_ops", "k3_masked.keras"))]


def layer_datasets(path):
    """{h5 path: array} of the layer weights in a .keras archive or a `*.weights.h5` file
    (optimizer state left out)."""
    if str(path).endswith(".weights.h5"):
        with open(path, "rb") as fh:
            data = fh.read()
    else:
        with zipfile.ZipFile(path) as z:
            data = z.read("model.weights.h5")
    out = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        assert "vars" in f          # the model's own group: tf-keras's loader opens it
        f["layers"].visititems(lambda name, obj: out.__setitem__(f"layers/{name}", obj[()])
                               if isinstance(obj, h5py.Dataset) else None)
    return out


def test_fixtures_cover_every_recurrent_kind():
    paths = {p for f in REAL for p in layer_datasets(f)}
    for where in ("simple_rnn/cell", "gru/cell", "lstm/cell", "rnn/cell", "conv_lstm2d/cell",
                  "bidirectional/forward_layer/cell", "bidirectional/backward_layer/cell",
                  "time_distributed/layer/vars", "time_distributed/layer/cell",
                  "time_distributed/layer/forward_layer/cell", "sequential/layers/lstm/cell"):
        assert any(f"/{where}/" in p for p in paths), where


@pytest.mark.parametrize("path", REAL, ids=lambda p: os.path.relpath(p, FIXTURES))
def test_written_layout_matches_keras3(tmp_path, path):
    out = tmp_path / "m.keras"
    hdf5.save_keras_archive(hdf5.load_keras_archive(path), out)
    want, got = layer_datasets(path), layer_datasets(out)
    assert sorted(got) == sorted(want)
    for k, a in want.items():
        np.testing.assert_array_equal(got[k], a, err_msg=k)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(FIXTURES, "keras3_rnn", "*.keras"))),
                         ids=os.path.basename)
def test_predictions_survive_modelkit_write(tmp_path, path):
    ref = np.load(path[: -len(".keras")] + ".npz")
    model = load_model(path)
    y = np.asarray(model.predict(ref["x0"], verbose=0))
    np.testing.assert_allclose(y, ref["y0"], atol=2e-5, rtol=1e-4)   # Keras 3's own output
    out = str(tmp_path / "m.keras")
    model.save(out)
    np.testing.assert_array_equal(np.asarray(load_model(out).predict(ref["x0"], verbose=0)), y)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(FIXTURES, "keras3", "*.weights.h5"))),
                         ids=os.path.basename)
def test_save_weights_h5_matches_keras3(tmp_path, path):
    """`save_weights("x.weights.h5")` writes the layout Keras 3 (and tf-keras >= 2.13) write
    for that name; each fixture is Keras 3's save_weights of the model next to it."""
    base = path[: -len(".weights.h5")]
    graph = (hdf5.load_keras_archive(base + ".keras") if os.path.exists(base + ".keras")
             else hdf5.load_graph(base + ".h5"))
    out = tmp_path / "m.weights.h5"
    hdf5.save_weights(graph, out)
    want, got = layer_datasets(path), layer_datasets(out)
    assert sorted(got) == sorted(want)
    for k, a in want.items():
        np.testing.assert_array_equal(got[k], a, err_msg=k)
    back = hdf5.load_weights_into(graph, out)
    for k, a in graph.weights.items():
        np.testing.assert_array_equal(back.weights[k], a, err_msg=k)

"""Optimizer state in `.keras` archives (`optimizer/vars/<i>` in model.weights.h5): read from
Keras 3's files so training resumes where Keras 3 left off, and written the way Keras 3
writes it. Fixtures: tests/fixtures/keras3_optimizer (make_optimizer_state.py, Keras 3.15.1)."""

import io
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from modelkit.models import load_model

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "keras3_optimizer"
CASES = ["adam_mlp", "adam_rnn", "sgd_mlp", "rmsprop_mlp", "rmsprop_rnn"]


def _optimizer_vars(path):
    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        g = f["optimizer/vars"]
        return [np.asarray(g[str(i)][()]) for i in range(len(g))]


@pytest.mark.parametrize("name", ["adam_mlp", "adam_rnn", "sgd_mlp", "rmsprop_mlp"])
def test_training_resumes_as_in_keras3(name):
    """Two more steps after loading give Keras 3's weights (a fresh optimizer does not)."""
    data = np.load(HERE / f"{name}.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # nothing about the optimizer is dropped
        model = load_model(HERE / f"{name}.keras")
    assert model.optimizer.iterations == 3
    for i in (3, 4):
        model.train_on_batch(data[f"x{i}"], data[f"y{i}"])
    assert model.optimizer.iterations == int(data["iterations"]) == 5
    weights = model.get_weights()
    assert len(weights) == len([k for k in data.files if k.startswith("w")])
    for i, w in enumerate(weights):
        np.testing.assert_allclose(w, data[f"w{i}"], atol=2e-6, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_slots_come_from_the_file_in_keras3_order(name):
    """Each slot is the file's variable at Keras 3's position (after `iteration` and
    `learning_rate`, groups interleaved per trainable variable). rmsprop_rnn is checked
    here only: modelkit's RMSprop without momentum divides by sqrt(v) + eps (Keras 2),
    Keras 3 by sqrt(v + eps), which differs visibly on the tiny recurrent gradients."""
    stored = _optimizer_vars(HERE / f"{name}.keras")
    model = load_model(HERE / f"{name}.keras")
    opt = model.optimizer
    names = opt._unique_names(model.trainable_weights)
    kind = type(opt).__name__
    if kind == "Adam":
        groups = [("m", "v")] + ([("vhat",)] if opt.amsgrad else [])
    elif kind == "SGD":
        groups = [("momentum",)]
    else:
        groups = ([("rms",)] + ([("momentum",)] if opt.momentum else [])
                  + ([("mg",)] if opt.centered else []))
    state = opt.get_state()["weights"]
    expected = [state[f"{slot}/{n}"] for group in groups for n in names for slot in group]
    assert len(stored) == 2 + len(expected)
    assert int(stored[0]) == opt.iterations == 3
    assert float(stored[1]) == pytest.approx(float(opt.get_config()["learning_rate"]))
    for a, b in zip(stored[2:], expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", CASES)
def test_saved_optimizer_vars_are_keras3s(name, tmp_path):
    """modelkit writes the same `optimizer/vars` Keras 3 wrote (Keras 3 resumes from it)."""
    model = load_model(HERE / f"{name}.keras")
    model.save(tmp_path / "again.keras")
    mine, theirs = _optimizer_vars(tmp_path / "again.keras"), _optimizer_vars(HERE / f"{name}.keras")
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-7)
    resumed = load_model(tmp_path / "again.keras")
    assert resumed.optimizer.iterations == 3


def test_unmatched_optimizer_state_warns_and_loads(tmp_path):
    """A state that does not fit the compiled optimizer (Keras 3.15 leaves the optimizer out
    of compile_config when compiled with a string, then compiles RMSprop) is dropped with a
    warning, as Keras 3 does: the model still loads with its weights."""
    with pytest.warns(UserWarning, match="optimizer state was not restored"):
        model = load_model(HERE.parent / "keras3" / "mlp.keras")
    assert model.optimizer.iterations == 0

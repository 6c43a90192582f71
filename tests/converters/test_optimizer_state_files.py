"""Optimizer state in real Keras files: mapped for wrapped and nested layers, and never a
reason for a model not to load (Keras loads the model and starts a fresh optimizer)."""

import os
import shutil
import warnings

import h5py
import numpy as np
import pytest

from modelkit.models import load_model

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def stored(path, name):
    with h5py.File(path) as f:
        return np.asarray(f["optimizer_weights"][name])


@pytest.mark.parametrize("version,name,slot_var,stored_name", [
    ("keras3", "td_adam", "m/td_dense/kernel", "adam/td_adam_td_dense_dense_kernel_momentum"),
    ("keras3", "td_adam", "v/bi_lstm/backward_lstm/lstm_cell/bias",
     "adam/td_adam_bi_lstm_backward_lstm_lstm_cell_bias_velocity"),
    ("keras3", "nested_adam", "m/enc_dense/kernel", "adam/enc_dense_kernel_momentum"),
    ("keras3", "td_model", "v/frame_out/kernel", "adam/frame_out_kernel_velocity"),
    ("keras2", "td_adam", "m/td_dense/kernel", "Adam/m/td_dense/kernel:0"),
    ("keras2", "td_model", "v/frame_dense/bias", "Adam/v/frame_dense/bias:0"),
])
def test_adam_state_of_wrapped_and_nested_layers_is_restored(version, name, slot_var,
                                                             stored_name):
    path = os.path.join(FIXTURES, version, f"{name}.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # restored, not skipped with a warning
        model = load_model(path)
    state = model.optimizer.get_state()
    assert state["iterations"] == 1
    want = stored(path, stored_name)
    assert np.abs(want).sum() > 0
    np.testing.assert_array_equal(state["weights"][slot_var], want)


def _mangle(src, dst, how):
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        g = f["optimizer_weights"]
        names = [n if isinstance(n, str) else n.decode() for n in g.attrs["weight_names"]]
        target = next(n for n in names if "td_dense" in n and "kernel" in n)
        if how == "renamed":
            g.move(target, "adam/somebody_elses_kernel_momentum")
            names[names.index(target)] = "adam/somebody_elses_kernel_momentum"
            g.attrs["weight_names"] = names
        else:                        # "reshaped": right name, wrong shape
            del g[target]
            g.create_dataset(target, data=np.zeros((7, 7), "float32"))


@pytest.mark.parametrize("how", ["renamed", "reshaped"])
def test_unmatched_optimizer_state_warns_and_loads_without_it(how, tmp_path):
    src = os.path.join(FIXTURES, "keras3", "td_adam.h5")
    path = tmp_path / "m.h5"
    _mangle(src, path, how)
    with pytest.warns(UserWarning, match="optimizer state could not be restored"):
        model = load_model(path)
    data = np.load(os.path.join(FIXTURES, "keras3", "td_adam.npz"))
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5)
    state = model.optimizer.get_state()
    assert state["iterations"] == 0              # a fresh optimizer, nothing half-restored
    assert all(not np.any(v) for v in state["weights"].values())
    model.fit(data["x0"], np.zeros((3, 1), "float32"), epochs=1, verbose=0)
    assert model.optimizer.get_state()["iterations"] == 1

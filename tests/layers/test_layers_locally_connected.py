"""LocallyConnected1D / 2D (Keras 2): shapes, an explicit-loop numpy reference, float64
gradients, config / IR / .h5 / .keras / ONNX round trips (run_layer_test), weights layout as
tf-keras saves it (real files), bad arguments."""

import pathlib

import numpy as np
import pytest

from modelkit.errors import ConfigError
from modelkit.layers import LocallyConnected1D, LocallyConnected2D
from modelkit.models import load_model

from layer_testing import run_layer_test

FIX = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "locally_connected"


def reference(x, layer, channels_first=False):
    """out[n, pos, f] = sum over the window at pos (Keras's patch order) of x * W[pos] + b."""
    kernel, *rest = layer.get_weights()
    if channels_first:
        x = np.moveaxis(x, 1, -1)
    ks, st = layer.kernel_size, layer.strides
    out_sp = tuple((n - k) // s + 1 for n, k, s in zip(x.shape[1:-1], ks, st))
    y = np.zeros((x.shape[0],) + out_sp + (kernel.shape[2],))
    for p, pos in enumerate(np.ndindex(*out_sp)):
        window = x[(slice(None),) + tuple(slice(i * s, i * s + k)
                                          for i, s, k in zip(pos, st, ks))]
        if channels_first:                  # Keras flattens (channels, rows, cols) then
            window = np.moveaxis(window, -1, 1)
        y[(slice(None),) + pos] = window.reshape(len(x), -1) @ kernel[p]
    if rest:
        y = y + rest[0]
    y = np.tanh(y) if layer.activation.__name__ == "tanh" else y
    return np.moveaxis(y, -1, 1) if channels_first else y


@pytest.mark.parametrize("kwargs,shape,out", [
    (dict(filters=4, kernel_size=3), (7, 3), (5, 4)),
    (dict(filters=2, kernel_size=2, strides=2, activation="tanh"), (7, 3), (3, 2)),
    (dict(filters=3, kernel_size=1, use_bias=False), (4, 2), (4, 3))])
def test_locally_connected_1d(tmp_path, kwargs, shape, out):
    run_layer_test(lambda: LocallyConnected1D(**kwargs), shape, tmp_path, output_shape=out,
                   reference=reference, atol=1e-5)


@pytest.mark.parametrize("kwargs,shape,out", [
    (dict(filters=3, kernel_size=(3, 2)), (5, 4, 2), (3, 3, 3)),
    (dict(filters=2, kernel_size=2, strides=(2, 1), activation="tanh"), (6, 5, 3), (3, 4, 2))])
def test_locally_connected_2d(tmp_path, kwargs, shape, out):
    run_layer_test(lambda: LocallyConnected2D(**kwargs), shape, tmp_path, output_shape=out,
                   reference=reference, atol=1e-5)


def test_locally_connected_2d_channels_first(tmp_path):
    run_layer_test(lambda: LocallyConnected2D(2, (2, 3), data_format="channels_first"),
                   (3, 4, 5), tmp_path, output_shape=(2, 3, 3),
                   reference=lambda x, layer: reference(x, layer, channels_first=True),
                   atol=1e-5)


def test_weight_shapes_as_keras():
    from modelkit.layers import Input
    layer = LocallyConnected2D(4, (3, 2), strides=(2, 1))
    layer(Input((6, 5, 3)))
    assert [w.shape for w in layer.get_weights()] == [(8, 18, 4), (2, 4, 4)]


@pytest.mark.parametrize("name", ["lc1d", "lc2d"])
def test_real_tf_keras_files(tmp_path, name):
    """tf-keras 2.21 files (make_locally_connected_fixtures.py; lc2d stacks a channels_first
    layer without bias on a channels_last one): tf-keras's numbers here and in onnxruntime."""
    from modelkit.runtime import InferenceSession
    d = np.load(FIX / f"{name}.npz")
    m = load_model(FIX / f"tfk_{name}.h5")
    np.testing.assert_allclose(m.predict(d["x"]), d["y"], atol=1e-5, rtol=0)
    m.save(tmp_path / "m.onnx")
    np.testing.assert_allclose(InferenceSession(str(tmp_path / "m.onnx")).predict(d["x"]),
                               d["y"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("factory,words", [
    (lambda: LocallyConnected2D(2, 2, padding="same"), "padding"),
    (lambda: LocallyConnected1D(2, 2, implementation=2), "implementation"),
    (lambda: LocallyConnected1D(0, 2), "filters"),
    (lambda: LocallyConnected2D(2, (2, 0)), "kernel_size")])
def test_bad_arguments(factory, words):
    with pytest.raises(ConfigError, match=words):
        factory()

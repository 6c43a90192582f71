"""Normalization (preprocessing), UnitNormalization and GroupNormalization: numpy
references, float64 gradients, the standard round trips and onnxruntime parity, adapt(),
errors, and real tf-keras / Keras 3 files (tests/fixtures/keras_attention_norm)."""

import pathlib

import numpy as np
import pytest

from modelkit.backend.gradcheck import assert_layer_gradients_close
from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import run
from modelkit.errors import ConfigError, ModelLoadError, ShapeError
from modelkit.layers import GroupNormalization, Input, Normalization, UnitNormalization
from modelkit.models import Model, load_model

from layer_testing import run_layer_test

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "keras_attention_norm"


def norm_reference(x, keep, mean, var, invert=False):
    shape = [x.shape[i] if i in keep else 1 for i in range(x.ndim)]
    def fit(v):
        v = np.asarray(v, np.float64)
        return v.reshape(shape) if v.size == np.prod(shape) else np.broadcast_to(v, shape)
    m, s = fit(mean), np.maximum(np.sqrt(fit(var)), 1e-7)
    return m + x * s if invert else (x - m) / s


def group_reference(x, groups, axis, eps, gamma=None, beta=None):
    axis = axis % x.ndim
    c = x.shape[axis]
    g = x.reshape(x.shape[:axis] + (groups, c // groups) + x.shape[axis + 1:])
    red = tuple(i for i in range(1, g.ndim) if i != axis)
    y = ((g - g.mean(red, keepdims=True)) / np.sqrt(g.var(red, keepdims=True) + eps))
    y = y.reshape(x.shape)
    shape = [c if i == axis else 1 for i in range(x.ndim)]
    if gamma is not None:
        y = y * np.reshape(gamma, shape)
    if beta is not None:
        y = y + np.reshape(beta, shape)
    return y


def _stats(layer):
    if layer.input_mean is not None:
        return layer.input_mean, layer.input_variance
    w = layer.get_weights()
    return w[0], w[1]


NORM_CASES = [
    (lambda: Normalization(), (3, 4), [2]),
    (lambda: Normalization(axis=1, invert=True), (3, 4), [1]),
    (lambda: Normalization(axis=(1, 2)), (3, 2), [1, 2]),
    (lambda: Normalization(axis=None), (5,), []),
    (lambda: Normalization(mean=0.5, variance=4.0), (3,), [1]),
    (lambda: Normalization(axis=-1, mean=[1.0, 2.0, 3.0], variance=[1.0, 0.0, 9.0]), (2, 3),
     [2]),                      # a zero variance: the 1e-7 floor
]


@pytest.mark.parametrize("factory,shape,keep", NORM_CASES)
def test_normalization(factory, shape, keep, tmp_path):
    def reference(x, layer):
        mean, var = _stats(layer)
        return norm_reference(x, keep, mean, var, layer.invert)

    def weights(g, s):          # mean, variance, count
        return np.asarray(7, np.int64) if s == () else g.uniform(0.1, 2.0, s).astype(np.float32)
    model, _ = run_layer_test(factory, shape, tmp_path, reference=reference, weights=weights,
                              gradients=False)
    layer = model.layers[-1]
    assert all(not w.trainable for w in layer.weights)
    if layer.input_mean is None:
        assert [w.name.split("/")[-1] for w in layer.weights] == ["mean", "variance", "count"]
        assert layer.get_weights()[2].dtype == np.int64
    if np.min(_stats(layer)[1]) == 0:
        return       # the 1e-7 floor scales by 1e7: finite differences lose their precision
    twin = type(layer).from_config({**layer.get_config(), "dtype": "float64"})
    twin(Input(shape, dtype="float64"))
    twin.set_weights(layer.get_weights())
    assert_layer_gradients_close(twin, np.random.default_rng(0).standard_normal((2,) + shape))


def test_normalization_adapt_and_integer_input():
    data = np.random.default_rng(1).normal(3.0, 2.0, (50, 3, 4))
    layer = Normalization(axis=-1)
    layer.adapt(data)
    mean, var, count = layer.get_weights()
    np.testing.assert_allclose(mean, data.reshape(-1, 4).mean(0), rtol=1e-6)
    np.testing.assert_allclose(var, data.reshape(-1, 4).var(0), rtol=1e-6)
    assert count == 150
    out = layer(data.astype(np.float32)).value
    np.testing.assert_allclose(out.reshape(-1, 4).mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.reshape(-1, 4).std(0), 1, atol=1e-5)
    ids = Input((2,), dtype="int32")
    ints = Model(ids, Normalization(mean=1.0, variance=4.0)(ids))
    x = np.array([[1, 3], [5, -1]], np.int32)
    np.testing.assert_allclose(ints.predict(x), (x - 1.0) / 2.0)
    np.testing.assert_allclose(run(onnx_conv.export(ints), [x])[0], (x - 1.0) / 2.0)


def test_normalization_errors():
    with pytest.raises(ConfigError, match="'n1'.*both mean and variance"):
        Normalization(mean=1.0, name="n1")
    with pytest.raises(ConfigError, match="adapt"):
        Normalization(mean=1.0, variance=1.0).adapt(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="'n2'.*mean/variance"):
        Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0], name="n2")(np.zeros((2, 3), "f"))
    with pytest.raises(ShapeError, match="batch axis"):
        Normalization(axis=0)(Input((3,)))


UNIT_CASES = [(lambda: UnitNormalization(), (5,), -1), (lambda: UnitNormalization(1), (3, 4), 1),
              (lambda: UnitNormalization(axis=[1, 2]), (3, 4), (1, 2))]


@pytest.mark.parametrize("factory,shape,axis", UNIT_CASES)
def test_unit_normalization(factory, shape, axis, tmp_path):
    def reference(x, layer):
        x = x.astype(np.float64)
        return x / np.sqrt(np.maximum((x * x).sum(axis=axis, keepdims=True), 1e-12))
    run_layer_test(factory, shape, tmp_path, reference=reference)


GROUP_CASES = [
    ({"groups": 2}, (5, 4)),
    ({"groups": 3, "axis": 1, "center": False}, (6, 2, 2)),
    ({"groups": -1, "epsilon": 0.1}, (3, 3, 4)),                     # instance norm
    ({"groups": 1, "scale": False}, (2, 2, 3)),                      # layer norm
    ({"groups": 2, "axis": -1}, (2, 2, 2, 4)),
]


@pytest.mark.parametrize("kwargs,shape", GROUP_CASES)
def test_group_normalization(kwargs, shape, tmp_path):
    def reference(x, layer):
        groups = layer.groups if layer.groups != -1 else x.shape[layer.axis]
        gamma = layer.gamma.value if layer.scale else None
        beta = layer.beta.value if layer.center else None
        return group_reference(x.astype(np.float64), groups, layer.axis, layer.epsilon,
                               gamma, beta)
    model, _ = run_layer_test(lambda: GroupNormalization(**kwargs), shape, tmp_path,
                              reference=reference, atol=1e-5,
                              weights=lambda g, s: g.normal(0, 1, s).astype(np.float32))
    names = [w.name.split("/")[-1] for w in model.layers[-1].weights]
    assert names == (["gamma"] if kwargs.get("scale", True) else []) + \
        (["beta"] if kwargs.get("center", True) else [])


def test_group_normalization_errors():
    with pytest.raises(ShapeError, match="'g1'.*5 channels.*2 groups"):
        GroupNormalization(2, name="g1")(Input((3, 5)))
    with pytest.raises(ConfigError, match="groups"):
        GroupNormalization(0)
    with pytest.raises(ConfigError, match="one int"):
        GroupNormalization(2, axis=[1, 2])


@pytest.mark.parametrize("name", ["tfk_normalization.h5", "k3_normalization.h5",
                                  "k3_normalization.keras", "tfk_groupnorm.h5",
                                  "k3_groupnorm.h5", "k3_groupnorm.keras"])
def test_real_keras_files(name):
    """tf-keras 2.21 and Keras 3.15 files (adapted Normalization -> UnitNormalization ->
    Normalization with constants; GroupNormalization on the last axis and on axis 1) predict
    Keras's numbers in modelkit and in onnxruntime."""
    data = np.load(FIXTURES / f"{name.split('.')[0]}.npz")
    model = load_model(FIXTURES / name, compile=False)
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(run(onnx_conv.export(model), [data["x0"]])[0], data["y0"],
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["k3_normalization_seq.h5", "k3_normalization_seq.keras"])
def test_adapted_normalization_opening_a_sequential(name):
    """The tutorials' pattern (adapt, then Sequential([norm, Dense])) as Keras 3 saves it."""
    data = np.load(FIXTURES / "k3_normalization_seq.npz")
    model = load_model(FIXTURES / name, compile=False)
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5, rtol=0)


def test_tf_keras_adapted_normalization_without_input_shape_is_refused_clearly():
    """tf-keras 2.21 writes that model with input shape (None, None): tf-keras itself cannot
    load it back ("All `axis` values to be kept must have known shape"); modelkit refuses it
    with a ModelLoadError naming the file and the layer."""
    with pytest.raises(ModelLoadError, match=r"tfk_normalization_seq.h5.*'norm'.*known size"):
        load_model(FIXTURES / "tfk_normalization_seq.h5", compile=False)

"""Keras 1 legacy layers Highway and MaxoutDense: Keras 1 weight order/shapes, numpy
formulas, float64 gradients, Keras 1 spellings and deprecation warnings, configs, round
trips, registry, errors."""

import warnings

import numpy as np
import pytest

from modelkit import regularizers
from modelkit.backend.tensor import Tensor
from modelkit.errors import ConfigError, ShapeError
from modelkit.layers import LAYERS, Dense, Highway, Input, MaxoutDense
from modelkit.models import Model, Sequential

from layer_testing import run_layer_test

rng = np.random.default_rng(41)


def quiet(factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return factory()


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def highway_reference(x, W, W_carry, b, b_carry, act=lambda z: z):
    t = sigmoid(x @ W_carry + b_carry)
    return act(x @ W + b) * t + (1.0 - t) * x


def maxout_reference(x, W, b):
    out = np.full((x.shape[0], W.shape[2]), -np.inf)
    for k in range(W.shape[0]):
        out = np.maximum(out, x @ W[k] + b[k])
    return out


# -- Highway -------------------------------------------------------------------------------------

def test_highway_weights_are_keras1_order_and_init():
    with pytest.warns(DeprecationWarning, match="Highway is deprecated.*Dense"):
        layer = Highway(input_dim=3)
    model = Sequential([layer])
    assert model.output_shape == (None, 3)
    names = [v.name.split("/")[-1] for v in layer.weights]
    assert names == ["W", "W_carry", "b", "b_carry"]
    assert [v.shape for v in layer.weights] == [(3, 3), (3, 3), (3,), (3,)]
    np.testing.assert_array_equal(layer.b.value, np.zeros(3))
    np.testing.assert_array_equal(layer.b_carry.value, np.full(3, -2.0))
    nobias = quiet(lambda: Highway(use_bias=False))
    nobias(Input((4,)))
    assert [v.name.split("/")[-1] for v in nobias.weights] == ["W", "W_carry"]


@pytest.mark.parametrize("activation,act", [("linear", lambda z: z), ("relu",
                                                                      lambda z: np.maximum(z, 0)),
                                            ("tanh", np.tanh)])
def test_highway_matches_numpy(activation, act):
    layer = quiet(lambda: Highway(activation=activation, transform_bias=-1.0))
    inp = Input((4,))
    model = Model(inp, layer(inp))
    ws = [rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in layer.get_weights()]
    layer.set_weights(ws)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), highway_reference(x, *ws, act=act),
                               rtol=1e-5, atol=1e-6)
    nobias = quiet(lambda: Highway(activation=activation, use_bias=False))
    nobias(Input((4,)))
    nobias.set_weights(ws[:2])
    np.testing.assert_allclose(nobias(Tensor(x)).value,
                               highway_reference(x, ws[0], ws[1], 0.0, 0.0, act=act),
                               rtol=1e-5, atol=1e-6)


def test_highway_keras1_spellings_and_regularizer_targets():
    with pytest.warns(DeprecationWarning) as record:
        layer = Highway(init="zero", W_regularizer=regularizers.l2(0.5), bias=True,
                        b_constraint="non_neg", input_dim=2)
    messages = " | ".join(str(w.message) for w in record)
    assert "'init' is deprecated; use 'kernel_initializer'" in messages
    assert "'W_regularizer' is deprecated; use 'kernel_regularizer'" in messages
    assert "'bias' is deprecated; use 'use_bias'" in messages
    Sequential([layer])
    assert np.all(layer.W.value == 0) and layer.W.regularizer is not None
    assert layer.W_carry.regularizer is None and layer.b.constraint is not None
    assert layer.b_carry.constraint is None
    layer.set_weights([np.ones((2, 2)), np.ones((2, 2)), np.zeros(2), np.zeros(2)])
    losses = layer.regularization_losses()
    assert len(losses) == 1 and float(losses[0].value) == pytest.approx(0.5 * 4)


# -- MaxoutDense ---------------------------------------------------------------------------------

def test_maxout_weights_and_numpy():
    with pytest.warns(DeprecationWarning, match="MaxoutDense is deprecated.*Dense"):
        layer = MaxoutDense(5, nb_feature=3, input_dim=4)
    model = Sequential([layer])
    assert model.output_shape == (None, 5)
    assert [v.name.split("/")[-1] for v in layer.weights] == ["W", "b"]
    assert [v.shape for v in layer.weights] == [(3, 4, 5), (3, 5)]
    ws = [rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(ws)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), maxout_reference(x, *ws), rtol=1e-5, atol=1e-5)
    with pytest.warns(DeprecationWarning) as record:
        old = MaxoutDense(output_dim=2, nb_feature=2)
    assert any("'output_dim' is deprecated; use 'units'" in str(w.message) for w in record)
    assert old.units == 2
    nobias = quiet(lambda: MaxoutDense(2, nb_feature=2, use_bias=False))
    nobias(Input((3,)))
    assert len(nobias.weights) == 1


# -- both: configs, registry, round trips, errors, training --------------------------------------

def _highway(act):
    return lambda x, layer: highway_reference(x, *(layer.get_weights() + [0.0, 0.0])[:4], act=act)


def _maxout(x, layer):
    ws = layer.get_weights()
    return maxout_reference(x, ws[0], ws[1] if len(ws) > 1 else np.zeros(ws[0].shape[::2]))


CASES = [   # (factory, numpy reference): each runs every standard layer check
    (lambda: Highway(activation="relu", transform_bias=-1.5, kernel_regularizer="l2"),
     _highway(lambda z: np.maximum(z, 0))),
    (lambda: Highway(activation="tanh"), _highway(np.tanh)),
    (lambda: Highway(use_bias=False), _highway(lambda z: z)),
    (lambda: MaxoutDense(3, nb_feature=2, bias_constraint="max_norm"), _maxout),
    (lambda: MaxoutDense(2, nb_feature=4, use_bias=False), _maxout),
]


@pytest.mark.parametrize("factory,reference", CASES)
def test_layer(factory, reference, tmp_path):
    """Registry, numpy formula, config/IR/HDF5/.keras/ONNX round trips, float64 gradients."""
    model, _ = run_layer_test(factory, (4,), tmp_path, reference=reference,
                              weights=lambda r, shape: (r.standard_normal(shape) * 0.5)
                              .astype(np.float32))
    layer = model.layers[-1]
    assert LAYERS.get(type(layer).__name__) is type(layer)


def test_bad_inputs_and_arguments():
    with pytest.raises(ShapeError, match="'hw'.*rank 2"):
        quiet(lambda: Highway(name="hw"))(Input((3, 4)))
    layer = quiet(lambda: Highway(name="hw2"))
    layer(Input((4,)))
    with pytest.raises(ShapeError, match="Highway 'hw2' expects inputs of shape \\(None, 4\\)"):
        layer(Tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ConfigError, match="Highway 'hw3'.*transform_bias"):
        quiet(lambda: Highway(transform_bias="low", name="hw3"))
    with pytest.raises(ConfigError, match="MaxoutDense 'mx'.*positive"):
        quiet(lambda: MaxoutDense(0, name="mx"))
    with pytest.raises(ShapeError, match="'mx2'.*rank 2"):
        quiet(lambda: MaxoutDense(2, name="mx2"))(Input((3, 4)))
    layer = quiet(lambda: MaxoutDense(2, name="mx3"))
    layer(Input((4,)))
    with pytest.raises(ShapeError, match="MaxoutDense 'mx3' expects inputs of shape"):
        layer(Input((5,)))


def test_legacy_layers_train():
    model = quiet(lambda: Sequential([Dense(6, input_dim=4), Highway(activation="relu"),
                                      MaxoutDense(3, nb_feature=3), Dense(1)]))
    model.compile("adam", "mse")
    g = np.random.default_rng(0)
    x = g.normal(size=(64, 4))
    history = model.fit(x, np.abs(x).sum(1, keepdims=True), epochs=6, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

"""K.placeholder (Keras 2's backend API): fed through K.function, differentiated by
K.gradients, and usable wherever `Input` is (layers, Model, mixed with graph tensors)."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.errors import ConfigError, ShapeError, UnsupportedError
from modelkit.layers import Dense, Input, Lambda
from modelkit.models import Model

RNG = np.random.default_rng(7)
X = RNG.normal(size=(4, 3)).astype("float32")


def test_k_functions_of_placeholders_are_evaluated_by_k_function():
    x = K.placeholder(shape=(None, 3))
    f = K.function([x], [K.square(x), K.sum(x * 2 + 1, axis=1), x[:, 1], -abs(x) / 2])
    sq, s, col, neg = f([X])
    np.testing.assert_allclose(sq, X ** 2, rtol=1e-6)
    np.testing.assert_allclose(s, (X * 2 + 1).sum(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(col, X[:, 1])
    np.testing.assert_allclose(neg, -np.abs(X) / 2, rtol=1e-6)
    assert K.int_shape(x) == (None, 3) and K.ndim(K.placeholder(ndim=4)) == 4


def test_gradients_with_respect_to_placeholders_variables_and_intermediates():
    x = K.placeholder(shape=(None, 3))
    w = K.variable(RNG.normal(size=(3,)).astype("float32"))
    h = K.square(x) * w                                 # an intermediate expression
    loss = K.sum(K.exp(h))
    gx, gw, gh = K.gradients(loss, [x, w, h])
    got = K.function([x], [gx, gw, gh])([X])
    wv = K.get_value(w)
    e = np.exp(X ** 2 * wv)
    np.testing.assert_allclose(got[0], e * 2 * X * wv, rtol=1e-5)
    np.testing.assert_allclose(got[1], (e * X ** 2).sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(got[2], e, rtol=1e-5)


def test_learning_phase_as_an_input():
    x = K.placeholder(shape=(None, 3))
    phased = Lambda(lambda t: K.in_train_phase(t * 2, t))(x)
    f = K.function([x, K.learning_phase()], [phased, x + 1])
    np.testing.assert_allclose(f([X, 1])[0], 2 * X)
    np.testing.assert_allclose(f([X, 0])[0], X)
    g = K.function([K.learning_phase(), x], x + 1)          # placeholders only
    np.testing.assert_allclose(g([1, X]), X + 1)


def test_layers_models_and_graph_tensors_take_placeholders():
    x = K.placeholder(shape=(None, 3), name="pixels")
    dense = Dense(2, activation="tanh")
    h = dense(x)                                        # the placeholder becomes an Input
    model = Model(x, h)
    assert model.inputs[0] is x.keras_tensor and model.layers[0].name == "pixels"
    kernel, bias = dense.get_weights()
    t = np.tanh(X @ kernel + bias)
    np.testing.assert_allclose(model.predict(X), t, rtol=1e-5, atol=1e-6)
    gx, = K.gradients(K.sum(h), x)
    out, grad = K.function([x], [h * x[:, :1], gx])([X])
    np.testing.assert_allclose(out, t * X[:, :1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, (1 - t ** 2) @ kernel.T, rtol=1e-5, atol=1e-6)
    # mixed with a graph tensor: one graph, both fed
    y = Input((3,))
    both = K.function([x, y], [K.square(x) + y])([X, 2 * X])
    np.testing.assert_allclose(both[0], X ** 2 + 2 * X, rtol=1e-6)


def test_style_transfer_pattern_concatenated_with_variables():
    """neural_style_transfer.py: K.concatenate([variable, variable, placeholder]) feeds the
    network; the loss is differentiated with respect to the placeholder."""
    base = K.variable(RNG.normal(size=(1, 3)).astype("float32"))
    combo = K.placeholder((1, 3))
    batch = K.concatenate([base, combo], axis=0)
    dense = Dense(2)
    feats = dense(batch)
    loss = K.sum(K.square(feats[0] - feats[1]))
    grads = K.gradients(loss, combo)
    c = RNG.normal(size=(1, 3)).astype("float32")
    value, grad = K.function([combo], [loss] + grads)([c])
    kernel, _ = dense.get_weights()
    d = (K.get_value(base) - c) @ kernel
    np.testing.assert_allclose(value, (d ** 2).sum(), rtol=1e-5)
    np.testing.assert_allclose(grad, -2 * d @ kernel.T, rtol=1e-5)


def test_placeholder_errors_name_what_is_wrong():
    K.clear_session()
    assert [K.placeholder(ndim=1).name, K.placeholder(ndim=1).name] == \
        ["placeholder", "placeholder_1"]
    x, y = K.placeholder((None, 3), name="x"), K.placeholder((None, 3), name="y")
    with pytest.raises(ConfigError, match="placeholder 'y' is needed"):
        K.function([x], [x + y])([X])
    with pytest.raises(ShapeError, match=r"placeholder 'x' expects shape \(None, 3\)"):
        K.function([x], [x * 2])([X[:, :2]])
    with pytest.raises(ShapeError, match="expects 1 input"):
        K.function([x], [x * 2])([X, X])
    with pytest.raises(ConfigError, match="`shape=` or `ndim=`"):
        K.placeholder()
    with pytest.raises(ShapeError, match="ndim=3"):
        K.placeholder(shape=(2, 3), ndim=3)
    with pytest.raises(UnsupportedError, match="sparse"):
        K.placeholder((None, 3), sparse=True)
    with pytest.raises(ShapeError, match="known only when K.function runs"):
        K.int_shape(K.square(x))

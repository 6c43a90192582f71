"""Every activation against a direct numpy formula, plus gradients and get/serialize."""

import math

import numpy as np
import pytest

from modelkit import activations
from modelkit import backend as K
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.errors import ConfigError

X = np.linspace(-4, 4, 33).astype(np.float32).reshape(3, 11)
X = np.where(np.abs(X) < 1e-3, 0.3, X).astype(np.float32)   # away from kinks at 0


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_softplus(x):
    return np.log1p(np.exp(x))


_erf = np.vectorize(math.erf)
SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805

REFERENCE = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "sigmoid": np_sigmoid,
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0, 1),
    "keras3_hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "tanh": np.tanh,
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
    "log_softmax": lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True)),
    "softplus": np_softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "selu": lambda x: SELU_S * np.where(x > 0, x, SELU_A * (np.exp(x) - 1)),
    "exponential": np.exp,
    "swish": lambda x: x * np_sigmoid(x),
    "silu": lambda x: x * np_sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),
    "mish": lambda x: x * np.tanh(np_softplus(x)),
}


def test_every_registered_activation_has_a_reference():
    assert set(activations.ACTIVATIONS.names()) == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_matches_numpy(name):
    fn = activations.get(name)
    out = fn(K.Tensor(X))
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.asarray(out.value), REFERENCE[name](X.astype(np.float64)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(set(REFERENCE) - {"linear", "relu", "relu6"}))
def test_activation_gradient(name):
    fn = activations.get(name)
    x = X.astype(np.float64)[:, ::2]
    x = np.where(np.abs(np.abs(x) - 2.5) < 0.05, 2.3, x)  # hard_sigmoid's kinks at +-2.5
    x = np.where(np.abs(np.abs(x) - 3.0) < 0.05, 2.7, x)  # keras3 hard sigmoid's at +-3
    assert_gradients_close(lambda v: fn(v), [x], rtol=1e-4, atol=1e-6)


def test_parameterised_forms():
    t = K.Tensor(X)
    np.testing.assert_allclose(activations.elu(t, alpha=0.5).value,
                               np.where(X > 0, X, 0.5 * (np.exp(X) - 1)), rtol=1e-6)
    np.testing.assert_allclose(activations.leaky_relu(t, alpha=0.1).value,
                               np.where(X > 0, X, 0.1 * X), rtol=1e-6)
    np.testing.assert_allclose(activations.relu(t, alpha=0.1, max_value=2.0).value,
                               np.clip(np.where(X > 0, X, 0.1 * X), None, 2.0), rtol=1e-6)
    c = math.sqrt(2 / math.pi)
    np.testing.assert_allclose(activations.gelu(t, approximate=True).value,
                               0.5 * X * (1 + np.tanh(c * (X + 0.044715 * X ** 3))), rtol=1e-5)
    x3 = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    s = activations.softmax(K.Tensor(x3), axis=1).value
    np.testing.assert_allclose(s, np.exp(x3) / np.exp(x3).sum(1, keepdims=True), rtol=1e-5)


def test_softmax_and_sigmoid_outputs_carry_logits():
    t = K.Tensor(X)
    assert activations.softmax(t)._logits[0] == "softmax"
    assert activations.sigmoid(t)._logits[0] == "sigmoid"


def test_get_and_serialize():
    assert activations.get(None) is activations.linear
    assert activations.get("relu") is activations.relu
    assert activations.get("silu") is activations.swish
    assert activations.serialize(activations.get("silu")) == "swish"
    assert activations.get({"class_name": "function", "config": "tanh",
                            "module": "keras.activations"}) is activations.tanh
    custom = lambda x: x  # noqa: E731
    assert activations.get(custom) is custom
    for name in REFERENCE:
        fn = activations.get(name)
        assert activations.get(activations.serialize(fn)) is fn


def test_unknown_name_lists_known_names():
    with pytest.raises(ConfigError) as e:
        activations.get("rleu")
    assert "relu" in str(e.value) and "Known" in str(e.value)
    with pytest.raises(ConfigError):
        activations.get(3)

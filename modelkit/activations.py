"""Activation functions (Keras 2 semantics): Tensor -> Tensor, built from K ops.

`hard_sigmoid` is Keras 2's ``clip(0.2 x + 0.5, 0, 1)``; Keras 3's ``clip(x / 6 + 0.5, 0, 1)``
is `keras3_hard_sigmoid`. `softmax` and `sigmoid` go through `K.softmax` / `K.sigmoid`, whose
outputs carry their logits so the cross-entropy losses can use the fused, stable ops.

`get(identifier)` accepts a name, a Keras 3 ``{"class_name": "function", "config": name}``
dict, a callable, or None (-> `linear`); `serialize(fn)` gives the Keras name.
"""

from . import backend as K
from .registry import Registry
from .utils import serialization as _ser

ACTIVATIONS = Registry("activation")


def _reg(*names):
    def deco(fn):
        ACTIVATIONS.register(list(names) or fn.__name__, fn)
        return fn
    return deco


def _k_activation(*names, k=None, doc=None):
    """Register the one-argument activation `names[0]` (and its aliases) that calls
    `K.<k>` (default: the same name), looked up at call time."""
    k = k or names[0]

    def fn(x):
        return getattr(K, k)(x)
    fn.__name__ = fn.__qualname__ = names[0]
    fn.__doc__ = doc
    return _reg(*names)(fn)


@_reg("linear")
def linear(x):
    """Identity."""
    return x


@_reg("relu")
def relu(x, alpha=0.0, max_value=None, threshold=0.0):
    """Keras relu: x above `threshold`, `alpha * (x - threshold)` below, capped at max_value."""
    return K.relu(x, alpha=alpha, max_value=max_value, threshold=threshold)


@_reg("relu6")
def relu6(x):
    return K.relu(x, max_value=6.0)


@_reg("leaky_relu")
def leaky_relu(x, alpha=0.2):
    return K.relu(x, alpha=alpha)


sigmoid = _k_activation("sigmoid")
hard_sigmoid = _k_activation("hard_sigmoid", doc="Keras 2: clip(0.2 * x + 0.5, 0, 1).")


@_reg("keras3_hard_sigmoid")
def keras3_hard_sigmoid(x):
    """Keras 3: clip(x / 6 + 0.5, 0, 1) (what Keras 3 files mean by 'hard_sigmoid')."""
    return K.keras3_hard_sigmoid(x)


tanh = _k_activation("tanh")


@_reg("softmax")
def softmax(x, axis=-1):
    return K.softmax(x, axis=axis)


@_reg("log_softmax")
def log_softmax(x, axis=-1):
    return K.log_softmax(x, axis=axis)


softplus = _k_activation("softplus")
softsign = _k_activation("softsign")


@_reg("elu")
def elu(x, alpha=1.0):
    return K.elu(x, alpha=alpha)


selu = _k_activation("selu")
exponential = _k_activation("exponential", k="exp")
swish = _k_activation("swish", "silu", doc="x * sigmoid(x) (also registered as 'silu').")

silu = swish


@_reg("gelu")
def gelu(x, approximate=False):
    """x * Phi(x); with approximate=True the tanh formula."""
    return K.gelu(x, approximate=approximate)


@_reg("mish")
def mish(x):
    """x * tanh(softplus(x))."""
    return K.multiply(x, K.tanh(K.softplus(x)))


def get(identifier):
    """The activation function for a name / Keras 3 dict / callable; None -> linear."""
    if identifier is None:
        return linear
    return _ser.deserialize(identifier, ACTIVATIONS, "activation", instantiate=False)


def serialize(activation):
    """The Keras name of an activation function (e.g. 'relu'); layers' get_config uses it."""
    return _ser.serialize(activation, ACTIVATIONS)


def deserialize(name, custom_objects=None):
    return _ser.deserialize(name, ACTIVATIONS, "activation", custom_objects=custom_objects,
                            instantiate=False)


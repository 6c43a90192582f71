"""Weight regularizers (Keras 2): ``reg(x: Tensor) -> scalar Tensor``, differentiable.

`L1(l1=0.01)`, `L2(l2=0.01)`, `L1L2(l1=0., l2=0.)`; names 'l1', 'l2', 'l1_l2' (the last
with both factors 0.01, like Keras's `l1_l2()`), and the class names.
"""

import numpy as np

from . import backend as K
from .errors import ConfigError
from .registry import Registry
from .utils import serialization as _ser

REGULARIZERS = Registry("regularizer")


class Regularizer:
    """Base class: `__call__(x) -> scalar Tensor`."""

    def __call__(self, x):
        return K.constant(0.0)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _factor(value, what):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"Regularizer factor {what} must be a number, got {value!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ConfigError(f"Regularizer factor {what} must be finite and >= 0, got {value}")
    return value


class L1L2(Regularizer):
    """l1 * sum(|x|) + l2 * sum(x^2)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(l1, "l1")
        self.l2 = _factor(l2, "l2")

    def __call__(self, x):
        x = x if isinstance(x, K.Tensor) else K.Tensor(np.asarray(x))
        dt = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(K.floatx())
        total = None
        if self.l1:
            total = K.multiply(K.sum(K.abs(x)), np.asarray(self.l1, dt))
        if self.l2:
            term = K.multiply(K.sum(K.square(x)), np.asarray(self.l2, dt))
            total = term if total is None else K.add(total, term)
        return total if total is not None else K.Tensor(np.zeros((), dt))

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01, **kwargs):
        if "l" in kwargs:          # Keras 2.x accepted `l`
            l1 = kwargs.pop("l")
        _ser.check_kwargs(kwargs, (), "L1")
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01, **kwargs):
        if "l" in kwargs:
            l2 = kwargs.pop("l")
        _ser.check_kwargs(kwargs, (), "L2")
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


def l1(l1=0.01):  # noqa: E741 - Keras name
    return L1(l1)


def l2(l2=0.01):
    return L2(l2)


def l1_l2(l1=0.01, l2=0.01):  # noqa: E741
    return L1L2(l1=l1, l2=l2)


_ser.register_all(REGULARIZERS, {"L1": L1, "L2": L2, "L1L2": L1L2,
                                 "l1": L1, "l2": L2, "l1_l2": l1_l2})


def get(identifier):
    """A regularizer from a name, config dict, instance or callable; None -> None."""
    obj = _ser.deserialize(identifier, REGULARIZERS, "regularizer", base_class=Regularizer)
    if obj is l1_l2:
        return l1_l2()
    return obj


def serialize(regularizer):
    return _ser.serialize(regularizer, REGULARIZERS)


def deserialize(config, custom_objects=None):
    return _ser.deserialize(config, REGULARIZERS, "regularizer", base_class=Regularizer,
                            custom_objects=custom_objects)

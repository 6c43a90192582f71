"""Weight constraints (Keras 2): ``c(w: np.ndarray) -> np.ndarray``.

Optimizers apply a Variable's `.constraint` to its value after each update. Names: class
names, Keras 2 snake case ('max_norm', 'non_neg', 'unit_norm', 'min_max_norm') and
Keras 1's 'maxnorm', 'nonneg', 'unitnorm' (DeprecationWarning).
"""

import numpy as np

from .backend import config as _config
from .registry import Registry
from .utils import serialization as _ser

CONSTRAINTS = Registry("constraint")
DEPRECATED_NAMES = {"maxnorm": "max_norm", "nonneg": "non_neg", "unitnorm": "unit_norm"}


def _array(w):
    return np.asarray(getattr(w, "value", w))


def _norms(w, axis):
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


class Constraint:
    def __call__(self, w):
        return _array(w)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MaxNorm(Constraint):
    """Rescale so the norm along `axis` is at most `max_value`."""

    def __init__(self, max_value=2, axis=0, **kwargs):
        if "m" in kwargs:           # Keras 1
            _ser.warn_deprecated_name("MaxNorm argument", "m", "max_value")
            max_value = kwargs.pop("m")
        _ser.check_kwargs(kwargs, (), "MaxNorm")
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w):
        w = _array(w)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return (w * (desired / (_config.epsilon() + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w):
        w = _array(w)
        return w * (w >= 0).astype(w.dtype)


class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        w = _array(w)
        return (w / (_config.epsilon() + _norms(w, self.axis))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Norms along `axis` pulled into [min_value, max_value] at `rate` (1 = fully)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w):
        w = _array(w)
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + \
            (1 - self.rate) * norms
        return (w * (desired / (_config.epsilon() + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


_ser.register_all(CONSTRAINTS, {
    ("MaxNorm", "max_norm"): MaxNorm, ("NonNeg", "non_neg"): NonNeg,
    ("UnitNorm", "unit_norm"): UnitNorm, ("MinMaxNorm", "min_max_norm"): MinMaxNorm,
})

max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm


def maxnorm(*args, **kwargs):
    _ser.warn_deprecated_name("constraint", "maxnorm", "max_norm", stacklevel=3)
    return MaxNorm(*args, **kwargs)


def nonneg():
    _ser.warn_deprecated_name("constraint", "nonneg", "non_neg", stacklevel=3)
    return NonNeg()


def unitnorm(*args, **kwargs):
    _ser.warn_deprecated_name("constraint", "unitnorm", "unit_norm", stacklevel=3)
    return UnitNorm(*args, **kwargs)


def get(identifier):
    """A constraint from a name, config dict, instance or callable; None -> None."""
    return _ser.deserialize(identifier, CONSTRAINTS, "constraint", base_class=Constraint,
                            deprecated=DEPRECATED_NAMES)


def serialize(constraint):
    return _ser.serialize(constraint, CONSTRAINTS)


def deserialize(config, custom_objects=None):
    return _ser.deserialize(config, CONSTRAINTS, "constraint", base_class=Constraint,
                            deprecated=DEPRECATED_NAMES, custom_objects=custom_objects)

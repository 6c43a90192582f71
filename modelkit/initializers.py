"""Weight initializers (Keras 2 classes and names): ``init(shape, dtype=None) -> np.ndarray``.

Randomness: an initializer built with ``seed=`` draws from its own generator, seeded afresh
on every call (so it returns the same values each time, as tf.keras 2 does). Unseeded ones
draw from `global_rng()`, which follows numpy's global state as Keras 2 did
(`np.random.seed(1337)` makes a run reproducible; see `backend/random_state.py`);
`set_random_seed(seed)` seeds it together with Python's `random`. Shuffling and dropout
use `global_rng()` too.
"""

import math

import numpy as np

from .backend import config as _config
from .backend.random_state import global_rng, set_random_seed  # noqa: F401  (public here too)
from .errors import ConfigError, ShapeError
from .registry import Registry
from .utils import serialization as _ser

INITIALIZERS = Registry("initializer")

def _dtype(dtype):
    return np.dtype(dtype if dtype is not None else _config.floatx())


def _shape(shape):
    try:
        return tuple(int(d) for d in shape)
    except TypeError:
        if isinstance(shape, (int, np.integer)):
            return (int(shape),)
        raise ShapeError(f"An initializer needs a shape of ints, got {shape!r}") from None


class Initializer:
    """Base class: subclasses implement `__call__(shape, dtype=None)` and `get_config()`."""

    def __call__(self, shape, dtype=None, **kwargs):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("dtype", None)        # Keras 1/2.0 configs carried it
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({self.get_config()})"


class _Seeded(Initializer):
    def __init__(self, seed=None):
        self.seed = seed

    def _rng(self):
        return np.random.default_rng(self.seed) if self.seed is not None else global_rng()


class Zeros(Initializer):
    def __call__(self, shape, dtype=None, **kwargs):
        return np.zeros(_shape(shape), dtype=_dtype(dtype))


class Ones(Initializer):
    def __call__(self, shape, dtype=None, **kwargs):
        return np.ones(_shape(shape), dtype=_dtype(dtype))


class Constant(Initializer):
    def __init__(self, value=0):
        self.value = value

    def __call__(self, shape, dtype=None, **kwargs):
        shape = _shape(shape)
        value = np.asarray(self.value, dtype=_dtype(dtype))
        try:
            return np.array(np.broadcast_to(value, shape))
        except ValueError:
            raise ShapeError(f"Constant initializer: value of shape {value.shape} cannot fill "
                             f"shape {shape}") from None

    def get_config(self):
        v = self.value
        return {"value": v.tolist() if isinstance(v, np.ndarray) else v}


class RandomUniform(_Seeded):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = minval
        self.maxval = maxval

    def __call__(self, shape, dtype=None, **kwargs):
        dt = _dtype(dtype)
        out = self._rng().uniform(self.minval, self.maxval, size=_shape(shape))
        if np.issubdtype(dt, np.integer):
            out = np.floor(out)
        return out.astype(dt)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(_Seeded):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = mean
        self.stddev = stddev

    def __call__(self, shape, dtype=None, **kwargs):
        return self._rng().normal(self.mean, self.stddev, size=_shape(shape)).astype(_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_normal(rng, shape, mean, stddev):
    """Normal samples redrawn until within two standard deviations of the mean."""
    out = rng.standard_normal(size=shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * stddev + mean


class TruncatedNormal(_Seeded):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = mean
        self.stddev = stddev

    def __call__(self, shape, dtype=None, **kwargs):
        return _truncated_normal(self._rng(), _shape(shape), self.mean,
                                 self.stddev).astype(_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def compute_fans(shape):
    """Keras's (fan_in, fan_out): conv kernels (..., in, out) multiply by the receptive field."""
    shape = _shape(shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(_Seeded):
    """Samples with variance ``scale / fan`` (fan_in, fan_out or their average)."""

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if scale <= 0.0:
            raise ConfigError(f"VarianceScaling: scale must be positive, got {scale}")
        mode = str(mode).lower()
        if mode not in self._MODES:
            raise ConfigError(f"VarianceScaling: mode must be one of {self._MODES}, got {mode!r}")
        distribution = str(distribution).lower()
        if distribution not in self._DISTRIBUTIONS:
            raise ConfigError(f"VarianceScaling: distribution must be one of "
                              f"{self._DISTRIBUTIONS}, got {distribution!r}")
        if distribution == "normal":        # Keras 2.0-2.2 spelling
            distribution = "truncated_normal"
        self.scale = scale
        self.mode = mode
        self.distribution = distribution

    def __call__(self, shape, dtype=None, **kwargs):
        shape = _shape(shape)
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, fan)
        rng = self._rng()
        if self.distribution == "truncated_normal":
            # std of a standard normal truncated to (-2, 2)
            out = _truncated_normal(rng, shape, 0.0, math.sqrt(scale) / .87962566103423978)
        elif self.distribution == "untruncated_normal":
            out = rng.normal(0.0, math.sqrt(scale), size=shape)
        else:
            limit = math.sqrt(3.0 * scale)
            out = rng.uniform(-limit, limit, size=shape)
        return out.astype(_dtype(dtype))

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


def _fixed_variance_scaling(name, scale, mode, distribution, doc):
    class _Fixed(VarianceScaling):
        __doc__ = doc

        def __init__(self, seed=None):
            super().__init__(scale=scale, mode=mode, distribution=distribution, seed=seed)

        def get_config(self):
            return {"seed": self.seed}

    _Fixed.__name__ = _Fixed.__qualname__ = name
    return _Fixed


GlorotUniform = _fixed_variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform",
                                        "Uniform in +-sqrt(6 / (fan_in + fan_out)).")
GlorotNormal = _fixed_variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                                       "Truncated normal, std sqrt(2 / (fan_in + fan_out)).")
HeUniform = _fixed_variance_scaling("HeUniform", 2.0, "fan_in", "uniform",
                                    "Uniform in +-sqrt(6 / fan_in).")
HeNormal = _fixed_variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal",
                                   "Truncated normal, std sqrt(2 / fan_in).")
LecunUniform = _fixed_variance_scaling("LecunUniform", 1.0, "fan_in", "uniform",
                                       "Uniform in +-sqrt(3 / fan_in).")
LecunNormal = _fixed_variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal",
                                      "Truncated normal, std sqrt(1 / fan_in).")


class Orthogonal(_Seeded):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal sample, times gain;
    shapes with more than two dims are flattened to (prod(shape[:-1]), shape[-1])."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = gain

    def __call__(self, shape, dtype=None, **kwargs):
        shape = _shape(shape)
        if len(shape) < 2:
            raise ShapeError(f"Orthogonal initializer needs a shape of rank >= 2, got {shape}")
        num_rows = int(np.prod(shape[:-1]))
        num_cols = shape[-1]
        flat = (max(num_cols, num_rows), min(num_cols, num_rows))
        a = self._rng().normal(0.0, 1.0, size=flat)
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if num_rows < num_cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """gain * identity matrix (2-D shapes only; rectangular allowed)."""

    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None, **kwargs):
        shape = _shape(shape)
        if len(shape) != 2:
            raise ShapeError(f"Identity initializer needs a 2-D shape, got {shape}")
        return (self.gain * np.eye(*shape)).astype(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain}


_CLASSES = [Zeros, Ones, Constant, RandomUniform, RandomNormal, TruncatedNormal,
            VarianceScaling, GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform,
            LecunNormal, Orthogonal, Identity]
for _cls in _CLASSES:
    INITIALIZERS.register(_cls.__name__, _cls)
_ser.register_all(INITIALIZERS, {
    ("zeros", "zero"): Zeros, ("ones", "one"): Ones, "constant": Constant,
    ("random_uniform", "uniform"): RandomUniform, ("random_normal", "normal"): RandomNormal,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal, "identity": Identity,
})

# Keras 2 module-level aliases
zeros = Zeros
ones = Ones
constant = Constant
uniform = random_uniform = RandomUniform
normal = random_normal = RandomNormal
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
he_uniform = HeUniform
he_normal = HeNormal
lecun_uniform = LecunUniform
lecun_normal = LecunNormal
orthogonal = Orthogonal
identity = Identity


def get(identifier):
    """An initializer from a name ('glorot_uniform'), a config dict, an instance or a
    callable ``fn(shape, dtype=None)``."""
    return _ser.deserialize(identifier, INITIALIZERS, "initializer", base_class=Initializer)


def serialize(initializer):
    return _ser.serialize(initializer, INITIALIZERS)


def deserialize(config, custom_objects=None):
    return _ser.deserialize(config, INITIALIZERS, "initializer", base_class=Initializer,
                            custom_objects=custom_objects)

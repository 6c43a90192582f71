"""Where modelkit's unseeded random draws come from: numpy's global state, as in Keras 2.

In Keras 2 an initializer, dropout layer or `fit(shuffle=True)` without a seed drew its seed
from numpy's global state, so `np.random.seed(1337)` at the top of a script made the run
reproducible. `global_rng()` keeps that: it returns a Generator-like object whose every draw
comes from numpy's global `RandomState` (so it follows `np.random.seed`, and like Keras 2 it
advances numpy's global stream). Layers and initializers built with `seed=` use their own
`numpy.random.Generator` instead and never touch the global state.

`set_random_seed(seed)` seeds numpy's global state and Python's `random`: one call makes a
whole run reproducible (the same as calling `np.random.seed` and `random.seed`).
"""

import math
import random as _py_random

import numpy as np

__all__ = ["global_rng", "set_random_seed"]


# From this many values on, a PCG64 Generator seeded from numpy's global state draws faster
# than the legacy MT19937 functions (which win for small draws: no generator to set up).
_BULK = 1 << 14


def _bulk(size):
    if size is None:
        return False
    return (size if isinstance(size, (int, np.integer)) else math.prod(size)) >= _BULK


def _generator():
    """A Generator seeded from (and advancing) numpy's global state."""
    return np.random.default_rng(np.random.randint(2 ** 63, dtype=np.int64))


class NumpyGlobalRandom:
    """The `numpy.random.Generator` methods modelkit draws with, every draw a function of
    numpy's global state: small draws use the global RandomState, large ones (and any other
    Generator method) a Generator seeded from it."""

    @staticmethod
    def random(size=None, dtype=np.float64, out=None):
        if _bulk(size):
            return _generator().random(size, dtype=dtype, out=out)
        return _deliver(np.random.random_sample(size), size, dtype, out)

    @staticmethod
    def standard_normal(size=None, dtype=np.float64, out=None):
        if _bulk(size):
            return _generator().standard_normal(size, dtype=dtype, out=out)
        return _deliver(np.random.standard_normal(size), size, dtype, out)

    @staticmethod
    def normal(loc=0.0, scale=1.0, size=None):
        return (_generator() if _bulk(size) else np.random).normal(loc, scale, size)

    @staticmethod
    def uniform(low=0.0, high=1.0, size=None):
        return (_generator() if _bulk(size) else np.random).uniform(low, high, size)

    @staticmethod
    def integers(low, high=None, size=None, dtype=np.int64, endpoint=False):
        if _bulk(size):
            return _generator().integers(low, high, size=size, dtype=dtype, endpoint=endpoint)
        if high is None:
            low, high = 0, low
        return np.random.randint(low, high + 1 if endpoint else high, size=size, dtype=dtype)

    @staticmethod
    def permutation(x):
        return np.random.permutation(x)

    @staticmethod
    def shuffle(x):
        np.random.shuffle(x)

    def __getattr__(self, name):
        if name.startswith("_"):        # hasattr(rng, "_keras_history") and the like: no
            raise AttributeError(name)  # draw (nor a Generator made) to answer them
        return getattr(_generator(), name)

    def __repr__(self):
        return "NumpyGlobalRandom()"


def _deliver(values, size, dtype, out):
    """Generator's `dtype=` / `out=` conventions for a float64 draw."""
    r = np.asarray(values).astype(dtype, copy=False)
    if out is not None:
        out[...] = r
        return out
    return r if size is not None else r[()]


_GLOBAL = NumpyGlobalRandom()


def global_rng():
    """The random source of every unseeded draw in modelkit (numpy's global state)."""
    return _GLOBAL


def set_random_seed(seed):
    """Seed numpy's global state and Python's `random` (what unseeded draws follow)."""
    seed = int(seed)
    np.random.seed(seed % (2 ** 32))
    _py_random.seed(seed)

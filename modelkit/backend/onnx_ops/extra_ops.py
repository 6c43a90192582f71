"""Backend ops that ONNX needs and Keras layers did not: `erf` and `take` (gather on any axis).

Registered in the one backend op registry (`engine.OPS`); gradient-checked in
tests/test_onnx_import_ops_grad.py.
"""

import math

import numpy as np

from ..engine import defop
from ..nn_ops import erf as _erf_values


@defop("erf")
def _erf(x):
    return _erf_values(x), (x,)


@_erf.defvjp
def _(g, s, needs):
    (x,) = s
    return (g * (2.0 / math.sqrt(math.pi)) * np.exp(-x * x),)


@defop("take")
def _take(params, indices, axis=0):
    """np.take(params, indices, axis) with negative indices counted from the end (ONNX
    Gather); the gradient scatters back along `axis` (indices get none)."""
    idx = np.where(indices < 0, indices + params.shape[axis], indices)
    return np.take(params, idx, axis=axis), (params.shape, idx, axis)


@_take.defvjp
def _(g, s, needs):
    shape, idx, axis = s
    out = np.zeros(shape, dtype=g.dtype)
    moved = np.moveaxis(out, axis, 0)                       # view: writes land in `out`
    gi = np.moveaxis(g, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
    np.add.at(moved, idx.reshape(-1), gi.reshape((idx.size,) + moved.shape[1:]))
    return (out, None)

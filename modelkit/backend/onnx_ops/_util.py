"""Small helpers shared by the ONNX op implementations."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError, UnsupportedError
from ...onnx_spec import ONNX_DTYPES, dtype_named
from ..tape import OPS, apply
from ..tensor import Tensor, as_array



def np_dtype(onnx_type):
    try:
        return dtype_named(ONNX_DTYPES[int(onnx_type)])
    except KeyError:
        raise UnsupportedError(f"ONNX tensor type {onnx_type} is not supported (supported: "
                               f"{sorted(ONNX_DTYPES.values())})") from None


def op(name, *inputs, **attrs):
    """Run the registered backend op `name` (recorded on the tape when it matters)."""
    return apply(OPS.get(name), *inputs, **attrs)


def const(value, dtype=None):
    """An untracked constant tensor."""
    return Tensor(np.asarray(value, dtype=dtype))


def like(x, value):
    """A constant with x's dtype."""
    return Tensor(np.asarray(value, dtype=x.dtype))


def values(t):
    """The numpy value of a tensor used as static data (shapes, axes, indices)."""
    return as_array(t.value if isinstance(t, Tensor) else t)


def ints(t):
    return [int(v) for v in np.asarray(values(t)).reshape(-1)]


def is_float(x):
    return np.issubdtype(x.dtype, np.floating)


def axis_of(axis, rank, what="axis"):
    axis = int(axis)
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{what} {axis} is out of range for a tensor of rank {rank}")
    return axis % max(rank, 1)


def unbroadcast_static(shape_a, shape_b):
    """numpy broadcasting of two concrete shapes, with a ShapeError naming both."""
    try:
        return np.broadcast_shapes(tuple(shape_a), tuple(shape_b))
    except ValueError:
        raise ShapeError(f"shapes {tuple(shape_a)} and {tuple(shape_b)} do not broadcast "
                         "(ONNX multidirectional broadcasting)") from None



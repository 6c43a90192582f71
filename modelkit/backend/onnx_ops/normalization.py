"""Normalisation ONNX ops beyond Batch/Instance/LayerNormalization: RMSNormalization,
GroupNormalization, MeanVarianceNormalization and LpNormalization (differentiable)."""

from __future__ import annotations

import numpy as np

from . import onnx_op
from ._util import axis_of, like, op


def _stashed(x, attrs):
    """float16 inputs compute in float32 when stash_type is 1 (the default), as ONNX says."""
    if x.dtype == np.float16 and int(attrs.get("stash_type", 1)) == 1:
        return op("cast", x, dtype=np.float32)
    return x


@onnx_op("RMSNormalization")
def rms_normalization(inputs, attrs, ctx):
    x, scale = inputs
    xs = _stashed(x, attrs)
    axis = axis_of(attrs.get("axis", -1), x.ndim, "RMSNormalization axis")
    ms = op("mean", op("square", xs), axis=tuple(range(axis, x.ndim)), keepdims=True)
    eps = float(attrs.get("epsilon", 1e-5))
    y = op("divide", xs, op("sqrt", op("add", ms, like(ms, eps))))
    if y.dtype != x.dtype:
        y = op("cast", y, dtype=x.dtype)
    return op("multiply", y, scale)


@onnx_op("GroupNormalization")
def group_normalization(inputs, attrs, ctx):
    """Opset 21: scale and bias per channel; statistics over each group of channels."""
    x, scale, bias = inputs
    xs = _stashed(x, attrs)
    n, c = x.shape[:2]
    groups = int(attrs["num_groups"])
    grouped = op("reshape", xs, shape=(n, groups, -1))
    mean = op("mean", grouped, axis=2, keepdims=True)
    centred = op("subtract", grouped, mean)
    var = op("mean", op("square", centred), axis=2, keepdims=True)
    eps = float(attrs.get("epsilon", 1e-5))
    y = op("divide", centred, op("sqrt", op("add", var, like(var, eps))))
    y = op("reshape", y, shape=tuple(x.shape))
    if y.dtype != x.dtype:
        y = op("cast", y, dtype=x.dtype)
    per_channel = (c,) + (1,) * (x.ndim - 2)
    if scale.shape != (c,):         # opset 18 form: one scale/bias per group
        reps = c // groups
        scale = op("reshape", op("repeat", scale, repeats=reps, axis=0), shape=(c,))
        bias = op("reshape", op("repeat", bias, repeats=reps, axis=0), shape=(c,))
    return op("add", op("multiply", y, op("reshape", scale, shape=per_channel)),
              op("reshape", bias, shape=per_channel))


@onnx_op("MeanVarianceNormalization")
def mean_variance_normalization(inputs, attrs, ctx):
    """(X - E[X]) / sqrt(E[(X - E[X])^2]) over `axes` (default N, H, W); the function body's
    epsilon 1e-9 inside the square root."""
    (x,) = inputs
    axes = tuple(axis_of(a, x.ndim, "MeanVarianceNormalization axis")
                 for a in attrs.get("axes", [0, 2, 3]))
    mean = op("mean", x, axis=axes, keepdims=True)
    centred = op("subtract", x, mean)
    var = op("subtract", op("mean", op("square", x), axis=axes, keepdims=True),
             op("square", mean))
    return op("divide", centred, op("sqrt", op("add", var, like(var, 1e-9))))


@onnx_op("LpNormalization")
def lp_normalization(inputs, attrs, ctx):
    """x / ||x||_p along `axis` (p 1 or 2); a zero norm gives 0."""
    (x,) = inputs
    axis = axis_of(attrs.get("axis", -1), x.ndim, "LpNormalization axis")
    p = int(attrs.get("p", 2))
    if p == 1:
        norm = op("sum", op("abs", x), axis=axis, keepdims=True)
    elif p == 2:
        norm = op("sqrt", op("sum", op("square", x), axis=axis, keepdims=True))
    else:
        from ...errors import UnsupportedError
        raise UnsupportedError(f"LpNormalization with p={p} (ONNX allows 1 or 2)")
    zero = np.asarray(norm.value) == 0
    safe = op("where", zero, like(norm, 1.0), norm) if zero.any() else norm
    y = op("divide", x, safe)
    return op("where", np.broadcast_to(zero, y.shape), like(y, 0.0), y) if zero.any() else y

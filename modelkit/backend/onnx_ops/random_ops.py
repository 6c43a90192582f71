"""Random ONNX ops: Bernoulli, RandomNormalLike, RandomUniformLike, Multinomial. Each call
draws afresh (numpy's global generator), or from a generator seeded with `seed` when the
node has one (then every call draws the same values). The draws carry no gradient: their
values do not depend on the input's values (Bernoulli's and Multinomial's are integers or
0/1). The importer never folds them into constants."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from . import onnx_op
from ._util import const, np_dtype, values


def _generator(attrs):
    seed = attrs.get("seed")
    return np.random if seed is None else np.random.default_rng(int(float(seed)))


def _dtype(attrs, x, default=None):
    if int(attrs.get("dtype", 0)):
        return np_dtype(attrs["dtype"])
    return np.dtype(default) if default is not None else x.dtype


@onnx_op("Bernoulli")
def bernoulli(inputs, attrs, ctx):
    """1 with probability p (the input), else 0, in `dtype` (the input's by default)."""
    p = np.asarray(values(inputs[0]), np.float64)
    draw = _generator(attrs).random(p.shape) < p
    return const(draw.astype(_dtype(attrs, inputs[0])))


@onnx_op("RandomNormalLike")
def random_normal_like(inputs, attrs, ctx):
    x = inputs[0]
    draw = _generator(attrs).standard_normal(tuple(x.shape)) * float(attrs.get("scale", 1.0)) \
        + float(attrs.get("mean", 0.0))
    return const(draw.astype(_dtype(attrs, x)))


@onnx_op("RandomUniformLike")
def random_uniform_like(inputs, attrs, ctx):
    x = inputs[0]
    low, high = float(attrs.get("low", 0.0)), float(attrs.get("high", 1.0))
    draw = low + (high - low) * _generator(attrs).random(tuple(x.shape))
    return const(draw.astype(_dtype(attrs, x)))


@onnx_op("Multinomial")
def multinomial(inputs, attrs, ctx):
    """sample_size class indices per row of unnormalised log-probabilities (batch, classes)."""
    logits = np.asarray(values(inputs[0]), np.float64)
    if logits.ndim != 2:
        raise ShapeError(f"Multinomial takes (batch, classes) log-probabilities, not "
                         f"{logits.shape}")
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    n = int(attrs.get("sample_size", 1))
    u = _generator(attrs).random((logits.shape[0], n))
    picks = np.minimum((u[:, :, None] > cdf[:, None, :]).sum(axis=2), logits.shape[1] - 1)
    return const(picks.astype(_dtype(attrs, inputs[0], default=np.int32)))

"""ONNX loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (differentiable in
the scores/log-probabilities and the class weights; labels are integer data)."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError, UnsupportedError
from ...onnx_spec import text
from . import onnx_op
from ._util import const, op, values


def _nll(logp, target, weight, attrs):
    """-logp[n, target[n, ...], ...] * weight[target], reduced as `reduction` says; targets
    equal to ignore_index add nothing (and no weight to the mean's denominator)."""
    labels = np.asarray(values(target)).astype(np.int64)
    if logp.ndim < 2 or labels.shape != (logp.shape[0],) + tuple(logp.shape[2:]):
        raise ShapeError(f"loss: target shape {labels.shape} does not match input shape "
                         f"{tuple(logp.shape)} (expected (N, d1, ...) for (N, C, d1, ...))")
    ignore = attrs.get("ignore_index")
    keep = np.ones(labels.shape, bool) if ignore is None else labels != int(ignore)
    safe = np.where(keep, labels, 0)
    if np.any((safe < 0) | (safe >= logp.shape[1])):
        raise ShapeError(f"loss: a target is outside the {logp.shape[1]} classes")
    picked = op("take_along", logp, safe[:, None], axis=1)
    picked = op("reshape", picked, shape=labels.shape)
    if weight is not None:
        w = op("multiply", op("take", weight, safe, axis=0), const(keep.astype(logp.dtype)))
    else:
        w = const(keep.astype(logp.dtype))
    loss = op("negative", op("multiply", picked, w))
    reduction = text(attrs.get("reduction"), "mean")
    if reduction == "none":
        return loss
    total = op("sum", loss)
    if reduction == "sum":
        return total
    if reduction != "mean":
        raise UnsupportedError(f"loss reduction {reduction!r} (expected none, sum or mean)")
    return op("divide", total, op("sum", w))


@onnx_op("NegativeLogLikelihoodLoss")
def negative_log_likelihood_loss(inputs, attrs, ctx):
    logp, target = inputs[:2]
    weight = inputs[2] if len(inputs) > 2 else None
    return _nll(logp, target, weight, attrs)


@onnx_op("SoftmaxCrossEntropyLoss")
def softmax_cross_entropy_loss(inputs, attrs, ctx):
    """NLL of log_softmax(scores) over axis 1; the second output is that log_softmax."""
    scores, labels = inputs[:2]
    weight = inputs[2] if len(inputs) > 2 else None
    logp = op("log_softmax", scores, axis=1)
    loss = _nll(logp, labels, weight, attrs)
    return [loss, logp][:max(ctx.num_outputs, 1)]

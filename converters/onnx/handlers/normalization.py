"""BatchNormalization (inference: moving statistics) and LayerNormalization."""

from __future__ import annotations

import numpy as np

from ..context import LayerUnsupported
from ..registry import export_handler


def _axes(cfg, rank, default):
    axis = cfg.get("axis", default)
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    if rank is None:
        raise LayerUnsupported("the input rank is unknown")
    return sorted(int(a) % rank for a in axes)


def _broadcastable(arr, axes, rank):
    """A parameter reshaped to broadcast over a rank-`rank` input along `axes`. Keras 2
    stores a multi-axis BatchNormalization's parameters full-rank (batch axis included)."""
    if arr.ndim == rank and len(axes) > 1:
        return np.asarray(arr, np.float32)
    shape = [1] * rank
    for a, d in zip(axes, arr.shape if arr.ndim == len(axes) else (arr.size,)):
        shape[a] = d
    return np.asarray(arr, np.float32).reshape(shape)


@export_handler("BatchNormalization", keeps_mask=True)
def batch_norm(node, ctx, inputs):
    """y = x * s + t with s = gamma / sqrt(var + eps), t = beta - mean * s, folded at export."""
    cfg = node.config
    x = inputs[0]
    axes = _axes(cfg, x.rank, -1)
    ws = list(ctx.weights(node))
    gamma = ws.pop(0) if cfg.get("scale", True) else None
    beta = ws.pop(0) if cfg.get("center", True) else None
    mean, var = ws[0], ws[1]
    eps = float(cfg.get("epsilon", 1e-3))

    def scale():
        s = (1.0 if gamma is None else gamma.astype(np.float64)) / np.sqrt(var.astype(np.float64) + eps)
        return _broadcastable(np.broadcast_to(s, mean.shape), axes, x.rank)

    def shift():
        s = (1.0 if gamma is None else gamma.astype(np.float64)) / np.sqrt(var.astype(np.float64) + eps)
        t = (0.0 if beta is None else beta.astype(np.float64)) - mean.astype(np.float64) * s
        return _broadcastable(np.broadcast_to(t, mean.shape), axes, x.rank)

    y = ctx.op("Mul", [x, ctx.param(node, "scale", scale)], x.shape, hint=node.name)
    return [ctx.op("Add", [y, ctx.param(node, "shift", shift)], x.shape, hint=node.name)]


@export_handler("LayerNormalization", keeps_mask=True)
def layer_norm(node, ctx, inputs):
    """ONNX LayerNormalization (opset >= 17) when the axes are the trailing ones; otherwise
    (or below opset 17) mean/variance decomposition with the same math."""
    cfg = node.config
    x = inputs[0]
    rank = x.rank
    axes = _axes(cfg, rank, -1)
    ws = list(ctx.weights(node))
    gamma = ws.pop(0) if cfg.get("scale", True) else None
    beta = ws.pop(0) if cfg.get("center", True) else None
    eps = float(cfg.get("epsilon", 1e-3))
    norm_shape = tuple(x.shape[a] for a in axes) if x.shape is not None else None
    trailing = axes == list(range(axes[0], rank))
    if ctx.opset >= 17 and trailing and norm_shape is not None and None not in norm_shape:
        g = ctx.param(node, "gamma", lambda: (np.ones(norm_shape, np.float32) if gamma is None
                                               else gamma.astype(np.float32).reshape(norm_shape)))
        ins = [x, g]
        if beta is not None:
            ins.append(ctx.param(node, "beta", lambda: beta.astype(np.float32).reshape(norm_shape)))
        return [ctx.op("LayerNormalization", ins, x.shape, hint=node.name, axis=axes[0],
                       epsilon=eps)]
    mean = ctx.reduce("ReduceMean", x, axes, True)
    d = ctx.op("Sub", [x, mean], x.shape)
    var = ctx.reduce("ReduceMean", ctx.op("Mul", [d, d], x.shape), axes, True)
    std = ctx.op("Sqrt", [ctx.op("Add", [var, ctx.scalar(eps)], var.shape)], var.shape)
    y = ctx.op("Div", [d, std], x.shape)
    if gamma is not None:
        y = ctx.op("Mul", [y, ctx.param(node, "gamma_b", lambda: _broadcastable(gamma, axes, rank))],
                   x.shape)
    if beta is not None:
        y = ctx.op("Add", [y, ctx.param(node, "beta_b", lambda: _broadcastable(beta, axes, rank))],
                   x.shape)
    return [ctx.op("Identity", [y], x.shape, hint=node.name)]


def _kept_axes_array(value, bshape):
    """Normalization's statistic (a number or one per kept position) in float32, broadcast."""
    arr = np.asarray(value, np.float32)
    if arr.size == int(np.prod(bshape)) and arr.size > 1:
        return arr.reshape(bshape)
    return np.broadcast_to(arr, bshape)


def _kept_shape(cfg_axis, rank):
    """The broadcast shape mask of Normalization's kept axes (None: none kept)."""
    if cfg_axis is None:
        return []
    return _axes({"axis": cfg_axis}, rank, -1)


@export_handler("Normalization", keeps_mask=True)
def normalization(node, ctx, inputs):
    """(x - mean) / max(sqrt(variance), 1e-7), or its inverse, with constant statistics."""
    cfg = node.config
    x = ctx.cast(inputs[0], "float32")
    keep = _kept_shape(cfg.get("axis", [-1]), x.rank)
    if any(x.shape[a] is None for a in keep):
        raise LayerUnsupported("the kept axes must have known sizes")
    bshape = [x.shape[i] if i in keep else 1 for i in range(x.rank)]
    if cfg.get("mean") is not None:
        mean, var = cfg["mean"], cfg["variance"]
    else:
        mean, var = ctx.weights(node)[:2]
    mean_b = _kept_axes_array(mean, bshape)
    std_b = np.maximum(np.sqrt(_kept_axes_array(var, bshape)), np.float32(1e-7))
    m = ctx.param(node, "mean", lambda: np.ascontiguousarray(mean_b))
    s = ctx.param(node, "std", lambda: np.ascontiguousarray(std_b))
    if cfg.get("invert"):
        y = ctx.op("Add", [ctx.op("Mul", [x, s], x.shape), m], x.shape, hint=node.name)
    else:
        y = ctx.op("Div", [ctx.op("Sub", [x, m], x.shape), s], x.shape, hint=node.name)
    return [y]


@export_handler("UnitNormalization", keeps_mask=True)
def unit_normalization(node, ctx, inputs):
    """x / sqrt(max(sum(x**2 over axis), 1e-12))."""
    x = ctx.cast(inputs[0], "float32")
    axes = _axes(node.config, x.rank, -1)
    sq = ctx.reduce("ReduceSumSquare", x, axes, True)
    norm = ctx.op("Sqrt", [ctx.op("Max", [sq, ctx.scalar(1e-12)], sq.shape)], sq.shape)
    return [ctx.op("Div", [x, norm], x.shape, hint=node.name)]


@export_handler("GroupNormalization", keeps_mask=True)
def group_normalization(node, ctx, inputs):
    """Reshape the channels into (groups, channels/groups), normalise per group, reshape
    back to the input's own shape, then gamma/beta."""
    cfg = node.config
    x = inputs[0]
    rank = x.rank
    (axis,) = _axes(cfg, rank, -1)
    dims = list(x.shape[1:])
    channels = x.shape[axis]
    if channels is None or sum(d is None for d in dims) > 1:
        raise LayerUnsupported("the channels and all but one other axis must have known sizes")
    groups = int(cfg.get("groups", 32))
    groups = channels if groups == -1 else groups
    target = [0] + [-1 if d is None else d for d in x.shape[1:axis]] + \
        [groups, channels // groups] + [-1 if d is None else d for d in x.shape[axis + 1:]]
    grouped = ctx.reshape(x, target, None)
    reduce = [i for i in range(1, rank + 1) if i != axis]
    mean = ctx.reduce("ReduceMean", grouped, reduce, True)
    d = ctx.op("Sub", [grouped, mean], None)
    var = ctx.reduce("ReduceMean", ctx.op("Mul", [d, d], None), reduce, True)
    std = ctx.op("Sqrt", [ctx.op("Add", [var, ctx.scalar(float(cfg.get("epsilon", 1e-3)))],
                                 None)], None)
    y = ctx.op("Reshape", [ctx.op("Div", [d, std], None), ctx.shape_of(x)], x.shape)
    ws = list(ctx.weights(node))
    for tag, on, op in (("gamma", cfg.get("scale", True), "Mul"),
                        ("beta", cfg.get("center", True), "Add")):
        if on:
            w = ws.pop(0)
            y = ctx.op(op, [y, ctx.param(node, tag, lambda w=w: _broadcastable(w, [axis], rank))],
                       x.shape)
    return [ctx.op("Identity", [y], x.shape, hint=node.name)]

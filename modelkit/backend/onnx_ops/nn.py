"""Convolution, pooling and normalisation ONNX ops (channels-first, as ONNX defines them).

Padding is made explicit first (auto_pad SAME_UPPER/SAME_LOWER/VALID, `pads`, and the extra
end cells of `ceil_mode`), then the backend's fused channels-first conv/pool ops run 'valid'.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ...errors import UnsupportedError
from ...onnx_spec import conv_geometry, pool_geometry, resize_plan, text
from . import onnx_op
from ._util import const, like, op, values


def _pad_spatial(x, pads, value=0.0):
    if not any(b or e for b, e in pads):
        return x
    return op("pad", x, pad_width=((0, 0), (0, 0)) + tuple(tuple(p) for p in pads),
              constant=value)


def _conv_operands(inputs, attrs):
    """x, W, B (or None), spatial rank, kernel size, and W as the backend's kernel layout
    (ONNX (M, C/g, k1..kn) -> (k1..kn, C/g, M); ConvTranspose's (C, M/g, k..) likewise)."""
    x, w = inputs[:2]
    b = inputs[2] if len(inputs) > 2 else None
    n = w.ndim - 2
    kernel = [int(k) for k in attrs.get("kernel_shape", w.shape[2:])]
    k = op("transpose", w, axes=tuple(range(2, n + 2)) + (1, 0))
    return x, b, n, kernel, k


@onnx_op("Conv")
def conv(inputs, attrs, ctx):
    x, b, n, kernel, k = _conv_operands(inputs, attrs)
    strides, dilations, pads = conv_geometry(x.shape[2:], attrs, kernel)
    return op("conv", _pad_spatial(x, pads), k, b, strides=tuple(strides),
              dilation=tuple(dilations), padding="valid", groups=int(attrs.get("group", 1)),
              channels_first=True)


@onnx_op("ConvTranspose")
def conv_transpose(inputs, attrs, ctx):
    x, b, n, kernel, k = _conv_operands(inputs, attrs)
    groups = int(attrs.get("group", 1))
    strides = [int(s) for s in attrs.get("strides", [1] * n)]
    dilations = [int(d) for d in attrs.get("dilations", [1] * n)]
    out_pad = [int(p) for p in attrs.get("output_padding", [0] * n)]
    auto_pad = text(attrs.get("auto_pad"), "NOTSET")
    spatial = x.shape[2:]
    full = [(L - 1) * s + (k - 1) * d + 1 + op_
            for L, k, s, d, op_ in zip(spatial, kernel, strides, dilations, out_pad)]
    if "output_shape" in attrs or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        want = [int(v) for v in attrs["output_shape"]][-n:] if "output_shape" in attrs \
            else [L * s for L, s in zip(spatial, strides)]
        begins = []
        for f, o in zip(full, want):
            total = f - o
            begins.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
        out_shape = want
    else:
        p = [0] * (2 * n) if auto_pad == "VALID" else [int(v) for v in
                                                         attrs.get("pads", [0] * (2 * n))]
        begins = p[:n]
        out_shape = [f - p[i] - p[i + n] for i, f in enumerate(full)]
    cin = x.shape[1] // groups
    outs = []
    for g in range(groups):
        xg = x if groups == 1 else op("getitem", x, index=(slice(None), slice(g * cin, (g + 1) * cin)))
        kg = k if groups == 1 else op("getitem", k, index=(Ellipsis, slice(g * cin, (g + 1) * cin)))
        outs.append(op("conv_transpose", xg, kg, None, strides=tuple(strides),
                       dilation=tuple(dilations), output_shape=tuple(out_shape),
                       pad_before=tuple(begins), channels_first=True))
    y = outs[0] if groups == 1 else op("concatenate", *outs, axis=1)
    if b is not None:
        y = op("add", y, op("reshape", b, shape=(-1,) + (1,) * n))
    return y


def _dilated_windows(x, kernel, strides, dilations, combine):
    """Every pooling window of the padded (N, C, *spatial) `x` reduced with `combine`
    ("maximum" or "add"): one strided slice per kernel offset, so dilated windows need no
    kernel of their own (and the gradient comes from the slices)."""
    out = [(L - (k - 1) * d - 1) // s + 1
           for L, k, s, d in zip(x.shape[2:], kernel, strides, dilations)]
    acc = None
    for offsets in itertools.product(*(range(k) for k in kernel)):
        index = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (n - 1) * s + 1, s)
            for o, d, s, n in zip(offsets, dilations, strides, out))
        part = op("getitem", x, index=index)
        acc = part if acc is None else op(combine, acc, part)
    return acc


def _pool_windows(x, attrs):
    """kernel, strides, pads, ceil_mode's extra end cells, dilations, and the full padding
    (pads plus the extra cells) of a pooling op over x's spatial axes."""
    kernel = [int(k) for k in attrs["kernel_shape"]]
    strides, pads, extra = pool_geometry(x.shape[2:], attrs, kernel)
    dilations = conv_geometry(x.shape[2:], attrs, kernel)[1]
    full = [(b, e + c) for (b, e), c in zip(pads, extra)]
    return kernel, strides, pads, extra, dilations, full


@onnx_op("MaxPool")
def max_pool(inputs, attrs, ctx):
    (x,) = inputs[:1]
    kernel, strides, pads, extra, dilations, full = _pool_windows(x, attrs)
    low = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    xp = _pad_spatial(x, full, value=low)
    if any(d != 1 for d in dilations):
        y = _dilated_windows(xp, kernel, strides, dilations, "maximum")
    else:
        y = op("pool_max", xp, pool=tuple(kernel), strides=tuple(strides), padding="valid",
               channels_first=True)
    if ctx.num_outputs < 2:
        return y
    return [y, const(_max_indices(np.asarray(values(xp)), x.shape, full, kernel, strides,
                                  dilations, int(attrs.get("storage_order", 0))))]


def _max_indices(xp, shape, pads, kernel, strides, dilations, storage_order):
    """MaxPool's Indices: where each window's (first) maximum sits, as a flat index into the
    unpadded input (row-major, or column-major over the spatial axes for storage_order 1)."""
    spatial = shape[2:]
    out = [(L - (k - 1) * d - 1) // s + 1
           for L, k, s, d in zip(xp.shape[2:], kernel, strides, dilations)]
    best = idx = None
    for offsets in itertools.product(*(range(k) for k in kernel)):
        index = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (n - 1) * s + 1, s)
            for o, d, s, n in zip(offsets, dilations, strides, out))
        part = xp[index]
        coords = [np.arange(n) * s + o * d - b
                  for n, s, o, d, (b, _) in zip(out, strides, offsets, dilations, pads)]
        grids = np.meshgrid(*coords, indexing="ij")
        if storage_order:
            flat = sum(g * int(np.prod(spatial[:i])) for i, g in enumerate(grids))
        else:
            flat = sum(g * int(np.prod(spatial[i + 1:])) for i, g in enumerate(grids))
        if best is None:
            best, idx = part, np.broadcast_to(flat, part.shape).copy()
        else:
            better = part > best
            best = np.where(better, part, best)
            idx = np.where(better, flat, idx)
    n, c = shape[:2]
    base = (np.arange(n)[:, None] * c + np.arange(c)[None, :]) * int(np.prod(spatial))
    return (idx + base.reshape((n, c) + (1,) * len(spatial))).astype(np.int64)


@onnx_op("AveragePool")
def average_pool(inputs, attrs, ctx):
    (x,) = inputs
    kernel, strides, pads, extra, dilations, full = _pool_windows(x, attrs)
    dilated = any(d != 1 for d in dilations)
    if dilated:
        y = _dilated_windows(_pad_spatial(x, full), kernel, strides, dilations, "add")
    else:
        y = op("pool_avg", _pad_spatial(x, full), pool=tuple(kernel), strides=tuple(strides),
               padding="valid", channels_first=True)
    if not any(b or e for b, e in full) and not dilated:
        return y
    # divide by the cells each window covers: the padded ones count when count_include_pad,
    # the ceil_mode extension never does
    include = int(attrs.get("count_include_pad", 0))
    mask = np.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
    if include:
        mask = np.pad(mask, ((0, 0), (0, 0)) + tuple(pads), constant_values=1)
        mask = np.pad(mask, ((0, 0), (0, 0)) + tuple((0, c) for c in extra))
    else:
        mask = np.pad(mask, ((0, 0), (0, 0)) + tuple(full))
    if dilated:         # y holds window sums: divide by the cells each window counts
        return op("divide", y, _dilated_windows(const(mask), kernel, strides, dilations, "add"))
    frac = op("pool_avg", const(mask), pool=tuple(kernel), strides=tuple(strides),
              padding="valid", channels_first=True)
    return op("divide", y, frac)


@onnx_op("LpPool")
def lp_pool(inputs, attrs, ctx):
    """(sum over each window of |x|^p)^(1/p); padded cells add 0."""
    (x,) = inputs
    kernel, strides, _, _, dilations, full = _pool_windows(x, attrs)
    p = float(attrs.get("p", 2))
    powered = op("square", x) if p == 2 else op("power", op("abs", x), like(x, p))
    total = _dilated_windows(_pad_spatial(powered, full), kernel, strides, dilations, "add")
    return op("sqrt", total) if p == 2 else op("power", total, like(total, 1.0 / p))


@onnx_op("GlobalAveragePool")
def global_average_pool(inputs, attrs, ctx):
    (x,) = inputs
    return op("mean", x, axis=tuple(range(2, x.ndim)), keepdims=True)


@onnx_op("GlobalMaxPool")
def global_max_pool(inputs, attrs, ctx):
    (x,) = inputs
    return op("max", x, axis=tuple(range(2, x.ndim)), keepdims=True)


def _per_channel(t, rank):
    return op("reshape", t, shape=(-1,) + (1,) * (rank - 2))


@onnx_op("BatchNormalization")
def batch_normalization(inputs, attrs, ctx):
    """Inference form (running statistics), or with training_mode=1 the batch's statistics
    and the updated running ones as outputs 2-3 (`input * momentum + batch * (1 -
    momentum)`, population variance), as ONNX defines it. Imported BatchNormalization nodes
    usually become Keras BatchNormalization layers, which also train their statistics."""
    x, scale, bias, mean, var = inputs[:5]
    r = x.ndim
    if attrs.get("training_mode", 0):
        return _batch_norm_training(x, scale, bias, mean, var, attrs, ctx)
    if ctx.num_outputs > 1:
        raise UnsupportedError("BatchNormalization's running-statistics outputs need "
                               "training_mode=1")
    return op("batch_norm_inference", x, _per_channel(mean, r), _per_channel(var, r),
              _per_channel(scale, r), _per_channel(bias, r),
              epsilon=float(attrs.get("epsilon", 1e-5)))


def _batch_norm_training(x, scale, bias, mean, var, attrs, ctx):
    r = x.ndim
    axes = (0,) + tuple(range(2, r))
    batch_mean = op("mean", x, axis=axes, keepdims=False)
    centred = op("subtract", x, _per_channel(batch_mean, r))
    batch_var = op("mean", op("square", centred), axis=axes, keepdims=False)
    rstd = op("reciprocal", op("sqrt", op("add", batch_var,
                                          like(batch_var, float(attrs.get("epsilon", 1e-5))))))
    y = op("add", op("multiply", op("multiply", centred, _per_channel(rstd, r)),
                     _per_channel(scale, r)), _per_channel(bias, r))
    m = float(attrs.get("momentum", 0.9))
    running = [op("add", op("multiply", old, like(old, m)), op("multiply", new, like(new, 1 - m)))
               for old, new in ((mean, batch_mean), (var, batch_var))]
    return [y] + running[:max(ctx.num_outputs, 1) - 1]


def _normalize(x, axes, epsilon):
    mean = op("mean", x, axis=axes, keepdims=True)
    centred = op("subtract", x, mean)
    var = op("mean", op("square", centred), axis=axes, keepdims=True)
    rstd = op("reciprocal", op("sqrt", op("add", var, like(var, epsilon))))
    return op("multiply", centred, rstd), mean, rstd


@onnx_op("InstanceNormalization")
def instance_normalization(inputs, attrs, ctx):
    x, scale, bias = inputs
    r = x.ndim
    y, _, _ = _normalize(x, tuple(range(2, r)), float(attrs.get("epsilon", 1e-5)))
    return op("add", op("multiply", y, _per_channel(scale, r)), _per_channel(bias, r))


@onnx_op("LayerNormalization")
def layer_normalization(inputs, attrs, ctx):
    x, scale = inputs[:2]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = int(attrs.get("axis", -1)) % x.ndim
    y, mean, rstd = _normalize(x, tuple(range(axis, x.ndim)), float(attrs.get("epsilon", 1e-5)))
    y = op("multiply", y, scale)
    if bias is not None:
        y = op("add", y, bias)
    return [y, mean, rstd][:max(ctx.num_outputs, 1)]


@onnx_op("LRN")
def lrn(inputs, attrs, ctx):
    (x,) = inputs
    size = int(attrs["size"])
    alpha, beta = float(attrs.get("alpha", 1e-4)), float(attrs.get("beta", 0.75))
    bias = float(attrs.get("bias", 1.0))
    sq = op("square", x)
    lo, hi = (size - 1) // 2, int(math.ceil((size - 1) / 2))
    padded = op("pad", sq, pad_width=((0, 0), (lo, hi)) + ((0, 0),) * (x.ndim - 2), constant=0.0)
    c = x.shape[1]
    total = op("getitem", padded, index=(slice(None), slice(0, c)))
    for i in range(1, size):
        total = op("add", total, op("getitem", padded, index=(slice(None), slice(i, i + c))))
    denom = op("power", op("add", op("multiply", total, like(x, alpha / size)), like(x, bias)),
               like(x, beta))
    return op("divide", x, denom)




# -- Resize ------------------------------------------------------------------------------------

@onnx_op("Resize")
def resize(inputs, attrs, ctx):
    """Separable: each resized axis is a gather (nearest) or a matrix product (linear, cubic;
    tf_crop_and_resize adds extrapolation_value where the output falls outside)."""
    x = inputs[0]
    roi = values(inputs[1]) if len(inputs) > 1 and inputs[1] is not None and \
        values(inputs[1]).size else None
    scales = values(inputs[2]) if len(inputs) > 2 and inputs[2] is not None and \
        values(inputs[2]).size else None
    sizes = values(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else None
    y = x
    for axis, kind, data in resize_plan(x.shape, attrs, scales, sizes, roi):
        if kind == "take":
            y = op("take", y, data, axis=axis)
            continue
        w, added = data if kind == "affine" else (data, None)
        moved = op("transpose", y, axes=_move_last(y.ndim, axis))
        moved = op("matmul", moved, const(w.T.astype(y.dtype)))
        if added is not None:
            moved = op("add", moved, const(added.astype(y.dtype)))
        y = op("transpose", moved, axes=_move_back(y.ndim, axis))
    return y


def _move_last(rank, axis):
    return tuple(i for i in range(rank) if i != axis) + (axis,)


def _move_back(rank, axis):
    order = _move_last(rank, axis)
    return tuple(order.index(i) for i in range(rank))


# -- configuration checks (run by the importer before anything is emitted) --------------------



@onnx_op("CausalConvWithState")
def causal_conv_with_state(inputs, attrs, ctx):
    """Depthwise causal Conv1D over (batch, channels, length) continuing from past_state (the
    last k-1 inputs of the previous call; zeros when absent), optionally SiLU; the second
    output is the new state."""
    x, w = inputs[:2]
    b = inputs[2] if len(inputs) > 2 else None
    past = inputs[3] if len(inputs) > 3 else None
    if x.ndim != 3 or w.ndim != 3:
        raise UnsupportedError(f"CausalConvWithState takes (batch, channels, length) input and "
                               f"(channels, 1, k) weight, not {x.shape} and {w.shape}")
    k = w.shape[2]
    if past is None:
        past = const(np.zeros((x.shape[0], x.shape[1], k - 1), x.dtype))
    padded = op("concatenate", past, x, axis=2)
    y = conv([padded, w] + ([b] if b is not None else []), {"group": x.shape[1]}, ctx)
    act = text(attrs.get("activation"), "none")
    if act in ("silu", "swish"):
        y = op("multiply", y, op("sigmoid", y))
    elif act != "none":
        raise UnsupportedError(f"CausalConvWithState activation {act!r}")
    state = op("getitem", padded, index=(Ellipsis, slice(padded.shape[2] - (k - 1), None)))
    return [y, state][:max(ctx.num_outputs, 1)]

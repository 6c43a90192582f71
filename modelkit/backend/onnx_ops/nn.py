"""Convolution, pooling and normalisation ONNX ops (channels-first, as ONNX defines them).

Padding is made explicit first (auto_pad SAME_UPPER/SAME_LOWER/VALID, `pads`, and the extra
end cells of `ceil_mode`), then the backend's fused channels-first conv/pool ops run 'valid'.
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import UnsupportedError
from . import onnx_check, onnx_op
from ._util import const, like, op, text, values


def conv_geometry(spatial, attrs, kernel):
    """-> (strides, dilations, [(pad_begin, pad_end)] per spatial dim) for Conv/pools.
    `spatial` (the input's spatial dims) is only read for auto_pad SAME_*."""
    n = len(kernel)
    strides = [int(s) for s in attrs.get("strides", [1] * n)]
    dilations = [int(d) for d in attrs.get("dilations", [1] * n)]
    auto_pad = text(attrs.get("auto_pad"), "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for L, k, s, d in zip(spatial, kernel, strides, dilations):
            out = -(-L // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - L, 0)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
    elif auto_pad == "VALID":
        pads = [(0, 0)] * n
    else:
        p = [int(v) for v in attrs.get("pads", [0] * (2 * n))]
        pads = list(zip(p[:n], p[n:]))
    return strides, dilations, pads


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


def pool_geometry(spatial, attrs, kernel):
    """-> (strides, pads, ceil_extra): explicit pads and the end cells ceil_mode adds."""
    strides, dilations, pads = conv_geometry(spatial, attrs, kernel)
    if any(d != 1 for d in dilations):
        raise UnsupportedError(f"pooling with dilations {dilations} is not supported")
    ceil_extra = []
    for L, k, s, (b, e) in zip(spatial, kernel, strides, pads):
        span = L + b + e - k
        if int(attrs.get("ceil_mode", 0)):
            out = -(-span // s) + 1
            if (out - 1) * s >= L + b:          # the last window must start inside
                out -= 1
        else:
            out = span // s + 1
        ceil_extra.append(max((out - 1) * s + k - (L + b + e), 0))
    return strides, pads, ceil_extra


@onnx_op("MaxPool")
def max_pool(inputs, attrs, ctx):
    (x,) = inputs[:1]
    if ctx.num_outputs > 1:
        raise UnsupportedError("MaxPool's Indices output is not supported")
    kernel = [int(k) for k in attrs["kernel_shape"]]
    strides, pads, extra = pool_geometry(x.shape[2:], attrs, kernel)
    full = [(b, e + c) for (b, e), c in zip(pads, extra)]
    low = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    xp = _pad_spatial(x, full, value=low)
    return op("pool_max", xp, pool=tuple(kernel), strides=tuple(strides), padding="valid",
              channels_first=True)


@onnx_op("AveragePool")
def average_pool(inputs, attrs, ctx):
    (x,) = inputs
    kernel = [int(k) for k in attrs["kernel_shape"]]
    strides, pads, extra = pool_geometry(x.shape[2:], attrs, kernel)
    full = [(b, e + c) for (b, e), c in zip(pads, extra)]
    y = op("pool_avg", _pad_spatial(x, full), pool=tuple(kernel), strides=tuple(strides),
           padding="valid", channels_first=True)
    if not any(b or e for b, e in full):
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
    frac = op("pool_avg", const(mask), pool=tuple(kernel), strides=tuple(strides),
              padding="valid", channels_first=True)
    return op("divide", y, frac)


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
    """Inference form (running statistics). Imported BatchNormalization nodes usually
    become Keras BatchNormalization layers, which also train their statistics."""
    if attrs.get("training_mode", 0) or ctx.num_outputs > 1:
        raise UnsupportedError("BatchNormalization in training mode (training_mode=1 or the "
                               "running-statistics outputs) is not supported")
    x, scale, bias, mean, var = inputs[:5]
    r = x.ndim
    return op("batch_norm_inference", x, _per_channel(mean, r), _per_channel(var, r),
              _per_channel(scale, r), _per_channel(bias, r),
              epsilon=float(attrs.get("epsilon", 1e-5)))


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

def _source_coords(out_len, in_len, scale, mode):
    """ONNX Resize coordinate_transformation_mode: output index -> input coordinate."""
    x = np.arange(out_len, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_len > 1 else np.zeros(out_len)
    if mode == "align_corners":
        length = in_len * scale
        return x * (in_len - 1) / (length - 1) if length > 1 else np.zeros(out_len)
    if mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / (in_len * scale))
        return offset + (x + 0.5) / scale - 0.5
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    raise UnsupportedError(f"Resize coordinate_transformation_mode {mode!r} is not supported")


def resize_plan(in_shape, attrs, scales=None, sizes=None):
    """Per resized axis: (axis, "take", indices) for nearest or (axis, "matmul", (out, in)
    weights) for linear, from the static input shape (ONNX Resize, opset 11+)."""
    mode = text(attrs.get("mode"), "nearest")
    coord = text(attrs.get("coordinate_transformation_mode"), "half_pixel")
    nearest = text(attrs.get("nearest_mode"), "round_prefer_floor")
    policy = text(attrs.get("keep_aspect_ratio_policy"), "stretch")
    if mode not in ("nearest", "linear") or attrs.get("antialias", 0):
        raise UnsupportedError(f"Resize mode {mode!r} (or antialias) is not supported")
    rank = len(in_shape)
    axes = [int(a) % rank for a in attrs.get("axes", range(rank))]
    if sizes is not None and policy != "stretch":
        ratios = [int(sizes[k]) / int(in_shape[a]) for k, a in enumerate(axes)]
        common = min(ratios) if policy == "not_larger" else max(ratios)
        scales, sizes = [common] * len(axes), None
    plan = []
    for k, a in enumerate(axes):
        if in_shape[a] is None:             # an unknown dim (import time) must stay as it is
            if sizes is not None or float(scales[k]) != 1.0:
                raise UnsupportedError(f"Resize of axis {a}, whose length is unknown")
            continue
        n = int(in_shape[a])
        if sizes is not None:
            out = int(sizes[k])
            scale = out / n
        elif policy != "stretch":
            scale = float(scales[k])
            out = int(np.round(n * scale))
        else:
            scale = float(scales[k])
            out = int(np.floor(n * scale))
        if out == n and scale == 1.0:
            continue
        src = _source_coords(out, n, scale, coord)
        if mode == "nearest":
            rounders = {"round_prefer_floor": lambda v: np.ceil(v - 0.5),
                        "round_prefer_ceil": lambda v: np.floor(v + 0.5),
                        "floor": np.floor, "ceil": np.ceil}
            idx = np.clip(rounders[nearest](src), 0, n - 1).astype(np.int64)
            plan.append((a, "take", idx))
        else:
            src = np.clip(src, 0, n - 1)
            lo = np.floor(src).astype(np.int64)
            hi = np.minimum(lo + 1, n - 1)
            w = np.zeros((out, n))
            np.add.at(w, (np.arange(out), lo), 1.0 - (src - lo))
            np.add.at(w, (np.arange(out), hi), src - lo)
            plan.append((a, "matmul", w))
    return plan


@onnx_op("Resize")
def resize(inputs, attrs, ctx):
    x = inputs[0]
    scales = values(inputs[2]) if len(inputs) > 2 and inputs[2] is not None and \
        values(inputs[2]).size else None
    sizes = values(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else None
    y = x
    for axis, kind, data in resize_plan(x.shape, attrs, scales, sizes):
        if kind == "take":
            y = op("take", y, data, axis=axis)
        else:
            moved = op("transpose", y, axes=_move_last(y.ndim, axis))
            moved = op("matmul", moved, const(data.T.astype(y.dtype)))
            y = op("transpose", moved, axes=_move_back(y.ndim, axis))
    return y


def _move_last(rank, axis):
    return tuple(i for i in range(rank) if i != axis) + (axis,)


def _move_back(rank, axis):
    order = _move_last(rank, axis)
    return tuple(order.index(i) for i in range(rank))


# -- configuration checks (run by the importer before anything is emitted) --------------------

@onnx_check("MaxPool", "AveragePool")
def _pool_check(attrs, used):
    if any(int(d) != 1 for d in attrs.get("dilations", [])):
        return f"pooling with dilations {list(attrs['dilations'])}"
    if len(used) > 1 and used[1]:
        return "MaxPool's Indices output"
    return None


@onnx_check("BatchNormalization")
def _bn_check(attrs, used):
    if attrs.get("training_mode", 0) or any(used[1:]):
        return "training_mode=1 / the running-statistics outputs"
    return None


@onnx_check("Resize")
def _resize_check(attrs, used):
    mode = text(attrs.get("mode"), "nearest")
    coord = text(attrs.get("coordinate_transformation_mode"), "half_pixel")
    if mode not in ("nearest", "linear") or attrs.get("antialias", 0):
        return f"mode {mode!r}" + (" with antialias" if attrs.get("antialias", 0) else "")
    if coord not in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                     "tf_half_pixel_for_nn", "half_pixel_symmetric"):
        return f"coordinate_transformation_mode {coord!r}"
    return None

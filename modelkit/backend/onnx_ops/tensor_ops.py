"""Shape and data-movement ONNX ops, reductions, MatMul/Gemm, Dropout and constants."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from .. import functions
from . import onnx_op
from ..tape import OPS
from ...onnx_spec import text
from ._util import axis_of, const, ints, is_float, like, op, values
from .extra_ops import einsum_plan

# -- shapes ---------------------------------------------------------------------------------


def _reshape(x, shape):
    shape = tuple(int(d) for d in shape)
    if x.shape == shape:
        return x
    if not is_float(x):
        return const(values(x).reshape(shape))
    return op("reshape", x, shape=shape)


def onnx_reshape_target(in_shape, target, allowzero=0):
    """ONNX Reshape: 0 copies the input dim (unless allowzero), one -1 is inferred."""
    out = [in_shape[i] if (d == 0 and not allowzero) else d for i, d in enumerate(target)]
    if out.count(-1) > 1:
        raise ShapeError(f"Reshape target {list(target)} has more than one -1")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        total = int(np.prod(in_shape))
        if known == 0 or total % known:
            raise ShapeError(f"cannot reshape {tuple(in_shape)} to {list(target)}")
        out[out.index(-1)] = total // known
    if int(np.prod(out)) != int(np.prod(in_shape)):
        raise ShapeError(f"cannot reshape {tuple(in_shape)} ({int(np.prod(in_shape))} values) "
                         f"to {out}")
    return out


@onnx_op("Reshape")
def reshape(inputs, attrs, ctx):
    x, shape = inputs
    return _reshape(x, onnx_reshape_target(x.shape, ints(shape), attrs.get("allowzero", 0)))


@onnx_op("Flatten")
def flatten(inputs, attrs, ctx):
    (x,) = inputs
    axis = int(attrs.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    return _reshape(x, (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:]))))


@onnx_op("Transpose")
def transpose(inputs, attrs, ctx):
    (x,) = inputs
    perm = [int(p) for p in attrs.get("perm", list(range(x.ndim))[::-1])]
    if not is_float(x):
        return const(np.transpose(values(x), perm))
    return op("transpose", x, axes=tuple(perm))


@onnx_op("Concat")
def concat(inputs, attrs, ctx):
    xs = [x for x in inputs if x is not None]
    axis = axis_of(attrs["axis"], xs[0].ndim, "Concat axis")
    if not all(is_float(x) for x in xs):
        return const(np.concatenate([values(x) for x in xs], axis=axis))
    return op("concatenate", *xs, axis=axis)


def _axes_arg(inputs, attrs, index=1):
    if len(inputs) > index and inputs[index] is not None:
        return ints(inputs[index])
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    return None


@onnx_op("Squeeze")
def squeeze(inputs, attrs, ctx):
    x = inputs[0]
    axes = _axes_arg(inputs, attrs)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = {axis_of(a, x.ndim, "Squeeze axis") for a in axes}
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"Squeeze: axis {a} of shape {x.shape} is not 1")
    return _reshape(x, [d for i, d in enumerate(x.shape) if i not in axes])


@onnx_op("Unsqueeze")
def unsqueeze(inputs, attrs, ctx):
    x = inputs[0]
    axes = _axes_arg(inputs, attrs)
    rank = x.ndim + len(axes)
    axes = sorted(axis_of(a, rank, "Unsqueeze axis") for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return _reshape(x, shape)


@onnx_op("Shape")
def shape(inputs, attrs, ctx):
    dims = np.array(inputs[0].shape, dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end")
    return const(dims[slice(int(start), None if end is None else int(end))])


@onnx_op("Size")
def size(inputs, attrs, ctx):
    return const(np.int64(int(np.prod(inputs[0].shape))))


@onnx_op("Gather")
def gather(inputs, attrs, ctx):
    data, indices = inputs
    axis = axis_of(attrs.get("axis", 0), data.ndim, "Gather axis")
    idx = values(indices).astype(np.int64)
    n = data.shape[axis]
    if np.any((idx < -n) | (idx >= n)):
        raise ShapeError(f"Gather: indices out of range [-{n}, {n - 1}] on axis {axis}")
    if not is_float(data):
        return const(np.take(values(data), np.where(idx < 0, idx + n, idx), axis=axis))
    return op("take", data, idx, axis=axis)


@onnx_op("Slice")
def slice_(inputs, attrs, ctx):
    x, starts, ends = inputs[:3]
    axes = ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None \
        else list(range(len(ints(starts))))
    steps = ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(axes)
    index = [slice(None)] * x.ndim
    for a, st, en, sp in zip(axes, ints(starts), ints(ends), steps):
        if sp == 0:
            raise ShapeError("Slice: a step of 0 is not allowed")
        index[axis_of(a, x.ndim, "Slice axis")] = slice(st, en, sp)
    return _getitem(x, tuple(index))


def _getitem(x, index):
    if not is_float(x):
        return const(values(x)[index])
    return op("getitem", x, index=index)


@onnx_op("Split")
def split(inputs, attrs, ctx):
    x = inputs[0]
    axis = axis_of(attrs.get("axis", 0), x.ndim, "Split axis")
    n = x.shape[axis]
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = ints(inputs[1])
    elif "split" in attrs:
        sizes = [int(s) for s in attrs["split"]]
    else:
        parts = int(attrs.get("num_outputs", ctx.num_outputs))
        chunk = -(-n // parts)
        sizes = [min(chunk, n - i * chunk) for i in range(parts)]
    if sum(sizes) != n:
        raise ShapeError(f"Split sizes {sizes} do not add up to {n} (axis {axis})")
    outs, start = [], 0
    for s in sizes:
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, start + s)
        outs.append(_getitem(x, tuple(index)))
        start += s
    return outs


@onnx_op("Tile")
def tile(inputs, attrs, ctx):
    x, reps = inputs
    if not is_float(x):
        return const(np.tile(values(x), ints(reps)))
    return op("tile", x, reps=tuple(ints(reps)))


@onnx_op("Expand")
def expand(inputs, attrs, ctx):
    x, shape = inputs
    target = np.broadcast_shapes(tuple(x.shape), tuple(ints(shape)))
    if not is_float(x):
        return const(np.broadcast_to(values(x), target).copy())
    return op("broadcast_to", x, shape=target)


@onnx_op("Pad")
def pad(inputs, attrs, ctx):
    x = inputs[0]
    mode = attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None \
        else [int(p) for p in attrs.get("pads", [])]
    value = values(inputs[2]).item() if len(inputs) > 2 and inputs[2] is not None \
        and values(inputs[2]).size else float(attrs.get("value", 0.0))
    axes = ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(x.ndim))
    k = len(axes)
    widths = [[0, 0] for _ in range(x.ndim)]
    for i, a in enumerate(axes):
        widths[axis_of(a, x.ndim, "Pad axis")] = [pads[i], pads[i + k]]
    # negative pads crop first
    crop = tuple(slice(-b if b < 0 else 0, (x.shape[i] + e) if e < 0 else None)
                 for i, (b, e) in enumerate(widths))
    if any(b < 0 or e < 0 for b, e in widths):
        x = _getitem(x, crop)
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    if mode == "constant":
        if not is_float(x):
            return const(np.pad(values(x), widths, constant_values=value))
        return op("pad", x, pad_width=tuple(widths), constant=value)
    np_mode = {"reflect": "reflect", "edge": "edge", "wrap": "wrap"}.get(mode)
    if np_mode is None:
        raise ShapeError(f"Pad: unknown mode {mode!r} (constant, reflect, edge, wrap)")
    for axis, (b, e) in enumerate(widths):       # index gathers: differentiable for any mode
        if b or e:
            idx = np.pad(np.arange(x.shape[axis]), (b, e), mode=np_mode)
            x = op("take", x, idx, axis=axis) if is_float(x) else \
                const(np.take(values(x), idx, axis=axis))
    return x


# -- constants --------------------------------------------------------------------------------

@onnx_op("Constant")
def constant(inputs, attrs, ctx):
    for key, dtype in (("value", None), ("value_float", np.float32),
                       ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return const(np.asarray(attrs[key], dtype=dtype))
    raise ShapeError(f"Constant has none of value, value_float(s), value_int(s): {sorted(attrs)}")


@onnx_op("ConstantOfShape")
def constant_of_shape(inputs, attrs, ctx):
    value = np.asarray(attrs.get("value", np.zeros(1, np.float32)))
    return const(np.full(ints(inputs[0]), value.reshape(-1)[0], dtype=value.dtype))


@onnx_op("Range")
def range_(inputs, attrs, ctx):
    start, limit, delta = (values(t) for t in inputs)
    return const(np.arange(start, limit, delta).astype(np.asarray(start).dtype))


# -- reductions --------------------------------------------------------------------------------

def _reduce_axes(inputs, attrs, x):
    axes = _axes_arg(inputs, attrs)
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return None
        return tuple(range(x.ndim))
    return tuple(sorted({axis_of(a, x.ndim, "reduce axis") for a in axes}))


def _empty_reduction(kind, x, axes, keep):
    """ONNX's value of a max/min/log-sum-exp over an empty set: the identity of the
    reduction (-inf / +inf, the integer type's extremes, False / True for bool)."""
    dtype = np.dtype(x.dtype)
    low = kind in ("max", "logsumexp")
    if dtype == np.bool_:
        ident = not low
    elif np.issubdtype(dtype, np.integer):
        ident = np.iinfo(dtype).min if low else np.iinfo(dtype).max
    else:
        ident = -np.inf if low else np.inf
    shape = [1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes]
    return const(np.full(shape, ident, dtype=dtype))


def _reducer(kind):
    def fn(inputs, attrs, ctx):
        x = inputs[0]
        axes = _reduce_axes(inputs, attrs, x)
        if axes is None:
            return x
        keep = bool(attrs.get("keepdims", 1))
        if kind in ("max", "min", "logsumexp") and any(x.shape[a] == 0 for a in axes):
            return _empty_reduction(kind, x, axes, keep)
        if not is_float(x):
            np_fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min,
                     "prod": np.prod}[kind if kind in ("sum", "mean", "max", "min", "prod")
                                      else "sum"]
            return const(np_fn(values(x), axis=axes, keepdims=keep).astype(x.dtype))
        if kind in ("sum", "mean", "max", "min", "prod", "logsumexp"):
            return op(kind, x, axis=axes, keepdims=keep)
        if kind == "sum_square":
            return op("sum", op("square", x), axis=axes, keepdims=keep)
        if kind == "l1":
            return op("sum", op("abs", x), axis=axes, keepdims=keep)
        if kind == "l2":
            return op("sqrt", op("sum", op("square", x), axis=axes, keepdims=keep))
        return op("log", op("sum", x, axis=axes, keepdims=keep))           # log_sum
    return fn


for _onnx, _kind in {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max",
                     "ReduceMin": "min", "ReduceProd": "prod", "ReduceLogSumExp": "logsumexp",
                     "ReduceSumSquare": "sum_square", "ReduceL1": "l1", "ReduceL2": "l2",
                     "ReduceLogSum": "log_sum"}.items():
    onnx_op(_onnx)(_reducer(_kind))


def _arg(kind):
    def fn(inputs, attrs, ctx):
        x = values(inputs[0])
        axis = axis_of(attrs.get("axis", 0), x.ndim, f"{kind} axis")
        if attrs.get("select_last_index", 0):
            flipped = np.flip(x, axis=axis)
            idx = x.shape[axis] - 1 - getattr(np, kind)(flipped, axis=axis)
        else:
            idx = getattr(np, kind)(x, axis=axis)
        if attrs.get("keepdims", 1):
            idx = np.expand_dims(idx, axis)
        return const(idx.astype(np.int64))
    return fn


onnx_op("ArgMax")(_arg("argmax"))
onnx_op("ArgMin")(_arg("argmin"))

# -- products -----------------------------------------------------------------------------------


@onnx_op("MatMul")
def matmul(inputs, attrs, ctx):
    a, b = inputs
    if not is_float(a):
        return const(np.matmul(values(a), values(b)))
    return op("matmul", a, b)


@onnx_op("Gemm")
def gemm(inputs, attrs, ctx):
    a, b = inputs[:2]
    c = inputs[2] if len(inputs) > 2 else None
    if attrs.get("transA", 0):
        a = op("transpose", a, axes=(1, 0))
    if attrs.get("transB", 0):
        b = op("transpose", b, axes=(1, 0))
    y = op("matmul", a, b)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if alpha != 1.0:
        y = op("multiply", y, like(y, alpha))
    if c is not None:
        y = op("add", y, op("multiply", c, like(c, beta)) if beta != 1.0 else c)
    return y


# -- dropout ------------------------------------------------------------------------------------

@onnx_op("Dropout")
def dropout(inputs, attrs, ctx):
    x = inputs[0]
    ratio = float(values(inputs[1])) if len(inputs) > 1 and inputs[1] is not None \
        else float(attrs.get("ratio", 0.5))
    train_flag = len(inputs) > 2 and inputs[2] is not None and bool(values(inputs[2]))
    if (ctx.training or train_flag) and ratio > 0:
        y = functions.dropout(x, ratio)
        mask = values(y) != 0
    else:
        y, mask = x, np.ones(x.shape, dtype=bool)
    return [y, const(mask)] if ctx.num_outputs > 1 else y


__all__ = ["onnx_reshape_target"]


# -- more indexing and products ----------------------------------------------------------------

@onnx_op("GatherElements")
def gather_elements(inputs, attrs, ctx):
    data, indices = inputs
    axis = axis_of(attrs.get("axis", 0), data.ndim, "GatherElements axis")
    idx = values(indices).astype(np.int64)
    if not is_float(data):
        n = data.shape[axis]
        return const(np.take_along_axis(values(data), np.where(idx < 0, idx + n, idx), axis))
    return op("take_along", data, idx, axis=axis)


@onnx_op("TopK")
def top_k(inputs, attrs, ctx):
    x, k = inputs
    axis = axis_of(attrs.get("axis", -1), x.ndim, "TopK axis")
    k = int(values(k).reshape(-1)[0])
    v = values(x)
    if attrs.get("largest", 1):      # descending; ties keep the lower index first
        n = v.shape[axis]
        order = n - 1 - np.flip(np.argsort(np.flip(v, axis), axis=axis, kind="stable"), axis)
    else:
        order = np.argsort(v, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis).astype(np.int64)
    top = op("take_along", x, idx, axis=axis) if is_float(x) else \
        const(np.take_along_axis(v, idx, axis))
    return [top, const(idx)][:max(ctx.num_outputs, 1)]


def _cumulative(name):
    def run(inputs, attrs, ctx):
        x, axis = inputs
        kw = {"axis": axis_of(int(values(axis)), x.ndim, f"{name} axis"),
              "exclusive": bool(attrs.get("exclusive", 0)),
              "reverse": bool(attrs.get("reverse", 0))}
        backend = name.lower()
        if not is_float(x):
            return const(OPS.get(backend).forward(values(x), **kw)[0])
        return op(backend, x, **kw)
    return run


onnx_op("CumSum")(_cumulative("CumSum"))
onnx_op("CumProd")(_cumulative("CumProd"))


@onnx_op("Det")
def det(inputs, attrs, ctx):
    (x,) = inputs
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"Det takes square matrices in the last two axes, not {x.shape}")
    return op("det", x)


@onnx_op("Trilu")
def trilu(inputs, attrs, ctx):
    x = inputs[0]
    k = int(values(inputs[1])) if len(inputs) > 1 and inputs[1] is not None else 0
    rows, cols = x.shape[-2], x.shape[-1]
    keep = np.triu(np.ones((rows, cols), bool), k) if attrs.get("upper", 1) else \
        np.tril(np.ones((rows, cols), bool), k)
    if not is_float(x):
        return const(np.where(keep, values(x), 0).astype(x.dtype))
    return op("multiply", x, const(keep.astype(x.dtype)))


@onnx_op("Einsum")
def einsum(inputs, attrs, ctx):
    """Ellipses become letters of their own (operands broadcast over them) and a repeated
    letter in one operand first takes that operand's diagonal, so the product is a plain
    einsum whose gradient is another einsum."""
    equation = attrs["equation"]
    equation = equation.decode() if isinstance(equation, bytes) else equation
    if not all(is_float(x) for x in inputs):
        return const(np.einsum(equation, *[values(x) for x in inputs]))
    steps, plain = einsum_plan(equation, [x.shape for x in inputs])
    operands = []
    for (shape, diagonal), x in zip(steps, inputs):
        if shape is not None:                       # size-1 axes broadcast
            x = op("broadcast_to", x, shape=shape)
        if diagonal is not None:
            x = op("diagonal", x, spec=diagonal[0], out=diagonal[1])
        operands.append(x)
    return op("einsum", *operands, equation=plain)


def _blocks(inputs, attrs):
    (x,) = inputs
    return (x, int(attrs["blocksize"]), *x.shape, text(attrs.get("mode"), "DCR"))


@onnx_op("DepthToSpace")
def depth_to_space(inputs, attrs, ctx):
    x, b, n, c, h, w, mode = _blocks(inputs, attrs)
    if mode == "DCR":
        t = _reshape(x, (n, b, b, c // (b * b), h, w))
        t = transpose([t], {"perm": [0, 3, 4, 1, 5, 2]}, ctx)
    else:
        t = _reshape(x, (n, c // (b * b), b, b, h, w))
        t = transpose([t], {"perm": [0, 1, 4, 2, 5, 3]}, ctx)
    return _reshape(t, (n, c // (b * b), h * b, w * b))


@onnx_op("SpaceToDepth")
def space_to_depth(inputs, attrs, ctx):
    x, b, n, c, h, w, mode = _blocks(inputs, attrs)
    t = _reshape(x, (n, c, h // b, b, w // b, b))
    perm = [0, 3, 5, 1, 2, 4] if mode == "DCR" else [0, 1, 3, 5, 2, 4]
    t = transpose([t], {"perm": perm}, ctx)
    return _reshape(t, (n, c * b * b, h // b, w // b))


@onnx_op("NonZero")
def non_zero(inputs, attrs, ctx):
    return const(np.array(np.nonzero(values(inputs[0])), dtype=np.int64))


@onnx_op("OneHot")
def one_hot(inputs, attrs, ctx):
    indices, depth, vals = (values(t) for t in inputs)
    depth = int(np.asarray(depth).reshape(-1)[0])
    idx = np.where(indices < 0, indices + depth, indices).astype(np.int64)
    axis = int(attrs.get("axis", -1))
    hot = np.arange(depth) == idx[..., None]
    out = np.where(hot, vals[1], vals[0]).astype(vals.dtype)
    return const(np.moveaxis(out, -1, axis if axis >= 0 else axis + out.ndim))


@onnx_op("ScatterND")
def scatter_nd(inputs, attrs, ctx):
    data, indices, updates = inputs
    reduction = text(attrs.get("reduction"), "none")
    idx = values(indices).astype(np.int64)
    if not (is_float(data) and is_float(updates)):
        return const(OPS.get("scatter_nd").forward(values(data), values(updates), indices=idx,
                                                   reduction=reduction)[0])
    return op("scatter_nd", data, updates, indices=idx, reduction=reduction)


@onnx_op("ScatterElements")
def scatter_elements(inputs, attrs, ctx):
    """ScatterElements as ScatterND with full index tuples along `axis`."""
    data, indices, updates = inputs
    axis = axis_of(attrs.get("axis", 0), data.ndim, "ScatterElements axis")
    idx = values(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    grid = np.indices(idx.shape)
    grid[axis] = idx
    full = np.moveaxis(grid, 0, -1)
    return scatter_nd([data, const(full), updates], attrs, ctx)


@onnx_op("GatherND")
def gather_nd(inputs, attrs, ctx):
    """data at the index tuples in the last axis of `indices`; the first batch_dims axes of
    both are matched entry by entry."""
    data, indices = inputs
    b = int(attrs.get("batch_dims", 0))
    idx = values(indices).astype(np.int64)
    k = idx.shape[-1]
    within = np.asarray(data.shape[b:b + k])
    index = tuple(np.moveaxis(np.where(idx < 0, idx + within, idx), -1, 0))
    batch = tuple(np.arange(n).reshape((-1,) + (1,) * (idx.ndim - 2 - j))
                  for j, n in enumerate(idx.shape[:b]))
    return _getitem(data, batch + index)



"""`BackendOp` nodes: a `modelkit.backend` (K) function applied to symbolic tensors.

Config: `function` (the K function's name) and `arguments` = {"args": [...], "kwargs": {...}}
where `{"__tensor__": i}` stands for the call's i-th input tensor, `{"__array__": ..., "dtype"}`
for a constant array, `{"__slice__": [start, stop, step]}` / `{"__ellipsis__": true}` for
indexing. Each supported function maps to a few ONNX ops; the rest are reported by the
exporter's check (all at once, naming the layer and the function).
"""

from __future__ import annotations

import numpy as np

from modelkit.ir import Node
from modelkit.op_arguments import decode, split_sizes

from ..context import LayerUnsupported, Tensor, broadcast_shape
from ..registry import export_handler
from .activations import ACTIVATIONS, apply_activation



def _as_tensor(ctx, v, like=None):
    if isinstance(v, Tensor):
        return v
    dtype = like.dtype if like is not None and np.dtype(like.dtype).kind == "f" else "float32"
    if isinstance(v, (bool, np.bool_)):
        dtype = "bool"
    arr = np.asarray(v, dtype=dtype)
    if arr.ndim == 0:
        return ctx.scalar(float(arr), dtype=dtype) if dtype != "bool" else ctx.const(arr)
    return ctx.const(arr)


BINARY = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div",
          "maximum": "Max", "minimum": "Min", "pow_": "Pow", "equal": "Equal",
          "greater": "Greater", "greater_equal": "GreaterOrEqual", "less": "Less",
          "less_equal": "LessOrEqual", "logical_and": "And", "logical_or": "Or"}
COMPARE = {"equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
           "logical_and", "logical_or"}
UNARY = {"abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "negative": "Neg",
         "ceil": "Ceil", "floor": "Floor", "round": "Round", "sign": "Sign", "sin": "Sin",
         "cos": "Cos", "logical_not": "Not", "stop_gradient": "Identity",
         "reciprocal": "Reciprocal", "erf": "Erf"}
ACTIVATION_FUNCS = {"tanh", "sigmoid", "softplus", "softsign", "selu", "elu", "gelu", "silu",
                    "swish", "hard_sigmoid", "softmax", "log_softmax"}
REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin",
          "prod": "ReduceProd", "logsumexp": "ReduceLogSumExp"}
OTHER = {"square", "pow", "expm1", "log1p", "relu", "clip", "concatenate", "stack", "reshape",
         "permute_dimensions", "transpose", "expand_dims", "squeeze", "batch_flatten",
         "flatten", "matmul", "dot", "batch_dot", "where", "switch", "getitem", "repeat",
         "repeat_elements", "tile", "zeros_like", "ones_like", "gather", "l2_normalize", "var",
         "std", "cast", "not_equal", "split", "shape", "rsqrt", "einsum", "one_hot", "resize"}
SUPPORTED = set(BINARY) | set(UNARY) | ACTIVATION_FUNCS | set(REDUCE) | OTHER


def _check(node, opset):
    fn = node.config.get("function")
    if fn not in SUPPORTED:
        return (f"backend function {fn!r} has no ONNX mapping (supported: "
                f"{', '.join(sorted(SUPPORTED))})")
    return None


def _axes(axis, rank):
    if axis is None:
        return list(range(rank))
    return [int(a) for a in (axis if isinstance(axis, (list, tuple)) else [axis])]


@export_handler("BackendOp", check=_check)
def backend_op(node, ctx, inputs):
    fn = node.config["function"]
    arguments = node.config.get("arguments") or {}
    args = decode(arguments.get("args", []), inputs)
    kwargs = {k: decode(v, inputs) for k, v in (arguments.get("kwargs") or {}).items()}
    hint = node.name
    out = _emit(fn, ctx, args, kwargs, hint)
    return out if isinstance(out, list) else [out]


def _arg(args, kwargs, i, name, default=None):
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _emit(fn, ctx, args, kwargs, hint):  # noqa: C901 - one table of small cases
    x = _arg(args, kwargs, 0, "x")
    if fn in BINARY or fn == "not_equal":
        y = _arg(args, kwargs, 1, "y")
        like = x if isinstance(x, Tensor) else y
        a, b = _as_tensor(ctx, x, like), _as_tensor(ctx, y, like)
        a, b = _common_float(ctx, a, b)
        shape = broadcast_shape(a.shape, b.shape)
        if fn == "not_equal":
            eq = ctx.op("Equal", [a, b], shape, dtype="bool")
            return ctx.op("Not", [eq], shape, dtype="bool", hint=hint)
        dtype = "bool" if fn in COMPARE else None
        return ctx.op(BINARY[fn], [a, b], shape, dtype=dtype, hint=hint)
    if fn in UNARY:
        return ctx.op(UNARY[fn], [x], x.shape, hint=hint)
    if fn in ACTIVATION_FUNCS:
        opts = {}
        if fn in ("softmax", "log_softmax"):
            opts["axis"] = _arg(args, kwargs, 1, "axis", -1)
        if fn == "gelu":
            opts["approximate"] = bool(_arg(args, kwargs, 1, "approximate", False))
        if fn == "elu":
            alpha = float(_arg(args, kwargs, 1, "alpha", 1.0))
            return ctx.op("Elu", [x], x.shape, hint=hint, alpha=alpha)
        return apply_activation(ctx, x, fn, hint=hint, **opts)
    if fn in REDUCE:
        axis = _arg(args, kwargs, 1, "axis")
        keep = bool(_arg(args, kwargs, 2, "keepdims", False))
        return ctx.reduce(REDUCE[fn], x, _axes(axis, x.rank), keep, hint=hint)
    if fn in ("var", "std"):
        axes = _axes(_arg(args, kwargs, 1, "axis"), x.rank)
        keep = bool(_arg(args, kwargs, 2, "keepdims", False))
        m = ctx.reduce("ReduceMean", x, axes, True)
        d = ctx.op("Sub", [x, m], x.shape)
        v = ctx.reduce("ReduceMean", ctx.op("Mul", [d, d], x.shape), axes, keep,
                       hint=hint if fn == "var" else None)
        return v if fn == "var" else ctx.op("Sqrt", [v], v.shape, hint=hint)
    if fn == "square":
        return ctx.op("Mul", [x, x], x.shape, hint=hint)
    if fn == "pow":
        return ctx.op("Pow", [x, _as_tensor(ctx, _arg(args, kwargs, 1, "a"), x)], x.shape,
                      hint=hint)
    if fn == "expm1":
        return ctx.op("Sub", [ctx.op("Exp", [x], x.shape), ctx.scalar(1.0)], x.shape, hint=hint)
    if fn == "log1p":
        return ctx.op("Log", [ctx.op("Add", [x, ctx.scalar(1.0)], x.shape)], x.shape, hint=hint)
    if fn == "relu":
        from .activations import relu_layer
        cfg = {"negative_slope": float(_arg(args, kwargs, 1, "alpha", 0.0) or 0.0),
               "max_value": _arg(args, kwargs, 2, "max_value"),
               "threshold": float(_arg(args, kwargs, 3, "threshold", 0.0) or 0.0)}
        return relu_layer(Node(hint, "ReLU", cfg), ctx, [x])[0]
    if fn == "clip":
        lo, hi = _arg(args, kwargs, 1, "min_value"), _arg(args, kwargs, 2, "max_value")
        return ctx.op("Clip", [x, None if lo is None else ctx.scalar(float(lo)),
                               None if hi is None else ctx.scalar(float(hi))], x.shape, hint=hint)
    if fn in ("concatenate", "stack"):
        ts = [_as_tensor(ctx, t) for t in x]
        axis = int(_arg(args, kwargs, 1, "axis", -1 if fn == "concatenate" else 0))
        if fn == "stack":
            ts = [ctx.unsqueeze(t, [axis]) for t in ts]
        shape = None
        if all(t.shape is not None for t in ts):
            shape = list(ts[0].shape)
            a = axis % len(shape)
            dims = [t.shape[a] for t in ts]
            shape[a] = None if None in dims else sum(dims)
        return ctx.op("Concat", ts, shape, hint=hint, axis=axis)
    if fn == "reshape":
        dims = list(_arg(args, kwargs, 1, "shape"))
        if any(isinstance(d, Tensor) for d in dims):              # e.g. tf.shape(x)[0]
            return _dynamic_reshape(ctx, x, dims, hint)
        target = [int(d) if d is not None else -1 for d in dims]
        return ctx.reshape(x, target, tuple(None if d == -1 else d for d in target), hint=hint)
    if fn in ("permute_dimensions", "transpose"):
        axes = _arg(args, kwargs, 1, "axes")
        axes = list(range(x.rank))[::-1] if axes is None else list(axes)
        return ctx.transpose(x, axes, hint=hint)
    if fn == "expand_dims":
        axis = int(_arg(args, kwargs, 1, "axis", -1))
        return ctx.unsqueeze(x, [axis], hint=hint)
    if fn == "squeeze":
        return ctx.squeeze(x, [int(_arg(args, kwargs, 1, "axis"))], hint=hint)
    if fn == "batch_flatten":
        return ctx.op("Flatten", [x], None if x.shape is None else (x.shape[0], None), hint=hint,
                      axis=1)
    if fn == "flatten":
        return ctx.reshape(x, [-1], (None,), hint=hint)
    if fn in ("matmul", "dot"):
        y = _as_tensor(ctx, _arg(args, kwargs, 1, "y"), x)
        shape = None if x.shape is None or y.shape is None else x.shape[:-1] + y.shape[-1:]
        if fn == "dot" and y.rank is not None and y.rank > 2:
            raise LayerUnsupported("K.dot with a rank > 2 right operand is not supported")
        return ctx.op("MatMul", [x, y], shape, hint=hint)
    if fn == "batch_dot":
        from .merge import dot
        axes = _arg(args, kwargs, 2, "axes")
        if axes is None:
            axes = [x.rank - 1, _arg(args, kwargs, 1, "y").rank - 2]
        return dot(Node(hint, "Dot", {"axes": axes}), ctx, [x, _arg(args, kwargs, 1, "y")])[0]
    if fn in ("where", "switch"):
        c = _as_tensor(ctx, x)
        a = _as_tensor(ctx, _arg(args, kwargs, 1, "x"))
        b = _as_tensor(ctx, _arg(args, kwargs, 2, "y"), a)
        if np.dtype(c.dtype) != np.bool_:
            c = ctx.cast(c, "bool")
        return ctx.op("Where", [c, a, b], broadcast_shape(c.shape, a.shape, b.shape),
                      dtype=a.dtype, hint=hint)
    if fn == "getitem":
        return _getitem(ctx, x, _arg(args, kwargs, 1, "index"), hint)
    if fn == "shape":
        return ctx.shape_of(x, hint=hint)                          # int64, as K.shape
    if fn == "split":
        return _split(ctx, x, _arg(args, kwargs, 1, "num_or_size_splits"),
                      int(_arg(args, kwargs, 2, "axis", 0)), hint)
    if fn == "repeat":
        n = int(_arg(args, kwargs, 1, "n"))
        u = ctx.unsqueeze(x, [1])
        shape = None if x.shape is None else (x.shape[0], n) + x.shape[1:]
        return ctx.op("Tile", [u, ctx.ints([1, n] + [1] * (x.rank - 1))], shape, hint=hint)
    if fn == "repeat_elements":
        from .conv import _repeat_axis
        rep, axis = int(_arg(args, kwargs, 1, "rep")), int(_arg(args, kwargs, 2, "axis"))
        return _repeat_axis(ctx, x, axis % x.rank, rep, hint)
    if fn == "tile":
        n = _arg(args, kwargs, 1, "n")
        n = [int(v) for v in (n if isinstance(n, (list, tuple)) else [n])]
        return ctx.op("Tile", [x, ctx.ints(n)], None if x.rank is None else (None,) * x.rank,
                      hint=hint)
    if fn in ("zeros_like", "ones_like"):
        v = 0.0 if fn == "zeros_like" else 1.0
        z = ctx.op("Mul", [x, ctx.scalar(0.0)], x.shape)
        return ctx.op("Add", [z, ctx.scalar(v)], x.shape, hint=hint)
    if fn == "gather":
        idx = ctx.cast(_as_tensor(ctx, _arg(args, kwargs, 1, "indices")), "int64")
        shape = None if x.shape is None or idx.shape is None else idx.shape + x.shape[1:]
        return ctx.op("Gather", [x, idx], shape, dtype=x.dtype, hint=hint, axis=0)
    if fn == "l2_normalize":
        axes = _axes(_arg(args, kwargs, 1, "axis"), x.rank)
        sq = ctx.reduce("ReduceSum", ctx.op("Mul", [x, x], x.shape), axes, True)
        sq = ctx.op("Max", [sq, ctx.scalar(1e-12)], sq.shape)
        return ctx.op("Div", [x, ctx.op("Sqrt", [sq], sq.shape)], x.shape, hint=hint)
    if fn == "cast":
        return ctx.cast(x, str(np.dtype(_arg(args, kwargs, 1, "dtype"))), hint=hint)
    if fn == "rsqrt":
        return ctx.op("Reciprocal", [ctx.op("Sqrt", [x], x.shape)], x.shape, hint=hint)
    if fn == "einsum":
        return _einsum(ctx, x, args[1:], hint)
    if fn == "one_hot":
        n = int(_arg(args, kwargs, 1, "num_classes"))
        idx = ctx.cast(_as_tensor(ctx, x), "int64")
        shape = None if idx.shape is None else idx.shape + (n,)
        return ctx.op("OneHot", [idx, ctx.ints([n]), ctx.const(np.array([0, 1], "float32"))],
                      shape, dtype="float32", hint=hint, axis=-1)
    if fn == "resize":
        return _resize(ctx, x, [int(v) for v in _arg(args, kwargs, 1, "size")],
                       _arg(args, kwargs, 2, "interpolation", "bilinear"),
                       _arg(args, kwargs, 3, "data_format"), hint)
    raise LayerUnsupported(f"backend function {fn!r} has no ONNX mapping")


def _common_float(ctx, a, b):
    """A float and an integer operand (`x * tf.shape(x)[-1]`): the integer one cast, as
    numpy promotes it."""
    fa, fb = (np.dtype(t.dtype).kind == "f" for t in (a, b))
    if fa and not fb:
        return a, ctx.cast(b, a.dtype)
    if fb and not fa:
        return ctx.cast(a, b.dtype), b
    return a, b


def _dynamic_reshape(ctx, x, dims, hint):
    """Reshape to sizes some of which are computed tensors: one int64 shape vector."""
    parts = [ctx.reshape(ctx.cast(d, "int64"), [1], (1,)) if isinstance(d, Tensor)
             else ctx.ints([-1 if d is None else int(d)]) for d in dims]
    shape = ctx.op("Concat", parts, (len(dims),), dtype="int64", axis=0)
    return ctx.op("Reshape", [x, shape], (None,) * len(dims), hint=hint)


def _split(ctx, x, parts, axis, hint):
    """tf.split as one ONNX Split (the part sizes need the axis's static length)."""
    n = None if x.shape is None else x.shape[axis]
    if n is None:
        raise LayerUnsupported("split along an axis of unknown length")
    sizes = split_sizes(n, parts)
    split = {"split": sizes} if ctx.opset < 13 else {}
    inputs = [x] if ctx.opset < 13 else [x, ctx.ints(sizes)]
    names = ctx.emit("Split", inputs, n_out=len(sizes), hint=hint, axis=axis, **split)
    a = axis % x.rank
    return [Tensor(nm, tuple(s if i == a else d for i, d in enumerate(x.shape)), x.dtype)
            for nm, s in zip(names, sizes)]


def _getitem(ctx, x, index, hint):
    """Basic indexing: ints, slices and one Ellipsis (no newaxis, no fancy indexing)."""
    idx = list(index) if isinstance(index, (list, tuple)) else [index]
    if x.rank is None:
        raise LayerUnsupported("indexing a tensor of unknown rank")
    if any(i is Ellipsis for i in idx):
        k = idx.index(Ellipsis)
        idx = idx[:k] + [slice(None)] * (x.rank - len(idx) + 1) + idx[k + 1:]
    idx += [slice(None)] * (x.rank - len(idx))
    starts, ends, axes, steps, drop = [], [], [], [], []
    shape = list(x.shape)
    for a, i in enumerate(idx):
        if isinstance(i, slice):
            if i == slice(None):
                continue
            step = 1 if i.step is None else int(i.step)
            big = 2 ** 63 - 1
            start = i.start if i.start is not None else (0 if step > 0 else -1)
            stop = i.stop if i.stop is not None else (big if step > 0 else -big - 1)
            starts.append(int(start)), ends.append(int(stop)), axes.append(a), steps.append(step)
            shape[a] = (len(range(*i.indices(shape[a]))) if shape[a] is not None else None)
        elif isinstance(i, (int, np.integer)):
            i = int(i)
            starts.append(i), ends.append(i + 1 if i != -1 else 2 ** 63 - 1), axes.append(a)
            steps.append(1)
            drop.append(a)
            shape[a] = 1
        else:
            raise LayerUnsupported(f"index {i!r} is not supported (ints, slices and ... are)")
    y = x
    if axes:
        y = ctx.op("Slice", [x, ctx.ints(starts), ctx.ints(ends), ctx.ints(axes),
                             ctx.ints(steps)], tuple(shape))
    if drop:
        y = ctx.squeeze(y, drop)
    return ctx.op("Identity", [y], y.shape, hint=hint)


def _einsum(ctx, equation, operands, hint):
    from modelkit.onnx_spec import einsum_parts
    ins, out = einsum_parts(equation)
    dims = {}
    for t, sub in zip(operands, ins):
        for c, d in zip(sub, t.shape or ()):
            dims.setdefault(c, d)
    shape = tuple(dims.get(c) for c in out)
    return ctx.op("Einsum", list(operands), shape, hint=hint, equation=f"{','.join(ins)}->{out}")


def _resize(ctx, x, size, interpolation, data_format, hint):
    """tf.image.resize as ONNX Resize over the trailing axes of a channels-first tensor
    (channels_last goes through a transpose each way): half-pixel centres for bilinear;
    TensorFlow's nearest, floor((o + 0.5) * in / out), as half_pixel with round_prefer_ceil
    (the same indices; onnxruntime's CUDA Resize got the deprecated `tf_half_pixel_for_nn`
    wrong on an H200, its CPU kernel right). Batch and channels taken at run time."""
    if x.rank not in (3, 4):
        raise LayerUnsupported(f"resize of a rank-{x.rank} tensor")
    last = data_format != "channels_first"
    to_first = [0, x.rank - 1] + list(range(1, x.rank - 1))
    xc = ctx.transpose(x, to_first, hint=hint) if last else x
    sizes = ctx.op("Concat", [ctx.shape_of(xc, 0, 2), ctx.ints(size)], (x.rank,),
                   dtype="int64", axis=0)
    shape = None if xc.shape is None else xc.shape[:2] + tuple(size)
    attrs = ({"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
             if interpolation == "bilinear" else
             {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
              "nearest_mode": "round_prefer_ceil"})
    empty = ctx.const(np.zeros(0, "float32"), hint="empty")
    y = ctx.op("Resize", [xc, empty, empty, sizes], shape, hint=hint, **attrs)
    if not last:
        return y
    return ctx.transpose(y, [0] + list(range(2, x.rank)) + [1], hint=hint)

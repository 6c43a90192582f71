"""Backend ops that ONNX needs and Keras layers did not: `erf`, `take` (gather on any axis),
`cumsum`, `take_along` (GatherElements) and `einsum`.

Registered in the one backend op registry (`engine.OPS`); gradient-checked in
tests/test_onnx_import_ops_grad.py.
"""

import math

import numpy as np

from ...onnx_spec import einsum_parts
from ..tape import defop
from ..nn_ops import erf as _erf_values


@defop("erf")
def _erf(x):
    return _erf_values(x), (x,)


@_erf.defvjp
def _(g, s, needs):
    (x,) = s
    return (g * (2.0 / math.sqrt(math.pi)) * np.exp(-x * x),)


def wrap_negative(indices, n):
    """ONNX index semantics: -1 is the last of n."""
    return np.where(indices < 0, indices + n, indices)


def _indexing_op(name, gather, scatter_add, doc):
    """An op reading `x` at integer `indices` along `axis` (negative ones counted from the
    end); its gradient adds back into the positions read (indices get none)."""
    @defop(name)
    def forward(x, indices, axis=0):
        idx = wrap_negative(indices, x.shape[axis])
        return gather(x, idx, axis), (x.shape, idx, axis)

    @forward.defvjp
    def _(g, s, needs):
        shape, idx, axis = s
        out = np.zeros(shape, dtype=g.dtype)
        scatter_add(out, idx, axis, g)
        return (out, None)
    forward.forward.__doc__ = doc
    return forward


def _take_scatter(out, idx, axis, g):
    moved = np.moveaxis(out, axis, 0)                       # view: writes land in `out`
    gi = np.moveaxis(g, list(range(axis, axis + idx.ndim)), list(range(idx.ndim)))
    np.add.at(moved, idx.reshape(-1), gi.reshape((idx.size,) + moved.shape[1:]))


def _take_along_scatter(out, idx, axis, g):
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    np.add.at(out, tuple(grid), g)


_take = _indexing_op("take", lambda x, i, a: np.take(x, i, axis=a), _take_scatter,
                     "np.take along any axis (ONNX Gather)")
_take_along = _indexing_op("take_along", lambda x, i, a: np.take_along_axis(x, i, axis=a),
                           _take_along_scatter, "np.take_along_axis (ONNX GatherElements)")


def _cumulative(x, axis, exclusive, reverse, accumulate, identity):
    """ONNX CumSum/CumProd: the running `accumulate` along `axis`, inclusive or exclusive
    (shifted by one, starting from `identity`), forward or reverse."""
    y = np.flip(x, axis) if reverse else x
    out = accumulate(y, axis=axis, dtype=x.dtype)
    if exclusive:
        out = np.concatenate([np.full_like(np.take(out, [0], axis=axis), identity),
                              np.take(out, np.arange(out.shape[axis] - 1), axis=axis)], axis)
    return np.flip(out, axis) if reverse else out


@defop("cumsum")
def _cumsum(x, axis=0, exclusive=False, reverse=False):
    """ONNX CumSum: inclusive or exclusive, forward or reverse, along `axis`."""
    return _cumulative(x, axis, exclusive, reverse, np.cumsum, 0), (axis, exclusive, reverse)


@_cumsum.defvjp
def _(g, s, needs):
    axis, exclusive, reverse = s
    return (_cumsum.forward(g, axis=axis, exclusive=exclusive, reverse=not reverse)[0],)


@defop("einsum")
def _einsum(*operands, equation=""):
    """np.einsum; the VJP of each operand is another einsum (broadcast over the indices
    only that operand had)."""
    ins, out = einsum_parts(equation)
    return np.einsum(f"{','.join(ins)}->{out}", *operands), (ins, out, operands)


def einsum_plan(equation, shapes):
    """How an einsum with ellipses, size-1 broadcasting and repeated letters becomes a plain
    one (whose gradient is another einsum): ([(broadcast shape or None, (spec, unique
    letters) for a diagonal or None) per operand], the plain equation). The ONNX Einsum
    handler and K.einsum both follow it."""
    ins, out = einsum_parts(equation, [len(s) for s in shapes])
    sizes = {}
    for spec, shape in zip(ins, shapes):
        for c, n in zip(spec, shape):
            sizes[c] = max(sizes.get(c, 1), n)
    steps, specs = [], []
    for spec, shape in zip(ins, shapes):
        want = tuple(sizes[c] for c in spec)
        diagonal = None
        if len(set(spec)) != len(spec):
            diagonal = (spec, "".join(dict.fromkeys(spec)))
            spec = diagonal[1]
        steps.append((want if tuple(shape) != want else None, diagonal))
        specs.append(spec)
    return steps, ",".join(specs) + "->" + out


@defop("diagonal")
def _diagonal(x, spec="", out=""):
    """np.einsum(f"{spec}->{out}", x) for a spec with repeated letters (a diagonal); its
    VJP writes the gradient back onto that diagonal."""
    return np.einsum(f"{spec}->{out}", x), (x.shape, spec, out)


@_diagonal.defvjp
def _(g, s, needs):
    shape, spec, out = s
    grid = np.indices(g.shape, sparse=True)
    index = tuple(grid[out.index(c)] for c in spec)
    full = np.zeros(shape, dtype=g.dtype)
    full[index] = g
    return (full,)


@_einsum.defvjp
def _(g, s, needs):
    ins, out, operands = s
    grads = []
    for i, need in enumerate(needs):
        if not need:
            grads.append(None)
            continue
        others = [t for k, t in enumerate(ins) if k != i]
        known = set(out) | set("".join(others))
        target = "".join(c for c in ins[i] if c in known)
        spec = ",".join([out] + others) + "->" + target
        gi = np.einsum(spec, g, *[o for k, o in enumerate(operands) if k != i])
        shape = [operands[i].shape[k] if c in known else 1 for k, c in enumerate(ins[i])]
        grads.append(np.broadcast_to(gi.reshape(shape), operands[i].shape).astype(g.dtype))
    return tuple(grads)


def _unary_op(name, fwd, dfdx):
    """A unary op whose derivative is dfdx(x)."""
    @defop(name)
    def op(x):
        return fwd(x), (x,)

    @op.defvjp
    def _(g, s, needs):
        return (g * dfdx(s[0]),)
    return op


TRIG = {
    "tan": (np.tan, lambda x: 1.0 / np.cos(x) ** 2),
    "arcsin": (np.arcsin, lambda x: 1.0 / np.sqrt(1.0 - x * x)),
    "arccos": (np.arccos, lambda x: -1.0 / np.sqrt(1.0 - x * x)),
    "arctan": (np.arctan, lambda x: 1.0 / (1.0 + x * x)),
    "sinh": (np.sinh, np.cosh),
    "cosh": (np.cosh, np.sinh),
    "arcsinh": (np.arcsinh, lambda x: 1.0 / np.sqrt(x * x + 1.0)),
    "arccosh": (np.arccosh, lambda x: 1.0 / np.sqrt(x * x - 1.0)),
    "arctanh": (np.arctanh, lambda x: 1.0 / (1.0 - x * x)),
}
for _name, (_f, _d) in TRIG.items():
    _unary_op(_name, _f, _d)


def _scatter_nd_index(indices, shape):
    """ONNX ScatterND/GatherND index arrays: indices (..., k) address the first k axes."""
    k = indices.shape[-1]
    idx = wrap_negative(indices, np.asarray(shape[:k]))
    return tuple(np.moveaxis(idx, -1, 0))


@defop("scatter_nd")
def _scatter_nd(data, updates, indices=None, reduction="none"):
    """ONNX ScatterND: a copy of `data` with `updates` written (or added/multiplied/max/min)
    at `indices`. Gradients flow to data (where not overwritten) and updates."""
    index = _scatter_nd_index(indices, data.shape)
    out = np.array(data, copy=True)
    if reduction == "add":
        np.add.at(out, index, updates)
    elif reduction == "mul":
        np.multiply.at(out, index, updates)
    elif reduction == "max":
        np.maximum.at(out, index, updates)
    elif reduction == "min":
        np.minimum.at(out, index, updates)
    else:
        out[index] = updates
    return out, (index, reduction, data, updates, out)


@_scatter_nd.defvjp
def _(g, s, needs):
    index, reduction, data, updates, out = s
    if reduction == "none":
        gd = np.array(g, copy=True)
        gd[index] = 0
        return gd, g[index]
    if reduction == "add":
        return g, g[index]
    # mul/max/min: the gradient goes where the value came from
    gd = np.where(out == data, g, 0).astype(g.dtype) if reduction in ("max", "min") else \
        np.asarray(g * out / np.where(data == 0, 1, data), dtype=g.dtype)
    gu = np.where(out[index] == updates, g[index], 0).astype(g.dtype) \
        if reduction in ("max", "min") else np.asarray(g[index] * out[index] /
                                                        np.where(updates == 0, 1, updates))
    return gd, gu


@defop("cumprod")
def _cumprod(x, axis=0, exclusive=False, reverse=False):
    """ONNX CumProd: inclusive or exclusive, forward or reverse, along `axis`."""
    return _cumulative(x, axis, exclusive, reverse, np.cumprod, 1), (x, axis, exclusive, reverse)


@_cumprod.defvjp
def _(g, s, needs):
    """d out_i / d x_j = product of the other factors of out_i (no division, so zeros are
    fine): for each j, the factors before j times the running products after it."""
    x, axis, exclusive, reverse = s
    xs = np.moveaxis(np.flip(x, axis) if reverse else x, axis, 0)
    gs = np.moveaxis(np.flip(g, axis) if reverse else g, axis, 0)
    n = xs.shape[0]
    grad = np.zeros_like(xs)
    before = np.ones_like(xs[0])
    for j in range(n):
        first = j + 1 if exclusive else j        # the outputs x_j is a factor of
        after = before.copy()
        total = np.zeros_like(before)
        for i in range(first, n):
            if i > j and not (exclusive and i == j + 1):
                after = after * xs[i - 1 if exclusive else i]
            total = total + gs[i] * after
        grad[j] = total
        before = before * xs[j]
    grad = np.moveaxis(grad, 0, axis)
    return ((np.flip(grad, axis) if reverse else grad).astype(g.dtype),)


@defop("det")
def _det(x):
    """Determinant of the last two axes; VJP g * det * inv(x)^T."""
    d = np.linalg.det(x)
    return d.astype(x.dtype), (x, d)


@_det.defvjp
def _(g, s, needs):
    x, d = s
    inv_t = np.swapaxes(np.linalg.inv(x), -1, -2)
    return ((np.asarray(g * d)[..., None, None] * inv_t).astype(x.dtype),)

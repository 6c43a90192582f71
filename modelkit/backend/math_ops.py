"""Elementwise math, comparisons, reductions and matrix products."""

import numpy as np

from . import ahead, native, nn_ops, norm_fast, parallel
from .streams import leaf_gradient, worth_side
from .tape import apply, defop, normalize_axis, restore_reduced, unbroadcast
from .layout import empty_ordered_like

# ---------------------------------------------------------------------------------------
# binary elementwise (numpy broadcasting)


@defop("add")
def _add(a, b):
    if (a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
            and a.nbytes >= 2 * parallel.BLOCK_BYTES):
        if a.dtype == np.float32 and "relu" in ahead.wanted():
            out = np.empty_like(a)             # a's memory order; blocks on the threads
            relu = np.empty_like(a)            # a relu reads it: each block's relu too,

            def block(o, x, y, r):             # while the block is in cache
                np.add(x, y, out=o)
                nn_ops.relu_into(r, o)
            parallel.elementwise(block, out, a, b, relu)
        else:
            relu = None
            out = parallel.add(a, b)
        ahead.produced(out, None if relu is None else {"relu": relu})
    else:
        out = a + b
    if a.shape == b.shape == out.shape:        # the gradient goes to both unchanged
        norm_fast.note_sum(out, a, b)
    return out, (a.shape, b.shape)


@_add.defvjp
def _(g, s, needs):
    return (unbroadcast(g, s[0]) if needs[0] else None,
            unbroadcast(g, s[1]) if needs[1] else None)


@defop("subtract")
def _subtract(a, b):
    return a - b, (a.shape, b.shape)


@_subtract.defvjp
def _(g, s, needs):
    return (unbroadcast(g, s[0]) if needs[0] else None,
            unbroadcast(-g, s[1]) if needs[1] else None)


@defop("multiply")
def _multiply(a, b):
    return a * b, (a, b)


@_multiply.defvjp
def _(g, s, needs):
    a, b = s
    return (unbroadcast(g * b, a.shape) if needs[0] else None,
            unbroadcast(g * a, b.shape) if needs[1] else None)


@defop("divide")
def _divide(a, b):
    return a / b, (a, b)


@_divide.defvjp
def _(g, s, needs):
    a, b = s
    return (unbroadcast(g / b, a.shape) if needs[0] else None,
            unbroadcast(-g * a / (b * b), b.shape) if needs[1] else None)


@defop("power")
def _power(a, b):
    out = np.power(a, b)
    return out, (a, b, out)


@_power.defvjp
def _(g, s, needs):
    a, b, out = s
    ga = gb = None
    if needs[0]:
        ga = unbroadcast(g * b * np.power(a, b - 1), a.shape)
    if needs[1]:
        with np.errstate(divide="ignore", invalid="ignore"):
            loga = np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0).astype(out.dtype)
        gb = unbroadcast(g * out * loga, b.shape)
    return ga, gb


def _select_binary(name, pick_first):
    @defop(name)
    def op(a, b):
        out = pick_first(a, b)
        return out, (a, b)

    @op.defvjp
    def _(g, s, needs):
        a, b = s
        mask = (a >= b) if name == "maximum" else (a <= b)
        return (unbroadcast(np.where(mask, g, 0).astype(g.dtype), a.shape) if needs[0] else None,
                unbroadcast(np.where(mask, 0, g).astype(g.dtype), b.shape) if needs[1] else None)
    return op


_maximum = _select_binary("maximum", np.maximum)
_minimum = _select_binary("minimum", np.minimum)

# ---------------------------------------------------------------------------------------
# unary elementwise


def _unary(name, fwd, dfdx_from):
    """Register a unary op whose derivative is computed from (x, y) by `dfdx_from`."""
    @defop(name)
    def op(x):
        y = fwd(x)
        return y, (x, y)

    @op.defvjp
    def _(g, s, needs):
        return (g * dfdx_from(*s),)
    return op


_negative = _unary("negative", np.negative, lambda x, y: -np.ones_like(x))
_rsqrt = _unary("rsqrt", lambda x: np.reciprocal(np.sqrt(x)), lambda x, y: -0.5 * y * y * y)
_exp = _unary("exp", np.exp, lambda x, y: y)
_log = _unary("log", np.log, lambda x, y: 1.0 / x)
_log1p = _unary("log1p", np.log1p, lambda x, y: 1.0 / (1.0 + x))
_expm1 = _unary("expm1", np.expm1, lambda x, y: y + 1.0)
_sqrt = _unary("sqrt", np.sqrt, lambda x, y: 0.5 / y)
_square = _unary("square", np.square, lambda x, y: 2.0 * x)
_abs = _unary("abs", np.abs, lambda x, y: np.sign(x))
_sin = _unary("sin", np.sin, lambda x, y: np.cos(x))
_cos = _unary("cos", np.cos, lambda x, y: -np.sin(x))


@defop("tanh")
def _tanh(x):
    y = np.tanh(x)
    return y, (y,)


@_tanh.defvjp
def _(g, s, needs):
    (y,) = s
    if g.shape == y.shape and native.takes(g, y):
        return (native.tanh_grad(g, y),)  # one C pass, the same numbers
    d = np.multiply(y, y)                 # g * (1 - y^2), in one buffer
    np.subtract(1, d, out=d)
    np.multiply(g, d, out=d)
    return (d,)


_reciprocal = _unary("reciprocal", np.reciprocal, lambda x, y: -y * y)


def _no_grad(name, fn):
    @defop(name, differentiable=False)
    def op(*xs, **attrs):
        return fn(*xs, **attrs), None
    return op


_sign = _no_grad("sign", np.sign)
_round = _no_grad("round", np.round)
_floor = _no_grad("floor", np.floor)
_ceil = _no_grad("ceil", np.ceil)
_equal = _no_grad("equal", np.equal)
_not_equal = _no_grad("not_equal", np.not_equal)
_greater = _no_grad("greater", np.greater)
_greater_equal = _no_grad("greater_equal", np.greater_equal)
_less = _no_grad("less", np.less)
_less_equal = _no_grad("less_equal", np.less_equal)
_logical_and = _no_grad("logical_and", np.logical_and)
_logical_or = _no_grad("logical_or", np.logical_or)
_logical_not = _no_grad("logical_not", np.logical_not)
_argmax = _no_grad("argmax", lambda x, axis=-1: np.argmax(x, axis=axis))
_argmin = _no_grad("argmin", lambda x, axis=-1: np.argmin(x, axis=axis))


@defop("clip")
def _clip(x, lo=None, hi=None):
    return np.clip(x, lo, hi), (x, lo, hi)


@_clip.defvjp
def _(g, s, needs):
    x, lo, hi = s
    keep = np.ones(x.shape, dtype=bool)
    if lo is not None:
        keep &= x >= lo
    if hi is not None:
        keep &= x <= hi
    return (g * keep,)


@defop("cast")
def _cast(x, dtype=None):
    return x.astype(dtype, copy=False), (x.dtype,)


@_cast.defvjp
def _(g, s, needs):
    (src,) = s
    return (g.astype(src) if np.issubdtype(src, np.floating) else None,)


@defop("where")
def _where(cond, a, b):
    return np.where(cond, a, b), (cond, a.shape, b.shape)


@_where.defvjp
def _(g, s, needs):
    cond, ashape, bshape = s
    zero = np.zeros((), g.dtype)
    return (None,
            unbroadcast(np.where(cond, g, zero), ashape) if needs[1] else None,
            unbroadcast(np.where(cond, zero, g), bshape) if needs[2] else None)


@defop("stop_gradient", differentiable=False)
def _stop_gradient(x):
    return x, None


# ---------------------------------------------------------------------------------------
# reductions


@defop("sum")
def _sum(x, axis=None, keepdims=False):
    ax = normalize_axis(axis, x.ndim)
    return np.sum(x, axis=ax, keepdims=keepdims), (x.shape, ax, keepdims)


@_sum.defvjp
def _(g, s, needs):
    shape, ax, keepdims = s
    return (np.array(restore_reduced(g, shape, ax, keepdims)),)


@defop("mean")
def _mean(x, axis=None, keepdims=False):
    ax = normalize_axis(axis, x.ndim)
    n = x.size if ax is None else int(np.prod([x.shape[a] for a in ax]))
    return np.mean(x, axis=ax, keepdims=keepdims), (x.shape, ax, keepdims, n, x.strides)


@_mean.defvjp
def _(g, s, needs):
    shape, ax, keepdims, n, strides = s
    # laid out in memory like x (e.g. channels-first memory behind a channels-last global
    # average pooling), so the ops before read their gradient in their own order
    out = empty_ordered_like(shape, strides, g.dtype)
    np.copyto(out, restore_reduced(g / np.asarray(n, g.dtype), shape, ax, keepdims))
    return (out,)


def _extreme(name, fn):
    @defop(name)
    def op(x, axis=None, keepdims=False):
        ax = normalize_axis(axis, x.ndim)
        out = fn(x, axis=ax, keepdims=keepdims)
        return out, (x, ax, keepdims, out)

    @op.defvjp
    def _(g, s, needs):
        x, ax, keepdims, out = s
        full = restore_reduced(out, x.shape, ax, keepdims)
        mask = (x == full)
        count = mask.sum(axis=ax, keepdims=True)
        return (restore_reduced(g, x.shape, ax, keepdims) * mask / count,)
    return op


_max = _extreme("max", np.max)
_min = _extreme("min", np.min)


@defop("prod")
def _prod(x, axis=None, keepdims=False):
    ax = normalize_axis(axis, x.ndim)
    out = np.prod(x, axis=ax, keepdims=keepdims)
    return out, (x, ax, keepdims, out)


@_prod.defvjp
def _(g, s, needs):
    x, ax, keepdims, out = s
    full = restore_reduced(out, x.shape, ax, keepdims)
    return (restore_reduced(g, x.shape, ax, keepdims) * full / x,)


@defop("logsumexp")
def _logsumexp(x, axis=None, keepdims=False):
    ax = normalize_axis(axis, x.ndim)
    m = np.max(x, axis=ax, keepdims=True)
    e = np.exp(x - m)
    ssum = e.sum(axis=ax, keepdims=True)
    out = np.log(ssum) + m
    soft = e / ssum
    return (out if keepdims else np.squeeze(out, axis=ax)), (x.shape, ax, keepdims, soft)


@_logsumexp.defvjp
def _(g, s, needs):
    shape, ax, keepdims, soft = s
    return (restore_reduced(g, shape, ax, keepdims) * soft,)


# ---------------------------------------------------------------------------------------
# matrix products


@defop("matmul")
def _matmul(a, b):
    return np.matmul(a, b), (a, b)


@_matmul.defvjp
def _(g, s, needs):
    a, b = s
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    ga = gb = None
    if needs[0]:
        ga = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
    if needs[1]:
        if a2.ndim > 2 and b2.ndim == 2:   # batched activations times a weight matrix
            gb = a2.reshape(-1, a2.shape[-1]).T @ g2.reshape(-1, g2.shape[-1])
        else:
            gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape)
        gb = gb.reshape(b.shape)
    return ga, gb


@defop("dense")
def _dense(x, kernel, bias=None):
    """x @ kernel (+ bias) over the last axis of x of any rank: one GEMM."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    y = parallel.matmul(x2, kernel)
    if bias is not None:
        y += bias
    return y.reshape(lead + (kernel.shape[1],)), (x2, kernel, x.shape, bias is not None)


@_dense.defvjp
def _(g, s, needs):
    x2, kernel, xshape, has_bias = s
    g2 = g.reshape(-1, g.shape[-1])
    needs = worth_side(needs, 2.0 * x2.size * g2.shape[1])
    gx = parallel.matmul(g2, kernel.T).reshape(xshape) if needs[0] else None
    gk = leaf_gradient(needs[1], lambda: parallel.matmul(x2.T, g2))
    gb = leaf_gradient(has_bias and needs[2], lambda: g2.sum(axis=0))
    return gx, gk, gb


@defop("tensordot")
def _tensordot(a, b, axes=None):
    out = np.tensordot(a, b, axes=axes)
    return out, (a, b, axes)


@_tensordot.defvjp
def _(g, s, needs):
    a, b, axes = s
    a_ax, b_ax = [list(ax) for ax in axes]
    a_ax = [x % a.ndim for x in a_ax]
    b_ax = [x % b.ndim for x in b_ax]
    a_free = [i for i in range(a.ndim) if i not in a_ax]
    b_free = [i for i in range(b.ndim) if i not in b_ax]
    na = len(a_free)
    ga = gb = None
    if needs[0]:
        # g: (a_free..., b_free...) ; contract with b over b_free
        t = np.tensordot(g, b, axes=(list(range(na, g.ndim)), b_free))  # (a_free..., b_ax...)
        order = a_free + a_ax
        ga = np.transpose(t, np.argsort(order))
    if needs[1]:
        t = np.tensordot(a, g, axes=(a_free, list(range(na))))  # (a_ax..., b_free...)
        order = b_ax + b_free
        gb = np.transpose(t, np.argsort(order))
    return ga, gb


def matmul(a, b):
    return apply(_matmul, a, b)


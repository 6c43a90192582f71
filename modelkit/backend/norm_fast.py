"""Fast float32 batch normalization in training (BatchNormalization's moments + normalize),
dispatched from `norm_ops.batch_norm_moments` when one axis is kept and no weights are given.

The statistics reduce over every axis but the channel axis. The arrays are viewed as
(A, C, B) in their *memory* order (channels-last memory: B = 1; channels-first memory, e.g.
the channels-last views that `conv_fast` returns: A = batch, B = positions) and processed
in cache-sized blocks of A on `parallel`'s threads: each pass reads the big arrays once
and does all its arithmetic on a block while it is in cache.

    forward   mean = sum(x) / n; var = sum((x - mean)^2) / n;
              y = (x - mean) * scale + beta, scale = gamma / sqrt(var + eps)
    backward  gbeta = sum(g), ggamma = sum(g * xhat), xhat = (x - mean) * inv,
              inv = 1 / sqrt(var + eps)
              gx = g * scale - (x - mean) * (inv * scale * ggamma / n) - scale * gbeta / n
                   (+ (gmean + 2 gvar (x - mean)) / n when the statistics are used)

(the same formulas as norm_ops' exact path, which float64 keeps); x - mean is kept for the
backward pass. Per-block sums
are float32 and combined in float64, in block order (the same numbers for any thread count).
"""

import numpy as np

from . import parallel


def usable(x, gamma, beta, axes, weights):
    """float32, no sample weights, one kept channel axis (not the batch axis, which
    LayerNormalization keeps), per-channel gamma/beta."""
    if not (x.dtype == np.float32 and weights is None and x.ndim >= 2
            and len(axes) == x.ndim - 1 and 0 in axes):
        return False
    c = x.shape[next(i for i in range(x.ndim) if i not in axes)]
    return all(v is None or (v.dtype == np.float32 and v.size == c) for v in (gamma, beta))


def _as_acb(x, c_axis):
    """(view (A, C, B) sharing x's memory, how to undo it) or a contiguous copy."""
    moved = np.moveaxis(x, c_axis, -1)                 # (..., C)
    if moved.flags.c_contiguous:
        return moved.reshape(-1, x.shape[c_axis], 1), ("last", moved.shape)
    first = np.moveaxis(x, c_axis, 1)                  # (N, C, ...)
    if not first.flags.c_contiguous:
        first = np.ascontiguousarray(first)
    return first.reshape(x.shape[0], x.shape[c_axis], -1), ("first", first.shape)


def _back(a3, how, c_axis):
    kind, shape = how
    a = a3.reshape(shape)
    return np.moveaxis(a, -1 if kind == "last" else 1, c_axis)


def _per_channel(v, c):
    return None if v is None else v.reshape(1, c, 1)


def _sums(a3):
    """Per-channel float32 sums of a block (A, C, B), shaped (1, C, 1): GEMVs with a ones
    vector (2x faster than numpy's sum over axes 0 and 2)."""
    blk, c, b = a3.shape
    if b == 1:
        out = np.ones(blk, np.float32) @ a3.reshape(blk, c)
    else:
        out = (a3.reshape(-1, b) @ np.ones(b, np.float32)).reshape(blk, c).sum(axis=0)
    return out.reshape(1, c, 1)


def _dots(a3, b3):
    """Per-channel float32 sums of a3 * b3 over a block (A, C, B), shaped (1, C, 1): one dot
    product per row, never the product array (2.5x faster than square-then-sum)."""
    blk, c, b = a3.shape
    if b == 1:
        out = np.einsum("ac,ac->c", a3.reshape(blk, c), b3.reshape(blk, c))
    else:
        out = np.matmul(a3.reshape(blk, c, 1, b), b3.reshape(blk, c, b, 1))
        out = out.reshape(blk, c).sum(axis=0)
    return out.reshape(1, c, 1)


def _sum_blocks(fn, x3):
    """Sum over blocks of fn(lo, hi) -> per-channel float32 partial sums, in float64."""
    parts = parallel.map_blocks(fn, x3.shape[0], x3[0].nbytes)
    return np.sum([p.astype(np.float64) for p in parts], axis=0)


def moments(x, gamma, beta, axes, epsilon):
    """-> ((y, mean, var), saved) shaped like norm_ops' exact op."""
    c_axis = next(i for i in range(x.ndim) if i not in axes)
    c = x.shape[c_axis]
    x3, how = _as_acb(x, c_axis)
    count = x3.shape[0] * x3.shape[2]
    mean = (_sum_blocks(lambda lo, hi: _sums(x3[lo:hi]), x3) / count).astype(np.float32)

    xc3 = np.empty(x3.shape, np.float32)              # x - mean, kept for the gradient

    def centred_squares(lo, hi):
        d = np.subtract(x3[lo:hi], mean, out=xc3[lo:hi])
        return _dots(d, d)

    var64 = _sum_blocks(centred_squares, x3) / count
    var = var64.astype(np.float32)
    inv = (1.0 / np.sqrt(var64 + np.float32(epsilon))).astype(np.float32)
    g = _per_channel(gamma, c)
    scale = inv * g if g is not None else inv
    b = _per_channel(beta, c)
    y3 = np.empty(x3.shape, np.float32)

    def normalize(lo, hi):
        out = np.multiply(xc3[lo:hi], scale, out=y3[lo:hi])
        if b is not None:
            out += b

    parallel.map_blocks(normalize, x3.shape[0], x3[0].nbytes)
    kept = tuple(1 if i in axes else x.shape[i] for i in range(x.ndim))
    saved = ("fast", xc3, inv, scale, g is not None, beta is not None,
             None if gamma is None else np.shape(gamma),
             None if beta is None else np.shape(beta), how, c_axis, count, kept)
    return (_back(y3, how, c_axis), mean.reshape(kept), var.reshape(kept)), saved


def moments_vjp(grads, saved, needs):
    gy, gmean, gvar = grads
    (_, xc3, inv, scale, has_gamma, has_beta, gshape, bshape, how, c_axis, count,
     kept) = saved
    c = xc3.shape[1]
    g3 = _reorder(gy, how, c_axis, xc3.shape)         # x's memory order

    def sums(lo, hi):
        gb = g3[lo:hi]
        return np.concatenate([_sums(gb), _dots(gb, xc3[lo:hi])], axis=1)

    both = _sum_blocks(sums, xc3)
    gbeta = both[:, :c].astype(np.float32)
    ggamma = (both[:, c:] * inv).astype(np.float32)   # sum(g * xhat)
    gx = ggamma_ = gbeta_ = None
    if needs[0]:
        n = np.float32(count)
        coef = inv * scale * ggamma / n                # per channel, times (x - mean)
        const = scale * gbeta / n
        gm = np.asarray(gmean)
        gv = np.asarray(gvar)
        if gm.any() or gv.any():                       # the statistics were used downstream
            coef = coef - 2.0 * gv.reshape(1, c, 1).astype(np.float32) / n
            const = const - gm.reshape(1, c, 1).astype(np.float32) / n
        gx3 = np.empty(xc3.shape, np.float32)

        def input_grad(lo, hi):
            out = np.multiply(g3[lo:hi], scale, out=gx3[lo:hi])
            out -= np.multiply(xc3[lo:hi], coef)
            out -= const

        parallel.map_blocks(input_grad, xc3.shape[0], xc3[0].nbytes)
        gx = _back(gx3, how, c_axis)
    if len(needs) > 1 and needs[1] and has_gamma:
        ggamma_ = ggamma.reshape(gshape)
    if len(needs) > 2 and needs[2] and has_beta:
        gbeta_ = gbeta.reshape(bshape)
    return gx, ggamma_, gbeta_, None


def _reorder(gy, how, c_axis, shape3):
    kind, shape = how
    moved = np.moveaxis(gy, c_axis, -1 if kind == "last" else 1)
    return np.ascontiguousarray(moved, dtype=np.float32).reshape(shape3)

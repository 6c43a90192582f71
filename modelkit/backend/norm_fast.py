"""Fast float32 batch normalization in training (BatchNormalization's moments + normalize),
dispatched from `norm_ops.batch_norm_moments` when one axis is kept and no weights are given.

The statistics reduce over every axis but the channel axis. The arrays are viewed as
(A, C, B) in their *memory* order (channels-last memory: B = 1; channels-first memory, e.g.
the channels-last views that `conv_fast` returns: A = batch, B = positions), so every pass
streams contiguous memory, and the arithmetic is regrouped into few passes:

    forward   mean, xc = x - mean, var = mean(xc^2), y = xc * (gamma * inv) + beta
    backward  gbeta = sum(g), ggamma = sum(g * xhat),
              gx = g * (gamma * inv) - xhat * (gamma * inv * ggamma / n)
                   - gamma * inv * gbeta / n

(the same formulas as norm_ops' exact path, which float64 keeps).
"""

import numpy as np


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


def moments(x, gamma, beta, axes, epsilon):
    """-> ((y, mean, var), saved) shaped like norm_ops' exact op."""
    c_axis = next(i for i in range(x.ndim) if i not in axes)
    c = x.shape[c_axis]
    x3, how = _as_acb(x, c_axis)
    count = x3.shape[0] * x3.shape[2]
    mean = x3.sum(axis=(0, 2), keepdims=True) / np.float32(count)
    xc = x3 - mean
    var = np.square(xc).sum(axis=(0, 2), keepdims=True) / np.float32(count)
    inv = (1.0 / np.sqrt(var + np.float32(epsilon))).astype(np.float32)
    g = _per_channel(gamma, c)
    scale = inv * g if g is not None else inv
    xhat = xc
    xhat *= inv                                       # xc becomes xhat in place
    y = xhat * g if g is not None else xhat.copy()
    if beta is not None:
        y += _per_channel(beta, c)
    kept = tuple(1 if i in axes else x.shape[i] for i in range(x.ndim))
    saved = ("fast", xhat, inv, scale, g is not None, beta is not None,
             None if gamma is None else np.shape(gamma),
             None if beta is None else np.shape(beta), how, c_axis, count, kept)
    return (_back(y, how, c_axis), mean.reshape(kept), var.reshape(kept)), saved


def moments_vjp(grads, saved, needs):
    gy, gmean, gvar = grads
    (_, xhat, inv, scale, has_gamma, has_beta, gshape, bshape, how, c_axis, count,
     kept) = saved
    c = xhat.shape[1]
    g3 = _reorder(gy, how, c_axis, xhat.shape)        # xhat's memory order
    gbeta = g3.sum(axis=(0, 2), keepdims=True)
    ggamma = (g3 * xhat).sum(axis=(0, 2), keepdims=True)
    gx = ggamma_ = gbeta_ = None
    if needs[0]:
        n = np.float32(count)
        gx = g3 * scale
        tmp = xhat * (scale * ggamma / n)
        gx -= tmp
        gx -= scale * gbeta / n
        gm = np.asarray(gmean)
        gv = np.asarray(gvar)
        if gm.any() or gv.any():                       # the statistics were used downstream
            gm3 = gm.reshape(1, c, 1).astype(np.float32)
            gv3 = gv.reshape(1, c, 1).astype(np.float32)
            gx += (gm3 + 2.0 * gv3 * (xhat / inv)) / n
        gx = _back(gx, how, c_axis)
    if len(needs) > 1 and needs[1] and has_gamma:
        ggamma_ = ggamma.reshape(gshape)
    if len(needs) > 2 and needs[2] and has_beta:
        gbeta_ = gbeta.reshape(bshape)
    return gx, ggamma_, gbeta_, None


def _reorder(gy, how, c_axis, shape3):
    kind, shape = how
    moved = np.moveaxis(gy, c_axis, -1 if kind == "last" else 1)
    return np.ascontiguousarray(moved, dtype=np.float32).reshape(shape3)

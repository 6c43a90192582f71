"""Normalization ops: fused moments + normalize (training), and inference batch norm.

`batch_norm_moments(x, gamma, beta, weights; axes, epsilon) -> (y, mean, var)`:
mean and (biased) variance of `x` over `axes` (weighted by the optional, non-differentiable
`weights` broadcast against `x`, as tf.nn.weighted_moments), then
`y = gamma * (x - mean) / sqrt(var + epsilon) + beta`. The gradient flows through the
batch statistics (one fused VJP); the `mean`/`var` outputs are differentiable too.
BatchNormalization in training reduces over the non-channel axes, LayerNormalization over
the feature axes; `gamma`/`beta` (optional) are given in a shape broadcastable to `x`.

`batch_norm_inference(x, mean, var, gamma, beta; epsilon)`: the same affine map with
given statistics (BatchNormalization at inference), differentiable in every input.
"""

import numpy as np

from . import norm_fast
from .tape import apply, defop, unbroadcast


def _sum(a, axes):
    return a.sum(axis=axes, keepdims=True)


@defop("batch_norm_moments", n_outputs=3)
def _batch_norm_moments(x, gamma=None, beta=None, weights=None, axes=(0,), epsilon=1e-3):
    axes = tuple(axes)
    if norm_fast.usable(x, gamma, beta, axes, weights):          # float32: fewer passes
        return norm_fast.moments(x, gamma, beta, axes, epsilon)
    if weights is None:
        count = np.asarray(np.prod([x.shape[a] for a in axes]), x.dtype)
        mean = x.mean(axis=axes, keepdims=True)
        xc = x - mean
        var = np.mean(xc * xc, axis=axes, keepdims=True)
        w = None
    else:
        w = np.broadcast_to(weights.astype(x.dtype, copy=False), x.shape)
        count = np.maximum(_sum(w, axes), np.asarray(np.finfo(x.dtype).tiny, x.dtype))
        mean = _sum(w * x, axes) / count
        xc = x - mean
        var = _sum(w * xc * xc, axes) / count
    inv = 1.0 / np.sqrt(var + np.asarray(epsilon, x.dtype))
    xhat = xc * inv
    y = xhat * gamma if gamma is not None else xhat.copy()
    if beta is not None:
        y += beta
    saved = (xhat, inv, xc, gamma, None if gamma is None else gamma.shape,
             None if beta is None else beta.shape, w, count, axes)
    return (y, mean, var), saved


@_batch_norm_moments.defvjp
def _(grads, saved, needs):
    if isinstance(saved, norm_fast.Saved):
        return norm_fast.moments_vjp(grads, saved, needs)
    gy, gmean, gvar = grads
    xhat, inv, xc, gamma, gshape, bshape, w, count, axes = saved
    gx = ggamma = gbeta = None
    if needs[0]:
        gxhat = gy * gamma if gamma is not None else gy
        if w is None:
            gx = inv * (gxhat - _sum(gxhat, axes) / count
                        - xhat * (_sum(gxhat * xhat, axes) / count))
        else:
            gx = inv * (gxhat - w * (_sum(gxhat, axes) / count)
                        - w * xhat * (_sum(gxhat * xhat, axes) / count))
        if gmean.any() or gvar.any():      # the statistics outputs were used downstream
            stats = (gmean + 2.0 * gvar * xc) / count
            gx += stats if w is None else w * stats
    if len(needs) > 1 and needs[1]:
        ggamma = unbroadcast(gy * xhat, gshape)
    if len(needs) > 2 and needs[2]:
        gbeta = unbroadcast(gy, bshape)
    return gx, ggamma, gbeta, None


@defop("batch_norm_inference")
def _batch_norm_inference(x, mean, var, gamma=None, beta=None, epsilon=1e-3):
    rstd = 1.0 / np.sqrt(var + np.asarray(epsilon, var.dtype))
    scale = rstd * gamma if gamma is not None else rstd
    shift = -mean * scale
    if beta is not None:
        shift = shift + beta
    y = (x * scale + shift).astype(x.dtype, copy=False)
    return y, (x, mean, var, gamma, beta, rstd, scale)


@_batch_norm_inference.defvjp
def _(g, saved, needs):
    x, mean, var, gamma, beta, rstd, scale = saved
    out = [None] * len(needs)
    if needs[0]:
        out[0] = g * scale
    if needs[1]:
        out[1] = unbroadcast(-g * scale, mean.shape)
    if needs[2]:
        gs = g * (x - mean)
        dscale = -0.5 * rstd ** 3 * (gamma if gamma is not None else 1.0)
        out[2] = unbroadcast(gs * dscale, var.shape)
    if len(needs) > 3 and needs[3]:
        out[3] = unbroadcast(g * (x - mean) * rstd, gamma.shape)
    if len(needs) > 4 and needs[4]:
        out[4] = unbroadcast(g, beta.shape)
    return tuple(out)


# ---------------------------------------------------------------------------------------
# Keras backend functions (concrete tensors)

def normalize_batch_in_training(x, gamma, beta, reduction_axes, epsilon=1e-3):
    """Keras K.normalize_batch_in_training: (normalized, mean, variance); `gamma`/`beta`
    have the size of the kept axes (or are None); mean/variance are squeezed likewise."""
    from .functions import _t, reshape
    x = _t(x)
    axes = tuple(sorted(a % x.ndim for a in reduction_axes))
    kept = tuple(1 if i in axes else x.shape[i] for i in range(x.ndim))
    g = None if gamma is None else reshape(gamma, kept)
    b = None if beta is None else reshape(beta, kept)
    y, mean, var = apply(_batch_norm_moments, x, g, b, None, axes=axes, epsilon=epsilon)
    flat = tuple(x.shape[i] for i in range(x.ndim) if i not in axes)
    return y, reshape(mean, flat), reshape(var, flat)


def batch_normalization(x, mean, var, beta, gamma, axis=-1, epsilon=1e-3):
    """Keras K.batch_normalization: `(x - mean) / sqrt(var + epsilon) * gamma + beta` with
    the statistics broadcast along `axis` (or already broadcastable to x)."""
    from .functions import _t, reshape
    x = _t(x)

    def along(t):
        if t is None:
            return None
        t = _t(t)
        if t.ndim == x.ndim:
            return t
        shape = [1] * x.ndim
        shape[axis % x.ndim] = t.shape[-1]
        return reshape(t, tuple(shape))
    return apply(_batch_norm_inference, x, along(mean), along(var), along(gamma), along(beta),
                 epsilon=epsilon)

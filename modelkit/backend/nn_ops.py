"""Neural-network ops: activations, softmax, fused cross-entropies, dropout."""

import math

import numpy as np

from . import ahead, native, norm_fast, parallel
from .tape import defop

# ---------------------------------------------------------------------------------------
# activations


def relu_into(out, x):
    """max(x, 0) into `out` (x's shape and memory order), against a block of zeros."""
    of, xf = parallel.flat(out), parallel.flat(x)
    if of is None or xf is None:
        np.maximum(x, 0, out=out)
    else:
        np.maximum(xf, parallel.zeros(xf.size, xf.dtype), out=of)


@defop("relu")
def _relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras relu: x if x > threshold, else negative_slope * (x - threshold); capped."""
    if not (negative_slope or threshold or max_value is not None):    # plain relu: blocks
        y = ahead.take(x, "relu")                                     # computed by x's op,
        if y is None:                                                 # or in blocks on
            y = np.empty_like(x)                                      # the worker threads
            parallel.elementwise(relu_into, y, x)
        return y, (y, None, None, norm_fast.output_of(x))
    above = x > threshold
    if negative_slope:
        y = np.where(above, x, negative_slope * (x - threshold)).astype(x.dtype, copy=False)
    elif threshold:
        y = np.where(above, x, 0).astype(x.dtype, copy=False)
    else:
        y = np.maximum(x, 0)
    if max_value is not None:
        capped = y >= max_value
        y = np.minimum(y, np.asarray(max_value, x.dtype))
    else:
        capped = None
    return y, (above, negative_slope, capped, None)


@_relu.defvjp
def _(g, s, needs):
    above, slope, capped, batch_norm = s
    if batch_norm is not None:               # x is a fast batch norm's output: its first
        gx = norm_fast.relu_grad(g, above, batch_norm)        # backward pass folded in
        if gx is not None:
            return (gx,)
    if slope is None:                        # plain relu saved its output: x > 0 <=> y > 0
        gx = np.empty_like(above, dtype=g.dtype)
        parallel.elementwise(lambda o, gb, yb: np.multiply(gb, yb > 0, out=o), gx, g, above)
        return (gx,)
    d = np.where(above, 1.0, slope).astype(g.dtype) if slope else above
    # in x's memory order (channels-first memory behind the fast convs' channels-last
    # views): the ops before this one read it back in that order
    gx = np.multiply(g, d, out=np.empty_like(above, dtype=np.result_type(g, d)))
    if capped is not None:
        gx = np.where(capped, 0, gx).astype(g.dtype)
    return (gx,)


@defop("sigmoid")
def _sigmoid(x):
    y = np.empty_like(x)
    pos = x >= 0
    # numerically stable: exp only of non-positive numbers
    e = np.exp(-np.abs(x))
    np.divide(1.0, 1.0 + e, out=y, where=pos)
    np.divide(e, 1.0 + e, out=y, where=~pos)
    return y, (y,)


@_sigmoid.defvjp
def _(g, s, needs):
    (y,) = s
    d = np.subtract(1, y)                 # g * y * (1 - y), in one buffer
    np.multiply(d, y, out=d)
    np.multiply(d, g, out=d)
    return (d,)


def _hard_sigmoid_op(name, slope):
    @defop(name)
    def op(x):
        z = x * np.asarray(slope, x.dtype) + np.asarray(0.5, x.dtype)
        y = np.clip(z, 0.0, 1.0)
        return y, ((z > 0) & (z < 1),)

    @op.defvjp
    def _(g, s, needs):
        return (g * s[0] * np.asarray(slope, g.dtype),)
    return op


_hard_sigmoid = _hard_sigmoid_op("hard_sigmoid", 0.2)              # Keras 2
_keras3_hard_sigmoid = _hard_sigmoid_op("keras3_hard_sigmoid", 1.0 / 6.0)


@defop("elu")
def _elu(x, alpha=1.0):
    neg = x <= 0
    e = np.expm1(np.minimum(x, 0))
    y = np.where(neg, alpha * e, x).astype(x.dtype, copy=False)
    return y, (neg, e, alpha)


@_elu.defvjp
def _(g, s, needs):
    neg, e, alpha = s
    return (g * np.where(neg, alpha * (e + 1.0), 1.0).astype(g.dtype),)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@defop("selu")
def _selu(x):
    neg = x <= 0
    e = np.expm1(np.minimum(x, 0))
    y = (_SELU_SCALE * np.where(neg, _SELU_ALPHA * e, x)).astype(x.dtype, copy=False)
    return y, (neg, e)


@_selu.defvjp
def _(g, s, needs):
    neg, e = s
    return (g * (_SELU_SCALE * np.where(neg, _SELU_ALPHA * (e + 1.0), 1.0)).astype(g.dtype),)


@defop("softplus")
def _softplus(x):
    y = np.logaddexp(np.zeros((), x.dtype), x)
    return y, (x,)


@_softplus.defvjp
def _(g, s, needs):
    (x,) = s
    return (g * _stable_sigmoid(x),)


def _stable_sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


@defop("softsign")
def _softsign(x):
    d = 1.0 + np.abs(x)
    return x / d, (d,)


@_softsign.defvjp
def _(g, s, needs):
    (d,) = s
    return (g / (d * d),)


@defop("swish")
def _swish(x):
    sig = _stable_sigmoid(x)
    return x * sig, (x, sig)


@_swish.defvjp
def _(g, s, needs):
    x, sig = s
    return (g * (sig * (1.0 + x * (1.0 - sig))),)


def erf(x):
    """Error function, exact to float64 rounding (math.erf per element; numpy has no erf)."""
    x64 = np.asarray(x, dtype=np.float64)
    return _erf_vec(x64).astype(np.asarray(x).dtype, copy=False)


_erf_vec = np.vectorize(math.erf, otypes=[np.float64])



@defop("gelu")
def _gelu(x, approximate=False):
    if approximate:
        c = np.asarray(math.sqrt(2.0 / math.pi), x.dtype)
        inner = c * (x + 0.044715 * x ** 3)
        t = np.tanh(inner)
        y = 0.5 * x * (1.0 + t)
        return y, (x, t, c, True)
    cdf = 0.5 * (1.0 + erf(x / np.asarray(math.sqrt(2.0), x.dtype)))
    return x * cdf, (x, cdf, None, False)


@_gelu.defvjp
def _(g, s, needs):
    x, a, c, approximate = s
    if approximate:
        t = a
        dinner = c * (1.0 + 3 * 0.044715 * x * x)
        return (g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner),)
    pdf = np.exp(-0.5 * x * x) / np.asarray(math.sqrt(2.0 * math.pi), x.dtype)
    return (g * (a + x * pdf),)


# ---------------------------------------------------------------------------------------
# softmax family


@defop("softmax")
def _softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    y = e / e.sum(axis=axis, keepdims=True)
    return y, (y, axis)


@_softmax.defvjp
def _(g, s, needs):
    y, axis = s
    return (y * (g - (g * y).sum(axis=axis, keepdims=True)),)


@defop("log_softmax")
def _log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    z = x - m
    lse = np.log(np.exp(z).sum(axis=axis, keepdims=True))
    y = z - lse
    return y, (y, axis)


@_log_softmax.defvjp
def _(g, s, needs):
    y, axis = s
    return (g - np.exp(y) * g.sum(axis=axis, keepdims=True),)


@defop("softmax_cross_entropy")
def _softmax_cross_entropy(target, logits, axis=-1):
    """-sum(target * log_softmax(logits)) over `axis`: one fused, stable op."""
    m = np.max(logits, axis=axis, keepdims=True)
    z = logits - m
    e = np.exp(z)
    ssum = e.sum(axis=axis, keepdims=True)
    logp = z - np.log(ssum)
    loss = -(target * logp).sum(axis=axis)
    return loss, (target, e / ssum, logp, axis)


@_softmax_cross_entropy.defvjp
def _(g, s, needs):
    target, p, logp, axis = s
    g = np.expand_dims(g, axis)
    gt = -g * logp if needs[0] else None
    gl = g * (p * target.sum(axis=axis, keepdims=True) - target) if needs[1] else None
    return gt, gl


@defop("sparse_softmax_cross_entropy")
def _sparse_softmax_cross_entropy(labels, logits):
    """-log_softmax(logits)[label] over the last axis; labels are integer class ids."""
    m = np.max(logits, axis=-1, keepdims=True)
    z = logits - m
    e = np.exp(z)
    ssum = e.sum(axis=-1, keepdims=True)
    labels = labels.astype(np.intp, copy=False)
    picked = np.take_along_axis(z, labels[..., None], axis=-1)[..., 0]
    loss = np.log(ssum[..., 0]) - picked
    return loss, (labels, e / ssum)


@_sparse_softmax_cross_entropy.defvjp
def _(g, s, needs):
    labels, p = s
    grad = p.copy()
    np.put_along_axis(grad, labels[..., None], np.take_along_axis(grad, labels[..., None], -1) - 1,
                      axis=-1)
    return None, grad * g[..., None]


@defop("sigmoid_cross_entropy")
def _sigmoid_cross_entropy(target, logits):
    """Elementwise stable binary cross-entropy from logits."""
    loss = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    return loss, (target, logits)


@_sigmoid_cross_entropy.defvjp
def _(g, s, needs):
    target, logits = s
    p = _stable_sigmoid(logits)
    return (-g * logits if needs[0] else None,
            g * (p - target) if needs[1] else None)


# ---------------------------------------------------------------------------------------
# dropout


@defop("dropout")
def _dropout(x, rate=0.5, noise_shape=None, rng=None):
    """Inverted dropout: zero with probability `rate`, scale survivors by 1/(1-rate).

    The keep probability is round(keep * 65536) / 65536 (the rate is exact to 1/65536),
    decided with as few random bits per value as give exactly that probability: one for
    rate 0.5, eight when it is a multiple of 1/256, sixteen otherwise. Raw 64-bit draws
    cut into bits are several times cheaper than floats. The mask is kept as the scale or
    0 in x's dtype, so applying it (forward and backward) is one multiply; for float32 with
    the C kernels, kept as its draws and applied in one C pass from them (`_DrawnMask`).
    """
    keep = 1.0 - rate
    shape = x.shape if noise_shape is None else tuple(noise_shape)
    keep_in_65536 = round(keep * 65536)
    scale = np.asarray(1.0 / keep, x.dtype)
    draws = None
    if keep_in_65536 < 65536 and shape == x.shape and native.takes(x):
        draws = _draws(math.prod(shape), keep_in_65536, rng)
        if draws[1] != 1 or native.avx512_available():     # (one bit a value: AVX-512)
            mask = _DrawnMask(*draws, scale, shape)
            return mask.apply(x), mask
    mask = _keep_mask(shape, keep_in_65536, rng, draws).astype(x.dtype)
    mask *= scale
    return np.multiply(x, mask, dtype=x.dtype), mask


def _draws(n, keep_in_65536, rng):
    """The random draws deciding n values (keep_in_65536 < 65536), cut as few bits a value as
    give exactly that probability: (raw uint64 draws, bits a value (1, 8 or 16), the
    threshold a byte or 16-bit word must stay below)."""
    if keep_in_65536 == 32768:                      # one bit each
        return rng.integers(0, 2 ** 64, size=(n + 63) // 64, dtype=np.uint64), 1, 0
    if keep_in_65536 % 256 == 0:                    # a byte each
        return (rng.integers(0, 2 ** 64, size=(n + 7) // 8, dtype=np.uint64), 8,
                keep_in_65536 >> 8)
    return rng.integers(0, 2 ** 64, size=(n + 3) // 4, dtype=np.uint64), 16, keep_in_65536


def _keep_mask(shape, keep_in_65536, rng, draws=None):
    """Booleans (or 0/1 bytes) of `shape`, each 1 with probability keep_in_65536 / 65536
    (from `draws` when they are made already)."""
    if keep_in_65536 >= 65536:                      # rate 0 (to 1/65536): nothing dropped
        return np.ones(shape, bool)
    n = math.prod(shape)
    raw, bits, below = draws or _draws(n, keep_in_65536, rng)
    if bits == 1:
        return np.unpackbits(raw.view(np.uint8), count=n).reshape(shape)
    words = raw.view(np.uint8 if bits == 8 else np.uint16)[:n].reshape(shape)
    return words < words.dtype.type(below)


class _DrawnMask:
    """A float32 dropout mask kept as its random draws (1/64 to 1/4 of the mask's bytes):
    `apply(a)` is a * mask in one C pass (native.dropout_apply), the numbers of the numpy
    mask's multiply; `shape`, `dtype` and `__array__` give the mask itself."""

    def __init__(self, raw, bits, below, scale, shape):
        self.raw, self.bits, self.below, self.scale = raw, bits, below, scale
        self.dtype, self.shape = scale.dtype, shape

    def apply(self, a):
        if a.shape != self.shape or not native.takes(a):
            return np.multiply(a, self.__array__(), dtype=a.dtype)
        out = np.empty_like(a)
        native.dropout_apply(a, self.raw, self.bits, self.below, self.scale, out)
        return out

    def __array__(self, dtype=None, copy=None):
        ones = np.ones(self.shape, self.dtype)
        mask = np.empty_like(ones)
        native.dropout_apply(ones, self.raw, self.bits, self.below, self.scale, mask)
        return mask if dtype is None else mask.astype(dtype)


@_dropout.defvjp
def _(g, mask, needs):
    if isinstance(mask, _DrawnMask):
        return (mask.apply(np.asarray(g, mask.dtype)),)
    return (np.multiply(g, mask, dtype=g.dtype),)

"""Fast float32 batch normalization in training (BatchNormalization's moments + normalize),
dispatched from `norm_ops.batch_norm_moments` when one axis is kept and no weights are given.

The statistics reduce over every axis but the channel axis. The arrays are viewed as
(A, C, B) in their *memory* order (channels-last memory: B = 1; channels-first memory, e.g.
the channels-last views that `conv_fast` returns: A = batch, B = positions).

Forward: with B >= ORT_MIN_POSITIONS (feature maps) and onnxruntime available, its
BatchNormalization op in training mode (statistics and output in about two passes over x);
otherwise numpy over rows (R, P) of P = k * C * B values (k rows of A side by side when
C * B is small), so that every per-channel factor is one row vector of length P (numpy's
contiguous binary loops; a (1, C, 1) broadcast runs 3x slower), in cache-sized blocks of
rows on `parallel`'s threads, all the arithmetic on a block done while it is in cache:

    pass 1 per block: sums and squared deviations from the block's own mean, combined
           exactly (Chan et al.) in float64, in block order;
    pass 2: y = x * scale + (beta - mean * scale), scale = gamma / sqrt(var + eps)

Backward (numpy, the same blocks):

    pass 1: gbeta = sum(g), ggamma = sum(g * (x - mean)) * inv, inv = 1 / sqrt(var + eps)
    pass 2: gx = g * scale - x * coef + (mean * coef - const),
            coef = inv * scale * ggamma / n, const = scale * gbeta / n
            (coef -= 2 gvar / n, const -= gmean / n when the statistics are used)

(the same formulas as norm_ops' exact path, which float64 keeps); x itself is kept for the
backward pass (no copy). Per-block sums are float32 and combined in float64, in block order
(the same numbers for any thread count).
"""

import numpy as np

from . import conv_fast, parallel

MIN_ROW = 256              # shortest row (values) a per-channel factor is tiled to
ORT_MIN_POSITIONS = 64     # onnxruntime's forward from this many positions per channel


def usable(x, gamma, beta, axes, weights):
    """float32, no sample weights, one kept channel axis (not the batch axis, which
    LayerNormalization keeps), per-channel gamma/beta."""
    if not (x.dtype == np.float32 and weights is None and x.ndim >= 2
            and len(axes) == x.ndim - 1 and 0 in axes):
        return False
    c = x.shape[next(i for i in range(x.ndim) if i not in axes)]
    return all(v is None or (v.dtype == np.float32 and v.size == c) for v in (gamma, beta))


class _Layout:
    """x as (A, C, B) in memory order and as rows (R, P), P = k * C * B."""

    def __init__(self, x, c_axis):
        self.c_axis, self.shape = c_axis, x.shape
        moved = np.moveaxis(x, c_axis, -1)                 # (..., C)
        if moved.flags.c_contiguous:
            self.kind, self.mshape = "last", moved.shape
            a, b = moved.size // x.shape[c_axis], 1
        else:
            first = np.moveaxis(x, c_axis, 1)              # (N, C, ...)
            self.kind, self.mshape = "first", first.shape
            a, b = x.shape[0], first.size // (x.shape[0] * x.shape[c_axis])
        self.a, self.c, self.b = a, x.shape[c_axis], b
        k = 1
        while k * self.c * b < MIN_ROW and a % (2 * k) == 0:
            k *= 2
        self.k, self.p = k, k * self.c * b

    def rows(self, arr, dtype=np.float32):
        """`arr` (x's shape) as rows in x's memory order: a view, or a contiguous copy."""
        moved = np.moveaxis(arr, self.c_axis, -1 if self.kind == "last" else 1)
        return np.ascontiguousarray(moved, dtype=dtype).reshape(-1, self.p)

    def back(self, rows):
        """rows -> an array of x's shape (a view)."""
        a = rows.reshape(self.mshape)
        return np.moveaxis(a, -1 if self.kind == "last" else 1, self.c_axis)

    def row(self, per_channel):
        """A per-channel vector (C,) as one float32 row (P,)."""
        v = np.asarray(per_channel, np.float32).reshape(1, self.c, 1)
        return np.ascontiguousarray(np.broadcast_to(v, (self.k, self.c, self.b))).reshape(-1)

    def channel_sums(self, blk):
        """Per-channel float32 sums of a block of rows (r, P) -> (C,): a GEMV with a ones
        vector (2x faster than numpy's sum over axes)."""
        if self.b > 1:
            s = blk.reshape(-1, self.b) @ _ones(self.b)
        else:
            s = _ones(blk.shape[0]) @ blk
        return s.reshape(-1, self.c).sum(axis=0)

    def channel_dots(self, u, v):
        """Per-channel float32 sums of u * v over a block of rows -> (C,): one dot product
        per row, never the product array."""
        if self.b > 1:
            n = u.size // self.b
            s = np.matmul(u.reshape(n, 1, self.b), v.reshape(n, self.b, 1))
        else:
            s = np.einsum("rp,rp->p", u, v)
        return s.reshape(-1, self.c).sum(axis=0)

    def block_count(self, lo, hi):
        return (hi - lo) * self.k * self.b


_ONES = {}


def _ones(n):
    v = _ONES.get(n)
    if v is None:
        v = _ONES[n] = np.ones(n, np.float32)
        v.flags.writeable = False
    return v


def _map_rows(fn, x2):
    return parallel.map_blocks(fn, x2.shape[0], x2[0].nbytes)


def moments(x, gamma, beta, axes, epsilon):
    """-> ((y, mean, var), saved) shaped like norm_ops' exact op."""
    c_axis = next(i for i in range(x.ndim) if i not in axes)
    lay = _Layout(x, c_axis)
    x2 = lay.rows(x)
    if lay.b >= ORT_MIN_POSITIONS and conv_fast.enabled():
        y2, mean, var = _ort_forward(x2, lay, gamma, beta, epsilon)
    else:
        y2, mean, var = _numpy_forward(x2, lay, gamma, beta, epsilon)
    inv = (1.0 / np.sqrt(var.astype(np.float64) + np.float32(epsilon))).astype(np.float32)
    scale = inv * gamma.reshape(lay.c) if gamma is not None else inv
    kept = tuple(1 if i in axes else x.shape[i] for i in range(x.ndim))
    saved = ("fast", x2, lay, mean, inv, scale,
             None if gamma is None else np.shape(gamma),
             None if beta is None else np.shape(beta))
    return (lay.back(y2), mean.reshape(kept), var.reshape(kept)), saved


def _ort_forward(x2, lay, gamma, beta, epsilon):
    """onnxruntime's BatchNormalization in training mode on x as (A, C, B): statistics and
    the normalized output in about two passes over x (3-4x faster than numpy's blocks); with
    momentum 0 and zero running statistics its 'running' outputs are the batch mean and
    (biased) variance. One thread: the op is memory-bound (64x16x32x32: 0.40 ms on one
    thread, 0.41 on two), and the next op ran slower after a two-thread session."""
    c = lay.c

    def build(helper):
        node = helper.make_node("BatchNormalization", ["x", "gamma", "beta", "m0", "v0"],
                                ["y", "mean", "var"], epsilon=float(epsilon), momentum=0.0,
                                training_mode=1)
        return [node], [("x", [None, c, None])] + [(n, [c]) for n in ("gamma", "beta", "m0",
                                                                        "v0")]

    sess = conv_fast.session(("batch_norm_training", c, float(epsilon)), build,
                             threads=1, outputs=("y", "mean", "var"))
    zeros = np.zeros(c, np.float32)
    y3, mean, var = sess.run(None, {
        "x": x2.reshape(lay.a, c, lay.b),
        "gamma": np.ones(c, np.float32) if gamma is None else gamma.reshape(c),
        "beta": zeros if beta is None else beta.reshape(c), "m0": zeros, "v0": zeros})
    return y3.reshape(x2.shape), mean, var


def _numpy_forward(x2, lay, gamma, beta, epsilon):
    c = lay.c
    count = lay.a * lay.b

    def stats(lo, hi):                 # (n, sum, squared deviations from the block mean)
        blk = x2[lo:hi]
        n = lay.block_count(lo, hi)
        s = lay.channel_sums(blk)
        m = (s / np.float32(n)).astype(np.float32)
        d = np.subtract(blk, lay.row(m))
        return n, s.astype(np.float64), m.astype(np.float64), \
            lay.channel_dots(d, d).astype(np.float64)

    parts = _map_rows(stats, x2)
    mean64 = np.sum([p[1] for p in parts], axis=0) / count
    m2 = np.zeros(c)
    for n, s, m, dd in parts:          # sum((x - mean)^2) from each block's own deviations
        shift = m - mean64
        m2 += dd + 2.0 * shift * (s - n * m) + n * shift * shift
    var64 = m2 / count
    inv64 = 1.0 / np.sqrt(var64 + np.float32(epsilon))
    scale64 = inv64 * gamma.reshape(c) if gamma is not None else inv64
    shift64 = -mean64 * scale64 + (beta.reshape(c) if beta is not None else 0.0)
    srow, trow = lay.row(scale64), lay.row(shift64)
    y2 = np.empty(x2.shape, np.float32)

    def normalize(lo, hi):
        out = np.multiply(x2[lo:hi], srow, out=y2[lo:hi])
        out += trow

    _map_rows(normalize, x2)
    return y2, mean64.astype(np.float32), var64.astype(np.float32)


def moments_vjp(grads, saved, needs):
    gy, gmean, gvar = grads
    _, x2, lay, mean, inv, scale, gshape, bshape = saved
    c, n = lay.c, np.float32(lay.a * lay.b)
    g2 = lay.rows(gy)                                  # x's memory order
    mrow = lay.row(mean)

    def sums(lo, hi):
        gb = g2[lo:hi]
        d = np.subtract(x2[lo:hi], mrow)
        return np.concatenate([lay.channel_sums(gb), lay.channel_dots(gb, d)])

    both = np.sum([p.astype(np.float64) for p in _map_rows(sums, x2)], axis=0)
    gbeta = both[:c].astype(np.float32)
    ggamma = (both[c:] * inv).astype(np.float32)       # sum(g * xhat)
    gx = ggamma_ = gbeta_ = None
    if needs[0]:
        coef = inv * scale * ggamma / n                # per channel, times (x - mean)
        const = scale * gbeta / n
        gm = np.asarray(gmean)
        gv = np.asarray(gvar)
        if gm.any() or gv.any():                       # the statistics were used downstream
            coef = coef - 2.0 * gv.reshape(c).astype(np.float32) / n
            const = const - gm.reshape(c).astype(np.float32) / n
        srow, crow = lay.row(scale), lay.row(-coef)
        krow = lay.row(mean * coef - const)
        gx2 = np.empty(x2.shape, np.float32)

        def input_grad(lo, hi):
            out = np.multiply(g2[lo:hi], srow, out=gx2[lo:hi])
            t = np.multiply(x2[lo:hi], crow)
            t += krow
            out += t

        _map_rows(input_grad, x2)
        gx = lay.back(gx2)
    if len(needs) > 1 and needs[1] and gshape is not None:
        ggamma_ = ggamma.reshape(gshape)
    if len(needs) > 2 and needs[2] and bshape is not None:
        gbeta_ = gbeta.reshape(bshape)
    return gx, ggamma_, gbeta_, None

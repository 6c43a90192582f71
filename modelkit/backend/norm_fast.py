"""Fast float32 batch normalization in training (BatchNormalization's moments + normalize),
dispatched from `norm_ops.batch_norm_moments` when one axis is kept and no weights are given.

The statistics reduce over every axis but the channel axis. The arrays are viewed as
(A, C, B) in their *memory* order (channels-last memory: B = 1; channels-first memory, e.g.
the channels-last views that `conv_fast` returns: A = batch, B = positions).

Forward on feature maps in channels-first memory (B >= NATIVE_MIN_POSITIONS), where the C
kernels are built (native.py): two C passes over blocks of images on `parallel`'s threads,
per row of B values its sum and squared deviations from its own mean (the row read twice
while in L1; rows combined per channel in float64, Chan et al.), then y = x scale + shift and
the relu of y when a relu reads it (see ahead.py), and the backward's sums (below) as one C
pass per block, the relu's mask included (ResNet step, per op: relu backward 3.73 -> 2.76 ms,
isolated 64x16x32x32 1.14 -> 0.35 ms; forward with relu 0.53-0.63 -> 0.40-0.49 ms, onnxruntime
on one thread against two). Without them, with B >= ORT_MIN_POSITIONS and onnxruntime
available, its BatchNormalization op in training mode (statistics and output in about two
passes over x); otherwise numpy over rows (R, P) of P = k * C * B values (k rows of A side
by side when C * B is small), so that every per-channel factor is one row vector of length
P (numpy's contiguous binary loops; a (1, C, 1) broadcast runs 3x slower), in blocks of rows
on `parallel`'s threads:

    pass 1 per block: sums and squared deviations from the block's own mean, combined
           exactly (Chan et al.) in float64, in block order;
    pass 2: y = x * scale + (beta - mean * scale), scale = gamma / sqrt(var + eps)

Backward (numpy, the same blocks):

    pass 1: gbeta = sum(g), ggamma = sum(g * (x - mean)) * inv, inv = 1 / sqrt(var + eps)
            (as sum(g * x) - mean * sum(g) in float64 unless some |mean| > CENTRE_RATIO *
            std: the float32 products' rounding grows only with |x| / |x - mean|)
    pass 2: gx = g * scale - x * coef + (mean * coef - const),
            coef = inv * scale * ggamma / n, const = scale * gbeta / n
            (coef -= 2 gvar / n, const -= gmean / n when the statistics are used),
            its blocks in reverse order (the last ones of pass 1 are still in cache)

(the same formulas as norm_ops' exact path, which float64 keeps); x itself is kept for the
backward pass (no copy). The channel sums of gx follow from pass 1's (scale * gbeta - n *
const): a conv right before takes them as its bias gradient (conv_fast.mark_channel_sums;
ResNet step, same-process A/B: 46.03 -> 45.63 ms wall, 76.8 -> 75.4 ms CPU). A relu right
after the op (or after its sum with a shortcut) folds pass 1 into its own mask pass
(`relu_grad`, below). Per-block sums are float32 and
combined in float64, in block order (the same numbers for any thread count). Blocks are
half the array, between parallel.BLOCK_BYTES and BLOCK_BYTES: a ResNet's 4 MiB feature maps
in two blocks, one per core; smaller blocks cost more numpy calls and GIL hand-overs
between the threads than their cache locality saves (64x16x32x32 backward, 2 threads:
0.65 ms with 2 MiB blocks, 0.82 with 512 KiB).
"""

import os
import weakref

import numpy as np

from . import ahead, array_tags, conv_fast, native, parallel

MIN_ROW = 256              # shortest row (values) a per-channel factor is tiled to
ORT_MIN_POSITIONS = 64     # onnxruntime's forward from this many positions per channel
NATIVE_MIN_POSITIONS = 32  # the C passes from this many (channels-first memory)
BLOCK_BYTES = 2 << 20      # largest block of rows (of each array) in the passes, see below
CENTRE_RATIO = 4.0         # the backward sums centre x when some |mean| > this * std


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
        n = x.ndim
        rest = [i for i in range(n) if i != c_axis]
        last = tuple(rest + [c_axis])                      # (..., C)
        if x.transpose(last).flags.c_contiguous:
            self.kind, self.to_mem = "last", last
            a, b = x.size // x.shape[c_axis], 1
        else:
            self.kind, self.to_mem = "first", tuple(rest[:1] + [c_axis] + rest[1:])
            a, b = x.shape[0], x.size // (x.shape[0] * x.shape[c_axis])   # (N, C, ...)
        self.mshape = tuple(x.shape[i] for i in self.to_mem)
        self.from_mem = tuple(int(i) for i in np.argsort(self.to_mem))
        self.a, self.c, self.b = a, x.shape[c_axis], b
        k = 1
        while k * self.c * b < MIN_ROW and a % (2 * k) == 0:
            k *= 2
        self.k, self.p = k, k * self.c * b

    def rows(self, arr, dtype=np.float32):
        """`arr` (x's shape) as rows in x's memory order: a view, or a contiguous copy."""
        moved = arr.transpose(self.to_mem)
        return np.ascontiguousarray(moved, dtype=dtype).reshape(-1, self.p)

    def back(self, rows):
        """rows -> an array of x's shape (a view)."""
        return rows.reshape(self.mshape).transpose(self.from_mem)

    def row(self, per_channel):
        """A per-channel vector (C,) as one float32 row (P,)."""
        v = np.asarray(per_channel, np.float32).reshape(self.c)
        v = np.repeat(v, self.b) if self.b > 1 else v.copy()
        return np.tile(v, self.k) if self.k > 1 else v

    def channel_sums(self, blk):
        """Per-channel float32 sums of a block of rows (r, P) -> (C,): a GEMV with a ones
        vector (2x faster than numpy's sum over axes)."""
        if self.b > 1:
            s = blk.reshape(-1, self.b) @ parallel.ones(self.b, np.float32)
        else:
            s = parallel.ones(blk.shape[0], np.float32) @ blk
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


def _block_bytes(x2):
    return min(BLOCK_BYTES, max(parallel.BLOCK_BYTES, x2.nbytes // 2))


def _map_rows(fn, x2):
    return parallel.map_blocks(fn, x2.shape[0], x2[0].nbytes, _block_bytes(x2))


class Saved:
    """What the backward pass needs: x as rows and its layout, the batch mean, 1 / std,
    the per-channel scale (gamma / std), whether the sums must centre x, gamma's and
    beta's shapes (None when not given)."""

    __slots__ = ("x2", "lay", "mean", "inv", "scale", "centred", "gshape", "bshape",
                 "__weakref__")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


def moments(x, gamma, beta, axes, epsilon):
    """-> ((y, mean, var), Saved) shaped like norm_ops' exact op."""
    c_axis = next(i for i in range(x.ndim) if i not in axes)
    lay = _Layout(x, c_axis)
    x2 = lay.rows(x)
    fused = _native_rows(lay, x2)
    ort = not fused and lay.b >= ORT_MIN_POSITIONS and conv_fast.enabled()
    relu2 = None
    if fused:
        y2, mean, var, relu2 = _native_forward(x2, lay, gamma, beta, epsilon,
                                               "relu" in ahead.wanted())
    elif ort:
        y2, mean, var, relu2 = _ort_forward(x2, lay, gamma, beta, epsilon,
                                            "relu" in ahead.wanted())
    else:
        y2, mean, var = _numpy_forward(x2, lay, gamma, beta, epsilon)
    inv = (1.0 / np.sqrt(var.astype(np.float64) + np.float32(epsilon))).astype(np.float32)
    scale = inv * gamma.reshape(lay.c) if gamma is not None else inv
    kept = tuple(1 if i in axes else x.shape[i] for i in range(x.ndim))
    centred = bool(np.any(np.abs(mean) > CENTRE_RATIO * np.sqrt(var))) or not _folding()
    saved = Saved(x2=x2, lay=lay, mean=mean, inv=inv, scale=scale, centred=centred,
                  gshape=None if gamma is None else np.shape(gamma),
                  bshape=None if beta is None else np.shape(beta))
    y = lay.back(y2)
    array_tags.remember(_OUTPUTS, y, weakref.ref(saved))
    if fused or ort:                   # a relu after it may come from the same pass
        ahead.produced(y, None if relu2 is None else {"relu": lay.back(relu2)})
    return (y, mean.reshape(kept), var.reshape(kept)), saved


def _ort_forward(x2, lay, gamma, beta, epsilon, relu=False):
    """onnxruntime's BatchNormalization in training mode on x as (A, C, B): statistics and
    the normalized output in about two passes over x (3-4x faster than numpy's blocks); with
    momentum 0 and zero running statistics its 'running' outputs are the batch mean and
    (biased) variance. One thread: the op is memory-bound (64x16x32x32: 0.40 ms on one
    thread, 0.41 on two), and the next op ran slower after a two-thread session.
    -> (y rows, mean, var, relu(y) rows when `relu` else None): a Relu node on y (see
    ahead.py) costs +0.14 ms isolated, +0.20-0.28 in the ResNet step, where the relu op's
    own pass took 0.46-0.53 ms."""
    c = lay.c

    def build(helper):
        nodes = [helper.make_node("BatchNormalization", ["x", "gamma", "beta", "m0", "v0"],
                                  ["y", "mean", "var"], epsilon=float(epsilon), momentum=0.0,
                                  training_mode=1)]
        if relu:
            nodes.append(helper.make_node("Relu", ["y"], ["r"]))
        return nodes, [("x", [None, c, None])] + [(n, [c]) for n in ("gamma", "beta", "m0",
                                                                       "v0")]

    sess = conv_fast.session(("batch_norm_training", c, float(epsilon), relu), build,
                             threads=1, outputs=("y", "mean", "var") + (("r",) if relu else ()))
    zeros = np.zeros(c, np.float32)
    out = sess.run(None, {
        "x": x2.reshape(lay.a, c, lay.b),
        "gamma": np.ones(c, np.float32) if gamma is None else gamma.reshape(c),
        "beta": zeros if beta is None else beta.reshape(c), "m0": zeros, "v0": zeros})
    return (out[0].reshape(x2.shape), out[1], out[2],
            out[3].reshape(x2.shape) if relu else None)


def _numpy_forward(x2, lay, gamma, beta, epsilon):
    c = lay.c

    def stats(lo, hi):                 # (n, sum, squared deviations from the block mean)
        blk = x2[lo:hi]
        n = lay.block_count(lo, hi)
        s = lay.channel_sums(blk)
        m = (s / np.float32(n)).astype(np.float32)
        d = np.subtract(blk, lay.row(m))
        return [n], s.astype(np.float64), m.astype(np.float64), \
            lay.channel_dots(d, d).astype(np.float64)

    parts = _map_rows(stats, x2)
    mean64, var64 = _combined(*(np.array([p[k] for p in parts], dtype=np.float64)
                                for k in range(4)))
    scale64, shift64 = _scale_shift(mean64, var64, gamma, beta, epsilon, c)
    srow, trow = lay.row(scale64), lay.row(shift64)
    y2 = np.empty(x2.shape, np.float32)

    def normalize(lo, hi):
        out = np.multiply(x2[lo:hi], srow, out=y2[lo:hi])
        out += trow

    _map_rows(normalize, x2)
    return y2, mean64.astype(np.float32), var64.astype(np.float32)


def _combined(n, sums, centres, dev2):
    """(mean, variance) per channel in float64 from parts (blocks or rows) of n values each:
    their sums, any centres and sums of (x - centre)^2, all (parts, C) (n: (parts, 1) or a
    number); each part's squared deviations moved to the overall mean (Chan et al.)."""
    count = np.sum(np.broadcast_to(n, sums.shape), axis=0)
    mean64 = sums.sum(axis=0) / count
    shift = centres - mean64
    return mean64, (dev2 + 2.0 * shift * (sums - n * centres) + n * shift * shift).sum(
        axis=0) / count


def _scale_shift(mean64, var64, gamma, beta, epsilon, c):
    """The float64 factors of y = x scale + shift."""
    inv64 = 1.0 / np.sqrt(var64 + np.float32(epsilon))
    scale64 = inv64 * gamma.reshape(c) if gamma is not None else inv64
    return scale64, -mean64 * scale64 + (beta.reshape(c) if beta is not None else 0.0)


def _native_rows(lay, *rows):
    """Whether the C passes (native.bn_*) take these rows: channels-first memory with at
    least NATIVE_MIN_POSITIONS positions per channel, the kernels built and switched on."""
    return lay.kind == "first" and lay.b >= NATIVE_MIN_POSITIONS and native.takes(*rows)


def _image_blocks(fn, lay, x2):
    """[fn(lo, hi)] over blocks of images (the same blocks as `_map_rows`' bytes)."""
    return parallel.map_blocks(fn, lay.a, x2.nbytes // lay.a, _block_bytes(x2))


def _native_forward(x2, lay, gamma, beta, epsilon, relu=False):
    """The statistics and y (and relu(y) when `relu`) in C passes over blocks of images on
    the threads: per row of B values (an image's channel) its sum and squared deviations
    from its own float32 mean (the row read twice while in L1), combined per channel as
    `_numpy_forward`'s blocks are; then y = x scale + shift (and its relu) in one pass.
    -> (y rows, mean, var, relu rows or None)."""
    c, b = lay.c, lay.b
    x3 = x2.reshape(lay.a, c, b)
    rows = x3.reshape(-1, b)
    sums, dev2 = np.empty(len(rows)), np.empty(len(rows))

    def stats(lo, hi):
        sums[lo * c:hi * c], dev2[lo * c:hi * c] = native.bn_row_moments(rows[lo * c:hi * c])

    _image_blocks(stats, lay, x2)
    sums, dev2 = sums.reshape(lay.a, c), dev2.reshape(lay.a, c)
    centres = (sums / b).astype(np.float32).astype(np.float64)     # the kernel's centres
    mean64, var64 = _combined(b, sums, centres, dev2)
    scale64, shift64 = _scale_shift(mean64, var64, gamma, beta, epsilon, c)
    scale, shift = scale64.astype(np.float32), shift64.astype(np.float32)
    y3 = np.empty(x3.shape, np.float32)
    r3 = np.empty(x3.shape, np.float32) if relu else None

    def normalize(lo, hi):
        native.bn_normalize(x3[lo:hi], scale, shift, y3[lo:hi],
                            None if r3 is None else r3[lo:hi])

    _image_blocks(normalize, lay, x2)
    return (y3.reshape(x2.shape), mean64.astype(np.float32), var64.astype(np.float32),
            None if r3 is None else r3.reshape(x2.shape))


def moments_vjp(grads, saved, needs):
    gy, gmean, gvar = grads
    s = saved
    lay, x2 = s.lay, s.x2
    c, n = lay.c, np.float32(lay.a * lay.b)
    g2 = lay.rows(gy)                                  # x's memory order
    sums = _folded_sums(gy, s)
    if sums is None:
        sums, _ = _grad_sums(s, g2)
    gbeta = sums[0].astype(np.float32)
    ggamma = (sums[1] * s.inv).astype(np.float32)      # sum(g * xhat)
    gx = ggamma_ = gbeta_ = None
    if needs[0]:
        coef = s.inv * s.scale * ggamma / n            # per channel, times (x - mean)
        const = s.scale * gbeta / n
        gm = np.asarray(gmean)
        gv = np.asarray(gvar)
        if gm.any() or gv.any():                       # the statistics were used downstream
            coef = coef - 2.0 * gv.reshape(c).astype(np.float32) / n
            const = const - gm.reshape(c).astype(np.float32) / n
        srow, crow = lay.row(s.scale), lay.row(-coef)
        krow = lay.row(s.mean * coef - const)
        gx2 = np.empty(x2.shape, np.float32)
        fused = native.takes(g2, x2, srow, crow, krow)

        def input_grad(lo, hi):
            if fused:                   # one C pass, the same numbers
                native.bn_input_grad(g2[lo:hi], x2[lo:hi], srow, crow, krow, gx2[lo:hi])
                return
            out = np.multiply(g2[lo:hi], srow, out=gx2[lo:hi])
            t = np.multiply(x2[lo:hi], crow)
            t += krow
            out += t

        # the last blocks of the sums' pass first: they are still in cache
        bounds = parallel.blocks(x2.shape[0], x2[0].nbytes, _block_bytes(x2))
        if _folding():
            bounds = bounds[::-1]
        parallel.map_items(lambda j: input_grad(*bounds[j]), len(bounds))
        gx = lay.back(gx2)
        # per channel, sum(gx) = scale * sum(g) - coef * sum(x) + n * (mean * coef - const)
        # = scale * gbeta - n * const (sum(x) = n * mean): a conv before takes it as its
        # bias gradient (0 up to rounding unless the statistics are used downstream)
        conv_fast.mark_channel_sums(gx, (s.scale.astype(np.float64) * sums[0] - float(n) *
                                         np.asarray(const, np.float64)).astype(np.float32),
                                    lay.c_axis)
    if len(needs) > 1 and needs[1] and s.gshape is not None:
        ggamma_ = ggamma.reshape(s.gshape)
    if len(needs) > 2 and needs[2] and s.bshape is not None:
        gbeta_ = gbeta.reshape(s.bshape)
    return gx, ggamma_, gbeta_, None


def _grad_sums(s, g2, relu_y2=None):
    """((sum g, sum g * (x - mean)) per channel in float64, masked rows or None): one pass
    over blocks of rows on the threads. With `relu_y2` (a relu's output over this op's
    output, as rows) g is masked by relu_y2 > 0 first, into new rows returned as well.
    x is centred in the pass only when some channel's mean is large next to its spread
    (`s.centred`); otherwise sum(g * x) - mean * sum(g) in float64 is as exact (the float32
    products' rounding grows with |x| / |x - mean| <= sqrt(1 + CENTRE_RATIO^2))."""
    lay, x2 = s.lay, s.x2
    masked = None if relu_y2 is None else np.empty(x2.shape, np.float32)
    if _native_rows(lay, x2, g2, *(() if relu_y2 is None else (relu_y2,))):
        return _native_grad_sums(s, g2, relu_y2, masked), masked
    mrow = lay.row(s.mean) if s.centred else None

    def block(lo, hi):
        gb = g2[lo:hi]
        if masked is not None:
            gb = np.multiply(gb, relu_y2[lo:hi] > 0, out=masked[lo:hi])
        xb = x2[lo:hi] if mrow is None else np.subtract(x2[lo:hi], mrow)
        return np.concatenate([lay.channel_sums(gb), lay.channel_dots(gb, xb)])

    both = np.sum([p.astype(np.float64) for p in _map_rows(block, x2)], axis=0)
    gsum, gdot = both[:lay.c], both[lay.c:]
    if mrow is None:
        gdot = gdot - s.mean.astype(np.float64) * gsum
    return (gsum, gdot), masked


def _native_grad_sums(s, g2, relu_y2, masked):
    """`_grad_sums`' sums in one C pass per block of images, x always centred (free in the
    pass)."""
    lay = s.lay
    shape = (lay.a, lay.c, lay.b)
    x3, g3 = s.x2.reshape(shape), g2.reshape(shape)
    y3 = None if relu_y2 is None else relu_y2.reshape(shape)
    m3 = None if masked is None else masked.reshape(shape)

    def block(lo, hi):
        return native.channel_sums(g3[lo:hi], x3[lo:hi], None if y3 is None else y3[lo:hi],
                                   s.mean, None if m3 is None else m3[lo:hi])

    parts = _image_blocks(block, lay, s.x2)
    return tuple(np.sum([p[k] for p in parts], axis=0) for k in (0, 1))


# ---------------------------------------------------------------------------------------
# a relu right after the op: its mask and this op's first backward pass in one pass

# The relu's forward asks `output_of(x)` whether its input is such an op's output (matched
# by memory while alive: array_tags, as conv_fast's fused-relu outputs) and keeps the
# answer; its VJP then calls `relu_grad`, which masks the gradient and adds up this op's
# per-channel sums in the same pass over blocks, and marks the masked gradient with them.
# The op's VJP uses the sums when it receives exactly that array (a sum with another
# gradient, a copy or a reshaped view is a different array: it makes its own pass).
_OUTPUTS = {}              # outputs of `moments` -> weakref to their Saved
_SUMS = {}                 # masked gradients -> (weakref to the Saved, sums)


def _folding():
    """MODELKIT_BN_FOLD=0: the backward pass as before the fold (its own centred sums pass
    after the relu's mask pass, blocks in order), to compare the two."""
    return os.environ.get("MODELKIT_BN_FOLD", "1") != "0"


def output_of(a):
    """The Saved of the `moments` call whose output is exactly the array `a` (or whose
    output and another array `a` is the sum of, see `note_sum`), else None."""
    if not _OUTPUTS or not _folding():
        return None
    ref = array_tags.recall(_OUTPUTS, a)
    return ref() if ref is not None else None


def note_sum(out, a, b):
    """Record that `out` = a + b (same shapes): a relu over it folds its mask into the sums
    of the op whose output `b` (or else `a`) is; the add's VJP hands the relu's gradient to
    both unchanged (the residual blocks' BN + shortcut + relu)."""
    if not _OUTPUTS or out.dtype != np.float32:
        return
    s = output_of(b) or output_of(a)
    if s is not None:
        array_tags.remember(_OUTPUTS, out, weakref.ref(s))


def relu_grad(g, y, s):
    """g * (y > 0) for a relu whose input is the output of `moments` (Saved `s`) and
    output `y`, with that op's backward sums over the masked gradient taken in the same
    pass (see above); None when g is not float32 of that shape."""
    lay = s.lay
    if g.dtype != np.float32 or g.shape != lay.shape:
        return None
    sums, masked = _grad_sums(s, lay.rows(g), lay.rows(y))
    gx = lay.back(masked)
    array_tags.remember(_SUMS, gx, (weakref.ref(s), sums))
    return gx


def _folded_sums(g, s):
    entry = array_tags.recall(_SUMS, g)
    return entry[1] if entry is not None and entry[0]() is s else None

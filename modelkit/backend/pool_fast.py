"""Fast float32 max pooling for training: onnxruntime's MLAS `MaxPool` forward, the gradient
from the input and the pooled values.

`conv_ops.pool_max` dispatches here when `usable(...)` says so: float32, no padding, and
the input already channels-first in memory (a channels_first array, or the channels-last
view of channels-first memory that `conv_fast` returns), so MLAS reads it without a copy.
Everything else keeps the numpy path, which records the arg-max offsets in the forward pass.

After an NCHWc convolution the conv's own session computes the maxima from its blocked
result, and their blocked form too when an NCHWc conv reads the pool's output (asked for
at the conv's tape site: backend/ahead.py, conv_fast's "what the next op reads").

MLAS computes the maxima only. The backward pass gives each window's gradient to the first
cell (in row-major window order) equal to the window's maximum: TensorFlow's choice among
ties, the numpy path's too. Two ways, both over blocks of images on `parallel`'s threads:

- windows that tile the input (strides == pool, sizes divisible: Keras's default 2x2) go
  through full-size arrays, contiguous all the way (numpy's loops over strided window views
  run 5-10x slower than its contiguous ones): each cell equal to its window's maximum (the
  maxima repeated over their windows, `_repeat`) takes the window's gradient (repeated the
  same way); a count says whether a window with a nonzero gradient had several such cells,
  and only then are the cells preceded in their window by another taken out again
  (`_earlier`: each earlier offset is a fixed flat shift within an image, so that is a few
  boolean passes over shifted views);
- other windows (overlapping, or cells in no window): per window offset in row-major
  order, the cells equal to their window's maximum get the gradient not yet given, which
  is then masked out for the later offsets (four passes over strided views per offset).

Keras's default 2x2 windows with stride 2 over a 2D map go through one C pass instead
(native.max_pool_2x2_grad, where the kernels are built): the same numbers as the tiled way,
one read of the input and one write of the gradient (64x32x28x28, two threads: 2.00 -> 0.92
ms; 64x64x14x14: 1.07 -> 0.51).

After a fused-relu conv the pool also sums its masked gradient per channel, on the pooled
side: the conv's bias gradient without a pass over the full-size one (VGG-like step, 2
threads, same-process A/B: 51.3 -> 49.8 ms wall, 94.8 -> 91.9 ms CPU).
"""

import functools
import os

import numpy as np

from . import ahead, conv_fast, native, parallel


class Saved:
    """What the VJP needs: the NCHW input and output, the geometry."""

    __slots__ = ("x", "y", "pool", "strides", "channels_first", "relu")

    def __init__(self, x, y, pool, strides, channels_first, relu):
        self.x, self.y, self.pool, self.strides = x, y, pool, strides
        self.channels_first, self.relu = channels_first, relu


def usable(x, pads, channels_first):
    """True when the fast path pools this input (float32, no padding, channels-first
    memory, 1-3 spatial dims)."""
    if not (x.dtype == np.float32 and 1 <= x.ndim - 2 <= 3 and x.size > 0
            and not any(b or a for b, a in pads) and conv_fast.enabled()):
        return False
    xn = x if channels_first else np.moveaxis(x, -1, 1)
    return xn.flags.c_contiguous


def pool_max(x, pool, strides, out, channels_first):
    """-> (y in x's layout, saved)."""
    xn = x if channels_first else np.moveaxis(x, -1, 1)
    key = ("maxpool", xn.shape, tuple(pool), tuple(strides))

    def build(helper):
        return ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=list(pool),
                                  strides=list(strides))], [("x", list(xn.shape))])

    # computed by the conv before it? (with their NCHWc form if the conv after asks)
    request = ("max_pool", tuple(pool), tuple(strides), "nchwc" in ahead.wanted())
    y, yb = ahead.take(xn, request) or (None, None)
    if y is None:
        y = conv_fast.session(key, build).run(None, {"x": xn})[0]
    ahead.produced(y, None if yb is None else {"nchwc": yb})
    assert y.shape[2:] == tuple(out), (y.shape, out)
    saved = Saved(xn, y, tuple(pool), tuple(strides), channels_first,
                  conv_fast.relu_output(xn))
    return (y if channels_first else np.moveaxis(y, 1, -1)), saved


def pool_max_vjp(g, s):
    """The input gradient (in x's layout) of `pool_max`'s output gradient g."""
    xn, y, pool, strides, channels_first = s.x, s.y, s.pool, s.strides, s.channels_first
    gn = g if channels_first else np.moveaxis(g, -1, 1)
    gn = np.ascontiguousarray(gn, dtype=np.float32)
    out = y.shape[2:]
    tiled = all(st == p and o * p == L for st, p, o, L in zip(strides, pool, out, xn.shape[2:]))
    relu = s.relu is not None
    tiled_way = tiled and os.environ.get("MODELKIT_POOL_TILED", "1") != "0"
    fused = tiled_way and pool == (2, 2) and native.takes(xn, y, gn)
    if fused or (tiled_way and _shifts(pool) <= MAX_SHIFTS):
        dx = np.empty(xn.shape, np.float32)

        def grad(lo, hi):
            if not fused:
                return _tiled_grad(xn[lo:hi], y[lo:hi], gn[lo:hi], relu, pool, dx[lo:hi])
            gb = np.multiply(gn[lo:hi], y[lo:hi] > 0) if relu else gn[lo:hi]
            native.max_pool_2x2_grad(xn[lo:hi], y[lo:hi], gb, dx[lo:hi])
            return gb
        block = TILED_BLOCK_BYTES
    else:
        dx = (np.empty if tiled else np.zeros)(xn.shape, np.float32)

        def grad(lo, hi):
            return _offsets_grad(xn[lo:hi], y[lo:hi], gn[lo:hi], relu, pool, strides, tiled,
                                 dx[lo:hi])
        block = None

    def images(lo, hi):
        given = grad(lo, hi)
        return _channel_sums(given) if relu else None

    sums = parallel.map_blocks(images, xn.shape[0], xn[0].nbytes, block)
    if relu:
        conv_fast.mark_relu_masked(dx, s.relu)
        conv_fast.mark_channel_sums(dx, np.sum(sums, axis=0).astype(np.float32))
    return dx if channels_first else np.moveaxis(dx, 1, -1)


def _channel_sums(g):
    """Per-channel float64 sums over a block of images of the NCHW gradient each window
    gave to a cell: after a relu every window with a nonzero gradient has a cell equal to
    its maximum (> 0), which takes all of it, so these are the channel sums of dx too (the
    conv's bias gradient, 4x fewer values for 2x2 windows; see conv_fast)."""
    return conv_fast.image_channel_sums(g).sum(axis=0, dtype=np.float64)


MAX_SHIFTS = 16      # of the tiled way's tie pass (two boolean passes each): 4 for 2x2
                     # windows, 12 for 3x3, 13 for 2x2x2; larger windows go per offset
TILED_BLOCK_BYTES = 1 << 20      # of input per block (VGG pools, 1 thread: 5-20% faster
                                 # than parallel.BLOCK_BYTES; its 6 temporaries stay in L2)


def _tiled_grad(x, y, g, relu, pool, dx):
    """dx = the gradient g of the maxima y of the tiled windows of x (all NCHW, a block of
    images), given to each window's first maximum; `relu`: masked where y <= 0 too.
    Returns the gradient the windows gave (g, masked when `relu`).

    Every cell equal to its window's maximum takes the gradient first; when a window had
    several such cells (counted: those of windows with a zero gradient do not matter after
    a relu), the cells preceded in their window by another are taken out again."""
    if relu:                                          # the relu's mask, on the pooled side
        g = np.multiply(g, y > 0)
    hit = np.equal(x, _repeat(y, pool))               # the cells equal to their maximum
    gu = _repeat(g, pool)
    np.multiply(gu, hit, out=dx)
    if relu:       # (y > 0 is a maximum of its cells, so every such window has a hit)
        one_each = (np.count_nonzero(np.not_equal(dx, 0))
                    == np.count_nonzero(np.not_equal(g, 0)))
    else:          # (a NaN maximum equals no cell)
        one_each = np.count_nonzero(hit) == y.size
    if one_each:
        return g
    flat = hit.ravel()                                # ties: keep the first of each window
    before = np.zeros_like(flat)
    step = np.empty_like(flat)
    for shift, cells in _earlier(pool, x.shape[2:], flat.size):
        np.logical_and(flat[:-shift], cells[shift:], out=step[shift:])
        np.logical_or(before[shift:], step[shift:], out=before[shift:])
    np.greater(flat, before, out=flat)
    np.multiply(gu, hit, out=dx)
    return g


_PAIR = np.uint64(0x100000001)


def _repeat(a, pool):
    """The contiguous float32 NC... array `a` with each value repeated over its window."""
    if pool[-1] == 2:           # each float twice in a row: its bits times 2**32 + 1
        a = np.multiply(a.view(np.uint32), _PAIR).view(np.float32).reshape(
            a.shape[:-1] + (2 * a.shape[-1],))
    elif pool[-1] > 1:
        a = np.repeat(a, pool[-1], axis=-1)
    for axis in range(a.ndim - 2, 1, -1):             # whole rows (planes) at a time
        if pool[axis - 2] > 1:
            a = np.repeat(a, pool[axis - 2], axis=axis)
    return a


def _shifts(pool):
    """How many shifts `_earlier` has for windows `pool`: the differences of two offsets
    of a window, one per sign."""
    return (int(np.prod([2 * p - 1 for p in pool])) - 1) // 2


@functools.lru_cache(maxsize=16)
def _earlier(pool, spatial, size=None):
    """[(shift, cells)] for windows `pool` tiling images of `spatial` size, flattened (and
    repeated up to `size` cells): the cell at i (one where the bool array `cells` is True)
    has an earlier cell of its window at i - shift. Each shift (> 0) once."""
    spatial = tuple(int(L) for L in spatial)
    flat = np.cumprod((1,) + spatial[:0:-1])[::-1]               # per-axis flat strides
    offset = np.indices(spatial) % np.reshape(pool, (-1,) + (1,) * len(spatial))
    order = list(np.ndindex(*pool))
    shifts = {}
    for k, o in enumerate(order):
        at = np.logical_and.reduce([offset[d] == o[d] for d in range(len(pool))]).ravel()
        for e in order[:k]:
            shift = int(np.dot(np.subtract(o, e), flat))
            shifts[shift] = shifts.get(shift, False) | at
    reps = 1 if size is None else size // at.size
    return tuple((shift, np.tile(cells, reps)) for shift, cells in sorted(shifts.items()))


def _offsets_grad(x, y, g, relu, pool, strides, tiled, dx):
    """`_tiled_grad` for any windows: one step per window offset (dx zeros unless tiled)."""
    out = y.shape[2:]
    if relu:
        g = np.multiply(g, y > 0)
    rest = g.copy()                                   # gradient not yet given to a cell
    hit = np.empty(rest.shape, bool)
    slices = [(slice(None), slice(None)) + tuple(slice(o_, o_ + st * (o - 1) + 1, st)
                                                 for o_, st, o in zip(offset, strides, out))
              for offset in np.ndindex(*pool)]
    for k, sl in enumerate(slices):
        np.equal(x[sl], y, out=hit)
        if tiled:
            np.multiply(rest, hit, out=dx[sl])
        else:
            dx[sl] += rest * hit
        if k + 1 < len(slices):                       # (a multiply: putmask is 4x slower)
            np.multiply(rest, np.logical_not(hit, out=hit), out=rest)
    return g

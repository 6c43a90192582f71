"""Fast float32 max pooling for training: onnxruntime's MLAS `MaxPool` forward, the gradient
from the input and the pooled values.

`conv_ops.pool_max` dispatches here when `usable(...)` says so: float32, no padding, and
the input already channels-first in memory (a channels_first array, or the channels-last
view of channels-first memory that `conv_fast` returns), so MLAS reads it without a copy.
Everything else keeps the numpy path, which records the arg-max offsets in the forward pass.

MLAS computes the maxima only. The backward pass finds, per window offset in row-major
order, the cells equal to their window's maximum and gives each window's gradient to the
first of them (TensorFlow's choice among ties, the numpy path's too): a window whose
gradient was taken is masked out of the later offsets. That is four passes over the
pooled size per offset, done in blocks of images on `parallel`'s threads; the forward
pass's arg-max bookkeeping (the numpy path's costliest part) goes away.
"""

import numpy as np

from . import conv_fast, parallel


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

    y = conv_fast.session(key, build).run(None, {"x": xn})[0]
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
    dx = (np.empty if tiled else np.zeros)(xn.shape, np.float32)
    slices = [(slice(None), slice(None)) + tuple(slice(o_, o_ + st * (o - 1) + 1, st)
                                                 for o_, st, o in zip(offset, strides, out))
              for offset in np.ndindex(*pool)]

    def images(lo, hi):
        yb, d = y[lo:hi], dx[lo:hi]
        if s.relu is None:
            rest = gn[lo:hi].copy()                   # gradient not yet given to a cell
        else:                                         # the relu's mask, on the pooled side
            rest = np.multiply(gn[lo:hi], yb > 0)
        hit = np.empty(rest.shape, bool)
        for k, sl in enumerate(slices):
            np.equal(xn[lo:hi][sl], yb, out=hit)
            if tiled:
                np.multiply(rest, hit, out=d[sl])
            else:
                d[sl] += rest * hit
            if k + 1 < len(slices):                   # (a multiply: putmask is 4x slower)
                np.multiply(rest, np.logical_not(hit, out=hit), out=rest)

    parallel.map_blocks(images, xn.shape[0], xn[0].nbytes)
    if s.relu is not None:
        conv_fast.mark_relu_masked(dx, s.relu)
    return dx if channels_first else np.moveaxis(dx, 1, -1)

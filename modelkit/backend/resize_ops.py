"""`resize`: tf.image.resize / keras.ops.image.resize (no antialias) of the spatial axes to
a given size, as one linear map per axis (an (out, in) matrix), so the gradient is the
transposed map. Coordinates as TensorFlow's kernels compute them (half-pixel centres):
bilinear samples at `(o + 0.5) * in / out - 0.5` (clamped to the edges), nearest takes
`min(floor((o + 0.5) * in / out), in - 1)` (ONNX's `tf_half_pixel_for_nn`)."""

from __future__ import annotations

import numpy as np

from .tape import defop

INTERPOLATIONS = ("bilinear", "nearest")


def axis_map(n_in, n_out, interpolation, dtype):
    """The (n_out, n_in) matrix that resizes one axis."""
    scale = n_in / n_out
    o = np.arange(n_out, dtype=np.float64)
    m = np.zeros((n_out, n_in), dtype=np.float64)
    if interpolation == "nearest":
        src = np.minimum(np.floor((o + 0.5) * scale), n_in - 1).astype(np.int64)
        m[np.arange(n_out), src] = 1.0
    else:
        pos = (o + 0.5) * scale - 0.5
        lo = np.floor(pos)
        frac = pos - lo
        i0 = np.clip(lo, 0, n_in - 1).astype(np.int64)
        i1 = np.clip(lo + 1, 0, n_in - 1).astype(np.int64)
        np.add.at(m, (np.arange(n_out), i0), 1.0 - frac)
        np.add.at(m, (np.arange(n_out), i1), frac)
    return m.astype(dtype)


def _apply_maps(x, maps):
    for axis, m in maps:
        x = np.moveaxis(np.tensordot(m, x, axes=([1], [axis])), 0, axis)
    return x


@defop("resize")
def _resize(x, axes, size, interpolation):
    maps = [(a, axis_map(x.shape[a], n, interpolation, x.dtype)) for a, n in zip(axes, size)]
    return np.ascontiguousarray(_apply_maps(x, maps)), maps


@_resize.defvjp
def _(g, maps, needs):
    return (np.ascontiguousarray(_apply_maps(g, [(a, m.T) for a, m in maps])),)

"""Affine resampling of 2-D images in numpy, equal to `scipy.ndimage.affine_transform`.

Keras's image transforms call scipy with `order=1` (bilinear) or `order=0` (nearest) and the
boundary modes 'constant', 'nearest', 'reflect' and 'wrap'. This module reproduces scipy's
rules exactly (coordinates mapped into the image as scipy maps them, then interpolated from
the neighbouring pixels, summed in scipy's order in float64), so modelkit needs no scipy.
"""

import functools

import numpy as np

from modelkit.errors import ConfigError

__all__ = ["affine_resample", "FILL_MODES", "ORDERS"]

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
ORDERS = (0, 1)


def _map_coordinates(c, n, mode):
    """Map input coordinates lying outside [0, n-1] back inside, as scipy's `map_coordinate`.

    Returns the mapped coordinates and a mask of the points that take `cval` (constant mode).
    """
    low, high = c < 0, c > n - 1
    if mode == "constant":
        return np.where(low | high, 0.0, c), low | high
    if mode == "nearest":
        return np.clip(c, 0, n - 1), None
    if n <= 1:
        return np.where(low | high, 0.0, c), None
    out = c.copy()
    # np.trunc stands for scipy's C casts to integers (toward zero)
    if mode == "reflect":   # half-sample symmetric, period 2n
        sz2 = 2 * n
        cl = c[low]
        cl = np.where(cl < -sz2, sz2 * np.trunc(-cl / sz2) + cl, cl)
        out[low] = np.where(cl < -n, cl + sz2, -cl - 1)
        ch = c[high]
        ch = ch - sz2 * np.trunc(ch / sz2)
        out[high] = np.where(ch >= n, sz2 - ch - 1, ch)
    else:                   # 'wrap': scipy's legacy wrap, period n - 1
        sz = n - 1
        cl = c[low]
        out[low] = cl + sz * (np.trunc(-cl / sz) + 1)
        ch = c[high]
        out[high] = ch - sz * np.trunc(ch / sz)
    return out, None


def _map_index(idx, n, mode):
    """Map neighbour indices outside [0, n-1] into the image (their weight may be zero)."""
    if mode == "reflect" and n > 1:
        sz2 = 2 * n
        idx = np.mod(idx, sz2)
        return np.where(idx >= n, sz2 - idx - 1, idx)
    return np.clip(idx, 0, n - 1)


def _axis_taps(c, n, order, mode):
    """Per-point neighbour indices and weights along one axis, plus the `cval` mask."""
    cc, outside = _map_coordinates(c, n, mode)
    if order == 0:
        start = np.floor(cc + 0.5)
        return [_map_index(start.astype(np.intp), n, mode)], [None], outside
    start = np.floor(cc)
    t = cc - start
    start = start.astype(np.intp)
    idx = [_map_index(start, n, mode), _map_index(start + 1, n, mode)]
    return idx, [1.0 - t, t], outside


@functools.lru_cache(maxsize=8)
def _output_grid(rows, cols):
    """Row and column coordinates of every output pixel (float64, read-only, cached)."""
    oi, oj = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64),
                         indexing="ij")
    oi.flags.writeable = oj.flags.writeable = False
    return oi, oj


def _cast_like(values, dtype):
    """Store float64 results in `dtype` as scipy does (integers rounded half away from 0)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        rounded = np.where(values > 0, values + 0.5, values - 0.5)
        return np.clip(np.trunc(rounded), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def affine_resample(images, matrix, offset, order=1, mode="nearest", cval=0.0):
    """Resample a stack of 2-D images `(k, rows, cols)`: output pixel `o` takes the input at
    `matrix @ o + offset` (scipy's pull convention), interpolated with spline `order` 0 or 1.
    """
    if order not in ORDERS:
        raise ConfigError(f"affine transform: interpolation order {order!r} is not supported; "
                          f"expected one of {list(ORDERS)}")
    if mode not in FILL_MODES:
        raise ConfigError(f"affine transform: fill_mode {mode!r} is not supported; expected "
                          f"one of {list(FILL_MODES)}")
    images = np.asarray(images)
    _, rows, cols = images.shape
    m = np.asarray(matrix, dtype=np.float64)
    off = np.asarray(offset, dtype=np.float64)
    oi, oj = _output_grid(rows, cols)
    cr = (off[0] + oi * m[0, 0]) + oj * m[0, 1]   # scipy's summation order, bit for bit
    cc = (off[1] + oi * m[1, 0]) + oj * m[1, 1]
    ridx, rw, rout = _axis_taps(cr, rows, order, mode)
    cidx, cw, cout = _axis_taps(cc, cols, order, mode)
    flat = images.reshape(len(images), rows * cols)
    total = np.zeros(images.shape, dtype=np.float64)
    for ri, wr in zip(ridx, rw):
        for ci, wc in zip(cidx, cw):
            # values widen exactly to float64; (value * wr) * wc as scipy multiplies
            term = np.take(flat, ri * cols + ci, axis=1).astype(np.float64)
            if wr is not None:
                term *= wr
                term *= wc
            total += term
    if mode == "constant":
        total[:, rout | cout] = cval
    return _cast_like(total, images.dtype)

"""ONNX DFT (opsets 17 and 20) and STFT. DFT: forward / inverse, full or one-sided, real (..., 1) or
complex (..., 2) signals. A DFT is linear, so it runs as matrix products with the cos/sin
tables and is differentiable like any matmul."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from . import onnx_op
from ._util import axis_of, const, op, values


def _move_last(x, axis):
    order = tuple(i for i in range(x.ndim) if i != axis) + (axis,)
    return op("transpose", x, axes=order), tuple(order.index(i) for i in range(x.ndim))


def _fit(x, n):
    """Zero-pad or truncate the last axis to length n."""
    have = x.shape[-1]
    if have > n:
        return op("getitem", x, index=(Ellipsis, slice(0, n)))
    if have < n:
        return op("pad", x, pad_width=((0, 0),) * (x.ndim - 1) + ((0, n - have),),
                  constant=0.0)
    return x


def _tables(n, m, inverse, onesided):
    """(a, b, c, d): out_re = a @ re + b @ im, out_im = c @ re + d @ im ((out, in) each)."""
    if inverse and onesided:            # one-sided spectrum (m = n // 2 + 1) -> n real values
        k = np.arange(n // 2 + 1)
        t = np.arange(n)[:, None]
        weight = np.where((k == 0) | (2 * k == n), 1.0, 2.0) / n
        ang = 2 * np.pi * k * t / n
        return weight * np.cos(ang), -weight * np.sin(ang), None, None
    k = np.arange(m)[:, None]
    t = np.arange(n)[None, :]
    ang = 2 * np.pi * k * t / n
    c, s = np.cos(ang), np.sin(ang)
    if inverse:
        # re = (C xr - S xi) / n, im = (C xi + S xr) / n
        return c / n, -s / n, s / n, c / n
    # re = C xr + S xi, im = C xi - S xr
    return c, s, -s, c


@onnx_op("DFT")
def dft(inputs, attrs, ctx):
    x = inputs[0]
    length = inputs[1] if len(inputs) > 1 else None
    if ctx.opset >= 20:
        axis = int(np.asarray(values(inputs[2])).reshape(-1)[0]) \
            if len(inputs) > 2 and inputs[2] is not None else -2
    else:
        axis = int(attrs.get("axis", 1))
    if x.shape[-1] not in (1, 2):
        raise ShapeError(f"DFT: the last axis holds (real[, imaginary]); got {x.shape[-1]}")
    axis = axis_of(axis, x.ndim, "DFT axis")
    if axis == x.ndim - 1:
        raise ShapeError("DFT: the axis cannot be the last (real/imaginary) axis")
    inverse, onesided = bool(int(attrs.get("inverse", 0))), bool(int(attrs.get("onesided", 0)))
    size = x.shape[axis]
    if length is not None:
        n = int(np.asarray(values(length)).reshape(-1)[0])
    else:
        n = 2 * (size - 1) if inverse and onesided else size
    m = n // 2 + 1 if onesided and not inverse else n
    re = op("getitem", x, index=(Ellipsis, 0))
    im = op("getitem", x, index=(Ellipsis, 1)) if x.shape[-1] == 2 else None
    re, back = _move_last(re, axis)
    im = _move_last(im, axis)[0] if im is not None else None
    a, b, c, d = _tables(n, m, inverse, onesided)
    width = n // 2 + 1 if inverse and onesided else n
    re = _fit(re, width)
    im = _fit(im, width) if im is not None else None

    def mix(p, q):
        out = op("matmul", re, const(p.T.astype(x.dtype)))
        if im is not None:
            out = op("add", out, op("matmul", im, const(q.T.astype(x.dtype))))
        return op("transpose", out, axes=back)
    out_re = mix(a, b)
    if c is None:                       # the inverse of a one-sided spectrum is real
        return op("reshape", out_re, shape=tuple(out_re.shape) + (1,))
    return op("stack", out_re, mix(c, d), axis=-1)


@onnx_op("STFT")
def stft(inputs, attrs, ctx):
    """Frames of `frame_length` every `frame_step` samples, times the window, each through
    the DFT (one-sided by default): (batch, frames, bins, 2)."""
    from . import OpContext
    x, step = inputs[:2]
    window = inputs[2] if len(inputs) > 2 else None
    length = inputs[3] if len(inputs) > 3 else None
    step = int(np.asarray(values(step)).reshape(-1)[0])
    if length is not None:
        n = int(np.asarray(values(length)).reshape(-1)[0])
    elif window is not None:
        n = window.shape[0]
    else:
        raise ShapeError("STFT needs a window or a frame_length")
    total = x.shape[1]
    count = (total - n) // step + 1
    if step <= 0 or count <= 0:
        raise ShapeError(f"STFT: no frame of {n} samples fits a signal of {total} "
                         f"(frame_step {step})")
    frames = op("stack", *[op("getitem", x, index=(slice(None), slice(k * step, k * step + n)))
                           for k in range(count)], axis=1)      # (batch, frames, n, 1|2)
    if window is not None:
        frames = op("multiply", frames, op("reshape", window, shape=(1, 1, n, 1)))
    return dft([frames], {"axis": 2, "onesided": int(attrs.get("onesided", 1))},
               OpContext(17, ctx.training, 1))

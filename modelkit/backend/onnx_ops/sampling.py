"""ONNX GridSample (opset 16+; 2-D and 3-D) and DeformConv (2-D, built on it). GridSample: X sampled at the normalised grid locations with
nearest / (bi)linear / (bi)cubic interpolation and zeros / border / reflection padding.

Built from gathers of X and interpolation weights computed from the grid with backend ops,
so it is differentiable in X and (for linear and cubic) in the grid."""

from __future__ import annotations

import itertools

import numpy as np

from ...errors import ShapeError, UnsupportedError
from ...onnx_spec import text
from . import onnx_op
from ._util import const, like, op, values

_MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest",
          "bicubic": "cubic", "cubic": "cubic"}
_A = -0.75          # the cubic convolution coefficient GridSample uses


def _reflect(x, lo, hi):
    """Fold coordinates into [lo, hi] by reflection at the edges; also the slope (+1/-1)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(x, lo), np.zeros_like(x)
    d = np.where(x < lo, lo - x, x - hi)
    n = np.floor(d / span)
    r = d - n * span
    even = n % 2 == 0
    below = np.where(even, lo + r, hi - r)
    above = np.where(even, hi - r, lo + r)
    folded = np.where(x < lo, below, np.where(x > hi, above, x))
    slope = np.where(x < lo, np.where(even, -1.0, 1.0),
                     np.where(x > hi, np.where(even, -1.0, 1.0), 1.0))
    return folded, slope


def _axis_taps(g, size, mode, padding, align):
    """One spatial axis: [(index array, valid mask, weight tensor or None)] per tap, for the
    grid component `g` (a tensor of normalised coordinates)."""
    gv = np.asarray(values(g), dtype=np.float64)
    a = (size - 1) / 2.0 if align else size / 2.0
    x = (gv + 1) * a if align else ((gv + 1) * size - 1) / 2.0
    slope = np.ones_like(x)
    if mode == "nearest":
        x = np.rint(x)
    lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
    if padding == "border":
        outside = (x < lo) | (x > hi)           # clamped there: no gradient
        slope = np.where(outside, 0.0, slope)
        x = np.where(outside, np.clip(x, 0, size - 1), x)
    elif padding == "reflection":
        x, slope = _reflect(x, lo, hi)

    def place(i):
        if padding == "zeros":
            return np.clip(i, 0, size - 1), (i >= 0) & (i < size)
        if padding == "border":
            return np.clip(i, 0, size - 1), np.ones(i.shape, bool)
        return np.clip(_reflect(i.astype(np.float64), lo, hi)[0].astype(np.int64), 0,
                       size - 1), np.ones(i.shape, bool)

    if mode == "nearest":
        idx, ok = place(x.astype(np.int64))
        return [(idx, ok, None)]
    base = np.floor(x)
    # the fractional position as a tensor: its value is exact, its gradient d x / d g
    t = op("multiply", g, const((slope * a).astype(g.dtype)))
    frac = op("add", op("subtract", t, op("stop_gradient", t)),
              const((x - base).astype(g.dtype)))
    one = like(frac, 1.0)
    if mode == "linear":
        weights = {0: op("subtract", one, frac), 1: frac}
    else:
        weights = {k: _cubic_weight(op("subtract", frac, like(frac, float(k))))
                   for k in (-1, 0, 1, 2)}
    taps = []
    for k, w in weights.items():
        idx, ok = place(base.astype(np.int64) + k)
        taps.append((idx, ok, w))
    return taps


def _cubic_weight(d):
    """Keys' cubic kernel at distance d (a tensor), for |d| < 2."""
    ad = op("abs", d)
    near = op("add", op("multiply", op("multiply", op("subtract",
              op("multiply", ad, like(ad, _A + 2)), like(ad, _A + 3)), ad), ad), like(ad, 1.0))
    far = op("subtract", op("multiply", op("add", op("multiply", op("subtract",
             op("multiply", ad, like(ad, _A)), like(ad, 5 * _A)), ad), like(ad, 8 * _A)), ad),
             like(ad, 4 * _A))
    return op("where", np.asarray(values(ad)) <= 1, near, far)


@onnx_op("GridSample")
def grid_sample(inputs, attrs, ctx):
    x, grid = inputs
    spatial = tuple(x.shape[2:])
    r = len(spatial)
    if grid.ndim != r + 2 or grid.shape[-1] != r or grid.shape[0] != x.shape[0]:
        raise ShapeError(f"GridSample: grid shape {tuple(grid.shape)} does not fit X shape "
                         f"{tuple(x.shape)} (expected (N, *out, {r}))")
    mode = _MODES.get(text(attrs.get("mode"), "linear" if ctx.opset >= 20 else "bilinear"))
    padding = text(attrs.get("padding_mode"), "zeros")
    if mode is None or padding not in ("zeros", "border", "reflection"):
        raise UnsupportedError(f"GridSample mode {attrs.get('mode')!r} / padding_mode "
                               f"{padding!r}")
    align = bool(int(attrs.get("align_corners", 0)))
    n, c = x.shape[:2]
    out = tuple(grid.shape[1:-1])
    points = int(np.prod(out))
    per_axis = []
    for d, size in enumerate(spatial):          # grid's last axis lists (x, y[, z]) = W, H, D
        g = op("getitem", grid, index=(Ellipsis, r - 1 - d))
        per_axis.append(_axis_taps(g, size, mode, padding, align))
    strides = [int(np.prod(spatial[d + 1:])) for d in range(r)]
    flat_x = op("reshape", x, shape=(n, c, -1))
    y = None
    for combo in itertools.product(*per_axis):
        flat = sum(idx * s for (idx, _, _), s in zip(combo, strides)).reshape(n, 1, points)
        ok = np.logical_and.reduce([t[1] for t in combo]).reshape(n, 1, points)
        picked = op("take_along", flat_x, np.broadcast_to(flat, (n, c, points)).copy(), axis=2)
        term = op("multiply", picked, const(ok.astype(x.dtype)))
        weight = None
        for _, _, w in combo:
            if w is not None:
                weight = w if weight is None else op("multiply", weight, w)
        if weight is not None:
            term = op("multiply", term, op("reshape", weight, shape=(n, 1, points)))
        y = term if y is None else op("add", y, term)
    return op("reshape", y, shape=(n, c) + out)


@onnx_op("DeformConv")
def deform_conv(inputs, attrs, ctx):
    """2-D deformable convolution: every kernel tap reads X bilinearly (zeros outside) at its
    regular position plus a learned offset, optionally scaled by a mask; the samples are then
    combined by the kernel as a grouped convolution would. Differentiable in X, W, B, the
    offsets and the mask (the sampling is GridSample's)."""
    from . import OpContext
    x, w, offset = inputs[:3]
    b = inputs[3] if len(inputs) > 3 else None
    mask = inputs[4] if len(inputs) > 4 else None
    if x.ndim != 4:
        raise UnsupportedError(f"DeformConv of a {x.ndim - 2}-D input (2-D only)")
    n, c, ih, iw = x.shape
    oc, cpg, kh, kw = w.shape
    group, og = int(attrs.get("group", 1)), int(attrs.get("offset_group", 1))
    sh, sw = (int(s) for s in attrs.get("strides", [1, 1]))
    dh, dw = (int(d) for d in attrs.get("dilations", [1, 1]))
    pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
    oh, ow = offset.shape[-2:]
    if c % og or c != cpg * group or offset.shape[1] != og * kh * kw * 2:
        raise ShapeError(f"DeformConv: X {tuple(x.shape)}, W {tuple(w.shape)} and offset "
                         f"{tuple(offset.shape)} do not fit group={group}, "
                         f"offset_group={og}")
    off = op("reshape", offset, shape=(n, og, kh, kw, 2, oh, ow))
    m = op("reshape", mask, shape=(n, og, kh, kw, oh, ow)) if mask is not None else None
    rows = (np.arange(oh) * sh - pads[0]).reshape(-1, 1)
    cols_ = (np.arange(ow) * sw - pads[1]).reshape(1, -1)
    sample_ctx = OpContext(20, ctx.training, 1)
    cg = c // og
    columns = []
    for g in range(og):
        xg = op("getitem", x, index=(slice(None), slice(g * cg, (g + 1) * cg)))
        taps = []
        for i in range(kh):
            for j in range(kw):
                y = op("add", op("getitem", off, index=(slice(None), g, i, j, 0)),
                       const((rows + i * dh).astype(x.dtype)))
                xx = op("add", op("getitem", off, index=(slice(None), g, i, j, 1)),
                        const((cols_ + j * dw).astype(x.dtype)))
                gy = op("subtract", op("multiply", y, like(y, 2.0 / max(ih - 1, 1))),
                        like(y, 1.0))
                gx = op("subtract", op("multiply", xx, like(xx, 2.0 / max(iw - 1, 1))),
                        like(xx, 1.0))
                s = grid_sample([xg, op("stack", gx, gy, axis=-1)],
                                {"mode": "linear", "align_corners": 1}, sample_ctx)
                if m is not None:
                    s = op("multiply", s, op("reshape", op("getitem", m, index=(
                        slice(None), g, i, j)), shape=(n, 1, oh, ow)))
                taps.append(s)
        columns.append(op("stack", *taps, axis=2))            # (n, cg, K, oh, ow)
    col = columns[0] if og == 1 else op("concatenate", *columns, axis=1)
    k = kh * kw
    opg = oc // group
    outs = []
    for gi in range(group):
        cg_ = op("reshape", op("getitem", col, index=(slice(None), slice(gi * cpg,
                                                                        (gi + 1) * cpg))),
                 shape=(n, cpg * k, oh * ow))
        wg = op("reshape", op("getitem", w, index=(slice(gi * opg, (gi + 1) * opg),)),
                shape=(opg, cpg * k))
        outs.append(op("matmul", wg, cg_))                    # (n, opg, oh * ow)
    y = outs[0] if group == 1 else op("concatenate", *outs, axis=1)
    y = op("reshape", y, shape=(n, oc, oh, ow))
    if b is not None:
        y = op("add", y, op("reshape", b, shape=(1, oc, 1, 1)))
    return y

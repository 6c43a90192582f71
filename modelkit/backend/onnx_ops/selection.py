"""ONNX ops that pick, reorder or crop/pad parts of a tensor: Compress, ReverseSequence,
CenterCropPad (differentiable for float tensors: built from getitem/take/pad) and Unique."""

from __future__ import annotations

import numpy as np

from . import onnx_op
from ._util import axis_of, const, ints, is_float, op, values


def _take(x, idx, axis):
    if not is_float(x):
        return const(np.take(values(x), idx, axis=axis))
    return op("take", x, idx, axis=axis)


@onnx_op("Compress")
def compress(inputs, attrs, ctx):
    """The slices along `axis` (the flattened input when there is no axis) where the
    condition is true; a condition shorter than the axis keeps only its length."""
    x, cond = inputs
    keep = np.flatnonzero(np.asarray(values(cond)).reshape(-1).astype(bool))
    if "axis" not in attrs:
        flat = op("reshape", x, shape=(-1,)) if is_float(x) else const(values(x).reshape(-1))
        return _take(flat, keep, 0)
    return _take(x, keep, axis_of(attrs["axis"], x.ndim, "Compress axis"))


@onnx_op("ReverseSequence")
def reverse_sequence(inputs, attrs, ctx):
    """Reverse the first sequence_lens[b] steps of every batch entry b (time_axis /
    batch_axis 0 or 1); later steps stay in place."""
    x, lens = inputs
    t_axis, b_axis = int(attrs.get("time_axis", 0)), int(attrs.get("batch_axis", 1))
    steps, batch = x.shape[t_axis], x.shape[b_axis]
    order = np.tile(np.arange(steps)[:, None], (1, batch))
    for b, n in enumerate(ints(lens)):
        order[:n, b] = np.arange(n)[::-1]
    # a flat gather over (time, batch): position (t, b) reads (order[t, b], b)
    moved = np.moveaxis(np.arange(int(np.prod(x.shape))).reshape(x.shape), (t_axis, b_axis), (0, 1))
    source = moved[order, np.arange(batch)[None, :]]
    index = np.moveaxis(source, (0, 1), (t_axis, b_axis))
    flat = op("reshape", x, shape=(-1,)) if is_float(x) else const(values(x).reshape(-1))
    return _take(flat, index, 0)


@onnx_op("CenterCropPad")
def center_crop_pad(inputs, attrs, ctx):
    """Crop or zero-pad each listed axis to its new length, centred (an odd difference puts
    the extra cell at the end)."""
    x, shape = inputs
    axes = [axis_of(a, x.ndim, "CenterCropPad axis")
            for a in attrs.get("axes", range(x.ndim))]
    crop, pads = [slice(None)] * x.ndim, [(0, 0)] * x.ndim
    for a, n in zip(axes, ints(shape)):
        d = x.shape[a]
        if n < d:
            start = (d - n) // 2
            crop[a] = slice(start, start + n)
        elif n > d:
            before = (n - d) // 2
            pads[a] = (before, n - d - before)
    if not is_float(x):
        return const(np.pad(values(x)[tuple(crop)], pads))
    y = op("getitem", x, index=tuple(crop))
    return op("pad", y, pad_width=tuple(pads), constant=0.0) if any(p != (0, 0)
                                                                   for p in pads) else y


@onnx_op("Unique")
def unique(inputs, attrs, ctx):
    """The distinct elements (or slices along `axis`), sorted or in order of first
    occurrence, with the index of each one's first occurrence, every element's position in
    the result, and the counts (forward only: its outputs are selections and counts)."""
    x = np.asarray(values(inputs[0]))
    axis = attrs.get("axis")
    data = x.reshape(-1) if axis is None else np.moveaxis(x, axis_of(axis, x.ndim,
                                                                     "Unique axis"), 0)
    keys = data.reshape(len(data), -1)
    _, first, inverse, counts = np.unique(keys, axis=0, return_index=True,
                                          return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if not int(attrs.get("sorted", 1)):         # order of first occurrence
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        first, counts, inverse = first[order], counts[order], rank[inverse]
    y = data[first]
    if axis is not None:
        y = np.moveaxis(y, 0, axis_of(axis, x.ndim, "Unique axis"))
    outs = [const(y), const(first.astype(np.int64)), const(inverse.astype(np.int64)),
            const(counts.astype(np.int64))]
    return outs[:max(ctx.num_outputs, 1)]

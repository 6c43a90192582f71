"""ONNX ops that write values into positions of a larger tensor, all as the backend's
`scatter_nd` (differentiable in what is written and in what is kept): TensorScatter (KV-cache
update), MaxUnpool and Col2Im (overlapping blocks summed)."""

from __future__ import annotations

import itertools

import numpy as np

from ...errors import ShapeError
from ...onnx_spec import text
from . import onnx_op
from ._util import axis_of, const, ints, is_float, op, values


def _scatter(data, updates, coords, reduction="none"):
    """`data` with `updates` written (or added) at the full coordinates `coords` (..., ndim)."""
    if not (is_float(data) and is_float(updates)):
        out = np.array(values(data), copy=True)
        index = tuple(np.moveaxis(coords, -1, 0))
        if reduction == "add":
            np.add.at(out, index, values(updates))
        else:
            out[index] = values(updates)
        return const(out)
    return op("scatter_nd", data, updates, indices=coords, reduction=reduction)


@onnx_op("TensorScatter")
def tensor_scatter(inputs, attrs, ctx):
    """The cache with `update` written along `axis` from each batch entry's write index on
    (wrapping around in circular mode)."""
    cache, update = inputs[:2]
    where = inputs[2] if len(inputs) > 2 else None
    axis = axis_of(attrs.get("axis", -2), cache.ndim, "TensorScatter axis")
    mode = text(attrs.get("mode"), "linear")
    if any(c != u for i, (c, u) in enumerate(zip(cache.shape, update.shape)) if i != axis) \
            or update.shape[axis] > cache.shape[axis]:
        raise ShapeError(f"TensorScatter: update {tuple(update.shape)} does not fit cache "
                         f"{tuple(cache.shape)} along axis {axis}")
    starts = np.zeros(cache.shape[0], np.int64) if where is None else \
        np.asarray(values(where)).astype(np.int64).reshape(-1)
    grid = np.indices(tuple(update.shape))
    pos = grid[axis] + starts.reshape((-1,) + (1,) * (cache.ndim - 1))
    if mode == "circular":
        pos = pos % cache.shape[axis]
    elif np.any(pos >= cache.shape[axis]):
        raise ShapeError("TensorScatter: a write runs past the cache (linear mode)")
    grid[axis] = pos
    return _scatter(cache, update, np.moveaxis(grid, 0, -1))


@onnx_op("MaxUnpool")
def max_unpool(inputs, attrs, ctx):
    """X's values placed at MaxPool's flat indices in a zero tensor of the unpooled shape
    (output_shape, when given, pads it at the end)."""
    x, indices = inputs[:2]
    kernel = [int(k) for k in attrs["kernel_shape"]]
    n = len(kernel)
    strides = [int(s) for s in attrs.get("strides", [1] * n)]
    pads = [int(p) for p in attrs.get("pads", [0] * 2 * n)]
    shape = list(x.shape[:2]) + [(L - 1) * s - (pads[i] + pads[n + i]) + k for i, (L, s, k)
                                 in enumerate(zip(x.shape[2:], strides, kernel))]
    flat = np.asarray(values(indices)).astype(np.int64).reshape(-1, 1)
    size = int(np.prod(shape))
    if flat.size and (flat.min() < 0 or flat.max() >= size):
        raise ShapeError(f"MaxUnpool: an index is outside the {size} unpooled elements")
    zeros = const(np.zeros(size, x.dtype))
    xs = op("reshape", x, shape=(-1,)) if is_float(x) else const(values(x).reshape(-1))
    y = op("reshape", _scatter(zeros, xs, flat), shape=tuple(shape))
    if len(inputs) > 2 and inputs[2] is not None:
        want = ints(inputs[2])
        extra = [(0, w - s) for w, s in zip(want, shape)]
        if any(e < 0 for _, e in extra):
            raise ShapeError(f"MaxUnpool: output_shape {want} is smaller than {shape}")
        if any(e for _, e in extra):
            y = op("pad", y, pad_width=tuple(extra), constant=0.0)
    return y


@onnx_op("Col2Im")
def col2im(inputs, attrs, ctx):
    """(N, C * prod(block), L) columns back to an (N, C, *image) image, overlapping blocks
    summed (the inverse layout of im2col, with strides, dilations and pads)."""
    x, image, block = inputs
    image, block = ints(image), ints(block)
    r = len(image)
    strides = [int(s) for s in attrs.get("strides", [1] * r)]
    dilations = [int(d) for d in attrs.get("dilations", [1] * r)]
    pads = [int(p) for p in attrs.get("pads", [0] * 2 * r)]
    padded = [i + pads[d] + pads[r + d] for d, i in enumerate(image)]
    counts = [(p - (b - 1) * dl - 1) // s + 1
              for p, b, dl, s in zip(padded, block, dilations, strides)]
    n, ck, cols = x.shape
    k = int(np.prod(block))
    if ck % k or cols != int(np.prod(counts)):
        raise ShapeError(f"Col2Im: input {tuple(x.shape)} does not hold blocks {block} over "
                         f"{counts} positions")
    c = ck // k
    # the padded-image position of every (block offset, block position)
    offsets = np.array(list(itertools.product(*(range(b) for b in block))))      # (k, r)
    starts = np.array(list(itertools.product(*(range(m) for m in counts))))     # (L, r)
    coords = starts[None, :, :] * strides + offsets[:, None, :] * dilations     # (k, L, r)
    flat = np.ravel_multi_index(tuple(np.moveaxis(coords, -1, 0)), padded)      # (k, L)
    nn_, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    full = np.stack(np.broadcast_arrays(nn_[:, :, None, None], cc[:, :, None, None],
                                        flat[None, None]), axis=-1)            # (n, c, k, L, 3)
    zeros = const(np.zeros((n, c, int(np.prod(padded))), x.dtype))
    cols_ = op("reshape", x, shape=(n, c, k, cols))
    y = op("reshape", _scatter(zeros, cols_, full, "add"), shape=(n, c) + tuple(padded))
    crop = (slice(None), slice(None)) + tuple(slice(pads[d], pads[d] + image[d])
                                              for d in range(r))
    return op("getitem", y, index=crop)

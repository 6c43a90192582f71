"""Shape and indexing ops: reshape, transpose, concat, stack, slicing, gather, tile, pad."""

import numpy as np

from . import sparse_grad
from .sparse_grad import IndexedRows
from .tape import defop, unbroadcast


@defop("reshape")
def _reshape(x, shape=None):
    return x.reshape(shape), (x.shape,)


@_reshape.defvjp
def _(g, s, needs):
    return (g.reshape(s[0]),)


@defop("transpose")
def _transpose(x, axes=None):
    axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(axes)
    return np.transpose(x, axes), (axes,)


@_transpose.defvjp
def _(g, s, needs):
    return (np.transpose(g, np.argsort(s[0])),)


@defop("broadcast_to")
def _broadcast_to(x, shape=None):
    return np.broadcast_to(x, shape), (x.shape,)


@_broadcast_to.defvjp
def _(g, s, needs):
    return (unbroadcast(g, s[0]),)


@defop("concatenate")
def _concatenate(*xs, axis=-1):
    axis = axis % xs[0].ndim
    sizes = [x.shape[axis] for x in xs]
    return np.concatenate(xs, axis=axis), (axis, sizes)


@_concatenate.defvjp
def _(g, s, needs):
    axis, sizes = s
    splits = np.cumsum(sizes)[:-1]
    parts = np.split(g, splits, axis=axis)
    return tuple(p if n else None for p, n in zip(parts, needs))


@defop("stack")
def _stack(*xs, axis=0):
    return np.stack(xs, axis=axis), (axis, len(xs))


@_stack.defvjp
def _(g, s, needs):
    axis, n = s
    return tuple(np.take(g, i, axis=axis) if needs[i] else None for i in range(n))


@defop("getitem")
def _getitem(x, index=None):
    return x[index], (x.shape, x.dtype, index)


@_getitem.defvjp
def _(g, s, needs):
    shape, dtype, index = s
    out = np.zeros(shape, dtype=g.dtype)
    np.add.at(out, index, g) if _has_advanced(index) else out.__setitem__(index, g)
    return (out,)


def _has_advanced(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, (list, np.ndarray)) for i in items)


@defop("gather")
def _gather(params, indices, axis=0):
    """np.take along `axis` (embedding lookup); indices carry no gradient."""
    return np.take(params, indices, axis=axis), (params.shape, indices, axis)


@_gather.defvjp
def _(g, s, needs):
    shape, indices, axis = s
    if axis != 0:
        from ..errors import UnsupportedError
        raise UnsupportedError(f"gather: the gradient is implemented for axis 0 (an embedding "
                               f"lookup), not axis {axis}")
    rows = IndexedRows.from_scatter(shape, indices, g)     # sorted reduceat, not np.add.at
    return (rows if sparse_grad.allowed() else rows.dense(), None)


@defop("tile")
def _tile(x, reps=None):
    return np.tile(x, reps), (x.shape, tuple(reps))


@_tile.defvjp
def _(g, s, needs):
    shape, reps = s
    reps = (1,) * (len(shape) - len(reps)) + reps
    shape_full = (1,) * (len(reps) - len(shape)) + shape
    inter = []
    for r, d in zip(reps, shape_full):
        inter.extend([r, d])
    g = g.reshape(inter).sum(axis=tuple(range(0, len(inter), 2)))
    return (g.reshape(shape),)


@defop("repeat")
def _repeat(x, repeats=1, axis=0):
    return np.repeat(x, repeats, axis=axis), (x.shape, repeats, axis % x.ndim)


@_repeat.defvjp
def _(g, s, needs):
    shape, repeats, axis = s
    new = shape[:axis] + (shape[axis], repeats) + shape[axis + 1:]
    return (g.reshape(new).sum(axis=axis + 1),)


@defop("pad")
def _pad(x, pad_width=None, constant=0.0):
    return np.pad(x, pad_width, constant_values=constant), (x.shape, pad_width)


@_pad.defvjp
def _(g, s, needs):
    shape, pw = s
    idx = tuple(slice(lo, lo + n) for (lo, _), n in zip(pw, shape))
    return (g[idx],)


@defop("flip")
def _flip(x, axis=None):
    return np.flip(x, axis=axis), (axis,)


@_flip.defvjp
def _(g, s, needs):
    return (np.flip(g, axis=s[0]),)

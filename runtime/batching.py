"""Batch splitting and concatenation for inference.

Feeds are dicts of name -> array whose first axis is the batch axis. `iter_batches` cuts
them into consecutive slices of at most `batch_size` rows (views, no copies); `concat_batches`
joins per-batch results back along the batch axis. Both are plain numpy and know nothing
about onnxruntime, so the HTTP server can use them too.
"""

from __future__ import annotations

import numpy as np

from modelkit.errors import ConfigError, ShapeError

__all__ = ["batch_size_of", "num_batches", "iter_batches", "concat_batches"]


def batch_size_of(feeds):
    """The common length of axis 0 of every array in `feeds` (a dict).

    Raises ShapeError naming the inputs when they disagree or when one is a scalar.
    """
    size = None
    first = None
    for name, arr in feeds.items():
        if np.ndim(arr) == 0:
            raise ShapeError(f"Input {name!r} is a scalar and has no batch axis")
        n = len(arr)
        if size is None:
            size, first = n, name
        elif n != size:
            raise ShapeError(f"Inputs have different batch sizes: {first!r} has {size}, "
                             f"{name!r} has {n}")
    if size is None:
        raise ShapeError("No inputs were given, so there is no batch size")
    return size


def num_batches(total, batch_size):
    """How many batches of at most `batch_size` rows cover `total` rows."""
    return -(-total // batch_size) if total else 0


def iter_batches(feeds, batch_size, total=None):
    """Yield dicts holding consecutive row slices of every array in `feeds`.

    `batch_size` must be a positive int; the last batch may be smaller. Slices of
    C-contiguous arrays along axis 0 are C-contiguous views, so nothing is copied.
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if total is None:
        total = batch_size_of(feeds)
    for start in range(0, total, batch_size):
        stop = start + batch_size
        yield {name: arr[start:stop] for name, arr in feeds.items()}


def concat_batches(results, names):
    """Join per-batch results along axis 0.

    `results` is a list of lists (one list of arrays per batch, ordered like `names`);
    returns a list with one array per name. A single batch is returned as is (no copy).
    """
    if not results:
        raise ShapeError("There are no batches to concatenate")
    if len(results) == 1:
        return list(results[0])
    joined = []
    for i, name in enumerate(names):
        parts = [r[i] for r in results]
        if any(np.ndim(p) == 0 for p in parts):
            raise ShapeError(f"Output {name!r} is a scalar and has no batch axis, so batches "
                             f"cannot be concatenated; predict without batch_size")
        try:
            joined.append(np.concatenate(parts, axis=0))
        except ValueError:
            shapes = ", ".join(str(tuple(np.shape(p))) for p in parts[:4])
            raise ShapeError(f"Output {name!r} has shapes that cannot be concatenated along "
                             f"the batch axis: {shapes}") from None
    return joined

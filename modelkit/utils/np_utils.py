"""Numpy helpers with Keras's names: `to_categorical` and `normalize`."""

import numpy as np

from modelkit.errors import ConfigError, DTypeError, ShapeError

__all__ = ["to_categorical", "normalize"]


def _describe(values, limit=5):
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:limit])
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return shown + more


def to_categorical(y, num_classes=None, dtype="float32"):
    """Convert a class vector (integers 0..num_classes-1) to a one-hot class matrix.

    Like Keras: `y` may have any shape; a trailing axis of size 1 is dropped, so (n,) and
    (n, 1) both give (n, num_classes). Labels may be ints, bools or integral floats (3.0).
    `num_classes=None` uses `max(y) + 1`.

    Raises ConfigError for a label that is negative, >= num_classes, not a whole number or
    not finite (the message names the bad values and where they are), or for a bad
    `num_classes`; DTypeError for non-numeric labels; ShapeError for ragged input.
    """
    try:
        arr = np.asarray(y)
    except ValueError as exc:  # ragged nested lists
        raise ShapeError(f"to_categorical: labels must form a rectangular array: {exc}") from None
    if arr.dtype == object:
        raise ShapeError(
            "to_categorical: labels must form a rectangular array of numbers, "
            f"got an object array of shape {arr.shape}"
        )
    if arr.dtype.kind not in "biuf":
        raise DTypeError(
            f"to_categorical: labels must be integers (or integral floats), got dtype {arr.dtype}"
        )

    input_shape = arr.shape
    if input_shape and input_shape[-1] == 1 and len(input_shape) > 1:
        input_shape = tuple(input_shape[:-1])
    flat = arr.ravel()

    if arr.dtype.kind == "f":
        bad = ~np.isfinite(flat)
        if bad.any():
            idx = np.flatnonzero(bad)
            raise ConfigError(
                f"to_categorical: labels must be finite, got {_describe(flat[idx])} "
                f"at flat index {_describe(idx)}"
            )
        bad = flat != np.round(flat)
        if bad.any():
            idx = np.flatnonzero(bad)
            raise ConfigError(
                f"to_categorical: labels must be whole numbers, got {_describe(flat[idx])} "
                f"at flat index {_describe(idx)}"
            )
    labels = flat.astype(np.int64)

    bad = labels < 0
    if bad.any():
        idx = np.flatnonzero(bad)
        raise ConfigError(
            f"to_categorical: labels must be >= 0, got {_describe(flat[idx])} "
            f"at flat index {_describe(idx)}"
        )

    if num_classes is None:
        if labels.size == 0:
            raise ConfigError("to_categorical: cannot infer num_classes from empty labels; pass num_classes")
        num_classes = int(labels.max()) + 1
    else:
        if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)):
            if isinstance(num_classes, (float, np.floating)) and float(num_classes).is_integer():
                num_classes = int(num_classes)
            else:
                raise ConfigError(f"to_categorical: num_classes must be a positive integer, got {num_classes!r}")
        num_classes = int(num_classes)
        if num_classes < 1:
            raise ConfigError(f"to_categorical: num_classes must be a positive integer, got {num_classes}")
        bad = labels >= num_classes
        if bad.any():
            idx = np.flatnonzero(bad)
            raise ConfigError(
                f"to_categorical: labels must be < num_classes={num_classes}, got "
                f"{_describe(flat[idx])} at flat index {_describe(idx)}"
            )

    n = labels.shape[0]
    categorical = np.zeros((n, num_classes), dtype=dtype)
    categorical[np.arange(n), labels] = 1
    return categorical.reshape(input_shape + (num_classes,))


def normalize(x, axis=-1, order=2):
    """Normalize an array along `axis` to unit `order`-norm (Keras's `normalize`).

    Slices whose norm is zero are returned unchanged (zeros stay zeros). The result has
    the shape of `x` (Keras returns shape (1, n) for a 1-D input; modelkit keeps (n,)).
    """
    x = np.asarray(x)
    if x.ndim == 0:
        raise ShapeError("normalize: expected an array with at least one axis, got a scalar")
    if not -x.ndim <= axis < x.ndim:
        raise ConfigError(f"normalize: axis {axis} is out of range for an array of shape {x.shape}")
    norms = np.linalg.norm(x, order, axis, keepdims=True)
    norms[norms == 0] = 1
    return x / norms

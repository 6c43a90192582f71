"""Argument and shape helpers shared by the spatial layers (convolution, pooling, padding,
cropping, upsampling): Keras 1 dim_ordering, positive tuples, (before, after) pairs, rank
checks, float inputs."""

import numpy as np

from .. import legacy
from ..backend import conv_ops
from ..backend import functions as F
from ..errors import ConfigError, ShapeError


def _data_format_keras1(value):
    """Keras 1 dim_ordering: 'th' / 'tf', or 'default' meaning the global setting."""
    if value in (None, "default"):
        return None
    return legacy.convert_dim_ordering(value)


KERAS1_CONVERT = {"data_format": _data_format_keras1}


def positive_tuple(layer, value, n, name):
    try:
        t = conv_ops.normalize_tuple(value, n, name)
    except ConfigError as e:
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: {e}") from None
    if any(v <= 0 for v in t):
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: {name} must be positive, "
                          f"got {value!r}")
    return t


def check_rank(layer, shape):
    want = layer.rank + 2
    if len(shape) != want:
        raise ShapeError(f"Layer {layer.name!r} ({type(layer).__name__}) expects input of rank "
                         f"{want} (batch, {_axes_words(layer)}), got shape {tuple(shape)}")


def _axes_words(layer):
    spatial = ", ".join(["steps"] if layer.rank == 1 else
                        ["rows", "cols", "depth"][:layer.rank])
    return f"channels, {spatial}" if layer.data_format == "channels_first" \
        else f"{spatial}, channels"


def as_float(layer, inputs):
    if inputs.dtype != np.dtype(layer.dtype):
        inputs = F.cast(inputs, layer.dtype)
    return inputs


def pairs(layer, value, n, name):
    """Keras's normalisation: int -> symmetric everywhere; per-dim int or (before, after)."""
    try:
        if isinstance(value, (int, np.integer)):
            pairs = [(int(value), int(value))] * n
        else:
            value = list(value)
            if n == 1 and len(value) == 2 and all(isinstance(v, (int, np.integer))
                                                   for v in value):
                pairs = [(int(value[0]), int(value[1]))]
            elif len(value) == n:
                pairs = []
                for v in value:
                    if isinstance(v, (int, np.integer)):
                        pairs.append((int(v), int(v)))
                    else:
                        a, b = v
                        pairs.append((int(a), int(b)))
            else:
                raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: {name} must be an int, a "
                          f"tuple of {n} ints or of {n} (before, after) pairs, got "
                          f"{value!r}") from None
    if any(v < 0 for p in pairs for v in p):
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: {name} must be "
                          f"non-negative, got {value!r}")
    return tuple(pairs)

"""Normalization layers with Keras semantics that keep no batch statistics: Normalization
(the preprocessing layer: fixed or adapted mean/variance), UnitNormalization (L2 norm 1)
and GroupNormalization.

* Normalization: `(x - mean) / maximum(sqrt(variance), 1e-7)` (`invert=True`: the inverse,
  `mean + x * maximum(sqrt(variance), 1e-7)`), statistics over every axis but `axis` (the
  kept axes; None: one scalar). Without `mean`/`variance` arguments the layer owns the
  non-trainable weights `mean`, `variance` (shape: the kept axes' sizes) and `count`
  (int64), in that order, set by `adapt(data)` or loaded from a file.
* UnitNormalization: `x / sqrt(maximum(sum(x**2, axis), 1e-12))`.
* GroupNormalization: the channels of `axis` split into `groups`; each sample normalised per
  group over that group's channels and every other non-batch axis, then `gamma`/`beta`
  (shape: the channels) as LayerNormalization's.
"""

import numpy as np

from ..backend import functions as F
from ..backend.spatial_functions import normalize_moments
from ..backend.tensor import StopRecording, as_array
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from .normalization import LayerNormalization, _axis_list, _resolve_axes
from .serialization import register_layer

__all__ = ["Normalization", "UnitNormalization", "GroupNormalization"]

# Keras's backend epsilon, the floor of Normalization's standard deviation
STD_FLOOR = 1e-7


def kept_axes_array(value, bshape, dtype):
    """A statistic (a number, or one value per kept-axes position) in the broadcast shape."""
    arr = np.asarray(value, dtype)
    if arr.size == int(np.prod(bshape)) and arr.size > 1:
        return arr.reshape(bshape)
    return np.broadcast_to(arr, bshape)


def _float_input(layer, x):
    return x if np.issubdtype(x.dtype, np.floating) and x.dtype == np.dtype(layer.dtype) \
        else F.cast(x, layer.dtype)


@register_layer
class Normalization(Layer):
    """Feature-wise standardisation with fixed statistics (Keras's preprocessing layer).

    `Normalization(axis=-1, mean=None, variance=None, invert=False)`; call `adapt(data)` to
    compute the statistics from data when they are not given."""

    preserves_shape = True

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        where = f"Normalization {self.name!r}"
        self.axis = None if axis is None else _axis_list(axis, self)
        if (mean is None) != (variance is None):
            raise ConfigError(f"{where}: give both mean and variance, or neither (then "
                              "adapt() the layer)")
        for what, v in (("mean", mean), ("variance", variance)):
            if v is not None and not np.all(np.isfinite(np.asarray(v, np.float64))):
                raise ConfigError(f"{where}: {what} must be finite numbers, got {v!r}")
        self.input_mean, self.input_variance = mean, variance
        self.invert = bool(invert)
        self.supports_masking = True

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        rank = len(input_shape)
        keep = [] if self.axis is None else _resolve_axes(self, self.axis, input_shape)
        self._bshape = tuple(input_shape[i] if i in keep else 1 for i in range(rank))
        self._keep = tuple(keep)
        self._reduce = tuple(i for i in range(rank) if i not in keep)
        if self.input_mean is None:
            shape = tuple(input_shape[i] for i in keep)
            self.mean = self.add_weight("mean", shape, initializer="zeros", trainable=False)
            self.variance = self.add_weight("variance", shape, initializer="ones",
                                            trainable=False)
            self.count = self.add_weight("count", (), dtype="int64", initializer="zeros",
                                         trainable=False)
        self.built = True

    def _statistics(self, dtype):
        if self.input_mean is not None:
            mean, var = self.input_mean, self.input_variance
        else:
            mean, var = as_array(self.mean), as_array(self.variance)
        try:
            mean = kept_axes_array(mean, self._bshape, dtype)
            std = np.maximum(np.sqrt(kept_axes_array(var, self._bshape, dtype)),
                             np.asarray(STD_FLOOR, dtype))
        except ValueError:
            raise ShapeError(f"Normalization {self.name!r}: mean/variance of shape "
                             f"{np.shape(mean)} do not fit the kept axes {self._bshape}") \
                from None
        return mean, std

    def call(self, inputs):
        x = _float_input(self, inputs)
        mean, std = self._statistics(x.dtype)
        if self.invert:
            return F.add(F.multiply(x, std), mean)
        return F.divide(F.subtract(x, mean), std)

    def adapt(self, data, batch_size=None, steps=None):
        """Set mean, variance and count from `data` (an array, or an iterable of batches)."""
        if self.input_mean is not None:
            raise ConfigError(f"Normalization {self.name!r}: adapt() with mean and variance "
                              "given; leave them out to adapt")
        batches = [np.asarray(data)] if hasattr(data, "shape") or isinstance(data, list) \
            else [np.asarray(b) for b in data]
        if not self.built:
            self.build((None,) + batches[0].shape[1:])
        x = np.concatenate([b.astype(np.float64) for b in batches])
        mean = x.mean(axis=self._reduce).reshape(self.mean.shape)
        var = x.var(axis=self._reduce).reshape(self.variance.shape)
        with StopRecording():
            self.mean.assign(mean.astype(self.mean.dtype))
            self.variance.assign(var.astype(self.variance.dtype))
            self.count.assign(np.asarray(x.size // max(mean.size, 1), np.int64))

    def compute_output_dtype(self, input_dtype):
        return self.dtype

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "invert": self.invert,
                       "mean": _listed(self.input_mean),
                       "variance": _listed(self.input_variance)})
        return config


def _listed(value):
    if value is None:
        return None
    arr = np.asarray(value, np.float64)
    return float(arr) if arr.ndim == 0 else arr.tolist()


@register_layer
class UnitNormalization(Layer):
    """Scale each sample to unit L2 norm over `axis` (int or list)."""

    preserves_shape = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self._axes = _axis_list(axis, self)
        self.axis = self._axes[0] if isinstance(axis, (int, np.integer)) else list(self._axes)
        self.supports_masking = True

    def call(self, inputs):
        x = _float_input(self, inputs)
        axes = _resolve_axes(self, self._axes, x.shape)
        return F.l2_normalize(x, axis=tuple(axes))

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


@register_layer
class GroupNormalization(LayerNormalization):
    """Normalise each sample per group of channels: `GroupNormalization(groups=32, axis=-1,
    epsilon=1e-3, center=True, scale=True, ...)` (LayerNormalization's other arguments);
    `groups=-1` is instance normalisation."""

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(axis=axis, epsilon=epsilon, center=center, scale=scale, **kwargs)
        where = f"GroupNormalization {self.name!r}"
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or \
                (groups < 1 and groups != -1):
            raise ConfigError(f"{where}: groups must be a positive int or -1, got {groups!r}")
        self.groups = int(groups)
        if isinstance(axis, (list, tuple)):
            raise ConfigError(f"{where}: axis must be one int, got {axis!r}")

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        (axis,) = _resolve_axes(self, self._axes, input_shape)
        channels = input_shape[axis]
        groups = channels if self.groups == -1 else self.groups
        if channels % groups:
            raise ShapeError(f"GroupNormalization {self.name!r}: {channels} channels on axis "
                             f"{axis} do not split into {groups} groups")
        rank = len(input_shape)
        self._built_rank, self._norm_axes = rank, (axis,)
        self._bshape = tuple(channels if i == axis else 1 for i in range(rank))
        self._group_count = groups
        self._add_gamma_beta((channels,))
        self.built = True

    def call(self, inputs):
        self._check(inputs.shape)
        x = _float_input(self, inputs)
        (axis,) = self._norm_axes
        shape = x.shape
        g = self._group_count
        # (B, ..., C, ...) -> (B, ..., g, C/g, ...): statistics over all but batch and g
        grouped = F.reshape(x, shape[:axis] + (g, shape[axis] // g) + shape[axis + 1:])
        reduce = tuple(i for i in range(1, len(shape) + 1) if i != axis)
        y, _, _ = normalize_moments(grouped, reduce, None, None, self.epsilon)
        y = F.reshape(y, shape)
        if self.gamma is not None:
            y = F.multiply(y, F.reshape(self.gamma, self._bshape))
        if self.beta is not None:
            y = F.add(y, F.reshape(self.beta, self._bshape))
        return y

    def get_config(self):
        config = super().get_config()
        config["groups"] = self.groups
        return config

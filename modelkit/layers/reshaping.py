"""Spatial shape layers: ZeroPadding1D/2D/3D, Cropping1D/2D/3D, UpSampling1D/2D/3D (Keras 2
configs).

1D layers work on (batch, steps, features); 2D and 3D layers default to the global image data
format.
"""

from ..backend import config as backend_config
from ..backend import functions as F
from ..backend.spatial_functions import upsample
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from ._spatial import KERAS1_CONVERT, as_float, check_rank, pairs, positive_tuple
from .serialization import register_layer

__all__ = ["ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
           "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D"]



class _SpatialLayer(Layer):
    """Shape layers over (batch, *spatial, channels) or (batch, channels, *spatial)."""

    rank = None
    _keras1_convert = KERAS1_CONVERT

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = backend_config.normalize_data_format(data_format)
        self.input_ndim = self.rank + 2

    def _spatial_axes(self):
        start = 2 if self.data_format == "channels_first" else 1
        return tuple(range(start, start + self.rank))

    def _data_format_config(self, config):
        if self.rank > 1 or self.data_format != "channels_last":
            config["data_format"] = self.data_format
        return config


class _ZeroPadding(_SpatialLayer):
    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.padding = pairs(self, padding, self.rank, "padding")

    def call(self, inputs):
        check_rank(self, inputs.shape)
        width = [(0, 0)] * inputs.ndim
        for a, p in zip(self._spatial_axes(), self.padding):
            width[a] = p
        return F.pad(inputs, width)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        out = list(input_shape)
        for a, (b, e) in zip(self._spatial_axes(), self.padding):
            out[a] = None if out[a] is None else out[a] + b + e
        return tuple(out)

    def get_config(self):
        config = super().get_config()
        config["padding"] = self.padding[0] if self.rank == 1 else self.padding
        return self._data_format_config(config)


@register_layer
class ZeroPadding1D(_ZeroPadding):
    """Pad (batch, steps, features) with zeros: padding int or (left, right)."""

    rank = 1

    def __init__(self, padding=1, data_format="channels_last", **kwargs):
        super().__init__(padding=padding, data_format=data_format, **kwargs)


@register_layer
class ZeroPadding2D(_ZeroPadding):
    """Pad rows and columns with zeros: int, (rows, cols) or ((top, bottom), (left, right))."""

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding=padding, data_format=data_format, **kwargs)


@register_layer
class ZeroPadding3D(_ZeroPadding):
    """Pad the three spatial axes with zeros: int, (d1, d2, d3) or three (before, after)."""

    rank = 3

    def __init__(self, padding=(1, 1, 1), data_format=None, **kwargs):
        super().__init__(padding=padding, data_format=data_format, **kwargs)


class _Cropping(_SpatialLayer):
    def __init__(self, cropping=1, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.cropping = pairs(self, cropping, self.rank, "cropping")

    def _check(self, input_shape):
        check_rank(self, input_shape)
        for a, (b, e) in zip(self._spatial_axes(), self.cropping):
            n = input_shape[a]
            if n is not None and b + e >= n:
                raise ShapeError(f"Layer {self.name!r} ({type(self).__name__}): cropping "
                                 f"{self.cropping} removes all of axis {a} (size {n}) of the "
                                 f"input of shape {tuple(input_shape)}")

    def call(self, inputs):
        self._check(inputs.shape)
        index = [slice(None)] * inputs.ndim
        for a, (b, e) in zip(self._spatial_axes(), self.cropping):
            index[a] = slice(b, inputs.shape[a] - e)
        return F.getitem(inputs, tuple(index))

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        out = list(input_shape)
        for a, (b, e) in zip(self._spatial_axes(), self.cropping):
            out[a] = None if out[a] is None else out[a] - b - e
        return tuple(out)

    def get_config(self):
        config = super().get_config()
        config["cropping"] = self.cropping[0] if self.rank == 1 else self.cropping
        return self._data_format_config(config)


@register_layer
class Cropping1D(_Cropping):
    """Crop (batch, steps, features) along the steps: cropping int or (start, end)."""

    rank = 1

    def __init__(self, cropping=(1, 1), data_format="channels_last", **kwargs):
        super().__init__(cropping=cropping, data_format=data_format, **kwargs)


@register_layer
class Cropping2D(_Cropping):
    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping=cropping, data_format=data_format, **kwargs)


@register_layer
class Cropping3D(_Cropping):
    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping=cropping, data_format=data_format, **kwargs)


class _UpSampling(_SpatialLayer):
    _keras1_renames = {"length": "size"}

    def __init__(self, size=2, data_format=None, interpolation="nearest", **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.size = positive_tuple(self, size, self.rank, "size")
        if interpolation not in ("nearest", "bilinear"):
            raise ConfigError(f"{type(self).__name__} {self.name!r}: interpolation must be "
                              f"'nearest' or 'bilinear', got {interpolation!r}")
        if interpolation == "bilinear" and self.rank != 2:
            raise ConfigError(f"{type(self).__name__} {self.name!r}: bilinear interpolation is "
                              "only available in UpSampling2D")
        self.interpolation = interpolation

    def call(self, inputs):
        check_rank(self, inputs.shape)
        if self.interpolation == "bilinear":
            inputs = as_float(self, inputs)
        return upsample(inputs, self.size, self._spatial_axes(), self.interpolation)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        out = list(input_shape)
        for a, s in zip(self._spatial_axes(), self.size):
            out[a] = None if out[a] is None else out[a] * s
        return tuple(out)


@register_layer
class UpSampling1D(_UpSampling):
    """Repeat each step `size` times along the time axis of (batch, steps, features)."""

    rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(size=size, data_format="channels_last", **kwargs)

    def get_config(self):
        config = Layer.get_config(self)
        config["size"] = self.size[0]
        return config


@register_layer
class UpSampling2D(_UpSampling):
    """Repeat rows and columns (nearest) or resize bilinearly (TF2 half-pixel centres)."""

    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size=size, data_format=data_format, interpolation=interpolation,
                         **kwargs)

    def get_config(self):
        config = Layer.get_config(self)
        config.update({"size": self.size, "data_format": self.data_format,
                       "interpolation": self.interpolation})
        return config


@register_layer
class UpSampling3D(_UpSampling):
    """Repeat each voxel `size` times along the three spatial axes (nearest)."""

    rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(size=size, data_format=data_format, **kwargs)

    def get_config(self):
        config = Layer.get_config(self)
        config.update({"size": self.size, "data_format": self.data_format})
        return config

"""Pooling layers: MaxPooling1D/2D/3D, AveragePooling1D/2D/3D, GlobalMax/GlobalAveragePooling
1D/2D/3D.

Keras 2 semantics: `strides` defaults to `pool_size`; 'same' windows ignore the padding
(max over real cells; the average divides by the number of real cells, as TensorFlow does).
1D layers default to channels_last, 2D and 3D layers to the global image data format.
GlobalAveragePooling1D averages over the unmasked timesteps when given a mask, and like
Keras returns no mask. Keras 1 spellings (`pool_length`, `stride`, `border_mode`,
`dim_ordering`) are accepted with a DeprecationWarning.
"""

import numpy as np

from ..backend import config as backend_config
from ..backend import conv_ops
from ..backend import functions as F
from ..backend.spatial_functions import average_pool, max_pool
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from ._spatial import KERAS1_CONVERT, check_rank, positive_tuple
from .serialization import register_layer

__all__ = [
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D", "GlobalAvgPool1D",
    "GlobalAvgPool2D", "GlobalAvgPool3D",
]



class _Pooling(Layer):
    rank = None
    _pool = None                  # max_pool or average_pool
    _keras1_convert = KERAS1_CONVERT

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = positive_tuple(self, pool_size, self.rank, "pool_size")
        self.strides = self.pool_size if strides is None else \
            positive_tuple(self, strides, self.rank, "strides")
        p = str(padding).lower()
        if p == "full":
            from .. import legacy
            legacy.convert_border_mode("full")
        if p not in ("valid", "same"):
            raise ConfigError(f"{type(self).__name__} {self.name!r}: padding must be 'valid' or "
                              f"'same', got {padding!r}")
        self.padding = p
        self.data_format = backend_config.normalize_data_format(data_format)
        self.input_ndim = self.rank + 2

    def _spatial_axes(self):
        start = 2 if self.data_format == "channels_first" else 1
        return tuple(range(start, start + self.rank))

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        out = list(input_shape)
        for a, k, s in zip(self._spatial_axes(), self.pool_size, self.strides):
            o = conv_ops.conv_output_length(out[a], k, self.padding, s)
            if o is not None and o <= 0:
                raise ShapeError(f"Layer {self.name!r} ({type(self).__name__}): input of shape "
                                 f"{tuple(input_shape)} is smaller than pool_size "
                                 f"{self.pool_size} with padding 'valid'")
            out[a] = o
        return tuple(out)

    def call(self, inputs):
        self.compute_output_shape(tuple(inputs.shape))
        if not np.issubdtype(inputs.dtype, np.floating):
            inputs = F.cast(inputs, self.dtype)
        return self._pool(inputs, self.pool_size, self.strides, self.padding, self.data_format)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding,
                       "strides": self.strides, "data_format": self.data_format})
        return config


class _Pooling1D(_Pooling):
    rank = 1

    def __init__(self, pool_size=2, strides=None, padding="valid",
                 data_format="channels_last", **kwargs):
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format,
                         **kwargs)


class _Pooling2D(_Pooling):
    rank = 2

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format,
                         **kwargs)


class _Pooling3D(_Pooling):
    rank = 3

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides=strides, padding=padding, data_format=data_format,
                         **kwargs)


@register_layer
class MaxPooling1D(_Pooling1D):
    """Max over windows of `pool_size` steps (Keras 1: pool_length, stride, border_mode)."""

    _pool = staticmethod(max_pool)


@register_layer
class AveragePooling1D(_Pooling1D):
    _pool = staticmethod(average_pool)


@register_layer
class MaxPooling2D(_Pooling2D):
    """Max over pool_size windows (Keras 1: border_mode, dim_ordering)."""

    _pool = staticmethod(max_pool)


@register_layer
class AveragePooling2D(_Pooling2D):
    _pool = staticmethod(average_pool)


@register_layer
class MaxPooling3D(_Pooling3D):
    """Max over pool_size volumes (Keras 1: border_mode, dim_ordering)."""

    _pool = staticmethod(max_pool)


@register_layer
class AveragePooling3D(_Pooling3D):
    _pool = staticmethod(average_pool)


MaxPool1D, AvgPool1D, MaxPool2D, AvgPool2D = (MaxPooling1D, AveragePooling1D, MaxPooling2D,
                                              AveragePooling2D)
MaxPool3D, AvgPool3D = MaxPooling3D, AveragePooling3D


# ---------------------------------------------------------------------------------------
# global pooling


class _GlobalPooling(Layer):
    rank = None
    _keras1_convert = KERAS1_CONVERT

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = backend_config.normalize_data_format(data_format)
        self.keepdims = bool(keepdims)
        self.input_ndim = self.rank + 2

    def _spatial_axes(self):
        start = 2 if self.data_format == "channels_first" else 1
        return tuple(range(start, start + self.rank))

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape)
        axes = self._spatial_axes()
        if self.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i not in axes)

    def _prepare(self, inputs):
        check_rank(self, inputs.shape)
        if not np.issubdtype(inputs.dtype, np.floating):
            inputs = F.cast(inputs, self.dtype)
        return inputs

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class _GlobalMax(_GlobalPooling):
    def call(self, inputs):
        x = self._prepare(inputs)
        return F.max(x, axis=self._spatial_axes(), keepdims=self.keepdims)


class _GlobalAverage(_GlobalPooling):
    def call(self, inputs):
        x = self._prepare(inputs)
        return F.mean(x, axis=self._spatial_axes(), keepdims=self.keepdims)


@register_layer
class GlobalMaxPooling1D(_GlobalMax):
    rank = 1

    def __init__(self, data_format="channels_last", keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)


@register_layer
class GlobalMaxPooling2D(_GlobalMax):
    rank = 2

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)


@register_layer
class GlobalAveragePooling1D(_GlobalAverage):
    """Mean over the steps; with a (batch, steps) mask, the mean over the unmasked steps
    (Keras 2: sum(x * mask) / sum(mask)). The mask stops here."""

    rank = 1

    def __init__(self, data_format="channels_last", keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        x = self._prepare(inputs)
        if mask is None:
            return F.mean(x, axis=self._spatial_axes(), keepdims=self.keepdims)
        m = np.asarray(mask.value if hasattr(mask, "value") else mask)
        steps = x.shape[self._spatial_axes()[0]]
        if m.shape != (x.shape[0], steps):
            raise ShapeError(f"Layer {self.name!r} (GlobalAveragePooling1D): the mask must have "
                             f"shape (batch, steps) = {(x.shape[0], steps)}, got {m.shape}")
        m = m.astype(x.dtype)
        m = m[:, :, None] if self.data_format == "channels_last" else m[:, None, :]
        axis = self._spatial_axes()
        total = F.sum(F.multiply(x, m), axis=axis, keepdims=self.keepdims)
        return F.divide(total, m.sum(axis=axis, keepdims=self.keepdims))

    def compute_mask(self, inputs, mask=None):
        return None


@register_layer
class GlobalAveragePooling2D(_GlobalAverage):
    rank = 2

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)


@register_layer
class GlobalMaxPooling3D(_GlobalMax):
    rank = 3

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)


@register_layer
class GlobalAveragePooling3D(_GlobalAverage):
    rank = 3

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)


GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = (GlobalMaxPooling1D, GlobalMaxPooling2D,
                                                     GlobalMaxPooling3D)
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (
    GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D)

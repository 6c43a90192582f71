"""Regularisation layers that are active only in training (the identity in inference):
GaussianNoise, GaussianDropout, AlphaDropout, SpatialDropout1D/2D/3D (Keras 2 formulas).

The noise is drawn with numpy, vectorised, from the layer's generator (`seed=` or the global
one); the layer output is a differentiable function of its input with the noise constant.
"""

import numpy as np

from ..backend import config as backend_config
from ..backend import functions as F
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from .core import Dropout, layer_rng
from .serialization import register_layer

__all__ = ["GaussianNoise", "GaussianDropout", "AlphaDropout", "SpatialDropout1D",
           "SpatialDropout2D", "SpatialDropout3D"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _check_rate(layer, rate):
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: rate must be a number in "
                          f"[0, 1), got {rate!r}") from None
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: rate must be in [0, 1), "
                          f"got {rate}")
    return rate


def _float_input(layer, x):
    return x if np.issubdtype(x.dtype, np.floating) else F.cast(x, layer.dtype)


@register_layer
class GaussianNoise(Layer):
    """Add zero-centred Gaussian noise of standard deviation `stddev` in training."""

    _keras1_renames = {"sigma": "stddev"}
    preserves_shape = True

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        try:
            self.stddev = float(stddev)
        except (TypeError, ValueError):
            raise ConfigError(f"GaussianNoise {self.name!r}: stddev must be a number, got "
                              f"{stddev!r}") from None
        if self.stddev < 0:
            raise ConfigError(f"GaussianNoise {self.name!r}: stddev must be >= 0, got {stddev}")
        self.seed = seed
        self._rng = layer_rng(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training:
            return inputs
        x = _float_input(self, inputs)
        noise = self._rng.standard_normal(x.shape).astype(x.dtype, copy=False)
        return F.add(x, noise * np.asarray(self.stddev, x.dtype))

    def get_config(self):
        config = super().get_config()
        config.update({"stddev": self.stddev, "seed": self.seed})
        return config


@register_layer
class GaussianDropout(Layer):
    """Multiply by Gaussian noise of mean 1 and stddev `sqrt(rate / (1 - rate))` in training."""

    _keras1_renames = {"p": "rate"}
    preserves_shape = True

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate(self, rate)
        self.seed = seed
        self._rng = layer_rng(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        x = _float_input(self, inputs)
        std = np.sqrt(self.rate / (1.0 - self.rate))
        noise = self._rng.standard_normal(x.shape) * std + 1.0
        return F.multiply(x, noise.astype(x.dtype))

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


@register_layer
class AlphaDropout(Layer):
    """Dropout that keeps the mean and variance of SELU activations (Keras 2 formula):
    dropped units are set to `-alpha * scale`, then `a * x + b` with
    `a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5`, `b = -a * alpha_p * rate`."""

    preserves_shape = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate(self, rate)
        self.noise_shape = None if noise_shape is None else list(noise_shape)
        self.seed = seed
        self._rng = layer_rng(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or not 0.0 < self.rate < 1.0:
            return inputs
        x = _float_input(self, inputs)
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if d is None else int(d) for i, d in enumerate(self.noise_shape))
        rate = self.rate
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        kept = (self._rng.random(shape) >= rate).astype(x.dtype)
        a = ((1.0 - rate) * (1.0 + rate * alpha_p ** 2)) ** -0.5
        b = -a * alpha_p * rate
        scale = (a * kept).astype(x.dtype)
        shift = (a * alpha_p * (1.0 - kept) + b).astype(x.dtype)
        return F.add(F.multiply(x, scale), shift)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed})
        return config


class _SpatialDropout(Dropout):
    """Drop whole feature maps: the dropout mask is shared along the spatial axes."""

    _rank = None

    def __init__(self, rate, data_format=None, **kwargs):
        kwargs.pop("noise_shape", None)
        super().__init__(rate, **kwargs)
        self.data_format = backend_config.normalize_data_format(data_format) \
            if self._rank > 1 else "channels_last"
        self.input_ndim = self._rank + 2

    def _noise_shape(self, inputs):
        shape = tuple(inputs.shape)
        if len(shape) != self._rank + 2:
            raise ShapeError(f"{type(self).__name__} {self.name!r} expects input of rank "
                             f"{self._rank + 2} (batch included), got shape {shape}")
        if self.data_format == "channels_first":
            return (shape[0], shape[1]) + (1,) * self._rank
        return (shape[0],) + (1,) * self._rank + (shape[-1],)

    def call(self, inputs, training=None):
        self._noise_shape(inputs)
        return super().call(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config.pop("noise_shape", None)
        if self._rank > 1:
            config["data_format"] = self.data_format
        return config


@register_layer
class SpatialDropout1D(_SpatialDropout):
    """Dropout of whole channels of a (batch, steps, channels) input."""

    _rank = 1
    _keras1_renames = {"p": "rate"}

    def __init__(self, rate, **kwargs):
        super().__init__(rate, **kwargs)


@register_layer
class SpatialDropout2D(_SpatialDropout):
    """Dropout of whole feature maps of a 4D input (`data_format` says where channels are)."""

    _rank = 2
    _keras1_renames = {"p": "rate"}

    def __init__(self, rate, data_format=None, **kwargs):
        super().__init__(rate, data_format=data_format, **kwargs)


@register_layer
class SpatialDropout3D(_SpatialDropout):
    """Dropout of whole feature volumes of a 5D input."""

    _rank = 3
    _keras1_renames = {"p": "rate"}

    def __init__(self, rate, data_format=None, **kwargs):
        super().__init__(rate, data_format=data_format, **kwargs)

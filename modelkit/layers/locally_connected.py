"""Keras 2's LocallyConnected1D / LocallyConnected2D: a convolution whose weights are not
shared, one kernel per output position (`implementation=1`, the layout Keras saves).

Weights as Keras: kernel `(positions, prod(kernel_size) * channels, filters)` with each
patch flattened in (kernel rows, kernel cols, channels) order for channels_last and
(channels, kernel rows, kernel cols) for channels_first; bias `(*output_spatial, filters)`.
Only `padding='valid'` exists in Keras; implementations 2 and 3 (other layouts) are refused.
"""

import itertools

import numpy as np

from ..backend import functions as F
from ..errors import ConfigError
from .. import activations
from ._kernel_bias import add_bias, add_weight_for, kernel_bias_config
from .convolutional import _Conv
from .serialization import register_layer

__all__ = ["LocallyConnected1D", "LocallyConnected2D"]


class _LocallyConnected(_Conv):
    _paddings = ("valid",)

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 implementation=1, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                         **kwargs)
        if implementation != 1:
            raise ConfigError(f"{type(self).__name__} {self.name!r}: implementation "
                              f"{implementation!r} is not supported (1, Keras's default, is)")
        self.implementation = 1

    def _spatial_of(self, shape):
        return tuple(shape[2:]) if self.data_format == "channels_first" else tuple(shape[1:-1])

    def build(self, input_shape):
        c = self._input_channels(input_shape)
        spatial = self._spatial_of(input_shape)
        if any(d is None for d in spatial):
            raise ConfigError(f"{type(self).__name__} {self.name!r}: the input's spatial size "
                              f"must be known, got shape {tuple(input_shape)}")
        self._out = self._output_spatial(spatial)
        positions = int(np.prod(self._out))
        self.kernel = add_weight_for(
            self, "kernel", (positions, int(np.prod(self.kernel_size)) * c, self.filters))
        self.bias = add_bias(self, self._out + (self.filters,))
        self._in_channels = c
        self.built = True

    def _patches(self, x):
        """(batch, positions, patch size), patches flattened in Keras's order."""
        cf = self.data_format == "channels_first"
        rows = []
        for pos in itertools.product(*(range(o) for o in self._out)):
            window = tuple(slice(p * s, p * s + k) for p, s, k in
                           zip(pos, self.strides, self.kernel_size))
            index = (slice(None), slice(None)) + window if cf else \
                (slice(None),) + window + (slice(None),)
            rows.append(F.reshape(F.getitem(x, index), (-1, int(np.prod(
                self.kernel_size)) * self._in_channels)))
        return F.stack(rows, axis=1)

    def call(self, inputs):
        x = self._check_call_input(inputs)
        p = F.permute_dimensions(self._patches(x), (1, 0, 2))          # (P, N, K)
        y = F.permute_dimensions(F.matmul(p, self.kernel), (1, 0, 2))  # (N, P, F)
        y = F.reshape(y, (-1,) + self._out + (self.filters,))
        if self.use_bias:
            y = y + self.bias
        if self.data_format == "channels_first":
            y = F.permute_dimensions(y, (0, self.rank + 1) + tuple(range(1, self.rank + 1)))
        return self.activation(y)

    def get_config(self):
        config = super(_Conv, self).get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            **kernel_bias_config(self), "implementation": self.implementation})
        return config


@register_layer
class LocallyConnected1D(_LocallyConnected):
    """Unshared 1D convolution over (batch, steps, channels)."""

    rank = 1


@register_layer
class LocallyConnected2D(_LocallyConnected):
    """Unshared 2D convolution over (batch, rows, cols, channels)."""

    rank = 2

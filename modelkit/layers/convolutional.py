"""Convolution layers (the spatial shape layers around them are in `reshaping`).

Conv1D/2D/3D, Conv1D/2D/3DTranspose, SeparableConv1D/2D, DepthwiseConv1D/2D, and the Keras 1
classes Convolution1D/2D/3D, AtrousConvolution1D/2D (which build the Keras 2 layer).

Numerics, configs and weight layouts are Keras 2's: a conv kernel is (*kernel_size,
in_channels / groups, filters), a transposed-conv kernel (*kernel_size, filters, in_channels),
a depthwise kernel (*kernel_size, in_channels, depth_multiplier) and a separable conv's
pointwise kernel (1, ..., in_channels * depth_multiplier, filters). The work happens in the
fused ops of `modelkit.backend.conv_ops` (im2col + GEMM).
"""

import warnings

import numpy as np

from .. import activations
from ..backend import config as backend_config
from ..backend import conv_ops
from ..backend.spatial_functions import conv, conv_transpose, depthwise_conv, separable_conv
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from .. import legacy
from ._arguments import arguments
from ._kernel_bias import (add_bias, add_weight_for, kernel_bias_config, option_keys,
                           options_config, set_kernel_bias, set_options)
from ._spatial import KERAS1_CONVERT, as_float, check_rank, positive_tuple
from ._old_paths import reexports
from .serialization import register_layer

__all__ = [
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D",
    "Convolution1D", "Convolution2D", "Convolution3D", "AtrousConvolution1D",
    "AtrousConvolution2D", "Convolution2DTranspose", "Convolution3DTranspose",
    "SeparableConvolution1D", "SeparableConvolution2D", "Deconvolution2D", "Deconvolution3D",
]



def _padding_mode(layer, padding, allowed):
    p = str(padding).lower()
    if p == "full":
        legacy.convert_border_mode("full")          # raises: Theano-only in Keras 1
    if p not in allowed:
        extra = " ('causal' is only for 1D convolutions)" if p == "causal" else ""
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: padding must be one of "
                          f"{', '.join(repr(a) for a in allowed)}, got {padding!r}{extra}")
    return p


def _spatial(layer, shape):
    return tuple(shape[2:]) if layer.data_format == "channels_first" else tuple(shape[1:-1])


def _channels(layer, shape):
    return shape[1] if layer.data_format == "channels_first" else shape[-1]


def _assemble(layer, batch, spatial, channels):
    if layer.data_format == "channels_first":
        return (batch, channels) + tuple(spatial)
    return (batch,) + tuple(spatial) + (channels,)


class _Conv(Layer):
    """Shared machinery of the convolutions: arguments, shape rules, config."""

    rank = None
    _paddings = ("valid", "same")
    _keras1_convert = KERAS1_CONVERT

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        n = self.rank
        if filters is not None:
            if isinstance(filters, bool) or not isinstance(filters, (int, float, np.number)) \
                    or filters != int(filters) or filters <= 0:
                raise ConfigError(f"{type(self).__name__} {self.name!r}: filters must be a "
                                  f"positive integer, got {filters!r}")
            filters = int(filters)
        self.filters = filters
        self.kernel_size = positive_tuple(self, kernel_size, n, "kernel_size")
        self.strides = positive_tuple(self, strides, n, "strides")
        self.padding = _padding_mode(self, padding, self._paddings)
        self.data_format = backend_config.normalize_data_format(data_format)
        self.dilation_rate = positive_tuple(self, dilation_rate, n, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ConfigError(f"{type(self).__name__} {self.name!r}: strides > 1 cannot be "
                              f"combined with dilation_rate > 1 (got strides {self.strides}, "
                              f"dilation_rate {self.dilation_rate})")
        if not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ConfigError(f"{type(self).__name__} {self.name!r}: groups must be a positive "
                              f"integer, got {groups!r}")
        self.groups = int(groups)
        if self.filters is not None and self.filters % self.groups:
            raise ConfigError(f"{type(self).__name__} {self.name!r}: filters ({self.filters}) "
                              f"must be divisible by groups ({self.groups})")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        set_kernel_bias(self, kernel_initializer, bias_initializer, kernel_regularizer,
                        bias_regularizer, kernel_constraint, bias_constraint)
        self.input_ndim = n + 2
        self._in_channels = None

    # -- shapes ------------------------------------------------------------------------------
    def _input_channels(self, input_shape):
        check_rank(self, input_shape)
        c = _channels(self, input_shape)
        if c is None:
            raise ShapeError(f"Layer {self.name!r} ({type(self).__name__}): the channel "
                             f"dimension of the input must be known, got shape "
                             f"{tuple(input_shape)} ({self.data_format})")
        if self._in_channels is not None and c != self._in_channels:
            raise ShapeError(f"Layer {self.name!r} ({type(self).__name__}) was built for inputs "
                             f"with {self._in_channels} channels ({self.data_format}), got "
                             f"shape {tuple(input_shape)} with {c}")
        return int(c)

    def _output_spatial(self, spatial):
        out = []
        for L, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate):
            o = conv_ops.conv_output_length(L, k, self.padding, s, d)
            if o is not None and o <= 0:
                raise ShapeError(
                    f"Layer {self.name!r} ({type(self).__name__}): input spatial size "
                    f"{tuple(spatial)} is smaller than the kernel {self.kernel_size} "
                    f"(dilation {self.dilation_rate}) with padding {self.padding!r}")
            out.append(o)
        return tuple(out)

    def _output_channels(self, in_channels):
        return self.filters

    def compute_output_shape(self, input_shape):
        c = self._input_channels(input_shape)
        spatial = self._output_spatial(_spatial(self, input_shape))
        return _assemble(self, input_shape[0], spatial, self._output_channels(c))

    def _check_call_input(self, inputs):
        self.compute_output_shape(tuple(inputs.shape))
        return as_float(self, inputs)

    # -- config --------------------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format,
            "dilation_rate": self.dilation_rate, "groups": self.groups,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            **kernel_bias_config(self),
        })
        return config

    def _add_bias(self, n):
        return add_bias(self, (n,))


class _PlainConv(_Conv):
    """Conv1D / Conv2D: y = activation(conv(x, kernel) + bias)."""

    def build(self, input_shape):
        c = self._input_channels(input_shape)
        if c % self.groups:
            raise ShapeError(f"Layer {self.name!r} ({type(self).__name__}): input channels ({c}) "
                             f"must be divisible by groups ({self.groups})")
        self.kernel = add_weight_for(self, "kernel",
                                     self.kernel_size + (c // self.groups, self.filters))
        self.bias = self._add_bias(self.filters)
        self._in_channels = c
        self.built = True

    def call(self, inputs):
        x = self._check_call_input(inputs)
        fuse_relu = self.activation is activations.relu       # Keras's plain relu: fused
        y = conv(x, self.kernel, self.strides, self.padding, self.data_format,
                 self.dilation_rate, bias=self.bias if self.use_bias else None,
                 groups=self.groups, fused_relu=fuse_relu)
        return y if fuse_relu else self.activation(y)


@register_layer
class Conv1D(_PlainConv):
    """1D convolution over (batch, steps, channels); padding 'valid', 'same' or 'causal'."""

    rank = 1
    _paddings = ("valid", "same", "causal")

    def __init__(self, filters, kernel_size, strides=1, padding="valid",
                 data_format="channels_last", dilation_rate=1, groups=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**arguments(locals()))


@register_layer
class Conv2D(_PlainConv):
    """2D convolution; data_format defaults to the global image data format."""

    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**arguments(locals()))


@register_layer
class Conv3D(_PlainConv):
    """3D convolution over volumes (batch, d1, d2, d3, channels) or channels-first."""

    rank = 3

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1, 1), groups=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**arguments(locals()))


# ---------------------------------------------------------------------------------------
# transposed convolutions


class _ConvTranspose(_Conv):
    """Transposed convolution; kernel (*kernel_size, filters, in_channels) as in Keras."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, groups=1, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, groups=groups,
                         **kwargs)
        if self.groups != 1:
            raise ConfigError(f"{type(self).__name__} {self.name!r}: groups must be 1, "
                              f"got {groups}")
        if output_padding is not None:
            output_padding = conv_ops.normalize_tuple(output_padding, self.rank,
                                                      "output_padding")
            if any(op < 0 or op >= s for op, s in zip(output_padding, self.strides)):
                raise ConfigError(
                    f"{type(self).__name__} {self.name!r}: output_padding {output_padding} "
                    f"must be non-negative and smaller than the strides {self.strides}")
        self.output_padding = output_padding

    def build(self, input_shape):
        c = self._input_channels(input_shape)
        self.kernel = add_weight_for(self, "kernel", self.kernel_size + (self.filters, c))
        self.bias = self._add_bias(self.filters)
        self._in_channels = c
        self.built = True

    def _output_spatial(self, spatial):
        ops = self.output_padding or (None,) * self.rank
        return tuple(conv_ops.deconv_output_length(L, k, self.padding, op, s, d)
                     for L, k, op, s, d in zip(spatial, self.kernel_size, ops, self.strides,
                                               self.dilation_rate))

    def call(self, inputs):
        x = self._check_call_input(inputs)
        y = conv_transpose(x, self.kernel, self.strides, self.padding, self.output_padding,
                           self.data_format, self.dilation_rate,
                           bias=self.bias if self.use_bias else None)
        return self.activation(y)

    def get_config(self):
        config = super().get_config()
        config["output_padding"] = self.output_padding
        return config


@register_layer
class Conv1DTranspose(_ConvTranspose):
    rank = 1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, **kwargs):
        super().__init__(**arguments(locals()))


@register_layer
class Conv2DTranspose(_ConvTranspose):
    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1), **kwargs):
        super().__init__(**arguments(locals()))


@register_layer
class Conv3DTranspose(_ConvTranspose):
    rank = 3

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1, 1), **kwargs):
        super().__init__(**arguments(locals()))


# ---------------------------------------------------------------------------------------
# depthwise and separable convolutions


class _DepthMultiplierConv(_Conv):
    """Depthwise and separable convolutions: one group, `depth_multiplier` filters per input
    channel, and options for their own weights (`_weights`: e.g. "depthwise")."""

    _weights = ()

    def __init__(self, filters, kernel_size, depth_multiplier=1, groups=1, **kwargs):
        if groups != 1:
            raise ConfigError(f"{type(self).__name__}: groups must be 1, got {groups!r}")
        options = {k: kwargs.pop(k) for k in option_keys(*self._weights)}
        super().__init__(filters, kernel_size, **kwargs)
        if not isinstance(depth_multiplier, (int, np.integer)) or depth_multiplier <= 0:
            raise ConfigError(f"{type(self).__name__} {self.name!r}: depth_multiplier must be "
                              f"a positive integer, got {depth_multiplier!r}")
        self.depth_multiplier = int(depth_multiplier)
        set_options(self, **options)

    def get_config(self):
        config = super().get_config()
        config.update({"depth_multiplier": self.depth_multiplier,
                       **options_config(self, option_keys(*self._weights))})
        return config


class _DepthwiseConv(_DepthMultiplierConv):
    """Each input channel convolved with its own depth_multiplier filters (channel c*dm + j)."""

    _weights = ("depthwise",)

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, groups=1, **kwargs):
        super().__init__(None, **arguments(locals()))

    def _output_channels(self, in_channels):
        return in_channels * self.depth_multiplier

    def build(self, input_shape):
        c = self._input_channels(input_shape)
        self.depthwise_kernel = add_weight_for(self, "depthwise",
                                               self.kernel_size + (c, self.depth_multiplier),
                                               name="depthwise_kernel")
        self.bias = self._add_bias(c * self.depth_multiplier)
        self._in_channels = c
        self.built = True

    def call(self, inputs):
        x = self._check_call_input(inputs)
        y = depthwise_conv(x, self.depthwise_kernel, self.strides, self.padding,
                           self.data_format, self.dilation_rate,
                           bias=self.bias if self.use_bias else None)
        return self.activation(y)

    def get_config(self):
        config = super().get_config()
        for key in ("filters", "kernel_initializer", "kernel_regularizer", "kernel_constraint"):
            config.pop(key)
        return config


@register_layer
class DepthwiseConv1D(_DepthwiseConv):
    rank = 1
    _paddings = ("valid", "same", "causal")

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, **kwargs):
        super().__init__(**arguments(locals()))


@register_layer
class DepthwiseConv2D(_DepthwiseConv):
    rank = 2

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), **kwargs):
        super().__init__(**arguments(locals()))


class _SeparableConv(_DepthMultiplierConv):
    """Depthwise conv (strides, padding, dilation) then a 1x1 pointwise conv with the bias.

    Keras 2 configs also carry the base conv's kernel_* entries (unused): they are accepted
    and written back so files stay byte-compatible with tf.keras's.
    """

    _weights = ("depthwise", "pointwise")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 groups=1, **kwargs):
        super().__init__(**arguments(locals()))

    def build(self, input_shape):
        c = self._input_channels(input_shape)
        dm = self.depth_multiplier
        self.depthwise_kernel = add_weight_for(self, "depthwise", self.kernel_size + (c, dm),
                                               name="depthwise_kernel")
        self.pointwise_kernel = add_weight_for(self, "pointwise",
                                               (1,) * self.rank + (c * dm, self.filters),
                                               name="pointwise_kernel")
        self.bias = self._add_bias(self.filters)
        self._in_channels = c
        self.built = True

    def call(self, inputs):
        x = self._check_call_input(inputs)
        y = separable_conv(x, self.depthwise_kernel, self.pointwise_kernel, self.strides,
                           self.padding, self.data_format, self.dilation_rate,
                           bias=self.bias if self.use_bias else None)
        return self.activation(y)



@register_layer
class SeparableConv1D(_SeparableConv):
    rank = 1
    _paddings = ("valid", "same", "causal")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, **kwargs):
        super().__init__(**arguments(locals()))


@register_layer
class SeparableConv2D(_SeparableConv):
    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, **kwargs):
        super().__init__(**arguments(locals()))


# ---------------------------------------------------------------------------------------
# Keras 1 classes: build the Keras 2 layer (so configs, files and ONNX use Keras 2 names)


def _keras1_factory(old, new_cls, rank):
    """A Keras 1 class whose construction returns a `new_cls` layer.

    `Convolution2D(nb_filter, nb_row, nb_col, border_mode=..., subsample=..., init=...)`
    and Keras 2 spellings on the old class (`Convolution2D(filters=1, kernel_size=(3, 3))`)
    both work; every Keras 1 spelling warns with a DeprecationWarning naming the new one.
    """
    kernel_names = {1: ("filter_length",), 2: ("nb_row", "nb_col"),
                    3: ("kernel_dim1", "kernel_dim2", "kernel_dim3")}[rank]

    def __new__(cls, *args, **kwargs):
        warnings.warn(f"{old} is the Keras 1 name of {new_cls.__name__}; use "
                      f"{new_cls.__name__}", DeprecationWarning, stacklevel=2)
        args = list(args)
        if args and "nb_filter" in kwargs:
            raise ConfigError(f"{old}: filters given twice (positionally and as nb_filter)")
        # Keras 1 keyword names -> Keras 2, warning here so the warning points at the caller
        legacy.rename_kwargs(kwargs, old, new_cls._keras1_renames,
                             {"padding": legacy.convert_border_mode, **KERAS1_CONVERT})
        if args and "filters" not in kwargs:
            kwargs["filters"] = args.pop(0)
        if len(args) > rank:
            raise ConfigError(f"{old}: too many positional arguments ({args!r} after the "
                              f"filters); pass the others by keyword")
        if rank > 1:
            k1 = [kwargs.pop(k) for k in kernel_names if k in kwargs]
            names = ", ".join(kernel_names[:-1]) + " and " + kernel_names[-1]
            if args and len(args) + len(k1) >= 2 or len(k1) == rank:
                parts = (args + k1)
                if len(parts) != rank or "kernel_size" in kwargs:
                    raise ConfigError(f"{old}: give the kernel as {names} (Keras 1) or "
                                      f"kernel_size (Keras 2), got {args + k1!r} and "
                                      f"kernel_size={kwargs.get('kernel_size')!r}")
                kernel_size = tuple(int(p) for p in parts)
                warnings.warn(f"{old}: the Keras 1 arguments {', '.join(kernel_names)} are "
                              "deprecated; "
                              f"use kernel_size={kernel_size} instead",
                              DeprecationWarning, stacklevel=2)
                kwargs["kernel_size"] = kernel_size
                args = []
            elif k1:
                raise ConfigError(f"{old}: {names} must be given together")
        if args and "kernel_size" not in kwargs:
            kwargs["kernel_size"] = args.pop(0)
        if args:
            raise ConfigError(f"{old}: too many positional arguments ({args!r} left over); "
                              "pass the others by keyword")
        return new_cls(**kwargs)

    doc = (f"Keras 1 `{old}`: builds and returns a `{new_cls.__name__}` layer "
           f"(DeprecationWarning).")
    cls = type(old, (new_cls,), {"__new__": __new__, "__doc__": doc,
                                 "__module__": __name__})
    cls.__qualname__ = old
    return register_layer(cls)


Convolution1D = _keras1_factory("Convolution1D", Conv1D, 1)
Convolution2D = _keras1_factory("Convolution2D", Conv2D, 2)
AtrousConvolution1D = _keras1_factory("AtrousConvolution1D", Conv1D, 1)
AtrousConvolution2D = _keras1_factory("AtrousConvolution2D", Conv2D, 2)
Convolution3D = _keras1_factory("Convolution3D", Conv3D, 3)
# Keras 2 aliases (same classes)
Convolution2DTranspose = Conv2DTranspose
Convolution3DTranspose = Conv3DTranspose
SeparableConvolution1D = SeparableConv1D
SeparableConvolution2D = SeparableConv2D
Deconvolution2D = Conv2DTranspose
Deconvolution3D = Conv3DTranspose

# Keras 1/2 module paths: keras.layers.convolutional also held the padding, cropping and
# upsampling layers, and re-exported the pooling layers
__getattr__ = reexports(globals(), {
    **{name: ".reshaping" for name in ("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
                                       "Cropping1D", "Cropping2D", "Cropping3D",
                                       "UpSampling1D", "UpSampling2D", "UpSampling3D")},
    **{name: ".pooling" for name in ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
                                     "AveragePooling1D", "AveragePooling2D",
                                     "AveragePooling3D")}})

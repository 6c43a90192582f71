"""Public K functions for the spatial layer ops: convolution, pooling, upsampling and
normalization moments, named as Keras 3's `keras.ops` names them (`conv`, `conv_transpose`,
`depthwise_conv`, `separable_conv`, `max_pool`, `average_pool`) plus Keras 2's `pool2d`,
`pool3d`, `resize_images`, `resize_volumes`.

They are thin: each normalises its arguments and calls the op registered in `tape.OPS`
(`conv_ops`, `norm_ops`), so the layers reach those ops through public names only.
Beyond Keras's arguments, `bias` adds a bias inside the op and `fused_relu=True` applies
Keras's plain relu inside it (one pass, no extra tensor). `data_format=None` means
`image_data_format()`. Like every K function they also take symbolic tensors.
"""

from ..errors import ConfigError
from . import config, resize_ops
from .conv_ops import deconv_output_length, normalize_tuple, same_pads
from .functions import k_function
from .tape import OPS, apply

_CONV = OPS.get("conv")
_CONV_T = OPS.get("conv_transpose")
_DEPTHWISE = OPS.get("depthwise_conv")
_POOL = {"max": OPS.get("pool_max"), "avg": OPS.get("pool_avg")}
_UPSAMPLE = {"nearest": OPS.get("upsample_nearest"), "bilinear": OPS.get("upsample_bilinear")}
_MOMENTS = OPS.get("batch_norm_moments")


def _channels_first(data_format):
    return config.normalize_data_format(data_format) == "channels_first"


def _tuple(value, n, name):
    return value if isinstance(value, tuple) and len(value) == n else \
        normalize_tuple(value, n, name)


def _bias(bias):
    return () if bias is None else (bias,)


@k_function
def conv(x, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1, *,
         bias=None, groups=1, fused_relu=False):
    """N-d convolution; kernel (*kernel_size, in_channels/groups, filters) as in Keras;
    padding 'valid', 'same' or 'causal' (1-D)."""
    n = kernel.ndim - 2
    return apply(_CONV, x, kernel, *_bias(bias), strides=_tuple(strides, n, "strides"),
                 dilation=_tuple(dilation_rate, n, "dilation_rate"), padding=padding,
                 groups=groups, channels_first=_channels_first(data_format), relu=fused_relu)


@k_function
def conv_transpose(x, kernel, strides=1, padding="valid", output_padding=None,
                   data_format=None, dilation_rate=1, *, bias=None):
    """N-d transposed convolution; kernel (*kernel_size, filters, in_channels) as in Keras;
    the output length per axis is Keras's `deconv_output_length`."""
    n = kernel.ndim - 2
    strides, dilation = _tuple(strides, n, "strides"), _tuple(dilation_rate, n, "dilation_rate")
    first = _channels_first(data_format)
    spatial = tuple(x.shape[2:]) if first else tuple(x.shape[1:-1])
    ks = kernel.shape[:n]
    ops = (None,) * n if output_padding is None else _tuple(output_padding, n, "output_padding")
    out = tuple(deconv_output_length(L, k, padding, op, s, d)
                for L, k, op, s, d in zip(spatial, ks, ops, strides, dilation))
    if padding == "same":
        pad_before = tuple(same_pads(o, k, s, d)[0]
                           for o, k, s, d in zip(out, ks, strides, dilation))
    else:
        pad_before = (0,) * n
    return apply(_CONV_T, x, kernel, *_bias(bias), strides=strides, dilation=dilation,
                 output_shape=out, pad_before=pad_before, channels_first=first)


@k_function
def depthwise_conv(x, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1,
                   *, bias=None):
    """N-d depthwise convolution; kernel (*kernel_size, in_channels, depth_multiplier);
    output channel c * depth_multiplier + j."""
    n = kernel.ndim - 2
    return apply(_DEPTHWISE, x, kernel, *_bias(bias), strides=_tuple(strides, n, "strides"),
                 dilation=_tuple(dilation_rate, n, "dilation_rate"), padding=padding,
                 channels_first=_channels_first(data_format))


@k_function
def separable_conv(x, depthwise_kernel, pointwise_kernel, strides=1, padding="valid",
                   data_format=None, dilation_rate=1, *, bias=None):
    """Depthwise convolution, then a 1x1 convolution by `pointwise_kernel` (+ bias)."""
    d = depthwise_conv(x, depthwise_kernel, strides, padding, data_format, dilation_rate)
    return conv(d, pointwise_kernel, data_format=data_format, bias=bias)


def _pool(x, pool_size, strides, padding, data_format, mode):
    n = x.ndim - 2
    pool = _tuple(pool_size, n, "pool_size")
    strides = pool if strides is None else _tuple(strides, n, "strides")
    return apply(_POOL[mode], x, pool=pool, strides=strides, padding=padding,
                 channels_first=_channels_first(data_format))


@k_function
def max_pool(x, pool_size, strides=None, padding="valid", data_format=None):
    """Max over `pool_size` windows of the spatial axes (strides default to pool_size)."""
    return _pool(x, pool_size, strides, padding, data_format, "max")


@k_function
def average_pool(x, pool_size, strides=None, padding="valid", data_format=None):
    """Mean over `pool_size` windows; 'same' padding averages the valid positions only."""
    return _pool(x, pool_size, strides, padding, data_format, "avg")


# Keras 2's per-rank names of the convolutions (custom layers call K.conv2d)

def conv1d(x, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    return conv(x, kernel, strides, padding, data_format, dilation_rate)


def conv2d(x, kernel, strides=(1, 1), padding="valid", data_format=None,
           dilation_rate=(1, 1)):
    return conv(x, kernel, strides, padding, data_format, dilation_rate)


def conv3d(x, kernel, strides=(1, 1, 1), padding="valid", data_format=None,
           dilation_rate=(1, 1, 1)):
    return conv(x, kernel, strides, padding, data_format, dilation_rate)


def conv2d_transpose(x, kernel, output_shape=None, strides=(1, 1), padding="valid",
                     data_format=None, dilation_rate=(1, 1)):
    """Keras 2's K.conv2d_transpose; its `output_shape` must be what Keras's formula gives
    (kernel (rows, cols, filters, in_channels))."""
    y = conv_transpose(x, kernel, strides, padding, None, data_format, dilation_rate)
    if output_shape is not None and tuple(d for d in output_shape[1:]) != tuple(y.shape[1:]):
        from ..errors import ShapeError
        raise ShapeError(f"conv2d_transpose: output_shape {tuple(output_shape)} does not match "
                         f"the convolution's {tuple(y.shape)}")
    return y


@k_function
def pool2d(x, pool_size, strides=(1, 1), padding="valid", data_format=None, pool_mode="max"):
    """Keras 2 K.pool2d (pool_mode 'max' or 'avg')."""
    return _pool(x, pool_size, strides, padding, data_format, pool_mode)


@k_function
def pool3d(x, pool_size, strides=(1, 1, 1), padding="valid", data_format=None,
           pool_mode="max"):
    """Keras 2 K.pool3d (pool_mode 'max' or 'avg')."""
    return _pool(x, pool_size, strides, padding, data_format, pool_mode)


@k_function
def upsample(x, sizes, axes, interpolation="nearest"):
    """Repeat (nearest) or bilinearly interpolate the `axes` by the integer `sizes`."""
    return apply(_UPSAMPLE[interpolation], x, axes=tuple(axes), sizes=tuple(sizes))


def _spatial_axes(data_format, n):
    start = 2 if _channels_first(data_format) else 1
    return tuple(range(start, start + n))


@k_function
def resize_images(x, height_factor, width_factor, data_format=None, interpolation="nearest"):
    """Keras 2 K.resize_images: scale the two spatial axes by integer factors."""
    return upsample(x, (height_factor, width_factor), _spatial_axes(data_format, 2),
                    interpolation)


@k_function
def resize(x, size, interpolation="bilinear", data_format=None):
    """keras.ops.image.resize / tf.image.resize (antialias off): the two spatial axes of a
    4D (or 3D, unbatched) image tensor to `size` = (height, width)."""
    if interpolation not in resize_ops.INTERPOLATIONS:
        raise ConfigError(f"resize: interpolation {interpolation!r} is not supported "
                          f"({', '.join(resize_ops.INTERPOLATIONS)} are)")
    size = tuple(int(v) for v in size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"resize: size must be two positive integers, got {size}")
    rank = len(x.shape)
    axes = _spatial_axes(data_format, 2) if rank == 4 else \
        ((1, 2) if _channels_first(data_format) else (0, 1))
    return apply(OPS.get("resize"), x, axes=axes, size=size, interpolation=interpolation)


@k_function
def resize_volumes(x, depth_factor, height_factor, width_factor, data_format=None):
    """Keras 2 K.resize_volumes: repeat the three spatial axes by integer factors."""
    return upsample(x, (depth_factor, height_factor, width_factor),
                    _spatial_axes(data_format, 3))


@k_function
def normalize_moments(x, axes, gamma=None, beta=None, epsilon=1e-3, weights=None):
    """(y, mean, variance): x normalised by its moments over `axes` (kept as size 1), then
    `* gamma + beta` (broadcastable to x, or None); `weights` (broadcastable to x, 0/1)
    leaves the positions weighted 0 out of the moments (a mask)."""
    return apply(_MOMENTS, x, gamma, beta, weights, axes=tuple(axes), epsilon=epsilon)

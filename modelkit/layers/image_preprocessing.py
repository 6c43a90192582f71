"""Keras's image preprocessing layers: Resizing and CenterCrop, and the augmentation layers
RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomContrast, RandomCrop and
RandomBrightness (the identity at inference, as in Keras; RandomCrop then crops to the
target aspect ratio and resizes, as Keras does).

Resizing is linear in the image: `y = R_h . x . R_w^T` per channel with interpolation
matrices of TensorFlow's half-pixel sampling (bilinear, nearest or bicubic;
`modelkit.image_geometry`), so it is differentiable and exact. Training-time transforms are drawn per image from the layer's generator (`seed=`
or the global one) and applied with numpy (the geometric ones with
`modelkit.preprocessing.image`'s affine resampling); their output is data, not differentiated.
"""

import numpy as np

from ..backend import config as backend_config
from ..backend import functions as F
from ..backend.tensor import Tensor
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from ..image_geometry import INTERPOLATIONS, aspect_crop_box, center_crop_box, resize_matrix
from ..preprocessing.image.affine import apply_affine_transform
from .core import layer_rng
from .serialization import register_layer

__all__ = ["Resizing", "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom",
           "RandomTranslation", "RandomContrast", "RandomCrop", "RandomBrightness"]

FILL_MODES = ("reflect", "wrap", "constant", "nearest")


class _ImageLayer(Layer):
    """Shared by the image layers: data_format, the (rows, cols) axes, rank and float checks."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format or backend_config.image_data_format()
        if self.data_format not in ("channels_last", "channels_first"):
            raise ConfigError(f"{type(self).__name__} {self.name!r}: data_format must be "
                              f"'channels_last' or 'channels_first', got {data_format!r}")
        self.supports_masking = False

    def _where(self):
        return f"{type(self).__name__} {self.name!r}"

    def _axes(self, ndim):
        if ndim not in (3, 4):
            raise ShapeError(f"Layer {self.name!r} ({type(self).__name__}) expects images of "
                             f"rank 3 or 4, got rank {ndim}")
        return (ndim - 2, ndim - 1) if self.data_format == "channels_first" else \
            (ndim - 3, ndim - 2)

    def _float(self, x):
        return x if np.issubdtype(x.dtype, np.floating) else F.cast(x, self.dtype)

    def get_config(self):
        config = super().get_config()
        if self.data_format != "channels_last":      # tf-keras's layers have no such key
            config["data_format"] = self.data_format
        return config


def _positive_int(layer, value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{layer._where()}: {name} must be a positive int, got {value!r}")
    return int(value)


class _SizedLayer(_ImageLayer):
    """A layer producing (height, width) images: crop boxes and resizing."""

    def __init__(self, height, width, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        self.height = _positive_int(self, height, "height")
        self.width = _positive_int(self, width, "width")
        if interpolation not in INTERPOLATIONS:
            raise ConfigError(f"{self._where()}: interpolation {interpolation!r} is not "
                              f"supported (supported: {', '.join(INTERPOLATIONS)})")
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        r, c = self._axes(len(shape))
        shape[r], shape[c] = self.height, self.width
        return tuple(shape)

    def _crop(self, x, box):
        top, left, h, w = box
        r, c = self._axes(x.ndim)
        if (top, left, h, w) == (0, 0, x.shape[r], x.shape[c]):
            return x
        index = [slice(None)] * x.ndim
        index[r], index[c] = slice(top, top + h), slice(left, left + w)
        return F.getitem(x, tuple(index))

    def _resize(self, x):
        r, c = self._axes(x.ndim)
        rows, cols = x.shape[r], x.shape[c]
        if (rows, cols) == (self.height, self.width):
            return x
        dtype = x.dtype
        mh = resize_matrix(rows, self.height, self.interpolation).T.astype(dtype)
        mw = resize_matrix(cols, self.width, self.interpolation).T.astype(dtype)
        # move rows last, contract them, then cols, and put both back in place
        order = [a for a in range(x.ndim) if a not in (r, c)] + [c, r]
        y = F.matmul(F.permute_dimensions(x, order), Tensor(mh))
        swap = list(range(x.ndim))
        swap[-2], swap[-1] = swap[-1], swap[-2]
        y = F.matmul(F.permute_dimensions(y, swap), Tensor(mw))
        back = np.argsort(order[:-2] + [r, c])
        return F.permute_dimensions(y, tuple(int(a) for a in back))

    def _aspect_resize(self, x):
        r, c = self._axes(x.ndim)
        box = aspect_crop_box(x.shape[r], x.shape[c], self.height, self.width)
        return self._resize(self._crop(x, box))

    def get_config(self):
        config = super().get_config()
        config.update({"height": self.height, "width": self.width})
        return config


@register_layer
class Resizing(_SizedLayer):
    """Resize images to (height, width) (optionally cropping the centre to the target aspect
    ratio first)."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, **kwargs):
        super().__init__(height, width, interpolation, **kwargs)
        for flag in ("pad_to_aspect_ratio", "antialias"):
            if locals()[flag]:
                raise ConfigError(f"{self._where()}: {flag}=True is not supported")
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.fill_mode, self.fill_value = fill_mode, fill_value

    def call(self, inputs):
        x = self._float(inputs)
        return self._aspect_resize(x) if self.crop_to_aspect_ratio else self._resize(x)

    def get_config(self):
        config = super().get_config()
        config.update({"interpolation": self.interpolation,
                       "crop_to_aspect_ratio": self.crop_to_aspect_ratio})
        return config


@register_layer
class CenterCrop(_SizedLayer):
    """Crop the centre (height, width); an image smaller than that is first cropped to the
    target aspect ratio and resized (bilinear), as Keras does."""

    def call(self, inputs):
        x = self._float(inputs)
        r, c = self._axes(x.ndim)
        if x.shape[r] >= self.height and x.shape[c] >= self.width:
            return self._crop(x, center_crop_box(x.shape[r], x.shape[c], self.height,
                                                 self.width))
        return self._aspect_resize(x)


# --- augmentation: the identity at inference -----------------------------------------------

def _as_config(factor):
    """A factor as a config holds it (a tuple becomes a list, as JSON has it)."""
    return list(factor) if isinstance(factor, tuple) else factor


def _factor_range(layer, factor, name, low=None):
    """Keras's factor: a number f means (-f, f), a pair means (lower, upper)."""
    try:
        if isinstance(factor, (list, tuple)):
            lower, upper = (float(v) for v in factor)
        else:
            lower, upper = -abs(float(factor)), abs(float(factor))
    except (TypeError, ValueError):
        raise ConfigError(f"{layer._where()}: {name} must be a number or a (lower, upper) "
                          f"pair, got {factor!r}") from None
    if lower > upper or (low is not None and lower < low):
        raise ConfigError(f"{layer._where()}: {name} {factor!r} is not a valid range")
    return lower, upper


class _RandomLayer(_ImageLayer):
    """An augmentation layer: the identity at inference; `_augment(images)` in training
    (numpy, images as (N, rows, cols, channels))."""

    preserves_shape = True

    def __init__(self, seed=None, rng_type=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.rng_type = rng_type          # tf-keras's generator kind: kept, not used
        self._rng = layer_rng(seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        x = self._float(inputs)
        value = np.asarray(x.value if hasattr(x, "value") else x)
        single = value.ndim == 3
        images = value[None] if single else value
        if self.data_format == "channels_first":
            images = np.moveaxis(images, 1, -1)
        out = self._augment(images).astype(value.dtype, copy=False)
        if self.data_format == "channels_first":
            out = np.moveaxis(out, -1, 1)
        return Tensor(out[0] if single else out)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        if self.rng_type is not None:
            config["rng_type"] = self.rng_type
        return config


class _AffineRandomLayer(_RandomLayer):
    """Rotation, zoom, translation: one affine transform per image."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", fill_value=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        if fill_mode not in FILL_MODES:
            raise ConfigError(f"{self._where()}: fill_mode must be one of {FILL_MODES}, got "
                              f"{fill_mode!r}")
        if interpolation not in ("bilinear", "nearest"):
            raise ConfigError(f"{self._where()}: interpolation {interpolation!r} is not "
                              f"supported (supported: bilinear, nearest)")
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = float(fill_value)

    def _augment(self, images):
        return np.stack([apply_affine_transform(
            img, **self._draw(img.shape[0], img.shape[1]), row_axis=0, col_axis=1,
            channel_axis=2, fill_mode=self.fill_mode, cval=self.fill_value,
            order=1 if self.interpolation == "bilinear" else 0) for img in images])

    def get_config(self):
        config = super().get_config()
        config.update({"fill_mode": self.fill_mode, "interpolation": self.interpolation,
                       "fill_value": self.fill_value})
        return config


@register_layer
class RandomFlip(_RandomLayer):
    """Flip each image horizontally and/or vertically with probability 1/2 in training."""

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if mode not in self.MODES:
            raise ConfigError(f"{self._where()}: mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def _augment(self, images):
        out = images.copy()
        for axis, on in ((2, "horizontal" in self.mode), (1, "vertical" in self.mode)):
            if on:
                flip = self._rng.random(len(out)) < 0.5
                out[flip] = np.flip(out[flip], axis=axis)
        return out

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


@register_layer
class RandomRotation(_AffineRandomLayer):
    """Rotate each image by `factor` x 2 pi radians, drawn uniformly, in training."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation,
                         fill_value=fill_value, seed=seed, **kwargs)
        self.factor = _as_config(factor)
        self._range = _factor_range(self, factor, "factor")

    def _draw(self, rows, cols):
        return {"theta": float(self._rng.uniform(*self._range)) * 360.0}

    def get_config(self):
        config = super().get_config()
        config["factor"] = self.factor
        return config


class _HeightWidthLayer(_AffineRandomLayer):
    """Zoom and translation: a height factor and a width factor (ranges as `_factor_range`)."""

    _low = None

    def __init__(self, height_factor, width_factor, **kwargs):
        super().__init__(**kwargs)
        self.height_factor, self.width_factor = _as_config(height_factor), _as_config(width_factor)
        self._h = _factor_range(self, height_factor, "height_factor", low=self._low)
        self._w = None if width_factor is None else \
            _factor_range(self, width_factor, "width_factor", low=self._low)

    def get_config(self):
        config = super().get_config()
        config.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return config


@register_layer
class RandomZoom(_HeightWidthLayer):
    """Zoom each image by 1 + a factor drawn from height_factor (width_factor, or the same
    zoom when None); positive values zoom out, as in Keras."""

    _low = -1.0

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(height_factor, width_factor, fill_mode=fill_mode,
                         interpolation=interpolation, fill_value=fill_value, seed=seed,
                         **kwargs)

    def _draw(self, rows, cols):
        zh = 1.0 + float(self._rng.uniform(*self._h))
        zw = zh if self._w is None else 1.0 + float(self._rng.uniform(*self._w))
        return {"zx": zh, "zy": zw}


@register_layer
class RandomTranslation(_HeightWidthLayer):
    """Shift each image by fractions of its height and width drawn uniformly (positive:
    down / right) in training."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        if width_factor is None:
            raise ConfigError("RandomTranslation: width_factor is required")
        super().__init__(height_factor, width_factor, fill_mode=fill_mode,
                         interpolation=interpolation, fill_value=fill_value, seed=seed,
                         **kwargs)

    def _draw(self, rows, cols):
        return {"tx": -float(self._rng.uniform(*self._h)) * rows,
                "ty": -float(self._rng.uniform(*self._w)) * cols}


class _ValueRangeLayer(_RandomLayer):
    """Contrast and brightness: pixel values kept within `value_range`."""

    def __init__(self, factor, value_range=(0, 255), **kwargs):
        super().__init__(**kwargs)
        self.factor = _as_config(factor)
        self.value_range = [float(v) for v in value_range]
        if len(self.value_range) != 2 or self.value_range[0] >= self.value_range[1]:
            raise ConfigError(f"{self._where()}: value_range must be (low, high), got "
                              f"{value_range!r}")

    def _clip(self, images):
        return np.clip(images, *self.value_range)

    def get_config(self):
        config = super().get_config()
        config["factor"] = self.factor
        if self.value_range != [0.0, 255.0] or type(self) is RandomBrightness:
            config["value_range"] = list(self.value_range)   # tf-keras's RandomContrast has none
        return config


@register_layer
class RandomContrast(_ValueRangeLayer):
    """Per image and channel: (x - mean) * c + mean with c in [1 - lower, 1 + upper]."""

    def __init__(self, factor, seed=None, value_range=(0, 255), **kwargs):
        super().__init__(factor, value_range=value_range, seed=seed, **kwargs)
        lower, upper = (factor, factor) if not isinstance(factor, (list, tuple)) else factor
        try:
            self._range = (1.0 - float(lower), 1.0 + float(upper))
        except (TypeError, ValueError):
            raise ConfigError(f"{self._where()}: factor must be a number or a pair, got "
                              f"{factor!r}") from None
        if not (0.0 <= float(lower) <= 1.0 and float(upper) >= 0.0):
            raise ConfigError(f"{self._where()}: factor {factor!r} must be in [0, 1]")

    def _augment(self, images):
        c = self._rng.uniform(*self._range, size=(len(images), 1, 1, 1))
        mean = images.mean(axis=(1, 2), keepdims=True)
        return self._clip((images - mean) * c + mean)


@register_layer
class RandomBrightness(_ValueRangeLayer):
    """Add factor x (value range width), drawn per image, then clip to value_range."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range=value_range, seed=seed, **kwargs)
        self._range = _factor_range(self, factor, "factor", low=-1.0)
        if self._range[1] > 1.0:
            raise ConfigError(f"{self._where()}: factor {factor!r} must be within [-1, 1]")

    def _augment(self, images):
        width = self.value_range[1] - self.value_range[0]
        delta = self._rng.uniform(*self._range, size=(len(images), 1, 1, 1)) * width
        return self._clip(images + delta)


@register_layer
class RandomCrop(_SizedLayer):
    """Training: a random (height, width) window (images smaller than that are cropped to the
    aspect ratio and resized); inference: the centre crop to the aspect ratio, resized."""

    def __init__(self, height, width, seed=None, rng_type=None, **kwargs):
        super().__init__(height, width, **kwargs)
        self.seed, self.rng_type = seed, rng_type
        self._rng = layer_rng(seed)

    def call(self, inputs, training=None):
        x = self._float(inputs)
        r, c = self._axes(x.ndim)
        rows, cols = x.shape[r], x.shape[c]
        if not training or rows < self.height or cols < self.width:
            return self._aspect_resize(x)
        top = int(self._rng.integers(0, rows - self.height + 1))
        left = int(self._rng.integers(0, cols - self.width + 1))
        return self._crop(x, (top, left, self.height, self.width))

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        if self.rng_type is not None:
            config["rng_type"] = self.rng_type
        return config


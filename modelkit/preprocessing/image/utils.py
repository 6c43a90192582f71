"""Image files and arrays: `load_img`, `save_img`, `img_to_array`, `array_to_img`.

Reading and writing images uses Pillow, an optional extra (`pip install modelkit[image]`);
everything else in `modelkit.preprocessing.image` works on numpy arrays without it.
"""

import io
import os
import warnings

import numpy as np

from modelkit.errors import ConfigError, MissingDependencyError, ShapeError

__all__ = ["load_img", "save_img", "img_to_array", "array_to_img", "list_pictures",
           "require_pil", "INTERPOLATIONS", "DATA_FORMATS"]

DATA_FORMATS = ("channels_last", "channels_first")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
COLOR_MODES = ("grayscale", "rgb", "rgba")


def require_pil(feature):
    """Pillow's `PIL.Image` module, or MissingDependencyError naming `feature` and the extra."""
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError(
            f"{feature} needs Pillow, which is not installed; install it with "
            "`pip install modelkit[image]` (or `pip install pillow`)") from None
    return Image


def check_data_format(data_format, where):
    """`data_format`, with None meaning the backend's `image_data_format()` (as in Keras 2.3)."""
    if data_format is None:
        from modelkit.backend.config import image_data_format
        data_format = image_data_format()
    if data_format not in DATA_FORMATS:
        raise ConfigError(f"{where}: data_format must be 'channels_last' or 'channels_first', "
                          f"got {data_format!r}")
    return data_format


def _resample_filter(image_module, interpolation):
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"load_img: invalid interpolation method {interpolation!r}; "
                          f"supported methods are {', '.join(INTERPOLATIONS)}")
    return getattr(image_module.Resampling, interpolation.upper())


def load_img(path, grayscale=False, color_mode="rgb", target_size=None, interpolation="nearest"):
    """Read an image file into a Pillow image, converted to `color_mode`
    ('grayscale', 'rgb' or 'rgba') and resized to `target_size=(height, width)` if given."""
    image_module = require_pil("load_img")
    if grayscale is True:
        warnings.warn('grayscale is deprecated. Please use color_mode = "grayscale"')
        color_mode = "grayscale"
    if color_mode not in COLOR_MODES:
        raise ConfigError(f'load_img: color_mode must be "grayscale", "rgb", or "rgba", '
                          f"got {color_mode!r}")
    try:
        with open(path, "rb") as f:
            img = image_module.open(io.BytesIO(f.read()))
            img.load()
    except OSError as exc:
        raise ConfigError(f"load_img: cannot read an image from {os.fspath(path)!r}: {exc}") \
            from None
    if color_mode == "grayscale":
        if img.mode not in ("L", "I;16", "I"):
            img = img.convert("L")
    elif img.mode != color_mode.upper():
        img = img.convert(color_mode.upper())
    if target_size is not None:
        size = (target_size[1], target_size[0])
        if img.size != size:
            img = img.resize(size, _resample_filter(image_module, interpolation))
    return img


def img_to_array(img, data_format="channels_last", dtype="float32"):
    """A Pillow image as a rank-3 array (a grayscale image gets a channel axis of 1)."""
    data_format = check_data_format(data_format, "img_to_array")
    x = np.asarray(img, dtype=dtype)
    if x.ndim == 2:
        x = x[None] if data_format == "channels_first" else x[..., None]
    elif x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    else:
        raise ShapeError(f"img_to_array: unsupported image shape {x.shape}")
    return x


def array_to_img(x, data_format="channels_last", scale=True, dtype="float32"):
    """A rank-3 array as a Pillow image (1, 3 or 4 channels); `scale` stretches min..max to
    0..255 first, as Keras does."""
    image_module = require_pil("array_to_img")
    x = np.array(x, dtype=dtype)
    if x.ndim != 3:
        raise ShapeError("array_to_img: expected image array to have rank 3 (single image), "
                         f"got array with shape {x.shape}")
    data_format = check_data_format(data_format, "array_to_img")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        x_max = np.max(x)
        if x_max != 0:
            x /= x_max
        x *= 255
    channels = x.shape[2]
    if channels == 4:
        return image_module.fromarray(x.astype("uint8"), "RGBA")
    if channels == 3:
        return image_module.fromarray(x.astype("uint8"), "RGB")
    if channels == 1:
        if np.max(x) > 255:
            return image_module.fromarray(x[:, :, 0].astype("int32"), "I")
        return image_module.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ShapeError(f"array_to_img: unsupported channel number {channels}; expected 1, 3 or 4")


def save_img(path, x, data_format="channels_last", file_format=None, scale=True, **kwargs):
    """Write an array as an image file (format from the extension or `file_format`)."""
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format in ("jpg", "jpeg"):
        warnings.warn("The JPG format does not support RGBA images, converting to RGB.")
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)


def list_pictures(directory, ext=("jpg", "jpeg", "bmp", "png", "ppm", "tif", "tiff")):
    """Paths of the pictures (by extension) under `directory`, recursively."""
    ext = tuple(f".{e}" for e in ((ext,) if isinstance(ext, str) else ext))
    return [os.path.join(root, f) for root, _, files in os.walk(directory) for f in files
            if f.lower().endswith(ext)]

"""Keras's image transform functions: affine transforms, flips, channel and brightness shifts.

Same names, arguments, random draws (numpy's global generator) and numbers as
`keras.preprocessing.image` (keras_preprocessing 1.1). The resampling is modelkit's own
(see `resample.py`), equal to the scipy call Keras makes.
"""

import numpy as np

from modelkit.errors import ConfigError, ShapeError
from modelkit.preprocessing.image.resample import affine_resample
from modelkit.preprocessing.image.utils import array_to_img, img_to_array, require_pil

__all__ = ["flip_axis", "transform_matrix_offset_center", "apply_affine_transform",
           "random_rotation", "random_shift", "random_shear", "random_zoom",
           "apply_channel_shift", "random_channel_shift", "apply_brightness_shift",
           "random_brightness"]


def flip_axis(x, axis):
    """`x` reversed along `axis`."""
    return np.flip(np.asarray(x), axis)


def transform_matrix_offset_center(matrix, x, y):
    """`matrix` (3x3, homogeneous) re-centred on an image of `x` rows and `y` columns."""
    o_x = float(x) / 2 + 0.5
    o_y = float(y) / 2 + 0.5
    offset_matrix = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset_matrix = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return np.dot(np.dot(offset_matrix, matrix), reset_matrix)


def _compose(theta, tx, ty, shear, zx, zy):
    """Keras's transform: rotation @ shift @ shear @ zoom (omitting identities), or None."""
    parts = []
    if theta != 0:
        t = np.deg2rad(theta)
        parts.append(np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]))
    if tx != 0 or ty != 0:
        parts.append(np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]]))
    if shear != 0:
        s = np.deg2rad(shear)
        parts.append(np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]]))
    if zx != 1 or zy != 1:
        parts.append(np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]]))
    if not parts:
        return None
    matrix = parts[0]
    for p in parts[1:]:
        matrix = np.dot(matrix, p)
    return matrix


def apply_affine_transform(x, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, row_axis=0, col_axis=1,
                           channel_axis=2, fill_mode="nearest", cval=0.0, order=1):
    """Rotate (degrees), shift (`tx` rows, `ty` columns), shear (degrees) and zoom one image.

    The transform maps output pixels to input positions about the image centre, as Keras does;
    points outside the input follow `fill_mode` ('constant' with `cval`, 'nearest', 'reflect',
    'wrap'); `order` 1 is bilinear, 0 nearest-neighbour. Returns a new array, `x`'s dtype.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ShapeError(f"apply_affine_transform: expected a single image of rank 3, got shape "
                         f"{x.shape}")
    matrix = _compose(theta, tx, ty, shear, zx, zy)
    if matrix is None:
        return x
    h, w = x.shape[row_axis], x.shape[col_axis]
    matrix = transform_matrix_offset_center(matrix, h, w)
    channels = np.moveaxis(x, channel_axis, 0)
    out = affine_resample(channels, matrix[:2, :2], matrix[:2, 2], order=order, mode=fill_mode,
                          cval=cval)
    return np.moveaxis(out, 0, channel_axis)


# The random_* functions below pass only `channel_axis` on, exactly as Keras 2.3
# (keras_preprocessing 1.1) does: the transform's centre comes from axes 0 and 1 of `x`, right
# for channels-last images (pass row_axis=0, col_axis=1, channel_axis=2), off-centre for
# channels-first ones with the default axes. ImageDataGenerator passes every axis.

def random_rotation(x, rg, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest", cval=0.0,
                    interpolation_order=1):
    """Rotate by an angle drawn uniformly from [-rg, rg] degrees."""
    theta = np.random.uniform(-rg, rg)
    return apply_affine_transform(x, theta=theta, channel_axis=channel_axis,
                                  fill_mode=fill_mode, cval=cval, order=interpolation_order)


def random_shift(x, wrg, hrg, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest",
                 cval=0.0, interpolation_order=1):
    """Shift by fractions drawn from [-hrg, hrg] of the height and [-wrg, wrg] of the width."""
    h, w = x.shape[row_axis], x.shape[col_axis]
    tx = np.random.uniform(-hrg, hrg) * h
    ty = np.random.uniform(-wrg, wrg) * w
    return apply_affine_transform(x, tx=tx, ty=ty, channel_axis=channel_axis,
                                  fill_mode=fill_mode, cval=cval, order=interpolation_order)


def random_shear(x, intensity, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest",
                 cval=0.0, interpolation_order=1):
    """Shear by an angle drawn uniformly from [-intensity, intensity] degrees."""
    shear = np.random.uniform(-intensity, intensity)
    return apply_affine_transform(x, shear=shear, channel_axis=channel_axis,
                                  fill_mode=fill_mode, cval=cval, order=interpolation_order)


def random_zoom(x, zoom_range, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest",
                cval=0.0, interpolation_order=1):
    """Zoom rows and columns by factors drawn independently from `zoom_range` (two floats)."""
    if len(zoom_range) != 2:
        raise ConfigError("random_zoom: `zoom_range` should be a tuple or list of two floats. "
                          f"Received: {zoom_range!r}")
    if zoom_range[0] == 1 and zoom_range[1] == 1:
        zx, zy = 1, 1
    else:
        zx, zy = np.random.uniform(zoom_range[0], zoom_range[1], 2)
    return apply_affine_transform(x, zx=zx, zy=zy, channel_axis=channel_axis,
                                  fill_mode=fill_mode, cval=cval, order=interpolation_order)


def apply_channel_shift(x, intensity, channel_axis=0):
    """Add `intensity` to every channel, clipped to the image's original min and max."""
    x = np.asarray(x)
    lo, hi = np.min(x), np.max(x)
    return np.clip(x + intensity, lo, hi)


def random_channel_shift(x, intensity_range, channel_axis=0):
    """`apply_channel_shift` with an intensity drawn from [-intensity_range, intensity_range]."""
    intensity = np.random.uniform(-intensity_range, intensity_range)
    return apply_channel_shift(x, intensity, channel_axis=channel_axis)


def apply_brightness_shift(x, brightness):
    """Pillow's brightness enhancement by factor `brightness`; needs Pillow.

    As in Keras, the image goes through `array_to_img` (rescaled to 0..255, channels last) and
    comes back as float32 in 0..255.
    """
    require_pil("apply_brightness_shift")
    from PIL import ImageEnhance
    img = ImageEnhance.Brightness(array_to_img(x)).enhance(brightness)
    return img_to_array(img)


def random_brightness(x, brightness_range):
    """`apply_brightness_shift` with a factor drawn uniformly from `brightness_range`."""
    if np.ndim(brightness_range) != 1 or len(brightness_range) != 2:
        raise ConfigError("random_brightness: `brightness_range` should be a tuple or list of "
                          f"two floats. Received: {brightness_range!r}")
    u = np.random.uniform(brightness_range[0], brightness_range[1])
    return apply_brightness_shift(x, u)

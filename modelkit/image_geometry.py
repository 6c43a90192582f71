"""Crop boxes and resize matrices of Keras's image preprocessing layers, shared by the
layers and the ONNX exporter (numpy only)."""

import numpy as np

INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area")
_TABLE = 1024           # TensorFlow's bicubic reads its kernel from a table of this size


def aspect_crop_box(height, width, target_height, target_width):
    """The centred box of the target aspect ratio that Keras crops before resizing
    (`crop_to_aspect_ratio=True`, `smart_resize`, CenterCrop/RandomCrop on a small image):
    (top, left, crop_height, crop_width)."""
    crop_h = min(height, int(float(width * target_height) / target_width))
    crop_w = min(width, int(float(height * target_width) / target_height))
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def center_crop_box(height, width, target_height, target_width):
    """CenterCrop's box when the image is at least the target size: (top, left, h, w)."""
    return (height - target_height) // 2, (width - target_width) // 2, target_height, \
        target_width


def resize_matrix(n_in, n_out, interpolation):
    """(n_out, n_in) matrix sampling a length-n_in axis at n_out half-pixel centres exactly as
    TensorFlow's `resize` (no antialias): bilinear with clamped taps; nearest at the floor of
    the centre; bicubic with Keys' kernel (a = -0.5) read from TF's 1024-entry table, taps
    outside the axis dropped and the rest renormalised; area: the mean over the output pixel's
    box [i, i + 1) * n_in / n_out, each input pixel weighted by its overlap."""
    scale = n_in / n_out
    m = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    centres = (rows + 0.5) * scale
    if interpolation == "nearest":
        m[rows, np.minimum(np.floor(centres).astype(int), n_in - 1)] = 1.0
        return m
    if interpolation == "area":
        for i in rows:
            lo, hi = i * scale, (i + 1) * scale
            for k in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
                m[i, k] = (min(hi, k + 1) - max(lo, k)) / scale
        return m
    pos = centres - 0.5
    lo = np.floor(pos)
    frac = pos - lo
    if interpolation == "bicubic":
        return _bicubic(m, pos.astype(np.float32), n_in)
    lower = np.clip(lo.astype(int), 0, n_in - 1)
    upper = np.clip(np.ceil(pos).astype(int), 0, n_in - 1)
    np.add.at(m, (rows, lower), 1.0 - frac)
    np.add.at(m, (rows, upper), frac)
    return m


def _bicubic(m, pos, n_in):
    a = -0.5
    x = np.arange(_TABLE + 1, dtype=np.float64) / _TABLE
    near = (((a + 2) * x - (a + 3)) * x * x + 1).astype(np.float32)
    x1 = x + 1
    far = (((a * x1 - 5 * a) * x1 + 8 * a) * x1 - 4 * a).astype(np.float32)
    for i, p in enumerate(pos):
        base = int(np.floor(p))
        off = int(np.rint((p - base) * _TABLE))
        taps = [(base - 1, far[off]), (base, near[off]), (base + 1, near[_TABLE - off]),
                (base + 2, far[_TABLE - off])]
        taps = [(k, float(w)) for k, w in taps if 0 <= k < n_in]
        total = sum(w for _, w in taps)
        for k, w in taps:
            m[i, k] += w / total
    return m

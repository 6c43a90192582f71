"""ONNX ops that build a tensor from a shape or a length: EyeLike, the Hann/Hamming/Blackman
windows, AffineGrid (differentiable in theta), BitCast (a reinterpretation), MelWeightMatrix
and ImageDecoder."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError, UnsupportedError
from . import onnx_op
from ._util import const, np_dtype, op, values


@onnx_op("EyeLike")
def eye_like(inputs, attrs, ctx):
    """Ones on the k-th diagonal of a 2-D tensor shaped like the input (its dtype unless
    `dtype` says otherwise)."""
    x = inputs[0]
    if x.ndim != 2:
        raise ShapeError(f"EyeLike takes a 2-D tensor, not shape {tuple(x.shape)}")
    dtype = np_dtype(attrs["dtype"]) if "dtype" in attrs else x.dtype
    return const(np.eye(x.shape[0], x.shape[1], k=int(attrs.get("k", 0)), dtype=dtype))


# window -> terms of sum_j a_j cos(2 pi j n / N)
_WINDOWS = {"HannWindow": (0.5, -0.5), "HammingWindow": (25 / 46, -21 / 46),
            "BlackmanWindow": (0.42, -0.5, 0.08)}


def _window(op_type, terms):
    def run(inputs, attrs, ctx):
        size = int(values(inputs[0]))
        periodic = int(attrs.get("periodic", 1))
        n = np.arange(size, dtype=np.float64)
        span = size if periodic else size - 1
        w = sum(a * np.cos(2 * np.pi * j * n / span) for j, a in enumerate(terms)) \
            if span > 0 else np.ones(size)
        return const(w.astype(np_dtype(attrs.get("output_datatype", 1))))
    return run


for _op_type, _terms in _WINDOWS.items():
    onnx_op(_op_type)(_window(_op_type, _terms))


@onnx_op("AffineGrid")
def affine_grid(inputs, attrs, ctx):
    """Sampling grid (N, H, W, 2) / (N, D, H, W, 3) of the affine maps theta (N, 2, 3) /
    (N, 3, 4) applied to the normalised output coordinates (differentiable in theta)."""
    theta, size = inputs
    size = [int(v) for v in np.asarray(values(size)).reshape(-1)]
    spatial = size[2:]
    r = len(spatial)
    if theta.ndim != 3 or tuple(theta.shape[1:]) != (r, r + 1):
        raise ShapeError(f"AffineGrid: theta shape {tuple(theta.shape)} does not fit size "
                         f"{size} (expected (N, {r}, {r + 1}))")
    align = bool(int(attrs.get("align_corners", 0)))

    def axis(n):
        if align:
            return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(n)
        return (np.arange(n) * 2.0 + 1.0) / n - 1.0
    grids = np.meshgrid(*[axis(n) for n in spatial], indexing="ij")
    # each point as (x, y[, z], 1): the last spatial axis is x
    base = np.stack([g.reshape(-1) for g in grids[::-1]] + [np.ones(grids[0].size)], axis=1)
    pts = op("matmul", const(base.astype(theta.dtype)),
             op("transpose", theta, axes=(0, 2, 1)))          # (N, points, r)
    return op("reshape", pts, shape=(theta.shape[0],) + tuple(spatial) + (r,))


@onnx_op("BitCast")
def bit_cast(inputs, attrs, ctx):
    """The same bits read as another element type of the same width."""
    x = np.asarray(values(inputs[0]))
    to = np_dtype(attrs["to"])
    if to.itemsize != x.dtype.itemsize:
        raise ShapeError(f"BitCast from {x.dtype} to {to}: the widths differ")
    return const(x.view(to))


@onnx_op("MelWeightMatrix")
def mel_weight_matrix(inputs, attrs, ctx):
    """(dft_length // 2 + 1, num_mel_bins) triangular filters on the mel scale
    (mel = 2595 log10(1 + hz / 700)) between the lower and upper edge frequencies, each
    rising from its left point to its centre and falling to its right point (the ONNX
    definition: num_mel_bins + 2 points, spaced (high - low) / (num_mel_bins + 2) apart)."""
    bins, length, rate, low, high = (np.asarray(values(t)).reshape(-1)[0] for t in inputs)
    bins, length = int(bins), int(length)
    to_mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)      # noqa: E731
    lo_mel, hi_mel = to_mel(float(low)), to_mel(float(high))
    step = (hi_mel - lo_mel) / (bins + 2)
    mel = np.arange(bins + 2) * step + lo_mel
    hz = 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    points = (((length + 1) * hz) // rate).astype(np.int64)
    out = np.zeros((length // 2 + 1, bins))
    for i in range(bins):
        left, centre, right = points[i], points[i + 1], points[i + 2]
        if centre == left:
            out[centre, i] = 1.0
        else:
            j = np.arange(left, centre + 1)
            out[j, i] = (j - left) / (centre - left)
        if right > centre:
            j = np.arange(centre, right)
            out[j, i] = (right - j) / (right - centre)
    return const(out.astype(np_dtype(attrs.get("output_datatype", 1))))


MAX_DECODED_PIXELS = 1 << 26


@onnx_op("ImageDecoder")
def image_decoder(inputs, attrs, ctx):
    """Encoded image bytes (uint8, 1-D: BMP, JPEG, JPEG 2000, PNG, PNM, TIFF, WebP) -> an
    (H, W, 3) RGB / BGR or (H, W, 1) Grayscale uint8 image, decoded with Pillow (the
    `image` extra); an image over MAX_DECODED_PIXELS pixels is refused before decoding."""
    import io
    try:
        from PIL import Image
    except ImportError:
        raise UnsupportedError("ImageDecoder needs Pillow: pip install 'modelkit[image]'") \
            from None
    data = np.asarray(values(inputs[0]))
    fmt = attrs.get("pixel_format", "RGB")
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    if fmt not in ("RGB", "BGR", "Grayscale"):
        raise UnsupportedError(f"ImageDecoder pixel_format {fmt!r} (RGB, BGR or Grayscale)")
    try:
        image = Image.open(io.BytesIO(data.astype(np.uint8).tobytes()))
        if image.width * image.height > MAX_DECODED_PIXELS:
            raise ShapeError(f"ImageDecoder: a {image.width}x{image.height} image is larger "
                             f"than {MAX_DECODED_PIXELS} pixels; refused")
        if fmt == "Grayscale":
            return const(np.asarray(image.convert("L"), np.uint8)[:, :, None])
        rgb = np.asarray(image.convert("RGB"), np.uint8)
    except (OSError, ValueError, SyntaxError) as e:     # what Pillow raises on bad data
        raise ShapeError(f"ImageDecoder: the bytes are not an image Pillow decodes "
                         f"({type(e).__name__}: {e})") from None
    return const(np.ascontiguousarray(rgb[:, :, ::-1]) if fmt == "BGR" else rgb)

"""ONNX ops that build a tensor from a shape or a length (no gradient): EyeLike and the
Hann/Hamming/Blackman windows."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from . import onnx_op
from ._util import const, np_dtype, values


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

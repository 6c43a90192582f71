"""Integer bit ops (forward only; integers carry no gradient): BitShift, BitwiseAnd/Or/Xor/
Not."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from . import onnx_op
from ._util import const, values


def _integers(x, op_type):
    if not np.issubdtype(x.dtype, np.integer):
        raise UnsupportedError(f"{op_type} takes integer tensors, not {x.dtype}")
    return x


@onnx_op("BitShift")
def bit_shift(inputs, attrs, ctx):
    """x << s or x >> s elementwise (broadcast). A shift outside [0, bit width) gives 0
    (a right shift of a negative signed value gives -1); left shifts wrap around."""
    x, s = (_integers(values(t), "BitShift") for t in inputs)
    x, s = np.broadcast_arrays(x, s)
    direction = attrs.get("direction", b"")
    direction = direction.decode() if isinstance(direction, bytes) else str(direction)
    if direction not in ("LEFT", "RIGHT"):
        raise UnsupportedError(f"BitShift direction {direction!r} (expected LEFT or RIGHT)")
    bits = np.iinfo(x.dtype).bits
    ok = (s >= 0) & (s < bits)
    shift = np.where(ok, s, 0).astype(np.uint64)
    unsigned = x.view(np.dtype(f"u{x.dtype.itemsize}"))
    if direction == "LEFT":
        out = np.left_shift(unsigned.astype(np.uint64), shift).astype(unsigned.dtype)
        out = np.where(ok, out.view(x.dtype), 0)
    else:
        out = np.right_shift(x.astype(np.int64) if x.dtype.kind == "i" else
                             x.astype(np.uint64), shift.astype(
                                 np.int64 if x.dtype.kind == "i" else np.uint64))
        fill = np.where(x < 0, -1, 0) if x.dtype.kind == "i" else 0
        out = np.where(ok, out, fill)
    return const(np.asarray(out).astype(x.dtype))


_BITWISE = {"BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or,
            "BitwiseXor": np.bitwise_xor}


def _bitwise(op_type, fn):
    def run(inputs, attrs, ctx):
        a, b = (_integers(values(t), op_type) for t in inputs)
        return const(fn(a, b).astype(np.result_type(a, b)))
    return run


for _op_type, _fn in _BITWISE.items():
    onnx_op(_op_type)(_bitwise(_op_type, _fn))


@onnx_op("BitwiseNot")
def bitwise_not(inputs, attrs, ctx):
    return const(np.invert(_integers(values(inputs[0]), "BitwiseNot")))

"""ONNX's low-precision tensor types at run time: bfloat16, float8 (e4m3fn, e4m3fnuz, e5m2,
e5m2fnuz, e8m0fnu), float4 (e2m1fn), int4/uint4 and int2/uint2, held as `ml_dtypes` arrays.

* `cast_into(v, dtype, saturate, round_mode)`: ONNX Cast into any type, with its rules for
  these ones: float8 saturates out-of-range values (and infinities) to the largest finite
  value unless `saturate=0`; float8_e8m0fnu keeps the exponent, rounded as `round_mode`
  says; the rest round to nearest even (`ml_dtypes`' conversions, which ONNX's reference
  uses too).
* `run_widened(fn, inputs, ...)`: any other op on such inputs computes on them widened
  (float32 for the float types, int8/uint8 for the integer ones: both exact), and its
  outputs of a widened type are rounded back (as ONNX's reference computes them).

Models without these types never reach this module (`is_low` is the one check on the way).
"""

from __future__ import annotations

import numpy as np

from ...onnx_spec import LOW_PRECISION, dtype_named

FLOAT8_SATURATING = frozenset({"float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                               "float8_e5m2fnuz"})
_WIDE = {"int4": np.dtype(np.int8), "int2": np.dtype(np.int8),
         "uint4": np.dtype(np.uint8), "uint2": np.dtype(np.uint8)}


def is_low(dtype):
    """Is `dtype` one of the low-precision types? (ml_dtypes' are user-defined numpy types,
    numbered from 256: the cheap test first, `dtype.name` is slow)"""
    return dtype.num >= 256 and dtype.name in LOW_PRECISION


def wide_dtype(dtype):
    """The exact wider type a low-precision `dtype` computes in."""
    return _WIDE.get(dtype.name, np.dtype(np.float32))


def cast_into(v, dtype, saturate=True, round_mode="up"):
    """numpy array `v` as ONNX's Cast makes it into `dtype` (any type)."""
    v = np.asarray(v)
    dtype = np.dtype(dtype)
    if v.dtype == dtype:
        return v
    if dtype == object:                         # to STRING: each value's text
        return np.vectorize(_number_text, otypes=[object])(v) if v.size else v.astype(object)
    if v.dtype == object:                       # from STRING: parsed ("INF", "NaN" too)
        v = np.vectorize(_text, otypes=[object])(v).astype(np.str_) if v.size else \
            v.astype(np.str_)
        return v.astype(np.float64).astype(dtype) if dtype.kind in "iub" or is_low(dtype) \
            else v.astype(dtype)
    if dtype.name == "float8_e8m0fnu":
        return _to_e8m0(v, bool(saturate), _text(round_mode))
    if is_low(v.dtype):
        v = v.astype(wide_dtype(v.dtype))       # exact; then the ordinary rules below
    if dtype.name in FLOAT8_SATURATING and saturate and v.dtype.kind == "f":
        big = _finite_max(dtype)
        v = np.clip(v, -big, big)               # NaN stays NaN, infinities saturate
    if np.issubdtype(dtype, np.integer) and v.dtype.kind == "f":
        v = np.trunc(v)                         # toward zero, as C casts
    with np.errstate(invalid="ignore", over="ignore"):
        return v.astype(dtype)


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def _number_text(v):
    """A number as ONNX writes it: plain notation (numpy's shortest round-trip repr)."""
    return str(v.item()) if isinstance(v, np.generic) and v.dtype.kind != "f" else str(v)


def _finite_max(dtype):
    import ml_dtypes
    return float(ml_dtypes.finfo(dtype).max)


def _to_e8m0(v, saturate, round_mode):
    """float8_e8m0fnu (a bare power-of-two exponent; 0xFF is NaN) from float32 bits:
    'down' keeps x's exponent, 'up' adds one when x has a fraction, 'nearest' when the
    fraction is at least a half (a tie of a subnormal x stays down). NaN and infinities
    become NaN; saturate keeps the largest exponent from rounding up into NaN."""
    if round_mode not in ("up", "down", "nearest"):
        from ...errors import UnsupportedError
        raise UnsupportedError(f"Cast to FLOAT8E8M0: round_mode {round_mode!r} (expected "
                               "'up', 'down' or 'nearest')")
    bits = np.asarray(v, np.float32).view(np.uint32)
    exponent = ((bits >> 23) & 0xFF).astype(np.uint16)
    fraction = bits & 0x7FFFFF
    special = exponent == 0xFF
    if round_mode == "up":
        bump = fraction > 0
    elif round_mode == "nearest":
        bump = (fraction >= 0x400000) & ((fraction > 0x400000) | (exponent > 0))
    else:
        bump = np.zeros(exponent.shape, bool)
    bump &= ~special
    if saturate:
        bump &= exponent != 0xFE
    out = np.where(special, 0xFF, exponent + bump).astype(np.uint8)
    return out.view(dtype_named("float8_e8m0fnu"))


def _widen(x):
    from ._util import const, values
    if not hasattr(x, "dtype") or not is_low(x.dtype):     # None, a sequence, a wide tensor
        return x
    return const(values(x).astype(wide_dtype(x.dtype)))


def _narrow(o, narrow):
    """An output of a widened type rounded back (each tensor of a sequence output too)."""
    from ._util import const, values
    if isinstance(o, list):
        return [_narrow(e, narrow) for e in o]
    if hasattr(o, "dtype") and o.dtype in narrow:
        return const(cast_into(values(o), narrow[o.dtype]))
    return o


def run_widened(fn, inputs, attrs, ctx):
    """`fn(inputs, attrs, ctx)` on low-precision inputs widened; outputs of a widened type
    are rounded back to the low type it came from."""
    narrow = {}
    for x in inputs:
        if hasattr(x, "dtype") and is_low(x.dtype):
            narrow.setdefault(wide_dtype(x.dtype), x.dtype)
    out = fn([_widen(x) for x in inputs], attrs, ctx)
    if isinstance(out, tuple):
        out = list(out)
    return _narrow(out, narrow)

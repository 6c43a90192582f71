"""JSON values -> typed numpy arrays, and the checks every protocol shares.

JSON has one number type, so integers are fine for float tensors; floats are refused for
integer tensors unless the caller casts (TF Serving does, for whole numbers only), and
booleans only feed BOOL tensors. Values that do not fit the target integer type are
refused, never wrapped.
"""

from __future__ import annotations

import numpy as np

from .errors import RequestError, brief


def array_from_json(values, dtype, where, cast=False):
    """A numpy array of `dtype` holding the JSON `values` (nested lists or a scalar).

    `where` names the tensor in error messages. `cast` (TF Serving) also accepts whole
    floats for integer tensors and 0/1 for booleans.
    """
    if dtype.kind == "O":
        return _strings(values, where)
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        raise RequestError(f"{where}: the data is ragged (nested lists of different "
                           f"lengths) or not numeric") from None
    src = arr.dtype.kind
    if src in "OUS":
        raise RequestError(f"{where}: expected {_kind_words(dtype)}, got non-numeric "
                           f"values (or integers too large for 64 bits)")
    if arr.size == 0:
        return arr.astype(dtype)
    kind = dtype.kind
    if kind == "f":
        if src == "b":
            raise RequestError(f"{where}: expected numbers for {dtype.name}, got booleans")
        if arr.dtype == dtype:
            return arr
        # Converting the checked values again keeps the GIL, unlike astype, which lets it
        # go for arrays over 500 elements and then waits for the batcher's thread.
        return np.array(values, dtype=dtype)
    if kind == "b":
        if src == "b":
            return arr
        if cast and src in "iu" and ((arr == 0) | (arr == 1)).all():
            return arr.astype(dtype)
        raise RequestError(f"{where}: expected booleans (true/false), got "
                           f"{_src_words(src)}")
    # integer target
    if src == "b":
        raise RequestError(f"{where}: expected integers for {dtype.name}, got booleans")
    if src == "f":
        whole = cast and np.isfinite(arr).all() and (arr == np.floor(arr)).all()
        if not whole:
            raise RequestError(f"{where}: expected integers for {dtype.name}, got "
                               f"non-integer numbers (the server does not round)")
    info = np.iinfo(dtype)
    lo, hi = arr.min(), arr.max()
    if lo < info.min or hi > info.max:
        raise RequestError(f"{where}: values in [{lo}, {hi}] do not fit {dtype.name} "
                           f"[{info.min}, {info.max}]")
    return arr.astype(dtype, copy=False)


def _strings(values, where):
    flat, shape = [], []
    _flatten_strings(values, flat, shape, 0, where)
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(shape)


def _flatten_strings(v, flat, shape, depth, where):
    if isinstance(v, list):
        if len(shape) <= depth:
            shape.append(len(v))
        elif shape[depth] != len(v):
            raise RequestError(f"{where}: the data is ragged (nested lists of different "
                               f"lengths)")
        for item in v:
            _flatten_strings(item, flat, shape, depth + 1, where)
        return
    if len(shape) != depth and flat:
        raise RequestError(f"{where}: the data is ragged (nested lists of different lengths)")
    if isinstance(v, dict) and set(v) == {"b64"}:
        import base64
        import binascii
        try:
            flat.append(base64.b64decode(v["b64"], validate=True))
        except (binascii.Error, TypeError, ValueError):
            raise RequestError(f"{where}: 'b64' value is not valid base64") from None
    elif isinstance(v, str):
        flat.append(v.encode("utf-8"))
    else:
        raise RequestError(f"{where}: expected strings, got {type(v).__name__}")


def _kind_words(dtype):
    return {"f": "numbers", "b": "booleans", "O": "strings"}.get(dtype.kind, "integers")


def _src_words(src):
    return {"f": "numbers", "i": "integers", "u": "integers"}.get(src, "other values")


def check_shape(shape, where):
    """A v2 `shape` field: a list of non-negative ints. Returns it as a tuple."""
    if not isinstance(shape, list) or not all(
            type(d) is int for d in shape):
        raise RequestError(f"{where}: 'shape' must be a list of integers, got {brief(shape)}")
    for d in shape:
        if d < 0:
            raise RequestError(f"{where}: 'shape' {shape} has a negative dimension; "
                               f"-1 is only for model metadata, requests give real sizes")
    return tuple(shape)


def check_against_model(arr, spec, where):
    """Exact rank and the model's fixed dims (dynamic dims take any size)."""
    if arr.ndim != len(spec.shape):
        want = [-1 if d is None else d for d in spec.shape]
        raise RequestError(f"{where}: expected rank {len(spec.shape)} (shape {want}), got "
                           f"rank {arr.ndim} (shape {list(arr.shape)})")
    for axis, (got, want) in enumerate(zip(arr.shape, spec.shape)):
        if want is not None and got != want:
            full = [-1 if d is None else d for d in spec.shape]
            raise RequestError(f"{where}: dimension {axis} must be {want} (model shape "
                               f"{full}), got {got} (shape {list(arr.shape)})")

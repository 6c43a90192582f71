"""ONNX string ops on numpy object arrays of Python str (ONNX's STRING tensors):
StringNormalizer, StringConcat, StringSplit, RegexFullMatch. No gradients (strings are
data, not parameters)."""

from __future__ import annotations

import re

import numpy as np

from ...errors import ShapeError, UnsupportedError
from ...onnx_spec import text
from . import onnx_op
from ._util import const, values


def _strings(t):
    """A tensor's values as an object array of str (bytes decoded as UTF-8)."""
    v = np.asarray(values(t), dtype=object)
    return np.vectorize(_str, otypes=[object])(v) if v.size else v.astype(object)


def _str(e):
    return e.decode("utf-8") if isinstance(e, bytes) else str(e)


@onnx_op("StringNormalizer")
def string_normalizer(inputs, attrs, ctx):
    """Elements equal to a stop word removed (compared case-blind unless
    is_case_sensitive=1), then lower- or upper-cased per `case_change_action` (as the spec
    and onnxruntime do: whole elements, accents kept); an empty result is one ""."""
    x = _strings(inputs[0])
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[0] != 1):
        raise ShapeError(f"StringNormalizer takes shape [C] or [1, C], not {x.shape}")
    action = text(attrs.get("case_change_action"), "NONE")
    if action not in ("NONE", "LOWER", "UPPER"):
        raise UnsupportedError(f"StringNormalizer: case_change_action {action!r} (expected "
                               "NONE, LOWER or UPPER)")
    sensitive = bool(int(attrs.get("is_case_sensitive", 0)))
    key = (lambda w: w) if sensitive else str.lower
    stops = {key(_str(w)) for w in attrs.get("stopwords") or []}
    change = {"LOWER": str.lower, "UPPER": str.upper, "NONE": lambda w: w}[action]
    kept = [change(w) for w in x.reshape(-1) if key(w) not in stops] or [""]
    out = np.array(kept, dtype=object)
    return const(out.reshape((1, -1)) if x.ndim == 2 else out)


@onnx_op("StringConcat")
def string_concat(inputs, attrs, ctx):
    a, b = _strings(inputs[0]), _strings(inputs[1])
    try:
        return const(np.asarray(np.frompyfunc(lambda p, q: p + q, 2, 1)(a, b), dtype=object))
    except ValueError:
        raise ShapeError(f"StringConcat: shapes {a.shape} and {b.shape} do not broadcast") \
            from None


@onnx_op("StringSplit")
def string_split(inputs, attrs, ctx):
    """Each string split at `delimiter` (runs of whitespace when it is empty or unset), at
    most `maxsplit` times: the parts padded with "" to the longest, and the part counts."""
    x = _strings(inputs[0])
    delimiter = text(attrs.get("delimiter"), "") or None
    maxsplit = int(attrs["maxsplit"]) if "maxsplit" in attrs else -1
    parts = [s.split(delimiter, maxsplit) for s in x.reshape(-1)]
    counts = np.array([len(p) for p in parts], np.int64).reshape(x.shape)
    width = max((len(p) for p in parts), default=0)
    out = np.empty((len(parts), width), dtype=object)
    out[...] = ""
    for i, p in enumerate(parts):
        out[i, :len(p)] = p
    return [const(out.reshape(x.shape + (width,))), const(counts)]


@onnx_op("RegexFullMatch")
def regex_full_match(inputs, attrs, ctx):
    """Whether each string matches `pattern` as a whole (Python's re: RE2's syntax is
    a subset for the constructs ONNX models use)."""
    pattern = text(attrs.get("pattern"), "")
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise UnsupportedError(f"RegexFullMatch: pattern {pattern!r} is not a valid regular "
                               f"expression ({e})") from None
    x = _strings(inputs[0])
    return const(np.vectorize(lambda s: regex.fullmatch(s) is not None, otypes=[bool])(x)
                 if x.size else np.zeros(x.shape, bool))

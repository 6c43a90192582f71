"""Integer-token ops (forward only; integers carry no gradient): BitShift, BitwiseAnd/Or/
Xor/Not, and TfIdfVectorizer's n-gram counts."""

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


@onnx_op("TfIdfVectorizer")
def tfidf_vectorizer(inputs, attrs, ctx):
    """Counts of the pooled n-grams (integer tokens; skip-grams with up to max_skip_count
    tokens skipped between items; unigrams counted once) per row, as TF, IDF (weight where
    present) or TFIDF (count x weight); float32 (C,) or (N, C) -> (out,) or (N, out)."""
    x = np.asarray(values(inputs[0]))
    if "pool_int64s" not in attrs or not np.issubdtype(x.dtype, np.integer):
        raise UnsupportedError("TfIdfVectorizer over strings (only integer tokens and "
                               "pool_int64s are supported)")
    lo, hi = int(attrs["min_gram_length"]), int(attrs["max_gram_length"])
    skips = int(attrs["max_skip_count"])
    counts = [int(c) for c in attrs["ngram_counts"]] + [None]
    pool = [int(v) for v in attrs["pool_int64s"]]
    index = [int(i) for i in attrs["ngram_indexes"]]
    table, k = {}, 0                     # n-gram tuple -> output column
    for n in range(1, len(counts)):
        end = counts[n] if counts[n] is not None else len(pool)
        for start in range(counts[n - 1], end, n):
            table[tuple(pool[start:start + n])] = index[k]
            k += 1
    width = max(index) + 1 if index else 0
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    out = np.zeros((rows.shape[0], width), np.float32)
    for r, row in enumerate(rows):
        smallest = lo
        for gap in range(1, skips + 2):
            for i in range(len(row)):
                if i + gap * (smallest - 1) >= len(row):
                    break
                for n in range(smallest, hi + 1):
                    last = i + gap * (n - 1)
                    if last >= len(row):
                        break
                    col = table.get(tuple(int(v) for v in row[i:last + 1:gap]))
                    if col is not None:
                        out[r, col] += 1
            if smallest == 1:               # unigrams do not depend on the skip
                smallest = 2
                if smallest > hi:
                    break
    mode = attrs.get("mode", "TF")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    weights = np.asarray(attrs.get("weights", []), np.float32)
    if mode == "IDF":
        out = np.where(out > 0, weights if weights.size else 1.0, 0.0).astype(np.float32)
    elif mode == "TFIDF" and weights.size:
        out = out * weights
    elif mode not in ("TF", "TFIDF"):
        raise UnsupportedError(f"TfIdfVectorizer mode {mode!r}")
    return const(out.reshape(-1) if x.ndim == 1 else out)

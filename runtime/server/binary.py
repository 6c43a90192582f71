"""Triton's binary tensor data extension (KServe v2 over HTTP).

A request or response body is a JSON header followed by raw tensors. The header's length
is the ``Inference-Header-Content-Length`` HTTP header; each tensor sent in binary has a
``"binary_data_size"`` parameter, and the raw tensors follow the header in the order those
tensors appear in the JSON. Raw tensors are little-endian, row-major, without padding;
BOOL is one byte per element; BYTES is each element as a 4-byte little-endian length and
its bytes.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from .errors import RequestError, brief

HEADER = "inference-header-content-length"


def split_body(body, header_length):
    """(json bytes, memoryview of the binary part) of a request body."""
    try:
        n = int(header_length)
    except (TypeError, ValueError):
        raise RequestError(f"Inference-Header-Content-Length must be an integer, got "
                           f"{brief(header_length)}") from None
    if n < 0 or n > len(body):
        raise RequestError(f"Inference-Header-Content-Length is {n} but the body has "
                           f"{len(body)} bytes")
    view = memoryview(body)
    return view[:n], view[n:]


def tensor_from_bytes(buf, dtype, shape, where):
    """The array of `dtype` and `shape` held in `buf` (a bytes-like)."""
    count = math.prod(shape)
    if dtype.kind == "O":
        return _bytes_elements(buf, count, where).reshape(shape)
    need = count * dtype.itemsize
    if len(buf) != need:
        raise RequestError(f"{where}: binary_data_size is {len(buf)} bytes but shape "
                           f"{list(shape)} of {dtype.name} needs {need}")
    # bytes() copies into an aligned buffer while holding the GIL (an astype copy of an
    # unaligned view would release it and wait for the batcher's thread to hand it back).
    arr = np.frombuffer(bytes(buf), dtype=dtype.newbyteorder("<"), count=count)
    if arr.dtype != dtype:
        arr = arr.astype(dtype)               # a big-endian host
    return arr.reshape(shape)


def _bytes_elements(buf, count, where):
    out = np.empty(count, dtype=object)
    raw = bytes(buf)
    pos, end = 0, len(raw)
    for i in range(count):
        if pos + 4 > end:
            raise RequestError(f"{where}: BYTES data ends after {i} of {count} elements")
        (size,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + size > end:
            raise RequestError(f"{where}: BYTES element {i} claims {size} bytes but only "
                               f"{end - pos} remain")
        out[i] = raw[pos:pos + size]
        pos += size
    if pos != end:
        raise RequestError(f"{where}: BYTES data has {end - pos} bytes left after "
                           f"{count} elements")
    return out


def tensor_to_bytes(arr):
    """The raw bytes of an output tensor."""
    if arr.dtype.kind == "O" or arr.dtype.kind in "SU":
        parts = []
        for item in arr.reshape(-1):
            b = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr).tobytes()

"""Small shared pieces of the HDF5/Keras converter: versions written, errors, attribute decoding."""

from __future__ import annotations

import numpy as np

from modelkit.errors import KerasConfigError


HDF5_OBJECT_HEADER_LIMIT = 64512      # bytes; larger attribute arrays are split (Keras does so too)


ConfigProblem = KerasConfigError     # the name the HDF5 readers raise it under


def to_str(value):
    """An attribute value (str, bytes, numpy scalar) as str."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def to_str_list(value):
    """An attribute array of names (bytes or str, possibly empty float) as a list of str."""
    if isinstance(value, (str, bytes, np.bytes_)):
        return [to_str(value)]
    arr = np.asarray(value)
    if arr.size == 0:
        return []
    if arr.ndim != 1:
        raise TypeError(f"expected a 1-d array of names, got shape {arr.shape}")
    return [to_str(v) for v in arr.tolist()]


def read_name_list(h5obj, name):
    """Read attribute `name`, or its split form `name0`, `name1`, ... (Keras does both)."""
    attrs = h5obj.attrs
    if name in attrs:
        return to_str_list(attrs[name])
    out, i = [], 0
    found = False
    while f"{name}{i}" in attrs:
        found = True
        out.extend(to_str_list(attrs[f"{name}{i}"]))
        i += 1
    if not found:
        raise KeyError(name)
    return out


def write_name_list(h5obj, name, names):
    """Write a list of names as an attribute, split into chunks like Keras when too big."""
    import h5py
    if not names:
        h5obj.attrs[name] = np.array([], dtype="float64")   # what Keras writes for "no weights"
        return
    encoded = [n.encode("utf-8") for n in names]
    total = sum(len(e) for e in encoded) + 8 * len(encoded)
    dt = h5py.string_dtype("utf-8")
    if total <= HDF5_OBJECT_HEADER_LIMIT:
        h5obj.attrs.create(name, np.array(names, dtype=object), dtype=dt)
        return
    chunks = int(np.ceil(total / HDF5_OBJECT_HEADER_LIMIT)) + 1
    for i, part in enumerate(np.array_split(np.array(names, dtype=object), chunks)):
        h5obj.attrs.create(f"{name}{i}", part, dtype=dt)

"""Small shared pieces of the HDF5/Keras converter: errors, attribute decoding, weight naming."""

from __future__ import annotations

import re

import numpy as np

from modelkit.errors import ModelLoadError

# The version string written into files we produce: a tf-keras 2.x reader accepts it and
# so does Keras 3's legacy loader. modelkit's own version goes into `modelkit_version`.
KERAS2_VERSION = "2.15.0"
KERAS3_VERSION = "3.5.0"
BACKEND = "tensorflow"

HDF5_OBJECT_HEADER_LIMIT = 64512      # bytes; larger attribute arrays are split (Keras does so too)


class ConfigProblem(ModelLoadError):
    """A model config that cannot be understood; the loaders prefix the file path."""


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


def snake_case(name):
    """Keras's `to_snake_case` (used for `.keras` weight paths): "Conv2DTranspose" -> "conv2d_transpose"."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    s = re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()
    return s


_CELL = {"LSTM": "lstm_cell", "GRU": "gru_cell", "SimpleRNN": "simple_rnn_cell",
         "ConvLSTM1D": "conv_lstm_cell", "ConvLSTM2D": "conv_lstm_cell",
         "ConvLSTM3D": "conv_lstm_cell"}
_CONV_LIKE = ("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
              "Conv3DTranspose", "Convolution1D", "Convolution2D", "Convolution3D",
              "LocallyConnected1D", "LocallyConnected2D")


def variable_names(op, config):
    """The Keras-2 variable names (without the layer prefix) of a layer, in weight order.

    Used where a file stores weights without names (Keras 3 `layers/<x>/vars/<i>`).
    Returns None for ops not in the table (the caller then numbers them).
    """
    cfg = config or {}
    bias = ["bias"] if cfg.get("use_bias", True) else []
    if op == "Dense" or op in _CONV_LIKE:
        return ["kernel"] + bias
    if op in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return ["depthwise_kernel"] + bias
    if op in ("SeparableConv1D", "SeparableConv2D"):
        return ["depthwise_kernel", "pointwise_kernel"] + bias
    if op == "BatchNormalization":
        return ((["gamma"] if cfg.get("scale", True) else [])
                + (["beta"] if cfg.get("center", True) else [])
                + ["moving_mean", "moving_variance"])
    if op == "LayerNormalization":
        return ((["gamma"] if cfg.get("scale", True) else [])
                + (["beta"] if cfg.get("center", True) else []))
    if op == "Embedding":
        return ["embeddings"]
    if op == "PReLU":
        return ["alpha"]
    if op in _CELL:
        return [f"{_CELL[op]}/{v}" for v in ["kernel", "recurrent_kernel"] + bias]
    if op == "Bidirectional":
        inner = cfg.get("layer") or {}
        back = cfg.get("backward_layer") or inner
        iname = (inner.get("config") or {}).get("name", "layer")
        bname = (back.get("config") or {}).get("name", iname)
        f = variable_names(inner.get("class_name"), inner.get("config"))
        b = variable_names(back.get("class_name"), back.get("config"))
        if f is None or b is None:
            return None
        return [f"forward_{iname}/{v}" for v in f] + [f"backward_{bname}/{v}" for v in b]
    if op == "TimeDistributed":
        inner = cfg.get("layer") or {}
        return variable_names(inner.get("class_name"), inner.get("config"))
    return None


def non_trainable_variable(key):
    """Whether a weight is non-trainable by its name alone (BatchNormalization statistics)."""
    base = key.rsplit("/", 1)[-1]
    return base in ("moving_mean", "moving_variance")

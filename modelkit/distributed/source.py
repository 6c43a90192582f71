"""The model as the workers receive it: ONNX bytes, so a Ray cluster needs no shared
filesystem for the model (an ``.h5``/``.keras`` file is converted once, on the driver).
An ONNX file whose weights live in external data files travels as its path instead
(every node must then see that path)."""

from __future__ import annotations

import hashlib
import os

from modelkit.errors import ModelLoadError


def _uses_external_data(path):
    import onnx
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception:           # noqa: BLE001 - InferenceSession reports a bad file better
        return False
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)


def portable_model(model):
    """ONNX bytes (or an ONNX path with external data) for `model`: a path (.onnx, .h5,
    .keras), ONNX bytes, an onnx.ModelProto or a modelkit model / IR graph."""
    if isinstance(model, (str, os.PathLike)):
        from modelkit.converters import formats
        from modelkit.converters.keras_to_onnx import convert_keras_file
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise ModelLoadError(f"model file not found: {path}")
        if formats.format_of(path) is formats.ONNX:
            if _uses_external_data(path):
                return os.path.abspath(path)
            with open(path, "rb") as f:
                return f.read()
        return convert_keras_file(path).SerializeToString()
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    from modelkit.converters import onnx as onnx_conv
    return onnx_conv.export(model).SerializeToString()


def digest(source):
    """A short fingerprint of a portable model (its bytes, or its path and size)."""
    h = hashlib.sha256()
    if isinstance(source, bytes):
        h.update(source)
    else:
        h.update(f"{source}:{os.path.getsize(source)}".encode())
    return h.hexdigest()[:16]

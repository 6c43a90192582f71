"""A Keras file (.h5/.hdf5/.keras) straight to an ONNX ModelProto, without building layers.

`convert_keras_file(path, opset)` is what `InferenceSession("m.h5")` and `modelkit convert
m.h5 m.onnx` run; any failure on the way (reading, a malformed config the exporter meets,
the ONNX checker) is one `ModelLoadError` naming the file and the piece.
"""

from __future__ import annotations

import os

from modelkit.errors import ModelkitError, ModelLoadError

__all__ = ["convert_keras_file"]


def convert_keras_file(path, opset=17, target_ort=None):
    """The ONNX ModelProto of a Keras file (any non-ONNX format of `converters.formats`),
    for onnxruntime `target_ort` ("1.17"; None: the installed one)."""
    from . import formats
    from . import onnx as onnx_conv
    where = os.fsdecode(os.fspath(path))
    try:
        return onnx_conv.export(formats.format_of(path).read(where), opset=opset,
                               target_ort=target_ort)
    except ModelLoadError as e:
        if where in str(e):
            raise
        raise ModelLoadError(f"{where}: {e}") from None
    except Exception as e:      # noqa: BLE001 - IRError, UnsupportedError, anything else
        msg = str(e) if isinstance(e, ModelkitError) else f"{type(e).__name__}: {e}"
        raise ModelLoadError(f"{where}: cannot convert to ONNX: {msg}") from None

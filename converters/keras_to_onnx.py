"""A Keras file (.h5/.hdf5/.keras) straight to an ONNX ModelProto, without building layers.

`convert_keras_file(path, opset)` is what `InferenceSession("m.h5")` and `modelkit convert
m.h5 m.onnx` run; any failure on the way (reading, a malformed config the exporter meets,
the ONNX checker) is one `ModelLoadError` naming the file and the piece.
"""

from __future__ import annotations

import os

from modelkit.errors import ModelkitError, ModelLoadError

__all__ = ["convert_keras_file", "KERAS_EXTENSIONS"]

KERAS_EXTENSIONS = (".h5", ".hdf5", ".keras")


def convert_keras_file(path, opset=17):
    from . import hdf5
    from . import onnx as onnx_conv
    where = os.fsdecode(os.fspath(path))
    try:
        if os.path.splitext(where)[1].lower() == ".keras":
            graph = hdf5.load_keras_archive(path)
        else:
            graph = hdf5.load_graph(path)
        return onnx_conv.export(graph, opset=opset)
    except ModelLoadError as e:
        if str(e).startswith(where):
            raise
        raise ModelLoadError(f"{where}: {e}") from None
    except Exception as e:      # noqa: BLE001 - IRError, UnsupportedError, anything else
        msg = str(e) if isinstance(e, ModelkitError) else f"{type(e).__name__}: {e}"
        raise ModelLoadError(f"{where}: cannot convert to ONNX: {msg}") from None

"""ONNX import: any ONNX model (PyTorch's exporters, tf2onnx, ...) -> IR Graph.

    from modelkit.converters import onnx as onnx_conv
    graph = onnx_conv.import_graph("m.onnx")      # modelkit.ir.Graph
    model = modelkit.models.load_model("m.onnx")  # a trainable Model (built from that IR above
                                                  # the converters, by modelkit.ir_bridge)

`load.py` reads files safely, `registry.py` holds the import handlers (one per ONNX op
type), `handlers/` the handlers, `context.py` what they emit into, `walk.py` the walk.
"""

from .load import MIN_OPSET
from .registry import IMPORT_HANDLERS, import_handler
from .walk import build_graph, import_graph, unsupported_ops

__all__ = ["import_graph", "build_graph", "unsupported_ops",
           "IMPORT_HANDLERS", "import_handler", "MIN_OPSET"]

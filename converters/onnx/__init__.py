"""ONNX export (IR -> ONNX).

    from modelkit.converters import onnx as onnx_conv
    proto = onnx_conv.export(graph_or_model, path=None, opset=17)
    int8 = onnx_conv.quantize_dynamic(proto)        # int8 weights (onnxruntime)

See `export.py` for the walk, `registry.py` for the handler registry, `handlers/` for the
per-layer handlers and `layout.py` for every gate-order / weight-layout conversion.
"""

from .export import IR_VERSION_FOR_OPSET, SUPPORTED_OPSETS, export, save_proto, supported_ops
from .quantize import quantize_dynamic
from .registry import EXPORT_HANDLERS, export_handler

__all__ = ["export", "save_proto", "quantize_dynamic", "supported_ops", "SUPPORTED_OPSETS",
           "IR_VERSION_FOR_OPSET", "EXPORT_HANDLERS", "export_handler"]

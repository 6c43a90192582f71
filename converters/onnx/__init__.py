"""ONNX export (IR -> ONNX) and import (ONNX -> IR / Model).

    from modelkit.converters import onnx as onnx_conv
    proto = onnx_conv.export(graph_or_model, path=None, opset=17)
    int8 = onnx_conv.quantize_dynamic(proto)        # int8 weights (onnxruntime)
    graph = onnx_conv.import_graph("m.onnx")        # any ONNX model -> ir.Graph
    model = onnx_conv.import_model("m.onnx")        # -> trainable Model (through modelkit.saving)
    model(onnx_conv.OnnxValue([a, b]))              # a sequence (or optional) input, boxed;
    onnx_conv.to_numpy(output)                      # outputs back as arrays / lists / None

See `export.py` for the walk, `registry.py` for the handler registry, `handlers/` for the
per-layer handlers, `importer/` for the import side and `layout.py` for every gate-order / weight-layout conversion.
"""

from .export import IR_VERSION_FOR_OPSET, SUPPORTED_OPSETS, export, save_proto, supported_ops
from .export import default_opset as export_default_opset
from .importer import IMPORT_HANDLERS, import_graph, import_handler
from .model_import import import_model
from .quantize import quantize_dynamic
from modelkit.onnx_spec import OnnxValue, to_numpy
from .registry import EXPORT_HANDLERS, export_handler

__all__ = ["export", "export_default_opset", "save_proto", "quantize_dynamic", "supported_ops",
           "SUPPORTED_OPSETS", "IR_VERSION_FOR_OPSET", "EXPORT_HANDLERS", "export_handler",
           "import_graph", "import_model", "IMPORT_HANDLERS", "import_handler",
           "OnnxValue", "to_numpy"]

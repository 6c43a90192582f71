"""Import handlers. Pattern handlers (Keras layers) register first; every other ONNX op the
backend implements gets the generic `OnnxOp` handler."""

from modelkit.backend.onnx_ops import ONNX_OPS

from ..registry import IMPORT_HANDLERS, import_handler
from . import keras_layers, recurrent  # noqa: F401
from .keras_layers import fallback


def generic(node, ctx):
    """The node as one OnnxOp IR node (on the channels_last tensors of a trunk when the op is
    elementwise, so the trunk stays channels_last)."""
    return fallback(node, ctx)


for _op_type in ONNX_OPS.names():
    if _op_type not in IMPORT_HANDLERS:
        import_handler(_op_type, since=13)(generic)

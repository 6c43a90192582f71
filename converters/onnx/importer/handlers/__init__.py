"""Import handlers. Pattern handlers (Keras layers) register first; every other ONNX op the
backend implements (`modelkit.onnx_spec.OP_TYPES`) gets the generic `OnnxOp` handler."""

from modelkit.onnx_spec import OP_TYPES

from ..registry import IMPORT_HANDLERS, import_handler
from . import keras_layers, recurrent  # noqa: F401
from .keras_layers import fallback


def generic(node, ctx):
    """The node as one OnnxOp IR node (on the channels_last tensors of a trunk when the op is
    elementwise, so the trunk stays channels_last)."""
    return fallback(node, ctx)


for _op_type in sorted(OP_TYPES):
    if _op_type not in IMPORT_HANDLERS:
        import_handler(_op_type, since=13)(generic)

"""Per-layer ONNX export handlers, grouped by kind; importing this package registers them all."""

from . import (activations, attention, backend_ops, conv, conv_recurrent, core, merge,  # noqa: F401
               normalization, onnx_op, recurrent, wrappers)

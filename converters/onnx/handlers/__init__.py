"""Per-layer ONNX export handlers, grouped by kind; importing this package registers them all."""

from . import (activations, attention, backend_ops, conv, conv_recurrent, core,  # noqa: F401
               image, locally_connected, merge, normalization, onnx_op, recurrent, wrappers)

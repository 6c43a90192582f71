"""Per-layer ONNX export handlers, grouped by kind; importing this package registers them all."""

from . import (activations, backend_ops, conv, core, merge, normalization, onnx_op,  # noqa: F401
               recurrent, wrappers)

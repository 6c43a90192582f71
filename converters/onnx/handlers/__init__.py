"""Per-layer ONNX export handlers, grouped by kind; importing this package registers them all."""

from . import activations, conv, core, merge, normalization, recurrent, wrappers  # noqa: F401

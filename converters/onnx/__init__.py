"""ONNX export (IR -> ONNX)."""

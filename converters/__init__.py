"""Converters between the IR and file formats (HDF5, ONNX). They know the IR, never the layer classes."""

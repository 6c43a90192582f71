"""modelkit: Keras-style models in numpy; Keras HDF5 and ONNX files; fast inference on onnxruntime."""

__version__ = "0.1.0"

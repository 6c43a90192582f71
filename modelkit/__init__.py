"""modelkit: Keras-style models in numpy; Keras HDF5 and ONNX files; fast inference on onnxruntime."""

__version__ = "0.1.0"

from . import backend  # noqa: E402,F401
from . import engine  # noqa: E402,F401
from . import layers  # noqa: E402,F401
from . import models  # noqa: E402,F401
from .engine import Input, Model, Sequential  # noqa: E402,F401

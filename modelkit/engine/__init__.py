"""Layers, symbolic tensors, functional and sequential models, the training loop."""

from .base_layer import Layer, clear_session  # noqa: F401
from .input_layer import Input, InputLayer  # noqa: F401
from .input_spec import InputSpec  # noqa: F401
from .keras_tensor import KerasTensor, Node  # noqa: F401
from .functional import Model  # noqa: F401
from .sequential import Sequential  # noqa: F401

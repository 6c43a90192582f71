"""InputLayer and the `Input()` function that starts a functional graph."""

import numpy as np

from ..errors import ConfigError
from .base_layer import Layer
from .keras_tensor import KerasTensor, Node


class InputLayer(Layer):
    """The layer behind `Input`: it has one node and no inbound tensors."""

    def __init__(self, input_shape=None, batch_size=None, dtype=None, input_tensor=None,
                 sparse=False, name=None, batch_input_shape=None, batch_shape=None, **kwargs):
        if batch_input_shape is None:
            batch_input_shape = batch_shape
        if batch_input_shape is None:
            if input_shape is None:
                raise ConfigError("Input needs `shape` or `batch_shape`")
            batch_input_shape = (batch_size,) + tuple(input_shape)
        super().__init__(name=name, dtype=dtype or "float32", **kwargs)
        self._batch_input_shape = tuple(None if d is None else int(d) for d in batch_input_shape)
        self.built = True
        out = KerasTensor(self._batch_input_shape, self.dtype, name=self.name)
        node = Node(self, [], out)
        node.input_tensors = []
        self.is_placeholder = True

    def get_config(self):
        return {"batch_input_shape": list(self._batch_input_shape), "dtype": self.dtype,
                "sparse": False, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("ragged", None)
        return cls(batch_input_shape=config.pop("batch_input_shape", None) or
                   config.pop("batch_shape", None), **config)


def Input(shape=None, batch_size=None, name=None, dtype=None, sparse=False, tensor=None,
          batch_shape=None, **kwargs):
    """A symbolic input tensor: `Input(shape=(784,))`, `Input(batch_shape=(32, 10))`."""
    if shape is None and batch_shape is None:
        raise ConfigError("Input() needs `shape=` (without the batch dimension) or "
                          "`batch_shape=`")
    if shape is not None and not isinstance(shape, (tuple, list)):
        shape = (shape,)
    layer = InputLayer(input_shape=shape, batch_size=batch_size, name=name,
                       dtype=str(np.dtype(dtype)) if dtype else None,
                       batch_input_shape=batch_shape, **kwargs)
    return layer._inbound_nodes[0].outputs

"""Symbolic tensors of the functional API and the nodes that connect layers."""

import numpy as np

from ..backend.symbols import TensorOperators


class KerasTensor(TensorOperators):
    """A symbolic tensor: shape (None for unknown dims), dtype and the layer call that
    produced it (`_keras_history = (layer, node_index, tensor_index)`)."""

    def __init__(self, shape, dtype="float32", name=None, history=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.name = name
        self._keras_history = history

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        layer = self._keras_history[0].name if self._keras_history else None
        return f"<KerasTensor shape={self.shape} dtype={self.dtype} (created by layer {layer!r})>"

    def __hash__(self):
        return id(self)

    def __len__(self):
        from ..errors import ShapeError
        raise ShapeError(f"len() of a symbolic tensor {self!r} is unknown")

    # Python operators (from TensorOperators) become backend-op layers; so does indexing
    def __getitem__(self, idx):
        from .backend_op_layer import getitem_symbolic
        return getitem_symbolic(self, idx)

    # K functions, K.function and K.gradients on symbolic tensors hand themselves over here
    @staticmethod
    def __backend_function__(fn, args, kwargs):
        from .backend_op_layer import symbolic_call
        from .placeholders import to_keras
        return symbolic_call(fn, to_keras(args), to_keras(kwargs))

    @staticmethod
    def __backend_gradients__(loss, sources):
        from .backend_op_layer import symbolic_gradients
        from .placeholders import to_keras
        return symbolic_gradients(to_keras(loss), to_keras(sources))

    @staticmethod
    def __backend_graph_function__(inputs, outputs):
        from .functional import make_backend_function
        from .placeholders import to_keras
        return make_backend_function(to_keras(inputs), to_keras(outputs))


class Node:
    """One call of a layer: its input tensors, output tensors and non-tensor kwargs."""

    def __init__(self, layer, inputs, outputs, call_kwargs=None):
        self.layer = layer
        self.inputs = inputs                  # as passed: a tensor or a list of tensors
        self.input_tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self.outputs = outputs
        self.output_tensors = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        self.call_kwargs = dict(call_kwargs or {})
        self.index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)
        for i, t in enumerate(self.output_tensors):
            t._keras_history = (layer, self.index, i)

    @property
    def parent_nodes(self):
        result = []
        for t in self.input_tensors:
            layer, node_index, _ = t._keras_history
            result.append(layer._inbound_nodes[node_index])
        return result

    def __repr__(self):
        return f"<Node {self.layer.name}#{self.index}>"

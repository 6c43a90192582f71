"""Symbolic tensors of the functional API and the nodes that connect layers."""

import numpy as np

from ..backend import functions as F


class KerasTensor:
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

    # Python operators become backend-op layers (see backend_op_layer.py)
    def __add__(self, o): return F.add(self, o)
    def __radd__(self, o): return F.add(o, self)
    def __sub__(self, o): return F.subtract(self, o)
    def __rsub__(self, o): return F.subtract(o, self)
    def __mul__(self, o): return F.multiply(self, o)
    def __rmul__(self, o): return F.multiply(o, self)
    def __truediv__(self, o): return F.divide(self, o)
    def __rtruediv__(self, o): return F.divide(o, self)
    def __pow__(self, o): return F.pow_(self, o)
    def __neg__(self): return F.negative(self)
    def __abs__(self): return F.abs(self)
    def __matmul__(self, o): return F.matmul(self, o)
    def __getitem__(self, idx):
        from .backend_op_layer import getitem_symbolic
        return getitem_symbolic(self, idx)

    # K functions (and K.function) applied to symbolic tensors hand themselves over here
    @staticmethod
    def __backend_function__(fn, args, kwargs):
        from .backend_op_layer import symbolic_call
        return symbolic_call(fn, args, kwargs)

    @staticmethod
    def __backend_graph_function__(inputs, outputs):
        from .functional import make_backend_function
        return make_backend_function(inputs, outputs)


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

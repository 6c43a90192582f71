"""K functions and Python operators applied to symbolic tensors become graph nodes.

`K.mean(x, axis=1)` on a symbolic `x` creates a `BackendOp` layer that records the K
function by name and its non-tensor arguments, like Keras's TFOpLambda layers. Nothing
is pickled: the name is resolved only through the registry of K functions
(`modelkit.engine.k_functions`), never as an attribute of the backend module, and the
arguments are checked (`check_arguments`) before anything is built.
"""

import numpy as np

from ..backend import functions as F
from ..backend.tensor import Tensor, Variable
from ..errors import ConfigError
from ..op_arguments import check_arguments, decode, encode
from .base_layer import Layer
from .k_functions import k_function_named


def _encode(value, tensors):
    return encode(value, tensors, F.is_symbolic)


class BackendOp(Layer):
    """A node running one `modelkit.backend` function with fixed non-tensor arguments."""

    def __init__(self, function, arguments=None, keras_op=None, **kwargs):
        super().__init__(**kwargs)
        # the call as tf-keras wrote it (TFOpLambda/SlicingOpLambda), kept to write it back
        self.keras_op = keras_op
        where = f"BackendOp {self.name!r}"
        self._fn = k_function_named(function, where)
        self.function = function
        self.arguments = check_arguments(function, arguments or {"args": [], "kwargs": {}},
                                         where)
        self.supports_masking = False

    def call(self, inputs):
        tensors = inputs if isinstance(inputs, list) else [inputs]
        args = decode(self.arguments["args"], tensors)
        kwargs = {k: decode(v, tensors) for k, v in self.arguments["kwargs"].items()}
        if self.function == "getitem":
            return self._fn(args[0], _to_index(args[1]))
        if self.function == "reshape" and len(args) > 1 and isinstance(args[1], list):
            args[1] = [_concrete_dim(d) for d in args[1]]     # tf.shape(x)[0] -> its value
        return self._fn(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update({"function": self.function, "arguments": self.arguments})
        if self.keras_op is not None:
            config["keras_op"] = self.keras_op
        return config

    # -- shapes of random tensors whose shape argument is itself symbolic ---------------------
    _RANDOM = ("random_normal", "random_uniform", "random_binomial", "truncated_normal")

    def _symbolic_call(self, inputs, *args, **kwargs):
        self._symbolic_inputs = inputs if isinstance(inputs, list) else [inputs]
        return super()._symbolic_call(inputs, *args, **kwargs)

    def compute_output_shape(self, input_shape):
        """Random tensors take their shape from a value, which probing with dummy zeros cannot
        see: read it from the symbolic `K.shape(x)` (or its items) instead."""
        if self.function in self._RANDOM and getattr(self, "_symbolic_inputs", None):
            args = decode(self.arguments["args"], self._symbolic_inputs)
            kwargs = {k: decode(v, self._symbolic_inputs)
                      for k, v in self.arguments["kwargs"].items()}
            shape = kwargs.get("shape", args[0] if args else None)
            if F.is_symbolic(shape):
                return _shape_value(shape) or (None,) * (shape.shape[0] or 0)
            if isinstance(shape, (list, tuple)):
                return tuple(_dim_value(d) for d in shape)
        if self.function == "reshape" and getattr(self, "_symbolic_inputs", None):
            args = decode(self.arguments["args"], self._symbolic_inputs)
            if len(args) > 1 and isinstance(args[1], list) and any(
                    F.is_symbolic(d) for d in args[1]):
                return _reshaped(tuple(args[0].shape), [_dim_value(d) for d in args[1]])
        return super().compute_output_shape(input_shape)


def _origin(tensor):
    """(function name, arguments, input tensors) of the BackendOp that made `tensor`."""
    layer, node_index, _ = tensor._keras_history
    if not isinstance(layer, BackendOp):
        return None, None, None
    return layer.function, layer.arguments, layer._inbound_nodes[node_index].input_tensors


def _shape_value(tensor):
    """The static value of `K.shape(x)`: x's symbolic shape (None where unknown)."""
    function, arguments, inputs = _origin(tensor)
    if function == "shape" and len(inputs) == 1:
        return tuple(inputs[0].shape)
    return None


def _dim_value(d):
    """A shape item: an int, or `K.shape(x)[i]` (x's dim i, maybe None), else None."""
    if not F.is_symbolic(d):
        return int(d)
    function, arguments, inputs = _origin(d)
    if function == "getitem":
        source, index = decode(arguments["args"], inputs)
        if isinstance(index, list) and len(index) == 1:      # tf-keras's slice_spec [i]
            index = index[0]
        value = _shape_value(source) if F.is_symbolic(source) else None
        if value is not None and isinstance(index, int):
            return value[index]
    return None


def _concrete_dim(d):
    """A reshape dimension: an int, or a computed scalar tensor (`tf.shape(x)[0]`)."""
    if isinstance(d, Tensor):
        return int(d.numpy())
    return d


def _reshaped(in_shape, dims):
    """The static shape of x reshaped to `dims` (ints, -1, or None where computed and
    unknown): a -1 is resolved when every other size is known, or when the only unknown
    sizes are both batches (`tf.reshape(x, [tf.shape(x)[0], -1])`)."""
    dims, in_shape = list(dims), list(in_shape)
    if in_shape and dims and in_shape[0] is None and dims[0] is None:
        in_shape, dims, head = in_shape[1:], dims[1:], [None]
    else:
        head = []
    if dims.count(-1) == 1 and None not in dims and None not in in_shape:
        rest = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = int(np.prod(in_shape)) // rest if rest else None
    return tuple(head + [None if d is None or d < 0 else d for d in dims])


def _to_index(idx):
    return tuple(idx) if isinstance(idx, list) else idx


def symbolic_call(fn, args, kwargs):
    """K function `fn` called on symbolic tensors: a BackendOp node."""
    tensors = []
    enc_args = _encode(list(args), tensors)
    enc_kwargs = {k: _encode(v, tensors) for k, v in kwargs.items()}
    name = getattr(fn, "k_name", fn.__name__)
    layer = BackendOp(name, {"args": enc_args, "kwargs": enc_kwargs},
                      name=None)
    return layer(tensors if len(tensors) > 1 else tensors[0])


def getitem_symbolic(x, index):
    """`x[index]` on a symbolic tensor: a BackendOp node (its value, inside a running
    graph that closes over it)."""
    value = F.running_value(x)
    if value is not None:
        return F.getitem(value, index)
    tensors = []
    enc = _encode([x, list(index) if isinstance(index, tuple) else index], tensors)
    layer = BackendOp("getitem", {"args": enc, "kwargs": {}})
    return layer(tensors if len(tensors) > 1 else tensors[0])


class SymbolicGradients(Layer):
    """The node `K.gradients(loss, sources)` makes on symbolic tensors: the gradients of
    sum(loss) with respect to its other inputs and to `variables` (weights, held by
    reference). It runs inside `K.function`, which records the graph on a tape."""

    def __init__(self, variables, slots, **kwargs):
        super().__init__(**kwargs)
        self.sources_by_reference = list(variables)
        self.slots = list(slots)         # per source: ("tensor", i) or ("variable", i)

    def call(self, inputs):
        from ..backend.tensor import active_tape
        tape = active_tape()
        if tape is None:
            raise ConfigError(f"Layer {self.name!r}: symbolic K.gradients are evaluated by "
                              "K.function (they cannot be predicted or saved)")
        loss, tensors = inputs[0], inputs[1:]
        sources = [tensors[i] if kind == "tensor" else self.sources_by_reference[i]
                   for kind, i in self.slots]
        grads = tape.gradient(F.sum(loss), sources)
        return [Tensor(g) for g in grads]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[1 + i]) if kind == "tensor"
                else self.sources_by_reference[i].shape
                for kind, i in self.slots]

    def compute_output_dtype(self, input_dtype):
        return [input_dtype[1 + i] if kind == "tensor" else self.sources_by_reference[i].dtype
                for kind, i in self.slots]

    def get_config(self):
        raise ConfigError(f"Layer {self.name!r}: a graph with symbolic K.gradients cannot "
                          "be serialised")


def symbolic_gradients(loss, sources):
    """K.gradients on symbolic tensors: one SymbolicGradients node."""
    if not F.is_symbolic(loss):
        raise ConfigError("K.gradients: the loss must be a symbolic tensor of the graph "
                          f"when the sources are, got {type(loss).__name__}")
    tensors, variables, slots = [], [], []
    for s in sources:
        if F.is_symbolic(s):
            slots.append(("tensor", len(tensors)))
            tensors.append(s)
        elif isinstance(s, Variable):
            slots.append(("variable", len(variables)))
            variables.append(s)
        else:
            raise ConfigError("K.gradients: each source must be a symbolic tensor or a "
                              f"weight Variable, got {type(s).__name__}")
    out = SymbolicGradients(variables, slots)([loss] + tensors)
    return out if isinstance(out, list) else [out]

"""K functions and Python operators applied to symbolic tensors become graph nodes.

`K.mean(x, axis=1)` on a symbolic `x` creates a `BackendOp` layer that records the K
function by name and its non-tensor arguments, like Keras's TFOpLambda layers. Nothing
is pickled: the name is resolved only through the registry of K functions
(`modelkit.engine.k_functions`), never as an attribute of the backend module, and the
arguments are checked (`check_arguments`) before anything is built.
"""

from ..backend import functions as F
from ..op_arguments import check_arguments, decode, encode
from .base_layer import Layer
from .k_functions import k_function_named

def _encode(value, tensors):
    return encode(value, tensors, F.is_symbolic)


class BackendOp(Layer):
    """A node running one `modelkit.backend` function with fixed non-tensor arguments."""

    def __init__(self, function, arguments=None, **kwargs):
        super().__init__(**kwargs)
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
        return self._fn(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update({"function": self.function, "arguments": self.arguments})
        return config


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
    """`x[index]` on a symbolic tensor: a BackendOp node."""
    tensors = []
    enc = _encode([x, list(index) if isinstance(index, tuple) else index], tensors)
    layer = BackendOp("getitem", {"args": enc, "kwargs": {}})
    return layer(tensors if len(tensors) > 1 else tensors[0])

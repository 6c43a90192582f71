"""K functions and Python operators applied to symbolic tensors become graph nodes.

`K.mean(x, axis=1)` on a symbolic `x` creates a `BackendOp` layer that records the K
function by name and its non-tensor arguments, like Keras's TFOpLambda layers. Nothing
is pickled: the function is looked up by name in `modelkit.backend` when loading.
"""

from ..backend import functions as F
from ..errors import ConfigError
from ..op_arguments import decode, encode
from .base_layer import Layer

def _encode(value, tensors):
    return encode(value, tensors, F.is_symbolic)


class BackendOp(Layer):
    """A node running one `modelkit.backend` function with fixed non-tensor arguments."""

    def __init__(self, function, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not hasattr(F, function) and function != "getitem":
            raise ConfigError(f"BackendOp {self.name!r}: unknown backend function {function!r}")
        self.function = function
        self.arguments = arguments or {"args": [], "kwargs": {}}
        self.supports_masking = False

    def call(self, inputs):
        tensors = inputs if isinstance(inputs, list) else [inputs]
        args = decode(self.arguments["args"], tensors)
        kwargs = {k: decode(v, tensors) for k, v in self.arguments["kwargs"].items()}
        fn = getattr(F, self.function)
        if self.function == "getitem":
            return F.getitem(args[0], _to_index(args[1]))
        return fn(*args, **kwargs)

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

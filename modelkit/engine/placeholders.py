"""`K.placeholder` expressions (the backend's `Symbol`s) met by the functional API become
graph nodes: a placeholder an `Input`, a K function of one a `BackendOp`, `K.gradients` a
`SymbolicGradients` node. Each Symbol is converted once and remembers its tensor, so a
placeholder used twice is one input."""

from ..backend import functions as F
from ..backend.symbols import Call, GradientItem, GradientsOf, Placeholder, Symbol


def to_keras(x):
    """`x` (nested lists, tuples and dicts too) with every Symbol replaced by its tensor."""
    if isinstance(x, (list, tuple)):
        return type(x)(to_keras(v) for v in x)
    if isinstance(x, dict):
        return {k: to_keras(v) for k, v in x.items()}
    if not isinstance(x, Symbol):
        return x
    if x.keras_tensor is None:
        x.keras_tensor = _convert(x)
    return x.keras_tensor


def holds_symbols(items):
    return any(isinstance(x, Symbol) for x in items)


def _convert(x):
    if isinstance(x, Placeholder):
        from .input_layer import Input
        return Input(batch_shape=x.shape, dtype=x.dtype.name, name=x.name)
    if isinstance(x, Call):
        args, kwargs = to_keras(x.args), to_keras(x.kwargs)
        if x.fn is F.getitem:
            return args[0][args[1]]
        return x.fn(*args, **kwargs)
    if isinstance(x, GradientsOf):
        from .backend_op_layer import symbolic_gradients
        return symbolic_gradients(to_keras(x.loss), to_keras(x.sources))
    if isinstance(x, GradientItem):
        return to_keras(x.gradients)[x.index]
    raise TypeError(f"unknown symbol {x!r}")      # a new Symbol kind must be added here

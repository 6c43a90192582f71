"""`K.placeholder`: symbolic inputs the backend makes by itself, as in Keras 2.

The backend imports nothing above it, so a placeholder and the K functions applied to it
form a small expression graph here (`Symbol`s): `K.function` and `K.gradients` on such a
graph evaluate it directly, with numpy. As soon as a layer, a model or a symbolic tensor of
the functional API meets a Symbol, the engine turns it into graph nodes (a placeholder
becomes an `Input`), once: each Symbol remembers what it became (`keras_tensor`).

A Symbol's type answers the same hooks as the engine's symbolic tensors
(`__backend_function__`, `__backend_gradients__`, `__backend_graph_function__`); where both
kinds meet, the engine's tensor is the one asked.
"""

import numpy as np

from ..errors import ConfigError, ShapeError, UnsupportedError
from . import config
from . import functions as F
from .tensor import GradientTape, StopRecording, Tensor, as_array


class TensorOperators:
    """Python operators of a symbolic tensor: each is the K function of the same name."""

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


class Symbol(TensorOperators):
    """A value known only when `K.function` runs: a placeholder or a K function of one."""

    keras_tensor = None                  # what the engine made of it (set by the engine)

    def __hash__(self):
        return id(self)

    def __getitem__(self, index):
        return Call(F.getitem, (self, index), {})

    # the hooks the backend calls on the symbolic tensor it meets first
    @staticmethod
    def __backend_function__(fn, args, kwargs):
        return Call(fn, tuple(args), dict(kwargs))

    @staticmethod
    def __backend_gradients__(loss, sources):
        if not isinstance(loss, Symbol):
            raise ConfigError("K.gradients: the loss must be computed from the placeholders "
                              f"when the sources are, got {type(loss).__name__}")
        grads = GradientsOf(loss, list(sources))
        return [GradientItem(grads, i) for i in range(len(sources))]

    @staticmethod
    def __backend_graph_function__(inputs, outputs):
        return PlaceholderFunction(inputs, outputs)


class Placeholder(Symbol):
    """`K.placeholder(shape=(None, 3))`: fed by `K.function`."""

    def __init__(self, shape, dtype, name):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<placeholder {self.name!r} shape={self.shape} dtype={self.dtype}>"

    def evaluate(self, value_of):
        raise ConfigError(f"K.function: placeholder {self.name!r} is needed by the outputs "
                          "but is not one of the inputs")


class Call(Symbol):
    """K function `fn` applied to arguments holding Symbols."""

    def __init__(self, fn, args, kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    @property
    def shape(self):
        raise ShapeError(f"The shape of K.{self.fn.__name__}(...) of a placeholder is known "
                         "only when K.function runs (or once a layer uses it)")

    def __repr__(self):
        return f"<symbolic K.{self.fn.__name__}(...) of placeholders>"

    def evaluate(self, value_of):
        return self.fn(*value_of(self.args), **value_of(self.kwargs))


class GradientsOf(Symbol):
    """d sum(loss) / d sources, all of them at once (the items are `GradientItem`s)."""

    def __init__(self, loss, sources):
        for s in sources:
            if not isinstance(s, Symbol) and not getattr(s, "tracked", False):
                raise ConfigError("K.gradients: each source must be a placeholder, a K "
                                  f"function of one or a weight Variable, got {type(s).__name__}")
        self.loss, self.sources = loss, sources

    def evaluate(self, value_of):
        return F.gradients(value_of(self.loss), value_of(self.sources))


class GradientItem(Symbol):
    def __init__(self, gradients, index):
        self.gradients, self.index = gradients, index

    def evaluate(self, value_of):
        return value_of(self.gradients)[self.index]


def placeholder(shape=None, ndim=None, dtype=None, sparse=False, name=None):
    """Keras 2's `K.placeholder`: a symbolic input to feed through `K.function` (None for a
    dim known only then); layers accept it as they accept `Input`."""
    if sparse:
        raise UnsupportedError("K.placeholder(sparse=True): sparse tensors are not supported")
    if shape is None:
        if ndim is None:
            raise ConfigError("K.placeholder needs `shape=` or `ndim=` (modelkit tensors have "
                              "a known rank)")
        shape = (None,) * int(ndim)
    elif ndim is not None and int(ndim) != len(shape):
        raise ShapeError(f"K.placeholder: shape {tuple(shape)} does not have ndim={ndim}")
    if name is None:
        uid = config.get_uid("placeholder")
        name = "placeholder" if uid == 1 else f"placeholder_{uid - 1}"
    return Placeholder(shape, config.dtype_of(dtype), name)


class PlaceholderFunction:
    """`K.function(inputs, outputs)` over placeholders only: evaluates the expressions with
    the fed values (recorded on a tape when they hold `K.gradients`)."""

    def __init__(self, inputs, outputs):
        self.single = not isinstance(outputs, (list, tuple))
        self.inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self.outputs = [outputs] if self.single else list(outputs)
        for x in self.inputs:
            if not isinstance(x, (Placeholder, config.LearningPhase)):
                raise ConfigError(f"K.function: inputs must be placeholders (or "
                                  f"K.learning_phase()), got {x!r:.80}")
        self.differentiate = _holds_gradients(self.outputs)

    def __call__(self, values):
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if len(values) != len(self.inputs):
            raise ShapeError(f"K.function expects {len(self.inputs)} input value(s), got "
                             f"{len(values)}")
        known, training = {}, config.fixed_phase()
        for x, v in zip(self.inputs, values):
            if isinstance(x, config.LearningPhase):
                training = bool(int(np.asarray(v)))
                continue
            known[id(x)] = Tensor(_fed(x, v), tracked=self.differentiate)

        def value_of(x):
            if isinstance(x, (list, tuple)):
                return type(x)(value_of(v) for v in x)
            if isinstance(x, dict):
                return {k: value_of(v) for k, v in x.items()}
            if not isinstance(x, Symbol):
                return x
            if id(x) not in known:
                known[id(x)] = x.evaluate(value_of)
            return known[id(x)]

        with config.phase_scope(bool(training)), \
                (GradientTape(persistent=True) if self.differentiate else StopRecording()):
            outs = [value_of(o) for o in self.outputs]
        arrays = [np.asarray(as_array(o)) for o in outs]
        return arrays[0] if self.single else arrays


def _fed(x, value):
    arr = np.asarray(as_array(value))
    if arr.ndim != len(x.shape) or any(d is not None and d != n
                                       for d, n in zip(x.shape, arr.shape)):
        raise ShapeError(f"K.function: placeholder {x.name!r} expects shape {x.shape}, got "
                         f"{arr.shape}")
    return arr.astype(x.dtype, copy=False)


def _holds_gradients(items):
    seen, stack = set(), list(items)
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, Symbol) and id(x) not in seen:
            seen.add(id(x))
            if isinstance(x, GradientsOf):
                return True
            stack.extend(vars(x).values())
    return False

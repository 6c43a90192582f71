"""Concrete tensors, variables and the gradient tape.

A `Tensor` wraps a numpy array. Ops (see `ops.py`) take and return tensors; when a
`GradientTape` is recording and any input is tracked (a `Variable`, a watched tensor or
the result of a recorded op), the op is appended to the tape together with what its
vector-Jacobian product needs. `tape.gradient` walks the tape backwards: the record is
already in topological order, so no graph sort is needed.
"""

import contextlib
from concurrent.futures import Future

import numpy as np

from ..errors import ModelkitError
from . import config, huge_pages, parallel, streams
from .sparse_grad import densify
from .thread_stack import ThreadStack


class Tensor:
    """A concrete value with optional gradient tracking."""

    __slots__ = ("value", "tracked", "_logits", "__weakref__")
    __array_priority__ = 100  # numpy defers arithmetic to us

    def __init__(self, value, tracked=False):
        self.value = value
        self.tracked = tracked
        self._logits = None   # set on softmax/sigmoid outputs: fused cross-entropy uses it

    # numpy-like views
    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def ndim(self):
        return self.value.ndim

    def numpy(self):
        return self.value

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __len__(self):
        return len(self.value)

    def __repr__(self):
        return f"<Tensor shape={self.value.shape} dtype={self.value.dtype}>"

    def __float__(self):
        return float(self.value)

    def __bool__(self):
        return bool(self.value)

    # arithmetic (defined in ops.py via _install_operators)


class Variable(Tensor):
    """A named, mutable, always-tracked tensor (layer weights, optimizer slots)."""

    __slots__ = ("name", "trainable", "constraint", "regularizer")

    def __init__(self, value, name="variable", trainable=True, dtype=None,
                 constraint=None, regularizer=None):
        arr = np.asarray(value, dtype=config.dtype_of(dtype) if dtype or not
                         hasattr(value, "dtype") else value.dtype)
        super().__init__(huge_pages.copy(arr), tracked=True)
        self.name = name
        self.trainable = trainable
        self.constraint = constraint
        self.regularizer = regularizer

    def assign(self, value):
        value = np.asarray(value)
        if value.shape != self.value.shape:
            from ..errors import ShapeError
            raise ShapeError(f"Cannot assign a value of shape {value.shape} to variable "
                             f"{self.name!r} of shape {self.value.shape}")
        np.copyto(self.value, value, casting="unsafe")

    def __repr__(self):
        return f"<Variable {self.name!r} shape={self.value.shape} dtype={self.value.dtype}>"

    __hash__ = object.__hash__


class _Record:
    __slots__ = ("opdef", "inputs", "outputs", "saved")

    def __init__(self, opdef, inputs, outputs, saved):
        self.opdef = opdef
        self.inputs = inputs
        self.outputs = outputs
        self.saved = saved


_TAPES = ThreadStack()          # the active tapes of each thread


def active_tape():
    return _TAPES.top()


class GradientTape:
    """Records tracked ops; `gradient(target, sources)` returns d(sum target)/d(source)."""

    def __init__(self, persistent=False):
        self.records = []
        self.persistent = persistent

    def __enter__(self):
        _TAPES.items.append(self)
        return self

    def __exit__(self, *exc):
        _TAPES.items.remove(self)
        return False

    def watch(self, tensor):
        tensor.tracked = True

    def record(self, opdef, inputs, outputs, saved):
        self.records.append(_Record(opdef, inputs, outputs, saved))

    def gradient(self, target, sources, output_gradient=None, pending=False):
        """Gradients of `target` w.r.t. each of `sources` (zeros where unconnected). With
        several threads, leaves' gradients that a VJP defers run on a side stream while
        the chain goes on (see streams.py): the same numbers as the sequential order.
        `pending=True`: those still on the side stream come back as Futures instead of
        being waited for here (`streams.resolve` makes one an array; the caller must
        resolve every one before the next pass: the optimizer does, see
        Optimizer.apply_gradients)."""
        single = isinstance(sources, Tensor)
        sources = [sources] if single else list(sources)
        side = streams.SideStream() if streams.enabled() else None
        if side is None or not pending:
            pending = False
            with side if side is not None else _NO_STREAM:
                grads = self._backward(target, sources, output_gradient, side)
        else:
            try:                        # not joined: the caller resolves the Futures
                grads = self._backward(target, sources, output_gradient, side)
            except BaseException as e:
                side.__exit__(type(e), e, None)
                raise
        if not self.persistent:
            self.records = []
        result = []
        for s in sources:
            g = grads.get(id(s))
            if isinstance(g, _Parts):
                g = streams.Later(g.total) if pending else g.total()
            if g is None:
                g = np.zeros_like(s.value)
            elif not pending:
                g = streams.resolve(g)
            result.append(g)
        return result[0] if single else result

    def _backward(self, target, sources, output_gradient, side):
        """{id(tensor): gradient} over the tape; a leaf's may be a Future or `_Parts`."""
        grads = {id(target): (np.ones_like(target.value) if output_gradient is None
                              else np.asarray(output_gradient, dtype=target.value.dtype))}
        keep = {id(s) for s in sources}     # an intermediate source keeps its gradient
        produced = ({id(o) for rec in self.records for o in rec.outputs}
                    if side is not None else ())
        for rec in reversed(self.records):
            out_grads = [densify(grads.get(id(o)) if id(o) in keep else grads.pop(id(o), None))
                         for o in rec.outputs]
            if all(g is None for g in out_grads):
                continue
            needs = tuple(isinstance(t, Tensor) and t.tracked for t in rec.inputs)
            if not any(needs):
                continue
            if side is not None:            # leaves' gradients may go to the side stream
                needs = tuple(streams.SIDE if need and id(t) not in produced else need
                              for t, need in zip(rec.inputs, needs))
            if len(rec.outputs) == 1:
                in_grads = rec.opdef.vjp(out_grads[0], rec.saved, needs)
            else:
                out_grads = [_no_gradient(o.value) if g is None else g
                             for o, g in zip(rec.outputs, out_grads)]
                in_grads = rec.opdef.vjp(out_grads, rec.saved, needs)
            # the side stream's work first, then the rest in input order: a VJP that
            # defers its input gradient too (streams.Deferred for a need that is not SIDE)
            # has its leaves' gradients start on the side before that runs here
            in_grads = [side.submit(g) if need is streams.SIDE and
                        isinstance(g, streams.Deferred) else g
                        for need, g in zip(needs, in_grads)]
            for t, need, g in zip(rec.inputs, needs, in_grads):
                if not need or g is None:
                    continue
                if isinstance(g, streams.Deferred):
                    g = g()
                key = id(t)
                prev = grads.get(key)
                if prev is None:
                    grads[key] = g
                elif isinstance(prev, (_Parts, Future)) or isinstance(g, Future):
                    grads[key] = _Parts.of(prev, g)
                else:
                    grads[key] = parallel.add(prev, g)
        return grads


def _no_gradient(value):
    """The gradient of an output of a multi-output op that nothing used: zeros shaped like
    it, read-only and without memory of their own (one broadcast zero). An RNN's unused
    output sequence (return_sequences=False) then costs no fill and no scan (rnn_ops'
    `all_zero`): same-process A/B, 10 alternating epochs of 20 steps, GRU benchmark
    32.50 -> 32.06 ms a step, LSTM 35.84 -> 35.72, the weights bit-identical."""
    return np.broadcast_to(np.zeros((), value.dtype), value.shape)


class _Parts:
    """A leaf's gradient contributions, some still on the side stream, summed in order."""

    __slots__ = ("parts",)

    def __init__(self, parts):
        self.parts = parts

    @classmethod
    def of(cls, prev, g):
        return cls((prev.parts if isinstance(prev, _Parts) else [prev]) + [g])

    def total(self):
        acc = streams.resolve(self.parts[0])
        for p in self.parts[1:]:
            acc = parallel.add(acc, streams.resolve(p))
        return acc


_NO_STREAM = contextlib.nullcontext()


class StopRecording:
    """Context manager that pauses every active tape (used for inference paths)."""

    def __enter__(self):
        self._saved = list(_TAPES.items)
        _TAPES.items.clear()

    def __exit__(self, *exc):
        _TAPES.items.extend(self._saved)
        return False


def as_array(x, dtype=None):
    """The numpy value of a Tensor, array or scalar (floats become floatx)."""
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, np.ndarray):
        return x if dtype is None else x.astype(dtype, copy=False)
    arr = np.asarray(x)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype == np.float64:
        return arr.astype(config.floatx())
    return arr


def as_tensor(x, dtype=None):
    if isinstance(x, Tensor):
        return x
    if hasattr(x, "_keras_history"):
        raise ModelkitError("A symbolic tensor was used where a concrete value is needed")
    return Tensor(as_array(x, dtype))

"""The op registry and the one function that runs an op: `apply`.

An op is a forward function `forward(*arrays, **attrs) -> (output, saved)` paired with a
vector-Jacobian product `vjp(grad_output, saved, needs) -> tuple of input gradients`
(`needs[i]` says whether input i wants a gradient; return None where it does not).
Ops with several outputs return a tuple of outputs and receive a list of gradients.
"""

import numpy as np

from ..errors import ConfigError
from ..registry import Registry
from . import ahead
from .tensor import Tensor, active_tape, as_array

OPS = Registry("backend op")


class OpDef:
    """A registered op: name, forward, vector-Jacobian product, number of outputs."""

    __slots__ = ("name", "forward", "vjp", "n_outputs", "differentiable")

    def __init__(self, name, forward, n_outputs=1, differentiable=True):
        self.name = name
        self.forward = forward
        self.vjp = None
        self.n_outputs = n_outputs
        self.differentiable = differentiable

    def defvjp(self, fn):
        self.vjp = fn
        return fn

    def __repr__(self):
        return f"<op {self.name}>"


def defop(name, n_outputs=1, differentiable=True):
    """Decorator: register `forward` as op `name`; attach its VJP with `@op.defvjp`."""
    def decorator(forward):
        opdef = OpDef(name, forward, n_outputs, differentiable)
        OPS.register(name, opdef)
        return opdef
    return decorator


def apply(opdef, *inputs, **attrs):
    """Run `opdef` on tensors/arrays; record it on the active tape when it matters."""
    values = [x.value if isinstance(x, Tensor) else (None if x is None else as_array(x))
              for x in inputs]
    site = ahead.running(opdef.name, active_tape())
    try:
        out, saved = opdef.forward(*values, **attrs)
    finally:
        ahead.restore(site)
    tape = active_tape()
    tracked = (opdef.differentiable and tape is not None
               and any(isinstance(x, Tensor) and x.tracked for x in inputs))
    if opdef.n_outputs == 1:
        result = Tensor(out, tracked)
        outputs = (result,)
    else:
        outputs = tuple(Tensor(o, tracked) for o in out)
        result = outputs
    if tracked:
        if opdef.vjp is None:
            raise ConfigError(f"backend op {opdef.name!r} has no gradient")
        tape.record(opdef, inputs, outputs, saved)
    return result


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape` (reverse of numpy broadcasting)."""
    if grad.shape == tuple(shape):
        return grad
    ndiff = grad.ndim - len(shape)
    if ndiff > 0:
        grad = grad.sum(axis=tuple(range(ndiff)))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def normalize_axis(axis, ndim):
    """None, int or sequence -> None or a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        return tuple(sorted(a % ndim for a in axis))
    return (int(axis) % ndim,)


def restore_reduced(grad, shape, axis, keepdims):
    """Broadcastable view of a reduction's gradient over the original `shape`."""
    if axis is None:
        return np.broadcast_to(np.reshape(grad, (1,) * len(shape)), shape)
    if not keepdims:
        grad = np.expand_dims(grad, axis)
    return np.broadcast_to(grad, shape)

"""SGD (with momentum, Nesterov), RMSprop, Adagrad, Adadelta."""

import numpy as np

from .. import backend as K
from ..backend import blas, native
from ..errors import ConfigError
from .base import Optimizer, axpy_for, descend_scaled


class SGD(Optimizer):
    """v = momentum * v - lr * g; p += v (nesterov: p += momentum * v - lr * g)."""

    # tf-keras 2.11+ names SGD's momentum slot "m", Keras 3 "momentums"
    _KERAS3_SLOT_ALIASES = {"momentum": ("momentums", "m")}

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"SGD: momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _slot_names(self):
        return ("momentum",) if self.momentum else ()

    # For big variables each step below is one pass over the arrays (blas.axpy: y += alpha
    # * x, one rounding), or all of them one pass in C (native.sgd_momentum, the same
    # numbers; MLP benchmark's three kernels 208 -> 110 us). The sparse form applies the same steps to the gradient's rows, so
    # its numbers are the dense update's on the dense gradient (whose other rows are zero).

    def _update(self, p, g, slots, scratch, lr, shared):
        axpy = axpy_for(p)
        if not self.momentum:
            axpy(-lr, g, p)
            return
        v = slots["momentum"]
        if axpy is blas.axpy and blas.fuses(p) and native.sgd_momentum_takes(p, v, g):
            native.sgd_momentum(p, v, g, self.momentum, lr, self.nesterov)   # one pass
            return
        v *= self.momentum
        axpy(-lr, g, v)
        if self.nesterov:
            axpy(-lr, g, p)
            axpy(self.momentum, v, p)
        else:
            p += v

    _sparse_updates = True

    def _update_sparse(self, p, g, slots, scratch, lr, shared):
        axpy = axpy_for(p)
        rows = g.indices
        values = np.ascontiguousarray(g.values, dtype=p.dtype)
        if not self.momentum:
            _axpy_rows(axpy, -lr, values, p, rows)
            return
        v = slots["momentum"]
        v *= self.momentum
        _axpy_rows(axpy, -lr, values, v, rows)
        if self.nesterov:
            _axpy_rows(axpy, -lr, values, p, rows)
            axpy(self.momentum, v, p)
        else:
            p += v

    def _hyper_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    _KERAS3_SLOT_ALIASES = {"rms": ("velocities", "velocity"), "mg": ("average_gradients", "average_gradient"),
                            "momentum": ("momentums",)}

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, name="RMSprop", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon if epsilon is not None else K.epsilon())
        self.centered = bool(centered)

    def _slot_names(self):
        names = ["rms"]
        if self.momentum:
            names.append("momentum")
        if self.centered:
            names.append("mg")
        return tuple(names)

    def _update(self, p, g, slots, scratch, lr, shared):
        axpy = axpy_for(p)
        rho = self.rho
        rms = slots["rms"]
        rms *= rho
        np.multiply(g, g, out=scratch)
        axpy(1.0 - rho, scratch, rms)
        denominator = rms
        if self.centered:
            mg = slots["mg"]
            mg *= rho
            axpy(1.0 - rho, g, mg)
            np.multiply(mg, mg, out=scratch)
            denominator = np.subtract(rms, scratch, out=scratch)
        if self.momentum:
            # ResourceApplyRMSProp: mom = momentum * mom + lr * g / sqrt(denom + eps)
            np.add(denominator, self.epsilon, out=scratch)
            np.sqrt(scratch, out=scratch)
            np.divide(g, scratch, out=scratch)
            mom = slots["momentum"]
            mom *= self.momentum
            axpy(lr, scratch, mom)
            p -= mom
        else:
            descend_scaled(p, g, denominator, self.epsilon, lr, scratch, axpy)

    def _hyper_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adagrad(Optimizer):
    _KERAS3_SLOT_ALIASES = {"accumulator": ("accumulators",)}

    def __init__(self, learning_rate=0.01, initial_accumulator_value=0.1, epsilon=1e-7,
                 name="Adagrad", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if initial_accumulator_value < 0.0:
            raise ConfigError("Adagrad: initial_accumulator_value must be >= 0, got "
                              f"{initial_accumulator_value}")
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon if epsilon is not None else K.epsilon())

    def _slot_names(self):
        return ("accumulator",)

    def _init_slot(self, name, value):
        return np.full_like(value, self.initial_accumulator_value)

    def _update(self, p, g, slots, scratch, lr, shared):
        acc = slots["accumulator"]
        np.multiply(g, g, out=scratch)
        acc += scratch
        descend_scaled(p, g, acc, self.epsilon, lr, scratch)

    def _hyper_config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    _KERAS3_SLOT_ALIASES = {"accum_grad": ("accumulated_grads", "accumulated_grad"),
                            "accum_var": ("accumulated_delta_vars", "accumulated_delta_var")}

    def __init__(self, learning_rate=1.0, rho=0.95, epsilon=1e-7, name="Adadelta", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = float(rho)
        self.epsilon = float(epsilon if epsilon is not None else K.epsilon())

    def _slot_names(self):
        return ("accum_grad", "accum_var")

    def _update(self, p, g, slots, scratch, lr, shared):
        rho, eps = self.rho, self.epsilon
        ag, av = slots["accum_grad"], slots["accum_var"]
        ag *= rho
        np.multiply(g, g, out=scratch)
        scratch *= (1.0 - rho)
        ag += scratch
        # update = sqrt(av + eps) / sqrt(ag + eps) * g
        upd = np.add(av, eps)
        np.sqrt(upd, out=upd)
        np.add(ag, eps, out=scratch)
        np.sqrt(scratch, out=scratch)
        np.divide(upd, scratch, out=upd)
        upd *= g
        av *= rho
        np.multiply(upd, upd, out=scratch)
        scratch *= (1.0 - rho)
        av += scratch
        upd *= lr
        p -= upd

    def _hyper_config(self):
        return {"rho": self.rho, "epsilon": self.epsilon}


def _axpy_rows(axpy, alpha, values, y, rows):
    """y[rows] += alpha * values (rows distinct), rounded as axpy(alpha, values, y) does."""
    part = y[rows]
    axpy(alpha, values, part)
    y[rows] = part

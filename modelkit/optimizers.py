"""Optimizers (tf.keras 2.x legacy formulas), updating `K.Variable`s in place with numpy.

``opt.apply_gradients(zip(grads, variables))`` takes numpy gradients (not taped); each
update is vectorised and in place, with one scratch buffer per variable.

Common behaviour (base class `Optimizer`):
- ``learning_rate`` is a scalar `K.Variable`: ``K.set_value(opt.lr, 0.01)`` and
  ``K.get_value(opt.learning_rate)`` work (``lr`` is an alias; ``lr=`` as an argument is
  Keras 1 and warns). Assigning a number to ``opt.learning_rate`` sets the variable.
- ``decay``: ``lr_t = lr / (1 + decay * iterations)`` (iterations before the step).
- Clipping, in tf.keras's order: ``clipnorm`` (per gradient), ``global_clipnorm``, then
  ``clipvalue``.
- After updating a variable, its ``.constraint`` (if any) is applied.
- ``iterations`` is an int, incremented once per `apply_gradients`.

State: ``get_state() -> {"iterations": int, "weights": {slot_name: array}}`` with slot
names ``"<slot>/<variable name>"`` (e.g. ``"m/dense/kernel"``; the HDF5 converter writes
them as ``"Adam/m/dense/kernel:0"``, like tf.keras), ordered slot-major like tf.keras
(every ``m``, then every ``v``). Nadam's scalar schedule is ``"momentum_cache"``.
``set_state(state, variables)`` restores it exactly (it also accepts
``"<variable name>/<slot>"`` and Keras 3 slot names such as ``momentum``/``velocity``).
"""

import math
import warnings

import numpy as np

from . import backend as K
from .backend.sparse_grad import IndexedRows
from .errors import ConfigError, ShapeError
from .registry import Registry
from .utils import serialization as _ser

OPTIMIZERS = Registry("optimizer")

# Keras 3 / tf.keras 2.11+ configs carry these. The first set never changes the update;
# the second is ignored only while it holds its no-op value (else ConfigError).
_ALWAYS_IGNORED = {"is_legacy_optimizer", "jit_compile", "ema_momentum",
                   "ema_overwrite_frequency"}
_IGNORABLE_CONFIG = {"use_ema": False, "loss_scale_factor": None,
                     "gradient_accumulation_steps": None, "weight_decay": None}


class Optimizer:
    """Base class. Subclasses define `_slot_names()`, `_init_slot(name, value)` (optional)
    and `_update(p, g, slots, scratch, lr, t)` which changes `p` in place."""

    _KERAS3_SLOT_ALIASES = {}

    def __init__(self, learning_rate=0.001, name=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, decay=0.0, **kwargs):
        if "lr" in kwargs:
            warnings.warn(f"{type(self).__name__}: the Keras 1 argument 'lr' is deprecated; "
                          "use 'learning_rate' instead", DeprecationWarning, stacklevel=3)
            learning_rate = kwargs.pop("lr")
        for key in _ALWAYS_IGNORED & set(kwargs):
            kwargs.pop(key)
        for key, default in _IGNORABLE_CONFIG.items():
            if key in kwargs:
                value = kwargs.pop(key)
                if value not in (default, None, False, 0, 0.0):
                    raise ConfigError(f"{type(self).__name__}: {key}={value!r} is not "
                                      "supported (tf.keras 2 optimizers have no such option)")
        _ser.check_kwargs(kwargs, (), type(self).__name__)
        if clipnorm is not None and global_clipnorm is not None:
            raise ConfigError(f"{type(self).__name__}: give at most one of clipnorm and "
                              "global_clipnorm")
        for what, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                        ("global_clipnorm", global_clipnorm)):
            if v is not None and not v > 0:
                raise ConfigError(f"{type(self).__name__}: {what} must be > 0, got {v!r}")
        if decay is None or decay < 0:
            raise ConfigError(f"{type(self).__name__}: decay must be >= 0, got {decay!r}")
        self.name = name or type(self).__name__
        self._learning_rate = K.Variable(np.asarray(_float(learning_rate, "learning_rate"),
                                                    dtype=np.float32),
                                         name=f"{self.name}/learning_rate", trainable=False)
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.decay = float(decay)
        self.iterations = 0
        self._vars = []            # variables with slots, in creation order
        self._slots = {}           # id(var) -> {slot name: array}
        self._scratch = {}         # id(var) -> scratch array

    # -- learning rate ----------------------------------------------------------------------
    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        K.set_value(self._learning_rate, np.asarray(K.get_value(value), np.float32))

    lr = learning_rate

    def _decayed_lr(self):
        lr = float(self._learning_rate.value)
        if self.decay > 0.0:
            lr = lr / (1.0 + self.decay * self.iterations)
        return lr

    # -- slots ------------------------------------------------------------------------------
    def _slot_names(self):
        return ()

    def _init_slot(self, name, value):
        return np.zeros_like(value)

    def _ensure_slots(self, variables):
        new = [v for v in variables if id(v) not in self._slots]
        if not new:
            return
        for v in new:
            self._vars.append(v)
            self._slots[id(v)] = {}
            self._scratch[id(v)] = np.empty_like(v.value)
        # slot-major, like tf.keras: every "m", then every "v"
        for slot in self._slot_names():
            for v in new:
                self._slots[id(v)][slot] = self._init_slot(slot, v.value)

    def _prepare_step(self, lr, t):
        """Per-step scalars shared by every variable (t = iterations + 1)."""
        return None

    # -- applying gradients -----------------------------------------------------------------
    def _clip(self, grads):
        if self.clipnorm is not None:
            out = []
            for g in grads:
                norm = math.sqrt(float(np.vdot(g, g)))
                out.append(g * (self.clipnorm / norm) if norm > self.clipnorm else g)
            grads = out
        if self.global_clipnorm is not None:
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
            if norm > self.global_clipnorm:
                scale = self.global_clipnorm / norm
                grads = [g * scale for g in grads]
        if self.clipvalue is not None:
            grads = [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def apply_gradients(self, grads_and_vars, **kwargs):
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            return self.iterations
        grads = []
        variables = []
        clipping = (self.clipnorm, self.global_clipnorm, self.clipvalue) != (None,) * 3
        for g, v in pairs:
            if isinstance(g, IndexedRows) and (clipping or not self._sparse_updates):
                g = g.dense()
            if not isinstance(g, IndexedRows):
                g = np.asarray(getattr(g, "value", g))
            if g.shape != v.value.shape:
                raise ShapeError(f"{self.name}: gradient of shape {g.shape} for variable "
                                 f"{getattr(v, 'name', v)!r} of shape {v.value.shape}")
            grads.append(g)
            variables.append(v)
        grads = self._clip(grads)
        self._ensure_slots(variables)
        lr = self._decayed_lr()
        t = self.iterations + 1
        shared = self._prepare_step(lr, t)
        for g, v in zip(grads, variables):
            key = id(v)
            if g.dtype != v.value.dtype:
                g = g.astype(v.value.dtype)
            update = self._update_sparse if isinstance(g, IndexedRows) else self._update
            update(v.value, g, self._slots[key], self._scratch[key], lr, shared)
            constraint = getattr(v, "constraint", None)
            if constraint is not None:
                np.copyto(v.value, constraint(v.value), casting="unsafe")
        self.iterations = t
        return self.iterations

    def minimize(self, loss_fn, var_list):
        """Compute d loss / d var_list on a tape and apply one step."""
        var_list = list(var_list)
        with K.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, var_list)
        self.apply_gradients(zip(grads, var_list))
        return loss

    def _update(self, p, g, slots, scratch, lr, shared):
        raise NotImplementedError

    # Optimizers setting this apply a row-sparse gradient (IndexedRows: an embedding's)
    # with `_update_sparse`, whose numbers equal `_update` on the dense gradient: tf.keras
    # applies IndexedSlices that way (SGD, Adam: dense decay of the slots, row-wise adds).
    _sparse_updates = False

    def _update_sparse(self, p, g, slots, scratch, lr, shared):
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------
    def _extra_state(self):
        """Scalar state other than slots, as {name: array} (Nadam's momentum cache)."""
        return {}

    def _set_extra_state(self, weights):
        pass

    def get_state(self):
        """{"iterations": int, "weights": {"<slot>/<var name>": array}} (copies)."""
        weights = {k: np.array(v) for k, v in self._extra_state().items()}
        names = self._unique_names(self._vars)
        for slot in self._slot_names():
            for v, vname in zip(self._vars, names):
                weights[f"{slot}/{vname}"] = np.array(self._slots[id(v)][slot])
        return {"iterations": int(self.iterations), "weights": weights}

    @staticmethod
    def _unique_names(variables):
        seen, out = {}, []
        for v in variables:
            name = str(getattr(v, "name", "variable")).split(":")[0]
            if name in seen:
                seen[name] += 1
                name = f"{name}_{seen[name]}"
            else:
                seen[name] = 0
            out.append(name)
        return out

    def set_state(self, state, variables):
        """Restore `get_state()` output for `variables` (the model's trainable weights)."""
        variables = list(variables)
        self._ensure_slots(variables)
        weights = dict((state or {}).get("weights") or {})
        self._set_extra_state(weights)
        names = self._unique_names(variables)
        missing = []
        for slot in self._slot_names():
            for v, vname in zip(variables, names):
                arr = None
                for cand in self._candidate_names(slot, vname):
                    if cand in weights:
                        arr = weights[cand]
                        break
                if arr is None:
                    missing.append(f"{slot}/{vname}")
                    continue
                arr = np.asarray(arr)
                target = self._slots[id(v)][slot]
                if arr.shape != target.shape:
                    raise ShapeError(f"{self.name}: optimizer slot {slot!r} of variable "
                                     f"{vname!r} has shape {arr.shape} in the saved state, "
                                     f"but the variable has shape {target.shape}")
                np.copyto(target, arr, casting="unsafe")
        if missing and weights:
            raise ConfigError(f"{self.name}: the saved optimizer state has no value for "
                              f"{missing}; it has {sorted(weights)}")
        if state and state.get("iterations") is not None:
            self.iterations = int(state["iterations"])

    def _candidate_names(self, slot, vname):
        names = [f"{slot}/{vname}", f"{vname}/{slot}"]
        for alias in self._KERAS3_SLOT_ALIASES.get(slot, ()):
            names += [f"{alias}/{vname}", f"{vname}/{alias}"]
        return names

    def get_weights(self):
        """tf.keras layout: [iterations] + slot arrays in state order."""
        return [np.asarray(self.iterations, dtype=np.int64)] + \
            list(self.get_state()["weights"].values())

    @property
    def variables(self):
        return list(self._vars)

    # -- config -----------------------------------------------------------------------------
    def _hyper_config(self):
        return {}

    def get_config(self):
        config = {"name": self.name,
                  "learning_rate": _f32_repr(self._learning_rate.value),
                  "decay": self.decay}
        config.update(self._hyper_config())
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if "lr" in config and "learning_rate" not in config:
            config["learning_rate"] = config.pop("lr")
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            raise ConfigError(f"{cls.__name__}: learning-rate schedules ({lr.get('class_name')}) "
                              "are not supported; give a number")
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.get_config()}>"


def _f32_repr(value):
    """The float32 value as the shortest Python float that prints like it (0.001, not
    0.0010000000474974513)."""
    return float(str(np.float32(value)))


def _float(value, what):
    try:
        return float(K.get_value(value)) if isinstance(value, K.Tensor) else float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None


# ---------------------------------------------------------------------------------------


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

    def _update(self, p, g, slots, scratch, lr, shared):
        if not self.momentum:
            np.multiply(g, lr, out=scratch)
            p -= scratch
            return
        v = slots["momentum"]
        v *= self.momentum
        np.multiply(g, lr, out=scratch)
        v -= scratch
        if self.nesterov:
            p -= scratch
            np.multiply(v, self.momentum, out=scratch)
            p += scratch
        else:
            p += v

    _sparse_updates = True

    def _update_sparse(self, p, g, slots, scratch, lr, shared):
        rows = g.indices
        step = np.multiply(g.values, lr, out=np.empty_like(g.values))   # as _update casts
        if not self.momentum:
            p[rows] -= step
            return
        v = slots["momentum"]
        v *= self.momentum
        v[rows] -= step
        if self.nesterov:
            p[rows] -= step
            np.multiply(v, self.momentum, out=scratch)
            p += scratch
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
        rho = self.rho
        rms = slots["rms"]
        rms *= rho
        np.multiply(g, g, out=scratch)
        scratch *= (1.0 - rho)
        rms += scratch
        if self.centered:
            mg = slots["mg"]
            mg *= rho
            np.multiply(g, 1.0 - rho, out=scratch)
            mg += scratch
            np.multiply(mg, mg, out=scratch)
            np.subtract(rms, scratch, out=scratch)       # denominator
        else:
            np.copyto(scratch, rms)
        if self.momentum:
            # ResourceApplyRMSProp: mom = momentum * mom + lr * g / sqrt(denom + eps)
            scratch += self.epsilon
            np.sqrt(scratch, out=scratch)
            np.divide(g, scratch, out=scratch)
            scratch *= lr
            mom = slots["momentum"]
            mom *= self.momentum
            mom += scratch
            p -= mom
        else:
            np.sqrt(scratch, out=scratch)
            scratch += self.epsilon
            np.divide(g, scratch, out=scratch)
            scratch *= lr
            p -= scratch

    def _hyper_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adagrad(Optimizer):
    _KERAS3_SLOT_ALIASES = {"accumulator": ("accumulators",)}

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
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
        np.sqrt(acc, out=scratch)
        scratch += self.epsilon
        np.divide(g, scratch, out=scratch)
        scratch *= lr
        p -= scratch

    def _hyper_config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    _KERAS3_SLOT_ALIASES = {"accum_grad": ("accumulated_grads", "accumulated_grad"),
                            "accum_var": ("accumulated_delta_vars", "accumulated_delta_var")}

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name="Adadelta", **kwargs):
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


class _AdamFamily(Optimizer):
    """Adam, Adamax and Nadam: beta_1, beta_2, epsilon and the slots m, v."""

    def _set_betas(self, beta_1, beta_2, epsilon):
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon if epsilon is not None else K.epsilon())

    def _slot_names(self):
        return ("m", "v")

    def _first_moment(self, g, m, scratch):
        """m = b1 m + (1 - b1) g, in place."""
        b1 = self.beta_1
        m *= b1
        np.multiply(g, 1.0 - b1, out=scratch)
        m += scratch

    def _moments(self, g, slots, scratch):
        """Adam's moments in place: m as above, v = b2 v + (1 - b2) g^2; returns (m, v)."""
        b2 = self.beta_2
        m, v = slots["m"], slots["v"]
        self._first_moment(g, m, scratch)
        v *= b2
        np.multiply(g, g, out=scratch)
        scratch *= (1.0 - b2)
        v += scratch
        return m, v

    def _hyper_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adam(_AdamFamily):
    """tf.keras Adam: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t); p -= lr_t m / (sqrt(v) + eps)."""

    _KERAS3_SLOT_ALIASES = {"m": ("momentum", "momentums"), "v": ("velocity", "velocities"),
                            "vhat": ("velocity_hat", "velocity_hats")}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="Adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_betas(beta_1, beta_2, epsilon)
        self.amsgrad = bool(amsgrad)

    def _slot_names(self):
        return ("m", "v", "vhat") if self.amsgrad else ("m", "v")

    def _prepare_step(self, lr, t):
        return lr * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)

    _sparse_updates = True

    def _update_sparse(self, p, g, slots, scratch, lr, lr_t):
        """tf.keras Adam on IndexedSlices: m, v decay everywhere, the rows' gradient terms
        are added row-wise, the parameter step is dense (as for a dense gradient)."""
        b1, b2 = self.beta_1, self.beta_2
        m, v = slots["m"], slots["v"]
        rows, vals = g.indices, g.values
        tmp = np.empty_like(vals)                # the same casts as _moments on dense g
        m *= b1
        np.multiply(vals, 1.0 - b1, out=tmp)
        m[rows] += tmp
        v *= b2
        np.multiply(vals, vals, out=tmp)
        tmp *= (1.0 - b2)
        v[rows] += tmp
        self._step(p, m, v, slots, scratch, lr_t)

    def _update(self, p, g, slots, scratch, lr, lr_t):
        m, v = self._moments(g, slots, scratch)
        self._step(p, m, v, slots, scratch, lr_t)

    def _step(self, p, m, v, slots, scratch, lr_t):
        if self.amsgrad:
            vhat = slots["vhat"]
            np.maximum(vhat, v, out=vhat)
            np.sqrt(vhat, out=scratch)
        else:
            np.sqrt(v, out=scratch)
        scratch += self.epsilon
        np.divide(m, scratch, out=scratch)
        scratch *= lr_t
        p -= scratch

    def _hyper_config(self):
        return {**super()._hyper_config(), "amsgrad": self.amsgrad}


class Adamax(_AdamFamily):
    """m = b1 m + (1-b1) g; v = max(b2 v, |g|); p -= lr / (1 - b1^t) * m / (v + eps)."""

    _KERAS3_SLOT_ALIASES = {"m": ("m", "momentum"), "v": ("u", "norm")}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="Adamax", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_betas(beta_1, beta_2, epsilon)

    def _prepare_step(self, lr, t):
        return lr / (1.0 - self.beta_1 ** t)

    def _update(self, p, g, slots, scratch, lr, lr_t):
        m, v = slots["m"], slots["v"]
        self._first_moment(g, m, scratch)
        v *= self.beta_2
        np.abs(g, out=scratch)
        np.maximum(v, scratch, out=v)
        np.add(v, self.epsilon, out=scratch)
        np.divide(m, scratch, out=scratch)
        scratch *= lr_t
        p -= scratch


class Nadam(_AdamFamily):
    """tf.keras 2 Nadam with the momentum schedule mu_t = b1 (1 - 0.5 * 0.96^(0.004 t)).

    As in tf.keras, `decay` here is the schedule decay (default 0.004; Keras 1 called it
    `schedule_decay`) and the learning rate is not decayed."""

    _KERAS3_SLOT_ALIASES = {"m": ("momentum", "momentums"), "v": ("velocity", "velocities")}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="Nadam", **kwargs):
        if "schedule_decay" in kwargs:
            kwargs["decay"] = kwargs.pop("schedule_decay")
        kwargs.setdefault("decay", 0.004)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_betas(beta_1, beta_2, epsilon)
        self._m_cache = 1.0

    def _decayed_lr(self):
        return float(self._learning_rate.value)

    def _prepare_step(self, lr, t):
        b1 = self.beta_1
        mu_t = b1 * (1.0 - 0.5 * 0.96 ** (self.decay * t))
        mu_t1 = b1 * (1.0 - 0.5 * 0.96 ** (self.decay * (t + 1)))
        m_schedule_new = self._m_cache * mu_t
        m_schedule_next = m_schedule_new * mu_t1
        self._m_cache = m_schedule_new
        return (mu_t, mu_t1, 1.0 - m_schedule_new, 1.0 - m_schedule_next,
                1.0 - self.beta_2 ** t)

    def _update(self, p, g, slots, scratch, lr, shared):
        mu_t, mu_t1, g_denom, m_denom, v_denom = shared
        m, v = self._moments(g, slots, scratch)
        # m_bar = (1 - mu_t) g / g_denom + mu_t1 m / m_denom
        m_bar = np.multiply(g, (1.0 - mu_t) / g_denom)
        np.multiply(m, mu_t1 / m_denom, out=scratch)
        m_bar += scratch
        np.divide(v, v_denom, out=scratch)
        np.sqrt(scratch, out=scratch)
        scratch += self.epsilon
        np.divide(m_bar, scratch, out=scratch)
        scratch *= lr
        p -= scratch

    def _extra_state(self):
        return {"momentum_cache": np.asarray(self._m_cache, dtype=np.float32)}

    def _set_extra_state(self, weights):
        for key in ("momentum_cache", "m_cache"):
            if key in weights:
                self._m_cache = float(np.asarray(weights[key]).reshape(()))
                return


_ser.register_all(OPTIMIZERS, {"sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad,
                               "adadelta": Adadelta, "adam": Adam, "adamax": Adamax,
                               "nadam": Nadam})


def _normalize(name):
    return name.lower() if isinstance(name, str) else name


def get(identifier):
    """An optimizer from a name ('adam', 'Adam'), a config dict, an instance, or a class."""
    if identifier is None:
        raise ConfigError("An optimizer is required (e.g. 'rmsprop' or optimizers.Adam())")
    return _ser.deserialize(identifier, OPTIMIZERS, "optimizer", base_class=Optimizer,
                            normalize=_normalize)


def serialize(optimizer):
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config, custom_objects=None):
    return _ser.deserialize(config, OPTIMIZERS, "optimizer", base_class=Optimizer,
                            custom_objects=custom_objects, normalize=_normalize)

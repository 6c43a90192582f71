"""The optimizer base class: learning rate and decay, clipping, constraints, slots and state.

See the package docstring for the behaviour every optimizer shares.
"""

import math
import warnings
from concurrent.futures import Future

import numpy as np

from .. import backend as K
from ..backend import blas, huge_pages, parallel, streams
from ..backend.sparse_grad import IndexedRows
from ..errors import ConfigError, ShapeError
from ..registry import Registry
from ..utils import serialization as _ser

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
            for v in new:          # (large slots on huge pages, as the variables are)
                self._slots[id(v)][slot] = huge_pages.copy(self._init_slot(slot, v.value))

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
        """One step. A gradient may be a Future (`GradientTape.gradient(..., pending=True)`):
        the variables whose gradients are final are updated first, then each pending one
        once it is (the same numbers: the per-variable updates are independent); clipping
        needs every gradient at once and waits for all first."""
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            return self.iterations
        clipping = (self.clipnorm, self.global_clipnorm, self.clipvalue) != (None,) * 3
        self._ensure_slots([v for _, v in pairs])        # in the caller's order (state layout)
        if clipping:
            pairs = [(streams.resolve(g), v) for g, v in pairs]
        else:                           # stable: the final ones first, in order
            pairs.sort(key=lambda p: isinstance(p[0], Future))
        grads = [g if isinstance(g, Future) else self._checked(g, v, clipping)
                 for g, v in pairs]
        variables = [v for _, v in pairs]
        grads = self._clip(grads)
        lr = self._decayed_lr()
        t = self.iterations + 1
        shared = self._prepare_step(lr, t)
        for g, v in zip(grads, variables):
            if isinstance(g, Future):
                g = self._checked(streams.resolve(g), v, clipping)
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

    def _checked(self, g, v, clipping):
        """A gradient as an array (or IndexedRows where updates may be sparse), its shape
        checked against the variable's."""
        if isinstance(g, IndexedRows) and (clipping or not self._sparse_updates):
            g = g.dense()
        if not isinstance(g, IndexedRows):
            g = np.asarray(getattr(g, "value", g))
        if g.shape != v.value.shape:
            raise ShapeError(f"{self.name}: gradient of shape {g.shape} for variable "
                             f"{getattr(v, 'name', v)!r} of shape {v.value.shape}")
        return g

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


CACHE_BLOCK_MIN_BYTES = 4 << 20     # variables at least this large are updated by row blocks


def over_rows(fn, p, scratch):
    """fn(sl, work) for index expressions `sl` that cover `p` (slices of its rows, `...` for
    a scalar), `work` being scratch space shaped like p[sl] (from `scratch`, shaped like
    p). A variable of CACHE_BLOCK_MIN_BYTES or more (an embedding table) goes by blocks
    of rows sized for the L2 cache (`backend/parallel.blocks`), all with the same first
    rows of `scratch` as work, so the several elementwise passes of an update run from
    cache instead of streaming whole arrays through memory once per pass (Adam on a
    20000 x 128 table: 7.8 -> 4.5 ms). The blocks are claimed by `parallel`'s threads, each
    with its own rows of `scratch` as work: `fn` must touch only the rows of `sl` (the
    LSTM/GRU benchmarks' Adam steps, same process, alternating, quiet: 37.30 -> 36.37 and
    32.09 -> 30.89 ms/step). Updates made of elementwise passes give the same numbers
    either way."""
    if p.ndim == 0:
        fn(..., scratch)
    elif p.nbytes < CACHE_BLOCK_MIN_BYTES:
        fn(slice(0, p.shape[0]), scratch)
    else:
        bounds = parallel.blocks(p.shape[0], p.nbytes // p.shape[0])
        parallel.map_items(lambda j: fn(slice(*bounds[j]), scratch[slice(*bounds[j])]),
                           len(bounds))


def descend_scaled(p, step, second_moment, epsilon, lr, scratch, axpy=None):
    """p -= lr * step / (sqrt(second_moment) + epsilon), in place through `scratch` (which
    may be `second_moment` itself): the update of Adagrad, RMSprop and the Adam family.
    With `axpy` (see axpy_for), the last multiply and subtract are one axpy."""
    np.sqrt(second_moment, out=scratch)
    scratch += epsilon
    np.divide(step, scratch, out=scratch)
    if axpy is not None:
        axpy(-lr, scratch, p)
        return
    scratch *= lr
    p -= scratch


BLAS_AXPY_MIN_SIZE = 1 << 16     # values; below, numpy's two in-cache passes cost less
                                 # than the call (8 us against 1-4 us for 500-20000 values)


def axpy_for(p):
    """y += alpha * x for the update of variable p: blas.axpy (one pass, one rounding) when
    p is big enough to gain from it, numpy's multiply and add otherwise. One choice per
    variable, so its sparse and dense updates round alike."""
    return blas.axpy if p.size >= BLAS_AXPY_MIN_SIZE else blas.numpy_axpy


def _f32_repr(value):
    """The float32 value as the shortest Python float that prints like it (0.001, not
    0.0010000000474974513)."""
    return float(str(np.float32(value)))


def _float(value, what):
    try:
        return float(K.get_value(value)) if isinstance(value, K.Tensor) else float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None

"""The Layer base class: weights, build, call, symbolic calls, config, masks, losses."""

import functools
import inspect
import re

import numpy as np

from .. import legacy
from ..backend import config as backend_config
from ..backend import functions as F
from ..backend.functions import is_symbolic
from ..backend.tensor import StopRecording, Tensor, Variable, as_array, as_tensor
from ..backend.thread_stack import ThreadStack
from ..errors import ConfigError, DTypeError, ModelkitError, ShapeError
from ..nesting import flatten_structure
from .keras_tensor import KerasTensor, Node
from .placeholders import holds_symbols, to_keras


def to_snake_case(name):
    s = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", s).lower()


def unique_name(base):
    n = backend_config.get_uid(base)
    return base if n == 1 else f"{base}_{n - 1}"


def clear_session():
    """Reset layer-name counters and the learning phase (as keras.backend.clear_session
    does)."""
    backend_config.clear_session()


def to_list(x):
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def map_structure(fn, x):
    if isinstance(x, (list, tuple)):
        return type(x)(map_structure(fn, i) for i in x)
    if isinstance(x, dict):
        return {k: map_structure(fn, v) for k, v in x.items()}
    return fn(x)


class _CallContext:
    """Collects `add_loss` tensors while a model runs in training (one stack per thread,
    as the tapes)."""

    _stack = ThreadStack()

    def __init__(self):
        self.losses = []

    @classmethod
    def current(cls):
        """The innermost context on this thread, or None."""
        return cls._stack.top()

    def __enter__(self):
        _CallContext._stack.items.append(self)
        return self

    def __exit__(self, *exc):
        _CallContext._stack.items.pop()
        return False


_BASE_KWARGS = {"input_shape", "batch_input_shape", "batch_size", "input_dim", "input_length",
                "weights", "activity_regularizer", "input_dtype"}


# Output-shape inference runs `call` on a dummy input; never one larger than this.
MAX_PROBE_ELEMENTS = 1 << 24


class Layer:
    """Base class of every layer (Keras semantics).

    Subclasses implement `build(input_shape)` (creating weights with `add_weight`),
    `call(inputs, training=None, mask=None)` with backend ops, `get_config()` and,
    where the default probing is not right, `compute_output_shape` / `compute_mask`.
    """

    _keras1_renames = None        # per-class Keras 1 -> Keras 2 argument names
    _keras1_convert = None
    preserves_shape = False       # True: the output shape is the input shape

    def __init_subclass__(cls, **kw):
        """Rename Keras 1 keyword arguments before the subclass's __init__ binds them."""
        super().__init_subclass__(**kw)
        original = cls.__dict__.get("__init__")
        if original is None:
            return

        @functools.wraps(original)
        def __init__(self, *args, **kwargs):
            if kwargs:
                legacy.rename_kwargs(kwargs, cls.__name__, cls._keras1_renames,
                                     {"padding": legacy.convert_border_mode,
                                      "data_format": legacy.convert_dim_ordering,
                                      **(cls._keras1_convert or {})})
            original(self, *args, **kwargs)
        cls.__init__ = __init__

    def __init__(self, trainable=True, name=None, dtype=None, **kwargs):
        cls_name = type(self).__name__
        unknown = set(kwargs) - _BASE_KWARGS
        if unknown:
            raise ConfigError(f"{cls_name}: unknown argument(s) {sorted(unknown)}")
        self.name = name or unique_name(to_snake_case(cls_name))
        self.trainable = trainable
        self.dtype = str(np.dtype(dtype)) if dtype and not isinstance(dtype, dict) else (
            dtype.get("config", {}).get("name", backend_config.floatx())
            if isinstance(dtype, dict) else backend_config.floatx())
        self.built = False
        self.supports_masking = False
        self.stateful = False
        self._own_weights = []
        self._sublayers = []
        self._inbound_nodes = []
        self._eager_losses = []
        self._initial_weights = kwargs.pop("weights", None)
        self.activity_regularizer = None
        if kwargs.get("activity_regularizer") is not None:
            from .. import regularizers
            self.activity_regularizer = regularizers.get(kwargs.pop("activity_regularizer"))
        kwargs.pop("activity_regularizer", None)
        self._batch_input_shape = self._resolve_input_shape(kwargs)
        self._input_dtype = kwargs.pop("input_dtype", None)

    @staticmethod
    def _resolve_input_shape(kwargs):
        if "batch_input_shape" in kwargs and kwargs["batch_input_shape"] is not None:
            return tuple(kwargs.pop("batch_input_shape"))
        batch = kwargs.pop("batch_size", None)
        if kwargs.get("input_shape") is not None:
            return (batch,) + tuple(kwargs.pop("input_shape"))
        if kwargs.get("input_dim") is not None:
            dim = kwargs.pop("input_dim")
            length = kwargs.pop("input_length", None)
            if length is not None:
                return (batch, length, dim)
            return (batch, dim)
        return None

    # -- weights --------------------------------------------------------------------------
    def add_weight(self, name, shape, dtype=None, initializer=None, regularizer=None,
                   trainable=True, constraint=None):
        from .. import constraints, initializers, regularizers
        from .build_budget import check_weight
        init = initializers.get(initializer or "glorot_uniform")
        check_weight(self.name, name, shape, dtype or self.dtype)
        shape = tuple(int(d) for d in shape)
        value = init(shape, dtype=dtype or self.dtype)
        var = Variable(value, name=f"{self._weight_scope()}/{name}", trainable=trainable,
                       dtype=dtype or self.dtype, constraint=constraints.get(constraint),
                       regularizer=regularizers.get(regularizer))
        self._own_weights.append(var)
        return var

    def _weight_scope(self):
        return self.name

    def _track_layer(self, layer):
        self._sublayers.append(layer)
        return layer

    @property
    def weights(self):
        seen, out = set(), []
        for v in self._all_weights():
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    def _all_weights(self):
        """Own weights first, then sublayers' (Keras order: trainable before non-trainable
        is applied by the trainable/non-trainable properties, not here)."""
        out = list(self._own_weights)
        for layer in self._sublayers:
            out.extend(layer.weights)
        return out

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        own = [v for v in self._own_weights if v.trainable]
        for layer in self._sublayers:
            own.extend(layer.trainable_weights)
        return _dedupe(own)

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        own = [v for v in self._own_weights if not v.trainable]
        for layer in self._sublayers:
            own.extend(layer.non_trainable_weights)
        return _dedupe(own)

    trainable_variables = trainable_weights
    variables = weights

    def get_weights(self):
        return [np.array(v.value) for v in self.weights]

    def set_weights(self, weights):
        params = self.weights
        weights = list(weights)
        if len(weights) != len(params):
            raise ShapeError(f"Layer {self.name!r} ({type(self).__name__}) expects "
                             f"{len(params)} weight array(s), but set_weights got {len(weights)}")
        for i, (p, w) in enumerate(zip(params, weights)):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ShapeError(f"Layer {self.name!r}: weight {i} ({p.name}) has shape "
                                 f"{p.shape}, the given array has shape {w.shape}")
            p.assign(w)

    def count_params(self):
        if not self.built:
            raise ModelkitError(f"Layer {self.name!r} is not built yet, so it has no "
                                "weights to count; call it on an input first")
        return int(sum(np.prod(v.shape) for v in self.weights))

    # -- losses ---------------------------------------------------------------------------
    def add_loss(self, loss, inputs=None):
        """A loss term for training (Keras 2's `inputs=` is accepted and not needed)."""
        ctx = _CallContext.current()
        if ctx is not None:
            ctx.losses.append(loss)
        else:
            self._eager_losses.append(loss)

    def regularization_losses(self):
        """Weight-regularisation penalties, computed now (differentiable)."""
        return [v.regularizer(v) for v in self.weights if v.regularizer is not None
                and (v.trainable and self.trainable)]

    @property
    def losses(self):
        return self.regularization_losses() + list(self._eager_losses)

    # -- building and calling -------------------------------------------------------------
    def build(self, input_shape):
        self.built = True

    def call(self, inputs, **kwargs):
        return inputs

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(input_shape)
            self.built = True
            if self._initial_weights is not None:
                self.set_weights(self._initial_weights)
                self._initial_weights = None

    def __call__(self, inputs, *args, **kwargs):
        flat = flatten_structure(inputs)
        if any(is_symbolic(t) for t in flat):
            return self._symbolic_call(inputs, *args, **kwargs)
        if holds_symbols(flat):                          # K.placeholder expressions
            return self._symbolic_call(to_keras(inputs), *args, **kwargs)
        inputs = map_structure(lambda x: x if isinstance(x, Tensor) else as_tensor(x), inputs)
        self._maybe_build(map_structure(lambda t: tuple(t.shape), inputs))
        return self._call_with_options(inputs, *args, **kwargs)

    def _call_with_options(self, inputs, *args, training=None, mask=None, **kwargs):
        """Call `self.call` passing `training`/`mask` only when its signature takes them."""
        params = self._call_params()
        if "training" in params:
            kwargs["training"] = training
        if "mask" in params:
            kwargs["mask"] = mask
        out = self.call(inputs, *args, **kwargs)
        if self.activity_regularizer is not None and training:
            for o in to_list(out):
                self.add_loss(self.activity_regularizer(o))
        return out

    def _call_params(self):
        cls = type(self)
        cached = cls.__dict__.get("_call_params_cache")
        if cached is None:
            cached = frozenset(inspect.signature(self.call).parameters)
            setattr(cls, "_call_params_cache", cached)
        return cached

    def _symbolic_call(self, inputs, *args, **kwargs):
        input_shapes = map_structure(lambda t: tuple(t.shape), inputs)
        self._check_input_compatibility(inputs)
        self._maybe_build(input_shapes)
        output_shapes = self.compute_output_shape(input_shapes)
        dtypes = self.compute_output_dtype(map_structure(lambda t: t.dtype, inputs))
        if _is_shape_list(output_shapes):
            dts = dtypes if isinstance(dtypes, list) else [dtypes] * len(output_shapes)
            outputs = [KerasTensor(s, d) for s, d in zip(output_shapes, dts)]
        else:
            outputs = KerasTensor(output_shapes, dtypes if not isinstance(dtypes, list)
                                  else dtypes[0])
        kwargs.pop("mask", None)
        Node(self, inputs, outputs, call_kwargs=kwargs)
        for t in to_list(outputs):
            t.name = f"{self.name}/{t._keras_history[1]}/{t._keras_history[2]}"
        return outputs

    def _check_input_compatibility(self, inputs):
        """Subclasses with fixed input ranks set `self.input_ndim` (int or (min, max));
        custom layers set Keras's `self.input_spec` (an InputSpec or a list of them)."""
        specs = getattr(self, "input_spec", None)
        if specs is not None:
            specs = specs if isinstance(specs, (list, tuple)) else [specs]
            for i, (s, t) in enumerate(zip(specs, to_list(inputs))):
                if s is not None:
                    s.check(tuple(t.shape), self.name, i)
        spec = getattr(self, "input_ndim", None)
        if spec is None:
            return
        for t in to_list(inputs):
            lo, hi = (spec, spec) if isinstance(spec, int) else spec
            if not (lo <= t.ndim <= (hi if hi is not None else 99)):
                want = f"{lo}" if lo == hi else f"{lo} to {hi}"
                raise ShapeError(f"Layer {self.name!r} ({type(self).__name__}) expects input "
                                 f"of rank {want} (batch included), got shape {t.shape}")

    def compute_output_dtype(self, input_dtype):
        return self.dtype

    def compute_output_shape(self, input_shape):
        """The input shape for `preserves_shape` layers; otherwise run `call` on small dummy
        inputs twice and read the shapes (dims that change with the unknown input dims are
        reported as None)."""
        if self.preserves_shape:
            return input_shape
        try:
            probes = [self._probe(input_shape, fill) for fill in (2, 3)]
        except _ClosureProbe:
            # Keras 2's default for a layer whose call closes over graph tensors (the VAE's
            # loss layer): the (first) input's shape
            return input_shape[0] if _is_shape_list(input_shape) else input_shape
        if _is_shape_list(probes[0]):
            return [_merge_probe(a, b) for a, b in zip(*probes)]
        return _merge_probe(*probes)

    def _probe(self, input_shape, fill):
        def dummy(shape_and_dtype):
            shape, dt = shape_and_dtype
            concrete = tuple(fill if d is None else int(d) for d in shape)
            if int(np.prod(concrete, dtype=object)) > MAX_PROBE_ELEMENTS:
                raise ShapeError(
                    f"Layer {self.name!r} ({type(self).__name__}): cannot infer the output "
                    f"shape for input shape {tuple(shape)} without running it on an input of "
                    f"more than {MAX_PROBE_ELEMENTS} values; refused (declare the output "
                    f"shape, e.g. Lambda(..., output_shape=...))")
            # a read-only view of one zero: no dummy as big as the declared shape
            return Tensor(np.broadcast_to(np.zeros((), dtype=dt), concrete))
        dtypes = self._probe_dtypes(input_shape)
        pairs = _zip_structure(input_shape, dtypes)
        inputs = map_structure_pairs(dummy, pairs)
        # dummy zeros may divide 0/0; losses a probed call adds are not real
        with StopRecording(), np.errstate(all="ignore"), _CallContext(), \
                F.probe_scope() as probe:
            try:
                out = self._call_with_options(inputs, training=False)
            except Exception:
                if probe.saw_symbolic:
                    raise _ClosureProbe() from None
                raise
        if probe.saw_symbolic:
            raise _ClosureProbe()
        if isinstance(out, (list, tuple)):
            return [tuple(o.shape) for o in out]
        return tuple(out.shape)

    def _probe_dtypes(self, input_shape):
        if _is_shape_list(input_shape):
            return [self._input_dtype or self.dtype] * len(input_shape)
        return self._input_dtype or self.dtype

    def compute_mask(self, inputs, mask=None):
        """Output mask: passed through when the layer supports masking, else dropped."""
        if self.supports_masking:
            return mask
        return None

    # -- graph connectivity ----------------------------------------------------------------
    def _node_attr(self, attr, node_index):
        if not self._inbound_nodes:
            raise ModelkitError(f"Layer {self.name!r} has never been called, so it has no "
                                f"{attr}")
        node = self._inbound_nodes[node_index]
        value = node.inputs if attr == "input" else node.outputs
        return value

    @property
    def input(self):
        return self._node_attr("input", 0)

    @property
    def output(self):
        return self._node_attr("output", 0)

    @property
    def input_shape(self):
        x = self.input
        return [t.shape for t in x] if isinstance(x, (list, tuple)) else x.shape

    @property
    def output_shape(self):
        x = self.output
        return [t.shape for t in x] if isinstance(x, (list, tuple)) else x.shape

    def get_input_at(self, node_index):
        return self._node_attr("input", node_index)

    def get_output_at(self, node_index):
        return self._node_attr("output", node_index)

    # -- config -----------------------------------------------------------------------------
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class _ClosureProbe(Exception):
    """A probed call met symbolic tensors of the graph: its dummy run says nothing."""


def _dedupe(vs):
    seen, out = set(), []
    for v in vs:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _is_shape_list(s):
    return isinstance(s, list) and all(isinstance(i, (tuple, list)) for i in s) and \
        len(s) > 0 and not all(isinstance(i, (int, type(None))) for i in s)


def _merge_probe(a, b):
    return tuple(x if x == y else None for x, y in zip(a, b))


def _zip_structure(shapes, dtypes):
    if _is_shape_list(shapes):
        return [(s, d) for s, d in zip(shapes, dtypes)]
    return (shapes, dtypes)


def map_structure_pairs(fn, pairs):
    if isinstance(pairs, list):
        return [fn(p) for p in pairs]
    return fn(pairs)


def check_float_input(layer, x):
    arr = as_array(x)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == bool):
        raise DTypeError(f"Layer {layer.name!r} got input of dtype {arr.dtype}, "
                         "expected a numeric array")

"""Losses (Keras 2 semantics).

Loss *functions* map ``(y_true, y_pred)`` to a per-sample Tensor (mean over the last axis
where Keras takes it); they are differentiable in `y_pred`. `y_true` may be a numpy array
of any int/float dtype: it is cast to `y_pred`'s dtype (integer class ids for the sparse
loss stay integers).

Loss *classes* (`MeanSquaredError`, `CategoricalCrossentropy(from_logits=True)`, ...)
are called as ``loss(y_true, y_pred, sample_weight=None)`` and reduce with
``reduction='sum_over_batch_size'`` (the default, alias 'auto'), 'sum' or 'none'; their
`call(y_true, y_pred)` returns the per-sample values, and `.fn` is the wrapped function.

`get(name)` returns the function for a function name ('mse', 'categorical_crossentropy'),
an instance for a class name or config dict. Keras 1's 'cosine_proximity' resolves to
`cosine_similarity` with a DeprecationWarning.
"""

import functools

import numpy as np

from . import backend as K
from .errors import ConfigError, ShapeError
from .registry import Registry
from .utils import serialization as _ser

LOSSES = Registry("loss")
DEPRECATED_NAMES = {"cosine_proximity": "cosine_similarity"}


def _pred(y_pred):
    if isinstance(y_pred, K.Tensor):
        return y_pred
    arr = np.asarray(y_pred)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(K.floatx())
    return K.Tensor(arr)


def _prepare(y_true, y_pred):
    """(y_true cast to y_pred's dtype, y_pred as a Tensor), shapes checked."""
    y_pred = _pred(y_pred)
    dt = y_pred.dtype
    if isinstance(y_true, K.Tensor):
        if y_true.dtype != dt:
            y_true = K.cast(y_true, dt)
    else:
        y_true = K.Tensor(np.asarray(y_true, dtype=dt))
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = K.expand_dims(y_true, -1)
    elif y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = K.squeeze(y_true, -1)
    try:
        np.broadcast_shapes(y_true.shape, y_pred.shape)
    except ValueError:
        raise ShapeError(f"Loss: y_true of shape {y_true.shape} does not match y_pred of shape "
                         f"{y_pred.shape}") from None
    return y_true, y_pred


def _c(x, value):
    return np.asarray(value, dtype=x.dtype)


def _reg(*names):
    def deco(fn):
        fn = _symbolic_aware(fn)
        LOSSES.register(list(names), fn)
        return fn
    return deco


def _symbolic_aware(fn):
    """Called on symbolic tensors (Keras 2's `binary_crossentropy(inputs, outputs)` for
    `add_loss`), a loss function becomes a node of the functional graph."""
    @functools.wraps(fn)
    def wrapper(y_true, y_pred, *args, **kwargs):
        y_true, y_pred = (K.running_value(t) if K.is_symbolic(t) and
                          K.running_value(t) is not None else t for t in (y_true, y_pred))
        if K.is_symbolic(y_true) or K.is_symbolic(y_pred):
            from .layers.core import Lambda
            pair = [t for t in (y_true, y_pred) if K.is_symbolic(t)]

            def run(tensors):
                tensors = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
                yt = tensors.pop(0) if K.is_symbolic(y_true) else y_true
                yp = tensors.pop(0) if K.is_symbolic(y_pred) else y_pred
                return fn(yt, yp, *args, **kwargs)
            return Lambda(run)(pair if len(pair) > 1 else pair[0])
        return fn(y_true, y_pred, *args, **kwargs)
    return wrapper


@_reg("mean_squared_error", "mse", "MSE")
def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    return K.mean(K.square(K.subtract(y_pred, y_true)), axis=-1)


@_reg("mean_absolute_error", "mae", "MAE")
def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    return K.mean(K.abs(K.subtract(y_pred, y_true)), axis=-1)


@_reg("mean_absolute_percentage_error", "mape", "MAPE")
def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    denom = K.clip(K.abs(y_true), K.epsilon(), None)
    diff = K.abs(K.divide(K.subtract(y_true, y_pred), denom))
    return K.multiply(K.mean(diff, axis=-1), _c(y_pred, 100.0))


@_reg("mean_squared_logarithmic_error", "msle", "MSLE")
def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    one = _c(y_pred, 1.0)
    first = K.log(K.add(K.clip(y_pred, K.epsilon(), None), one))
    second = K.log(K.add(K.clip(y_true, K.epsilon(), None), one))
    return K.mean(K.square(K.subtract(first, second)), axis=-1)


def _maybe_convert_labels(y_true):
    """Keras 2's hinge losses turn {0, 1} labels into {-1, 1}."""
    v = y_true.value
    if np.all((v == 0) | (v == 1)):
        return K.Tensor(2.0 * v - 1.0) if not y_true.tracked else \
            K.subtract(K.multiply(y_true, _c(y_true, 2.0)), _c(y_true, 1.0))
    return y_true


@_reg("squared_hinge")
def squared_hinge(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    y_true = _maybe_convert_labels(y_true)
    margin = K.maximum(K.subtract(_c(y_pred, 1.0), K.multiply(y_true, y_pred)), _c(y_pred, 0.0))
    return K.mean(K.square(margin), axis=-1)


@_reg("hinge")
def hinge(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    y_true = _maybe_convert_labels(y_true)
    margin = K.maximum(K.subtract(_c(y_pred, 1.0), K.multiply(y_true, y_pred)), _c(y_pred, 0.0))
    return K.mean(margin, axis=-1)


@_reg("categorical_hinge")
def categorical_hinge(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    pos = K.sum(K.multiply(y_true, y_pred), axis=-1)
    neg = K.max(K.multiply(K.subtract(_c(y_pred, 1.0), y_true), y_pred), axis=-1)
    return K.maximum(K.add(K.subtract(neg, pos), _c(y_pred, 1.0)), _c(y_pred, 0.0))


@_reg("log_cosh", "logcosh")
def log_cosh(y_true, y_pred):
    """mean(log(cosh(y_pred - y_true))), computed as x + softplus(-2x) - log 2."""
    y_true, y_pred = _prepare(y_true, y_pred)
    x = K.subtract(y_pred, y_true)
    val = K.subtract(K.add(x, K.softplus(K.multiply(x, _c(x, -2.0)))), _c(x, np.log(2.0)))
    return K.mean(val, axis=-1)


logcosh = log_cosh


@_reg("huber", "huber_loss")
def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _prepare(y_true, y_pred)
    err = K.subtract(y_pred, y_true)
    abs_err = K.abs(err)
    quadratic = K.multiply(K.square(err), _c(err, 0.5))
    linear = K.subtract(K.multiply(abs_err, _c(err, delta)), _c(err, 0.5 * delta * delta))
    return K.mean(K.where(abs_err.value <= delta, quadratic, linear), axis=-1)


@_reg("categorical_crossentropy")
def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _prepare(y_true, y_pred)
    if label_smoothing:
        n = y_pred.shape[axis]
        y_true = K.add(K.multiply(y_true, _c(y_pred, 1.0 - label_smoothing)),
                       _c(y_pred, label_smoothing / n))
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"categorical_crossentropy: y_true of shape {y_true.shape} must match "
                         f"y_pred of shape {y_pred.shape} (one-hot targets; use "
                         "sparse_categorical_crossentropy for integer class ids)")
    return K.categorical_crossentropy(y_true, y_pred, from_logits=from_logits, axis=axis)


@_reg("sparse_categorical_crossentropy")
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    y_pred = _pred(y_pred)
    labels = np.asarray(getattr(y_true, "value", y_true))
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if labels.shape != y_pred.shape[:-1]:
        raise ShapeError(f"sparse_categorical_crossentropy: y_true of shape "
                         f"{np.shape(y_true)} does not fit y_pred of shape {y_pred.shape} "
                         "(expected integer class ids of shape y_pred.shape[:-1])")
    ids = labels.astype(np.int64)
    n = y_pred.shape[-1]
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ConfigError(f"sparse_categorical_crossentropy: class ids must be in [0, {n}), "
                          f"got values from {ids.min()} to {ids.max()}")
    if axis not in (-1, y_pred.ndim - 1):
        raise ConfigError("sparse_categorical_crossentropy supports only axis=-1")
    return K.sparse_categorical_crossentropy(ids, y_pred, from_logits=from_logits)


@_reg("binary_crossentropy")
def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _prepare(y_true, y_pred)
    if label_smoothing:
        y_true = K.add(K.multiply(y_true, _c(y_pred, 1.0 - label_smoothing)),
                       _c(y_pred, 0.5 * label_smoothing))
    if y_true.shape != y_pred.shape:
        y_true = K.Tensor(np.broadcast_to(y_true.value, y_pred.shape)) if not y_true.tracked \
            else K.add(y_true, K.zeros_like(y_pred))
    return K.mean(K.binary_crossentropy(y_true, y_pred, from_logits=from_logits), axis=axis)


@_reg("kl_divergence", "kullback_leibler_divergence", "kld", "KLD")
def kl_divergence(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    eps = K.epsilon()
    y_true = K.clip(y_true, eps, 1.0)
    y_pred = K.clip(y_pred, eps, 1.0)
    return K.sum(K.multiply(y_true, K.log(K.divide(y_true, y_pred))), axis=-1)


kullback_leibler_divergence = kld = KLD = kl_divergence


@_reg("poisson")
def poisson(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    return K.mean(K.subtract(y_pred, K.multiply(y_true, K.log(K.add(y_pred, _c(y_pred,
                                                                             K.epsilon()))))),
                  axis=-1)


@_reg("cosine_similarity")
def cosine_similarity(y_true, y_pred, axis=-1):
    """Keras 2 loss: -sum(l2_normalize(y_true) * l2_normalize(y_pred)) (-1 is best)."""
    y_true, y_pred = _prepare(y_true, y_pred)
    return K.negative(K.sum(K.multiply(K.l2_normalize(y_true, axis=axis),
                                       K.l2_normalize(y_pred, axis=axis)), axis=axis))


def cosine_proximity(y_true, y_pred, axis=-1):
    """Keras 1 name of `cosine_similarity` (DeprecationWarning)."""
    _ser.warn_deprecated_name("loss", "cosine_proximity", "cosine_similarity", stacklevel=3)
    return cosine_similarity(y_true, y_pred, axis=axis)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
huber_loss = huber


# ---------------------------------------------------------------------------------------
# Loss classes

_REDUCTIONS = ("auto", "sum_over_batch_size", "sum", "none")


def reduce_per_sample(values, sample_weight=None, reduction="sum_over_batch_size"):
    """Keras reduction of per-sample losses: weight (broadcast over trailing axes), then
    'none' (as is), 'sum', or 'sum_over_batch_size' (sum / number of elements)."""
    t = values if isinstance(values, K.Tensor) else K.Tensor(np.asarray(values))
    if sample_weight is not None:
        sw = np.asarray(getattr(sample_weight, "value", sample_weight), dtype=t.dtype)
        if sw.ndim > t.ndim:
            sw = sw.reshape(sw.shape[:t.ndim]) if all(d == 1 for d in sw.shape[t.ndim:]) else sw
        while sw.ndim < t.ndim:
            sw = sw[..., None]
        try:
            np.broadcast_shapes(sw.shape, t.shape)
        except ValueError:
            raise ShapeError(f"sample_weight of shape {sw.shape} does not fit losses of shape "
                             f"{t.shape}") from None
        t = K.multiply(t, sw)
    if reduction == "none":
        return t
    total = K.sum(t)
    if reduction == "sum":
        return total
    return K.divide(total, np.asarray(max(int(np.prod(t.shape)), 1), dtype=t.dtype))


class Loss:
    """Base class: subclasses implement `call(y_true, y_pred)` -> per-sample losses."""

    def __init__(self, reduction="auto", name=None):
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"Loss reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.name = name or _snake(type(self).__name__)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return _symbolic_aware(self._reduced)(y_true, y_pred, sample_weight)

    def _reduced(self, y_true, y_pred, sample_weight=None):
        return reduce_per_sample(self.call(y_true, y_pred), sample_weight,
                                 "sum_over_batch_size" if self.reduction == "auto"
                                 else self.reduction)

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def get_config(self):
        return {"reduction": self.reduction, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class LossFunctionWrapper(Loss):
    """A Loss around a loss function and its keyword arguments."""

    def __init__(self, fn, reduction="auto", name=None, **kwargs):
        super().__init__(reduction=reduction, name=name or getattr(fn, "__name__", None))
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}


def _snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _loss_class(cls_name, fn, default_name, params=()):
    """A LossFunctionWrapper subclass with Keras's signature `(*params, reduction, name)`."""
    defaults = dict(params)

    def __init__(self, *args, reduction="auto", name=default_name, **kwargs):
        names = list(defaults)
        if len(args) > len(names):
            raise ConfigError(f"{cls_name} takes at most {len(names)} positional argument(s)")
        values = dict(defaults)
        values.update(zip(names, args))
        _ser.check_kwargs(kwargs, names, cls_name)
        values.update(kwargs)
        LossFunctionWrapper.__init__(self, fn, reduction=reduction, name=name, **values)

    return type(cls_name, (LossFunctionWrapper,), {"__init__": __init__,
                                                   "__doc__": f"Loss class for `{fn.__name__}`."})


MeanSquaredError = _loss_class("MeanSquaredError", mean_squared_error, "mean_squared_error")
MeanAbsoluteError = _loss_class("MeanAbsoluteError", mean_absolute_error,
                                "mean_absolute_error")
MeanAbsolutePercentageError = _loss_class("MeanAbsolutePercentageError",
                                          mean_absolute_percentage_error,
                                          "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _loss_class("MeanSquaredLogarithmicError",
                                          mean_squared_logarithmic_error,
                                          "mean_squared_logarithmic_error")
Hinge = _loss_class("Hinge", hinge, "hinge")
SquaredHinge = _loss_class("SquaredHinge", squared_hinge, "squared_hinge")
CategoricalHinge = _loss_class("CategoricalHinge", categorical_hinge, "categorical_hinge")
LogCosh = _loss_class("LogCosh", log_cosh, "log_cosh")
Huber = _loss_class("Huber", huber, "huber_loss", [("delta", 1.0)])
CategoricalCrossentropy = _loss_class(
    "CategoricalCrossentropy", categorical_crossentropy, "categorical_crossentropy",
    [("from_logits", False), ("label_smoothing", 0.0), ("axis", -1)])
SparseCategoricalCrossentropy = _loss_class(
    "SparseCategoricalCrossentropy", sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy", [("from_logits", False)])
BinaryCrossentropy = _loss_class(
    "BinaryCrossentropy", binary_crossentropy, "binary_crossentropy",
    [("from_logits", False), ("label_smoothing", 0.0), ("axis", -1)])
KLDivergence = _loss_class("KLDivergence", kl_divergence, "kl_divergence")
Poisson = _loss_class("Poisson", poisson, "poisson")
CosineSimilarity = _loss_class("CosineSimilarity", cosine_similarity, "cosine_similarity",
                               [("axis", -1)])

_CLASSES = [MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
            MeanSquaredLogarithmicError, Hinge, SquaredHinge, CategoricalHinge, LogCosh, Huber,
            CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy,
            KLDivergence, Poisson, CosineSimilarity]
for _cls in _CLASSES:
    LOSSES.register(_cls.__name__, _cls)


def get(identifier):
    """A loss from a name (function names give the function, class names an instance), a
    config dict, a Loss instance or a callable."""
    return _ser.deserialize(identifier, LOSSES, "loss", base_class=Loss,
                            deprecated=DEPRECATED_NAMES)


def serialize(loss):
    """A function -> its Keras name ('mean_squared_error'); a Loss -> its config dict."""
    return _ser.serialize(loss, LOSSES)


def deserialize(config, custom_objects=None):
    return _ser.deserialize(config, LOSSES, "loss", base_class=Loss,
                            deprecated=DEPRECATED_NAMES, custom_objects=custom_objects)

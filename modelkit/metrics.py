"""Keras-style stateful metrics, computed on numpy values (no tape; cheap).

A `Metric` has `update_state(y_true, y_pred, sample_weight=None)`, `result() -> float`,
`reset_state()` (alias `reset_states`), `name`, `get_config()`; calling it updates and
returns the result. `result_names()` lists the names its results appear under in logs.

Metric *functions* (`binary_accuracy`, `categorical_accuracy`, `sparse_categorical_accuracy`,
`top_k_categorical_accuracy`, ... and every loss function: 'mse', 'mae', ...) return
per-sample values; `get(name_or_callable)` wraps them in `MeanMetricWrapper`, named as
written (``metrics=['mse']`` logs ``mse``; a callable logs its ``__name__``).

Dict-valued metrics: a callable may return ``{"name": per-sample values, ...}``; it is
averaged per key and logged under each key (`DictMetricWrapper`; a `MeanMetricWrapper`
switches to this automatically the first time its function returns a dict).
`result()` then returns a dict of floats.

`resolve_accuracy('accuracy' | 'acc', loss_name, output_shape)` implements Keras's rule
for the generic accuracy metric.
"""

import numpy as np

from . import backend as K
from . import losses as _losses
from .errors import ConfigError, ShapeError
from .registry import Registry
from .utils import serialization as _ser

METRICS = Registry("metric")


def _np(x):
    return np.asarray(getattr(x, "value", x))


def _weights_for(values, sample_weight):
    """sample_weight broadcast to values' shape (trailing axes added), or None."""
    if sample_weight is None:
        return None
    sw = _np(sample_weight).astype(np.float64, copy=False)
    if sw.ndim > values.ndim and all(d == 1 for d in sw.shape[values.ndim:]):
        sw = sw.reshape(sw.shape[:values.ndim])
    while sw.ndim < values.ndim:
        sw = sw[..., None]
    try:
        return np.broadcast_to(sw, values.shape)
    except ValueError:
        raise ShapeError(f"sample_weight of shape {np.shape(sample_weight)} does not fit metric "
                         f"values of shape {values.shape}") from None


# ---------------------------------------------------------------------------------------
# metric functions (numpy in, numpy per-sample values out)

def _labels_like(y_true, y_pred):
    y_true, y_pred = _np(y_true), _np(y_pred)
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    elif y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    return y_true, y_pred


def accuracy(y_true, y_pred):
    """Elementwise equality (Keras's `Accuracy` metric)."""
    y_true, y_pred = _labels_like(y_true, y_pred)
    return (y_true == y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = _labels_like(y_true, y_pred)
    return np.mean(y_true == (y_pred > threshold), axis=-1, dtype=np.float32)


def categorical_accuracy(y_true, y_pred):
    y_true, y_pred = _np(y_true), _np(y_pred)
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def _sparse_labels(y_true, y_pred):
    y_true = _np(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return y_true.astype(np.int64, copy=False)


def sparse_categorical_accuracy(y_true, y_pred):
    y_pred = _np(y_pred)
    return (_sparse_labels(y_true, y_pred) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def _in_top_k(y_pred, labels, k):
    """tf.math.in_top_k: the label's score is among the k largest (ties count as in)."""
    target = np.take_along_axis(y_pred, labels[..., None], axis=-1)
    return (np.sum(y_pred > target, axis=-1) < k).astype(np.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_true, y_pred = _np(y_true), _np(y_pred)
    return _in_top_k(y_pred, np.argmax(y_true, axis=-1), k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_pred = _np(y_pred)
    return _in_top_k(y_pred, _sparse_labels(y_true, y_pred), k)


def _auto_categorical_accuracy(y_true, y_pred):
    """tf.keras's fallback inside the generic 'accuracy': integer-label targets (rank lower
    than the predictions, or a last dim of 1 against several classes) are sparse."""
    yt, yp = _np(y_true), _np(y_pred)
    if yt.ndim < yp.ndim or (yt.shape[-1] == 1 and yp.shape[-1] > 1):
        return sparse_categorical_accuracy(yt, yp)
    return categorical_accuracy(yt, yp)


acc = accuracy


# ---------------------------------------------------------------------------------------
# Metric classes

class Metric:
    """Base class of stateful metrics."""

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.dtype = dtype or "float32"
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        pass

    def reset_states(self):       # Keras 2 spelling
        self.reset_state()

    def result_names(self):
        return [self.name]

    def __call__(self, y_true, y_pred, sample_weight=None):
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper() or
                                   (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class Mean(Metric):
    """Weighted mean of the values given to `update_state(values, sample_weight=None)`."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        values = _np(values).astype(np.float64, copy=False)
        sw = _weights_for(values, sample_weight)
        if sw is None:
            self.total += float(values.sum())
            self.count += float(values.size)
        else:
            self.total += float(np.sum(values * sw))
            self.count += float(sw.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class Sum(Metric):
    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        values = _np(values).astype(np.float64, copy=False)
        sw = _weights_for(values, sample_weight)
        self.total += float(values.sum() if sw is None else np.sum(values * sw))

    def result(self):
        return self.total


class MeanMetricWrapper(Mean):
    """The running (weighted) mean of a per-sample metric function ``fn(y_true, y_pred,
    **kwargs)``. If `fn` returns a dict of named values, each key is averaged separately
    and `result()` returns a dict (see `DictMetricWrapper`)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self.fn = fn
        self._fn_kwargs = kwargs
        self._dict_means = None
        super().__init__(name=name or getattr(fn, "__name__", None) or "metric", dtype=dtype)

    def reset_state(self):
        super().reset_state()
        if getattr(self, "_dict_means", None) is not None:
            for m in self._dict_means.values():
                m.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.fn(_np(y_true), _np(y_pred), **self._fn_kwargs)
        if isinstance(values, dict):
            if self._dict_means is None:
                self._dict_means = {}
            for key, v in values.items():
                if key not in self._dict_means:
                    self._dict_means[key] = Mean(name=str(key))
                self._dict_means[key].update_state(v, sample_weight)
            return
        super().update_state(values, sample_weight)

    def result(self):
        if self._dict_means is not None:
            return {k: m.result() for k, m in self._dict_means.items()}
        return super().result()

    def result_names(self):
        if self._dict_means is not None:
            return list(self._dict_means)
        return [self.name]

    def get_config(self):
        return {**super().get_config(), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        fn = config.pop("fn", None)
        if fn is None:
            raise ConfigError(f"{cls.__name__}.from_config needs the metric function")
        return cls(get_function(fn), **config)


class DictMetricWrapper(MeanMetricWrapper):
    """A metric function returning ``{name: per-sample values}``: each entry is averaged
    (sample-weighted) on its own and logged under its key (prefixed with the output name
    for multi-output models). `names` declares the keys up front so `result_names()` is
    known before the first batch."""

    def __init__(self, fn, name=None, dtype=None, names=None, **kwargs):
        super().__init__(fn, name=name, dtype=dtype, **kwargs)
        if names:
            self._dict_means = {str(n): Mean(name=str(n)) for n in names}

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.fn(_np(y_true), _np(y_pred), **self._fn_kwargs)
        if not isinstance(values, dict):
            raise ConfigError(f"Metric {self.name!r}: DictMetricWrapper expects its function "
                              f"to return a dict, got {type(values).__name__}")
        if self._dict_means is None:
            self._dict_means = {}
        for key, v in values.items():
            if key not in self._dict_means:
                self._dict_means[key] = Mean(name=str(key))
            self._dict_means[key].update_state(v, sample_weight)


def _wrapper_class(cls_name, fn, default_name, params=()):
    defaults = dict(params)

    def __init__(self, *args, name=default_name, dtype=None, **kwargs):
        names = list(defaults)
        values = dict(defaults)
        values.update(zip(names, args))
        _ser.check_kwargs(kwargs, names, cls_name)
        values.update(kwargs)
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **values)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    return type(cls_name, (MeanMetricWrapper,), {"__init__": __init__, "from_config":
                                                 from_config, "__doc__":
                                                 f"Running mean of `{fn.__name__}`."})


Accuracy = _wrapper_class("Accuracy", accuracy, "accuracy")
BinaryAccuracy = _wrapper_class("BinaryAccuracy", binary_accuracy, "binary_accuracy",
                                [("threshold", 0.5)])
CategoricalAccuracy = _wrapper_class("CategoricalAccuracy", categorical_accuracy,
                                     "categorical_accuracy")
SparseCategoricalAccuracy = _wrapper_class("SparseCategoricalAccuracy",
                                           sparse_categorical_accuracy,
                                           "sparse_categorical_accuracy")
TopKCategoricalAccuracy = _wrapper_class("TopKCategoricalAccuracy", top_k_categorical_accuracy,
                                         "top_k_categorical_accuracy", [("k", 5)])
SparseTopKCategoricalAccuracy = _wrapper_class("SparseTopKCategoricalAccuracy",
                                               sparse_top_k_categorical_accuracy,
                                               "sparse_top_k_categorical_accuracy", [("k", 5)])


def _np_loss(fn):
    """A loss function evaluated on numpy values, returning numpy per-sample values; on
    tensors (a custom loss written with `metrics.binary_crossentropy`, as Keras 2's VAE
    does) it is the differentiable loss itself."""
    def metric(y_true, y_pred, **kwargs):
        if any(isinstance(t, K.Tensor) or K.is_symbolic(t) for t in (y_true, y_pred)):
            return fn(y_true, y_pred, **kwargs)
        return _np(fn(y_true, np.asarray(y_pred), **kwargs))
    metric.__name__ = fn.__name__
    return metric


def _cosine_similarity_metric(y_true, y_pred, axis=-1):
    """tf.keras metric: +cos (1 is best), unlike the loss."""
    return -_np(_losses.cosine_similarity(y_true, y_pred, axis=axis))


def _rmse_sq(y_true, y_pred):
    return _np(_losses.mean_squared_error(y_true, y_pred))


class RootMeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(_rmse_sq, name=name, dtype=dtype)

    def result(self):
        return float(np.sqrt(super().result()))

    @classmethod
    def from_config(cls, config):
        return cls(**config)


MeanSquaredError = _wrapper_class("MeanSquaredError", _np_loss(_losses.mean_squared_error),
                                  "mean_squared_error")
MeanAbsoluteError = _wrapper_class("MeanAbsoluteError", _np_loss(_losses.mean_absolute_error),
                                   "mean_absolute_error")
MeanAbsolutePercentageError = _wrapper_class(
    "MeanAbsolutePercentageError", _np_loss(_losses.mean_absolute_percentage_error),
    "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _wrapper_class(
    "MeanSquaredLogarithmicError", _np_loss(_losses.mean_squared_logarithmic_error),
    "mean_squared_logarithmic_error")
Hinge = _wrapper_class("Hinge", _np_loss(_losses.hinge), "hinge")
SquaredHinge = _wrapper_class("SquaredHinge", _np_loss(_losses.squared_hinge), "squared_hinge")
CategoricalHinge = _wrapper_class("CategoricalHinge", _np_loss(_losses.categorical_hinge),
                                  "categorical_hinge")
LogCoshError = _wrapper_class("LogCoshError", _np_loss(_losses.log_cosh), "logcosh")
KLDivergence = _wrapper_class("KLDivergence", _np_loss(_losses.kl_divergence),
                              "kullback_leibler_divergence")
Poisson = _wrapper_class("Poisson", _np_loss(_losses.poisson), "poisson")
CosineSimilarity = _wrapper_class("CosineSimilarity", _cosine_similarity_metric,
                                  "cosine_similarity", [("axis", -1)])
BinaryCrossentropy = _wrapper_class(
    "BinaryCrossentropy", _np_loss(_losses.binary_crossentropy), "binary_crossentropy",
    [("from_logits", False), ("label_smoothing", 0.0)])
CategoricalCrossentropy = _wrapper_class(
    "CategoricalCrossentropy", _np_loss(_losses.categorical_crossentropy),
    "categorical_crossentropy", [("from_logits", False), ("label_smoothing", 0.0)])
SparseCategoricalCrossentropy = _wrapper_class(
    "SparseCategoricalCrossentropy", _np_loss(_losses.sparse_categorical_crossentropy),
    "sparse_categorical_crossentropy", [("from_logits", False)])

# Loss functions usable as metrics (numpy in, numpy out).
mean_squared_error = mse = MSE = _np_loss(_losses.mean_squared_error)
mean_absolute_error = mae = MAE = _np_loss(_losses.mean_absolute_error)
mean_absolute_percentage_error = mape = MAPE = _np_loss(_losses.mean_absolute_percentage_error)
mean_squared_logarithmic_error = msle = MSLE = _np_loss(_losses.mean_squared_logarithmic_error)
hinge = _np_loss(_losses.hinge)
squared_hinge = _np_loss(_losses.squared_hinge)
categorical_hinge = _np_loss(_losses.categorical_hinge)
log_cosh = logcosh = _np_loss(_losses.log_cosh)
huber = _np_loss(_losses.huber)
binary_crossentropy = _np_loss(_losses.binary_crossentropy)
categorical_crossentropy = _np_loss(_losses.categorical_crossentropy)
sparse_categorical_crossentropy = _np_loss(_losses.sparse_categorical_crossentropy)
kl_divergence = kullback_leibler_divergence = kld = KLD = _np_loss(_losses.kl_divergence)
poisson = _np_loss(_losses.poisson)
cosine_similarity = _cosine_similarity_metric


def cosine_proximity(y_true, y_pred, axis=-1):
    """Keras 1/2.2 metric name: the cosine_similarity *loss* value (-cos)."""
    return _np(_losses.cosine_similarity(y_true, y_pred, axis=axis))


_FUNCTIONS = {
    ("accuracy", "acc"): accuracy,
    "binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    ("mean_squared_error", "mse", "MSE"): mean_squared_error,
    ("mean_absolute_error", "mae", "MAE"): mean_absolute_error,
    ("mean_absolute_percentage_error", "mape", "MAPE"): mean_absolute_percentage_error,
    ("mean_squared_logarithmic_error", "msle", "MSLE"): mean_squared_logarithmic_error,
    "hinge": hinge, "squared_hinge": squared_hinge, "categorical_hinge": categorical_hinge,
    ("log_cosh", "logcosh"): log_cosh, "huber": huber,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    ("kl_divergence", "kullback_leibler_divergence", "kld", "KLD"): kl_divergence,
    "poisson": poisson, "cosine_similarity": cosine_similarity,
    "cosine_proximity": cosine_proximity,
}
_ser.register_all(METRICS, _FUNCTIONS)
_CLASSES = [Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
            TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, RootMeanSquaredError,
            MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
            MeanSquaredLogarithmicError, Hinge, SquaredHinge, CategoricalHinge, LogCoshError,
            KLDivergence, Poisson, CosineSimilarity, BinaryCrossentropy,
            CategoricalCrossentropy, SparseCategoricalCrossentropy, MeanMetricWrapper,
            DictMetricWrapper]
for _cls in _CLASSES:
    METRICS.register(_cls.__name__, _cls)


# ---------------------------------------------------------------------------------------
# resolving identifiers

def get_function(identifier):
    """The per-sample metric function for a name or callable (no wrapping)."""
    if callable(identifier) and not isinstance(identifier, str):
        return identifier
    obj = _ser.deserialize(identifier, METRICS, "metric", base_class=Metric, instantiate=False)
    if isinstance(obj, type):
        raise ConfigError(f"{identifier!r} names a metric class, not a function")
    return obj


def get(identifier):
    """A stateful Metric for a name, config dict, Metric instance/class or callable.

    Functions (named or given) are wrapped in `MeanMetricWrapper` named as written (a
    string) or after the function's ``__name__``; class names give an instance."""
    if identifier is None:
        return None
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    obj = _ser.deserialize(identifier, METRICS, "metric", base_class=Metric)
    if isinstance(obj, Metric):
        return obj
    if callable(obj):
        name = identifier if isinstance(identifier, str) else getattr(obj, "__name__", None)
        if isinstance(obj, _losses.Loss):
            return MeanMetricWrapper(_loss_instance_metric(obj), name=obj.name)
        return MeanMetricWrapper(obj, name=name)
    raise ConfigError(f"Could not interpret metric identifier {identifier!r}")


def _loss_instance_metric(loss):
    def metric(y_true, y_pred):
        return _np(loss.call(y_true, np.asarray(y_pred)))
    metric.__name__ = loss.name
    return metric


def serialize(metric):
    if isinstance(metric, MeanMetricWrapper) and type(metric) in (MeanMetricWrapper,
                                                                  DictMetricWrapper):
        return metric.name
    return _ser.serialize(metric, METRICS)


def deserialize(config, custom_objects=None):
    return _ser.deserialize(config, METRICS, "metric", base_class=Metric,
                            custom_objects=custom_objects)


_BINARY_LOSSES = {"binary_crossentropy", "BinaryCrossentropy"}
_SPARSE_LOSSES = {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}


def _loss_name(loss):
    if loss is None or isinstance(loss, str):
        return loss
    inner = getattr(loss, "fn", None)
    if inner is not None:
        return getattr(inner, "__name__", None)
    return getattr(loss, "__name__", type(loss).__name__)


def resolve_accuracy(name, loss_fn_name, output_shape):
    """Keras's rule for metrics=['accuracy'] / ['acc']: binary accuracy when the loss is
    binary cross-entropy or the output's last dim is 1; sparse categorical when the loss is
    sparse categorical cross-entropy; else categorical (falling back to sparse per batch
    when the targets are integer labels, as tf.keras does). Named `name` as written."""
    if name not in ("accuracy", "acc"):
        raise ConfigError(f"resolve_accuracy handles 'accuracy' or 'acc', got {name!r}")
    loss = _loss_name(loss_fn_name)
    last = output_shape[-1] if output_shape else None
    if loss in _BINARY_LOSSES or last == 1:
        return MeanMetricWrapper(binary_accuracy, name=name)
    if loss in _SPARSE_LOSSES:
        return MeanMetricWrapper(sparse_categorical_accuracy, name=name)
    return MeanMetricWrapper(_auto_categorical_accuracy, name=name)

"""Advanced activation layers (Keras 2): LeakyReLU, PReLU, ELU, ThresholdedReLU, ReLU,
Softmax, built on the backend's activation ops."""

import numpy as np

from .. import constraints, initializers, regularizers
from ..backend import functions as F
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from .serialization import register_layer

__all__ = ["LeakyReLU", "PReLU", "ELU", "ThresholdedReLU", "ReLU", "Softmax"]


def _number(layer, what, value, minimum=None, allow_none=False):
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: {what} must be a number, "
                          f"got {value!r}") from None
    if minimum is not None and v < minimum:
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: {what} must be >= "
                          f"{minimum}, got {value}")
    return v


def _float(layer, x):
    return x if np.issubdtype(x.dtype, np.floating) else F.cast(x, layer.dtype)


class _Elementwise(Layer):
    preserves_shape = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True


@register_layer
class LeakyReLU(_Elementwise):
    """`x` for `x >= 0`, `alpha * x` otherwise (Keras 3's `negative_slope` is accepted)."""

    def __init__(self, alpha=0.3, negative_slope=None, **kwargs):
        super().__init__(**kwargs)
        if negative_slope is not None:
            alpha = negative_slope
        self.alpha = _number(self, "alpha", alpha)

    def call(self, inputs):
        return F.relu(_float(self, inputs), alpha=self.alpha)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


@register_layer
class PReLU(_Elementwise):
    """Parametric ReLU: `relu(x) - alpha * relu(-x)` with a learned `alpha` of shape
    `input_shape[1:]`, size 1 along `shared_axes` (1-based, as in Keras)."""

    _keras1_renames = {"init": "alpha_initializer"}

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= 1
                       for a in axes):
                raise ConfigError(f"PReLU {self.name!r}: shared_axes must be positive axis "
                                  f"indices (1 = the first non-batch axis), got {shared_axes!r}")
            self.shared_axes = [int(a) for a in axes]

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        param_shape = list(input_shape[1:])
        for a in self.shared_axes or []:
            if a >= len(input_shape):
                raise ShapeError(f"PReLU {self.name!r}: shared axis {a} is out of range for "
                                 f"input shape {input_shape}")
            param_shape[a - 1] = 1
        if any(d is None for d in param_shape):
            raise ShapeError(f"PReLU {self.name!r}: alpha would have shape {tuple(param_shape)}; "
                             "every non-shared input axis must have a known size (share the "
                             f"unknown ones with shared_axes); input shape {input_shape}")
        self._input_rank = len(input_shape)
        self.alpha = self.add_weight("alpha", param_shape, initializer=self.alpha_initializer,
                                     regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint)
        self.built = True

    def _check(self, shape):
        shape = tuple(shape)
        alpha = self.alpha.shape
        ok = len(shape) == self._input_rank and all(
            a == 1 or d is None or d == a for a, d in zip(alpha, shape[1:]))
        if not ok:
            raise ShapeError(f"PReLU {self.name!r} was built for inputs of shape "
                             f"(None,) + {tuple(alpha)} (1 = shared), got shape {shape}")

    def compute_output_shape(self, input_shape):
        if self.built:
            self._check(input_shape)
        return input_shape

    def call(self, inputs):
        self._check(inputs.shape)
        x = _float(self, inputs)
        return F.add(F.relu(x), F.multiply(self.alpha, F.minimum(x, np.zeros((), x.dtype))))

    def get_config(self):
        config = super().get_config()
        config.update({
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
            "alpha_constraint": constraints.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        })
        return config


@register_layer
class ELU(_Elementwise):
    """`x` for `x > 0`, `alpha * (exp(x) - 1)` otherwise."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(self, "alpha", alpha)

    def call(self, inputs):
        return F.elu(_float(self, inputs), alpha=self.alpha)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


@register_layer
class ThresholdedReLU(_Elementwise):
    """`x` for `x > theta`, 0 otherwise."""

    def __init__(self, theta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.theta = _number(self, "theta", theta, minimum=0.0)

    def call(self, inputs):
        return F.relu(_float(self, inputs), threshold=self.theta)

    def get_config(self):
        config = super().get_config()
        config["theta"] = self.theta
        return config


@register_layer
class ReLU(_Elementwise):
    """Keras 2 ReLU: `min(x, max_value)` for `x >= threshold`,
    `negative_slope * (x - threshold)` otherwise."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _number(self, "max_value", max_value, minimum=0.0, allow_none=True)
        self.negative_slope = _number(self, "negative_slope", negative_slope, minimum=0.0)
        self.threshold = _number(self, "threshold", threshold, minimum=0.0)

    def call(self, inputs):
        return F.relu(_float(self, inputs), alpha=self.negative_slope,
                      max_value=self.max_value, threshold=self.threshold)

    def get_config(self):
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope,
                       "threshold": self.threshold})
        return config


@register_layer
class Softmax(_Elementwise):
    """Softmax over `axis` (an int, or a list for a joint softmax over several axes).
    A mask that broadcasts against the input excludes the masked positions (Keras 2)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                               for a in axes):
            raise ConfigError(f"Softmax {self.name!r}: axis must be an int or a list of ints, "
                              f"got {axis!r}")
        self.axis = [int(a) for a in axes] if isinstance(axis, (list, tuple)) else int(axis)

    def _axes(self, rank):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if not -rank <= a < rank:
                raise ShapeError(f"Softmax {self.name!r}: axis {a} is out of range for an "
                                 f"input of rank {rank}")
        return [a % rank for a in axes]

    def compute_output_shape(self, input_shape):
        self._axes(len(input_shape))
        return input_shape

    def call(self, inputs, mask=None):
        x = _float(self, inputs)
        axes = self._axes(x.ndim)
        if mask is not None:
            m = np.asarray(mask.value if hasattr(mask, "value") else mask)
            try:
                np.broadcast_shapes(m.shape, x.shape)
            except ValueError:
                m = None
            if m is not None:
                x = F.add(x, ((1.0 - m.astype(x.dtype)) * np.asarray(-1e9, x.dtype)))
        if len(axes) == 1:
            return F.softmax(x, axis=axes[0])
        return F.exp(F.subtract(x, F.logsumexp(x, axis=tuple(axes), keepdims=True)))

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config

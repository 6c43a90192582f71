"""Keras 1 layers that Keras 2 dropped: Highway and MaxoutDense (deprecated; the warnings
say what to build instead). Weight shapes, order and names are Keras 1's."""

import warnings

import numpy as np

from .. import activations, initializers
from ..backend import functions as F
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from ._kernel_bias import KERNEL_BIAS_KEYS, add_weight_for, options_config, set_options
from .serialization import register_layer

__all__ = ["Highway", "MaxoutDense"]


def _warn(message):
    warnings.warn(message, DeprecationWarning, stacklevel=6)


# Keras 1's options: a kernel initializer, kernel/bias regularizers and constraints
_OPTION_KEYS = ("kernel_initializer",) + KERNEL_BIAS_KEYS[2:]


class _Keras1Dense(Layer):
    """Highway and MaxoutDense: a deprecation warning, Keras 1's weight options, a (batch, d)
    input whose d the weight `W` fixes (`_W_in_axis`), float inputs."""

    _deprecation = ""
    _W_in_axis = 0

    def __init__(self, kernel_initializer="glorot_uniform", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, use_bias=True, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        _warn(self._deprecation)
        set_options(self, kernel_initializer=kernel_initializer,
                    kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                    kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.use_bias = bool(use_bias)
        self.input_ndim = 2

    def _input_dim(self, input_shape):
        d = input_shape[-1]
        if d is None:
            raise ShapeError(f"{type(self).__name__} {self.name!r}: the input dimension must be "
                             f"known, got shape {tuple(input_shape)}")
        return d

    def _check_input_dim(self, input_shape):
        d = self.W.shape[self._W_in_axis] if self.built else None
        if d is not None and input_shape[-1] is not None and input_shape[-1] != d:
            raise ShapeError(f"{type(self).__name__} {self.name!r} expects inputs of shape "
                             f"(None, {d}), got {tuple(input_shape)}")

    def _float_input(self, inputs):
        self.compute_output_shape(tuple(inputs.shape))
        return inputs if np.issubdtype(inputs.dtype, np.floating) else F.cast(inputs, self.dtype)


@register_layer
class Highway(_Keras1Dense):
    """Keras 1 Highway: `y = t * activation(x W + b) + (1 - t) * x` with the transform gate
    `t = sigmoid(x W_carry + b_carry)`. Weights `W`, `W_carry` (d, d), then `b`, `b_carry`
    (d,), in Keras 1's order; `b_carry` starts at `transform_bias` (default -2).

    Keras 1 spellings `init`, `W_regularizer`, `b_regularizer`, `W_constraint`,
    `b_constraint`, `bias` are accepted (renamed with a DeprecationWarning). As in Keras 1
    the kernel regulariser/constraint apply to `W` and the bias ones to `b`.
    """

    _deprecation = (
        "Highway is deprecated (Keras 1, removed in Keras 2); build it from Keras 2 layers "
        "instead: t = Dense(d, activation='sigmoid', bias_initializer=Constant(-2))(x); "
        "h = Dense(d, activation=...)(x); y = add([multiply([t, h]), "
        "multiply([Lambda(lambda t: 1 - t)(t), x])])")

    def __init__(self, activation="linear", kernel_initializer="glorot_uniform",
                 transform_bias=-2, kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 use_bias=True, **kwargs):
        super().__init__(kernel_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, use_bias,
                         **kwargs)
        self.activation = activations.get(activation)
        try:
            self.transform_bias = float(transform_bias)
        except (TypeError, ValueError):
            raise ConfigError(f"Highway {self.name!r}: transform_bias must be a number, got "
                              f"{transform_bias!r}") from None

    def build(self, input_shape):
        d = self._input_dim(input_shape)
        self.W = add_weight_for(self, "kernel", (d, d), name="W")
        self.W_carry = self.add_weight("W_carry", (d, d), initializer=self.kernel_initializer)
        if self.use_bias:
            self.b = self.add_weight("b", (d,), initializer="zeros",
                                     regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint)
            self.b_carry = self.add_weight("b_carry", (d,),
                                           initializer=initializers.Constant(self.transform_bias))
        else:
            self.b = self.b_carry = None
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_input_dim(input_shape)
        return tuple(input_shape)

    def call(self, inputs):
        x = self._float_input(inputs)
        gate = F.dense(x, self.W_carry, self.b_carry if self.use_bias else None)
        t = F.sigmoid(gate)
        h = F.dense(x, self.W, self.b if self.use_bias else None)
        h = self.activation(h)
        return F.add(F.multiply(t, h), F.multiply(F.subtract(1.0, t), x))

    def get_config(self):
        config = super().get_config()
        config.update({
            "activation": activations.serialize(self.activation),
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "transform_bias": self.transform_bias,
            **options_config(self, _OPTION_KEYS[1:]), "use_bias": self.use_bias,
        })
        return config


@register_layer
class MaxoutDense(_Keras1Dense):
    """Keras 1 MaxoutDense: `y = max_k (x W[k] + b[k])` over `nb_feature` linear pieces.
    Weights `W` (nb_feature, input_dim, units) and `b` (nb_feature, units).

    `MaxoutDense(output_dim, nb_feature=4, ...)`: Keras 1's `output_dim` (renamed `units`),
    `init`, `W_regularizer`, ... are accepted with a DeprecationWarning.
    """

    _keras1_renames = {"output_dim": "units"}
    _deprecation = (
        "MaxoutDense is deprecated (Keras 1, removed in Keras 2); use Keras 2 layers "
        "instead: Dense(units * nb_feature) -> Reshape((nb_feature, units)) -> a max over "
        "axis 1 (e.g. Lambda(lambda z: K.max(z, axis=1)))")
    _W_in_axis = 1

    def __init__(self, units, nb_feature=4, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_bias=True, **kwargs):
        super().__init__(kernel_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, use_bias,
                         **kwargs)
        try:
            self.units = int(units)
            self.nb_feature = int(nb_feature)
        except (TypeError, ValueError):
            raise ConfigError(f"MaxoutDense {self.name!r}: units and nb_feature must be "
                              f"integers, got {units!r}, {nb_feature!r}") from None
        if self.units <= 0 or self.nb_feature <= 0:
            raise ConfigError(f"MaxoutDense {self.name!r}: units and nb_feature must be "
                              f"positive, got {units}, {nb_feature}")

    def build(self, input_shape):
        d = self._input_dim(input_shape)
        self.W = add_weight_for(self, "kernel", (self.nb_feature, d, self.units), name="W")
        self.b = self.add_weight("b", (self.nb_feature, self.units), initializer="zeros",
                                 regularizer=self.bias_regularizer,
                                 constraint=self.bias_constraint) if self.use_bias else None
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_input_dim(input_shape)
        return (input_shape[0], self.units)

    def call(self, inputs):
        x = self._float_input(inputs)
        nb, d, u = self.W.shape
        # one GEMM: (batch, d) @ (d, nb * u) -> (batch, nb, u)
        kernel = F.reshape(F.transpose(self.W, (1, 0, 2)), (d, nb * u))
        z = F.reshape(F.dense(x, kernel), (x.shape[0], nb, u))
        if self.use_bias:
            z = F.add(z, self.b)
        return F.max(z, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "nb_feature": self.nb_feature,
            **options_config(self, _OPTION_KEYS), "use_bias": self.use_bias,
        })
        return config

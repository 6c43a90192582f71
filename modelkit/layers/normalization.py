"""Normalization layers: BatchNormalization and LayerNormalization (Keras 2 semantics).

BatchNormalization, as tf.keras 2 does it:
* training: batch mean and (biased) variance over every axis but `axis`; the gradient flows
  through the batch statistics (one fused op, `modelkit.backend.norm_ops`). The moving
  statistics move as `moving = moving * momentum + batch * (1 - momentum)`. The variance fed
  to that average is the biased one, except where tf.keras 2 uses its fused kernel (4D/5D
  inputs normalised along the channel axis, 1 or last): that kernel feeds the Bessel-corrected
  variance `var * n / (n - 1)`, and so does modelkit (float32 layers, `fused` not False, as
  tf.keras decides). Keras 3 always feeds the biased variance. A mask (Keras 2.13+) weights
  the batch statistics on the non-fused path and is ignored on the fused one, as in tf.keras.
* inference, and always when `trainable=False` (TF2 behaviour): the moving statistics.
* weights `gamma`, `beta`, `moving_mean`, `moving_variance` in that order (gamma/beta only
  with `scale`/`center`); the moving ones are non-trainable.
"""

import warnings

import numpy as np

from ..backend import functions as F
from ..backend.norm_ops import batch_normalization
from ..backend.spatial_functions import normalize_moments
from ..backend.tensor import StopRecording, as_array
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError, UnsupportedError
from ._kernel_bias import add_weight_for, option_keys, options_config, set_options
from .serialization import register_layer

__all__ = ["BatchNormalization", "LayerNormalization"]



def _axis_list(axis, layer):
    if isinstance(axis, (list, tuple)):
        items = list(axis)
    else:
        items = [axis]
    if not items or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                            for a in items):
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: axis must be an int or a "
                          f"list of ints, got {axis!r}")
    return [int(a) for a in items]


def _resolve_axes(layer, axes, input_shape):
    rank = len(input_shape)
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ShapeError(f"{type(layer).__name__} {layer.name!r}: axis {a} is out of range "
                             f"for an input of rank {rank} (shape {tuple(input_shape)})")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: duplicate axes {axes}")
    if 0 in out:
        raise ShapeError(f"{type(layer).__name__} {layer.name!r} cannot normalise along the "
                         "batch axis 0")
    for a in out:
        if input_shape[a] is None:
            raise ShapeError(f"{type(layer).__name__} {layer.name!r}: axis {a} of the input "
                             f"must have a known size, got shape {tuple(input_shape)}")
    return sorted(out)


class _Normalization(Layer):
    """What BatchNormalization and LayerNormalization share: the axis argument, center/scale
    with their gamma/beta options and weights, and the input check against the built shape."""

    def _set_axis(self, axis):
        self._axes = _axis_list(axis, self)
        self.axis = list(self._axes) if isinstance(axis, (list, tuple)) else self._axes[0]

    def _set_gamma_beta(self, center, scale, **options):
        self.center = bool(center)
        self.scale = bool(scale)
        set_options(self, **options)

    def _add_gamma_beta(self, param_shape):
        self.gamma = add_weight_for(self, "gamma", param_shape) if self.scale else None
        self.beta = add_weight_for(self, "beta", param_shape) if self.center else None

    def _check(self, shape):
        if len(shape) != self._built_rank:
            raise ShapeError(f"{type(self).__name__} {self.name!r} was built for inputs of "
                             f"rank {self._built_rank}, got shape {tuple(shape)}")
        for a in self._norm_axes:
            if shape[a] is not None and shape[a] != self._bshape[a]:
                raise ShapeError(f"{type(self).__name__} {self.name!r} expects axis {a} of "
                                 f"size {self._bshape[a]}, got input shape {tuple(shape)}")

    def compute_output_shape(self, input_shape):
        if self.built:
            self._check(input_shape)
        return tuple(input_shape)


@register_layer
class BatchNormalization(_Normalization):
    """Normalise with batch statistics in training and moving statistics in inference.

    `BatchNormalization(axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, ...)`.
    Keras 1's `mode=0`, `beta_init`, `gamma_init` are accepted with a DeprecationWarning.
    """

    _keras1_renames = {"beta_init": "beta_initializer", "gamma_init": "gamma_initializer"}

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, fused=None, virtual_batch_size=None, adjustment=None,
                 synchronized=False, mode=None, **kwargs):
        super().__init__(**kwargs)
        where = f"BatchNormalization {self.name!r}"
        if mode is not None:
            warnings.warn(f"{where}: the Keras 1 argument 'mode' is deprecated; Keras 2 "
                          "batch normalization is Keras 1's mode=0", DeprecationWarning,
                          stacklevel=3)
            if mode != 0:
                raise UnsupportedError(f"{where}: Keras 1 mode={mode!r} (sample-wise or "
                                       "batch-statistics-at-test) is not supported; only mode=0",
                                       items=[self.name])
        if renorm or virtual_batch_size is not None or adjustment is not None:
            raise UnsupportedError(f"{where}: renorm, virtual_batch_size and adjustment are "
                                   "not supported", items=[self.name])
        self._set_axis(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if not 0.0 <= self.momentum <= 1.0:
            raise ConfigError(f"{where}: momentum must be in [0, 1], got {momentum}")
        if self.epsilon <= 0:
            raise ConfigError(f"{where}: epsilon must be positive, got {epsilon}")
        self._set_gamma_beta(center, scale, beta_initializer=beta_initializer,
                             gamma_initializer=gamma_initializer,
                             moving_mean_initializer=moving_mean_initializer,
                             moving_variance_initializer=moving_variance_initializer,
                             beta_regularizer=beta_regularizer,
                             gamma_regularizer=gamma_regularizer,
                             beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.fused = fused
        self.synchronized = bool(synchronized)
        self.supports_masking = True

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        axes = _resolve_axes(self, self._axes, input_shape)
        rank = len(input_shape)
        if len(axes) == 1:
            param_shape = (input_shape[axes[0]],)
        else:
            param_shape = tuple(input_shape[i] if i in axes else 1 for i in range(rank))
        self._built_rank = rank
        self._norm_axes = axes
        self._param_shape = param_shape
        self._bshape = tuple(input_shape[i] if i in axes else 1 for i in range(rank))
        self._reduce = tuple(i for i in range(rank) if i not in axes)
        self._fused_kernel = (self.fused is not False and rank in (4, 5) and len(axes) == 1
                              and axes[0] in (1, rank - 1)
                              and self.dtype in ("float16", "bfloat16", "float32"))
        self._add_gamma_beta(param_shape)
        self.moving_mean = self.add_weight("moving_mean", param_shape,
                                           initializer=self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", param_shape,
                                               initializer=self.moving_variance_initializer,
                                               trainable=False)
        self.built = True

    def _param(self, v):
        if v is None:
            return None
        return v if v.shape == self._bshape else F.reshape(v, self._bshape)

    def call(self, inputs, training=None, mask=None):
        self._check(inputs.shape)
        if not np.issubdtype(inputs.dtype, np.floating):
            inputs = F.cast(inputs, self.dtype)
        gamma, beta = self._param(self.gamma), self._param(self.beta)
        if not (training and self.trainable):
            mean = self._param(self.moving_mean)
            var = self._param(self.moving_variance)
            return batch_normalization(inputs, mean, var, beta, gamma, epsilon=self.epsilon)
        weights = None
        if mask is not None and not self._fused_kernel:
            weights = np.asarray(as_array(mask)).astype(inputs.dtype)
            while weights.ndim < inputs.ndim:
                weights = weights[..., None]
        y, mean, var = normalize_moments(inputs, self._reduce, gamma, beta, self.epsilon,
                                         weights)
        self._update_moving(np.asarray(mean.value), np.asarray(var.value), inputs.shape)
        return y

    def _update_moving(self, mean, var, shape):
        with StopRecording():
            mean = mean.reshape(self._param_shape)
            var = var.reshape(self._param_shape)
            dt = self.moving_mean.dtype
            decay = np.asarray(1.0 - self.momentum, dt)
            if self._fused_kernel:
                n = int(np.prod([shape[i] for i in self._reduce]))
                var = var * np.asarray(n / max(n - 1, 1), dt)
                for v, batch in ((self.moving_mean, mean), (self.moving_variance, var)):
                    v.assign((1 - decay) * v.value + decay * batch.astype(dt))
            else:
                for v, batch in ((self.moving_mean, mean), (self.moving_variance, var)):
                    v.assign(v.value - (v.value - batch.astype(dt)) * decay)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
            "center": self.center, "scale": self.scale,
            **options_config(self, option_keys("beta", "gamma")[:2]
                             + ("moving_mean_initializer", "moving_variance_initializer")
                             + option_keys("beta", "gamma")[2:]),
        })
        if self.fused is not None:
            config["fused"] = self.fused
        if self.synchronized:
            config["synchronized"] = True
        return config


@register_layer
class LayerNormalization(_Normalization):
    """Normalise each sample over `axis` (int or list): `gamma * (x - mean) /
    sqrt(var + epsilon) + beta`, gamma/beta of shape `[input_shape[a] for a in axis]`."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        self._set_axis(axis)
        self.epsilon = float(epsilon)
        if self.epsilon <= 0:
            raise ConfigError(f"{type(self).__name__} {self.name!r}: epsilon must be "
                              f"positive, got {epsilon}")
        self._set_gamma_beta(center, scale, beta_initializer=beta_initializer,
                             gamma_initializer=gamma_initializer,
                             beta_regularizer=beta_regularizer,
                             gamma_regularizer=gamma_regularizer,
                             beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        axes = _resolve_axes(self, self._axes, input_shape)
        rank = len(input_shape)
        param_shape = tuple(input_shape[a] for a in axes)
        self._built_rank = rank
        self._norm_axes = tuple(axes)
        self._bshape = tuple(input_shape[i] if i in axes else 1 for i in range(rank))
        self._add_gamma_beta(param_shape)
        self.built = True

    def call(self, inputs):
        self._check(inputs.shape)
        if not np.issubdtype(inputs.dtype, np.floating):
            inputs = F.cast(inputs, self.dtype)
        gamma = None if self.gamma is None else F.reshape(self.gamma, self._bshape)
        beta = None if self.beta is None else F.reshape(self.beta, self._bshape)
        y, _, _ = normalize_moments(inputs, self._norm_axes, gamma, beta, self.epsilon)
        return y

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
            "scale": self.scale,
            **options_config(self, option_keys("beta", "gamma")),
        })
        return config

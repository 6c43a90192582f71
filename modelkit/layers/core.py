"""Core layers: Dense, Activation, Dropout, Flatten, Reshape, Permute, RepeatVector, Lambda,
ActivityRegularization, Masking."""

import numpy as np

from .. import activations, initializers, regularizers
from ..backend import config as backend_config
from ..backend import functions as F
from ..backend.tensor import Tensor
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from ._kernel_bias import add_bias, add_weight_for, kernel_bias_config, set_kernel_bias
from ._old_paths import reexports
from .serialization import register_layer, serialize_function, deserialize_function


def layer_rng(seed):
    """A numpy Generator for a layer's randomness (seeded, or from the global one)."""
    return np.random.default_rng(seed) if seed is not None else initializers.global_rng()


@register_layer
class Dense(Layer):
    """`output = activation(dot(input, kernel) + bias)` over the last axis."""

    _keras1_renames = {"output_dim": "units"}

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = int(units)
        if self.units <= 0:
            raise ConfigError(f"Dense {self.name!r}: units must be positive, got {units}")
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        set_kernel_bias(self, kernel_initializer, bias_initializer, kernel_regularizer,
                        bias_regularizer, kernel_constraint, bias_constraint)
        self.input_ndim = (2, None)
        self.supports_masking = True

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ShapeError(f"Dense {self.name!r}: the last dimension of the input must be "
                             f"known, got shape {input_shape}")
        self.kernel = add_weight_for(self, "kernel", (in_dim, self.units))
        self.bias = add_bias(self, (self.units,))
        self.built = True

    def call(self, inputs):
        if inputs.shape[-1] != self.kernel.shape[0]:
            raise ShapeError(f"Dense {self.name!r} expects inputs with last dimension "
                             f"{self.kernel.shape[0]}, got shape {tuple(inputs.shape)}")
        if not np.issubdtype(inputs.dtype, np.floating):
            inputs = F.cast(inputs, self.dtype)
        y = F.dense(inputs, self.kernel, self.bias if self.use_bias else None)
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        if input_shape[-1] is not None and self.built and input_shape[-1] != self.kernel.shape[0]:
            raise ShapeError(f"Dense {self.name!r} expects inputs with last dimension "
                             f"{self.kernel.shape[0]}, got shape {input_shape}")
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units, "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias, **kernel_bias_config(self),
        })
        return config


@register_layer
class Activation(Layer):
    preserves_shape = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.supports_masking = True

    def call(self, inputs):
        return self.activation(inputs)

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config


@register_layer
class Dropout(Layer):
    """Inverted dropout in training; the identity in inference."""

    _keras1_renames = {"p": "rate"}
    preserves_shape = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= float(rate) < 1:
            raise ConfigError(f"Dropout {self.name!r}: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.noise_shape = noise_shape
        self.seed = seed
        self._rng = layer_rng(seed)
        self.supports_masking = True

    def _noise_shape(self, inputs):
        if self.noise_shape is None:
            return None
        return tuple(inputs.shape[i] if d is None else d for i, d in enumerate(self.noise_shape))

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        return F.dropout(inputs, self.rate, noise_shape=self._noise_shape(inputs), rng=self._rng)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed})
        return config


@register_layer
class Flatten(Layer):
    """Flatten all but the batch axis. With data_format='channels_first' the input is read
    as (C, spatial...) and flattened in (spatial..., C) order, as Keras 2 does."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = backend_config.normalize_data_format(data_format)
        self.input_ndim = (2, None)

    def call(self, inputs):
        if self.data_format == "channels_first" and inputs.ndim > 2:
            perm = (0,) + tuple(range(2, inputs.ndim)) + (1,)
            inputs = F.transpose(inputs, perm)
        return F.reshape(inputs, (inputs.shape[0], -1))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(np.prod(rest))
        return (input_shape[0], size)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


@register_layer
class Reshape(Layer):
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1:
            raise ConfigError(f"Reshape {self.name!r}: at most one -1 in target_shape "
                              f"{self.target_shape}")

    def _resolve(self, input_shape):
        known = [d for d in self.target_shape if d != -1]
        total = None if any(d is None for d in input_shape[1:]) else int(np.prod(input_shape[1:]))
        if -1 not in self.target_shape:
            if total is not None and total != int(np.prod(known)):
                raise ShapeError(f"Reshape {self.name!r}: cannot reshape input of shape "
                                 f"{tuple(input_shape)} ({total} values per sample) to "
                                 f"{self.target_shape}")
            return self.target_shape
        if total is None:
            return tuple(None if d == -1 else d for d in self.target_shape)
        prod = int(np.prod(known)) if known else 1
        if total % prod:
            raise ShapeError(f"Reshape {self.name!r}: cannot reshape input of shape "
                             f"{tuple(input_shape)} to {self.target_shape}")
        return tuple(total // prod if d == -1 else d for d in self.target_shape)

    def call(self, inputs):
        return F.reshape(inputs, (inputs.shape[0],) + self._resolve(inputs.shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(input_shape)

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


@register_layer
class Permute(Layer):
    """Permute the non-batch axes; `dims` is 1-indexed as in Keras."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ConfigError(f"Permute {self.name!r}: dims must be a permutation of "
                              f"1..{len(self.dims)}, got {self.dims}")

    def call(self, inputs):
        return F.transpose(inputs, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise ShapeError(f"Permute {self.name!r} with dims {self.dims} expects rank "
                             f"{len(self.dims) + 1} input, got shape {input_shape}")
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        config = super().get_config()
        config["dims"] = list(self.dims)
        return config


@register_layer
class RepeatVector(Layer):
    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = int(n)
        self.input_ndim = 2

    def call(self, inputs):
        return F.repeat(inputs, self.n)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        config = super().get_config()
        config["n"] = self.n
        return config


@register_layer
class Lambda(Layer):
    """Wrap an arbitrary function of backend ops as a layer.

    `Lambda(lambda x: x ** 2)`, `Lambda(fn, output_shape=..., arguments={...})`. In a
    file, a Python lambda is stored as marshalled bytecode; loading it needs
    `safe_mode=False` (see modelkit.layers.serialization).
    """

    differentiates_in_forward = True    # its function may call K.gradients

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        self.function = function
        self.arguments = dict(arguments or {})
        self._output_shape = output_shape
        self.mask = mask
        self.supports_masking = mask is not None

    def call(self, inputs, mask=None, training=None):
        kwargs = dict(self.arguments)
        import inspect
        try:
            params = inspect.signature(self.function).parameters
        except (TypeError, ValueError):
            params = {}
        if "mask" in params:
            kwargs["mask"] = mask
        if "training" in params:
            kwargs["training"] = training
        out = self.function(inputs, **kwargs)
        if isinstance(out, (list, tuple)) and len(out) == 1:
            out = out[0]                      # Keras 2 unpacks a one-element list
        if not isinstance(out, (Tensor, list, tuple)):
            out = Tensor(np.asarray(out))
        return out

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self._output_shape):
            shape = self._output_shape(input_shape)
            if isinstance(shape, list) and len(shape) == 1 and \
                    isinstance(shape[0], (list, tuple)):
                shape = shape[0]
            return tuple(shape) if not isinstance(shape, list) else shape
        batch = input_shape[0][0] if isinstance(input_shape, list) else input_shape[0]
        return (batch,) + tuple(self._output_shape)

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def get_config(self):
        config = super().get_config()
        config.update(serialize_function(self.function, "function"))
        if self._output_shape is not None:
            if callable(self._output_shape):
                config.update(serialize_function(self._output_shape, "output_shape"))
            else:
                config["output_shape"] = list(self._output_shape)
                config["output_shape_type"] = "raw"
        config["arguments"] = self.arguments
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        function = deserialize_function(config, "function", custom_objects,
                                        layer_name=config.get("name"))
        output_shape = None
        if config.get("output_shape") is not None:
            if config.get("output_shape_type") == "raw" or \
                    isinstance(config["output_shape"], (list, tuple)) and \
                    all(isinstance(d, (int, type(None))) for d in config["output_shape"]):
                output_shape = tuple(config["output_shape"])
            else:
                output_shape = deserialize_function(config, "output_shape", custom_objects,
                                                    layer_name=config.get("name"))
        for key in ("function", "function_type", "module", "output_shape", "output_shape_type",
                    "output_shape_module"):
            config.pop(key, None)
        return cls(function, output_shape=output_shape, **config)


@register_layer
class ActivityRegularization(Layer):
    """Identity that adds l1 * sum|x| + l2 * sum x^2 of its input to the training loss."""

    preserves_shape = True

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.l1, self.l2 = float(l1), float(l2)
        self.activity_regularizer = regularizers.L1L2(l1=self.l1, l2=self.l2)
        self.supports_masking = True

    def get_config(self):
        config = super().get_config()
        config.update({"l1": self.l1, "l2": self.l2})
        return config


@register_layer
class Rescaling(Layer):
    """`y = x * scale + offset` (Keras's preprocessing layer, e.g. `Rescaling(1. / 255)`);
    scale and offset are numbers or per-channel lists (last axis)."""

    preserves_shape = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = _number_or_list(scale), _number_or_list(offset)
        self.supports_masking = True

    def call(self, inputs):
        dtype = inputs.dtype if np.issubdtype(inputs.dtype, np.floating) else \
            backend_config.floatx()
        x = inputs if inputs.dtype == dtype else F.cast(inputs, dtype)
        return x * np.asarray(self.scale, dtype) + np.asarray(self.offset, dtype)

    def compute_output_dtype(self, input_dtype):
        return input_dtype if np.issubdtype(np.dtype(input_dtype), np.floating) else \
            backend_config.floatx()

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "offset": self.offset})
        return config


def _number_or_list(value):
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim > 1:
        raise ConfigError(f"Rescaling: scale/offset must be a number or a per-channel list, "
                          f"got shape {arr.shape}")
    return float(arr) if arr.ndim == 0 else [float(v) for v in arr]


@register_layer
class Identity(Layer):
    """Keras 3's `Identity`: returns its input (a placeholder in model code)."""

    preserves_shape = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs


@register_layer
class Masking(Layer):
    """Mask timesteps whose features all equal `mask_value`; downstream RNNs skip them."""

    preserves_shape = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return np.any(np.asarray(inputs.value) != self.mask_value, axis=-1)

    def call(self, inputs):
        keep = np.any(np.asarray(inputs.value) != self.mask_value, axis=-1, keepdims=True)
        return F.multiply(inputs, keep.astype(inputs.dtype))

    def get_config(self):
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config


# Keras 1/2 module paths: keras.layers.core.Highway, .MaxoutDense, .SpatialDropout2D
__getattr__ = reexports(globals(), {
    "Highway": ".legacy_layers", "MaxoutDense": ".legacy_layers",
    "SpatialDropout1D": ".noise", "SpatialDropout2D": ".noise", "SpatialDropout3D": ".noise"})

"""Embedding: integer indices -> dense vectors (Keras 2 semantics)."""

import warnings

import numpy as np

from .. import constraints, initializers, regularizers
from ..backend import functions as F
from ..backend.tensor import Tensor
from ..engine.base_layer import Layer
from ..errors import ConfigError, DTypeError, ShapeError
from .core import layer_rng
from .serialization import register_layer

__all__ = ["Embedding"]


@register_layer
class Embedding(Layer):
    """Turn indices into rows of the `embeddings` matrix (input_dim, output_dim):
    `[[4], [20]] -> [[0.25, 0.1], [0.6, -0.2]]`.

    Inputs of any integer dtype are used as they are; float inputs holding integers are
    cast, as Keras does. An index outside [0, input_dim) raises a ShapeError naming the
    layer, the index and the valid range. With `mask_zero=True`, index 0 is padding: the
    layer emits a (batch, ...) mask that recurrent layers downstream honour.

    Keras 1: `init=` (-> embeddings_initializer), `W_regularizer=`, `W_constraint=` and
    `dropout=` (drops whole embedding rows, i.e. words, while training) are accepted with
    a DeprecationWarning.
    """

    _keras1_renames = {"init": "embeddings_initializer",
                       "W_regularizer": "embeddings_regularizer",
                       "W_constraint": "embeddings_constraint"}

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, activity_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, input_length=None, sparse=False,
                 dropout=0.0, **kwargs):
        if "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            # Keras 2: an Embedding always knows its input shape, (input_length,) or (None,)
            if isinstance(input_length, (list, tuple)):
                kwargs["input_shape"] = tuple(input_length)
            else:
                kwargs["input_shape"] = (input_length,)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        for what, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"Embedding {self.name!r}: {what} must be a positive integer, "
                                  f"got {value!r}")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.input_length = input_length
        self.sparse = bool(sparse)
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"Embedding {self.name!r}: dropout must be in [0, 1), got "
                              f"{dropout}")
        if dropout:
            warnings.warn("Embedding: the Keras 1 argument 'dropout' is deprecated (Keras 2 has "
                          "no equivalent); modelkit still drops whole embedding rows while "
                          "training, but the setting is not saved in the config",
                          DeprecationWarning, stacklevel=3)
        self.dropout = float(dropout)
        self._rng = layer_rng(None) if dropout else None
        if self._input_dtype is None:
            self._input_dtype = "int32"
        self.input_ndim = (2, None)
        self.embeddings = None

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        self.built = True

    def _indices(self, inputs):
        values = inputs.value if isinstance(inputs, Tensor) else np.asarray(inputs)
        if np.issubdtype(values.dtype, np.integer):
            idx = values
        elif np.issubdtype(values.dtype, np.floating) or values.dtype == bool:
            idx = values.astype(np.int64)          # Keras casts (truncating) as well
        else:
            raise DTypeError(f"Embedding {self.name!r} expects integer indices, got an input of "
                             f"dtype {values.dtype}")
        if idx.size:
            lo, hi = idx.min(), idx.max()
            if lo < 0 or hi >= self.input_dim:
                bad = lo if lo < 0 else hi
                where = tuple(int(i) for i in np.argwhere(idx == bad)[0])
                raise ShapeError(f"Embedding {self.name!r}: index {int(bad)} at position {where} "
                                 f"of the input is out of range; valid indices are 0 to "
                                 f"{self.input_dim - 1} (input_dim={self.input_dim})")
        return idx

    def call(self, inputs, training=None):
        idx = self._indices(inputs)
        out = F.gather(self.embeddings, idx)
        if training and self.dropout:
            keep = 1.0 - self.dropout
            rows = (self._rng.random(self.input_dim) < keep) / np.asarray(keep, self.dtype)
            out = F.multiply(out, rows.astype(self.dtype)[idx][..., None])
        return out

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        values = inputs.value if isinstance(inputs, Tensor) else np.asarray(inputs)
        return values != 0

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.input_length is None:
            return input_shape + (self.output_dim,)
        lengths = list(self.input_length) if isinstance(self.input_length, (list, tuple)) \
            else [self.input_length]
        if len(lengths) != len(input_shape) - 1:
            raise ShapeError(f"Embedding {self.name!r}: input_length {self.input_length} does "
                             f"not fit an input of shape {input_shape}")
        for i, (want, got) in enumerate(zip(lengths, input_shape[1:])):
            if want is not None and got is not None and want != got:
                raise ShapeError(f"Embedding {self.name!r}: input_length is {self.input_length}, "
                                 f"but the input has shape {input_shape}")
            if want is None:
                lengths[i] = got
        return (input_shape[0],) + tuple(lengths) + (self.output_dim,)

    def compute_output_dtype(self, input_dtype):
        return self.dtype

    def get_config(self):
        config = super().get_config()
        config.update({
            "input_dim": self.input_dim, "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
            "input_length": list(self.input_length) if isinstance(self.input_length, tuple)
            else self.input_length,
        })
        if self.sparse:
            config["sparse"] = True
        return config

"""Merge layers (Keras 2): Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate,
Dot and their functional forms (Keras 1's `Merge`/`merge` are in `legacy_merge.py`).

Element-wise merges follow Keras 2 `_Merge`: inputs of different ranks are expanded at
axis 1 until the ranks match, then broadcast; the output mask is the AND of the input
masks. Concatenate concatenates the masks (an unmasked input counts as all-true) and
reduces them over the last axis, as Keras does. Dot is `K.batch_dot` (optionally of
L2-normalised inputs) and drops masks.
"""

import numpy as np

from ..backend import functions as F
from ..backend.tensor import as_array
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from .serialization import register_layer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot"]


def _mask_array(m):
    return None if m is None else np.asarray(as_array(m)).astype(bool)


class _Merge(Layer):
    """Base of the element-wise merge layers (Keras 2 `_Merge`)."""

    _min_inputs = 1
    _exact_inputs = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def _kind(self):
        return f"{type(self).__name__} {self.name!r}"

    def _check_list(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ShapeError(f"{self._kind()} should be called on a list of input tensors, "
                             f"got a single input of shape {input_shape}")
        n = len(input_shape)
        if self._exact_inputs is not None and n != self._exact_inputs:
            raise ShapeError(f"{self._kind()} should be called on exactly "
                             f"{self._exact_inputs} inputs, got {n}")
        if n < self._min_inputs:
            raise ShapeError(f"{self._kind()} should be called on at least "
                             f"{self._min_inputs} input(s), got {n}")
        batches = {s[0] for s in input_shape if len(s)} - {None}
        if len(batches) > 1:
            raise ShapeError(f"{self._kind()} cannot merge tensors with different batch sizes; "
                             f"got input shapes {[tuple(s) for s in input_shape]}")

    def _elementwise_shape(self, shape1, shape2):
        if len(shape1) < len(shape2):
            return self._elementwise_shape(shape2, shape1)
        if not shape2:
            return tuple(shape1)
        out = list(shape1[:-len(shape2)])
        for i, j in zip(shape1[-len(shape2):], shape2):
            if i is None or j is None:
                out.append(None)
            elif i == 1:
                out.append(j)
            elif j == 1 or i == j:
                out.append(i)
            else:
                raise ShapeError(f"{self._kind()}: inputs have incompatible shapes; got "
                                 f"{tuple(shape1)} and {tuple(shape2)} (without the batch "
                                 "axis), which do not broadcast")
        return tuple(out)

    def build(self, input_shape):
        self._check_list(input_shape)
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_list(input_shape)
        out = tuple(input_shape[0][1:])
        for s in input_shape[1:]:
            out = self._elementwise_shape(out, tuple(s[1:]))
        batches = [s[0] for s in input_shape if s[0] is not None]
        return (batches[0] if batches else None,) + out

    def call(self, inputs):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self._check_list([tuple(x.shape) for x in inputs])
        ranks = [x.ndim for x in inputs]
        if len(set(ranks)) > 1:
            top = max(ranks)
            inputs = [x if x.ndim == top else
                      F.reshape(x, (x.shape[0],) + (1,) * (top - x.ndim) + tuple(x.shape[1:]))
                      for x in inputs]
        self.compute_output_shape([tuple(x.shape) for x in inputs])
        return self._merge_function(inputs)

    def _merge_function(self, inputs):
        raise NotImplementedError

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)):
            raise ShapeError(f"{self._kind()}: the mask should be a list (one per input)")
        masks = [_mask_array(m) for m in mask if m is not None]
        if not masks:
            return None
        out = masks[0]
        for m in masks[1:]:
            out = np.logical_and(out, m)
        return out


@register_layer
class Add(_Merge):
    """Element-wise sum of the inputs."""

    def _merge_function(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = F.add(out, x)
        return out


@register_layer
class Subtract(_Merge):
    """`inputs[0] - inputs[1]` (exactly two inputs)."""

    _exact_inputs = 2

    def _merge_function(self, inputs):
        return F.subtract(inputs[0], inputs[1])


@register_layer
class Multiply(_Merge):
    """Element-wise product of the inputs."""

    def _merge_function(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = F.multiply(out, x)
        return out


@register_layer
class Average(_Merge):
    """Element-wise mean of the inputs."""

    def _merge_function(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = F.add(out, x)
        return F.divide(out, len(inputs))


@register_layer
class Maximum(_Merge):
    """Element-wise maximum of the inputs."""

    def _merge_function(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = F.maximum(out, x)
        return out


@register_layer
class Minimum(_Merge):
    """Element-wise minimum of the inputs."""

    def _merge_function(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = F.minimum(out, x)
        return out


@register_layer
class Concatenate(_Merge):
    """Concatenate the inputs along `axis`; all other dimensions must match."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ConfigError(f"Concatenate {self.name!r}: axis must be an integer, got {axis!r}")
        self.axis = int(axis)

    def _axis(self, rank):
        if not -rank <= self.axis < rank:
            raise ShapeError(f"{self._kind()}: axis {self.axis} is out of range for inputs of "
                             f"rank {rank}")
        return self.axis % rank

    def compute_output_shape(self, input_shape):
        self._check_list(input_shape)
        shapes = [tuple(s) for s in input_shape]
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ShapeError(f"{self._kind()} requires inputs of the same rank with matching "
                             f"shapes except along axis {self.axis}; got {shapes}")
        axis = self._axis(ranks.pop())
        out = list(shapes[0])
        for k in range(len(out)):
            dims = [s[k] for s in shapes]
            if k == axis:
                out[k] = None if any(d is None for d in dims) else int(sum(dims))
                continue
            known = {d for d in dims if d is not None}
            if len(known) > 1:
                raise ShapeError(f"{self._kind()} requires inputs with matching shapes except "
                                 f"along axis {self.axis}; got {shapes}")
            out[k] = known.pop() if known else None
        return tuple(out)

    def call(self, inputs):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self.compute_output_shape([tuple(x.shape) for x in inputs])
        if len(inputs) == 1:
            return inputs[0]
        return F.concatenate(inputs, axis=self._axis(inputs[0].ndim))

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or len(mask) != len(inputs):
            raise ShapeError(f"{self._kind()}: the mask should be a list with one entry per "
                             f"input ({len(inputs)})")
        if all(m is None for m in mask):
            return None
        parts = []
        for x, m in zip(inputs, mask):
            shape = tuple(x.shape)
            if m is None:
                parts.append(np.ones(shape, dtype=bool))
                continue
            m = _mask_array(m)
            while m.ndim < len(shape):
                m = m[..., None]
            parts.append(np.broadcast_to(m, shape))
        merged = np.concatenate(parts, axis=self._axis(len(tuple(inputs[0].shape))))
        return np.all(merged, axis=-1)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


@register_layer
class Dot(_Merge):
    """Dot product between samples of two tensors (`K.batch_dot`), contracting `axes`
    (an int for both, or a pair); `normalize=True` gives the cosine proximity."""

    _exact_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2 or not all(isinstance(a, (int, np.integer)) and
                                         not isinstance(a, bool) for a in axes):
                raise ConfigError(f"Dot {self.name!r}: axes must be an int or a pair of ints, "
                                  f"got {axes!r}")
            axes = [int(a) for a in axes]
        elif isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
            axes = int(axes)
        else:
            raise ConfigError(f"Dot {self.name!r}: axes must be an int or a pair of ints, "
                              f"got {axes!r}")
        self.axes = axes
        self.normalize = bool(normalize)
        self.supports_masking = True

    def _resolve_axes(self, rank1, rank2):
        if isinstance(self.axes, int):
            axes = [self.axes % rank1, self.axes % rank2] if self.axes < 0 else [self.axes] * 2
        else:
            axes = [a % r if a < 0 else a for a, r in zip(self.axes, (rank1, rank2))]
        for a, r in zip(axes, (rank1, rank2)):
            if a >= r:
                raise ShapeError(f"{self._kind()}: axis {a} is out of range for an input of "
                                 f"rank {r}")
            if a == 0:
                raise ShapeError(f"{self._kind()} cannot contract the batch axis 0 "
                                 f"(axes={self.axes})")
        return axes

    def compute_output_shape(self, input_shape):
        self._check_list(input_shape)
        shape1, shape2 = (list(s) for s in input_shape)
        if len(shape1) < 2 or len(shape2) < 2:
            raise ShapeError(f"{self._kind()} needs inputs of rank >= 2, got shapes "
                             f"{tuple(shape1)} and {tuple(shape2)}")
        a1, a2 = self._resolve_axes(len(shape1), len(shape2))
        if shape1[a1] is not None and shape2[a2] is not None and shape1[a1] != shape2[a2]:
            raise ShapeError(f"{self._kind()}: incompatible input shapes: axis {a1} of "
                             f"{tuple(shape1)} has size {shape1[a1]}, axis {a2} of "
                             f"{tuple(shape2)} has size {shape2[a2]}")
        shape1.pop(a1)
        shape2.pop(a2)
        shape2.pop(0)
        out = shape1 + shape2
        if len(out) == 1:
            out.append(1)
        return tuple(out)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        self.compute_output_shape([tuple(x.shape) for x in inputs])
        x1, x2 = inputs
        a1, a2 = self._resolve_axes(x1.ndim, x2.ndim)
        if self.normalize:
            x1 = F.l2_normalize(x1, axis=a1)
            x2 = F.l2_normalize(x2, axis=a2)
        return F.batch_dot(x1, x2, axes=(a1, a2))

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"axes": self.axes, "normalize": self.normalize})
        return config


# ---------------------------------------------------------------------------------------
# functional forms

def add(inputs, **kwargs):
    """`add([a, b])` = `Add()([a, b])`."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes, normalize=False, **kwargs):
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)

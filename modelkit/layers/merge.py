"""Merge layers (Keras 2): Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate,
Dot and their functional forms; Keras 1's `Merge` layer and `merge` function.

Element-wise merges follow Keras 2 `_Merge`: inputs of different ranks are expanded at
axis 1 until the ranks match, then broadcast; the output mask is the AND of the input
masks. Concatenate concatenates the masks (an unmasked input counts as all-true) and
reduces them over the last axis, as Keras does. Dot is `K.batch_dot` (optionally of
L2-normalised inputs) and drops masks.

Keras 1's `Merge([model_a, model_b], mode=...)` is the first layer of a Sequential: it
calls the branch models on fresh inputs, merges their outputs with the Keras 2 layer for
the mode (a `Lambda` for a callable mode) and exposes `_legacy_inputs` / `_legacy_output`,
which `Sequential` wires in; the saved graph holds the branch models as nested models and
the Keras 2 layer, so files stay readable by Keras 2. `merge([t1, t2], mode=...)` does the
same on symbolic tensors.
"""

import warnings

import numpy as np

from ..backend import functions as F
from ..backend.tensor import as_array
from ..engine.base_layer import Layer, unique_name
from ..errors import ConfigError, ShapeError
from .serialization import register_layer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot",
           "Merge", "merge"]


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


# ---------------------------------------------------------------------------------------
# Keras 1: Merge layer and merge function

_MODES = {"sum": "Add", "mul": "Multiply", "ave": "Average", "max": "Maximum",
          "concat": "Concatenate", "dot": "Dot", "cos": "Dot"}


def _replacement(mode, concat_axis, dot_axes):
    if callable(mode):
        return "Lambda(function, output_shape=...) on the list of tensors"
    if mode == "concat":
        return f"Concatenate(axis={concat_axis}) / concatenate([...], axis={concat_axis})"
    if mode == "dot":
        return f"Dot(axes={dot_axes}) / dot([...], axes={dot_axes})"
    if mode == "cos":
        return f"Dot(axes={dot_axes}, normalize=True) / dot([...], axes={dot_axes}, normalize=True)"
    cls = _MODES[mode]
    return f"{cls}() / {cls.lower()}([...])"


def _check_mode(mode, where):
    if callable(mode):
        return
    if mode not in _MODES:
        raise ConfigError(f"{where}: unknown merge mode {mode!r}; use one of "
                          f"{sorted(_MODES)} or a function of the list of tensors")


def _dot_axes(dot_axes, where):
    if isinstance(dot_axes, (list, tuple)):
        if len(dot_axes) != 2:
            raise ConfigError(f"{where}: dot_axes must be an int or a pair of ints, "
                              f"got {dot_axes!r}")
        axes = []
        for a in dot_axes:       # Keras 1 also accepted ([1], [1])
            if isinstance(a, (list, tuple)):
                if len(a) != 1:
                    raise ConfigError(f"{where}: only one axis per input can be contracted, "
                                      f"got dot_axes={dot_axes!r}")
                a = a[0]
            axes.append(int(a))
        return axes
    return int(dot_axes)


def _modern_layer(mode, concat_axis, dot_axes, output_shape, output_mask, arguments, name,
                  where):
    """The Keras 2 layer doing what Keras 1 merge `mode` did."""
    _check_mode(mode, where)
    if callable(mode):
        from .core import Lambda
        return Lambda(mode, output_shape=output_shape, mask=output_mask, arguments=arguments,
                      name=name)
    if output_shape is not None:
        raise ConfigError(f"{where}: output_shape is only used with a callable mode, not with "
                          f"mode={mode!r}")
    if mode == "concat":
        return Concatenate(axis=concat_axis, name=name)
    if mode in ("dot", "cos"):
        return Dot(axes=_dot_axes(dot_axes, where), normalize=mode == "cos", name=name)
    return globals()[_MODES[mode]](name=name)


def _warn(what, mode, concat_axis, dot_axes):
    warnings.warn(f"{what} is deprecated (Keras 1); use "
                  f"{_replacement(mode, concat_axis, dot_axes)} instead",
                  DeprecationWarning, stacklevel=3)


def merge(inputs, mode="sum", concat_axis=-1, dot_axes=-1, output_shape=None,
          output_mask=None, arguments=None, node_indices=None, tensor_indices=None, name=None):
    """Keras 1 `merge([t1, t2, ...], mode=...)` on symbolic (or concrete) tensors.

    Modes: 'sum', 'mul', 'ave', 'max', 'concat' (`concat_axis`), 'dot' (`dot_axes`),
    'cos' (cosine proximity along `dot_axes`: `Dot(normalize=True)`), or a function of
    the list of tensors (a `Lambda`; `output_shape` is inferred by running it when not
    given). Deprecated: the message names the Keras 2 layer to use.
    """
    where = f"merge(mode={mode!r})"
    _check_mode(mode, where)
    _warn("merge(..., mode=...)", mode, concat_axis, dot_axes)
    if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
        raise ShapeError(f"{where} needs a list of at least 2 tensors, got "
                         f"{type(inputs).__name__}")
    layer = _modern_layer(mode, concat_axis, dot_axes, output_shape, output_mask, arguments,
                          name, where)
    return layer(list(inputs))


@register_layer
class Merge(Layer):
    """Keras 1 `Merge(layers=[model_a, model_b], mode='concat')`, the first layer of a
    Sequential fitted on one array per branch; `Merge(mode=...)` without `layers` is a
    callable that merges a list of tensors. Deprecated: use the functional API with the
    Keras 2 merge layers (the warning names the one for the mode).

    Arguments as Keras 1: `mode` ('sum', 'mul', 'concat', 'ave', 'cos', 'dot', 'max' or a
    function), `concat_axis`, `dot_axes`, `output_shape`, `output_mask`, `arguments`,
    `node_indices` (0 for models), `tensor_indices` (which output of each model).
    """

    def __init__(self, layers=None, mode="sum", concat_axis=-1, dot_axes=-1, output_shape=None,
                 output_mask=None, arguments=None, node_indices=None, tensor_indices=None,
                 name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.mode = mode
        self.concat_axis = concat_axis
        self.dot_axes = dot_axes
        self._merge_args = (mode, concat_axis, dot_axes, output_shape, output_mask, arguments)
        where = f"Merge {self.name!r}"
        _check_mode(mode, where)
        _warn("The Merge layer", mode, concat_axis, dot_axes)
        self._legacy_inputs = None
        self._legacy_output = None
        self.layer = None
        self.built = True
        if layers is None:
            return
        if not isinstance(layers, (list, tuple)) or len(layers) < 2:
            raise ConfigError(f"{where}: `layers` must be a list of at least 2 models, got "
                              f"{layers!r:.100}")
        from ..engine.functional import Model
        from ..engine.input_layer import Input
        n = len(layers)
        node_indices = list(node_indices) if node_indices is not None else [0] * n
        tensor_indices = list(tensor_indices) if tensor_indices is not None else [0] * n
        if len(node_indices) != n or len(tensor_indices) != n:
            raise ConfigError(f"{where}: node_indices/tensor_indices must have one entry per "
                              f"layer ({n})")
        inputs, branches = [], []
        for i, (model, ni, ti) in enumerate(zip(layers, node_indices, tensor_indices)):
            if not isinstance(model, Model):
                raise ConfigError(
                    f"{where}: layers[{i}] is a {type(model).__name__}, not a model; merge "
                    "Sequential/functional models here, or call merge() on tensors")
            if ni != 0:
                raise ConfigError(f"{where}: node_indices[{i}]={ni}: only node 0 (the model "
                                  "itself) can be merged")
            if not model.built or not model.inputs:
                raise ConfigError(f"{where}: branch model {model.name!r} has no input shape; "
                                  "give its first layer input_shape=/input_dim=")
            ins = [Input(batch_shape=t.shape, dtype=str(t.dtype),
                         name=unique_name(f"{model.name}_input")) for t in model.inputs]
            out = model(ins if len(ins) > 1 else ins[0])
            outs = out if isinstance(out, (list, tuple)) else [out]
            if not 0 <= ti < len(outs):
                raise ConfigError(f"{where}: tensor_indices[{i}]={ti}, but model "
                                  f"{model.name!r} has {len(outs)} output(s)")
            inputs.extend(ins)
            branches.append(outs[ti])
        self.layer = _modern_layer(mode, concat_axis, dot_axes, output_shape, output_mask,
                                   arguments, self.name, where)
        self._legacy_output = self.layer(branches)
        self._legacy_inputs = inputs
        self._sublayers = list(layers) + [self.layer]

    def __call__(self, inputs, *args, **kwargs):
        """Merge a list of tensors with the Keras 2 layer for the mode (a new node)."""
        if self._legacy_inputs is not None:
            raise ConfigError(f"Merge {self.name!r} was built from models; add it to a "
                              "Sequential as its first layer instead of calling it")
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ShapeError(f"Merge {self.name!r} must be called on a list of at least 2 "
                             f"tensors, got {type(inputs).__name__}")
        if self.layer is None:
            self.layer = _modern_layer(*self._merge_args, self.name, f"Merge {self.name!r}")
            self._sublayers = [self.layer]
        return self.layer(list(inputs), *args, **kwargs)

    @property
    def input(self):
        if self._legacy_inputs is not None:
            return list(self._legacy_inputs)
        return super().input

    @property
    def output(self):
        if self._legacy_output is not None:
            return self._legacy_output
        return super().output

    def compute_output_shape(self, input_shape):
        layer = self.layer or _modern_layer(*self._merge_args, self.name, f"Merge {self.name!r}")
        return layer.compute_output_shape(input_shape)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A Keras 1 file's merge node (`{"mode": ..., "mode_type": "raw"|"function"|"lambda",
        "concat_axis", "dot_axes", "output_shape", ...}`): the layer it builds is the Keras 2
        one. Stored Python code (`mode_type: "lambda"`) only loads with safe_mode=False."""
        from .serialization import deserialize_function
        config = dict(config)
        name = config.get("name")
        if config.get("layers"):
            raise ConfigError(f"Merge {name!r}: a Keras 1 Merge of whole models cannot be read "
                              "from a config; rebuild it with Merge([model_a, model_b], ...)")
        for key in ("mode", "output_shape", "output_mask"):
            kind = config.pop(f"{key}_type", "raw")
            if kind in ("lambda", "function") and config.get(key) is not None:
                config[key] = deserialize_function({key: config[key], f"{key}_type": kind},
                                                   key, custom_objects, layer_name=name)
            elif key == "output_shape" and config.get(key) is not None:
                config[key] = tuple(config[key])
        config.pop("layers", None)
        return cls(**config)

    def get_config(self):
        raise ConfigError(f"Merge {self.name!r} is not saved itself: a model holding it saves "
                          f"the Keras 2 layer {type(self.layer).__name__ if self.layer else ''}"
                          " that does the merge")

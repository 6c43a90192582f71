"""Keras 1's `Merge` layer and `merge` function (deprecated; the warnings name the Keras 2
layer to use).

Keras 1's `Merge([model_a, model_b], mode=...)` is the first layer of a Sequential: it
calls the branch models on fresh inputs, merges their outputs with the Keras 2 layer for
the mode (a `Lambda` for a callable mode) and exposes `_legacy_inputs` / `_legacy_output`,
which `Sequential` wires in; the saved graph holds the branch models as nested models and
the Keras 2 layer, so files stay readable by Keras 2. `merge([t1, t2], mode=...)` does the
same on symbolic tensors.
"""

import warnings

from ..engine.base_layer import Layer, unique_name
from ..errors import ConfigError, ShapeError
from .merge import Add, Average, Concatenate, Dot, Maximum, Multiply
from .serialization import register_layer

__all__ = ["Merge", "merge"]


_ELEMENTWISE = {"sum": Add, "mul": Multiply, "ave": Average, "max": Maximum}
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
    return _ELEMENTWISE[mode](name=name)


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

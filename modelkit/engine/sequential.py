"""`Sequential`: a linear stack of layers (a functional Model built one layer at a time)."""

import numpy as np

from ..errors import ConfigError, ModelkitError
from .base_layer import Layer
from .functional import Model
from .input_layer import Input, InputLayer


class Sequential(Model):
    """`Sequential([Dense(32, input_dim=784), Activation('relu')])` or `.add(...)` one by one.

    The input shape comes from the first layer (`input_shape`, `input_dim`,
    `batch_input_shape`, an `InputLayer`) or, failing that, from the first data seen.
    """

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._stack = []            # the layers in order (no InputLayer)
        self._chain = []            # each layer's output tensor in this model
        self._input_layer = None
        self._single_input = True
        self._single_output = True
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self):
        return list(self._stack)

    def add(self, layer):
        if not isinstance(layer, Layer):
            raise ConfigError(f"Sequential.add needs a layer instance, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._stack or self._input_layer is not None:
                raise ConfigError("An InputLayer can only be the first layer of a Sequential")
            self._input_layer = layer
            return
        if layer.name in {la.name for la in self._stack}:
            raise ConfigError(f"Sequential {self.name!r} already has a layer named "
                              f"{layer.name!r}; layer names must be unique")
        self._stack.append(layer)
        if self.built and self._chain:
            self._connect(layer, self._chain[-1])
            self._init_graph(self.inputs if len(self.inputs) > 1 else self.inputs[0],
                             self._chain[-1])
            self._sublayers = list(self._stack)
        else:
            self._build_chain()

    def pop(self):
        if not self._stack:
            raise ModelkitError(f"Sequential {self.name!r} has no layers to pop")
        self._stack.pop()
        if self._chain:
            self._chain.pop()
        if not self._stack:
            self.inputs, self.outputs, self._nodes_in_order, self._layers = [], [], [], []
            self._sublayers, self._chain = [], []
            self.built = False
            return
        self._init_graph(self.inputs if len(self.inputs) > 1 else self.inputs[0], self._chain[-1])
        self._sublayers = list(self._stack)

    def _connect(self, layer, x):
        """Call `layer` on the chain's last tensor; it must give one output."""
        out = layer(x)
        if isinstance(out, (list, tuple)):
            if len(out) != 1:
                raise ConfigError(f"Layer {layer.name!r} has {len(out)} outputs; layers in a "
                                  "Sequential model must have one output")
            out = out[0]
        self._chain.append(out)
        return out

    def _chain_input(self):
        """The symbolic input(s) for the first layer, created once, or None if unknown."""
        first = self._stack[0]
        if getattr(first, "_legacy_inputs", None) is not None:   # Keras 1 Merge([a, b]) first
            return first._legacy_inputs
        if self._input_layer is not None:
            return self._input_layer._inbound_nodes[0].outputs
        if getattr(self, "_data_input", None) is not None:
            return self._data_input
        if first._batch_input_shape is not None:
            self._data_input = Input(batch_shape=first._batch_input_shape,
                                     dtype=first._input_dtype, name=f"{first.name}_input")
            return self._data_input
        return None

    def _build_chain(self):
        """Connect the whole stack to its input once the input shape is known."""
        inputs = self._chain_input() if self._stack else None
        if inputs is None:
            self._sublayers = list(self._stack)
            self.built = False
            return
        self._chain = []
        first = self._stack[0]
        if getattr(first, "_legacy_inputs", None) is not None:
            self._chain.append(first._legacy_output)
            rest = self._stack[1:]
        else:
            rest = self._stack
        x = self._chain[-1] if self._chain else inputs
        for layer in rest:
            x = self._connect(layer, x)
        self._init_graph(inputs, x)
        self._single_input = not isinstance(inputs, (list, tuple)) or len(inputs) == 1
        self._sublayers = list(self._stack)

    def build(self, input_shape=None):
        if input_shape is not None and not self.built:
            self._data_input = Input(batch_shape=tuple(input_shape),
                                     name=f"{self._stack[0].name}_input" if self._stack else None)
            self._build_chain()
        self.built = True

    def _build_from_data(self, x):
        """Deferred build: the first data seen fixes the input shape (as in Keras)."""
        if self.built or not self._stack:
            return
        arr = x[0] if isinstance(x, (list, tuple)) else x
        arr = np.asarray(arr) if not hasattr(arr, "shape") else arr
        self._data_input = Input(shape=tuple(arr.shape[1:]), dtype=str(arr.dtype)
                                 if np.issubdtype(arr.dtype, np.integer) else None,
                                 name=f"{self._stack[0].name}_input")
        self._build_chain()

    def _ensure_built(self):
        if not self.built:
            raise ModelkitError(f"Sequential {self.name!r} has no input shape yet: give the "
                                "first layer input_shape=/input_dim=, or call it on data")

    @property
    def weights(self):
        if not self.built:
            return [w for la in self._stack for w in la.weights]
        return super().weights

    def predict_classes(self, x, batch_size=32, verbose=0):
        """Keras 1: class indices (argmax, or a 0.5 threshold for one sigmoid output)."""
        import warnings
        warnings.warn("predict_classes is deprecated; use np.argmax(model.predict(x), -1) "
                      "(or (model.predict(x) > 0.5) for one sigmoid output)",
                      DeprecationWarning, stacklevel=2)
        proba = self.predict(x, batch_size=batch_size, verbose=verbose)
        if proba.shape[-1] > 1:
            return proba.argmax(axis=-1)
        return (proba > 0.5).astype("int32")

    def predict_proba(self, x, batch_size=32, verbose=0):
        """Keras 1: the predictions (probabilities)."""
        import warnings
        warnings.warn("predict_proba is deprecated; use model.predict",
                      DeprecationWarning, stacklevel=2)
        return self.predict(x, batch_size=batch_size, verbose=verbose)

    @property
    def input_names(self):
        return super().input_names if self.built else []

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        if name is not None and all(la.name != name for la in self._stack):
            for layer in self._layers:     # graph-only layers: a Keras 1 Merge's branch models
                if layer.name == name:
                    return layer
        return super().get_layer(name=name)


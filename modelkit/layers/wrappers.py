"""Layer wrappers: TimeDistributed and Bidirectional (Keras 2 semantics).

Both hold the wrapped layer in their config as `{"class_name", "config"}` under `layer`
(Bidirectional also under `backward_layer` when one was given). Weight names follow
tf.keras 2: `time_distributed/kernel` for a wrapped Dense, and
`bidirectional/forward_lstm/lstm_cell/kernel` ... `bidirectional/backward_lstm/...`, forward
weights first.
"""

import numpy as np

from ..backend import functions as F
from ..backend.functions import is_symbolic
from ..backend.tensor import Tensor
from ..engine.base_layer import Layer, to_list
from ..engine.functional import Model
from ..errors import ConfigError, ShapeError
from ..nesting import flatten_structure
from .convolutional_recurrent import ConvLSTM
from .recurrent import RNN, mask_array
from .serialization import deserialize, register_layer, serialize

__all__ = ["Wrapper", "TimeDistributed", "Bidirectional"]

_MODEL_CLASSES = ("Functional", "Model", "Sequential")


def serialize_layer(layer):
    """`{"class_name", "config"}` of a layer or a whole model (Keras 2 class names)."""
    if isinstance(layer, Model):
        from ..engine.sequential import Sequential
        kind = "Sequential" if isinstance(layer, Sequential) else "Functional"
        return {"class_name": kind, "config": layer.get_config()}
    return serialize(layer)


def deserialize_layer(config, custom_objects=None, where="Wrapper"):
    if not isinstance(config, dict) or "class_name" not in config:
        raise ConfigError(f"{where}: the wrapped layer must be given as a layer or as "
                          f"{{'class_name': ..., 'config': ...}}, got {config!r:.200}")
    if config["class_name"] in _MODEL_CLASSES:
        return Model.from_config(config.get("config", {}), custom_objects=custom_objects)
    return deserialize(config, custom_objects)


def _rename_weights(layer, old_prefix, new_prefix):
    """Give a wrapped layer's variables the wrapper's name prefix (tf.keras 2 names)."""
    for v in layer.weights:
        if v.name.startswith(old_prefix):
            v.name = new_prefix + v.name[len(old_prefix):]


def _is_shape_list(shape):
    return isinstance(shape, list) and len(shape) > 0 and \
        all(isinstance(s, (tuple, list)) for s in shape)


class Wrapper(Layer):
    """Base of the wrappers: holds `self.layer`, tracks its weights, (de)serialises it."""

    def __init__(self, layer, **kwargs):
        if isinstance(layer, dict):
            layer = deserialize_layer(layer, where=type(self).__name__)
        if not isinstance(layer, Layer):
            raise ConfigError(f"{type(self).__name__}: expected a layer to wrap, got "
                              f"{type(layer).__name__}")
        super().__init__(**kwargs)
        self.layer = layer

    def get_config(self):
        config = super().get_config()
        config["layer"] = serialize_layer(self.layer)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"], custom_objects, cls.__name__)
        return cls(**config)


@register_layer
class TimeDistributed(Wrapper):
    """Apply a layer (or a whole model) to every timestep: (batch, time, ...) inputs are
    folded to (batch * time, ...), run once, and unfolded. Masks pass through."""

    def __init__(self, layer, **kwargs):
        super().__init__(layer, **kwargs)
        self._track_layer(self.layer)
        self.supports_masking = True
        self.stateful = any(getattr(la, "stateful", False) for la in self._state_layers())

    def _state_layers(self):
        return self.layer.layers if isinstance(self.layer, Model) else [self.layer]

    def reset_states(self):
        for la in self._state_layers():
            if getattr(la, "stateful", False):
                la.reset_states()

    def _saved_states(self):
        return [la._saved_states() if hasattr(la, "_saved_states") else None
                for la in self._state_layers()]

    def _restore_states(self, saved):
        for la, st in zip(self._state_layers(), saved):
            if hasattr(la, "_restore_states"):
                la._restore_states(st)

    def _inner_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 3:
            raise ShapeError(f"TimeDistributed {self.name!r} expects input of rank >= 3 "
                             f"(batch, timesteps, ...), got shape {input_shape}")
        b, t = input_shape[:2]
        return (None if b is None or t is None else b * t,) + input_shape[2:]

    def _check_input_compatibility(self, inputs):
        if isinstance(inputs, (list, tuple)):
            raise ShapeError(f"TimeDistributed {self.name!r} takes one input tensor, got "
                             f"{len(inputs)}")
        self._inner_shape(inputs.shape)

    def build(self, input_shape):
        inner = self._inner_shape(input_shape)
        if not self.layer.built:
            name = self.layer.name
            self.layer._maybe_build(inner)
            if not isinstance(self.layer, Model):
                _rename_weights(self.layer, name + "/", self.name + "/")
        self.built = True

    def call(self, inputs, training=None, mask=None):
        shape = tuple(inputs.shape)
        self._inner_shape(shape)
        b, t = shape[:2]
        x = F.reshape(inputs, (b * t,) + shape[2:])
        inner_mask = self._inner_mask(mask, b, t)
        y = self.layer._call_with_options(x, training=training, mask=inner_mask)
        if isinstance(y, (list, tuple)):
            return [F.reshape(o, (b, t) + tuple(o.shape[1:])) for o in y]
        return F.reshape(y, (b, t) + tuple(y.shape[1:]))

    @staticmethod
    def _inner_mask(mask, b, t):
        """A mask of rank > 2 is folded with the input; a (batch, time) one has no meaning
        for a single timestep and is not passed in (as Keras 2)."""
        if mask is None:
            return None
        m = np.asarray(mask.value if isinstance(mask, Tensor) else mask)
        if m.ndim <= 2:
            return None
        return m.reshape((b * t,) + m.shape[2:])

    def compute_output_shape(self, input_shape):
        inner = self._inner_shape(input_shape)
        out = self.layer.compute_output_shape(inner)
        b, t = tuple(input_shape)[:2]
        if isinstance(out, list):
            return [(b, t) + tuple(o[1:]) for o in out]
        return (b, t) + tuple(out[1:])

    def compute_mask(self, inputs, mask=None):
        if isinstance(self.layer, Model) or \
                type(self.layer).compute_mask is Layer.compute_mask:
            return mask                   # the inner layer cannot make a mask of its own
        values = np.asarray(inputs.value if isinstance(inputs, Tensor) else inputs)
        b, t = values.shape[:2]
        inner_in = Tensor(values.reshape((b * t,) + values.shape[2:]))
        inner = self.layer.compute_mask(inner_in, self._inner_mask(mask, b, t))
        if inner is None:
            return mask
        m = np.asarray(inner.value if isinstance(inner, Tensor) else inner)
        return m.reshape((b, t) + m.shape[1:])


_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _strip(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


_RECURRENT = (RNN, ConvLSTM)      # what Bidirectional runs in both directions


@register_layer
class Bidirectional(Wrapper):
    """Run a recurrent layer forwards and a copy of it backwards and merge the two.

    `merge_mode`: 'concat' (default), 'sum', 'mul', 'ave', or None (a list of both outputs).
    The backward layer is a copy of `layer` with `go_backwards` flipped (or `backward_layer`);
    with `return_sequences` its outputs are reversed back to input order before merging, as
    Keras does. `return_state` returns the merged output(s), the forward states, then the
    backward states. Inside, both layers emit zeros at masked steps of a returned sequence
    (Keras forces `zero_output_for_mask=return_sequences`).
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 **kwargs):
        if isinstance(backward_layer, dict):
            backward_layer = deserialize_layer(backward_layer, where="Bidirectional")
        super().__init__(layer, weights=weights, **kwargs)
        if not isinstance(self.layer, _RECURRENT):
            raise ConfigError(f"Bidirectional {self.name!r}: the wrapped layer must be a "
                              f"recurrent layer (SimpleRNN, GRU, LSTM, RNN, ConvLSTM1D/2D/3D), "
                              f"got {type(self.layer).__name__}")
        if merge_mode not in _MERGE_MODES:
            raise ConfigError(f"Bidirectional {self.name!r}: merge_mode must be one of "
                              f"{list(_MERGE_MODES)}, got {merge_mode!r}")
        self.merge_mode = merge_mode
        self._backward_config = None
        inner = serialize(self.layer)
        forward_config = {"class_name": inner["class_name"], "config": dict(inner["config"])}
        forward_config["config"]["name"] = "forward_" + _strip(self.layer.name, "forward_")
        forward_config["config"].pop("batch_input_shape", None)
        self.forward_layer = deserialize(forward_config)
        if backward_layer is None:
            backward_config = {"class_name": inner["class_name"], "config": dict(inner["config"])}
            backward_config["config"]["go_backwards"] = not self.layer.go_backwards
            backward_config["config"]["name"] = "backward_" + _strip(self.layer.name, "forward_")
            backward_config["config"].pop("batch_input_shape", None)
            self.backward_layer = deserialize(backward_config)
        else:
            if not isinstance(backward_layer, _RECURRENT):
                raise ConfigError(f"Bidirectional {self.name!r}: backward_layer must be a "
                                  f"recurrent layer, got {type(backward_layer).__name__}")
            self._backward_config = serialize(backward_layer)
            backward_layer.name = "backward_" + _strip(backward_layer.name, "backward_")
            self.backward_layer = backward_layer
        self._verify_layers()
        for la in (self.forward_layer, self.backward_layer):
            la.zero_output_for_mask = la.return_sequences
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state
        self.stateful = self.forward_layer.stateful
        self._track_layer(self.forward_layer)
        self._track_layer(self.backward_layer)
        self.supports_masking = True

    def _verify_layers(self):
        f, b = self.forward_layer, self.backward_layer
        if f.go_backwards == b.go_backwards:
            raise ConfigError(f"Bidirectional {self.name!r}: the forward and backward layers "
                              f"must process in opposite directions (both have "
                              f"go_backwards={f.go_backwards})")
        for attr in ("return_sequences", "return_state", "stateful"):
            if getattr(f, attr) != getattr(b, attr):
                raise ConfigError(f"Bidirectional {self.name!r}: forward and backward layers "
                                  f"must agree on {attr} ({getattr(f, attr)} vs "
                                  f"{getattr(b, attr)})")

    @property
    def _n_states(self):
        return self.forward_layer._n_states

    # -- calling -------------------------------------------------------------------------
    def __call__(self, inputs, initial_state=None, constants=None, **kwargs):
        if constants is not None:
            raise ConfigError(f"Bidirectional {self.name!r}: `constants` are not supported")
        if initial_state is not None:
            inputs = [inputs] + flatten_structure(initial_state)
        if isinstance(inputs, (list, tuple)):
            inputs = flatten_structure(inputs)
            if len({is_symbolic(t) for t in inputs}) > 1:
                raise ConfigError(f"Bidirectional {self.name!r}: the initial states must be "
                                  "symbolic when the input is, and concrete when it is not")
            if len(inputs) == 1:
                inputs = inputs[0]
        result = super().__call__(inputs, **kwargs)
        if not (self.return_state and isinstance(self.forward_layer, RNN)):
            return result
        # the states of a stack of cells nested per cell, each direction's as its RNN's
        n_out, n = (2 if self.merge_mode is None else 1), self._n_states
        return (self.forward_layer._nest_states(result[:n_out + n], n_out) +
                self.backward_layer._nest_states(result[n_out + n:], 0))

    def _split(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            return inputs, None, None
        x, states = inputs[0], list(inputs[1:])
        n = self._n_states
        if len(states) != 2 * n:
            raise ShapeError(f"Bidirectional {self.name!r} expects {2 * n} initial state "
                             f"tensors (forward then backward), got {len(states)}")
        return x, states[:n], states[n:]

    def _check_input_compatibility(self, inputs):
        x, fs, bs = self._split(inputs)
        if isinstance(self.forward_layer, RNN):
            self.forward_layer._check_ranks(tuple(x.shape), [tuple(s.shape) for s in fs or []])
        else:                                   # a ConvLSTM checks its own input
            self.forward_layer._split(tuple(x.shape))

    def build(self, input_shape):
        if _is_shape_list(input_shape):
            x_shape = tuple(input_shape[0])
            n = self._n_states
            if len(input_shape) - 1 != 2 * n:
                raise ShapeError(f"Bidirectional {self.name!r} expects {2 * n} initial state "
                                 f"tensors (forward then backward), got {len(input_shape) - 1}")
            fs, bs = list(input_shape[1:1 + n]), list(input_shape[1 + n:])
        else:
            x_shape, fs, bs = tuple(input_shape), [], []
        self.forward_layer._maybe_build([x_shape] + fs if fs else x_shape)
        self.backward_layer._maybe_build([x_shape] + bs if bs else x_shape)
        for la in (self.forward_layer, self.backward_layer):
            _rename_weights(la, la.name + "/", f"{self.name}/{la.name}/")
        self.built = True

    def call(self, inputs, training=None, mask=None):
        x, fs, bs = self._split(inputs)
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        m = mask_array(mask, x, self)
        f_in = x if fs is None else [x] + fs
        b_in = x if bs is None else [x] + bs
        y = self.forward_layer._call_with_options(f_in, training=training, mask=m)
        y_rev = self.backward_layer._call_with_options(b_in, training=training, mask=m)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = F.reverse(y_rev, 1)
        if self.merge_mode == "concat":
            out = F.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            out = F.add(y, y_rev)
        elif self.merge_mode == "ave":
            out = F.multiply(F.add(y, y_rev), np.asarray(0.5, y.dtype))
        elif self.merge_mode == "mul":
            out = F.multiply(y, y_rev)
        else:
            out = [y, y_rev]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def compute_output_shape(self, input_shape):
        x_shape = tuple(input_shape[0]) if _is_shape_list(input_shape) else tuple(input_shape)
        shapes = self.forward_layer.compute_output_shape(x_shape)
        out = shapes[0] if self.return_state else shapes
        state_shapes = list(shapes[1:]) if self.return_state else []
        if self.merge_mode == "concat":
            last = None if out[-1] is None else out[-1] * 2
            merged = [tuple(out[:-1]) + (last,)]
        elif self.merge_mode is None:
            merged = [tuple(out), tuple(out)]
        else:
            merged = [tuple(out)]
        if self.return_state:
            return merged + state_shapes * 2
        return merged if len(merged) > 1 else merged[0]

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        if self.return_sequences:
            out_mask = mask if self.merge_mode else [mask, mask]
        else:
            out_mask = None if self.merge_mode else [None, None]
        if self.return_state:
            states = [None] * (2 * self._n_states)
            return (out_mask if isinstance(out_mask, list) else [out_mask]) + states
        return out_mask

    # -- states --------------------------------------------------------------------------
    def reset_states(self, states=None):
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        states = to_list(states)
        n = self._n_states
        self.forward_layer.reset_states(states[:n])
        self.backward_layer.reset_states(states[n:])

    def _saved_states(self):
        return (self.forward_layer._saved_states(), self.backward_layer._saved_states())

    def _restore_states(self, saved):
        self.forward_layer._restore_states(saved[0])
        self.backward_layer._restore_states(saved[1])

    # -- config --------------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config["merge_mode"] = self.merge_mode
        if self._backward_config is not None:
            config["backward_layer"] = self._backward_config
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"], custom_objects, "Bidirectional")
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize_layer(config["backward_layer"],
                                                         custom_objects, "Bidirectional")
        return cls(**config)

"""Recurrent layers: SimpleRNN, GRU, LSTM (and RNN over one of their cells or a stack of them),
Keras 2 semantics.

Each call runs the whole sequence through ONE fused backend op (see
`modelkit.backend.rnn_ops`), so training a recurrent layer costs one tape entry per call.

What Keras 2 does and modelkit does too:

* weights `kernel` (in, gates*u), `recurrent_kernel` (u, gates*u), `bias`; LSTM gates i,f,c,o,
  GRU gates z,r,h with `reset_after` (bias (2, 3u) when True, (3u,) when False); variable
  names `lstm/lstm_cell/kernel`;
* `return_sequences`, `return_state` (output, then h (and c)), `go_backwards` (a returned
  sequence stays in processing order), `stateful` (needs a fixed batch size; the last states
  of a batch start the next one; `reset_states()`), `initial_state=` (folded into the
  inputs: `layer(x, initial_state=[h, c])` is `layer([x, h, c])`);
* masks from `Embedding(mask_zero=True)` / `Masking`: a masked step carries the states and
  repeats the previous output (zeros before the first unmasked step, or always zeros with
  `zero_output_for_mask=True`); the mask propagates when `return_sequences=True`;
* `dropout` / `recurrent_dropout`: one mask per sequence (per gate with implementation=1,
  which recurrent dropout forces);
* `unroll` and `implementation` are accepted (the fused op is the same either way).

Keras 1 spellings (`output_dim`, `init`, `inner_init`, `inner_activation`, `forget_bias_init`,
`W_/U_/b_regularizer`, `dropout_W`, `dropout_U`, `consume_less`, `input_dim`,
`input_length`) are accepted with a DeprecationWarning.
"""

import warnings

import numpy as np

from .. import regularizers
from ..backend import functions as F
from ..backend.functions import is_symbolic
from ..backend.tensor import Tensor, as_array
from ..engine.base_layer import Layer, to_list
from ..errors import ConfigError, ShapeError
from ..nesting import flatten_structure, pack_structure
from .rnn_cells import (GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells, _FusedCell,
                        deserialize_cell)
from .serialization import register_layer, serialize

__all__ = ["RNN", "SimpleRNN", "GRU", "LSTM", "SimpleRNNCell", "GRUCell", "LSTMCell",
           "StackedRNNCells"]


def _keras1_sequence_kwargs(kwargs, where):
    """Keras 1 `input_dim`/`input_length` -> `input_shape`; `consume_less` is dropped."""
    if "consume_less" in kwargs:
        value = kwargs.pop("consume_less")
        warnings.warn(f"{where}: the Keras 1 argument 'consume_less' ({value!r}) is deprecated "
                      "and ignored: modelkit always runs the whole sequence in one fused op",
                      DeprecationWarning, stacklevel=4)
    if "input_dim" in kwargs or "input_length" in kwargs:
        dim, length = kwargs.pop("input_dim", None), kwargs.pop("input_length", None)
        if "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            warnings.warn(f"{where}: the Keras 1 arguments 'input_dim'/'input_length' are "
                          f"deprecated; use input_shape=({length}, {dim})",
                          DeprecationWarning, stacklevel=4)
            kwargs["input_shape"] = (length, dim)


def _is_shape_list(shape):
    return isinstance(shape, list) and len(shape) > 0 and \
        all(isinstance(s, (tuple, list)) for s in shape)


def mask_array(mask, x, layer):
    """A (batch, time) bool array from a mask (array, Tensor or list whose first item is
    the sequence mask), checked against x; None when there is none."""
    if isinstance(mask, (list, tuple)):
        mask = mask[0] if mask else None
    if mask is None:
        return None
    m = np.asarray(mask.value if isinstance(mask, Tensor) else mask)
    if m.shape != tuple(x.shape[:2]):
        raise ShapeError(f"{type(layer).__name__} {layer.name!r}: the mask has shape {m.shape}, "
                         f"expected (batch, timesteps) = {tuple(x.shape[:2])}")
    return m.astype(bool, copy=False)


@register_layer
class RNN(Layer):
    """A recurrent layer over one built-in cell (`SimpleRNNCell`, `GRUCell`, `LSTMCell`) or a
    stack of them (a list of cells, or `StackedRNNCells`: per step cell k feeds cell k+1;
    `return_state` nests the states per cell as Keras does, `[out, [h1, c1], h2]`: a cell
    with one state gives its tensor, an LSTM cell the list [h, c]; `initial_state` takes
    them nested or flat)."""

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, time_major=False, zero_output_for_mask=False,
                 **kwargs):
        where = type(self).__name__
        _keras1_sequence_kwargs(kwargs, where)
        if isinstance(cell, dict):
            cell = deserialize_cell(cell)
        super().__init__(**kwargs)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(list(cell), dtype=kwargs.get("dtype"))
        if not isinstance(cell, (_FusedCell, StackedRNNCells)):
            raise ConfigError(f"{where} {self.name!r}: the cell must be a SimpleRNNCell, GRUCell "
                              f"or LSTMCell, or a list / StackedRNNCells of them (modelkit runs "
                              f"these as fused sequence ops), got {type(cell).__name__}")
        if time_major:
            raise ConfigError(f"{where} {self.name!r}: time_major=True is not supported; pass "
                              "(batch, timesteps, features) inputs")
        self.cell = cell
        cell._owner = self
        self._track_layer(cell)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.time_major = False
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.supports_masking = True
        self._states = None

    @property
    def _n_states(self):
        return len(self.cell.state_names)

    # -- calling -------------------------------------------------------------------------
    def __call__(self, inputs, initial_state=None, constants=None, **kwargs):
        if constants is not None:
            raise ConfigError(f"{type(self).__name__} {self.name!r}: `constants` are only for "
                              "custom cells, which modelkit does not run")
        if initial_state is not None:
            if isinstance(inputs, (list, tuple)):
                raise ConfigError(f"{type(self).__name__} {self.name!r}: pass the initial state "
                                  "either in `initial_state=` or as extra inputs, not both")
            inputs = [inputs] + flatten_structure(initial_state)
        if isinstance(inputs, (list, tuple)):
            inputs = flatten_structure(inputs)
            kinds = {is_symbolic(t) for t in inputs}
            if len(kinds) > 1:
                raise ConfigError(f"{type(self).__name__} {self.name!r}: the initial state must "
                                  "be symbolic when the input is (use Input tensors), and "
                                  "concrete when it is concrete")
            if len(inputs) == 1:
                inputs = inputs[0]
        return self._nest_states(super().__call__(inputs, **kwargs))

    def _nest_states(self, result, outputs=1):
        """[outputs..., states of every cell flat] -> the states nested per cell as Keras
        returns those of a stack of cells (`StackedRNNCells`'s state_size)."""
        if not (self.return_state and isinstance(self.cell, StackedRNNCells)):
            return result
        return list(result[:outputs]) + pack_structure(self.cell.state_size,
                                                       list(result[outputs:]))

    def _split_inputs(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return inputs[0], list(inputs[1:])
        return inputs, []

    def _check_input_compatibility(self, inputs):
        x, states = self._split_inputs(inputs)
        self._check_ranks(tuple(x.shape), [tuple(s.shape) for s in states])

    def _check_ranks(self, x_shape, state_shapes):
        where = f"{type(self).__name__} {self.name!r}"
        if len(x_shape) != 3:
            raise ShapeError(f"{where} expects input of rank 3 (batch, timesteps, features), "
                             f"got shape {x_shape}")
        if state_shapes and len(state_shapes) != self._n_states:
            raise ShapeError(f"{where} expects {self._n_states} initial state tensor(s) "
                             f"({', '.join(self.cell.state_names)}), got {len(state_shapes)}")
        for s, units in zip(state_shapes, self.cell.state_units):
            if len(s) != 2 or (s[-1] is not None and s[-1] != units):
                raise ShapeError(f"{where}: an initial state must have shape (batch, "
                                 f"{units}), got {s}")

    def build(self, input_shape):
        x_shape = tuple(input_shape[0]) if _is_shape_list(input_shape) else tuple(input_shape)
        states = [tuple(s) for s in input_shape[1:]] if _is_shape_list(input_shape) else []
        self._check_ranks(x_shape, states)
        if x_shape[-1] is None:
            raise ShapeError(f"{type(self).__name__} {self.name!r}: the feature dimension of "
                             f"the input must be known, got shape {x_shape}")
        self.cell._maybe_build((x_shape[0], x_shape[-1]))
        if self.stateful:
            if x_shape[0] is None:
                raise ConfigError(
                    f"{type(self).__name__} {self.name!r} is stateful, so it needs to know its "
                    "batch size: give the first layer batch_input_shape=(batch, timesteps, "
                    "features) (or Input(batch_shape=...))")
            self._batch_size = x_shape[0]
            self._states = [np.zeros((x_shape[0], u), self.cell.dtype)
                            for u in self.cell.state_units]
        self.built = True

    def _as_float(self, t):
        if t.dtype != np.dtype(self.cell.dtype):
            return F.cast(t, self.cell.dtype)
        return t

    def call(self, inputs, training=None, mask=None):
        x, states = self._split_inputs(inputs)
        self._check_ranks(tuple(x.shape), [tuple(s.shape) for s in states])
        where = f"{type(self).__name__} {self.name!r}"
        if x.shape[-1] != self.cell.input_dim:
            raise ShapeError(f"{where} was built for {self.cell.input_dim} input features, "
                             f"got input of shape {tuple(x.shape)}")
        if x.shape[1] == 0:
            raise ShapeError(f"{where}: the input has no timesteps (shape {tuple(x.shape)})")
        x = self._as_float(x)
        m = mask_array(mask, x, self)
        if states:
            states = [self._as_float(s if isinstance(s, Tensor) else Tensor(as_array(s)))
                      for s in states]
            for s in states:
                if s.shape[0] != x.shape[0]:
                    raise ShapeError(f"{where}: initial state of shape {tuple(s.shape)} does not "
                                     f"match the batch size {x.shape[0]} of the input")
        elif self.stateful:
            if x.shape[0] != self._batch_size:
                raise ShapeError(f"{where} is stateful with batch size {self._batch_size}, got a "
                                 f"batch of {x.shape[0]}; feed batches of exactly "
                                 f"{self._batch_size} samples")
            states = [Tensor(s) for s in self._states]
        seq, finals = self.cell.sequence(x, states or None, mask=m, training=training,
                                         go_backwards=self.go_backwards,
                                         zero_output_for_mask=self.zero_output_for_mask)
        if self.stateful:
            self._states = [np.array(s.value) for s in finals]
        if self.return_sequences:
            out = seq
        elif m is None:
            out = finals[self.cell.output_state]
        else:
            out = F.getitem(seq, (slice(None), -1))
        if self.return_state:
            return [out] + list(finals)
        return out

    def compute_output_shape(self, input_shape):
        x_shape = tuple(input_shape[0]) if _is_shape_list(input_shape) else tuple(input_shape)
        self._check_ranks(x_shape, [])
        batch, u = x_shape[0], self.cell.units
        out = (batch, x_shape[1], u) if self.return_sequences else (batch, u)
        if self.return_state:
            return [out] + [(batch, su) for su in self.cell.state_units]
        return out

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        out_mask = mask if self.return_sequences else None
        if self.return_state:
            return [out_mask] + [None] * self._n_states
        return out_mask

    # -- states --------------------------------------------------------------------------
    @property
    def states(self):
        if self._states is None:
            return [None] * self._n_states
        return list(self._states)

    def reset_states(self, states=None):
        """Zero the states of a stateful layer (or set them to `states`)."""
        where = f"{type(self).__name__} {self.name!r}"
        if not self.stateful:
            raise ConfigError(f"{where} is not stateful; only stateful layers keep states")
        if not self.built:
            return
        shapes = [(self._batch_size, u) for u in self.cell.state_units]
        if states is None:
            self._states = [np.zeros(shape, self.cell.dtype) for shape in shapes]
            return
        values = [np.asarray(as_array(s), dtype=self.cell.dtype) for s in to_list(states)]
        if len(values) != self._n_states:
            raise ShapeError(f"{where} has {self._n_states} state(s), reset_states got "
                             f"{len(values)}")
        for v, shape in zip(values, shapes):
            if v.shape != shape:
                raise ShapeError(f"{where}: a state must have shape {shape}, got {v.shape}")
        self._states = values

    def _saved_states(self):
        return None if self._states is None else [s.copy() for s in self._states]

    def _restore_states(self, saved):
        self._states = saved

    # -- config --------------------------------------------------------------------------
    def _sequence_config(self):
        config = super().get_config()
        config.update({"return_sequences": self.return_sequences,
                       "return_state": self.return_state, "go_backwards": self.go_backwards,
                       "stateful": self.stateful, "unroll": self.unroll,
                       "time_major": self.time_major})
        if self.zero_output_for_mask:
            config["zero_output_for_mask"] = True
        return config

    def get_config(self):
        config = self._sequence_config()
        config["cell"] = serialize(self.cell)
        return config


def _cell_property(name):
    return property(lambda self: getattr(self.cell, name),
                    doc=f"The cell's `{name}`.")


for _name in ("units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
              "recurrent_initializer", "bias_initializer", "unit_forget_bias",
              "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
              "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
              "recurrent_dropout", "implementation", "reset_after", "kernel",
              "recurrent_kernel", "bias", "state_size"):
    setattr(RNN, _name, _cell_property(_name))


class _CellLayer(RNN):
    """SimpleRNN / GRU / LSTM: the cell's config is flattened into the layer's (Keras 2)."""

    _keras1_renames = {"output_dim": "units"}

    def get_config(self):
        config = self._sequence_config()
        cell = self.cell
        config.update(cell._own_config())
        config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        config.update(cell._constraint_config())
        config.update(cell._tail_config())
        return config


def _split_layer_kwargs(kwargs):
    """The layer-level kwargs every cell needs too (dtype, trainable)."""
    return {"dtype": kwargs.get("dtype"), "trainable": kwargs.get("trainable", True)}


@register_layer
class SimpleRNN(_CellLayer):
    """Fully connected RNN whose output is fed back: h' = activation(x W + b + h R)."""

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, seed=None, **kwargs):
        kwargs.pop("implementation", None)
        cell = SimpleRNNCell(units, activation=activation, use_bias=use_bias,
                             kernel_initializer=kernel_initializer,
                             recurrent_initializer=recurrent_initializer,
                             bias_initializer=bias_initializer,
                             kernel_regularizer=kernel_regularizer,
                             recurrent_regularizer=recurrent_regularizer,
                             bias_regularizer=bias_regularizer,
                             kernel_constraint=kernel_constraint,
                             recurrent_constraint=recurrent_constraint,
                             bias_constraint=bias_constraint, dropout=dropout,
                             recurrent_dropout=recurrent_dropout, seed=seed,
                             name="simple_rnn_cell", **_split_layer_kwargs(kwargs))
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)


@register_layer
class GRU(_CellLayer):
    """Gated Recurrent Unit (Cho et al. 2014), Keras 2 flavour: gates z, r, h;
    `reset_after=True` (the default, cuDNN-compatible) or False (the original order)."""

    _keras1_renames = {"output_dim": "units"}

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, implementation=2, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 reset_after=True, seed=None, **kwargs):
        cell = GRUCell(units, activation=activation, recurrent_activation=recurrent_activation,
                       use_bias=use_bias, kernel_initializer=kernel_initializer,
                       recurrent_initializer=recurrent_initializer,
                       bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                       recurrent_regularizer=recurrent_regularizer,
                       bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                       recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                       dropout=dropout, recurrent_dropout=recurrent_dropout,
                       implementation=implementation, reset_after=reset_after, seed=seed,
                       name="gru_cell", **_split_layer_kwargs(kwargs))
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)


@register_layer
class LSTM(_CellLayer):
    """Long Short-Term Memory (Hochreiter 1997), Keras 2 flavour: gates i, f, c, o."""

    _keras1_renames = {"output_dim": "units", "forget_bias_init": "unit_forget_bias"}
    _keras1_convert = {"unit_forget_bias": lambda v: str(v).lower() in ("one", "ones")}

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, implementation=2, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 seed=None, **kwargs):
        cell = LSTMCell(units, activation=activation, recurrent_activation=recurrent_activation,
                        use_bias=use_bias, kernel_initializer=kernel_initializer,
                        recurrent_initializer=recurrent_initializer,
                        bias_initializer=bias_initializer, unit_forget_bias=unit_forget_bias,
                        kernel_regularizer=kernel_regularizer,
                        recurrent_regularizer=recurrent_regularizer,
                        bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                        recurrent_constraint=recurrent_constraint,
                        bias_constraint=bias_constraint, dropout=dropout,
                        recurrent_dropout=recurrent_dropout, implementation=implementation,
                        seed=seed, name="lstm_cell", **_split_layer_kwargs(kwargs))
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)


Recurrent = RNN         # Keras 1's name of the recurrent base class (keras.layers.recurrent)

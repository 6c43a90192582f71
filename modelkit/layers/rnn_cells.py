"""Recurrent cells: SimpleRNNCell, GRUCell, LSTMCell (Keras 2 classes, weights and configs).

A cell owns the weights of a recurrent layer (Keras layout: `kernel` (in, gates*u),
`recurrent_kernel` (u, gates*u), `bias`) and its per-cell settings (activations, dropout).
Unlike Keras, a cell here runs a *whole sequence* at once through one fused backend op
(`modelkit.backend.rnn_ops`); the layers in `recurrent.py` (RNN, SimpleRNN, GRU, LSTM) add
the sequence behaviour (masks, states, return_sequences, ...). `cell(x, states)` still runs
one step, as Keras cells do.

Variable names follow Keras 2: the cell's weights are `<layer>/<cell>/kernel`, e.g.
`lstm/lstm_cell/kernel` (the owning layer sets the prefix). Cells are not graph layers, so
they are not in the layer registry: `RNN` resolves a cell config by its class name (`CELLS`).
"""

import numpy as np

from .. import activations
from ..backend import functions as F
from ..backend import rnn_ops
from ..backend.tensor import Tensor
from ..engine.base_layer import Layer
from ..errors import ConfigError, ShapeError
from ._arguments import arguments
from ._kernel_bias import add_weight_for, option_keys, options_config, set_options
from .core import layer_rng

__all__ = ["SimpleRNNCell", "GRUCell", "LSTMCell", "StackedRNNCells"]

# the per-weight options, in Keras's config order: initializers, regularizers, constraints
_OPTIONS = option_keys("kernel", "recurrent", "bias")


def activation_name(layer, fn, what):
    """The name under which the fused op knows activation `fn` (ConfigError otherwise)."""
    try:
        name = activations.serialize(fn)
    except Exception:        # noqa: BLE001 - any failure means "not a known activation"
        name = getattr(fn, "__name__", repr(fn))
    if name not in rnn_ops.ACTIVATIONS:
        raise ConfigError(f"{type(layer).__name__} {layer.name!r}: {what} {name!r} cannot run "
                          f"inside the fused recurrent op; use one of "
                          f"{sorted(rnn_ops.ACTIVATIONS)}")
    return name


def set_recurrent_options(layer, dropout, recurrent_dropout, **options):
    """A recurrent layer's kernel/recurrent/bias options and its two dropout rates."""
    set_options(layer, **options)
    for what, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
        if not 0.0 <= float(rate) < 1.0:
            raise ConfigError(f"{type(layer).__name__} {layer.name!r}: {what} must be in "
                              f"[0, 1), got {rate}")
    layer.dropout, layer.recurrent_dropout = float(dropout), float(recurrent_dropout)


class _StepCall:
    """Keras's cell API over `sequence`: `cell(inputs, states)` runs one step."""

    def call(self, inputs, states, training=None):
        """One step (Keras cell API): inputs (batch, features) -> (output, [new states])."""
        x = F.expand_dims(inputs, 1)
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        seq, finals = self.sequence(x, states, training=training)
        return finals[self.output_state], finals

    def __call__(self, inputs, states=None, **kwargs):
        if states is None:
            raise ConfigError(f"{type(self).__name__} {self.name!r} is a cell: call it as "
                              "cell(inputs, states), or wrap it in RNN(cell)")
        if not isinstance(inputs, Tensor):
            inputs = Tensor(np.asarray(inputs, dtype=self.dtype))
        self._maybe_build(tuple(inputs.shape))
        return self.call(inputs, states, **kwargs)

    def get_initial_state(self, inputs=None, batch_size=None, dtype=None):
        batch = batch_size if batch_size is not None else inputs.shape[0]
        zeros = [np.zeros((batch, u), dtype or self.dtype) for u in self.state_units]
        return zeros if len(zeros) > 1 else zeros[0]


class _FusedCell(_StepCall, Layer):
    """What the three cells share: weights, dropout masks, config."""

    n_gates = 1
    has_recurrent_activation = True
    state_names = ("h",)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, implementation=2,
                 seed=None, **kwargs):
        kwargs.pop("enable_caching_device", None)       # tf-keras 2.x cell config key
        super().__init__(**kwargs)
        kind = type(self).__name__
        try:
            self.units = int(units)
        except (TypeError, ValueError):
            raise ConfigError(f"{kind} {self.name!r}: units must be a positive integer, got "
                              f"{units!r}") from None
        if self.units <= 0:
            raise ConfigError(f"{kind} {self.name!r}: units must be a positive integer, got "
                              f"{units!r}")
        self.activation = activations.get(activation)
        self._activation_name = activation_name(self, self.activation, "activation")
        if self.has_recurrent_activation:
            self.recurrent_activation = activations.get(recurrent_activation)
            self._recurrent_activation_name = activation_name(
                self, self.recurrent_activation, "recurrent_activation")
        self.use_bias = bool(use_bias)
        set_recurrent_options(
            self, kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
            dropout=dropout, recurrent_dropout=recurrent_dropout)
        implementation = int(implementation)
        if implementation not in (0, 1, 2):
            raise ConfigError(f"{kind} {self.name!r}: implementation must be 1 or 2, got "
                              f"{implementation}")
        # as tf.keras: 0 means 2; recurrent dropout forces per-gate masks (implementation 1)
        implementation = 2 if implementation == 0 else implementation
        self.implementation = 1 if self.recurrent_dropout else implementation
        self.seed = seed
        self._rng = layer_rng(seed)
        self._owner = None          # the RNN layer using this cell (weight-name prefix)
        self.kernel = self.recurrent_kernel = self.bias = None

    # -- weights -------------------------------------------------------------------------
    def _weight_scope(self):
        owner = self._owner
        return f"{owner._weight_scope()}/{self.name}" if owner is not None else self.name

    @property
    def state_units(self):
        return [self.units] * len(self.state_names)

    output_state = 0            # which final state is the output

    @property
    def input_dim(self):
        return self.kernel.shape[0]

    @property
    def state_size(self):
        return [self.units] * len(self.state_names) if len(self.state_names) > 1 else self.units

    @property
    def output_size(self):
        return self.units

    def _bias_shape(self):
        return (self.n_gates * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ShapeError(f"{type(self).__name__} {self.name!r}: the feature dimension of "
                             f"the input must be known, got shape {tuple(input_shape)}")
        width = self.n_gates * self.units
        self.kernel = add_weight_for(self, "kernel", (in_dim, width))
        self.recurrent_kernel = add_weight_for(self, "recurrent", (self.units, width),
                                               name="recurrent_kernel")
        self.bias = self.add_weight("bias", self._bias_shape(),
                                    initializer=self._bias_initializer(),
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None
        self.built = True

    # -- running -------------------------------------------------------------------------
    def _dropout_masks(self, batch, in_dim, dtype, training):
        """Keras masks, drawn once per sequence: 0 or 1/(1-rate)."""
        if not training:
            return None, None

        def draw(rate, shape):
            keep = self._rng.random(shape) >= rate
            return keep.astype(dtype) / np.asarray(1.0 - rate, dtype)

        idrop = rdrop = None
        if self.dropout:
            per_gate = self.implementation == 1 and self.n_gates > 1
            shape = (self.n_gates, batch, in_dim) if per_gate else (batch, in_dim)
            idrop = draw(self.dropout, shape)
        if self.recurrent_dropout:
            shape = (self.n_gates, batch, self.units) if self.n_gates > 1 else (batch, self.units)
            rdrop = draw(self.recurrent_dropout, shape)
        return idrop, rdrop

    def sequence(self, x, states=None, mask=None, training=None, go_backwards=False,
                 zero_output_for_mask=False):
        """Run the cell over x (batch, time, features): -> (outputs (B, T, u) in processing
        order, [final states])."""
        idrop, rdrop = self._dropout_masks(x.shape[0], x.shape[-1], x.dtype, training)
        return self._run(x, states, mask, idrop, rdrop, bool(go_backwards),
                         bool(zero_output_for_mask))

    # -- config --------------------------------------------------------------------------
    def _own_config(self):
        config = {"units": self.units, "activation": activations.serialize(self.activation)}
        if self.has_recurrent_activation:
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        config["use_bias"] = self.use_bias
        config.update(options_config(self, _OPTIONS[:3]))            # initializers
        config.update(self._extra_init_config())
        config.update(options_config(self, _OPTIONS[3:6]))           # regularizers
        return config

    def _constraint_config(self):
        config = options_config(self, _OPTIONS[6:])
        config.update({"dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout})
        return config

    def _extra_init_config(self):
        return {}

    def _tail_config(self):
        config = {"implementation": self.implementation}
        if self.seed is not None:
            config["seed"] = self.seed
        return config

    def get_config(self):
        config = super().get_config()
        config.update(self._own_config())
        config.update(self._constraint_config())
        config.update(self._tail_config())
        return config


class SimpleRNNCell(_FusedCell):
    """h' = activation(x W + b + h R)."""

    n_gates = 1
    has_recurrent_activation = False

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        kwargs.pop("implementation", None)
        super().__init__(**arguments(locals()))

    def _run(self, x, states, mask, idrop, rdrop, go_backwards, zero_output):
        h0 = states[0] if states else None
        seq, h = rnn_ops.simple_rnn_sequence(
            x, self.kernel, self.recurrent_kernel, self.bias, h0, mask, idrop, rdrop,
            activation=self._activation_name, go_backwards=go_backwards,
            zero_output_for_mask=zero_output)
        return seq, [h]

    def _tail_config(self):
        return {} if self.seed is None else {"seed": self.seed}


class GRUCell(_FusedCell):
    """Keras 2 GRU cell, gates z, r, h; `reset_after=True` (default) keeps a separate
    recurrent bias (bias shape (2, 3u)) and applies the reset gate after the matmul."""

    n_gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, reset_after=True,
                 implementation=2, seed=None, **kwargs):
        super().__init__(**arguments(locals(), drop=("reset_after",)))
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _run(self, x, states, mask, idrop, rdrop, go_backwards, zero_output):
        h0 = states[0] if states else None
        seq, h = rnn_ops.gru_sequence(
            x, self.kernel, self.recurrent_kernel, self.bias, h0, mask, idrop, rdrop,
            activation=self._activation_name,
            recurrent_activation=self._recurrent_activation_name, reset_after=self.reset_after,
            go_backwards=go_backwards, zero_output_for_mask=zero_output)
        return seq, [h]

    def _tail_config(self):
        return {"implementation": self.implementation, "reset_after": self.reset_after,
                **super()._tail_config()}


class LSTMCell(_FusedCell):
    """Keras 2 LSTM cell, gates i, f, c, o; `unit_forget_bias` starts the forget-gate bias
    at 1."""

    n_gates = 4
    state_names = ("h", "c")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, implementation=2, seed=None, **kwargs):
        super().__init__(**arguments(locals(), drop=("unit_forget_bias",)))
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, u = self.bias_initializer, self.units

        def init(shape, dtype=None, **kwargs):
            return np.concatenate([np.asarray(base((u,), dtype=dtype)),
                                   np.ones((u,), dtype=dtype or self.dtype),
                                   np.asarray(base((2 * u,), dtype=dtype))])
        return init

    def _extra_init_config(self):
        return {"unit_forget_bias": self.unit_forget_bias}

    def _run(self, x, states, mask, idrop, rdrop, go_backwards, zero_output):
        h0, c0 = (states[0], states[1]) if states else (None, None)
        seq, h, c = rnn_ops.lstm_sequence(
            x, self.kernel, self.recurrent_kernel, self.bias, h0, c0, mask, idrop, rdrop,
            activation=self._activation_name,
            recurrent_activation=self._recurrent_activation_name, go_backwards=go_backwards,
            zero_output_for_mask=zero_output)
        return seq, [h, c]


CELLS = {c.__name__: c for c in (SimpleRNNCell, GRUCell, LSTMCell)}


def deserialize_cell(config):
    """`{"class_name": "LSTMCell", "config": {...}}` -> a cell (ConfigError otherwise)."""
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in CELLS:
        raise ConfigError(f"RNN: cannot build the cell {name!r}; modelkit runs the built-in "
                          f"cells {sorted(CELLS)} (custom cells are not supported)")
    return CELLS[name].from_config(dict(config.get("config") or {}))


class StackedRNNCells(_StepCall, Layer):
    """Several cells run as one: per time step cell k's output is cell k+1's input.

    Stepping the stack is the same as running each cell over the whole sequence in turn (cell
    k+1 at step t needs only cell k's output at t and its own states), so each cell runs its
    own fused sequence op. A masked step keeps every cell's states and the stack's previous
    output, as in Keras. The states are every cell's states, cell by cell (Keras's order)."""

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        cells = [deserialize_cell(c) if isinstance(c, dict) else c for c in cells]
        if not cells:
            raise ConfigError(f"StackedRNNCells {self.name!r}: needs at least one cell")
        for c in cells:
            if not isinstance(c, _FusedCell):
                raise ConfigError(f"StackedRNNCells {self.name!r}: every cell must be a "
                                  f"SimpleRNNCell, GRUCell or LSTMCell, got {type(c).__name__}")
            c._owner = self
            self._track_layer(c)
        self.cells = cells
        self._owner = None          # the RNN layer using the stack (weight-name prefix)

    def _weight_scope(self):
        return f"{self._owner._weight_scope()}/{self.name}" if self._owner is not None \
            else self.name

    @property
    def state_names(self):
        return tuple(f"{c.name}_{s}" for c in self.cells for s in c.state_names)

    @property
    def state_units(self):
        return [c.units for c in self.cells for _ in c.state_names]

    @property
    def units(self):
        return self.cells[-1].units

    @property
    def output_state(self):
        """The last cell's h: its first state."""
        return len(self.state_names) - len(self.cells[-1].state_names)

    output_size = units

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def input_dim(self):
        return self.cells[0].kernel.shape[0]

    def build(self, input_shape):
        dim = input_shape[-1]
        for c in self.cells:
            c._maybe_build((input_shape[0], dim))
            dim = c.units
        self.built = True

    def sequence(self, x, states=None, mask=None, training=None, go_backwards=False,
                 zero_output_for_mask=False):
        """As `_FusedCell.sequence`, through every cell: -> (last cell's outputs, [states])."""
        finals, at = [], 0
        for i, c in enumerate(self.cells):
            n = len(c.state_names)
            own = list(states[at:at + n]) if states else None
            at += n
            # after the first cell the sequence is already in processing order
            m = mask if i == 0 or mask is None or not go_backwards else mask[:, ::-1]
            x, new = c.sequence(x, own, mask=m, training=training,
                                go_backwards=go_backwards and i == 0,
                                zero_output_for_mask=zero_output_for_mask)
            finals += list(new)
        return x, finals

    def get_config(self):
        config = super().get_config()
        config["cells"] = [{"class_name": type(c).__name__, "config": c.get_config()}
                           for c in self.cells]
        return config


CELLS["StackedRNNCells"] = StackedRNNCells

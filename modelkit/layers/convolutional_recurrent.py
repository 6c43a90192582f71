"""ConvLSTM1D / ConvLSTM2D / ConvLSTM3D: an LSTM whose input and recurrent transforms are
N-d convolutions (Keras 2; one implementation, `rank` 1, 2 or 3).

Input (batch, time, *spatial, channels), or (batch, time, channels, *spatial) with
`data_format='channels_first'`. Weights as Keras stores them: `kernel` (*kernel_size,
channels, 4 * filters), `recurrent_kernel` (*kernel_size, filters, 4 * filters), `bias`
(4 * filters), gates i, f, c, o; variable names `conv_lstm2d/kernel`. At each step

    z = conv(x_t, kernel, strides, padding, dilation) + bias + conv_same(h, recurrent_kernel)
    i, f, o = recurrent_activation(z_i, z_f, z_o); c = f * c + i * activation(z_c)
    h = o * activation(c)

The input convolution runs once over every step (one op); the recurrence is a loop of
differentiable backend ops. `dropout` / `recurrent_dropout` draw one mask per gate for the
whole sequence (on the input and on h, as Keras 2 does); `go_backwards` returns the sequence
in processing order; `stateful` carries h and c from batch to batch (`reset_states()`);
`layer(x, initial_state=[h, c])` (or `layer([x, h, c])`) starts from given states.

Masking (Keras 2's `K.rnn`): at a masked step h and c keep their previous values and the
output repeats the previous one. The mask is (batch, timesteps); a mask with more dims (a
`Masking` layer's, per position of the frame) skips a step only where its whole frame is
masked (Keras 2 tiled such a mask over the output instead, which is only defined for
(batch, timesteps)).
"""

import numpy as np

from .. import activations, regularizers
from ..backend import config as backend_config
from ..backend import functions as F
from ..backend.spatial_functions import conv
from ..backend import conv_ops
from ..backend.tensor import Tensor
from ..engine.base_layer import Layer, unique_name
from ..errors import ConfigError, ShapeError
from ._kernel_bias import add_weight_for, option_keys, options_config
from ._spatial import KERAS1_CONVERT, positive_tuple
from .core import layer_rng
from .recurrent import RNN
from .rnn_cells import set_recurrent_options
from .serialization import register_layer

__all__ = ["ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"]

_OPTIONS = option_keys("kernel", "recurrent", "bias")


class ConvLSTM(Layer):
    """Convolutional LSTM over a sequence of `rank`-d frames (Shi et al. 2015), Keras 2
    semantics."""

    _keras1_convert = KERAS1_CONVERT
    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation="tanh", recurrent_activation="hard_sigmoid",
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 time_major=False, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 zero_output_for_mask=False, **kwargs):
        options = {k: v for k, v in locals().items() if k in _OPTIONS}
        if kwargs.get("name") is None:            # Keras's name, not to_snake_case's
            kwargs["name"] = unique_name(f"conv_lstm{self.rank}d")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        where = self._where()
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) \
                or filters <= 0:
            raise ConfigError(f"{where}: filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = positive_tuple(self, kernel_size, self.rank, "kernel_size")
        self.strides = positive_tuple(self, strides, self.rank, "strides")
        self.dilation_rate = positive_tuple(self, dilation_rate, self.rank, "dilation_rate")
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ConfigError(f"{where}: padding must be 'valid' or 'same', got {padding!r}")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ConfigError(f"{where}: strides > 1 cannot be combined with dilation_rate > 1")
        self.data_format = backend_config.normalize_data_format(data_format)
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.unit_forget_bias = bool(unit_forget_bias)
        set_recurrent_options(self, dropout, recurrent_dropout, **options)
        if time_major:
            raise ConfigError(f"{where}: time_major=True is not supported")
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful = bool(go_backwards), bool(stateful)
        self.unroll, self.time_major = bool(unroll), False
        # zeros at masked steps of the returned sequence (Keras sets it inside Bidirectional)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.seed = seed
        self._rng = layer_rng(seed)
        self.kernel = self.recurrent_kernel = self.bias = None
        self._states = None
        self.supports_masking = True

    def _where(self):
        return f"{type(self).__name__} {self.name!r}"

    # -- shapes --------------------------------------------------------------------------
    def _split(self, shape):
        """(batch, time, spatial sizes, channels) of an input shape."""
        shape = tuple(shape)
        if len(shape) != self.rank + 3:
            raise ShapeError(f"{self._where()} expects input of rank {self.rank + 3} (batch, "
                             f"time, {self.rank} spatial axes, channels) ({self.data_format}), "
                             f"got shape {shape}")
        if self.data_format == "channels_first":
            return shape[0], shape[1], shape[3:], shape[2]
        return shape[0], shape[1], shape[2:-1], shape[-1]

    def _state_spatial(self, spatial):
        out = tuple(conv_ops.conv_output_length(n, k, self.padding, s, d)
                    for n, k, s, d in zip(spatial, self.kernel_size, self.strides,
                                          self.dilation_rate))
        if any(o is not None and o <= 0 for o in out):
            raise ShapeError(f"{self._where()}: input frames {tuple(spatial)} are "
                             f"smaller than the kernel {self.kernel_size}")
        return out

    def _assemble(self, batch, time, spatial):
        frame = (self.filters,) + spatial if self.data_format == "channels_first" else \
            spatial + (self.filters,)
        return (batch,) + ((time,) if time != "none" else ()) + frame

    def compute_output_shape(self, input_shape):
        batch, time, spatial, _ = self._split(self._sequence_shape(input_shape))
        out_sp = self._state_spatial(spatial)
        state = self._assemble(batch, "none", out_sp)
        out = self._assemble(batch, time, out_sp) if self.return_sequences else state
        return [out, state, state] if self.return_state else out

    # -- weights -------------------------------------------------------------------------
    def build(self, input_shape):
        input_shape = self._sequence_shape(input_shape)
        batch, _, spatial, channels = self._split(input_shape)
        if channels is None:
            raise ShapeError(f"{self._where()}: the channel dimension of the input "
                             f"must be known, got shape {tuple(input_shape)}")
        f4 = 4 * self.filters
        self.kernel = add_weight_for(self, "kernel", self.kernel_size + (channels, f4))
        self.recurrent_kernel = add_weight_for(self, "recurrent", self.kernel_size +
                                               (self.filters, f4), name="recurrent_kernel")
        if self.use_bias:
            init = self.bias_initializer
            if self.unit_forget_bias:
                base, n = self.bias_initializer, self.filters

                def init(shape, dtype=None, **kw):
                    return np.concatenate([np.asarray(base((n,), dtype=dtype)),
                                           np.ones((n,), dtype=dtype or self.dtype),
                                           np.asarray(base((2 * n,), dtype=dtype))])
            self.bias = self.add_weight("bias", (f4,), initializer=init,
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self._in_channels = int(channels)
        if self.stateful:
            if batch is None or None in spatial:
                raise ConfigError(f"{self._where()} is stateful, so it needs a fixed "
                                  "batch size and frame size: give batch_input_shape=(batch, "
                                  "time, *frame, channels)")
            self._batch_size = batch
            self._state_shape = (batch,) + self._state_spatial(spatial) + (self.filters,)
            self._states = [np.zeros(self._state_shape, self.dtype) for _ in range(2)]
        self.built = True

    # -- running -------------------------------------------------------------------------
    def _gate_masks(self, rate, shape, dtype, training):
        """Keras 2: one inverted-dropout mask per gate, shared by every step."""
        if not training or not rate:
            return None
        keep = 1.0 - rate
        return [((self._rng.random(shape) < keep) / keep).astype(dtype) for _ in range(4)]

    def _gate_conv(self, x, kernel, masks, frames=None, **kwargs):
        """conv(x, kernel) for the four gates at once, or gate by gate on masked inputs;
        `frames` reshapes x (after masking) to a batch of frames first."""
        def run(inp, k):
            return conv(inp if frames is None else F.reshape(inp, frames), k, **kwargs)
        if masks is None:
            return run(x, kernel)
        n = self.filters
        return F.concatenate([run(F.multiply(x, m), F.getitem(kernel, (Ellipsis,
                                                                      slice(g * n, (g + 1) * n))))
                              for g, m in enumerate(masks)], axis=-1)

    def __call__(self, inputs, initial_state=None, **kwargs):
        """`layer(x, initial_state=[h, c])` is `layer([x, h, c])`, as for the RNN layers."""
        if initial_state is not None:
            if isinstance(inputs, (list, tuple)):
                raise ConfigError(f"{self._where()}: pass the initial state either "
                                  "in `initial_state=` or as extra inputs, not both")
            inputs = [inputs] + list(initial_state)
        if isinstance(inputs, (list, tuple)) and len(inputs) not in (1, 3):
            raise ShapeError(f"{self._where()} expects the sequence, or the sequence "
                             f"and two initial states (h, c); got {len(inputs)} inputs")
        return super().__call__(inputs, **kwargs)

    @staticmethod
    def _sequence_shape(input_shape):
        if isinstance(input_shape, list) and input_shape and \
                isinstance(input_shape[0], (tuple, list)):
            return tuple(input_shape[0])
        return tuple(input_shape)

    def _frame_state(self, state, dt):
        """An initial state in the layer's data format -> channels-last."""
        state = state if isinstance(state, Tensor) else Tensor(np.asarray(state))
        state = F.cast(state, dt) if state.dtype != dt else state
        return F.transpose(state, (0,) + tuple(range(2, self.rank + 2)) + (1,)) \
            if self.data_format == "channels_first" else state

    def call(self, inputs, training=None, mask=None):
        states = None
        if isinstance(inputs, (list, tuple)):
            inputs, states = inputs[0], list(inputs[1:]) or None
        x = inputs if np.issubdtype(inputs.dtype, np.floating) else F.cast(inputs, self.dtype)
        batch, steps, spatial, channels = self._split(x.shape)
        if channels != self._in_channels:
            raise ShapeError(f"{self._where()} was built for {self._in_channels} "
                             f"channels, got input of shape {tuple(x.shape)}")
        if steps == 0:
            raise ShapeError(f"{self._where()}: the input has no timesteps")
        keep = self._step_mask(mask, batch, steps)
        if self.data_format == "channels_first":
            x = F.transpose(x, (0, 1) + tuple(range(3, self.rank + 3)) + (2,))
        if self.go_backwards:
            x = F.reverse(x, 1)
            keep = None if keep is None else keep[:, ::-1]
        dt = x.dtype
        frame = (batch,) + tuple(spatial) + (channels,)
        in_masks = self._gate_masks(self.dropout, frame, dt, training)
        if in_masks is not None:
            in_masks = [m[:, None] for m in in_masks]          # the same mask at every step
        xz = self._gate_conv(x, self.kernel, in_masks, frames=(batch * steps,) + frame[1:],
                             strides=self.strides, dilation_rate=self.dilation_rate,
                             padding=self.padding, data_format="channels_last")
        if self.use_bias:
            xz = F.add(xz, self.bias)
        out_sp = tuple(xz.shape[1:1 + self.rank])
        xz = F.reshape(xz, (batch, steps) + out_sp + (4 * self.filters,))
        state_shape = (batch,) + out_sp + (self.filters,)
        if states is not None:
            h, c = (self._frame_state(st, dt) for st in states)
            if tuple(h.shape) != state_shape or tuple(c.shape) != state_shape:
                raise ShapeError(f"{self._where()}: the initial states must have "
                                 f"shape {state_shape} (channels last), got "
                                 f"{tuple(h.shape)} and {tuple(c.shape)}")
        elif self.stateful:
            if batch != self._batch_size:
                raise ShapeError(f"{self._where()} is stateful with batch size "
                                 f"{self._batch_size}, got a batch of {batch}")
            h, c = (Tensor(s.astype(dt)) for s in self._states)
        else:
            h = c = Tensor(np.zeros(state_shape, dt))
        rec_masks = self._gate_masks(self.recurrent_dropout, state_shape, dt, training)
        n = self.filters
        outputs = []
        for t in range(steps):
            z = F.add(F.getitem(xz, (slice(None), t)),
                      self._gate_conv(h, self.recurrent_kernel, rec_masks, padding="same",
                                      data_format="channels_last"))
            gate = [F.getitem(z, (Ellipsis, slice(g * n, (g + 1) * n))) for g in range(4)]
            i, f, o = (self.recurrent_activation(gate[g]) for g in (0, 1, 3))
            c_new = F.add(F.multiply(f, c), F.multiply(i, self.activation(gate[2])))
            h_new = F.multiply(o, self.activation(c_new))
            if keep is None:
                h, c = h_new, c_new
            else:                          # a masked step carries h and c (and the output)
                step = keep[:, t].reshape((-1,) + (1,) * (self.rank + 1))
                h, c = F.where(step, h_new, h), F.where(step, c_new, c)
                if self.zero_output_for_mask:
                    outputs.append(F.where(step, h, np.zeros((), dt)))
                    continue
            outputs.append(h)
        if self.stateful:
            self._states = [np.array(h.value), np.array(c.value)]
        out = F.stack(outputs, axis=1) if self.return_sequences else h
        result = [out, h, c] if self.return_state else [out]
        if self.data_format == "channels_first":      # channels back after time / batch
            n = self.rank
            result = [F.transpose(r, (0, 1, n + 2) + tuple(range(2, n + 2)) if r.ndim == n + 3
                                  else (0, n + 1) + tuple(range(1, n + 1))) for r in result]
        return result if self.return_state else result[0]

    def _step_mask(self, mask, batch, steps):
        """The (batch, timesteps) bool array of the steps to run, or None."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        if mask is None:
            return None
        m = np.asarray(mask.value if isinstance(mask, Tensor) else mask).astype(bool)
        if m.ndim < 2 or m.shape[:2] != (batch, steps):
            raise ShapeError(f"{self._where()}: the mask has shape {m.shape}, "
                             f"expected (batch, timesteps) = {(batch, steps)} (or more dims "
                             "after those)")
        return m.reshape(batch, steps, -1).any(axis=2)

    _n_states = 2
    compute_mask = RNN.compute_mask

    # -- states --------------------------------------------------------------------------
    @property
    def states(self):
        return [None, None] if self._states is None else list(self._states)

    def reset_states(self, states=None):
        if not self.stateful:
            raise ConfigError(f"{self._where()} is not stateful; only stateful "
                              "layers keep states")
        if not self.built and states is None:
            return
        if states is None:
            self._states = [np.zeros(self._state_shape, self.dtype) for _ in range(2)]
            return
        values = [np.asarray(s, dtype=self.dtype) for s in states]
        if len(values) != 2 or any(v.shape != self._state_shape for v in values):
            raise ShapeError(f"{self._where()}: reset_states needs two arrays (h, c) "
                             f"of shape {self._state_shape}, got "
                             f"{[v.shape for v in values]}")
        self._states = values

    def _saved_states(self):
        return None if self._states is None else [s.copy() for s in self._states]

    def _restore_states(self, saved):
        self._states = saved

    # -- config --------------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update({
            "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards, "stateful": self.stateful,
            "unroll": self.unroll, "time_major": self.time_major,
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias})
        opts = options_config(self, _OPTIONS)
        config.update({k: opts[k] for k in ("kernel_initializer", "recurrent_initializer",
                                            "bias_initializer")})
        config["unit_forget_bias"] = self.unit_forget_bias
        config.update({k: opts[k] for k in ("kernel_regularizer", "recurrent_regularizer",
                                            "bias_regularizer")})
        config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        config.update({k: opts[k] for k in ("kernel_constraint", "recurrent_constraint",
                                            "bias_constraint")})
        config.update({"dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout})
        if self.seed is not None:
            config["seed"] = self.seed
        if self.zero_output_for_mask:
            config["zero_output_for_mask"] = True
        return config


@register_layer
class ConvLSTM1D(ConvLSTM):
    """Convolutional LSTM over a sequence of 1D frames (batch, time, steps, channels)."""
    rank = 1


@register_layer
class ConvLSTM2D(ConvLSTM):
    """Convolutional LSTM over a sequence of images (batch, time, rows, cols, channels)."""
    rank = 2


@register_layer
class ConvLSTM3D(ConvLSTM):
    """Convolutional LSTM over a sequence of volumes (batch, time, d1, d2, d3, channels)."""
    rank = 3

"""Fused recurrent sequence ops: a whole SimpleRNN / GRU / LSTM sequence in ONE backend op.

Each op runs the full sequence in its forward function and backpropagates through time
inside its vector-Jacobian product, so the tape records one entry per sequence instead of
dozens per timestep:

* the input projection of all timesteps is one batch of per-gate GEMMs written
  gate-major ((time, gate, batch, units), every gate block contiguous), the GEMM with the
  recurrent kernel of each step too (as fast as one (batch, units) @ (units, gates*units)
  product), so each step's adds and activations run on contiguous blocks; the gate
  activations stay in that buffer for the backward pass;
* sigmoid gates: their pre-activations are halved through the weights (a power-of-two
  scale: bit for bit), so sigmoid(z) = 0.5 * tanh(z / 2) + 0.5 needs no multiply of its
  own and an LSTM step (tanh activation) takes all four gates' tanh in one call;
* the backward pass does one GEMM per step (two for GRU `reset_after=False`) and the weight
  and input gradients of all timesteps at the end as single GEMMs;
* the large per-call arrays come from a buffer pool that hands an array out again only
  once nothing refers to it (`clear_buffer_pool()` releases them);
* on AVX-512 CPUs, a tanh or sigmoid cell with sigmoid or hard sigmoid gates (masked or
  not, with recurrent dropout or not) runs its steps in `_native_rnn.c` (steps.fused_acts,
  fused_steps): each step's recurrent GEMM and gate arithmetic as one C pass over blocks of
  batch rows;
* two cores, used without splitting the sequential chain: the per-step GEMMs run on one
  BLAS thread (`backend/blas.py`), while a worker thread projects later timesteps
  ahead of the forward recurrence and takes the backward's all-timestep GEMMs chunk by
  chunk of finished timesteps (chunk sums in a fixed order: the numbers never depend on
  timing; MODELKIT_NUM_THREADS=1 keeps everything on the calling thread).

Numerics are Keras 2's (tf.keras) cell equations, weights in Keras's layout:

    LSTM  kernel (in, 4u) gates i, f, c, o; recurrent_kernel (u, 4u); bias (4u,)
          i, f, o = ra(z_i), ra(z_f), ra(z_o); c' = f*c + i*a(z_c); h' = o*a(c')
    GRU   kernel (in, 3u) gates z, r, h; recurrent_kernel (u, 3u)
          reset_after=True:  bias (2, 3u) = [input bias, recurrent bias]
              hh = a(x_h + r * (h R_h + b_rh))
          reset_after=False: bias (3u,)
              hh = a(x_h + (r * h) R_h)
          h' = z*h + (1-z)*hh
    SimpleRNN  h' = a(x W + b + h R)

Masking (Keras 2 `K.rnn`): at a masked step the states are carried unchanged and the output
repeats the previous step's output (zeros before the first unmasked step), or is zero when
`zero_output_for_mask` (what Bidirectional forces). `go_backwards` processes the sequence
reversed and returns the outputs in processing order, as Keras does.

Dropout masks are inputs (made by the layer, as Keras makes them once per sequence):
`input_dropout` is None, (batch, in) (one mask for all gates: Keras `implementation=2`) or
(gates, batch, in) (one per gate: `implementation=1`); `recurrent_dropout` is None,
(batch, units) or (gates, batch, units). Gate order of per-gate masks is Keras's.

Activations are fixed per call and passed by name (`ACTIVATIONS` lists them).
"""

from ..rnn_activations import ACTIVATIONS  # noqa: F401  (the activation names the ops take)
from .gru import gru_sequence  # noqa: F401
from .lstm import lstm_sequence  # noqa: F401
from .simple_rnn import simple_rnn_sequence  # noqa: F401
from .steps import _POOL


def clear_buffer_pool():
    """Release the arrays the fused recurrent ops keep for reuse."""
    _POOL.clear()

"""Every gate-order and layout conversion between Keras weights and ONNX, in one place.

Pure numpy; tested on its own in tests/converters/test_onnx_export_layout.py.

Keras (modelkit) layouts                          ONNX layouts
------------------------------------------------  -----------------------------------------------
Dense kernel (in, out)                            MatMul B (in, out)            -> unchanged
ConvND kernel (k1..kn, in/groups, out)            Conv W (out, in/groups, k1..kn)
ConvNDTranspose kernel (k1..kn, out, in)          ConvTranspose W (in, out, k1..kn)
DepthwiseConv2D kernel (kh, kw, in, mult)         Conv W (in*mult, 1, kh, kw), group=in
                                                   (output channel c*mult + m, as Keras)
SimpleRNN kernel (in, u), rec (u, u), bias (u,)   RNN W (1, u, in), R (1, u, u), B (1, 2u)
LSTM kernel (in, 4u) gates i,f,c,o                LSTM W (1, 4u, in) gates i,o,f,c
     rec (u, 4u), bias (4u,)                           R (1, 4u, u), B (1, 8u) = [Wb, Rb]
GRU kernel (in, 3u) gates z,r,h                   GRU W (1, 3u, in) gates z,r,h (same order)
    rec (u, 3u)                                       R (1, 3u, u)
    reset_after=True:  bias (2, 3u) = [input, recurrent] -> Wb = bias[0], Rb = bias[1],
                       linear_before_reset=1 (Keras: r * (h R + b_r), as ONNX's form)
    reset_after=False: bias (3u,)  -> Wb = bias, Rb = 0, linear_before_reset=0
                       (Keras: (r * h) R, which is ONNX's default form)

Data formats: channels_last tensors (N, d1..dn, C) go to ONNX's channels-first ops through
`to_channels_first_perm(rank)` and come back with `to_channels_last_perm(rank)`.
"""

from __future__ import annotations

import numpy as np

KERAS_LSTM_GATES = "ifco"
ONNX_LSTM_GATES = "iofc"
KERAS_GRU_GATES = "zrh"
ONNX_GRU_GATES = "zrh"


def reorder_gates(array, src, dst, axis=-1):
    """Reorder equal gate blocks of `array` along `axis` from order `src` to order `dst`."""
    blocks = np.split(np.asarray(array), len(src), axis=axis)
    by_name = dict(zip(src, blocks))
    return np.concatenate([by_name[g] for g in dst], axis=axis)


# -- dense / recurrent ----------------------------------------------------------------------

def keras_kernel_to_onnx_w(kernel, src=None, dst=None):
    """Keras (in, gates*u) kernel -> ONNX (1, gates*u, in), gate blocks reordered if asked."""
    k = np.asarray(kernel)
    if src is not None:
        k = reorder_gates(k, src, dst, axis=-1)
    return np.ascontiguousarray(k.T)[None]


def simple_rnn_weights(kernel, recurrent_kernel, bias=None):
    """-> (W, R, B) for ONNX RNN (single direction)."""
    units = kernel.shape[1]
    W = keras_kernel_to_onnx_w(kernel)
    R = keras_kernel_to_onnx_w(recurrent_kernel)
    wb = np.zeros(units, kernel.dtype) if bias is None else np.asarray(bias)
    B = np.concatenate([wb, np.zeros(units, kernel.dtype)])[None]
    return W, R, B


def lstm_weights(kernel, recurrent_kernel, bias=None):
    """-> (W, R, B) for ONNX LSTM: gates i,f,c,o (Keras) -> i,o,f,c (ONNX)."""
    units = kernel.shape[1] // 4
    W = keras_kernel_to_onnx_w(kernel, KERAS_LSTM_GATES, ONNX_LSTM_GATES)
    R = keras_kernel_to_onnx_w(recurrent_kernel, KERAS_LSTM_GATES, ONNX_LSTM_GATES)
    if bias is None:
        wb = np.zeros(4 * units, kernel.dtype)
    else:
        wb = reorder_gates(bias, KERAS_LSTM_GATES, ONNX_LSTM_GATES)
    B = np.concatenate([wb, np.zeros(4 * units, kernel.dtype)])[None]
    return W, R, B


def gru_weights(kernel, recurrent_kernel, bias=None, reset_after=True):
    """-> (W, R, B, linear_before_reset) for ONNX GRU (gate order z,r,h on both sides)."""
    units = kernel.shape[1] // 3
    W = keras_kernel_to_onnx_w(kernel)
    R = keras_kernel_to_onnx_w(recurrent_kernel)
    zeros = np.zeros(3 * units, kernel.dtype)
    if bias is None:
        wb, rb = zeros, zeros
    elif reset_after:
        bias = np.asarray(bias)
        if bias.ndim == 2:
            wb, rb = bias[0], bias[1]
        else:   # tolerate a flat (6u,) bias
            wb, rb = bias[:3 * units], bias[3 * units:]
    else:
        wb, rb = np.asarray(bias).reshape(-1), zeros
    B = np.concatenate([wb, rb])[None]
    return W, R, B, int(bool(reset_after))


def stack_directions(*arrays):
    """Concatenate per-direction (1, ...) arrays into (num_directions, ...)."""
    return np.concatenate(arrays, axis=0)


# -- convolution ----------------------------------------------------------------------------

def conv_kernel_to_onnx(kernel):
    """Keras (k1..kn, in/groups, out) -> ONNX Conv W (out, in/groups, k1..kn)."""
    k = np.asarray(kernel)
    n = k.ndim - 2
    return np.ascontiguousarray(np.transpose(k, (n + 1, n) + tuple(range(n))))


def conv_transpose_kernel_to_onnx(kernel):
    """Keras (k1..kn, out, in) -> ONNX ConvTranspose W (in, out, k1..kn)."""
    k = np.asarray(kernel)
    n = k.ndim - 2
    return np.ascontiguousarray(np.transpose(k, (n + 1, n) + tuple(range(n))))


def depthwise_kernel_to_onnx(kernel):
    """Keras (k1..kn, in, mult) -> ONNX Conv W (in*mult, 1, k1..kn) for group=in.

    Output channel c*mult + m is input channel c times multiplier m, as in Keras.
    """
    k = np.asarray(kernel)
    n = k.ndim - 2
    cin, mult = k.shape[-2], k.shape[-1]
    k = k.reshape(k.shape[:n] + (cin * mult,))
    return np.ascontiguousarray(np.transpose(k, (n,) + tuple(range(n))))[:, None]


def to_channels_first_perm(rank):
    """(N, d1..dn, C) -> (N, C, d1..dn)."""
    return [0, rank - 1] + list(range(1, rank - 1))


def to_channels_last_perm(rank):
    """(N, C, d1..dn) -> (N, d1..dn, C)."""
    return [0] + list(range(2, rank)) + [1]


def keras_same_pads(size, kernel, stride, dilation=1):
    """TF/Keras 'same' padding (before, after) for a known input length: extra at the end."""
    k = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def conv_transpose_pads(kernel, stride, dilation, padding, output_padding=None):
    """Keras Conv*Transpose geometry -> ONNX (pad_begin, pad_end, output_padding) for one dim.

    Keras's output length (`deconv_output_length`) is, with dilated kernel k:
      output_padding None: valid -> n*s + max(k - s, 0);  same -> n*s
      output_padding p:    (n-1)*s + k - 2*pad + p, pad = k//2 (same) or 0 (valid)
    and TF places the padding as the matching forward conv would (pad_before = total//2).
    ONNX gives (n-1)*s + k + output_padding - begin - end, so with
    extra = length - ((n-1)*s + k): total = -extra, begin = total//2, end = total - begin,
    or, when extra > 0, no pads and output_padding = extra. Independent of n.
    """
    k = (kernel - 1) * dilation + 1
    if output_padding is None:
        extra = max(stride - k, 0) if padding == "valid" else stride - k
    else:
        pad = k // 2 if padding == "same" else 0
        extra = output_padding - 2 * pad
    if extra >= 0:
        return 0, 0, extra
    total = -extra
    return total // 2, total - total // 2, 0


# -- import: ONNX -> Keras (the inverses of the functions above) ------------------------------

def onnx_conv_kernel_to_keras(w):
    """ONNX Conv W (out, in/groups, k1..kn) -> Keras (k1..kn, in/groups, out)."""
    w = np.asarray(w)
    n = w.ndim - 2
    return np.ascontiguousarray(np.transpose(w, tuple(range(2, n + 2)) + (1, 0)))


def onnx_depthwise_kernel_to_keras(w, in_channels):
    """ONNX Conv W (in*mult, 1, k1..kn) with group=in -> Keras (k1..kn, in, mult)."""
    w = np.asarray(w)
    n = w.ndim - 2
    mult = w.shape[0] // in_channels
    k = np.transpose(w[:, 0], tuple(range(1, n + 1)) + (0,))      # (k..., in*mult)
    return np.ascontiguousarray(k.reshape(k.shape[:n] + (in_channels, mult)))


def channels_first_rows_to_channels_last(kernel, spatial, channels):
    """Rows of a Dense kernel that reads a flattened (C, *spatial) tensor, reordered for a
    flattened (*spatial, C) tensor (the Dense after a Flatten of a channels_last trunk)."""
    kernel = np.asarray(kernel)
    rows = kernel.reshape((channels,) + tuple(spatial) + kernel.shape[1:])
    n = len(spatial)
    rows = np.transpose(rows, tuple(range(1, n + 1)) + (0,) + tuple(range(n + 1, rows.ndim)))
    return np.ascontiguousarray(rows.reshape(kernel.shape))


def onnx_w_to_keras_kernel(w, src=None, dst=None):
    """ONNX (gates*u, in) (one direction) -> Keras (in, gates*u), gate blocks reordered."""
    k = np.ascontiguousarray(np.asarray(w).T)
    return reorder_gates(k, src, dst, axis=-1) if src is not None else k


def keras_rnn_weights_from_onnx(op_type, W, R, B=None, linear_before_reset=0):
    """One direction of ONNX LSTM/GRU/RNN weights -> Keras [kernel, recurrent_kernel, bias].

    W (G*u, in), R (G*u, u), B (2*G*u,) = [Wb, Rb] or None.
    LSTM: gates i,o,f,c -> i,f,c,o; bias Wb + Rb.
    GRU (gates z,r,h on both sides): linear_before_reset=1 -> reset_after=True with bias
    (2, 3u) = [Wb, Rb]; linear_before_reset=0 -> reset_after=False with bias Wb + Rb, which is
    exact only when Rb's h block is zero (ValueError otherwise).
    RNN: bias Wb + Rb."""
    W, R = np.asarray(W), np.asarray(R)
    units = R.shape[-1]
    gates = W.shape[0] // units
    zeros = np.zeros(2 * gates * units, W.dtype)
    B = zeros if B is None else np.asarray(B).reshape(-1)
    wb, rb = B[:gates * units], B[gates * units:]
    if op_type == "LSTM":
        return [onnx_w_to_keras_kernel(W, ONNX_LSTM_GATES, KERAS_LSTM_GATES),
                onnx_w_to_keras_kernel(R, ONNX_LSTM_GATES, KERAS_LSTM_GATES),
                reorder_gates(wb + rb, ONNX_LSTM_GATES, KERAS_LSTM_GATES)]
    if op_type == "GRU":
        kernel, rec = onnx_w_to_keras_kernel(W), onnx_w_to_keras_kernel(R)
        if linear_before_reset:
            return [kernel, rec, np.stack([wb, rb])]
        if np.any(rb[2 * units:]):
            raise ValueError("GRU with linear_before_reset=0 and a non-zero recurrent "
                             "bias for the h gate has no Keras form")
        return [kernel, rec, wb + rb]
    return [onnx_w_to_keras_kernel(W), onnx_w_to_keras_kernel(R), wb + rb]

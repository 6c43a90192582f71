"""The gate-order and layout conversions of converters/onnx/layout.py, checked on their own:
one step of the ONNX equations with converted weights equals one step of Keras's."""

import numpy as np
import pytest

from modelkit.converters.onnx import layout

RNG = np.random.default_rng(5)


def nz(*shape):
    return (RNG.uniform(0.2, 1.0, size=shape) * RNG.choice([-1.0, 1.0], size=shape))


def sig(x):
    return 1 / (1 + np.exp(-x))


def test_reorder_gates_moves_whole_blocks():
    a = np.repeat(np.arange(4), 2)[None]          # blocks i f c o = 0 1 2 3
    out = layout.reorder_gates(a, "ifco", "iofc")
    assert out.tolist() == [[0, 0, 3, 3, 1, 1, 2, 2]]


def test_lstm_weights_one_step():
    n_in, u = 3, 2
    k, r, b = nz(n_in, 4 * u), nz(u, 4 * u), nz(4 * u)
    x, h, c = nz(1, n_in), nz(1, u), nz(1, u)
    # Keras: gates i, f, c, o
    i, f, g, o = np.split(x @ k + h @ r + b, 4, axis=1)
    c_k = sig(f) * c + sig(i) * np.tanh(g)
    h_k = sig(o) * np.tanh(c_k)
    # ONNX: gates i, o, f, c; W (1, 4u, in), R (1, 4u, u), B (1, 8u) = [Wb, Rb]
    W, R, B = layout.lstm_weights(k, r, b)
    assert W.shape == (1, 4 * u, n_in) and R.shape == (1, 4 * u, u) and B.shape == (1, 8 * u)
    z = x @ W[0].T + h @ R[0].T + B[0, :4 * u] + B[0, 4 * u:]
    i, o, f, g = np.split(z, 4, axis=1)
    c_o = sig(f) * c + sig(i) * np.tanh(g)
    h_o = sig(o) * np.tanh(c_o)
    np.testing.assert_allclose(c_o, c_k)
    np.testing.assert_allclose(h_o, h_k)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_weights_one_step(reset_after):
    n_in, u = 3, 2
    k, r = nz(n_in, 3 * u), nz(u, 3 * u)
    b = nz(2, 3 * u) if reset_after else nz(3 * u)
    x, h = nz(1, n_in), nz(1, u)
    # Keras
    bi = b[0] if reset_after else b
    xz, xr, xh = np.split(x @ k + bi, 3, axis=1)
    if reset_after:
        rz, rr, rh = np.split(h @ r + b[1], 3, axis=1)
        z, rg = sig(xz + rz), sig(xr + rr)
        hh = np.tanh(xh + rg * rh)
    else:
        z, rg = sig(xz + h @ r[:, :u]), sig(xr + h @ r[:, u:2 * u])
        hh = np.tanh(xh + (rg * h) @ r[:, 2 * u:])
    h_k = z * h + (1 - z) * hh
    # ONNX GRU equations
    W, R, B, lbr = layout.gru_weights(k, r, b, reset_after)
    assert lbr == int(reset_after)
    Wz, Wr, Wh = np.split(W[0], 3)
    Rz, Rr, Rh = np.split(R[0], 3)
    Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = np.split(B[0], 6)
    if not reset_after:
        assert not np.any(B[0, 3 * u:])
    zt = sig(x @ Wz.T + h @ Rz.T + Wbz + Rbz)
    rt = sig(x @ Wr.T + h @ Rr.T + Wbr + Rbr)
    if lbr:
        ht = np.tanh(x @ Wh.T + rt * (h @ Rh.T + Rbh) + Wbh)
    else:
        ht = np.tanh(x @ Wh.T + (rt * h) @ Rh.T + Rbh + Wbh)
    h_o = (1 - zt) * ht + zt * h
    np.testing.assert_allclose(h_o, h_k)


def test_simple_rnn_weights():
    k, r, b = nz(3, 2), nz(2, 2), nz(2)
    W, R, B = layout.simple_rnn_weights(k, r, b)
    x, h = nz(1, 3), nz(1, 2)
    np.testing.assert_allclose(x @ W[0].T + h @ R[0].T + B[0, :2] + B[0, 2:], x @ k + h @ r + b)


def test_conv_kernel_to_oihw():
    k = nz(3, 2, 4, 5)
    W = layout.conv_kernel_to_onnx(k)
    assert W.shape == (5, 4, 3, 2)
    assert W[1, 2, 0, 1] == k[0, 1, 2, 1]
    assert layout.conv_kernel_to_onnx(nz(3, 4, 5)).shape == (5, 4, 3)


def test_conv_transpose_kernel():
    k = nz(3, 2, 4, 5)          # (kh, kw, out, in)
    W = layout.conv_transpose_kernel_to_onnx(k)
    assert W.shape == (5, 4, 3, 2)
    assert W[3, 1, 2, 0] == k[2, 0, 1, 3]


def test_depthwise_kernel_channel_order():
    k = nz(2, 2, 3, 2)          # (kh, kw, in, mult)
    W = layout.depthwise_kernel_to_onnx(k)
    assert W.shape == (6, 1, 2, 2)
    for c in range(3):
        for m in range(2):
            np.testing.assert_array_equal(W[c * 2 + m, 0], k[:, :, c, m])


def test_channel_perms_are_inverse():
    for rank in (3, 4, 5):
        p, q = layout.to_channels_first_perm(rank), layout.to_channels_last_perm(rank)
        assert [p[q[i]] for i in range(rank)] == list(range(rank))
    assert layout.to_channels_first_perm(4) == [0, 3, 1, 2]


@pytest.mark.parametrize("n,k,s,d,want", [(5, 3, 2, 1, (1, 1)), (6, 3, 2, 1, (0, 1)),
                                          (7, 2, 1, 1, (0, 1)), (5, 3, 1, 2, (2, 2)),
                                          (4, 4, 1, 1, (1, 2))])
def test_keras_same_pads_extra_at_end(n, k, s, d, want):
    assert layout.keras_same_pads(n, k, s, d) == want


@pytest.mark.parametrize("k,s,pad,op,want", [
    (3, 2, "valid", None, (0, 0, 0)),      # length (n-1)*2 + 3
    (3, 2, "same", None, (0, 1, 0)),       # length 2n: total pad 1, at the end
    (2, 3, "valid", None, (0, 0, 1)),      # kernel < stride: n*s, extra zeros at the end
    (3, 3, "same", None, (0, 0, 0)),
    (3, 2, "same", 1, (0, 1, 0)),          # pad 1 each side minus output_padding 1
    (3, 2, "same", 0, (1, 1, 0)),
])
def test_conv_transpose_pads(k, s, pad, op, want):
    assert layout.conv_transpose_pads(k, s, 1, pad, op) == want

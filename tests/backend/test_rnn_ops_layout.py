"""The fused recurrent ops' gate-major forward (modelkit/backend/rnn_ops/): the gate-major
input projection equals the plain one, the sigmoid gates' halving folded into the weights
gives the plain sigmoid's numbers bit for bit, and float32 LSTM/GRU sequences at several
longer shapes, with and without the worker thread, match the step-by-step numpy reference
(values) and the float64 op (gradients; those are finite-difference checked in
test_rnn_ops_gradients.py)."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend import GradientTape, Variable, parallel, rnn_activations, rnn_ops
from modelkit.backend.rnn_ops import gru, lstm, steps

from test_rnn_ops_gradients import reference

SHAPES = [(3, 9, 5, 4), (5, 17, 6, 8), (2, 24, 3, 16), (1, 33, 7, 5)]     # B, T, I, U


@pytest.fixture(params=[1, 2], ids=["one thread", "worker thread"])
def threads(request, monkeypatch):
    monkeypatch.setattr(parallel, "threads", lambda: request.param)
    return request.param


@pytest.mark.parametrize("drop", [None, "shared", "per_gate"])
@pytest.mark.parametrize("B,T,I,U", SHAPES[:3])
def test_gate_major_projection_equals_plain(B, T, I, U, drop, threads):
    rng = np.random.default_rng(B * T)
    G = 4
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    W = rng.standard_normal((I, G * U)).astype(np.float32)
    b = rng.standard_normal(G * U).astype(np.float32)
    mask = {None: None, "shared": (rng.random((B, I)) > 0.3).astype(np.float32) / 0.7,
            "per_gate": (rng.random((G, B, I)) > 0.3).astype(np.float32) / 0.7}[drop]
    plain, xm = steps._project(x, W, b, mask, G)
    want = plain.reshape(T, B, G, U).transpose(0, 2, 1, 3)
    gm, xm2, _ = steps._project(x, W, b, mask, G, gate_major=True) + (None,)
    np.testing.assert_allclose(gm, want, rtol=1e-6, atol=1e-6)
    # _project_ahead takes (batch, time, ...) inputs and makes the time-major copy itself
    # (chunk by chunk with a worker), in processing order (go_backwards: reversed)
    for given, backwards in ((np.swapaxes(x, 0, 1), False), (np.swapaxes(x[::-1], 0, 1), True)):
        ahead, xm3, ready = steps._project_ahead(given, backwards, W, b, mask, G,
                                                 gate_major=True)
        for t in range(T):
            ready(t)
        np.testing.assert_array_equal(ahead, gm)
        np.testing.assert_array_equal(xm3, xm)
    np.testing.assert_array_equal(xm2, xm)


@pytest.mark.parametrize("B", [63, 64, 70, 128])
@pytest.mark.parametrize("dropped", [False, True])
def test_recurrent_gemm_in_row_blocks_equals_one_gemm(B, dropped):
    rng = np.random.default_rng(B)
    G, U = 4, 8
    h = rng.standard_normal((B, U)).astype(np.float32)
    Rg = rng.standard_normal((G, U, U)).astype(np.float32)
    rd = (rng.random((G, B, U)) > 0.3).astype(np.float32) if dropped else None
    out = np.full((G, B, U), np.nan, np.float32)
    hd = steps._rec_forward(h, rd, Rg, out)
    src = h if rd is None else h[None] * rd
    np.testing.assert_allclose(out, np.matmul(src, Rg), rtol=1e-6, atol=1e-6)
    if dropped:
        np.testing.assert_array_equal(hd, src)
    else:
        assert hd is None


@pytest.mark.parametrize("B", [63, 64, 70, 128])
def test_gate_major_projection_in_row_blocks(B):
    rng = np.random.default_rng(B)
    T, I, G, U = 5, 6, 3, 8
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    Kg = rng.standard_normal((G, I, U)).astype(np.float32)
    out = np.full((T, G, B, U), np.nan, np.float32)
    got = steps._project_gates(x, Kg, out)
    assert got is out
    np.testing.assert_allclose(out, np.matmul(x[:, None], Kg), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before"])
def test_sequences_with_recurrent_gemm_row_blocks(kind, monkeypatch):
    """Whole sequences with the forward's gate-major GEMMs (input projection, recurrent
    steps) in row blocks of 2 (5 rows: 2, 2, 1) against the numpy reference (with a
    mask)."""
    monkeypatch.setattr(steps, "_REC_ROWS", 2)
    test_float32_sequences_match_reference_and_float64(kind, *SHAPES[1], threads=1)


def test_sigmoid_of_half_is_the_sigmoid_activation_bit_for_bit():
    rng = np.random.default_rng(0)
    sig = rnn_activations.get_activation("sigmoid")
    for dt in (np.float32, np.float64):
        z = (rng.standard_normal(1000) * 8).astype(dt)
        want = sig.fwd(z, np.empty_like(z))
        got = rnn_activations.sigmoid_of_half(z * 0.5)
        np.testing.assert_array_equal(got, want)


def _plain_sigmoid(monkeypatch, module):
    """Make `module` see the sigmoid under another name: its forward then takes the plain
    path (no halving folded into the weights)."""
    real = rnn_activations.get_activation
    sig = real("sigmoid")
    plain = rnn_activations._Act("sigmoid (plain)", sig.fwd, sig.grad, sig.needs_x)
    monkeypatch.setattr(module, "get_activation",
                        lambda name: plain if name == "sigmoid" else real(name))


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before"])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_halved_sigmoid_weights_give_the_same_numbers(kind, dt, monkeypatch):
    # numpy's steps (the fused C steps take halved weights only: test_lstm_fused.py)
    monkeypatch.setenv("MODELKIT_RNN_FUSED", "0")
    B, T, I, U = SHAPES[1]
    rng = np.random.default_rng(5)
    G = 4 if kind == "lstm" else 3
    reset_after = kind == "gru"
    x = rng.standard_normal((B, T, I)).astype(dt)
    W = rng.standard_normal((I, G * U)).astype(dt) * 0.5
    R = rng.standard_normal((U, G * U)).astype(dt) * 0.5
    b = rng.standard_normal((2, G * U) if reset_after else (G * U,)).astype(dt)
    kw = {} if kind == "lstm" else {"reset_after": reset_after}
    module, fn = (lstm, rnn_ops.lstm_sequence) if kind == "lstm" else (gru, rnn_ops.gru_sequence)

    def run():
        xv, Wv, Rv, bv = (Variable(a, dtype=dt) for a in (x, W, R, b))
        with GradientTape() as tape:
            outs = fn(xv, Wv, Rv, bv, **kw)
            loss = K.sum(outs[0] * outs[0]) + K.sum(outs[1])
        grads = tape.gradient(loss, [xv, Wv, Rv, bv])
        return [o.value.copy() for o in outs] + [np.asarray(g) for g in grads]

    halved = run()
    _plain_sigmoid(monkeypatch, module)
    plain = run()
    for a, c in zip(halved, plain):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before"])
@pytest.mark.parametrize("B,T,I,U", SHAPES)
def test_float32_sequences_match_reference_and_float64(kind, B, T, I, U, threads):
    rng = np.random.default_rng(B + T + I + U)
    G = 4 if kind == "lstm" else 3
    reset_after = kind != "gru_reset_before"
    x = rng.standard_normal((B, T, I)) * 0.8
    W = rng.standard_normal((I, G * U)) * 0.4
    R = rng.standard_normal((U, G * U)) * 0.4
    b = rng.standard_normal((2, G * U) if kind == "gru" else (G * U,)) * 0.3
    states = [rng.standard_normal((B, U)) * 0.5 for _ in range(2 if kind == "lstm" else 1)]
    mask = rng.random((B, T)) > 0.2 if T % 2 else None
    ref_kind = "lstm" if kind == "lstm" else "gru"
    want, want_states = reference(ref_kind, x, W, R, b, states, mask=mask,
                                  reset_after=reset_after)

    def run(dt):
        vs = [Variable(a.astype(dt), dtype=dt) for a in [x, W, R, b] + states]
        with GradientTape() as tape:
            if kind == "lstm":
                outs = rnn_ops.lstm_sequence(*vs, mask=mask)
            else:
                outs = rnn_ops.gru_sequence(*vs, mask=mask, reset_after=reset_after)
            loss = K.sum(outs[0] * outs[0]) + K.sum(outs[-1])
        return [o.value for o in outs], [np.asarray(g) for g in tape.gradient(loss, vs)]

    outs32, grads32 = run(np.float32)
    outs64, grads64 = run(np.float64)
    np.testing.assert_allclose(outs64[0], want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(outs32[0], want, rtol=2e-5, atol=2e-5)
    for got, ref in zip(outs32[1:], want_states):
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)
    for g32, g64 in zip(grads32, grads64):
        assert g32.dtype == np.float32
        scale = max(1.0, float(np.abs(g64).max()))
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4 * scale)

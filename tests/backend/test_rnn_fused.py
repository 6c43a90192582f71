"""The fused LSTM and GRU steps of _native_rnn.c (AVX-512): the forward and backward steps
against float64, their tanh and sigmoid, chunked calls, and the LSTM and GRU ops (tanh or
sigmoid cells, sigmoid or hard sigmoid gates, masked or not) and trained models with them
against numpy's steps (MODELKIT_RNN_FUSED=0)."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend import GradientTape, Variable, native, parallel, rnn_ops

from test_native import count_calls, train_embedding_model
from test_rnn_ops_gradients import reference

pytestmark = pytest.mark.skipif(not native.rnn_fused_available(),
                                reason="the fused RNN steps need the C kernels and AVX-512")

SHAPES = [(1, 1), (5, 8), (6, 16), (7, 33), (13, 100), (64, 128), (3, 200)]     # B, U


def _weights(rng, U, scale=0.5):
    r = (rng.standard_normal((U, 4 * U)) * scale / np.sqrt(U)).astype(np.float32)
    rf = r.copy()
    rf[:, :3 * U] *= 0.5                        # the sigmoid gates' columns halved
    return r, rf


def _pieces(T, splits, backward=False):
    """(lo, hi) of the calls covering T timesteps split at `splits`, in the pass's order."""
    bounds = [0, *sorted(splits), T]
    pieces = list(zip(bounds[:-1], bounds[1:]))
    return pieces[::-1] if backward else pieces


def _forward(rf, proj, h0, c0, splits=()):
    """The kernel's forward steps over proj (T, 4, B, U), called in pieces at `splits`."""
    T, _, B, U = proj.shape
    Z = proj.copy()
    H = np.empty((T + 1, B, U), np.float32)
    C = np.empty_like(H)
    AC = np.empty((T, B, U), np.float32)
    H[0], C[0] = h0, c0
    rp = native.rnn_pack_forward(rf, 4)
    for lo, hi in _pieces(T, splits):
        native.lstm_forward_steps(rp, Z, H, C, AC, lo, hi)
    return Z, H, C, AC


def _backward(r, Z, C, AC, gseq, dh, dc, splits=()):
    T = AC.shape[0]
    B, U = dh.shape
    dh, dc = dh.copy(), dc.copy()
    DZ = np.empty((T, B, 4 * U), np.float32)
    rtp = native.rnn_pack_backward(r, 4)
    for lo, hi in _pieces(T, splits, backward=True):
        native.lstm_backward_steps(rtp, Z, AC, C, gseq, dh, dc, DZ, lo, hi)
    return DZ, dh, dc


@pytest.mark.parametrize("B,U", SHAPES)
def test_forward_steps_match_float64(B, U):
    rng = np.random.default_rng(B * 1000 + U)
    T = 6
    r, rf = _weights(rng, U)
    proj = rng.standard_normal((T, 4, B, U)).astype(np.float32)
    proj[:, :3] *= 0.5
    h0 = (rng.standard_normal((B, U)) * 0.5).astype(np.float32)
    c0 = rng.standard_normal((B, U)).astype(np.float32)
    Z, H, C, AC = _forward(rf, proj, h0, c0)
    for t in range(T):          # each step from the kernel's own state, in float64
        z = (H[t].astype(float) @ r.astype(float)).reshape(B, 4, U).transpose(1, 0, 2)
        z[:3] *= 0.5
        z += proj[t]
        i, f, o = 0.5 * np.tanh(z[:3]) + 0.5         # sigmoid(2 z)
        g = np.tanh(z[3])
        c_new = f * C[t] + i * g
        ac = np.tanh(c_new)
        for got, want in ((Z[t], np.stack([i, f, o, g])), (C[t + 1], c_new), (AC[t], ac),
                          (H[t + 1], o * ac)):
            np.testing.assert_allclose(got, want, rtol=0, atol=3e-6)


@pytest.mark.parametrize("B,U", SHAPES)
@pytest.mark.parametrize("with_sequence", [False, True], ids=["last output", "sequence"])
def test_backward_steps_match_float64(B, U, with_sequence):
    rng = np.random.default_rng(B * 1000 + U + 1)
    T = 7
    r, rf = _weights(rng, U)
    proj = rng.standard_normal((T, 4, B, U)).astype(np.float32)
    Z, H, C, AC = _forward(rf, proj, np.zeros((B, U), np.float32),
                           rng.standard_normal((B, U)).astype(np.float32))
    gseq = rng.standard_normal((B, T, U)).astype(np.float32) if with_sequence else None
    dh = rng.standard_normal((B, U)).astype(np.float32)
    dc = rng.standard_normal((B, U)).astype(np.float32)
    DZ, dh_out, dc_out = _backward(r, Z, C, AC, gseq, dh, dc)
    dh_ref, dc_ref = dh.astype(float), dc.astype(float)
    for t in range(T - 1, -1, -1):
        i, f, o, g = Z[t].astype(float)
        a = AC[t].astype(float)
        e = dh_ref + (0 if gseq is None else gseq[:, t])
        d_c = dc_ref + e * o * (1 - a * a)
        dz = np.concatenate([d_c * g * (1 - i) * i, d_c * C[t] * (1 - f) * f,
                             e * a * (1 - o) * o, d_c * i * (1 - g * g)], axis=1)
        np.testing.assert_allclose(DZ[t], dz, rtol=0, atol=1e-5 * max(1, np.abs(dz).max()))
        dc_ref = d_c * f
        dh_ref = dz @ r.T.astype(float)
    for got, want in ((dh_out, dh_ref), (dc_out, dc_ref)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1, np.abs(want).max()))


@pytest.mark.parametrize("B,U", [(7, 33), (64, 128)])
def test_steps_in_pieces_equal_one_call(B, U):
    rng = np.random.default_rng(3)
    T = 9
    r, rf = _weights(rng, U)
    proj = rng.standard_normal((T, 4, B, U)).astype(np.float32)
    h0, c0 = (rng.standard_normal((B, U)).astype(np.float32) for _ in range(2))
    whole = _forward(rf, proj, h0, c0)
    pieces = _forward(rf, proj, h0, c0, splits=(1, 4, 8))
    for a, b in zip(whole, pieces):
        np.testing.assert_array_equal(a, b)
    Z, H, C, AC = whole
    gseq = rng.standard_normal((B, T, U)).astype(np.float32)
    dh, dc = (rng.standard_normal((B, U)).astype(np.float32) for _ in range(2))
    one = _backward(r, Z, C, AC, gseq, dh, dc)
    more = _backward(r, Z, C, AC, gseq, dh, dc, splits=(2, 3, 7))
    for a, b in zip(one, more):
        np.testing.assert_array_equal(a, b)


def _ulps(got, want):
    want32 = want.astype(np.float32)
    return np.abs(got.astype(float) - want) / np.spacing(np.abs(want32))


def test_gate_functions_against_float64():
    """With h = 0 a step's gates are the functions of the projection alone: tanh for the
    cell input, sigmoid(2 z) for i, f, o (z halved); over a dense sweep and special values."""
    sweep = np.concatenate([np.linspace(-12, 12, 48001), np.geomspace(1e-30, 5, 2001),
                            -np.geomspace(1e-30, 5, 2001),
                            [0.0, 0.625, -0.625, np.nextafter(0.625, 0), 9.0, 9.1, 20.0, 1e30,
                             -1e30, np.inf, -np.inf, 1e-40, -1e-40]]).astype(np.float32)
    U = 16
    n = -(-sweep.size // U)
    z = np.resize(sweep, n * U).reshape(n, U)
    proj = np.stack([z, z, z, z])[None]                         # (1, 4, B=n, U)
    Z, H, C, AC = _forward(np.zeros((U, 4 * U), np.float32), proj,
                           np.zeros((n, U), np.float32), np.zeros((n, U), np.float32))
    zd = z.astype(float)
    with np.errstate(over="ignore"):
        sig = 1 / (1 + np.exp(-2 * zd))
    assert _ulps(Z[0, 3], np.tanh(zd)).max() <= 1.5
    assert _ulps(Z[0, 0], sig).max() <= 2.5
    np.testing.assert_array_equal(Z[0, 0], Z[0, 1])
    np.testing.assert_array_equal(Z[0, 3][np.isinf(z)], np.sign(z[np.isinf(z)]))
    assert (Z[0, 0][z == np.inf] == 1).all() and (Z[0, 0][z == -np.inf] == 0).all()
    np.testing.assert_array_equal(Z[0, 3][np.abs(z) < 1e-20], z[np.abs(z) < 1e-20])
    c_new = sig * np.tanh(zd)                                   # c' = f 0 + i g
    np.testing.assert_allclose(C[1], c_new, rtol=5e-7, atol=1e-30)
    np.testing.assert_allclose(H[1], sig * np.tanh(C[1].astype(float)), rtol=1e-6,
                               atol=1e-30)
    nan = np.full((1, 4, 1, U), np.nan, np.float32)
    Z, H, C, AC = _forward(np.zeros((U, 4 * U), np.float32), nan,
                           np.zeros((1, U), np.float32), np.zeros((1, U), np.float32))
    assert np.isnan(Z).all() and np.isnan(H[1]).all() and np.isnan(C[1]).all()


# -- GRU (reset_after) ---------------------------------------------------------------------

def _gru_weights(rng, U, scale=0.5):
    r = (rng.standard_normal((U, 3 * U)) * scale / np.sqrt(U)).astype(np.float32)
    b = (rng.standard_normal(3 * U) * 0.3).astype(np.float32)
    rf, bf = r.copy(), b.copy()
    rf[:, :2 * U] *= 0.5                        # the z and r columns halved
    bf[:2 * U] *= 0.5
    return r, b, rf, bf


def _gru_forward(rf, bf, proj, h0, splits=()):
    T, _, B, U = proj.shape
    Z = proj.copy()
    H = np.empty((T + 1, B, U), np.float32)
    RH = np.empty((T, B, U), np.float32)
    H[0] = h0
    rp = native.rnn_pack_forward(rf, 3)
    for lo, hi in _pieces(T, splits):
        native.gru_forward_steps(rp, bf, Z, H, RH, lo, hi)
    return Z, H, RH


def _gru_backward(r, Z, H, RH, gseq, dh, splits=()):
    T = RH.shape[0]
    B, U = dh.shape
    dh = dh.copy()
    DZ = np.empty((T, B, 3 * U), np.float32)
    DREC = np.empty_like(DZ)
    rtp = native.rnn_pack_backward(r, 3)
    for lo, hi in _pieces(T, splits, backward=True):
        native.gru_backward_steps(rtp, Z, H, RH, gseq, dh, DZ, DREC, lo, hi)
    return DZ, DREC, dh


@pytest.mark.parametrize("B,U", SHAPES)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no bias"])
def test_gru_forward_steps_match_float64(B, U, with_bias):
    rng = np.random.default_rng(B * 1000 + U + 2)
    T = 6
    r, b, rf, bf = _gru_weights(rng, U)
    if not with_bias:
        b, bf = np.zeros_like(b), None
    proj = rng.standard_normal((T, 3, B, U)).astype(np.float32)
    proj[:, :2] *= 0.5
    Z, H, RH = _gru_forward(rf, bf, proj, (rng.standard_normal((B, U)) * 0.5).astype(np.float32))
    for t in range(T):          # each step from the kernel's own state, in float64
        rec = H[t].astype(float) @ r.astype(float) + b
        rec = rec.reshape(B, 3, U).transpose(1, 0, 2)
        z, rr = (1 / (1 + np.exp(-2 * proj[t, k] - rec[k])) for k in range(2))
        hh = np.tanh(proj[t, 2] + rr * rec[2])
        for got, want in ((Z[t], np.stack([z, rr, hh])), (RH[t], rec[2]),
                          (H[t + 1], hh + z * (H[t] - hh))):
            np.testing.assert_allclose(got, want, rtol=0, atol=3e-6)


@pytest.mark.parametrize("B,U", SHAPES)
@pytest.mark.parametrize("with_sequence", [False, True], ids=["last output", "sequence"])
def test_gru_backward_steps_match_float64(B, U, with_sequence):
    rng = np.random.default_rng(B * 1000 + U + 3)
    T = 7
    r, b, rf, bf = _gru_weights(rng, U)
    proj = rng.standard_normal((T, 3, B, U)).astype(np.float32)
    Z, H, RH = _gru_forward(rf, bf, proj, rng.standard_normal((B, U)).astype(np.float32))
    gseq = rng.standard_normal((B, T, U)).astype(np.float32) if with_sequence else None
    dh = rng.standard_normal((B, U)).astype(np.float32)
    DZ, DREC, dh_out = _gru_backward(r, Z, H, RH, gseq, dh)
    dh_ref = dh.astype(float)
    for t in range(T - 1, -1, -1):
        z, rr, hh = Z[t].astype(float)
        e = dh_ref + (0 if gseq is None else gseq[:, t])
        d_hh = (1 - z) * e * (1 - hh * hh)
        d_z = (H[t] - hh) * e * (1 - z) * z
        d_r = d_hh * RH[t] * (1 - rr) * rr
        dz = np.concatenate([d_z, d_r, d_hh], axis=1)
        drec = np.concatenate([d_z, d_r, d_hh * rr], axis=1)
        for got, want in ((DZ[t], dz), (DREC[t], drec)):
            np.testing.assert_allclose(got, want, rtol=0,
                                       atol=1e-5 * max(1, np.abs(want).max()))
        dh_ref = e * z + drec @ r.T.astype(float)
    np.testing.assert_allclose(dh_out, dh_ref, rtol=0, atol=1e-5 * max(1, np.abs(dh_ref).max()))


def test_gru_steps_in_pieces_equal_one_call():
    rng = np.random.default_rng(4)
    B, U, T = 11, 40, 9
    r, b, rf, bf = _gru_weights(rng, U)
    proj = rng.standard_normal((T, 3, B, U)).astype(np.float32)
    h0 = rng.standard_normal((B, U)).astype(np.float32)
    whole = _gru_forward(rf, bf, proj, h0)
    for a, c in zip(whole, _gru_forward(rf, bf, proj, h0, splits=(2, 5))):
        np.testing.assert_array_equal(a, c)
    Z, H, RH = whole
    gseq = rng.standard_normal((B, T, U)).astype(np.float32)
    dh = rng.standard_normal((B, U)).astype(np.float32)
    for a, c in zip(_gru_backward(r, Z, H, RH, gseq, dh),
                    _gru_backward(r, Z, H, RH, gseq, dh, splits=(1, 4, 8))):
        np.testing.assert_array_equal(a, c)


# -- the ops with the fused steps against numpy's steps (MODELKIT_RNN_FUSED=0) --------------

def _op(kind, monkeypatch, fused, B=5, T=9, I=6, U=8, dt=np.float32, loss_on="sequence",
        threads=2, reset_after=True, **kw):
    """Outputs and gradients of the LSTM or GRU op (MODELKIT_RNN_FUSED on or off) and how
    often the fused kernels ran."""
    monkeypatch.setenv("MODELKIT_RNN_FUSED", "1" if fused else "0")
    monkeypatch.setattr(parallel, "threads", lambda: threads)
    steps = kind if kind == "lstm" or reset_after else "gru_before"
    calls = count_calls(monkeypatch, f"{steps}_forward_steps", f"{steps}_backward_steps")
    g = np.random.default_rng(11)
    G = 4 if kind == "lstm" else 3
    x = Variable(g.standard_normal((B, T, I)).astype(dt), dtype=dt)
    scale = 0.4 * min(1.0, np.sqrt(8 / U))      # gates neither all saturated nor all linear
    bias = (2, G * U) if kind == "gru" and reset_after else (G * U,)
    ws = [Variable((g.standard_normal(s) * scale).astype(dt), dtype=dt)
          for s in ((I, G * U), (U, G * U), bias)]
    for key in ("input_dropout", "recurrent_dropout"):
        if kw.get(key):                 # one mask for all gates, or one a gate ("per_gate")
            shape = (B, I if key == "input_dropout" else U)
            if kw[key] == "per_gate":
                shape = (G,) + shape
            kw[key] = ((g.random(shape) > 0.3) / 0.7).astype(dt)
    if kind == "gru":
        kw["reset_after"] = reset_after
    with GradientTape() as tape:
        seq, h, *c = (rnn_ops.lstm_sequence if kind == "lstm" else rnn_ops.gru_sequence)(
            x, *ws, **kw)
        last = c[0] if c else h
        loss = K.sum(h * h) + K.sum(last) if loss_on == "last" else \
            K.sum(seq * seq) + K.sum(last)
    grads = tape.gradient(loss, [x] + ws)
    monkeypatch.undo()
    return [np.asarray(seq.value), np.asarray(last.value)] + [np.asarray(v) for v in grads], \
        calls


POST_PADDED = np.arange(9) < np.array([[9], [4], [9], [1], [7]])     # (B, T) = (5, 9) masks
PRE_PADDED = np.arange(9) >= np.array([[0], [5], [9], [2], [3]])      # (a row all masked)
CASES = [({}, True), ({"threads": 1}, True), ({"go_backwards": True}, True),
         ({"loss_on": "last"}, True), ({"B": 7, "T": 25, "U": 33}, True),
         ({"B": 64, "T": 40, "I": 16, "U": 128}, True), ({"input_dropout": True}, True),
         ({"recurrent_dropout": True}, True), ({"recurrent_dropout": "per_gate"}, True),
         ({"recurrent_dropout": "per_gate", "B": 7, "T": 12, "U": 33, "loss_on": "last"}, True),
         ({"T": 1}, True), ({"T": 0}, False),
         ({"mask": POST_PADDED}, True),
         ({"mask": PRE_PADDED, "zero_output_for_mask": True}, True),
         ({"mask": PRE_PADDED, "go_backwards": True, "loss_on": "last"}, True),
         ({"mask": POST_PADDED, "recurrent_dropout": "per_gate", "threads": 1}, True),
         ({"mask": np.arange(40) >= np.arange(64)[:, None] * 7 % 41, "B": 64, "T": 40, "I": 16,
           "U": 128}, True),
         ({"recurrent_activation": "hard_sigmoid"}, True),
         ({"recurrent_activation": "keras3_hard_sigmoid", "B": 7, "T": 12, "U": 33}, True),
         ({"recurrent_activation": "hard_sigmoid", "mask": PRE_PADDED,
           "recurrent_dropout": True}, True),
         ({"activation": "sigmoid", "recurrent_activation": "hard_sigmoid"}, True),
         ({"activation": "sigmoid", "mask": POST_PADDED, "U": 33}, True),
         ({"activation": "relu"}, False), ({"dt": np.float64}, False),
         ({"mask": POST_PADDED, "dt": np.float64}, False)]
IDS = ["plain", "one thread", "go_backwards", "last output", "odd sizes", "benchmark size",
       "input dropout", "recurrent dropout", "per-gate recurrent dropout",
       "per-gate recurrent dropout, odd sizes", "one step", "no step", "mask",
       "mask, zero output", "mask, go_backwards, last output", "mask, recurrent dropout",
       "mask, benchmark size", "hard_sigmoid", "Keras 3 hard_sigmoid, odd sizes",
       "hard_sigmoid, mask, recurrent dropout", "sigmoid cell, hard_sigmoid (the spec's)",
       "sigmoid cell, mask", "relu cell", "float64", "mask, float64"]


@pytest.mark.parametrize("kind, case, takes",
                         [("lstm", c, t) for c, t in CASES] + [("gru", c, t) for c, t in CASES]
                         + [("gru", dict(c, reset_after=False), t) for c, t in CASES],
                         ids=[f"lstm-{i}" for i in IDS] + [f"gru-{i}" for i in IDS]
                         + [f"gru-reset_before-{i}" for i in IDS])
def test_op_with_fused_steps_matches_numpy_steps(kind, case, takes, monkeypatch):
    fused, calls = _op(kind, monkeypatch, True, **dict(case))
    plain, none = _op(kind, monkeypatch, False, **dict(case))
    assert set(none.values()) == {0}
    assert all((n > 0) == takes for n in calls.values())
    for a, b in zip(fused, plain):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(1.0, np.abs(b).max(initial=0)))
        if not takes:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("zero_output", [False, True], ids=["repeated output", "zero output"])
@pytest.mark.parametrize("kind, reset_after", [("lstm", True), ("gru", True), ("gru", False)],
                         ids=["lstm", "gru", "gru-reset_before"])
def test_masked_op_with_initial_states_matches_numpy_steps(kind, reset_after, zero_output,
                                                           monkeypatch):
    """Initial states (not zero): a row masked throughout keeps them to the end and outputs
    zeros; their gradients come through the masked steps."""
    G = 4 if kind == "lstm" else 3
    extra = {} if kind == "lstm" else {"reset_after": reset_after}
    results = []
    for switch in ("1", "0"):
        monkeypatch.setenv("MODELKIT_RNN_FUSED", switch)
        g = np.random.default_rng(4)
        B, T, I, U = 5, 9, 6, 16
        vs = [Variable(g.standard_normal(s).astype(np.float32) * 0.4) for s in
              ((B, T, I), (I, G * U), (U, G * U), (2, G * U) if extra.get("reset_after")
               else (G * U,))]
        states = [Variable(g.standard_normal((B, U)).astype(np.float32)) for _ in range(G - 2)]
        with GradientTape() as tape:
            seq, *last = (rnn_ops.lstm_sequence if kind == "lstm" else rnn_ops.gru_sequence)(
                *vs, *states, mask=PRE_PADDED, zero_output_for_mask=zero_output, **extra)
            weights = np.linspace(-1, 1, B * T * U, dtype=np.float32).reshape(B, T, U)
            loss = K.sum(seq * weights) + sum(K.sum(s * s) for s in last)
        grads = tape.gradient(loss, vs + states)
        results.append([np.asarray(seq.value)] + [np.asarray(s.value) for s in last]
                       + [np.asarray(v) for v in grads])
    fused, plain = results
    np.testing.assert_array_equal(fused[0][2], 0)              # row 2: masked throughout
    for got, initial in zip(fused[1:G - 1], states):
        np.testing.assert_array_equal(got[2], np.asarray(initial.value)[2])
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_op_with_fused_steps_matches_the_float64_reference(kind, monkeypatch):
    monkeypatch.setenv("MODELKIT_RNN_FUSED", "1")
    rng = np.random.default_rng(8)
    B, T, I, U = 6, 20, 5, 24
    G = 4 if kind == "lstm" else 3
    x = rng.standard_normal((B, T, I)) * 0.8
    W, R = (rng.standard_normal((n, G * U)) * 0.4 for n in (I, U))
    b = rng.standard_normal(G * U if kind == "lstm" else (2, G * U)) * 0.3
    states = [rng.standard_normal((B, U)) * 0.5 for _ in range(G - 2)]
    want, want_states = reference(kind, x, W, R, b, states)
    vs = [Variable(a.astype(np.float32)) for a in [x, W, R, b] + states]
    seq, *got_states = (rnn_ops.lstm_sequence if kind == "lstm" else rnn_ops.gru_sequence)(*vs)
    np.testing.assert_allclose(seq.value, want, rtol=0, atol=2e-5)
    for got, ref in zip(got_states, want_states):
        np.testing.assert_allclose(got.value, ref, rtol=0, atol=2e-5)


@pytest.mark.parametrize("mask_zero", [False, True], ids=["", "mask_zero"])
@pytest.mark.parametrize("layer", ["LSTM", "GRU", "GRU_reset_before"])
def test_training_with_fused_steps_follows_numpy_steps(layer, mask_zero, monkeypatch):
    fused, plain = (train_embedding_model(monkeypatch, layer, {"MODELKIT_RNN_FUSED": switch},
                                          units=20, length=12, mask_zero=mask_zero)
                    for switch in ("1", "0"))
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-5)        # the epochs' losses
    for a, b in zip(fused[1], plain[1]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)

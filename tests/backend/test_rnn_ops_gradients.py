"""The fused recurrent sequence ops (modelkit/backend/rnn_ops/): values against a direct
numpy transcription of the Keras 2 cell equations, and float64 finite-difference gradients
of every input (x, kernels, bias, initial states) for every feature (masks, go_backwards,
dropout masks, zero_output_for_mask, every activation)."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend import GradientTape, Variable
from modelkit.backend import rnn_ops
from modelkit.backend.rnn_ops.steps import all_zero
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.errors import ConfigError, ShapeError

rng = np.random.default_rng(7)
B, T, I, U = 2, 4, 3, 2


def r(*shape, scale=0.7):
    return rng.standard_normal(shape) * scale


# --------------------------------------------------------------------------------------
# direct numpy reference (Keras 2 equations, one timestep at a time)

def sig(x):
    return 1 / (1 + np.exp(-x))


ACT = {"tanh": np.tanh, "sigmoid": sig, "linear": lambda x: x,
       "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0, 1),
       "keras3_hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
       "relu": lambda x: np.maximum(x, 0), "softsign": lambda x: x / (1 + np.abs(x)),
       "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
       "selu": lambda x: 1.0507009873554805 * np.where(
           x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0))),
       "softplus": lambda x: np.log1p(np.exp(x)), "exponential": np.exp,
       "swish": lambda x: x * sig(x)}


def reference(kind, x, W, R, b, states, mask=None, idrop=None, rdrop=None, act="tanh",
              ract="sigmoid", go_backwards=False, zero_output=False, reset_after=True):
    """Returns (outputs (B, T, u) in processing order, final states)."""
    a, ra = ACT[act], ACT[ract]
    Bn, Tn, _ = x.shape
    u = R.shape[0]
    G = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    order = range(Tn - 1, -1, -1) if go_backwards else range(Tn)
    states = [np.array(s, dtype=float) for s in states]
    prev_out = np.zeros((Bn, u))
    outs = []

    def xin(xt, g):
        if idrop is None:
            return xt
        return xt * (idrop[g] if idrop.ndim == 3 else idrop)

    def hin(h, g):
        if rdrop is None:
            return h
        return h * (rdrop[g] if rdrop.ndim == 3 else rdrop)

    for t in order:
        xt = x[:, t]
        blk = [slice(g * u, (g + 1) * u) for g in range(G)]
        if kind == "lstm":
            h, c = states
            z = [xin(xt, g) @ W[:, blk[g]] + (0 if b is None else b[blk[g]])
                 + hin(h, g) @ R[:, blk[g]] for g in range(4)]
            i, f, cc, o = ra(z[0]), ra(z[1]), a(z[2]), ra(z[3])
            c_new = f * c + i * cc
            h_new = o * a(c_new)
            new = [h_new, c_new]
        elif kind == "gru":
            (h,) = states
            bi = None if b is None else (b[0] if reset_after else b)
            br = None if b is None or not reset_after else b[1]
            xp = [xin(xt, g) @ W[:, blk[g]] + (0 if bi is None else bi[blk[g]]) for g in range(3)]
            rp = [hin(h, g) @ R[:, blk[g]] + (0 if br is None else br[blk[g]]) for g in range(3)]
            z = ra(xp[0] + rp[0])
            rr = ra(xp[1] + rp[1])
            if reset_after:
                hh = a(xp[2] + rr * rp[2])
            else:
                hh = a(xp[2] + (rr * hin(h, 2)) @ R[:, blk[2]])
            h_new = z * h + (1 - z) * hh
            new = [h_new]
        else:
            (h,) = states
            h_new = a(xin(xt, 0) @ W + (0 if b is None else b) + hin(h, 0) @ R)
            new = [h_new]
        out = new[0]
        if mask is not None:
            m = mask[:, t][:, None]
            out = np.where(m, out, 0 if zero_output else prev_out)
            new = [np.where(m, n, s) for n, s in zip(new, states)]
        states = new
        prev_out = out
        outs.append(out)
    return np.stack(outs, axis=1), states


def run_op(kind, x, W, R, b, states, **kw):
    fn = {"lstm": rnn_ops.lstm_sequence, "gru": rnn_ops.gru_sequence,
          "rnn": rnn_ops.simple_rnn_sequence}[kind]
    if kind == "lstm":
        return fn(x, W, R, b, states[0], states[1], **kw)
    if kind == "gru":
        return fn(x, W, R, b, states[0], **kw)
    kw.pop("recurrent_activation", None)
    return fn(x, W, R, b, states[0], **kw)


def weights(kind, reset_after=True, use_bias=True):
    G = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    W, R = r(I, G * U), r(U, G * U)
    if not use_bias:
        b = None
    elif kind == "gru" and reset_after:
        b = r(2, 3 * U)
    else:
        b = r(G * U)
    states = [r(B, U) for _ in range(2 if kind == "lstm" else 1)]
    return W, R, b, states


MASK = np.array([[True, False, True, True], [False, False, True, False]])
GATES = {"lstm": 4, "gru": 3, "rnn": 1}

# one row per configuration: (kind, options, op kwargs)
CASES = [
    ("lstm", {}, {}),
    ("lstm", {}, {"go_backwards": True}),
    ("lstm", {}, {"mask": MASK}),
    ("lstm", {}, {"mask": MASK, "go_backwards": True}),
    ("lstm", {}, {"mask": MASK, "zero_output_for_mask": True}),
    ("lstm", {}, {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("lstm", {}, {"activation": "swish", "recurrent_activation": "keras3_hard_sigmoid"}),
    ("lstm", {}, {"input_dropout": "shared", "recurrent_dropout": "per_gate"}),
    ("lstm", {}, {"input_dropout": "per_gate", "recurrent_dropout": "shared"}),
    ("lstm", {"use_bias": False}, {}),
    ("gru", {}, {}),
    ("gru", {}, {"mask": MASK, "go_backwards": True}),
    ("gru", {}, {"mask": MASK, "zero_output_for_mask": True}),
    ("gru", {}, {"input_dropout": "per_gate", "recurrent_dropout": "per_gate"}),
    ("gru", {"reset_after": False}, {"reset_after": False}),
    ("gru", {"reset_after": False}, {"reset_after": False, "mask": MASK}),
    ("gru", {"reset_after": False}, {"reset_after": False, "input_dropout": "shared",
                                     "recurrent_dropout": "per_gate"}),
    ("gru", {"use_bias": False}, {"activation": "softsign", "recurrent_activation": "hard_sigmoid"}),
    ("rnn", {}, {}),
    ("rnn", {}, {"mask": MASK, "go_backwards": True}),
    ("rnn", {}, {"activation": "elu", "input_dropout": "shared", "recurrent_dropout": "shared"}),
    ("rnn", {}, {"activation": "selu", "mask": MASK, "zero_output_for_mask": True}),
    ("rnn", {}, {"activation": "softplus"}),
]


def _ids():
    return [f"{k}-" + "-".join(f"{a}={v if not isinstance(v, np.ndarray) else 'mask'}"
                               for a, v in {**o, **kw}.items()) for k, o, kw in CASES]


def _materialise(kind, kw):
    """Turn "shared"/"per_gate" dropout markers into concrete 0 / 1/(1-p) masks."""
    kw = dict(kw)
    for key, n in (("input_dropout", I), ("recurrent_dropout", U)):
        spec = kw.get(key)
        if spec is None:
            continue
        shape = (B, n) if spec == "shared" else (GATES[kind], B, n)
        kw[key] = (rng.random(shape) > 0.4) / 0.6
    return kw


@pytest.mark.parametrize("kind,opts,kw", CASES, ids=_ids())
def test_matches_numpy_reference(kind, opts, kw):
    W, R, b, states = weights(kind, **opts)
    x = r(B, T, I)
    kw = _materialise(kind, kw)
    outs = run_op(kind, x, W, R, b, states, **kw)
    ref_kw = {"act": kw.get("activation", "tanh"),
              "ract": kw.get("recurrent_activation", "sigmoid"),
              "mask": kw.get("mask"), "idrop": kw.get("input_dropout"),
              "rdrop": kw.get("recurrent_dropout"), "go_backwards": kw.get("go_backwards", False),
              "zero_output": kw.get("zero_output_for_mask", False),
              "reset_after": kw.get("reset_after", True)}
    seq, final = reference(kind, x, W, R, b, states, **ref_kw)
    np.testing.assert_allclose(outs[0].value, seq, rtol=1e-10, atol=1e-12)
    for got, want in zip(outs[1:], final):
        np.testing.assert_allclose(got.value, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind,opts,kw", CASES, ids=_ids())
def test_gradients(kind, opts, kw):
    W, R, b, states = weights(kind, **opts)
    x = r(B, T, I)
    kw = _materialise(kind, kw)
    n_states = len(states)
    arrays = [x, W, R] + ([b] if b is not None else []) + states

    def fn(*vs):
        xv, Wv, Rv = vs[:3]
        bv = vs[3] if b is not None else None
        sv = list(vs[-n_states:])
        outs = run_op(kind, xv, Wv, Rv, bv, sv, **kw)
        # every output feeds the objective: sequence, final h (and c)
        flat = [K.reshape(outs[0], (B, -1))] + list(outs[1:])
        return K.concatenate(flat, axis=1)

    assert_gradients_close(fn, arrays, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind,opts,kw", CASES, ids=_ids())
def test_gradients_of_the_final_state_alone(kind, opts, kw):
    """The output sequence unused (return_sequences=False): the tape hands the op a
    broadcast zero for it, which the BPTT skips."""
    W, R, b, states = weights(kind, **opts)
    x = r(B, T, I)
    kw = _materialise(kind, kw)
    arrays = [x, W, R] + ([b] if b is not None else [])

    def fn(*vs):
        bv = vs[3] if b is not None else None
        return run_op(kind, vs[0], vs[1], vs[2], bv, states, **kw)[1]

    assert_gradients_close(fn, arrays, rtol=1e-5, atol=1e-7)


def test_all_zero_sees_a_broadcast_value_at_once():
    assert all_zero(np.broadcast_to(np.float32(0), (4, 3, 2)))
    assert not all_zero(np.broadcast_to(np.float32(-0.5), (4, 3, 2)))
    a = np.zeros((4, 3, 2), np.float32)
    assert all_zero(a) and all_zero(np.swapaxes(a, 0, 1))
    a[3, 2, 1] = 1e-30
    assert not all_zero(a)


@pytest.fixture
def chunked_backward(monkeypatch):
    """Force the all-timestep GEMMs (the forward's input projection, the backward's
    weight and input gradients) into one-step chunks on the worker thread (what long
    sequences get with two or more threads)."""
    from modelkit.backend import parallel
    from modelkit.backend.rnn_ops import steps
    monkeypatch.setattr(steps, "_MIN_CHUNK", 1)
    monkeypatch.setattr(steps, "_CHUNKS", T)
    monkeypatch.setattr(parallel, "threads", lambda: 2)
    calls = []
    real = steps._TimeChunks.done

    def done(self, t):
        calls.append(len(self.pending))
        return real(self, t)
    monkeypatch.setattr(steps._TimeChunks, "done", done)
    return calls


CHUNKED = [(i, c) for i, c in zip(_ids(), CASES) if c[0] in ("lstm", "gru")]


@pytest.mark.parametrize("kind,opts,kw", [c for _, c in CHUNKED], ids=[i for i, _ in CHUNKED])
def test_gradients_with_chunked_backward(kind, opts, kw, chunked_backward):
    test_gradients(kind, opts, kw)
    assert max(chunked_backward) == T - 1          # the chunks really went to the worker


@pytest.mark.parametrize("kind,opts,kw", [c for _, c in CHUNKED], ids=[i for i, _ in CHUNKED])
def test_matches_numpy_reference_with_projection_ahead(kind, opts, kw, chunked_backward):
    test_matches_numpy_reference(kind, opts, kw)


@pytest.mark.parametrize("kind,opts,kw", [c for _, c in CHUNKED], ids=[i for i, _ in CHUNKED])
def test_gradients_with_recurrent_gemm_row_blocks(kind, opts, kw, monkeypatch):
    """The forward steps' recurrent GEMMs one batch row at a time (what batches of 64 rows
    and more get in blocks of 32), dropout masks included."""
    from modelkit.backend.rnn_ops import steps
    monkeypatch.setattr(steps, "_REC_ROWS", 1)
    test_gradients(kind, opts, kw)
    test_matches_numpy_reference(kind, opts, kw)


def test_chunked_backward_equals_one_chunk(monkeypatch):
    """float32, a longer sequence: chunk sums equal the single GEMMs to rounding."""
    from modelkit.backend import parallel
    g = np.random.default_rng(3)
    x = Variable(g.standard_normal((3, 24, 5)).astype(np.float32))
    ws = [Variable(g.standard_normal(s).astype(np.float32) * 0.5)
          for s in ((5, 16), (4, 16), (16,))]

    def grads(threads):
        monkeypatch.setattr(parallel, "threads", lambda: threads)
        with GradientTape() as tape:
            seq, h, c = rnn_ops.lstm_sequence(x, *ws)
            loss = K.sum(seq * seq) + K.sum(c)
        return [np.asarray(v) for v in tape.gradient(loss, [x] + ws)]

    for one, chunked in zip(grads(1), grads(2)):
        np.testing.assert_allclose(chunked, one, rtol=1e-5, atol=1e-5)


def test_float32_stays_float32_and_matches_float64():
    W, R, b, states = weights("lstm")
    x = r(B, T, I)
    f64 = run_op("lstm", x, W, R, b, states)
    f32 = run_op("lstm", x.astype("float32"), W.astype("float32"), R.astype("float32"),
                 b.astype("float32"), [s.astype("float32") for s in states])
    for a, c in zip(f32, f64):
        assert a.value.dtype == np.float32
        np.testing.assert_allclose(a.value, c.value, atol=1e-6)


def test_unused_outputs_get_zero_gradient_and_untracked_inputs_get_none():
    W, R, b, states = weights("gru")
    x, Wv = Variable(r(B, T, I), dtype="float64"), Variable(W, dtype="float64")
    with GradientTape() as tape:
        seq, h = rnn_ops.gru_sequence(x, Wv, R, b)
    gx, gw = tape.gradient(h, [x, Wv])
    assert gx.shape == x.shape and gw.shape == W.shape
    assert np.abs(gx).sum() > 0


def test_all_masked_rows_keep_initial_state_and_zero_output():
    W, R, b, states = weights("lstm")
    mask = np.zeros((B, T), bool)
    seq, h, c = run_op("lstm", r(B, T, I), W, R, b, states, mask=mask)
    np.testing.assert_array_equal(seq.value, 0)
    np.testing.assert_array_equal(h.value, states[0])
    np.testing.assert_array_equal(c.value, states[1])


def test_bad_arguments_raise_modelkit_errors():
    W, R, b, states = weights("lstm")
    with pytest.raises(ShapeError, match="kernel expects 3 input features"):
        rnn_ops.lstm_sequence(r(B, T, 5), W, R, b)
    with pytest.raises(ShapeError, match=r"initial state must have shape \(2, 2\)"):
        rnn_ops.lstm_sequence(r(B, T, I), W, R, b, r(3, U))
    with pytest.raises(ShapeError, match="input must be"):
        rnn_ops.lstm_sequence(r(B, I), W, R, b)
    with pytest.raises(ShapeError, match="mask must have shape"):
        rnn_ops.lstm_sequence(r(B, T, I), W, R, b, mask=np.ones((B, T + 1), bool))
    with pytest.raises(ShapeError, match="per-gate dropout masks"):
        rnn_ops.lstm_sequence(r(B, T, I), W, R, b, input_dropout=np.ones((3, B, I)))
    with pytest.raises(ConfigError, match="not available inside the fused"):
        rnn_ops.lstm_sequence(r(B, T, I), W, R, b, activation="mystery")
    with pytest.raises(ShapeError, match="expected kernel"):
        rnn_ops.lstm_sequence(r(B, T, I), W[:, :-1], R, b)
    with pytest.raises(ShapeError, match="expected kernel"):
        rnn_ops.lstm_sequence(r(B, T, I), W, R, b[:-1])
    Wg, Rg, bg, _ = weights("gru")
    with pytest.raises(ShapeError, match="reset_after=True needs a bias"):
        rnn_ops.gru_sequence(r(B, T, I), Wg, Rg, bg.reshape(-1))


@pytest.mark.parametrize("split", ["1", "0"])
def test_time_chunks_parts_are_shared_at_the_end(split, monkeypatch):
    """_TimeChunks: every part of every chunk runs once, the sums are the sequential ones
    (latest chunk first), and with MODELKIT_RNN_SPLIT on this thread takes the parts the
    worker has not reached in the chunk it is in (the worker is held in its first part)."""
    import threading
    from modelkit.backend import parallel
    from modelkit.backend.rnn_ops import steps
    monkeypatch.setattr(parallel, "threads", lambda: 2)
    monkeypatch.setenv("MODELKIT_RNN_SPLIT", split)
    main, entered, hold, ran = threading.current_thread(), threading.Event(), \
        threading.Event(), []
    T = 16
    first = None                             # the chunk the worker starts and is held in

    def fn(lo, hi, part):
        on_main = threading.current_thread() is main
        ran.append((lo, part, on_main))
        if not on_main and part == 0 and lo == first:
            entered.set()
            hold.wait(10)
        if on_main and lo == first and part == 2:
            hold.set()                       # this thread has claimed its share
        vals = [None, None, None]
        vals[part] = np.array([float(100 * lo + 10 * hi + part)])
        return tuple(vals)

    chunks = steps._TimeChunks(T, fn, parts=3)
    first = T - chunks.size
    for t in range(T - 1, -1, -1):
        chunks.done(t)
    assert len(chunks.pending) == T // chunks.size - 1
    assert entered.wait(10)
    if split == "0":
        threading.Timer(0.2, hold.set).start()
    out = chunks.results()
    bounds = [(c.lo, c.hi) for c, _ in chunks.pending] + [(0, chunks.hi)]
    want = [sum(100.0 * lo + 10 * hi + j for lo, hi in bounds) for j in range(3)]
    np.testing.assert_array_equal(np.concatenate(out), want)
    assert sorted((lo, j) for lo, j, _ in ran) == sorted((lo, j) for lo, _ in bounds
                                                         for j in range(3))
    by_main = {j for lo, j, on_main in ran if lo == first and on_main}
    assert by_main == ({1, 2} if split == "1" else set())


def test_buffer_pool_recycles_released_arrays_and_never_live_ones():
    big = np.random.default_rng(1)
    Wb, Rb, bb = big.standard_normal((16, 128)), big.standard_normal((32, 128)), np.zeros(128)
    xs = [big.standard_normal((8, 64, 16)) for _ in range(3)]
    rnn_ops.clear_buffer_pool()
    first = rnn_ops.lstm_sequence(xs[0], Wb, Rb, bb)
    kept = [o.value.copy() for o in first]
    second = rnn_ops.lstm_sequence(xs[1], Wb, Rb, bb)        # first's buffers are still live
    for o, k in zip(first, kept):
        np.testing.assert_array_equal(o.value, k)
    assert not np.allclose(second[0].value, first[0].value)
    pooled = rnn_ops._POOL._bytes
    del first, second, o
    for x in xs:                                             # released: reused, not grown
        out = rnn_ops.lstm_sequence(x, Wb, Rb, bb)
        del out
    assert rnn_ops._POOL._bytes == pooled
    with GradientTape() as tape:                             # the tape keeps its activations
        xv = Variable(xs[0], dtype="float64")
        seq, h, c = rnn_ops.lstm_sequence(xv, Wb, Rb, bb)
    rnn_ops.lstm_sequence(xs[2], Wb, Rb, bb)
    g = tape.gradient(h, xv)
    with GradientTape() as tape2:
        xv2 = Variable(xs[0], dtype="float64")
        h2 = rnn_ops.lstm_sequence(xv2, Wb, Rb, bb)[1]
    np.testing.assert_array_equal(g, tape2.gradient(h2, xv2))
    rnn_ops.clear_buffer_pool()
    assert rnn_ops._POOL._bytes == 0

"""The LSTM and GRU weight gradients on the backward's side stream (streams.py): the op finishes
the input gradient's rows and returns the kernel / recurrent kernel / bias gradients as
`Deferred`s made from its time chunks; `GradientTape.gradient(..., pending=True)` hands
them back as Futures and the optimizer updates the variables whose gradients are final
first. Every path gives the numbers of the sequential order (side stream off, or
MODELKIT_RNN_SIDE=0), for any thread count; float64 finite-difference gradients through
the deferred path."""

from concurrent.futures import Future

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend import GradientTape, Variable, rnn_ops, streams
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.backend.rnn_ops import steps


@pytest.fixture
def deferred(monkeypatch):
    """Small weight GEMMs count as worth the side stream; records the number of worker
    chunks of each backward pass whose weight gradients went there."""
    monkeypatch.setattr(streams, "MIN_SIDE_FLOPS", 0)
    calls = []
    real = steps._TimeChunks.deferred

    def counted(self, *args):
        calls.append(len(self.pending))
        return real(self, *args)
    monkeypatch.setattr(steps._TimeChunks, "deferred", counted)
    return calls


def _case(dtype, seed=0, T=24, bias=True, masked=False, dropout=False, backwards=False,
          kind="lstm", reset_after=True):
    g = np.random.default_rng(seed)
    B, I, U = 3, 5, 4
    G = 4 if kind == "lstm" else 3
    x = Variable(g.standard_normal((B, T, I)).astype(dtype))
    bias_shape = (G * U,) if kind == "lstm" or not reset_after else (2, G * U)
    ws = [Variable((g.standard_normal(s) * 0.5).astype(dtype))
          for s in ((I, G * U), (U, G * U)) + ((bias_shape,) if bias else ())]
    kw = {"go_backwards": backwards}
    if kind == "gru":
        kw["reset_after"] = reset_after
    if masked:
        mask = np.ones((B, T), bool)
        mask[0, 5:9] = mask[2, -3:] = False
        kw["mask"] = mask
    if dropout:
        kw["input_dropout"] = ((g.random((G, B, I)) > 0.3) / 0.7).astype(dtype)
        kw["recurrent_dropout"] = ((g.random((B, U)) > 0.3) / 0.7).astype(dtype)
    gy = g.standard_normal((B, T, U)).astype(dtype)
    return x, ws, kw, gy, kind


def _grads(case, pending=False, sources=None, chain=False):
    """The gradients of a loss of the op's outputs; `chain`: the op's input is made by an
    op (x * 1), so its gradient is the chain's (a leaf's goes to the side stream)."""
    x, ws, kw, gy, kind = case
    with GradientTape() as tape:
        xin = x * 1.0 if chain else x
        if kind == "lstm":
            seq, h, c = rnn_ops.lstm_sequence(xin, *ws, **kw)
        else:
            seq, c = rnn_ops.gru_sequence(xin, *ws, **kw)
        loss = K.sum(seq * gy) + K.sum(c * c)
    return tape.gradient(loss, sources or [x] + ws, pending=pending)


CASES = [dict(), dict(bias=False), dict(masked=True), dict(dropout=True),
         dict(masked=True, dropout=True), dict(backwards=True), dict(kind="gru"),
         dict(kind="gru", reset_after=False), dict(kind="gru", bias=False),
         dict(kind="gru", masked=True, dropout=True),
         dict(kind="gru", reset_after=False, masked=True, dropout=True)]


def _id(opts):
    return "-".join(f"{k}={v}" for k, v in opts.items()) or "plain"


@pytest.mark.parametrize("threads", ["2", "3"])
@pytest.mark.parametrize("opts", CASES, ids=_id)
def test_deferred_weight_gradients_give_the_sequential_numbers(monkeypatch, deferred,
                                                               threads, opts):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
    case = _case(np.float32, **opts)
    side = [np.asarray(g) for g in _grads(case)]
    assert deferred and max(deferred) >= 1        # went to the side, with worker chunks
    for a, e in zip(side, _grads(case, chain=True)):
        np.testing.assert_array_equal(a, e)       # the input gradient made on this thread
    for switch in ("MODELKIT_RNN_SIDE", "MODELKIT_SIDE_STREAM"):
        monkeypatch.setenv(switch, "0")
        calls = len(deferred)
        sequential = [np.asarray(g) for g in _grads(case)]
        assert len(deferred) == calls             # switched off: not deferred
        for a, e in zip(side, sequential):
            assert a.dtype == np.float32
            np.testing.assert_array_equal(a, e)


def test_only_the_needed_weight_gradients_are_made(monkeypatch, deferred):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    case = _case(np.float32)
    x, ws = case[0], case[1]
    full = _grads(case)
    for k in range(3):
        got = _grads(case, sources=[x, ws[k]])
        np.testing.assert_array_equal(got[0], full[0])
        np.testing.assert_array_equal(got[1], full[k + 1])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_an_untracked_input_needs_no_rows(monkeypatch, deferred, kind):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    case = _case(np.float32, kind=kind)
    x, ws, kw, gy, _ = case
    plain = (np.asarray(x.value),) + case[1:]
    side = _grads(plain, sources=ws)
    assert deferred
    for a, e in zip(side, _grads(case)[1:]):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("opts", CASES[:4] + CASES[6:8], ids=_id)
def test_float64_gradients_through_the_deferred_path(monkeypatch, deferred, opts):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    _, ws, kw, _, kind = _case(np.float64, T=10, **opts)
    x = np.random.default_rng(5).standard_normal((3, 10, 5))
    op = rnn_ops.lstm_sequence if kind == "lstm" else rnn_ops.gru_sequence

    def fn(xv, *wv):
        seq, last = op(xv, *wv, **kw)[:2]
        return K.concatenate([K.reshape(seq, (3, -1)), last], axis=1)

    assert_gradients_close(fn, [x] + [w.value for w in ws], rtol=1e-5, atol=1e-7)
    assert deferred


def test_pending_gradients_are_futures_of_the_same_numbers(monkeypatch, deferred):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    case = _case(np.float32)
    got = _grads(case, pending=True, chain=True)
    assert isinstance(got[0], np.ndarray)                  # the chain's: final
    assert all(isinstance(g, Future) for g in got[1:])     # the weights': pending
    resolved = [streams.resolve(g) for g in got]
    for a, e in zip(resolved, _grads(case)):
        np.testing.assert_array_equal(a, e)
    got = _grads(case, pending=True)                       # a leaf input's: pending too
    assert all(isinstance(g, Future) for g in got)
    for a, e in zip([streams.resolve(g) for g in got], _grads(case)):
        np.testing.assert_array_equal(a, e)
    monkeypatch.setenv("MODELKIT_SIDE_STREAM", "0")         # no stream: plain arrays
    assert all(isinstance(g, np.ndarray) for g in _grads(case, pending=True))


def test_a_leaf_used_twice_comes_back_as_one_later_gradient(monkeypatch, deferred):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    x, ws, kw, gy, _ = _case(np.float32)

    def grads(pending):
        with GradientTape() as tape:
            a = rnn_ops.lstm_sequence(x, *ws)[0]
            b = rnn_ops.lstm_sequence(x * 0.5, *ws)[0]
            loss = K.sum(a * gy) + K.sum(b * b)
        return tape.gradient(loss, ws, pending=pending)

    got = grads(True)
    assert all(isinstance(g, streams.Later) for g in got)
    for a, e in zip([streams.resolve(g) for g in got], grads(False)):
        np.testing.assert_array_equal(a, e)


def _adam_pair(**kw):
    from modelkit.optimizers import Adam
    g = np.random.default_rng(2)
    v1, v2 = (Variable(g.standard_normal(s).astype(np.float32)) for s in ((6, 3), (4,)))
    g1, g2 = (g.standard_normal(s).astype(np.float32) for s in ((6, 3), (4,)))
    return Adam(0.01, **kw), v1, v2, g1, g2


@pytest.mark.parametrize("clip", [None, 0.5], ids=["plain", "clipnorm"])
def test_optimizer_updates_the_final_gradients_first_and_exactly(clip):
    kw = {} if clip is None else {"clipnorm": clip}
    opt, v1, v2, g1, g2 = _adam_pair(**kw)
    ref_opt, r1, r2, _, _ = _adam_pair(**kw)
    for _ in range(3):
        ref_opt.apply_gradients([(g2, r2), (g1, r1)])
    seen = []
    for _ in range(3):
        before = v1.value.copy()
        pending = streams.Later(lambda: seen.append(
            not np.array_equal(v1.value, before)) or g2)
        opt.apply_gradients([(pending, v2), (g1, v1)])
    # the pending gradient is waited for after v1's update, except with clipping (which
    # needs every gradient first)
    assert seen == [clip is None] * 3
    assert opt.variables == [v2, v1]                       # slots in the caller's order
    for a, e in ((v1, r1), (v2, r2)):
        np.testing.assert_array_equal(a.value, e.value)
    assert opt.iterations == ref_opt.iterations == 3


def test_a_pending_gradient_of_the_wrong_shape_is_a_shape_error():
    from modelkit.errors import ShapeError
    opt, v1, v2, g1, _ = _adam_pair()
    with pytest.raises(ShapeError, match="gradient of shape"):
        opt.apply_gradients([(streams.Later(lambda: g1), v2), (g1, v1)])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_training_with_deferred_gradients_matches_the_sequential_order(monkeypatch, deferred,
                                                                        kind):
    import modelkit
    from modelkit.layers import GRU, LSTM, Dense, Embedding
    from modelkit.models import Sequential
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    g = np.random.default_rng(0)
    x = g.integers(1, 50, (16, 12))
    y = g.integers(0, 2, (16, 1)).astype(np.float32)

    def trained():
        modelkit.initializers.set_random_seed(0)
        rnn = LSTM(6) if kind == "lstm" else GRU(6)
        model = Sequential([Embedding(50, 8), rnn, Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer="adam")
        for s in range(3):
            model.train_on_batch(x[s * 4:(s + 1) * 4], y[s * 4:(s + 1) * 4])
        return model.get_weights(), model.optimizer.get_weights()

    side = trained()
    assert deferred
    monkeypatch.setenv("MODELKIT_SIDE_STREAM", "0")
    sequential = trained()
    for a, e in zip(side[0] + side[1], sequential[0] + sequential[1]):
        np.testing.assert_array_equal(a, e)


def test_a_failing_weight_part_raises_from_resolve_and_from_gradient(monkeypatch, deferred):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    case = _case(np.float32)
    real = steps._TimeChunks.deferred

    def failing(self, parts, indices, post):
        def boom(*sums):
            raise RuntimeError("side failed")
        return real(self, parts, indices, boom)

    monkeypatch.setattr(steps._TimeChunks, "deferred", failing)
    got = _grads(case, pending=True)
    for g in got[1:]:
        with pytest.raises(RuntimeError, match="side failed"):
            streams.resolve(g)
    with pytest.raises(RuntimeError, match="side failed"):
        _grads(case)


def test_time_chunks_share_the_rows_then_defer_the_weights(monkeypatch):
    """share((0,)) runs or waits for every chunk's part 0 only; the chunks the worker had
    not started are taken off its queue, and `deferred` makes their other parts (those
    first) and sums every chunk in results()'s order."""
    import threading
    from modelkit.backend import parallel
    monkeypatch.setattr(parallel, "threads", lambda: 2)
    main, entered, hold, ran = threading.current_thread(), threading.Event(), \
        threading.Event(), []
    T = 16

    def fn(lo, hi, part):
        ran.append((lo, part, threading.current_thread() is main))
        if threading.current_thread() is not main and not entered.is_set():
            entered.set()
            hold.wait(10)                   # the worker is held in its first part
        vals = [None, None]
        if part:
            vals[part - 1] = np.array([float(100 * lo + 10 * hi + part)])
        return tuple(vals)

    chunks = steps._TimeChunks(T, fn, parts=3)
    for t in range(T - 1, -1, -1):
        chunks.done(t)
    assert entered.wait(10)
    threading.Timer(0.2, hold.set).start()
    chunks.share((0,))
    bounds = [(c.lo, c.hi) for c, _ in chunks.pending] + [(0, chunks.hi)]
    assert sorted((lo, j) for lo, j, _ in ran if j == 0) == sorted((lo, 0) for lo, _ in bounds)
    assert [c.started for c, _ in chunks.pending] == [True] + [False] * (len(bounds) - 2)
    d1 = chunks.deferred((1,), (0,), lambda a: a * 2)
    d2 = chunks.deferred((2,), (1,), lambda a: a)
    np.testing.assert_array_equal(d1(), [2 * sum(100.0 * lo + 10 * hi + 1 for lo, hi in bounds)])
    np.testing.assert_array_equal(d2(), [sum(100.0 * lo + 10 * hi + 2 for lo, hi in bounds)])
    assert sorted((lo, j) for lo, j, _ in ran) == sorted((lo, j) for lo, _ in bounds
                                                         for j in range(3))

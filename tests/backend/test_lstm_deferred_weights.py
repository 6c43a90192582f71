"""The LSTM's weight gradients on the backward's side stream (streams.py): the input
gradient's rows finished by the op, the kernel / recurrent kernel / bias gradients one
`Deferred` picked three ways; `GradientTape.gradient(..., pending=True)` hands them back as
Futures and the optimizer updates the variables whose gradients are final first. Every
path gives the numbers of the sequential order (side stream off), for any thread count;
float64 finite-difference gradients through the deferred path."""

import numpy as np
import pytest
from concurrent.futures import Future

from modelkit import backend as K
from modelkit.backend import GradientTape, Variable, rnn_ops, streams
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.backend.rnn_ops import steps


@pytest.fixture
def deferred(monkeypatch):
    """Counts the backward passes whose weight gradients went to the side stream."""
    calls = []
    real = steps._TimeChunks.deferred_results

    def counted(self):
        calls.append(len(self.pending))
        return real(self)
    monkeypatch.setattr(steps._TimeChunks, "deferred_results", counted)
    return calls


def _case(dtype, seed=0, T=24, bias=True, masked=False, dropout=False):
    g = np.random.default_rng(seed)
    B, I, U = 3, 5, 4
    x = Variable(g.standard_normal((B, T, I)).astype(dtype))
    ws = [Variable((g.standard_normal(s) * 0.5).astype(dtype))
          for s in ((I, 4 * U), (U, 4 * U)) + (((4 * U,),) if bias else ())]
    kw = {}
    if masked:
        mask = np.ones((B, T), bool)
        mask[0, 5:9] = mask[2, -3:] = False
        kw["mask"] = mask
    if dropout:
        kw["input_dropout"] = ((g.random((4, B, I)) > 0.3) / 0.7).astype(dtype)
        kw["recurrent_dropout"] = ((g.random((B, U)) > 0.3) / 0.7).astype(dtype)
    gy = g.standard_normal((B, T, U)).astype(dtype)
    return x, ws, kw, gy


def _grads(case, pending=False):
    x, ws, kw, gy = case
    with GradientTape() as tape:
        seq, h, c = rnn_ops.lstm_sequence(x, *ws, **kw)
        loss = K.sum(seq * gy) + K.sum(c * c)
    return tape.gradient(loss, [x] + ws, pending=pending)


CASES = [dict(), dict(bias=False), dict(masked=True), dict(dropout=True),
         dict(masked=True, dropout=True)]


@pytest.mark.parametrize("threads", ["2", "3"])
@pytest.mark.parametrize("opts", CASES, ids=lambda o: "-".join(o) or "plain")
def test_deferred_weight_gradients_give_the_sequential_numbers(monkeypatch, deferred,
                                                               threads, opts):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
    case = _case(np.float32, **opts)
    side = [np.asarray(g) for g in _grads(case)]
    assert deferred and max(deferred) >= 1        # went to the side, with worker chunks
    monkeypatch.setenv("MODELKIT_SIDE_STREAM", "0")
    sequential = [np.asarray(g) for g in _grads(case)]
    assert len(deferred) == 1                     # the stream off: not deferred
    for a, e in zip(side, sequential):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("opts", CASES[:4], ids=lambda o: "-".join(o) or "plain")
def test_float64_gradients_through_the_deferred_path(monkeypatch, deferred, opts):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    _, ws, kw, _ = _case(np.float64, T=10, **opts)
    x = np.random.default_rng(5).standard_normal((3, 10, 5))

    def fn(xv, *wv):
        seq, h, c = rnn_ops.lstm_sequence(xv, *wv, **kw)
        return K.concatenate([K.reshape(seq, (3, -1)), c], axis=1)

    assert_gradients_close(fn, [x] + [w.value for w in ws], rtol=1e-5, atol=1e-7)
    assert deferred


def test_pending_gradients_are_futures_of_the_same_numbers(monkeypatch, deferred):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    case = _case(np.float32)
    got = _grads(case, pending=True)
    assert isinstance(got[0], np.ndarray)                  # the chain's: final
    assert all(isinstance(g, Future) for g in got[1:])     # the weights': pending
    resolved = [streams.resolve(g) for g in got]
    for a, e in zip(resolved, _grads(case)):
        np.testing.assert_array_equal(a, e)
    monkeypatch.setenv("MODELKIT_SIDE_STREAM", "0")         # no stream: plain arrays
    assert all(isinstance(g, np.ndarray) for g in _grads(case, pending=True))


def test_pick_computes_its_source_once_inline_and_on_the_stream():
    runs = []
    source = streams.Deferred(lambda: runs.append(1) or (np.ones(2), np.full(3, 2.0)))
    a, b = source.pick(0), source.pick(1, lambda v: v * 10)
    np.testing.assert_array_equal(b(), [20.0] * 3)
    np.testing.assert_array_equal(a(), [1.0, 1.0])
    assert runs == [1]
    runs.clear()
    source = streams.Deferred(lambda: runs.append(1) or (np.ones(2), np.full(3, 2.0)))
    with streams.SideStream() as side:
        fa, fb = side.submit(source.pick(0)), side.submit(source.pick(1, lambda v: v * 10))
    np.testing.assert_array_equal(fb.result(), [20.0] * 3)
    np.testing.assert_array_equal(fa.result(), [1.0, 1.0])
    assert runs == [1]


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
    for a, e in ((v1, r1), (v2, r2)):
        np.testing.assert_array_equal(a.value, e.value)
    assert opt.iterations == ref_opt.iterations == 3


def test_training_with_deferred_gradients_matches_the_sequential_order(monkeypatch, deferred):
    import modelkit
    from modelkit.layers import LSTM, Dense, Embedding
    from modelkit.models import Sequential
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    g = np.random.default_rng(0)
    x = g.integers(1, 50, (16, 12))
    y = g.integers(0, 2, (16, 1)).astype(np.float32)

    def trained():
        modelkit.initializers.set_random_seed(0)
        model = Sequential([Embedding(50, 8), LSTM(6), Dense(1, activation="sigmoid")])
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


def test_a_failing_deferred_gradient_raises_from_resolve(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    case = _case(np.float32)
    real = steps._TimeChunks.deferred_results

    def failing(self):
        real(self)                     # the rows finished, the weights' Deferred dropped
        return streams.Deferred(lambda: (_ for _ in ()).throw(RuntimeError("side failed")))

    monkeypatch.setattr(steps._TimeChunks, "deferred_results", failing)
    got = _grads(case, pending=True)
    with pytest.raises(RuntimeError, match="side failed"):
        streams.resolve(got[1])
    with pytest.raises(RuntimeError, match="side failed"):
        _grads(case)

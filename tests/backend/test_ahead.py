"""A relu computed by the op whose output it reads (modelkit/backend/ahead.py): the
float32 batch norm (onnxruntime's Relu node in its session, or the C pass's second output)
and the blocked residual add compute it from the second training step on; outputs and
gradients are bit-identical to the relu's own pass, nothing changes without a tape, and the
off-switch works."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend import GradientTape, Variable, ahead, norm_fast
from modelkit.backend.math_ops import _add
from modelkit.backend.nn_ops import _relu
from modelkit.backend.norm_ops import _batch_norm_moments
from modelkit.backend.tape import apply


def _nchw_view(shape, rng):
    """channels-last view of channels-first memory (what conv_fast returns), float32."""
    n, h, w, c = shape
    return (rng.standard_normal((n, c, h, w)) * 2 + 0.5).astype(np.float32).transpose(0, 2, 3, 1)


def _step(x, short, gamma, beta, gy, residual):
    """relu(bn(x)) or relu(short + bn(x)) on a tape -> (relu output, gradients)."""
    xs = [Variable(v) for v in (x, short, gamma, beta)]
    with GradientTape() as tape:
        y, _, _ = apply(_batch_norm_moments, xs[0], xs[2], xs[3], None, axes=(0, 1, 2),
                        epsilon=1e-3)
        if residual:
            y = apply(_add, xs[1], y)
        r = apply(_relu, y)
        loss = K.sum(r * K.constant(gy))
    return r.value, [np.asarray(g) for g in tape.gradient(loss, xs)], y.value


@pytest.fixture(params=["onnxruntime", "native"])
def takes(request, monkeypatch):
    """How many relus found their output computed ahead (the batch norm's forward on
    onnxruntime, or on the C passes)."""
    count = [0]
    real = ahead.take

    def counted(x, request):
        r = real(x, request)
        count[0] += r is not None
        return r
    monkeypatch.setattr(ahead, "take", counted)
    monkeypatch.setattr(norm_fast, "ORT_MIN_POSITIONS", 1)
    monkeypatch.setattr(norm_fast, "NATIVE_MIN_POSITIONS",
                        1 if request.param == "native" else 10 ** 9)
    for name in ("MODELKIT_AHEAD", "MODELKIT_FAST_CONV"):
        monkeypatch.delenv(name, raising=False)
    ahead._REQUESTS.clear()
    return count


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("shape", [(4, 8, 8, 3), (3, 16, 16, 5)])
def test_relu_ahead_is_the_relu_of_the_output(takes, monkeypatch, residual, shape):
    rng = np.random.default_rng(sum(shape))
    x, short = _nchw_view(shape, rng), _nchw_view(shape, rng)
    gamma = rng.standard_normal((1, 1, 1, shape[3])).astype(np.float32)
    beta = rng.standard_normal((1, 1, 1, shape[3])).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    monkeypatch.setattr("modelkit.backend.parallel.BLOCK_BYTES", 1 << 10)   # blocked add
    steps = [_step(x, short, gamma, beta, gy, residual) for _ in range(3)]
    assert takes[0] == 2                           # from the second step on
    for r, grads, y in steps:
        assert r.dtype == np.float32 and r.strides == y.strides
        assert np.array_equal(r, np.maximum(y, 0)) and not np.shares_memory(r, y)
        for a, b in zip(grads, steps[0][1]):
            assert np.array_equal(a, b)


def test_nothing_ahead_without_a_tape_or_when_off(takes, monkeypatch):
    rng = np.random.default_rng(3)
    shape = (4, 8, 8, 3)
    x, short = _nchw_view(shape, rng), _nchw_view(shape, rng)
    gamma, beta = (rng.standard_normal((1, 1, 1, 3)).astype(np.float32) for _ in range(2))
    gy = rng.standard_normal(shape).astype(np.float32)
    for _ in range(2):                             # no tape: no site, nothing computed ahead
        y, _, _ = apply(_batch_norm_moments, x, gamma, beta, None, axes=(0, 1, 2), epsilon=1e-3)
        assert np.array_equal(apply(_relu, y).value, np.maximum(y.value, 0))
    assert takes[0] == 0
    monkeypatch.setenv("MODELKIT_AHEAD", "0")
    want = _step(x, short, gamma, beta, gy, False)
    _step(x, short, gamma, beta, gy, False)
    assert takes[0] == 0
    monkeypatch.delenv("MODELKIT_AHEAD")
    _step(x, short, gamma, beta, gy, False)
    got = _step(x, short, gamma, beta, gy, False)
    assert takes[0] == 1
    assert np.array_equal(got[0], want[0])
    assert all(np.array_equal(a, b) for a, b in zip(got[1], want[1]))


def test_a_site_no_relu_reads_any_more_is_not_computed_again(takes, monkeypatch):
    """After a graph change the producer computes the relu once more, then stops."""
    rng = np.random.default_rng(4)
    shape = (4, 8, 8, 3)
    x = _nchw_view(shape, rng)
    gamma, beta = (rng.standard_normal((1, 1, 1, 3)).astype(np.float32) for _ in range(2))
    made = []
    for name in ("_ort_forward", "_native_forward"):         # whichever the fixture chose
        real = getattr(norm_fast, name)
        monkeypatch.setattr(norm_fast, name, lambda *a, f=real: made.append(a[-1]) or f(*a))
    _step(x, x, gamma, beta, np.ones(shape, np.float32), False)
    _step(x, x, gamma, beta, np.ones(shape, np.float32), False)
    for _ in range(3):                         # now nothing reads the output through a relu
        with GradientTape():
            xs = [Variable(v) for v in (x, gamma, beta)]
            apply(_batch_norm_moments, xs[0], xs[1], xs[2], None, axes=(0, 1, 2),
                  epsilon=1e-3)
    assert made == [False, True, True, False, False]


def test_a_second_relu_of_the_same_output_makes_its_own_array(takes):
    rng = np.random.default_rng(5)
    shape = (4, 8, 8, 3)
    x = _nchw_view(shape, rng)
    gamma, beta = (rng.standard_normal((1, 1, 1, 3)).astype(np.float32) for _ in range(2))
    for _ in range(2):
        with GradientTape():
            xs = [Variable(v) for v in (x, gamma, beta)]
            y, _, _ = apply(_batch_norm_moments, xs[0], xs[1], xs[2], None, axes=(0, 1, 2),
                            epsilon=1e-3)
            r1, r2 = apply(_relu, y), apply(_relu, y)
    assert takes[0] == 1
    assert not np.shares_memory(r1.value, r2.value)
    assert np.array_equal(r1.value, r2.value)


class _Tape:
    def __init__(self, recorded):
        self.records = [None] * recorded


def _produce(out, extras, recorded=3):
    """Run as the op "op" at tape position `recorded`: -> the requests it was asked for."""
    before = ahead.running("op", _Tape(recorded))
    try:
        asked = ahead.wanted()
        ahead.produced(out, {r: extras[r] for r in asked if r in extras})
        return asked
    finally:
        ahead.restore(before)


def test_requests_are_learnt_per_site_given_once_and_dropped_when_untaken(monkeypatch):
    monkeypatch.delenv("MODELKIT_AHEAD", raising=False)
    ahead._REQUESTS.clear()
    pool = ("max_pool", (2, 2), (2, 2))
    extras = {"relu": np.ones(2), pool: np.zeros(1)}
    out = np.arange(4.0)
    assert _produce(out, extras) == frozenset()
    assert ahead.take(out, "relu") is None and ahead.take(out, pool) is None
    assert ahead.take(out.copy(), "relu") is None           # another array: no site
    out = np.arange(4.0)
    assert _produce(out, extras) == {"relu", pool}
    assert ahead.take(out, pool) is extras[pool]
    assert ahead.take(out, pool) is None                    # given once
    out = np.arange(4.0)
    assert _produce(out, extras, recorded=4) == frozenset()  # another site
    out = np.arange(4.0)
    assert _produce(out, extras) == {pool}                  # "relu" was computed, not taken
    out = np.arange(4.0)
    assert _produce(out, extras) == frozenset()             # nor the pool this time
    assert ahead.wanted() == frozenset()                    # no op running: no site

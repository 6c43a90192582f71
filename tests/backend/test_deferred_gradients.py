"""Kernel gradients in parts on the side stream (streams.Deferred.in_parts, used by the
fast conv): the worker runs the parts in order, a thread that waits for the result runs
the ones not started, the parts are combined in order -- the same float32 numbers as with
the stream off, for 1-channel (im2col) and strided (ConvTranspose input gradient) convs and
a kernel made by another op (not a leaf: no side stream), checked against float64 too."""

import threading

import numpy as np
import pytest

from modelkit.backend import GradientTape, Variable, conv_fast, streams
from modelkit.backend.tape import OPS, apply


@pytest.fixture(autouse=True)
def small_work_on_the_side(monkeypatch):
    """These tests use small shapes: offer every kernel gradient to the side stream."""
    monkeypatch.setattr(streams, "MIN_SIDE_FLOPS", 0)

CONV = OPS.get("conv")
POOL = OPS.get("pool_max")


def _grads(dtype, channels_first, derived_kernel=False, cin=3, strides=(1, 1), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 10, 10, cin)).astype(dtype)
    if channels_first:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    w1 = Variable((rng.standard_normal((3, 3, cin, 8)) * 0.4).astype(dtype))
    b1 = Variable((rng.standard_normal(8) * 0.1).astype(dtype))
    w2 = Variable((rng.standard_normal((3, 3, 8, 8)) * 0.3).astype(dtype))
    b2 = Variable((rng.standard_normal(8) * 0.1).astype(dtype))
    conv = dict(dilation=(1, 1), padding="same", channels_first=channels_first)
    xv = Variable(x)
    with GradientTape() as tape:
        k2 = apply(OPS.get("multiply"), w2, np.asarray(1.5, dtype)) if derived_kernel else w2
        h = apply(CONV, xv, w1, b1, relu=True, strides=(1, 1), **conv)
        h = apply(CONV, h, k2, b2, relu=True, strides=strides, **conv)
        h = apply(POOL, h, pool=(2, 2), strides=(2, 2), padding="valid",
                  channels_first=channels_first)
    gy = np.random.default_rng(seed + 1).standard_normal(h.shape).astype(dtype)
    return [np.asarray(g) for g in tape.gradient(h, [xv, w1, b1, w2, b2],
                                                 output_gradient=gy)]


@pytest.mark.parametrize("threads", ["2", "3"])
@pytest.mark.parametrize("channels_first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("case", ["plain", "strided", "derived"])
def test_kernel_gradient_parts_give_the_sequential_numbers(monkeypatch, threads,
                                                           channels_first, case):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
    kw = dict(derived_kernel=case == "derived")
    if case == "strided":
        kw.update(cin=1, strides=(2, 2))
    made = []
    in_parts = streams.Deferred.in_parts
    monkeypatch.setattr(streams.Deferred, "in_parts",
                        classmethod(lambda cls, *a: made.append(a[1]) or in_parts(*a)))
    side = _grads(np.float32, channels_first, **kw)
    # both convs' kernels are leaves (x too: the first conv's input gradient is needed),
    # except the derived one; 6 images -> _PARTS_PER_THREAD parts per thread, at most 6
    parts = min(conv_fast._PARTS_PER_THREAD * int(threads), 6)
    assert made == [parts] * (1 if case == "derived" else 2)
    monkeypatch.setenv("MODELKIT_SIDE_STREAM", "0")
    sequential = _grads(np.float32, channels_first, **kw)
    for a, e in zip(side, sequential):
        assert type(a) is np.ndarray and a.dtype == np.float32
        np.testing.assert_array_equal(a, e)
    exact = _grads(np.float64, channels_first, **kw)        # the numpy path
    for name, a, e in zip(("x", "w1", "b1", "w2", "b2"), side, exact):
        np.testing.assert_allclose(a, e, rtol=0, atol=3e-5 * max(np.abs(e).max(), 1.0),
                                   err_msg=name)


def test_the_waiting_thread_runs_the_parts_not_started(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    gate = threading.Event()
    ran = []

    def part(i):
        ran.append((i, threading.current_thread().name))
        return np.full(2, i, np.float32)

    with streams.SideStream() as side:
        blocker = side.submit(gate.wait)                 # the worker is busy
        f = side.submit(streams.Deferred.in_parts(part, 4, lambda p: np.stack(p)))
        np.testing.assert_array_equal(f.result(), np.repeat(np.arange(4.0)[:, None], 2, 1))
        assert [name for _, name in ran] == [threading.current_thread().name] * 4
        gate.set()
    assert blocker.result() is True
    assert f.result() is f.result()                      # combined once


def test_a_failing_part_raises_from_gradient(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    from modelkit.backend import conv_fast

    def boom(*a):
        raise RuntimeError("kernel part failed")

    monkeypatch.setattr(conv_fast, "_kernel_grad_part", boom)
    with pytest.raises(RuntimeError, match="kernel part failed"):
        _grads(np.float32, False)


@pytest.mark.parametrize("busy", [False, True], ids=["side-idle", "side-busy"])
def test_a_first_conv_kernel_gradient_joins_a_busy_side(monkeypatch, busy):
    """A conv whose input gradient nobody needs ends the backward pass: while the side
    stream still works its kernel gradient goes there whatever its size (the pass returns
    and the optimizer starts on the final gradients); with the side idle a small one stays
    in line as before. The numbers are the same either way."""
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    monkeypatch.setattr(streams, "MIN_SIDE_FLOPS", 400e6)       # the shipped threshold
    monkeypatch.setattr(streams, "busy", lambda: busy)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 12, 12, 3)).astype(np.float32)
    w = (rng.standard_normal((3, 3, 3, 16)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(16) * 0.1).astype(np.float32)
    y, saved = CONV.forward(x, w, b, relu=True, strides=(1, 1), dilation=(1, 1),
                            padding="same", channels_first=False)
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx, gk, gb = CONV.vjp(g, saved, (False, streams.SIDE, streams.SIDE))
    assert gx is None
    assert isinstance(gk, streams.Deferred) is busy
    got = gk() if busy else gk
    monkeypatch.setenv("MODELKIT_SIDE_STREAM", "0")
    _, want, want_b = CONV.vjp(g, saved, (False, True, True))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(streams.resolve(gb), want_b)
    exact = CONV.vjp(g.astype(np.float64), CONV.forward(
        x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), relu=True,
        strides=(1, 1), dilation=(1, 1), padding="same", channels_first=False)[1],
        (False, True, True))[1]
    np.testing.assert_allclose(got, exact, rtol=0, atol=2e-5 * np.abs(exact).max())

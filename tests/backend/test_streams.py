"""The backward pass's side stream (modelkit/backend/streams.py): leaves' gradients that a
VJP defers run on a worker thread; the gradients are bit-identical to the sequential order
(one leaf's contributions summed in tape order), exact against float64 references, errors
surface, nested tapes on the worker do not deadlock, and training is the same numbers with
the stream on or off for several thread counts and both data formats."""

import threading

import numpy as np
import pytest

from modelkit.backend import GradientTape, Variable, conv_fast, streams
from modelkit.backend.gradcheck import numeric_vs_analytic
from modelkit.backend.tape import OPS, apply, defop

CONV, DENSE = OPS.get("conv"), OPS.get("dense")


@pytest.fixture(autouse=True)
def small_work_on_the_side(monkeypatch):
    """These tests use small shapes: offer every leaf gradient to the side stream."""
    monkeypatch.setattr(streams, "MIN_SIDE_FLOPS", 0)


@pytest.fixture
def submitted(monkeypatch):
    """The functions handed to the side stream, counted."""
    count = [0]
    submit = streams.SideStream.submit

    def counting(self, fn):
        count[0] += 1
        return submit(self, fn)

    monkeypatch.setattr(streams.SideStream, "submit", counting)
    return count


@pytest.fixture
def side_on(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    monkeypatch.setenv("MODELKIT_SIDE_STREAM", "1")
    assert streams.enabled()


def _grads(fn, arrays, flag, monkeypatch, threads="2", seed=0):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
    monkeypatch.setenv("MODELKIT_SIDE_STREAM", flag)
    vs = [Variable(a) for a in arrays]
    with GradientTape() as tape:
        out = fn(*vs)
    gy = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    return [np.asarray(g) for g in tape.gradient(out, vs, output_gradient=gy)]


def _conv_chain(x, k1, b1, k2, b2, w, wb, channels_first=False):
    """conv -> relu conv -> dense, the kernels used twice (a leaf with several
    contributions, some deferred, some not)."""
    h = apply(CONV, x, k1, b1, strides=(1, 1), dilation=(1, 1), padding="same",
              channels_first=channels_first, relu=True)
    h = apply(CONV, h, k2, b2, strides=(1, 1), dilation=(1, 1), padding="same",
              channels_first=channels_first, relu=False)
    h = apply(CONV, h, k2, b2, strides=(1, 1), dilation=(1, 1), padding="same",
              channels_first=channels_first, relu=True)
    flat = h.value.reshape(h.shape[0], -1)
    from modelkit.backend import functions as F
    return apply(DENSE, F.reshape(h, flat.shape), w, wb)


def _conv_arrays(dtype, channels_first=False, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 8, 8, 16))
    if channels_first:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    arrays = [x, rng.standard_normal((3, 3, 16, 16)) * 0.2, rng.standard_normal(16),
              rng.standard_normal((3, 3, 16, 16)) * 0.2, rng.standard_normal(16),
              rng.standard_normal((8 * 8 * 16, 5)) * 0.1, rng.standard_normal(5)]
    return [a.astype(dtype) for a in arrays]


@pytest.mark.parametrize("channels_first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("threads", ["2", "3"])
def test_side_stream_gives_the_sequential_numbers(monkeypatch, submitted, channels_first,
                                                  threads):
    arrays = _conv_arrays(np.float32, channels_first)
    assert conv_fast.usable(arrays[0], arrays[1], 1)

    def fn(*vs):
        return _conv_chain(*vs, channels_first=channels_first)

    off = _grads(fn, arrays, "0", monkeypatch, threads)
    assert submitted[0] == 0
    on = _grads(fn, arrays, "1", monkeypatch, threads)
    # 3 conv kernels, the bias of the conv without relu (a relu conv sums its bias in the
    # relu pass), the dense kernel and bias, and the first conv's input gradient (x is a
    # leaf too: the conv defers its input gradient whenever its kernel's goes to the side)
    assert submitted[0] == 7
    again = _grads(fn, arrays, "1", monkeypatch, threads)
    for a, b, c in zip(off, on, again):
        assert a.dtype == np.float32 and b.shape == a.shape
        np.testing.assert_array_equal(b, a)
        np.testing.assert_array_equal(c, a)


@pytest.mark.parametrize("channels_first", [False, True], ids=["last", "first"])
def test_side_stream_gradients_match_float64(monkeypatch, channels_first):
    """float32 on the fast kernels with the stream against the exact float64 path."""
    a32 = _conv_arrays(np.float32, channels_first, seed=4)
    a64 = [a.astype(np.float64) for a in a32]

    def fn(*vs):
        return _conv_chain(*vs, channels_first=channels_first)

    g32 = _grads(fn, a32, "1", monkeypatch)
    g64 = _grads(fn, a64, "1", monkeypatch)
    for a, e in zip(g32, g64):
        np.testing.assert_allclose(a, e, rtol=0, atol=2e-4 * max(np.abs(e).max(), 1.0))


def test_dense_gradients_with_side_stream_pass_gradcheck(side_on):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)

    def fn(xv, wv, bv):
        h = apply(DENSE, xv, wv, bv)
        return apply(DENSE, h, Variable(np.eye(3)), bv) + apply(DENSE, xv, wv, None)

    analytic, numeric = numeric_vs_analytic(fn, [x, w, b])
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-7)


def test_leaf_gradient_helper():
    assert streams.leaf_gradient(False, lambda: 1) is None
    assert streams.leaf_gradient(True, lambda: 7) == 7
    d = streams.leaf_gradient(streams.SIDE, lambda: 7)
    assert isinstance(d, streams.Deferred) and d() == 7
    assert bool(streams.SIDE)


def test_only_leaves_are_offered_to_the_side(side_on):
    seen = []
    op = _recording_op("test_streams_needs", seen)
    a = Variable(np.ones(3, np.float32))
    with GradientTape() as tape:
        h = apply(op, a, a)
        out = apply(op, h, a)
    tape.gradient(out, [a])
    # the last op: input 0 is h (made by a recorded op), input 1 the variable
    assert seen[0][0] is True and seen[0][1] is streams.SIDE
    assert seen[1] == (streams.SIDE, streams.SIDE)


def test_no_side_stream_on_one_thread(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "1")
    assert not streams.enabled()
    seen = []
    op = _recording_op("test_streams_one_thread", seen)
    a = Variable(np.ones(3, np.float32))
    with GradientTape() as tape:
        out = apply(op, a, a)
    tape.gradient(out, [a])
    assert seen == [(True, True)]


def _recording_op(name, seen, fail=False):
    if name in OPS:
        op = OPS.get(name)
    else:
        @defop(name)
        def op(a, b):
            return a * b, (a, b)

    @op.defvjp
    def _(g, s, needs):
        seen.append(needs)

        def later():
            if fail:
                raise ValueError("deferred gradient failed")
            return g * s[0]
        return (streams.leaf_gradient(needs[0], lambda: g * s[1]),
                streams.leaf_gradient(needs[1], later))
    return op


def test_a_deferred_error_surfaces(side_on):
    op = _recording_op("test_streams_failing", [], fail=True)
    a, b = Variable(np.ones(3, np.float32)), Variable(np.ones(3, np.float32))
    with GradientTape() as tape:
        out = apply(op, a, b)
    with pytest.raises(ValueError, match="deferred gradient failed"):
        tape.gradient(out, [a])          # b's gradient is not asked for: it still raises


def test_a_deferred_gradient_may_run_a_tape_of_its_own(side_on):
    """A deferred function that differentiates runs its tape sequentially on the worker
    (no second side stream waiting on the one worker it runs on)."""
    inner = []

    if "test_streams_nested" in OPS:
        op = OPS.get("test_streams_nested")
    else:
        @defop("test_streams_nested")
        def op(a):
            return a * 2, None

    @op.defvjp
    def _(g, s, needs):
        def later():
            v = Variable(np.full(3, 3.0, np.float32))
            with GradientTape() as t:
                y = apply(DENSE, Variable(np.ones((1, 3), np.float32)),
                          Variable(np.ones((3, 1), np.float32)))
            inner.append(threading.current_thread().name)
            t.gradient(y, [v])
            return g * 2
        return (streams.leaf_gradient(needs[0], later),)

    a = Variable(np.ones(3, np.float32))
    with GradientTape() as tape:
        out = apply(op, a)
    (ga,) = tape.gradient(out, [a])
    np.testing.assert_array_equal(ga, np.full(3, 2.0, np.float32))
    assert inner and inner[0].startswith("modelkit-side")


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("threads", ["2", "3"])
def test_training_is_bit_identical_with_and_without_the_stream(monkeypatch, submitted,
                                                               data_format, threads):
    """A small ResNet-style model (conv with bias, BN, relu, residual add, pooling, dense):
    weights after a few SGD steps equal with the stream on and off."""
    from modelkit.layers import (Activation, Add, BatchNormalization, Conv2D, Dense,
                                 GlobalAveragePooling2D, Input)
    from modelkit.models import Model
    from modelkit.optimizers import SGD

    monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
    axis = -1 if data_format == "channels_last" else 1
    shape = (12, 12, 3) if data_format == "channels_last" else (3, 12, 12)

    def build():
        inp = Input(shape)
        x = Activation("relu")(BatchNormalization(axis=axis)(
            Conv2D(16, 3, padding="same", data_format=data_format)(inp)))
        y = BatchNormalization(axis=axis)(
            Conv2D(16, 3, padding="same", data_format=data_format)(x))
        x = Activation("relu")(Add()([x, y]))
        out = Dense(4, activation="softmax")(GlobalAveragePooling2D(data_format=data_format)(x))
        m = Model(inp, out)
        m.compile(loss="categorical_crossentropy", optimizer=SGD(0.05, momentum=0.9))
        return m

    rng = np.random.default_rng(0)
    x = rng.random((32,) + shape, dtype=np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 32)]
    models = {flag: build() for flag in "01"}
    models["1"].set_weights(models["0"].get_weights())
    for flag, m in models.items():
        monkeypatch.setenv("MODELKIT_SIDE_STREAM", flag)
        m.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        assert (submitted[0] > 0) == (flag == "1")
    for a, b in zip(models["0"].get_weights(), models["1"].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_small_leaf_gradients_stay_in_line(monkeypatch):
    """Below MIN_SIDE_FLOPS a VJP computes its leaves' gradients itself (SIDE -> True);
    at or above it, and for needs without SIDE, nothing changes."""
    monkeypatch.setattr(streams, "MIN_SIDE_FLOPS", 1000)
    side = (True, streams.SIDE, streams.SIDE)
    assert streams.worth_side(side, 999) == (True, True, True)
    assert streams.worth_side(side, 1000) is side
    assert streams.worth_side((True, False), 1) == (True, False)


def test_an_mlp_sized_dense_kernel_gradient_is_not_deferred(side_on, submitted):
    """The MLP benchmark's 784 -> 500 dense at batch 200 (157 MFLOP of kernel gradient) ran
    10% slower with its kernel gradient on the side: it stays in line; a VGG-sized
    convolution's (32 -> 32, 3x3, 28x28, batch 64: 925 MFLOP) goes to the side."""
    streams.MIN_SIDE_FLOPS = 400e6                  # the shipped value (fixture set 0)
    rng = np.random.default_rng(0)
    x = rng.random((200, 784), dtype=np.float32)
    k = Variable(rng.random((784, 500), dtype=np.float32))
    with GradientTape() as tape:
        y = apply(DENSE, x, k)
    tape.gradient(y, [k])
    assert submitted[0] == 0
    xc = rng.random((64, 28, 28, 32), dtype=np.float32)
    kc = Variable(rng.random((3, 3, 32, 32), dtype=np.float32) * 0.1)
    xv = Variable(xc)
    with GradientTape() as tape:
        y = apply(CONV, xv, kc, None, strides=(1, 1), dilation=(1, 1), padding="same",
                  channels_first=False, relu=False)
    tape.gradient(y, [xv, kc])
    assert submitted[0] >= 1


def test_kernel_gradient_starts_on_the_side_before_the_input_gradient(monkeypatch, side_on):
    """A conv whose kernel gradient goes to the side defers its input gradient too, and the
    tape submits the side's work before running that: the side computes the kernel
    gradient while this thread computes the input gradient (not after it)."""
    events = []
    submit = streams.SideStream.submit
    monkeypatch.setattr(streams.SideStream, "submit",
                        lambda self, fn: events.append("side") or submit(self, fn))
    input_grad = conv_fast._input_grad
    monkeypatch.setattr(conv_fast, "_input_grad",
                        lambda *a, **k: events.append("input") or input_grad(*a, **k))
    rng = np.random.default_rng(0)
    xv = Variable(rng.standard_normal((3, 8, 8, 16)).astype(np.float32))
    wv = Variable((rng.standard_normal((3, 3, 16, 16)) * 0.2).astype(np.float32))
    with GradientTape() as tape:
        h = apply(OPS.get("multiply"), xv, np.float32(2.0))     # x is no leaf of the conv
        y = apply(CONV, h, wv, strides=(1, 1), dilation=(1, 1), padding="same")
    gx, gw = tape.gradient(y, [xv, wv], output_gradient=np.ones(y.shape, np.float32))
    assert events == ["side", "input"]
    monkeypatch.setenv("MODELKIT_SIDE_STREAM", "0")
    with GradientTape() as tape:
        h = apply(OPS.get("multiply"), xv, np.float32(2.0))
        y = apply(CONV, h, wv, strides=(1, 1), dilation=(1, 1), padding="same")
    want = tape.gradient(y, [xv, wv], output_gradient=np.ones(y.shape, np.float32))
    np.testing.assert_array_equal(gx, want[0])
    np.testing.assert_array_equal(gw, want[1])

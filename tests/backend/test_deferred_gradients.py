"""Gradients off the critical path (parallel.later / Deferred, used by the fast conv's
kernel gradient): the tape gives the same float32 numbers as computing them in place, for
any thread count and both data formats, and resolves a deferred gradient wherever it is
read (a kernel used twice, a kernel made by another op) -- checked against float64."""

import numpy as np
import pytest

from modelkit.backend import GradientTape, Variable, parallel
from modelkit.backend.tape import OPS, apply

CONV = OPS.get("conv")
POOL = OPS.get("pool_max")


def _grads(dtype, channels_first, reuse_kernel=False, derived_kernel=False, seed=0,
           cin=3, strides=(1, 1)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 10, 10, cin)).astype(dtype)
    if channels_first:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    w1 = Variable((rng.standard_normal((3, 3, cin, 8)) * 0.4).astype(dtype))
    b1 = Variable((rng.standard_normal(8) * 0.1).astype(dtype))
    w2 = Variable((rng.standard_normal((3, 3, 8, 8)) * 0.3).astype(dtype))
    b2 = Variable((rng.standard_normal(8) * 0.1).astype(dtype))
    conv = dict(strides=(1, 1), dilation=(1, 1), padding="same",
                channels_first=channels_first)
    pool = dict(pool=(2, 2), strides=(2, 2), padding="valid",
                channels_first=channels_first)
    xv = Variable(x)
    with GradientTape() as tape:
        k2 = apply(OPS.get("multiply"), w2, np.asarray(1.5, dtype)) if derived_kernel else w2
        h = apply(CONV, xv, w1, b1, relu=True, **conv)
        h = apply(CONV, h, k2, b2, relu=True, **dict(conv, strides=strides))
        if reuse_kernel:
            h = apply(CONV, h, k2, b2, relu=True, **conv)
        h = apply(POOL, h, **pool)
    gy = np.random.default_rng(seed + 1).standard_normal(h.shape).astype(dtype)
    return [np.asarray(g) for g in tape.gradient(h, [xv, w1, b1, w2, b2],
                                                 output_gradient=gy)]


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("channels_first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("case", ["plain", "reuse", "derived", "strided"])
def test_deferred_kernel_gradients_are_the_same_numbers(monkeypatch, threads,
                                                        channels_first, case):
    """Two convs and a pool (the first conv on 3 channels or, "strided", on 1 channel,
    the second with strides 2: both im2col forms and the ConvTranspose input gradient)."""
    monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
    kw = dict(reuse_kernel=case == "reuse", derived_kernel=case == "derived")
    if case == "strided":
        kw.update(cin=1, strides=(2, 2))
    made = []
    later = parallel.later
    monkeypatch.setattr(parallel, "later", lambda *a: made.append(1) or later(*a))
    deferred = _grads(np.float32, channels_first, **kw)
    assert len(made) == (0 if threads == "1" else 2 + (case == "reuse"))
    with monkeypatch.context() as m:
        m.setattr(parallel, "may_defer", lambda: False)
        in_place = _grads(np.float32, channels_first, **kw)
    for a, e in zip(deferred, in_place):
        assert type(a) is np.ndarray and a.dtype == np.float32
        np.testing.assert_array_equal(a, e)
    exact = _grads(np.float64, channels_first, **kw)        # the numpy path
    for name, a, e in zip(("x", "w1", "b1", "w2", "b2"), deferred, exact):
        np.testing.assert_allclose(a, e, rtol=0, atol=3e-5 * max(np.abs(e).max(), 1.0),
                                   err_msg=name)


def test_a_failing_deferred_part_raises_from_gradient(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    from modelkit.backend import conv_fast

    def boom(*a):
        raise RuntimeError("kernel part failed")

    monkeypatch.setattr(conv_fast, "_kernel_grad_part", boom)
    with pytest.raises(RuntimeError, match="kernel part failed"):
        _grads(np.float32, False)

"""Dropout's keep masks: one random bit per value for rate 0.5, a byte for multiples of
1/256, sixteen bits otherwise; each path keeps the right fraction, scales the survivors by
1/keep exactly and routes the gradient through the same mask."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend import native, nn_ops

N = 200_000


def _dropped(rate, dtype=np.float32, shape=(400, 500), noise_shape=None, seed=3):
    x = np.random.default_rng(0).uniform(0.5, 1.5, shape).astype(dtype)
    out, mask = nn_ops._dropout.forward(x, rate=rate, noise_shape=noise_shape,
                                         rng=np.random.default_rng(seed))
    return x, out, mask


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.75, 0.125, 0.3, 0.1, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kept_fraction_and_scale(rate, dtype):
    x, out, _ = _dropped(rate, dtype)
    keep = 1.0 - rate
    kept = out != 0
    sigma = np.sqrt(keep * rate / N)
    assert abs(kept.mean() - keep) < 5 * sigma
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[kept], x[kept] * np.asarray(1.0 / keep, dtype))


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.3])
def test_no_pattern_across_positions(rate):
    """Bits cut from 64-bit draws: every position within a draw is kept as often."""
    _, out, _ = _dropped(rate, shape=(N // 64 * 64,), seed=11)
    by_position = (out != 0).reshape(-1, 64).mean(axis=0)
    sigma = np.sqrt((1 - rate) * rate / (N // 64))
    assert np.all(np.abs(by_position - (1 - rate)) < 5 * sigma)


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.3])
def test_gradient_goes_through_the_mask(rate):
    x, out, mask = _dropped(rate)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    (gx,) = nn_ops._dropout.vjp(g, mask, (True,))
    keep = np.float32(1.0 / (1.0 - rate))
    np.testing.assert_array_equal(gx, np.where(out != 0, g * keep, np.float32(0)))


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.3])
def test_noise_shape_broadcasts(rate):
    x, out, mask = _dropped(rate, shape=(8, 50, 64), noise_shape=(8, 1, 64))
    assert mask.shape == (8, 1, 64)
    kept = out != 0
    assert np.all(kept == kept[:, :1, :])


def test_seeded_dropout_repeats():
    x = K.variable(np.ones((300, 300), np.float32))
    a = K.eval(K.dropout(x, 0.5, seed=7))
    b = K.eval(K.dropout(x, 0.5, seed=7))
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 2.0}


@pytest.mark.parametrize("rate", [0.0, 1e-6])
def test_rate_zero_drops_nothing(rate):
    """As tf.nn.dropout: a zero rate (here: under 1/131072, the mask's resolution) keeps
    every value and scales by 1/keep."""
    x = np.random.default_rng(5).uniform(0.5, 1.5, (1000, 1000)).astype(np.float32)
    out = K.eval(K.dropout(K.variable(x), rate, seed=1))
    np.testing.assert_array_equal(out, x * np.float32(1.0 / (1.0 - rate)))


def _both_ways(x, rate, monkeypatch, seed=5, avx512=True):
    """(out, gradient, the next draw) with the C kernel and with numpy's mask."""
    g = np.random.default_rng(9).standard_normal(x.shape).astype(x.dtype)
    results = []
    if not avx512:                                      # the one-bit masks stay numpy's
        monkeypatch.setattr(native, "avx512_available", lambda: False)
    for switch in ("1", "0"):
        monkeypatch.setenv("MODELKIT_NATIVE", switch)
        rng = np.random.default_rng(seed)
        with np.errstate(invalid="ignore"):                 # inf * 0
            out, mask = nn_ops._dropout.forward(x, rate=rate, rng=rng)
            (gx,) = nn_ops._dropout.vjp(g, mask, (True,))
        results.append((out, gx, rng.integers(0, 2 ** 63), np.asarray(mask)))
    return results


@pytest.mark.skipif(not native.available(), reason="needs the C kernels")
@pytest.mark.parametrize("rate", [0.5, 0.25, 0.75, 0.3, 0.1])
@pytest.mark.parametrize("shape", [(200, 500), (7, 3), (1,), (33, 17), (4, 64), (65,)])
@pytest.mark.parametrize("avx512", [True, False], ids=["AVX-512", "without"])
def test_the_kernel_applies_the_numpy_mask(rate, shape, avx512, monkeypatch):
    if avx512 and not native.avx512_available():
        pytest.skip("no AVX-512 here")
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x.flat[:4] = [np.nan, np.inf, -np.inf, -0.0][:x.size]
    (out1, gx1, next1, mask1), (out0, gx0, next0, mask0) = _both_ways(x, rate, monkeypatch,
                                                                      avx512=avx512)
    for a, b in ((out1, out0), (gx1, gx0), (mask1, mask0)):
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == x.shape
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    assert next1 == next0                       # the same draws taken from the generator


@pytest.mark.skipif(not native.available(), reason="needs the C kernels")
def test_the_kernel_keeps_the_draws_and_numpy_the_mask(monkeypatch):
    x = np.ones((64, 64), np.float32)
    monkeypatch.setenv("MODELKIT_NATIVE", "1")
    _, drawn = nn_ops._dropout.forward(x, rate=0.5, rng=np.random.default_rng(0))
    _, strided = nn_ops._dropout.forward(np.ones((64, 128), np.float32)[:, ::2], rate=0.5,
                                         rng=np.random.default_rng(0))
    _, wide = nn_ops._dropout.forward(x.astype(np.float64), rate=0.5,
                                      rng=np.random.default_rng(0))
    assert isinstance(drawn, nn_ops._DrawnMask) and drawn.raw.nbytes == x.size // 8
    assert isinstance(strided, np.ndarray) and isinstance(wide, np.ndarray)
    np.testing.assert_array_equal(np.asarray(drawn), strided)
    # a gradient of another layout goes through the mask as an array
    g = np.random.default_rng(2).standard_normal((64, 128)).astype(np.float32)[:, ::2]
    (gx,) = nn_ops._dropout.vjp(g, drawn, (True,))
    np.testing.assert_array_equal(gx, g * np.asarray(drawn))

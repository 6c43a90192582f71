"""The float32 fast max pooling (modelkit/backend/pool_fast.py: MLAS MaxPool forward, the
gradient from input and maxima) against the numpy path and a per-window reference: values,
gradients to the first maximum of each window among ties, 1D/2D/3D, tiled, overlapping and
uncovered windows, both data formats."""

import itertools

import numpy as np
import pytest

from modelkit.backend import GradientTape, Variable, native, pool_fast
from modelkit.backend.tape import OPS, apply

POOL = OPS.get("pool_max")

CASES = [
    # (channels-last shape, pool, strides)
    ((3, 8, 4), (2,), (2,)),
    ((2, 9, 3), (3,), (2,)),
    ((3, 8, 6, 5), (2, 2), (2, 2)),
    ((2, 9, 7, 3), (2, 2), (2, 2)),           # the last row/column is in no window
    ((2, 9, 9, 4), (3, 3), (2, 2)),           # overlapping windows
    ((2, 8, 9, 3), (2, 3), (1, 2)),
    ((2, 6, 4, 6, 2), (2, 2, 2), (2, 2, 2)),
    ((1, 7, 6, 5, 3), (3, 2, 2), (2, 1, 2)),
]


def _reference(x, pool, strides, g):
    """Per-window loops over a channels-last array: maxima, gradient to the first maximum."""
    n, c = x.shape[0], x.shape[-1]
    out = tuple((L - p) // s + 1 for L, p, s in zip(x.shape[1:-1], pool, strides))
    y = np.empty((n,) + out + (c,), x.dtype)
    dx = np.zeros_like(x)
    for b, ch in itertools.product(range(n), range(c)):
        for o in np.ndindex(*out):
            cells = [tuple(oi * s + k for oi, s, k in zip(o, strides, off))
                     for off in np.ndindex(*pool)]
            vals = [x[(b,) + cell + (ch,)] for cell in cells]
            first = int(np.argmax(vals))
            y[(b,) + o + (ch,)] = vals[first]
            dx[(b,) + cells[first] + (ch,)] += g[(b,) + o + (ch,)]
    return y, dx


def _pool(x, pool, strides, channels_first, gy):
    v = Variable(x)
    with GradientTape() as tape:
        y = apply(POOL, v, pool=pool, strides=strides, channels_first=channels_first)
    return y.value, tape.gradient(y, [v], output_gradient=gy)[0]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("layout", ["first", "last-view"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_fast_max_pool_matches_the_reference(case, layout, ties):
    shape, pool, strides = case
    rng = np.random.default_rng(len(shape) + pool[0])
    x = rng.standard_normal(shape).astype(np.float32)
    if ties:       # relu zeros and repeated values: windows with several maxima
        x = np.maximum(np.round(x * 2) / 2, 0).astype(np.float32)
    out = tuple((L - p) // s + 1 for L, p, s in zip(shape[1:-1], pool, strides))
    g = rng.standard_normal(shape[:1] + out + shape[-1:]).astype(np.float32)
    y_ref, dx_ref = _reference(x, pool, strides, g)
    xn = np.ascontiguousarray(np.moveaxis(x, -1, 1))                 # channels-first memory
    if layout == "first":
        y, dx = _pool(xn, pool, strides, True, np.ascontiguousarray(np.moveaxis(g, -1, 1)))
        y, dx = np.moveaxis(y, 1, -1), np.moveaxis(dx, 1, -1)
        xin = xn
    else:
        xin = np.moveaxis(xn, 1, -1)                                 # channels-last view
        y, dx = _pool(xin, pool, strides, False, g)
    assert pool_fast.usable(xin, [(0, 0)] * len(pool), layout == "first")
    assert y.dtype == dx.dtype == np.float32
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", CASES[2:5], ids=str)
def test_fast_and_numpy_paths_agree(monkeypatch, case):
    shape, pool, strides = case
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
    xin = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, -1, 1)), 1, -1)
    y = apply(POOL, xin, pool=pool, strides=strides).value
    g = rng.standard_normal(y.shape).astype(np.float32)
    fast = _pool(xin, pool, strides, False, g)
    monkeypatch.setenv("MODELKIT_FAST_CONV", "0")
    assert not pool_fast.usable(xin, [(0, 0)] * len(pool), False)
    slow = _pool(xin, pool, strides, False, g)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)


TILED = [
    # (channels-last shape, pool): windows that tile the input (pool_fast._tiled_grad)
    ((3, 8, 5), (2,)),
    ((2, 9, 4), (3,)),
    ((3, 8, 6, 5), (2, 2)),
    ((2, 4, 14, 3), (2, 2)),
    ((2, 6, 70, 3), (2, 2)),                   # 35 windows a row: the C pass's vectors + tail
    ((2, 9, 6, 3), (3, 3)),
    ((2, 6, 9, 3), (2, 3)),
    ((2, 6, 4, 6, 2), (2, 2, 2)),
    ((1, 4, 6, 4, 3), (2, 3, 2)),              # 22 shifts > MAX_SHIFTS: per offset both ways
]


def _data(shape, kind, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    if kind == "ties":                  # relu zeros and repeated positive values
        x = np.maximum(np.round(x * 2) / 2, 0).astype(np.float32)
    elif kind == "signed-ties":         # repeated values of both signs, -0.0 next to 0.0
        x = (np.round(x * 2) / 2).astype(np.float32)
        x[..., ::3] *= -1
    elif kind == "nan":
        x.ravel()[::7] = np.nan
    return x


@pytest.mark.parametrize("case", TILED, ids=str)
@pytest.mark.parametrize("kind", ["distinct", "ties", "signed-ties", "nan"])
@pytest.mark.parametrize("relu", [False, True], ids=["plain", "relu-masked"])
def test_tiled_way_matches_the_offsets_way(monkeypatch, case, kind, relu):
    """Tiled windows: the full-size way (`_tiled_grad`) and, for 2x2 windows, the C pass give
    the same bits as the per-offset way, and the first maximum of each window the gradient
    (relu-masked: where y > 0)."""
    shape, pool = case
    rng = np.random.default_rng(len(shape) * 10 + sum(pool))
    x = _data(shape, kind, rng)
    xn = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    out = tuple(L // p for L, p in zip(shape[1:-1], pool))
    y, s = pool_fast.pool_max(xn, pool, pool, out, True)
    if relu:
        s.relu = xn                     # as after a fused-relu conv: only the flag matters
    g = rng.standard_normal(y.shape).astype(np.float32)
    g.ravel()[::5] = 0.0
    grads, calls = {}, []
    kernel = native.max_pool_2x2_grad
    monkeypatch.setattr(native, "max_pool_2x2_grad", lambda *a: calls.append(1) or kernel(*a))
    for way, c_kernel in (("0", "1"), ("1", "0"), ("1", "1")):   # per offset, tiled, C
        monkeypatch.setenv("MODELKIT_POOL_TILED", way)
        monkeypatch.setenv("MODELKIT_NATIVE", c_kernel)
        grads[way + c_kernel] = pool_fast.pool_max_vjp(g, s)
    assert bool(calls) == (pool == (2, 2) and native.available())
    for way in ("10", "11"):
        assert grads[way].dtype == np.float32 and grads[way].shape == xn.shape
        np.testing.assert_array_equal(grads[way].view(np.uint32), grads["01"].view(np.uint32))
    grads["1"] = grads["11"]
    if kind != "nan":
        gl = np.moveaxis(g, 1, -1)
        y_ref, dx_ref = _reference(x, pool, pool, gl * (np.moveaxis(y, 1, -1) > 0) if relu
                                   else gl)
        np.testing.assert_array_equal(np.moveaxis(y, 1, -1), y_ref)
        np.testing.assert_array_equal(np.moveaxis(grads["1"], 1, -1), dx_ref)


@pytest.mark.parametrize("pool", [(2,), (3,), (2, 2), (3, 3), (2, 3), (2, 2, 2), (1, 2),
                                  (3, 1, 2)], ids=str)
def test_earlier_cells_of_a_window(pool):
    """`_earlier` names, for every cell, exactly the cells before it in its window (row-major),
    and `_shifts` counts its entries."""
    spatial = tuple(2 * p for p in pool)
    shifts = pool_fast._earlier(pool, spatial)
    assert len(shifts) == pool_fast._shifts(pool)
    strides = np.cumprod((1,) + spatial[:0:-1])[::-1]
    for i, cell in enumerate(np.ndindex(*spatial)):
        window = tuple(c // p for c, p in zip(cell, pool))
        offset = tuple(c % p for c, p in zip(cell, pool))
        want = {int(np.dot([w * p + o for w, p, o in zip(window, pool, e)], strides))
                for e in np.ndindex(*pool) if e < offset}
        assert {i - shift for shift, cells in shifts if cells[i]} == want


def test_other_inputs_keep_the_numpy_path():
    none = [(0, 0), (0, 0)]
    x = np.zeros((2, 6, 6, 3), np.float32)                         # channels-last memory
    assert not pool_fast.usable(x, none, False)
    assert pool_fast.usable(np.moveaxis(x, -1, 1).copy(), none, True)
    assert not pool_fast.usable(x.astype(np.float64), none, False)
    assert not pool_fast.usable(np.moveaxis(x, -1, 1).copy(), [(0, 1), (0, 1)], True)


CONV = OPS.get("conv")


def _conv_pool(x, w, b, pool, strides, channels_first, second_use, gy):
    """Gradients of x, kernel and bias through relu conv -> max pool (-> + a second use of
    the conv's output, whose gradient then adds to the pool's)."""
    xv, wv, bv = Variable(x), Variable(w), Variable(b)
    with GradientTape() as tape:
        h = apply(CONV, xv, wv, bv, padding="same", channels_first=channels_first, relu=True)
        y = apply(POOL, h, pool=pool, strides=strides, channels_first=channels_first)
        loss = apply(OPS.get("sum"), apply(OPS.get("multiply"), y, gy))
        if second_use:
            loss = apply(OPS.get("add"), loss, apply(OPS.get("sum"), h))
    return [np.asarray(g) for g in tape.gradient(loss, [xv, wv, bv])]


@pytest.mark.parametrize("pool,strides,rows", [((2, 2), (2, 2), 9), ((2, 2), (2, 2), 8),
                                              ((3, 3), (2, 2), 9)], ids=str)
@pytest.mark.parametrize("channels_first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("second_use", [False, True], ids=["pool-only", "two-uses"])
def test_relu_mask_applied_on_the_pooled_side(monkeypatch, pool, strides, rows, channels_first,
                                              second_use):
    """A max pool right after a fused-relu conv applies the relu's mask to its pooled
    gradient and the conv skips its own mask pass, and takes the pool's channel sums of
    that gradient as its bias gradient instead of summing its own input gradient -- only
    when the pool's gradient reaches the conv unchanged. Integer data make the conv's
    outputs exact in float32 and float64, with many relu zeros and tied maxima, so both
    precisions pick the same cells."""
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, (2, rows, 8, 16)).astype(np.float64)
    w = rng.integers(-1, 2, (3, 3, 16, 16)).astype(np.float64)
    b = rng.integers(-2, 3, 16).astype(np.float64)
    if channels_first:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    n_out = [(L - p) // s + 1 for L, p, s in zip((rows, 8), pool, strides)]
    gshape = (2, 16, *n_out) if channels_first else (2, *n_out, 16)
    gy = rng.standard_normal(gshape)
    skipped = []
    masked = pool_fast.conv_fast._relu_masked
    monkeypatch.setattr(pool_fast.conv_fast, "_relu_masked",
                        lambda gn, y: skipped.append(masked(gn, y)) or skipped[-1])
    bias_passes = []
    bias_grad = pool_fast.conv_fast._relu_and_bias_grad
    monkeypatch.setattr(pool_fast.conv_fast, "_relu_and_bias_grad",
                        lambda gn, s, bias, relu: bias_passes.append(bias) or
                        bias_grad(gn, s, bias, relu))
    want = _conv_pool(x, w, b, pool, strides, channels_first, second_use, gy)
    assert skipped == []                          # float64: the exact numpy path
    got = _conv_pool(*(a.astype(np.float32) for a in (x, w, b)), pool, strides,
                     channels_first, second_use, gy.astype(np.float32))
    assert skipped == [not second_use]
    assert bias_passes == ([True] if second_use else [])
    for name, a, e in zip(("x", "kernel", "bias"), got, want):
        np.testing.assert_allclose(a, e, rtol=0, atol=2e-5 * np.abs(e).max(), err_msg=name)


def test_relu_output_is_matched_by_memory_while_alive():
    from modelkit.backend import array_tags, conv_fast
    x = np.ones((1, 4, 4, 8), np.float32)
    out, s = conv_fast.conv(x, np.ones((3, 3, 8, 8), np.float32), None, (1, 1), (1, 1),
                            ((1, 1), (1, 1)), (4, 4), False, True)
    y = s.relu_y
    assert conv_fast.relu_output(y) is y
    assert conv_fast.relu_output(np.moveaxis(np.moveaxis(y, 1, -1), -1, 1)) is y
    assert conv_fast.relu_output(y.copy()) is None
    assert conv_fast.relu_output(y[:, :4]) is None            # same address, other shape
    g = np.ones_like(y)
    conv_fast.mark_relu_masked(g, y)
    assert conv_fast._relu_masked(g, y) and not conv_fast._relu_masked(g + 0, y)
    key = array_tags.key(y)
    del out, s, y, g
    assert key not in conv_fast._RELU_OUTPUTS                  # forgotten when freed

"""The float32 batch-normalization fast path (modelkit/backend/norm_fast.py) against the
exact numpy op run in float64 (whose gradients test_backend_gradients checks): outputs,
batch statistics and gradients, for channels-last, channels-first and mixed memory
layouts, with and without gamma/beta, and with the statistics used downstream."""

import numpy as np
import pytest

from modelkit.backend import GradientTape, Variable, native, norm_fast
from modelkit.backend.norm_ops import _batch_norm_moments
from modelkit.backend.tape import apply

CASES = [
    # (shape, channel axis, memory: "c" contiguous or "cf" channels-first memory)
    ((6, 5), 1, "c"),
    ((4, 5, 6, 3), 3, "c"),
    ((4, 5, 6, 3), 3, "cf"),          # what conv_fast returns: channels-last view of NCHW
    ((3, 4, 5, 6), 1, "c"),
    ((2, 3, 4, 5, 3), 4, "cf"),
    ((5, 7, 4), 2, "c"),
    ((3, 9, 10, 4), 3, "cf"),         # 90 positions: onnxruntime's forward by default
]


def _input(shape, c_axis, memory, rng):
    x = rng.standard_normal(shape) * 2.0 + 0.5
    if memory == "cf":
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, c_axis, 1)), 1, c_axis)
    return x


def _run(x, gamma, beta, axes, gy, gm, gv):
    xs = [Variable(x)] + [Variable(v) for v in (gamma, beta) if v is not None]
    args = [xs[0], xs[1] if gamma is not None else None,
            xs[-1] if beta is not None else None]
    from modelkit import backend as K
    with GradientTape() as tape:
        y, mean, var = apply(_batch_norm_moments, *args, None, axes=axes, epsilon=1e-3)
        loss = K.sum(y * K.constant(gy)) + K.sum(mean * K.constant(gm)) + \
            K.sum(var * K.constant(gv))
    grads = tape.gradient(loss, xs)
    return [o.value for o in (y, mean, var)], [np.asarray(g) for g in grads]


def _choose_path(monkeypatch, path):
    """The forward statistics from numpy's blocks, onnxruntime's BatchNormalization (from
    ORT_MIN_POSITIONS positions per channel) or the C passes, which take the backward sums
    too (from NATIVE_MIN_POSITIONS, channels-first memory); here for every shape they take."""
    if path == "native":
        assert native.available()
    monkeypatch.setattr(norm_fast, "ORT_MIN_POSITIONS", 1 if path == "onnxruntime" else 10 ** 9)
    monkeypatch.setattr(norm_fast, "NATIVE_MIN_POSITIONS", 1 if path == "native" else 10 ** 9)


@pytest.fixture(params=["numpy", "onnxruntime", "native"])
def forward(request, monkeypatch):
    _choose_path(monkeypatch, request.param)
    return request.param


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("stats_used", [False, True])
def test_fast_batch_norm_matches_exact(case, affine, stats_used, forward):
    shape, c_axis, memory = case
    rng = np.random.default_rng(sum(shape) + c_axis)
    x = _input(shape, c_axis, memory, rng)
    axes = tuple(i for i in range(len(shape)) if i != c_axis)
    kept = tuple(1 if i in axes else shape[i] for i in range(len(shape)))
    gamma = rng.standard_normal(kept) if affine else None
    beta = rng.standard_normal(kept) if affine else None
    gy = rng.standard_normal(shape)
    gm = rng.standard_normal(kept) if stats_used else np.zeros(kept)
    gv = rng.standard_normal(kept) if stats_used else np.zeros(kept)
    f32 = [None if v is None else v.astype(np.float32) for v in (gamma, beta)]
    x32 = np.empty_like(x, dtype=np.float32)          # same memory layout as x
    x32[...] = x
    assert norm_fast.usable(x32, *f32, axes, None)
    outs64, grads64 = _run(x, gamma, beta, axes, gy, gm, gv)
    outs32, grads32 = _run(x32, *f32, axes, gy.astype(np.float32), gm.astype(np.float32),
                           gv.astype(np.float32))
    for a, e in zip(outs32 + grads32, outs64 + grads64):
        assert a.shape == e.shape and a.dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=0, atol=2e-5 * max(np.abs(e).max(), 1.0))


def test_other_cases_keep_the_exact_path():
    x = np.zeros((4, 3), np.float32)
    assert not norm_fast.usable(x.astype(np.float64), None, None, (0,), None)
    assert not norm_fast.usable(x, None, None, (0,), np.ones((4, 1)))
    assert not norm_fast.usable(np.zeros((2, 3, 4), np.float32), None, None, (2,), None)
    # LayerNormalization keeps the batch axis: exact path
    assert not norm_fast.usable(np.zeros((4, 4), np.float32), np.ones(4, np.float32), None,
                                (1,), None)


@pytest.mark.parametrize("memory", ["c", "cf"])
def test_blocked_passes_on_several_threads_match_one_block(monkeypatch, memory, forward):
    """Many small blocks on 2 threads give the same numbers as one thread (the partial sums
    are combined in block order), and match the float64 exact op."""
    from modelkit.backend import parallel
    rng = np.random.default_rng(3)
    shape, c_axis = (9, 5, 6, 4), 3
    x = _input(shape, c_axis, memory, rng)
    kept = (1, 1, 1, 4)
    gamma, beta = rng.standard_normal(kept), rng.standard_normal(kept)
    gy, gm, gv = rng.standard_normal(shape), rng.standard_normal(kept), np.zeros(kept)
    x32 = np.empty_like(x, dtype=np.float32)
    x32[...] = x
    args32 = (x32, gamma.astype(np.float32), beta.astype(np.float32), (0, 1, 2),
              gy.astype(np.float32), gm.astype(np.float32), gv.astype(np.float32))
    results = []
    for threads, block in (("1", 1 << 20), ("1", 64), ("2", 64), ("3", 64)):
        monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
        monkeypatch.setattr(norm_fast, "BLOCK_BYTES", block)
        results.append(_run(*args32))
    assert len(parallel.blocks(x32.size // 4, 16, 64)) > 10
    outs64, grads64 = _run(x, gamma, beta, (0, 1, 2), gy, gm, gv)
    for outs, grads in results:
        for a, e in zip(outs + grads, outs64 + grads64):
            np.testing.assert_allclose(a, e, rtol=0, atol=2e-5 * max(np.abs(e).max(), 1.0))
    for outs, grads in results[2:]:
        for a, b in zip(outs + grads, results[1][0] + results[1][1]):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("forward_path", ["numpy", "onnxruntime", "native"])
def test_statistics_stay_exact_far_from_zero(monkeypatch, forward_path):
    """Feature maps with a large mean next to a small spread (mean 200, std 0.5): the
    variance comes from deviations, never from sum(x^2) - n mean^2."""
    _choose_path(monkeypatch, forward_path)
    rng = np.random.default_rng(7)
    shape, c_axis = (8, 12, 12, 3), 3
    x = _input(shape, c_axis, "cf", rng) * 0.25 + 200.0
    kept = (1, 1, 1, 3)
    gy = rng.standard_normal(shape)
    zeros = np.zeros(kept)
    x32 = np.empty_like(x, dtype=np.float32)
    x32[...] = x
    outs64, grads64 = _run(x, None, None, (0, 1, 2), gy, zeros, zeros)
    outs32, grads32 = _run(x32, None, None, (0, 1, 2), gy.astype(np.float32),
                           zeros.astype(np.float32), zeros.astype(np.float32))
    np.testing.assert_allclose(outs32[2], outs64[2], rtol=1e-5)          # variance
    np.testing.assert_allclose(outs32[0], outs64[0], rtol=0, atol=2e-4)  # y ~ N(0, 1)
    np.testing.assert_allclose(grads32[0], grads64[0], rtol=0,
                               atol=2e-5 * np.abs(grads64[0]).max())


def _relu_after_bn(x, gamma, beta, axes, gy, g_other=None):
    """Gradients of sum(relu(bn(x)) * gy) (+ sum(bn(x) * g_other): a second consumer)."""
    from modelkit import backend as K
    from modelkit.backend.nn_ops import _relu
    xs = [Variable(x), Variable(gamma), Variable(beta)]
    with GradientTape() as tape:
        y, _, _ = apply(_batch_norm_moments, *xs, None, axes=axes, epsilon=1e-3)
        loss = K.sum(apply(_relu, y) * K.constant(gy))
        if g_other is not None:
            loss = loss + K.sum(y * K.constant(g_other))
    return [np.asarray(g) for g in tape.gradient(loss, xs)]


@pytest.mark.parametrize("case", [c for c in CASES if len(c[0]) > 2],
                         ids=[str(i) for i, c in enumerate(CASES) if len(c[0]) > 2])
@pytest.mark.parametrize("second_consumer", [False, True])
def test_relu_after_batch_norm_folds_the_sums_and_matches_exact(monkeypatch, case,
                                                               second_consumer, forward):
    """A relu right after the fast op masks the gradient and takes the op's backward sums in
    one pass (norm_fast.relu_grad); the op then skips its own sums pass. With a second
    consumer of the op's output the tape adds the gradients: the op makes its own pass."""
    shape, c_axis, memory = case
    rng = np.random.default_rng(11 + sum(shape))
    x = _input(shape, c_axis, memory, rng)
    axes = tuple(i for i in range(len(shape)) if i != c_axis)
    kept = tuple(1 if i in axes else shape[i] for i in range(len(shape)))
    gamma, beta = rng.standard_normal(kept), rng.standard_normal(kept)
    gy = rng.standard_normal(shape)
    other = rng.standard_normal(shape) if second_consumer else None
    x32 = np.empty_like(x, dtype=np.float32)
    x32[...] = x
    calls = {"relu_grad": 0, "sums": 0}
    for name, key in (("relu_grad", "relu_grad"), ("_grad_sums", "sums")):
        def counted(*a, _f=getattr(norm_fast, name), _k=key):
            calls[_k] += 1
            return _f(*a)
        monkeypatch.setattr(norm_fast, name, counted)
    got = _relu_after_bn(x32, gamma.astype(np.float32), beta.astype(np.float32), axes,
                         gy.astype(np.float32),
                         None if other is None else other.astype(np.float32))
    assert calls == {"relu_grad": 1, "sums": 2 if second_consumer else 1}
    want = _relu_after_bn(x, gamma, beta, axes, gy, other)
    for a, e in zip(got, want):
        assert a.shape == e.shape and a.dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=0, atol=2e-5 * max(np.abs(e).max(), 1.0))


@pytest.mark.parametrize("path", ["numpy", "native"])
def test_folded_relu_gradient_is_the_plain_mask(monkeypatch, path):
    """relu_grad's gradient is bit-identical to the relu's own g * (y > 0), its sums to the
    op's own pass."""
    _choose_path(monkeypatch, path)
    rng = np.random.default_rng(5)
    x = _input((4, 6, 5, 3), 3, "cf", rng).astype(np.float32)
    (y, _, _), saved = norm_fast.moments(x, None, None, (0, 1, 2), 1e-3)
    ry = np.empty_like(y)
    np.maximum(y, 0, out=ry)
    g = rng.standard_normal(y.shape).astype(np.float32)
    folded = norm_fast.relu_grad(g, ry, saved)
    assert np.array_equal(folded, g * (ry > 0))
    sums = norm_fast._folded_sums(folded, saved)
    own, _ = norm_fast._grad_sums(saved, saved.lay.rows(folded))
    assert all(np.array_equal(a, b) for a, b in zip(sums, own))
    assert norm_fast._folded_sums(folded + 0, saved) is None        # another array


@pytest.mark.parametrize("memory", ["c", "cf"])
def test_relu_after_residual_add_folds_the_sums_and_matches_exact(monkeypatch, memory,
                                                                 forward):
    """relu(shortcut + bn(x)): the add hands the relu's gradient to the op unchanged, so the
    relu's pass takes the op's sums too; the shortcut's gradient is the same array."""
    from modelkit import backend as K
    from modelkit.backend.math_ops import _add
    from modelkit.backend.nn_ops import _relu
    rng = np.random.default_rng(21)
    shape, c_axis = (6, 5, 4, 3), 3
    x = _input(shape, c_axis, memory, rng)
    short = _input(shape, c_axis, memory, rng)
    kept = (1, 1, 1, 3)
    gamma, beta = rng.standard_normal(kept), rng.standard_normal(kept)
    gy = rng.standard_normal(shape)

    def run(dtype):
        cast = [np.asarray(v, dtype) if v.dtype == np.float64 and dtype == np.float32 else v
                for v in (x, short, gamma, beta, gy)]
        xs = [Variable(v) for v in cast[:4]]
        with GradientTape() as tape:
            y, _, _ = apply(_batch_norm_moments, xs[0], xs[2], xs[3], None, axes=(0, 1, 2),
                            epsilon=1e-3)
            loss = K.sum(apply(_relu, apply(_add, xs[1], y)) * K.constant(cast[4]))
        return [np.asarray(g) for g in tape.gradient(loss, xs)]

    sums = []
    real = norm_fast._grad_sums
    monkeypatch.setattr(norm_fast, "_grad_sums", lambda *a: sums.append(1) or real(*a))
    got = run(np.float32)
    assert len(sums) == 1
    want = run(np.float64)
    for a, e in zip(got, want):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=0, atol=2e-5 * max(np.abs(e).max(), 1.0))


def test_fold_off_switch(monkeypatch):
    """MODELKIT_BN_FOLD=0: the relu masks on its own and the op makes its own centred pass;
    the gradients agree with the folded ones."""
    rng = np.random.default_rng(8)
    shape = (4, 6, 5, 3)
    x = _input(shape, 3, "cf", rng).astype(np.float32)
    gamma, beta = (rng.standard_normal((1, 1, 1, 3)).astype(np.float32) for _ in range(2))
    gy = rng.standard_normal(shape).astype(np.float32)
    folded = _relu_after_bn(x, gamma, beta, (0, 1, 2), gy)
    monkeypatch.setenv("MODELKIT_BN_FOLD", "0")
    monkeypatch.setattr(norm_fast, "relu_grad", None)           # never called
    plain = _relu_after_bn(x, gamma, beta, (0, 1, 2), gy)
    for a, b in zip(folded, plain):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(np.abs(b).max(), 1.0))


def _conv_bn(x, w, b, channels_first, bn_axis, gy, gm):
    """Gradients of x, kernel and bias through a biased conv -> batch norm (axis `bn_axis`)."""
    from modelkit import backend as K
    from modelkit.backend.tape import OPS
    xv, wv, bv = Variable(x), Variable(w), Variable(b)
    with GradientTape() as tape:
        h = apply(OPS.get("conv"), xv, wv, bv, padding="same", channels_first=channels_first)
        axes = tuple(i for i in range(4) if i != bn_axis)
        y, mean, _ = apply(_batch_norm_moments, h, None, None, None, axes=axes, epsilon=1e-3)
        loss = K.sum(y * K.constant(gy)) + K.sum(mean * K.constant(gm))
    return [np.asarray(g) for g in tape.gradient(loss, [xv, wv, bv])]


@pytest.mark.parametrize("channels_first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("stats_used", [False, True])
@pytest.mark.parametrize("bn_on_conv_channels", [True, False])
def test_conv_before_batch_norm_takes_its_bias_gradient_from_the_norm(
        monkeypatch, channels_first, stats_used, bn_on_conv_channels):
    """A conv whose output only a batch norm reads takes its bias gradient from the norm's
    own sums (scale * sum(g) - n * const per channel: 0 up to rounding unless the batch
    statistics are used downstream) instead of a pass over the input gradient -- only when
    the norm's channels are the conv's (here a 6x6x6 map: the norm over another axis of the
    same length must not be taken for it)."""
    from modelkit.backend import conv_fast
    monkeypatch.setattr(norm_fast, "ORT_MIN_POSITIONS", 1)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 6, 6))
    w = rng.standard_normal((3, 3, 6, 6))
    b = rng.standard_normal(6)
    c_axis = 1 if channels_first else 3
    bn_axis = c_axis if bn_on_conv_channels else 2
    gy = rng.standard_normal((3, 6, 6, 6))
    kept = tuple(6 if i == bn_axis else 1 for i in range(4))
    gm = rng.standard_normal(kept) if stats_used else np.zeros(kept)
    bias_passes = []
    bias_grad = conv_fast._relu_and_bias_grad
    monkeypatch.setattr(conv_fast, "_relu_and_bias_grad", lambda gn, s, bias, relu:
                        bias_passes.append(bias) or bias_grad(gn, s, bias, relu))
    want = _conv_bn(x, w, b, channels_first, bn_axis, gy, gm)
    got = _conv_bn(*(a.astype(np.float32) for a in (x, w, b)), channels_first, bn_axis,
                   gy.astype(np.float32), gm.astype(np.float32))
    assert bias_passes == ([] if bn_on_conv_channels else [True])
    for name, a, e in zip(("x", "kernel", "bias"), got, want):
        np.testing.assert_allclose(a, e, rtol=0, atol=2e-5 * max(np.abs(e).max(), 1.0),
                                   err_msg=name)

"""The fused C kernels (modelkit/backend/_native.c via backend/native.py): built wherever a C
compiler is, and the same numbers as the numpy updates they replace, bit for bit (Adam with
a row-sparse and a dense gradient: shapes with vector tails, a scalar, tables split into
row blocks on parallel's threads)."""

import shutil
import sysconfig

import numpy as np
import pytest

from modelkit import backend as K
from modelkit import optimizers
from modelkit.backend import native, parallel
from modelkit.backend.sparse_grad import IndexedRows
from modelkit.optimizers import base as optimizer_base


def test_the_kernels_are_built_where_a_compiler_is(monkeypatch):
    monkeypatch.delenv("MODELKIT_NATIVE", raising=False)
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    assert native.available() == bool(shutil.which(compiler))
    monkeypatch.setenv("MODELKIT_NATIVE", "0")
    assert not native.available()


def count_calls(monkeypatch, *names):
    """{name: calls} of these `native` kernels from now on (each still runs)."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        kernel = getattr(native, name)

        def spy(*a, k=kernel, name=name):
            calls[name] += 1
            return k(*a)
        monkeypatch.setattr(native, name, spy)
    return calls


def _adam_steps(native_on, shape, gradients, monkeypatch, **adam):
    """Variable values and Adam slots after one step per gradient (IndexedRows or array),
    and the number of kernel calls made."""
    monkeypatch.setenv("MODELKIT_NATIVE", "1" if native_on else "0")
    calls = []
    for name in ("adam_rows", "adam_dense"):
        kernel = getattr(native, name)
        monkeypatch.setattr(native, name, lambda *a, k=kernel: calls.append(1) or k(*a))
    rng = np.random.default_rng(7)
    var = K.variable(rng.standard_normal(shape).astype(np.float32))
    opt = optimizers.Adam(0.01, **adam)
    for g in gradients:
        opt.apply_gradients([(g, var)])
    monkeypatch.undo()
    return [np.array(var.value)] + [np.array(w) for w in opt.get_weights()[1:]], len(calls)


def _native_vs_numpy(shape, gradients, monkeypatch, **adam):
    """(native results, numpy results, kernel calls of the native run)."""
    fused, calls = _adam_steps(True, shape, gradients, monkeypatch, **adam)
    plain, none = _adam_steps(False, shape, gradients, monkeypatch, **adam)
    assert none == 0
    return fused, plain, calls


def _assert_bits_equal(a, b):
    for x, y in zip(a, b):
        assert x.dtype == y.dtype == np.float32
        np.testing.assert_array_equal(x.view(np.uint32), y.view(np.uint32))


@pytest.mark.parametrize("shape, rows", [
    ((50, 7), [0, 3, 4, 49]),                 # first and last rows, a 7-wide row (no vector)
    ((40, 3, 5), [1, 2, 39]),                 # rows of a 3-D table
    ((20000, 128), None),                     # the LSTM benchmark's table: row blocks, threads
])
def test_adam_sparse_kernel_equals_the_numpy_update(shape, rows, monkeypatch):
    rng = np.random.default_rng(3)
    grads = []
    for _ in range(3):
        r = np.unique(rng.integers(0, shape[0], 5120)) if rows is None else np.array(rows)
        values = rng.standard_normal((len(r),) + shape[1:]).astype(np.float32)
        grads.append(IndexedRows(r.astype(np.intp), values, shape))
    fused, plain, calls = _native_vs_numpy(shape, grads, monkeypatch)
    _assert_bits_equal(fused, plain)
    row_bytes = 4 * int(np.prod(shape[1:]))
    big = shape[0] * row_bytes >= optimizer_base.CACHE_BLOCK_MIN_BYTES
    assert calls == 3 * (len(parallel.blocks(shape[0], row_bytes)) if big else 1)


@pytest.mark.parametrize("shape", [(), (1,), (7,), (33, 17), (1031,), (3000, 500)])
def test_adam_dense_kernel_equals_the_numpy_update(shape, monkeypatch):
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(shape).astype(np.float32) * s for s in (1.0, 1e-3, 30.0)]
    fused, plain, calls = _native_vs_numpy(shape, grads, monkeypatch)
    _assert_bits_equal(fused, plain)
    assert calls >= 3


def test_amsgrad_and_float64_keep_the_numpy_update(monkeypatch):
    monkeypatch.setenv("MODELKIT_NATIVE", "1")
    opt = optimizers.Adam(0.01, amsgrad=True)
    p = np.zeros(5, np.float32)
    assert not opt._native(p, {"m": p, "v": p})
    assert not optimizers.Adam(0.01)._native(p.astype(np.float64),
                                              {"m": p.astype(np.float64),
                                               "v": p.astype(np.float64)})
    grads = [np.full(5, 0.5, np.float32)] * 2
    fused, plain, calls = _native_vs_numpy((5,), grads, monkeypatch, amsgrad=True)
    _assert_bits_equal(fused, plain)
    assert calls == 0


def _sgd_steps(native_on, shape, nesterov, monkeypatch, dtype=np.float32):
    """Variable values and momentum after three SGD steps, and the fused kernel's calls."""
    monkeypatch.setenv("MODELKIT_NATIVE", "1" if native_on else "0")
    calls = []
    kernel = native.sgd_momentum
    monkeypatch.setattr(native, "sgd_momentum", lambda *a: calls.append(1) or kernel(*a))
    rng = np.random.default_rng(3)
    var = K.variable(rng.standard_normal(shape).astype(dtype), dtype=dtype)
    opt = optimizers.SGD(0.05, momentum=0.9, nesterov=nesterov)
    for _ in range(3):
        opt.apply_gradients([(rng.standard_normal(shape).astype(dtype), var)])
    monkeypatch.undo()
    return [np.array(var.value)] + [np.array(w) for w in opt.get_weights()[1:]], len(calls)


@pytest.mark.skipif(not native.avx512_available(), reason="the SGD kernel needs AVX-512")
@pytest.mark.parametrize("shape", [(256, 256), (65536 + 7,), (784, 500)])
@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_sgd_kernel_equals_the_axpy_steps(shape, nesterov, monkeypatch):
    fused, calls = _sgd_steps(True, shape, nesterov, monkeypatch)
    plain, none = _sgd_steps(False, shape, nesterov, monkeypatch)
    assert (calls, none) == (3, 0)
    _assert_bits_equal(fused, plain)


@pytest.mark.parametrize("shape, dtype", [((100, 10), np.float32),        # numpy's two passes
                                          ((300, 300), np.float64)])
def test_sgd_kernel_leaves_small_and_float64_variables(shape, dtype, monkeypatch):
    assert _sgd_steps(True, shape, True, monkeypatch, dtype)[1] == 0


def test_sgd_kernel_only_where_axpy_rounds_once(monkeypatch):
    monkeypatch.setenv("MODELKIT_BLAS_AXPY", "0")       # numpy's passes, two roundings each
    results, calls = _sgd_steps(True, (300, 300), True, monkeypatch)
    assert calls == 0


def train_embedding_model(monkeypatch, layer, env, units=8, length=10, mask_zero=False):
    """Two epochs of Embedding -> `layer` ("LSTM", "GRU", or "GRU_reset_before": a GRU with
    reset_after=False) -> Dense with the variables in `env` set: (the epochs' losses, the
    weights and the optimizer's slots). `mask_zero`: sequences padded with zeros in front
    (0 to length - 1 of them), masked by the Embedding."""
    from modelkit import layers
    from modelkit.models import Sequential
    from modelkit.utils import set_random_seed
    rng = np.random.default_rng(5)
    x = rng.integers(1 if mask_zero else 0, 300, (64, length))
    if mask_zero:
        x[np.arange(length) < rng.integers(0, length, (64, 1))] = 0
    y = rng.integers(0, 2, (64, 1)).astype(np.float32)
    with monkeypatch.context() as m:
        for name, value in env.items():
            m.setenv(name, value)
        set_random_seed(2)
        rnn = (layers.GRU(units, reset_after=False) if layer == "GRU_reset_before"
               else getattr(layers, layer)(units))
        model = Sequential([layers.Embedding(300, 16, input_length=length, mask_zero=mask_zero),
                            rnn, layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy")
        hist = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        return hist.history["loss"], model.get_weights() + model.optimizer.get_weights()[1:]


@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_training_an_embedding_model_is_bit_identical_with_and_without_the_kernels(
        layer, monkeypatch):
    # the element-wise kernels; the fused RNN steps (their own rounding) are
    # tests/backend/test_rnn_fused.py's
    results = [train_embedding_model(monkeypatch, layer, {"MODELKIT_NATIVE": switch,
                                                          "MODELKIT_RNN_FUSED": "0"})[1]
               for switch in ("1", "0")]
    _assert_bits_equal(*results)


def _lstm_op(native_on, monkeypatch, steps=9, **kw):
    """Outputs and gradients of a float32 LSTM sequence op (loss over the whole output
    sequence and the final cell), and how often each LSTM kernel ran."""
    from modelkit.backend import rnn_ops
    from modelkit.backend.tensor import GradientTape, Variable
    monkeypatch.setenv("MODELKIT_NATIVE", "1" if native_on else "0")
    monkeypatch.setenv("MODELKIT_RNN_FUSED", "0")        # the element-wise step kernels
    calls = count_calls(monkeypatch, "lstm_cell_step", "lstm_bptt_step")
    g = np.random.default_rng(11)
    batch, inputs, units = 5, 6, 8
    x = Variable(g.standard_normal((batch, steps, inputs)).astype(np.float32))
    ws = [Variable(g.standard_normal(s).astype(np.float32) * 0.4)
          for s in ((inputs, 4 * units), (units, 4 * units), (4 * units,))]
    for key in ("input_dropout", "recurrent_dropout"):
        if kw.get(key) is not None:
            n = inputs if key == "input_dropout" else units
            shape = (batch, n) if kw[key] == "shared" else (4, batch, n)
            kw[key] = ((g.random(shape) > 0.3) / 0.7).astype(np.float32)
    with GradientTape() as tape:
        seq, h, c = rnn_ops.lstm_sequence(x, *ws, **kw)
        loss = K.sum(seq * seq) + K.sum(c)
    grads = tape.gradient(loss, [x] + ws)
    monkeypatch.undo()
    return [np.asarray(seq.value), np.asarray(c.value)] + [np.asarray(v) for v in grads], calls


@pytest.mark.parametrize("kw, fused", [
    ({}, True),
    ({"go_backwards": True}, True),
    ({"mask": np.arange(9) < np.array([[9], [4], [9], [1], [7]])}, "forward"),
    ({"recurrent_dropout": "per_gate", "input_dropout": "shared"}, True),
    ({"recurrent_activation": "hard_sigmoid"}, False),
], ids=["plain", "go_backwards", "mask", "dropout", "hard_sigmoid"])
def test_lstm_kernels_equal_the_numpy_steps(kw, fused, monkeypatch):
    with_kernels, calls = _lstm_op(True, monkeypatch, **dict(kw))
    plain, none = _lstm_op(False, monkeypatch, **dict(kw))
    assert none == {"lstm_cell_step": 0, "lstm_bptt_step": 0}
    _assert_bits_equal(with_kernels, plain)
    # the masked BPTT stays numpy; the forward step takes the kernel whenever its gates do
    assert calls["lstm_cell_step"] == (9 if fused else 0)
    assert calls["lstm_bptt_step"] == (9 if fused is True else 0)


@pytest.mark.parametrize("shape", [(200, 500), (7,), (3, 4, 5)])
def test_tanh_gradient_kernel_equals_the_numpy_vjp(shape, monkeypatch):
    from modelkit.backend import math_ops
    rng = np.random.default_rng(10)
    y = np.tanh(rng.standard_normal(shape) * 3).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    out = []
    for switch in ("1", "0"):
        monkeypatch.setenv("MODELKIT_NATIVE", switch)
        out.append(list(math_ops._tanh.vjp(g, (y,), (True,))))
    _assert_bits_equal(*out)
    np.testing.assert_allclose(out[0][0], g * (1 - y.astype(np.float64) ** 2), rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize("layout", ["channels_first_memory", "channels_last_memory"])
@pytest.mark.parametrize("stats_used", [False, True])
def test_batch_norm_input_gradient_kernel_equals_the_numpy_pass(layout, stats_used,
                                                                monkeypatch):
    from modelkit.backend import norm_fast
    rng = np.random.default_rng(12)
    if layout == "channels_first_memory":     # a fast conv's output: NCHW memory, NHWC view
        x = (rng.standard_normal((6, 5, 9, 9)) * 2 + 1).astype(np.float32).transpose(0, 2, 3, 1)
    else:
        x = (rng.standard_normal((6, 9, 9, 5)) * 2 + 1).astype(np.float32)
    gamma, beta = rng.random(5).astype(np.float32) + 0.5, rng.random(5).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    gmean = rng.standard_normal((1, 1, 1, 5)).astype(np.float32) * stats_used
    gvar = rng.standard_normal((1, 1, 1, 5)).astype(np.float32) * stats_used
    out, calls = [], []
    for switch in ("1", "0"):
        monkeypatch.setenv("MODELKIT_NATIVE", switch)
        # the same statistics and sums both ways (the C passes sum in their own order)
        monkeypatch.setattr(norm_fast, "NATIVE_MIN_POSITIONS", 10 ** 9)
        kernel = native.bn_input_grad
        monkeypatch.setattr(native, "bn_input_grad",
                            lambda *a, k=kernel: calls.append(switch) or k(*a))
        _, saved = norm_fast.moments(x, gamma, beta, (0, 1, 2), 1e-3)
        gx, ggamma, gbeta, _ = norm_fast.moments_vjp((g, gmean, gvar), saved,
                                                     (True, True, True))
        out.append([np.ascontiguousarray(gx), ggamma, gbeta])
        monkeypatch.undo()
    _assert_bits_equal(*out)
    assert calls and set(calls) == {"1"}


@pytest.mark.parametrize("positions", [1, 31, 32, 81, 1024])
def test_batch_norm_statistics_kernels_against_float64(positions):
    """The C passes of batch normalization over (images, C, B) blocks: row sums and squared
    deviations, and the backward sums, against float64 (rows of any length: vector lanes
    and tails); y = x scale + shift, its relu and the relu-masked gradient bit for bit as
    numpy makes them (relu's NaN and -0.0 included)."""
    rng = np.random.default_rng(positions)
    x = (rng.standard_normal((5, 3, positions)) * 0.5 + 40.0).astype(np.float32)
    x64 = x.astype(np.float64)
    rows = x.reshape(-1, positions)
    total, dev2 = native.bn_row_moments(rows)
    np.testing.assert_allclose(total, rows.astype(np.float64).sum(axis=1), rtol=1e-6)
    centre = (total / positions).astype(np.float32).astype(np.float64)
    want = ((rows.astype(np.float64) - centre[:, None]) ** 2).sum(axis=1)
    np.testing.assert_allclose(dev2, want, rtol=1e-5, atol=1e-9)

    scale = np.float32([2.0, -1.5, 0.25])
    shift = np.float32([-80.0, 60.0, -0.0])
    x[0, 0, 0], x[1, 2, 0] = np.nan, -0.0                  # y = NaN and y = -0.0 cases
    y, relu = np.empty_like(x), np.empty_like(x)
    native.bn_normalize(x, scale, shift, y, relu)
    want_y = x * scale[:, None] + shift[:, None]
    assert np.array_equal(y, want_y, equal_nan=True)
    assert np.array_equal(relu.view(np.uint32), np.maximum(want_y, 0).view(np.uint32))

    g = rng.standard_normal(x.shape).astype(np.float32)
    mean = rng.standard_normal(3).astype(np.float32) + 40.0
    masked = np.empty_like(g)
    gsum, gdot = native.channel_sums(g, x64.astype(np.float32), relu, mean, masked)
    want_masked = np.multiply(g, relu > 0)
    assert np.array_equal(masked.view(np.uint32), want_masked.view(np.uint32))
    m64 = want_masked.astype(np.float64)
    np.testing.assert_allclose(gsum, m64.sum(axis=(0, 2)), rtol=1e-5, atol=1e-5)
    dev = x64.astype(np.float32) - mean[:, None]                # float32 (x - mean)
    np.testing.assert_allclose(gdot, (m64 * dev.astype(np.float64)).sum(axis=(0, 2)),
                               rtol=1e-5, atol=1e-5)
    alone, none = native.channel_sums(g, mask3=relu, masked3=masked)   # a conv's bias sums
    assert none is None and np.array_equal(masked.view(np.uint32), want_masked.view(np.uint32))
    np.testing.assert_allclose(alone, m64.sum(axis=(0, 2)), rtol=1e-5, atol=1e-5)
    plain = native.channel_sums(g, x64.astype(np.float32))      # no mask, no centre
    np.testing.assert_allclose(plain[1], (g.astype(np.float64) * x64).sum(axis=(0, 2)),
                               rtol=1e-5, atol=1e-4)


def test_batch_norm_takes_the_c_passes_on_feature_maps(monkeypatch):
    """A training batch norm over channels-first memory (a fast conv's output) runs the C
    passes forward and backward, the relu after it included, and matches float64."""
    from modelkit.backend import norm_fast
    from modelkit.backend.norm_ops import _batch_norm_moments
    from modelkit.backend.nn_ops import _relu
    from modelkit.backend.tape import apply
    calls = []
    for name in ("bn_row_moments", "bn_normalize", "channel_sums"):
        kernel = getattr(native, name)
        monkeypatch.setattr(native, name, lambda *a, k=kernel, n=name: calls.append(n) or k(*a))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 6, 8, 8)).transpose(0, 2, 3, 1)       # NCHW memory
    gamma, beta = rng.random((1, 1, 1, 6)) + 0.5, rng.standard_normal((1, 1, 1, 6))
    gy = rng.standard_normal(x.shape)
    results = []
    for dtype in (np.float32, np.float64):
        xs = [K.Variable(np.asarray(v, dtype)) for v in (x, gamma, beta)]
        with K.GradientTape() as tape:
            y, _, _ = apply(_batch_norm_moments, *xs, None, axes=(0, 1, 2), epsilon=1e-3)
            loss = K.sum(apply(_relu, y) * K.constant(gy.astype(dtype)))
        results.append([np.asarray(g) for g in tape.gradient(loss, xs)])
        if dtype == np.float32:
            assert sorted(set(calls)) == ["bn_normalize", "bn_row_moments", "channel_sums"]
            assert norm_fast.NATIVE_MIN_POSITIONS <= 64
    for a, e in zip(*results):
        np.testing.assert_allclose(a, e, rtol=0, atol=2e-5 * max(np.abs(e).max(), 1.0))


def test_conv_relu_mask_and_bias_sums_pass(monkeypatch):
    """A fused-relu conv's backward masks its gradient and sums the bias gradient in one C
    pass: the masked gradient (so the input and kernel gradients) bit for bit numpy's, the
    bias gradient as exact."""
    from modelkit.backend.tape import OPS, apply
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 8, 9, 4)).astype(np.float32)
    w = (rng.standard_normal((3, 3, 4, 5)) * 0.5).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    gy = rng.standard_normal((3, 8, 9, 5)).astype(np.float32)
    out, calls, counts = [], [], []
    kernel = native.channel_sums
    monkeypatch.setattr(native, "channel_sums", lambda *a, **k: calls.append(1) or
                        kernel(*a, **k))
    for switch in ("1", "0"):
        monkeypatch.setenv("MODELKIT_NATIVE", switch)
        xs = [K.Variable(v) for v in (x, w, b)]
        with K.GradientTape() as tape:
            y = apply(OPS.get("conv"), *xs, strides=(1, 1), dilation=(1, 1), padding="same",
                      channels_first=False, relu=True)
        out.append([np.asarray(g) for g in tape.gradient(y, xs, output_gradient=gy)])
        counts.append(len(calls))
    assert counts[0] > 0 and counts[1] == counts[0]            # the C pass ran, then not
    _assert_bits_equal(out[0][:2], out[1][:2])
    np.testing.assert_allclose(out[0][2], out[1][2], rtol=1e-5)


def _gru_op(native_on, monkeypatch, **kw):
    """Outputs and gradients of a float32 GRU sequence op (reset_after), and how often the
    GRU kernel ran."""
    from modelkit.backend import rnn_ops
    from modelkit.backend.tensor import GradientTape, Variable
    monkeypatch.setenv("MODELKIT_NATIVE", "1" if native_on else "0")
    monkeypatch.setenv("MODELKIT_RNN_FUSED", "0")        # the element-wise step kernel
    calls = []
    kernel = native.gru_bptt_step
    monkeypatch.setattr(native, "gru_bptt_step", lambda *a: calls.append(1) or kernel(*a))
    g = np.random.default_rng(14)
    batch, steps, inputs, units = 5, 9, 6, 8
    x = Variable(g.standard_normal((batch, steps, inputs)).astype(np.float32))
    ws = [Variable(g.standard_normal(s).astype(np.float32) * 0.4)
          for s in ((inputs, 3 * units), (units, 3 * units), (2, 3 * units))]
    if kw.get("recurrent_dropout") is not None:
        kw["recurrent_dropout"] = ((g.random((3, batch, units)) > 0.3) / 0.7).astype(
            np.float32)
    with GradientTape() as tape:
        seq, h = rnn_ops.gru_sequence(x, *ws, **kw)
        loss = K.sum(seq * seq) + K.sum(h)
    grads = tape.gradient(loss, [x] + ws)
    monkeypatch.undo()
    return [np.asarray(seq.value), np.asarray(h.value)] + [np.asarray(v) for v in grads], \
        len(calls)


@pytest.mark.parametrize("kw, fused", [
    ({}, True),
    ({"go_backwards": True}, True),
    ({"recurrent_dropout": "per_gate"}, True),
    ({"mask": np.arange(9) < np.array([[9], [4], [9], [1], [7]])}, False),
    ({"recurrent_activation": "hard_sigmoid"}, False),
], ids=["plain", "go_backwards", "dropout", "mask", "hard_sigmoid"])
def test_gru_kernel_equals_the_numpy_step(kw, fused, monkeypatch):
    with_kernel, calls = _gru_op(True, monkeypatch, **dict(kw))
    plain, none = _gru_op(False, monkeypatch, **dict(kw))
    assert none == 0
    _assert_bits_equal(with_kernel, plain)
    assert calls == (9 if fused else 0)

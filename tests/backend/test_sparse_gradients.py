"""Row-sparse embedding gradients (modelkit/backend/sparse_grad.py) and the optimizers'
sparse updates: training an Embedding model gives bit-identical weights and optimizer state
with and without them (SGD, momentum, nesterov, Adam, amsgrad; float32), other optimizers
and clipping fall back to the dense update, and the tape/users only ever see dense arrays
outside the training step."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend import sparse_grad
from modelkit.backend.sparse_grad import IndexedRows
from modelkit.layers import Dense, Embedding, Flatten
from modelkit.models import Sequential
from modelkit import optimizers


def _model(opt, seed=0):
    import modelkit
    modelkit.initializers.set_random_seed(seed)
    m = Sequential([Embedding(50, 4, input_length=6), Flatten(), Dense(1)])
    m.compile(loss="mse", optimizer=opt)
    return m


def _train(opt_factory, sparse, steps=4):
    m = _model(opt_factory())
    rng = np.random.default_rng(1)
    x = rng.integers(0, 12, (steps * 8, 6))          # few rows, many repeats
    y = rng.standard_normal((steps * 8, 1)).astype(np.float32)
    if not sparse:
        original = sparse_grad.allowed
        sparse_grad.allowed = lambda: False
    try:
        m.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    finally:
        if not sparse:
            sparse_grad.allowed = original
    return m.get_weights(), [np.array(w) for w in m.optimizer.get_weights()[1:]]


OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.1),
    "momentum": lambda: optimizers.SGD(0.1, momentum=0.9),
    "nesterov": lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: optimizers.Adam(0.01),
    "amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True),
    "rmsprop (dense fallback)": lambda: optimizers.RMSprop(0.01),
    "adam clipnorm (dense fallback)": lambda: optimizers.Adam(0.01, clipnorm=0.01),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("blas_axpy", [False, True])
def test_sparse_updates_are_bit_identical_to_dense(name, blas_axpy, monkeypatch):
    # SGD's updates of big variables go through blas.axpy (one rounding); this table is
    # small, so the BLAS path is forced on for it, in both forms alike
    from modelkit.optimizers import base
    monkeypatch.setattr(base, "BLAS_AXPY_MIN_SIZE", 0 if blas_axpy else 1 << 62)
    dense_w, dense_s = _train(OPTIMIZERS[name], sparse=False)
    sparse_w, sparse_s = _train(OPTIMIZERS[name], sparse=True)
    assert len(dense_s) == len(sparse_s)
    for a, b in zip(dense_w + dense_s, sparse_w + sparse_s):
        np.testing.assert_array_equal(a, b)
    # rows never looked up keep their initial values (zero gradient, zero slots), rows
    # looked up moved
    emb_before = _model(OPTIMIZERS[name]()).get_weights()[0]
    np.testing.assert_array_equal(emb_before[12:], sparse_w[0][12:])
    assert not np.array_equal(emb_before[:12], sparse_w[0][:12])


@pytest.mark.parametrize("name,sparse", [("sgd", True), ("momentum", True), ("adam", True),
                                         ("rmsprop (dense fallback)", False),
                                         ("adam clipnorm (dense fallback)", False)])
def test_which_optimizers_take_the_sparse_update(name, sparse, monkeypatch):
    opt = OPTIMIZERS[name]()
    calls = []
    if opt._sparse_updates:
        original = opt._update_sparse
        monkeypatch.setattr(opt, "_update_sparse",
                            lambda *a: calls.append(type(a[1])) or original(*a))
    m = _model(opt)
    m.fit(np.ones((8, 6), np.int64), np.ones((8, 1), np.float32), batch_size=8, verbose=0)
    assert (calls == [IndexedRows]) is sparse


def test_gather_gradient_is_sparse_only_inside_the_block():
    table = K.variable(np.arange(12, dtype=np.float32).reshape(6, 2))
    idx = np.array([[1, 3, 1]])
    with K.GradientTape() as tape:
        y = K.gather(table, idx)
    g = tape.gradient(y, [table])[0]
    assert isinstance(g, np.ndarray)
    np.testing.assert_array_equal(g[:, 0], [0, 2, 0, 1, 0, 0])
    with K.GradientTape() as tape:
        y = K.gather(table, idx)
    with sparse_grad.sparse_gradients():
        g = tape.gradient(y, [table])[0]
    assert isinstance(g, IndexedRows)
    np.testing.assert_array_equal(g.indices, [1, 3])
    np.testing.assert_array_equal(np.asarray(g)[:, 1], [0, 2, 0, 1, 0, 0])


def test_indexed_rows_add_and_dense():
    a = IndexedRows.from_scatter((5, 2), np.array([4, 0, 4]), np.ones((3, 2), np.float32))
    b = IndexedRows.from_scatter((5, 2), np.array([0, 2]), np.full((2, 2), 2, np.float32))
    np.testing.assert_array_equal((a + b).dense()[:, 0], [3, 0, 2, 0, 2])
    np.testing.assert_array_equal((a + np.ones((5, 2), np.float32))[:, 0], [2, 1, 1, 1, 3])
    assert a.shape == (5, 2) and a.dtype == np.float32


def test_regularized_embedding_sums_sparse_and_dense_gradients():
    """An embedding regularizer adds a dense gradient to the sparse one: training equals
    the all-dense run exactly."""
    def run(sparse):
        import modelkit
        modelkit.initializers.set_random_seed(0)
        m = Sequential([Embedding(30, 3, input_length=4, embeddings_regularizer="l2"),
                        Flatten(), Dense(1)])
        m.compile(loss="mse", optimizer=optimizers.Adam(0.01))
        x = np.random.default_rng(2).integers(0, 30, (16, 4))
        y = np.ones((16, 1), np.float32)
        original = sparse_grad.allowed
        if not sparse:
            sparse_grad.allowed = lambda: False
        try:
            m.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        finally:
            sparse_grad.allowed = original
        return m.get_weights()
    for a, b in zip(run(True), run(False)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n,rows", [(512, 2000), (400, 7), (50, 1), (1, 3)])
def test_scatter_sums_by_repeat_rank_equal_reduceat(monkeypatch, n, rows):
    """The repeat-rank sums (few repeats) and np.add.reduceat (the fallback for many) agree
    (to float32 rounding: reduceat may group the adds of a long segment differently) and
    equal np.add.at in float64."""
    rng = np.random.default_rng(n)
    idx = rng.integers(0, rows, (n // 2 or 1, 2)) if n > 1 else np.array([2])
    g = rng.standard_normal(idx.shape + (3,)).astype(np.float32)
    fast = IndexedRows.from_scatter((rows, 3), idx, g)
    monkeypatch.setattr(sparse_grad, "_MAX_RANKS", -1)
    slow = IndexedRows.from_scatter((rows, 3), idx, g)
    np.testing.assert_array_equal(fast.indices, slow.indices)
    np.testing.assert_allclose(fast.values, slow.values, rtol=1e-6, atol=1e-6)
    want = np.zeros((rows, 3))
    np.add.at(want, idx.reshape(-1), g.reshape(-1, 3).astype(np.float64))
    np.testing.assert_allclose(fast.dense(), want, rtol=1e-5, atol=1e-5)
    assert list(fast.indices) == sorted(set(idx.reshape(-1).tolist()))


@pytest.mark.parametrize("padded", [False, True], ids=["", "padded"])
def test_scatter_with_rows_repeated_past_the_ranks(monkeypatch, padded):
    """Rows repeated more than _MAX_RANKS times (a padding token, frequent words) summed
    apart by reduceat, the others by repeat ranks: the sums of reduceat over all segments
    (to float32 rounding) and of np.add.at in float64."""
    rng = np.random.default_rng(7)
    idx = rng.integers(1, 400, (16, 30))
    idx[:, :3] = 7                                  # a frequent row
    if padded:
        idx[np.arange(30) < rng.integers(0, 30, (16, 1))] = 0
    g = rng.standard_normal(idx.shape + (4,)).astype(np.float32)
    mixed = IndexedRows.from_scatter((400, 4), idx, g)
    counts = np.bincount(idx.reshape(-1))
    assert counts.max() > sparse_grad._MAX_RANKS + 1 and (counts == 2).any()
    monkeypatch.setattr(sparse_grad, "_MAX_RANKS", -1)
    all_reduceat = IndexedRows.from_scatter((400, 4), idx, g)
    np.testing.assert_array_equal(mixed.indices, all_reduceat.indices)
    np.testing.assert_allclose(mixed.values, all_reduceat.values, rtol=1e-6, atol=1e-6)
    want = np.zeros((400, 4))
    np.add.at(want, idx.reshape(-1), g.reshape(-1, 4).astype(np.float64))
    np.testing.assert_allclose(mixed.dense(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("max_ranks", [8, -1])
@pytest.mark.parametrize("batch,time,rows", [(64, 80, 20000), (3, 5, 4), (1, 7, 3), (6, 1, 2)])
def test_scatter_of_time_major_gradient_reads_it_in_place(batch, time, rows, max_ranks,
                                                           monkeypatch):
    """A (batch, time, d) gradient stored time-major (a recurrent op's input gradient) gives
    bit for bit the sums of its contiguous copy (same rows, same order), repeat ranks
    and reduceat alike."""
    monkeypatch.setattr(sparse_grad, "_MAX_RANKS", max_ranks)
    rng = np.random.default_rng(batch * time)
    idx = rng.integers(0, rows, (batch, time))
    tm = rng.standard_normal((time, batch, 5)).astype(np.float32)
    g = tm.swapaxes(0, 1)
    assert not g.flags.c_contiguous or batch == 1 or time == 1
    got = IndexedRows.from_scatter((rows, 5), idx, g)
    want = IndexedRows.from_scatter((rows, 5), idx, np.ascontiguousarray(g))
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.values, want.values)


@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_adam_by_row_blocks_equals_one_pass(sparse, amsgrad, threads, monkeypatch):
    """Large variables are updated block of rows by block (optimizers/base.over_rows), the
    blocks claimed by `threads` threads: the numbers equal one pass over the whole arrays,
    bit for bit, rows at block edges and rows in no block's gradient included."""
    from modelkit.backend import parallel
    from modelkit.optimizers import base
    rng = np.random.default_rng(3)
    table = rng.standard_normal((103, 5)).astype(np.float32)
    idx = rng.integers(0, 103, 40)
    idx[:3] = [0, 39, 102]                       # first row, a block edge, last row
    vals = rng.standard_normal((40, 5)).astype(np.float32)
    real = parallel.blocks

    def train(min_bytes):
        monkeypatch.setattr(base, "CACHE_BLOCK_MIN_BYTES", min_bytes)
        monkeypatch.setattr(parallel, "BLOCK_BYTES", 40 * 5 * 4)      # 40 rows a block
        v = K.variable(table)
        opt = optimizers.Adam(0.01, amsgrad=amsgrad)
        blocks = []
        monkeypatch.setattr(parallel, "blocks", lambda *a: blocks.append(real(*a)) or
                            blocks[-1])
        for step in range(3):
            g = IndexedRows.from_scatter(table.shape, idx[step:], vals[step:])
            opt.apply_gradients([(g if sparse else g.dense(), v)])
        return [np.array(v.value)] + [np.array(w) for w in opt.get_weights()[1:]], blocks

    whole, none = train(1 << 40)
    monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
    blocked, used = train(0)
    assert not none and len(used[0]) == 3            # 103 rows: blocks of 40, 40, 23
    for a, b in zip(whole, blocked):
        np.testing.assert_array_equal(a, b)

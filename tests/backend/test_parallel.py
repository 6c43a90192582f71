"""backend/parallel.py: blocks cover the rows once, results come back in block order, the
numbers do not depend on the thread count, nested calls run inline, and a forked child
gets working threads."""

import os
import threading

import numpy as np
import pytest

from modelkit.backend import parallel


def test_blocks_cover_every_row_once():
    assert parallel.blocks(10, 4, block_bytes=12) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert parallel.blocks(3, 1000, block_bytes=10) == [(0, 1), (1, 2), (2, 3)]
    assert parallel.blocks(0, 4) == []


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_map_blocks_returns_results_in_block_order(monkeypatch, threads):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
    names = set()

    def fn(lo, hi):
        names.add(threading.current_thread().name)
        return (lo, hi)

    got = parallel.map_blocks(fn, 50, 1, block_bytes=4)
    assert got == parallel.blocks(50, 1, block_bytes=4)
    assert len(names) <= int(threads)


def test_sums_do_not_depend_on_the_thread_count(monkeypatch):
    x = np.random.default_rng(0).standard_normal((257, 33)).astype(np.float32)
    sums = []
    for threads in ("1", "2", "4"):
        monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
        parts = parallel.map_blocks(lambda lo, hi: x[lo:hi].sum(axis=0), len(x), x[0].nbytes,
                                    block_bytes=1000)
        sums.append(np.sum(parts, axis=0))
    assert len(parts) > 4
    assert all(np.array_equal(s, sums[0]) for s in sums)
    np.testing.assert_allclose(sums[0], x.astype(np.float64).sum(axis=0), rtol=1e-5, atol=1e-4)


def test_nested_calls_run_inline_and_errors_propagate(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    inner = parallel.map_blocks(
        lambda lo, hi: parallel.map_blocks(lambda a, b: b - a, 8, 1, block_bytes=2), 4, 1,
        block_bytes=1)
    assert inner == [[2, 2, 2, 2]] * 4
    assert parallel.run_parts(lambda i: i * i, 3) == [0, 1, 4]

    def boom(lo, hi):
        raise ValueError(f"block {lo}")

    with pytest.raises(ValueError, match="block"):
        parallel.map_blocks(boom, 4, 1, block_bytes=1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_new_threads(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    assert parallel.map_blocks(lambda lo, hi: hi, 4, 1, block_bytes=1) == [1, 2, 3, 4]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                  # child: must not hang on dead threads
        try:
            ok = parallel.map_blocks(lambda lo, hi: hi, 4, 1, block_bytes=1) == [1, 2, 3, 4]
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1" and status == 0


@pytest.mark.parametrize("memory", ["c", "cf", "mixed"])
def test_elementwise_splits_along_the_outer_memory_axis(monkeypatch, memory):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    monkeypatch.setattr(parallel, "BLOCK_BYTES", 64)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    b = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    if memory in ("cf", "mixed"):              # channels-last view of channels-first memory
        a = np.moveaxis(np.ascontiguousarray(np.moveaxis(a, -1, 1)), 1, -1)
    if memory == "cf":
        b = np.moveaxis(np.ascontiguousarray(np.moveaxis(b, -1, 1)), 1, -1)
    out = np.empty_like(a)
    calls = []

    def fn(o, x, y):
        calls.append(o.shape)
        np.multiply(x, y, out=o)

    parallel.elementwise(fn, out, a, b)
    assert np.array_equal(out, a * b)
    assert len(calls) == (1 if memory == "mixed" else 3)    # split along the batch axis
    assert parallel.outer_axis(a) == 0 and parallel.outer_axis(np.zeros((1, 4, 3))) == 1


def test_plain_relu_in_blocks_on_two_threads(monkeypatch):
    """relu's blocked forward and gradient (it keeps y: x > 0 <=> y > 0) against numpy,
    on a channels-last view of channels-first memory, NaN and signed zeros included."""
    from modelkit.backend import GradientTape, Variable
    from modelkit.backend.tape import OPS, apply
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    monkeypatch.setattr(parallel, "BLOCK_BYTES", 256)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 5, 7, 4)).astype(np.float32)
    x[0, 0, 0, :3] = [np.nan, -0.0, 0.0]
    x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, -1, 1)), 1, -1)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    v = Variable(x)
    with GradientTape() as tape:
        y = apply(OPS.get("relu"), v)
    g = np.asarray(tape.gradient(y, [v], output_gradient=gy)[0])
    np.testing.assert_array_equal(y.value, np.maximum(x, 0))
    np.testing.assert_array_equal(g, np.where(x > 0, gy, 0))
    assert y.value.strides == x.strides and g.strides == x.strides


@pytest.mark.parametrize("attrs", [dict(pool=(2, 2)),
                                   dict(pool=(3, 3), strides=(2, 2), padding="same")])
def test_max_pooling_over_image_blocks_matches_one_block(monkeypatch, attrs):
    """pool_max and its gradient over one image per block on two threads give exactly the
    numbers of one block (tiled windows and overlapping 'same' windows)."""
    from modelkit.backend import GradientTape, Variable
    from modelkit.backend.tape import OPS, apply
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 7, 6, 3)).astype(np.float32)
    x[1, :2, :2] = 0.5                                     # ties keep the first offset
    results = []
    for threads, block in (("1", 1 << 30), ("2", 1)):
        monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
        monkeypatch.setattr(parallel, "BLOCK_BYTES", block)
        v = Variable(x)
        with GradientTape() as tape:
            y = apply(OPS.get("pool_max"), v, **attrs)
        gy = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
        results.append((y.value, np.asarray(tape.gradient(y, [v], output_gradient=gy)[0])))
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])
    assert results[0][0].max() == x.max() and results[0][1].sum() != 0


@pytest.mark.parametrize("shape", [(300, 200, 400), (400, 200, 300), (7, 5, 3)])
def test_matmul_split_over_threads_matches_one_gemm(monkeypatch, shape):
    """With numpy's BLAS on one thread, a big product is computed in one part per thread
    (along the output's longer side), a small one in one GEMM; the result equals a single
    GEMM's."""
    from modelkit.backend import blas
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    monkeypatch.setattr(parallel, "SPLIT_FLOPS", 1000)
    monkeypatch.setattr(blas, "threads", lambda: 1)
    parts = []
    run_parts = parallel.run_parts
    monkeypatch.setattr(parallel, "run_parts",
                        lambda fn, count: parts.append(count) or run_parts(fn, count))
    got = parallel.matmul(a, b)
    assert parts == ([2] if m * n * k > 1000 else [])
    np.testing.assert_allclose(got, a @ b, rtol=1e-5, atol=1e-4)
    got_t = parallel.matmul(b.T, a.T)                   # transposed (non-contiguous) operands
    np.testing.assert_allclose(got_t, (a @ b).T, rtol=1e-5, atol=1e-4)


def test_map_items_returns_results_in_item_order(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    assert parallel.map_items(lambda i: i * i, 7) == [i * i for i in range(7)]
    assert parallel.map_items(lambda i: i, 0) == []


def test_flat_views_dense_memory_only():
    a = np.arange(24.0).reshape(2, 3, 4).transpose(0, 2, 1)      # dense, not C order
    f = parallel.flat(a)
    assert f is not None and np.shares_memory(f, a) and np.array_equal(np.sort(f), np.arange(24.0))
    assert parallel.flat(np.arange(10.0)[::2]) is None            # gaps: no view


def test_zeros_are_read_only_and_grow():
    z = parallel.zeros(5, np.float32)
    assert z.shape == (5,) and z.dtype == np.float32 and not z.any() and not z.flags.writeable
    big = parallel.zeros(parallel.BLOCK_BYTES, np.float32)        # more than the first array
    assert big.size == parallel.BLOCK_BYTES and not big.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ones_are_read_only_grow_and_stay_apart_from_zeros(dtype):
    small = parallel.ones(5, dtype)
    assert small.dtype == dtype and np.all(small == 1) and not small.flags.writeable
    big = parallel.ones(parallel.BLOCK_BYTES, dtype)
    assert big.size == parallel.BLOCK_BYTES and np.all(big == 1) and np.all(small == 1)
    assert not parallel.zeros(parallel.BLOCK_BYTES, dtype).any()


def test_relu_on_a_channels_last_view_of_channels_first_memory(monkeypatch):
    """The plain relu's blocks (max against a zeros block over flat views) keep the input's
    memory order and values, on 1 and 2 threads."""
    from modelkit.backend.nn_ops import _relu
    x = np.random.default_rng(1).standard_normal((5, 3, 7, 6)).astype(np.float32)
    view = x.transpose(0, 2, 3, 1)
    for threads in ("1", "2"):
        monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
        monkeypatch.setattr(parallel, "BLOCK_BYTES", 512)
        y, _ = _relu.forward(view)
        assert y.strides == view.strides
        assert np.array_equal(y, np.maximum(view, 0))


def test_reserved_cores_lower_the_threads_of_new_calls_not_the_blocks(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "3")
    names = []

    def item(i):
        names.append(threading.current_thread().name)
        return i * i

    assert parallel.available() == 3
    with parallel.reserved():
        assert parallel.available() == 2
        with parallel.reserved(), parallel.reserved():
            assert parallel.available() == 1          # never below one
            names.clear()
            assert parallel.map_items(item, 6) == [i * i for i in range(6)]
            assert set(names) == {threading.current_thread().name}   # all inline
    assert parallel.available() == 3
    with parallel.inline():
        names.clear()
        assert parallel.map_items(item, 6) == [i * i for i in range(6)]
        assert set(names) == {threading.current_thread().name}


def _joined_call(item, count):
    """map_items(item, count) made while a core is reserved, with a second thread calling
    help_waiting once the call has started: -> (results or error, the helper's names)."""
    started, helped = threading.Event(), []

    def helper():
        assert started.wait(10)
        parallel.help_waiting()
        helped.append(threading.current_thread().name)

    def first_waits(i):
        if i == 0:
            started.set()
            while not helped and not parallel._WAITING[0].active:
                threading.Event().wait(0.001)     # until the helper has joined (or left)
        return item(i)

    t = threading.Thread(target=helper, name="helper")
    t.start()
    try:
        with parallel.reserved():
            return parallel.map_items(first_waits, count)
    finally:
        t.join(10)


def test_a_call_without_the_reserved_core_is_joined_when_side_work_ends(monkeypatch):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    names = []

    def item(i):
        names.append((i, threading.current_thread().name))
        threading.Event().wait(0.002)
        return i * i

    assert _joined_call(item, 12) == [i * i for i in range(12)]
    by = {name for _, name in names}
    assert by == {threading.current_thread().name, "helper"}
    assert sorted(i for i, _ in names) == list(range(12))       # each item once
    assert parallel._WAITING == []
    parallel.help_waiting()                                     # nothing waiting: no-op

    def failing(i):
        if threading.current_thread().name == "helper":
            raise ValueError("joined item failed")
        threading.Event().wait(0.002)
        return i

    with pytest.raises(ValueError, match="joined item failed"):
        _joined_call(failing, 12)
    assert parallel._WAITING == []


def test_the_side_stream_joins_waiting_calls_when_its_queue_is_empty(monkeypatch):
    from modelkit.backend import streams
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    side_done, names = threading.Event(), []

    def item(i):
        if i == 0:
            assert side_done.wait(10)
            threading.Event().wait(0.05)        # the side worker joins meanwhile
        names.append(threading.current_thread().name)
        threading.Event().wait(0.002)
        return i + 1

    def side_work():
        while not parallel._WAITING:            # the main thread's call has started
            threading.Event().wait(0.001)
        side_done.set()
        return 1

    with streams.SideStream() as side:
        side.submit(side_work)
        while not parallel._RESERVED[0]:
            threading.Event().wait(0.001)
        assert parallel.map_items(item, 20) == list(range(1, 21))
    assert any(n.startswith("modelkit-side") for n in names)


@pytest.mark.parametrize("memory", ["first", "last"])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_large_add_in_blocks_keeps_numbers_and_memory_order(monkeypatch, memory, threads):
    from modelkit.backend import GradientTape, Variable
    from modelkit.backend.tape import OPS, apply
    monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)     # 4 MiB, above the cut
    b = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
    if memory == "last":                    # channels-last views of channels-first memory
        a, b = np.moveaxis(a, 1, -1), np.moveaxis(b, 1, -1)
    av, bv = Variable(a), Variable(b)
    av.value, bv.value = a, b               # keep the views (Variable copies C-ordered)
    with GradientTape() as tape:
        y = apply(OPS.get("add"), av, bv)
    np.testing.assert_array_equal(y.value, a + b)
    assert y.value.strides == a.strides
    g = rng.standard_normal(a.shape).astype(np.float32)
    ga, gb = tape.gradient(y, [av, bv], output_gradient=g)
    np.testing.assert_array_equal(ga, g)
    np.testing.assert_array_equal(gb, g)
    small = apply(OPS.get("add"), Variable(np.ones((2, 3))), Variable(np.ones(3)))
    np.testing.assert_array_equal(small.value, np.full((2, 3), 2.0))   # broadcasting path


@pytest.mark.parametrize("threads", ["1", "2"])
def test_parallel_add_same_numbers_in_any_layout(monkeypatch, threads):
    monkeypatch.setenv("MODELKIT_NUM_THREADS", threads)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)     # 4 MiB: in blocks
    b = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
    cases = [(a, b), (np.moveaxis(a, 1, -1), np.moveaxis(b, 1, -1)),   # same strides
             (a, np.asfortranarray(b)),                                # different layouts
             (a[:, ::2], b[:, ::2]),                                   # gaps in memory
             (a[:1, :1], b[:1, :1]), (a, b.astype(np.float64)), (a, b[0, 0, 0])]
    for x, y in cases:
        out = parallel.add(x, y)
        np.testing.assert_array_equal(out, x + y)
        assert out.dtype == (x + y).dtype
        assert not np.may_share_memory(out, x) and not np.may_share_memory(out, y)
    assert parallel.add(a, b).strides == a.strides


def test_gradient_of_a_fork_is_summed_in_blocks(monkeypatch):
    """A tensor read by two ops gets the sum of both gradients (the residual fork)."""
    from modelkit.backend import GradientTape, Variable
    from modelkit.backend.tape import OPS, apply
    monkeypatch.setenv("MODELKIT_NUM_THREADS", "2")
    rng = np.random.default_rng(4)
    x = Variable(rng.standard_normal((8, 16, 32, 32)).astype(np.float32))
    w = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
    with GradientTape() as tape:
        y = apply(OPS.get("add"), apply(OPS.get("multiply"), x, w), x)   # x * w + x
    g = rng.standard_normal(w.shape).astype(np.float32)
    (gx,) = tape.gradient(y, [x], output_gradient=g)
    np.testing.assert_array_equal(gx, g + g * w)

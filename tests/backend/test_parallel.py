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

"""one_blas_thread(): one BLAS thread inside the block, the count restored after."""

import threading

import numpy as np
import pytest

from modelkit.backend import blas_threads


needs_openblas = pytest.mark.skipif(not blas_threads.available(),
                                    reason="numpy's BLAS has no thread-local thread count")


@needs_openblas
def test_one_thread_inside_and_restored_after():
    before = blas_threads.current()
    with blas_threads.one_blas_thread():
        assert blas_threads.current() == 1
        with blas_threads.one_blas_thread():             # nested: still one
            assert blas_threads.current() == 1
        assert blas_threads.current() == 1
    assert blas_threads.current() == before


@needs_openblas
def test_restored_after_an_exception():
    before = blas_threads.current()
    with pytest.raises(ValueError):
        with blas_threads.one_blas_thread():
            raise ValueError("boom")
    assert blas_threads.current() == before


@needs_openblas
def test_overlapping_blocks_in_two_threads_restore_once_both_end():
    before = blas_threads.current()
    inside, release = threading.Event(), threading.Event()

    def other():
        with blas_threads.one_blas_thread():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    with blas_threads.one_blas_thread():
        t.start()
        assert inside.wait(10)
    assert blas_threads.current() == 1          # the other thread's block is still open
    release.set()
    t.join()
    assert blas_threads.current() == before


def test_products_unchanged():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 128))
    b = rng.standard_normal((128, 512))
    with blas_threads.one_blas_thread():
        inside = a @ b
    np.testing.assert_allclose(inside, a @ b, rtol=1e-12, atol=1e-12)

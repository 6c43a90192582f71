"""backend/blas.py: OpenBLAS on one thread inside the block, its count restored after;
the training step pins it only for models whose previous step ran the fast convolutions;
axpy rounds once, the same way at any offset, and falls back to numpy."""

import numpy as np
import pytest

from modelkit.backend import blas


def test_single_threaded_sets_and_restores_the_count(monkeypatch):
    before = blas.threads()
    if before is None:
        pytest.skip("numpy's BLAS is not OpenBLAS here")
    calls = []
    found = blas._functions()
    monkeypatch.setattr(blas, "_FUNCTIONS", (lambda: 2, lambda n: calls.append(n)) + found[2:])
    with blas.single_threaded():
        assert calls == [1]
    assert calls == [1, 2]
    monkeypatch.setenv("MODELKIT_PIN_BLAS", "0")
    with blas.single_threaded():
        pass
    assert calls == [1, 2]
    monkeypatch.setattr(blas, "_FUNCTIONS", found)
    monkeypatch.delenv("MODELKIT_PIN_BLAS")
    with blas.single_threaded():                       # the real library
        assert blas.threads() == 1
    assert blas.threads() == before


def test_training_pins_blas_after_a_step_with_fast_convolutions(monkeypatch):
    from modelkit.layers import Conv2D, Dense, Flatten
    from modelkit.models import Sequential
    entered = []

    class Recorder:
        def __enter__(self):
            entered.append(1)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(blas, "single_threaded", Recorder)
    x = np.zeros((4, 6, 6, 1), np.float32)
    y = np.zeros((4, 2), np.float32)
    for layers, pinned in (([Conv2D(2, 3, input_shape=(6, 6, 1)), Flatten(), Dense(2)], [1, 1]),
                           ([Flatten(input_shape=(6, 6, 1)), Dense(2)], [])):
        entered.clear()
        model = Sequential(layers)
        model.compile(loss="mse", optimizer="sgd")
        for _ in range(3):
            model.train_on_batch(x, y)
        assert entered == pinned                       # not the first step: it finds out


needs_openblas = pytest.mark.skipif(blas.threads() is None,
                                    reason="numpy's BLAS is not OpenBLAS here")


@needs_openblas
def test_nested_blocks_restore_once_and_after_an_exception():
    before = blas.threads()
    with pytest.raises(ValueError):
        with blas.single_threaded():
            with blas.single_threaded():                  # the recurrent ops inside a step
                assert blas.threads() == 1
            assert blas.threads() == 1                     # the outer block still holds it
            raise ValueError("boom")
    assert blas.threads() == before


@needs_openblas
def test_blocks_overlapping_in_two_threads_restore_when_the_last_ends():
    import threading
    before = blas.threads()
    inside, release = threading.Event(), threading.Event()

    def other():
        with blas.single_threaded():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    with blas.single_threaded():
        t.start()
        assert inside.wait(10)
    assert blas.threads() == 1                             # the other thread's block is open
    release.set()
    t.join()
    assert blas.threads() == before


def test_products_unchanged_on_one_thread():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 128)), rng.standard_normal((128, 512))
    with blas.single_threaded():
        inside = a @ b
    np.testing.assert_allclose(inside, a @ b, rtol=1e-12, atol=1e-12)


def _ulps(a, b):
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


@pytest.mark.parametrize("n", [0, 1, 7, 31, 33, 1000, 392_000])
def test_axpy_rounds_once(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    want = (y.astype(np.float64) + np.float64(np.float32(-0.01)) * x).astype(np.float32)
    blas.axpy(-0.01, x, y)
    assert _ulps(y, want).max(initial=0) <= 1          # double rounding may differ by one


@pytest.mark.parametrize("n", [50, 5000])       # (5000 x 37: on OpenBLAS's threads)
def test_axpy_same_numbers_at_any_offset(n):
    """The sparse SGD update applies axpy to gathered rows: each value must come out as
    in the whole-array call."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 37)).astype(np.float32)
    y = rng.standard_normal((n, 37)).astype(np.float32)
    whole = y.copy()
    blas.axpy(0.3, x, whole)
    for rows in ([3], [1, 7, 8, 20], list(range(5, n, 3)), list(range(n // 2, n))):
        part = y[rows]
        blas.axpy(0.3, np.ascontiguousarray(x[rows]), part)
        np.testing.assert_array_equal(part, whole[rows])


def test_axpy_falls_back_to_numpy(monkeypatch):
    rng = np.random.default_rng(1)
    x64 = rng.standard_normal((6, 5))
    y64 = rng.standard_normal((6, 5))
    for x, y in [(x64.astype(np.float16), y64.astype(np.float16)),    # no BLAS routine
                 (x64.astype(np.float32).T, y64.astype(np.float32).T.copy()),  # strided x
                 (x64.astype(np.float32), y64.astype(np.float32))]:
        want = y + np.multiply(x, np.asarray(2.5, y.dtype), dtype=y.dtype)
        if x.dtype == np.float32 and x.flags.c_contiguous:
            monkeypatch.setenv("MODELKIT_BLAS_AXPY", "0")
        blas.axpy(2.5, x, y)
        np.testing.assert_array_equal(y, want)

"""backend/blas.py: OpenBLAS on one thread inside the block, its count restored after;
the training step pins it only for models whose previous step ran the fast convolutions."""

import numpy as np
import pytest

from modelkit.backend import blas


def test_single_threaded_sets_and_restores_the_count(monkeypatch):
    before = blas.threads()
    if before is None:
        pytest.skip("numpy's BLAS is not OpenBLAS here")
    calls = []
    get, put = blas._functions()
    monkeypatch.setattr(blas, "_FUNCTIONS", (lambda: 2, lambda n: calls.append(n)))
    with blas.single_threaded():
        assert calls == [1]
    assert calls == [1, 2]
    monkeypatch.setenv("MODELKIT_PIN_BLAS", "0")
    with blas.single_threaded():
        pass
    assert calls == [1, 2]
    monkeypatch.setattr(blas, "_FUNCTIONS", (get, put))
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

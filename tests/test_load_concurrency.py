"""Safe mode and custom objects are per call (contextvars): concurrent loads in several
threads never see each other's `safe_mode=False` or `custom_objects`."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from modelkit.errors import ModelLoadError, UnsafeLoadError
from modelkit.layers import Dense, Input, Lambda
from modelkit.layers.serialization import custom_object_scope, in_safe_mode, safe_mode_scope
from modelkit.models import Model, load_model


class Scaled(Dense):
    """A custom layer class: loadable only with custom_objects={"Scaled": Scaled}."""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("concurrent")
    inp = Input(shape=(3,))
    Model(inp, Lambda(lambda t: t * 2 + 1, name="double")(inp)).save(folder / "lambda.h5")
    inp = Input(shape=(3,))
    Model(inp, Scaled(1, kernel_initializer="ones", name="scaled")(inp)).save(folder / "custom.h5")
    return folder


def _in_another_thread(fn):
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=60)


def test_safe_mode_off_in_one_thread_stays_on_in_another(files):
    x = np.ones((1, 3), np.float32)
    with safe_mode_scope(False):           # what load_model(..., safe_mode=False) opens
        assert not in_safe_mode()

        def other():                       # a load running meanwhile elsewhere stays safe
            assert in_safe_mode()
            with pytest.raises(UnsafeLoadError, match="'double'.*safe_mode=False"):
                load_model(files / "lambda.h5")
            return True
        assert _in_another_thread(other)
    assert in_safe_mode()
    assert np.allclose(load_model(files / "lambda.h5", safe_mode=False).predict(x), 3.0)


def test_custom_objects_of_one_thread_are_not_seen_by_another(files):
    with custom_object_scope({"Scaled": Scaled}):
        assert load_model(files / "custom.h5").predict(np.ones((1, 3)))[0, 0] == 3.0

        def other():
            with pytest.raises(ModelLoadError, match="Scaled"):
                load_model(files / "custom.h5")
            return True
        assert _in_another_thread(other)


def test_many_concurrent_safe_and_unsafe_loads(files):
    """8 threads, each alternating safe and unsafe loads of the Lambda file in lockstep:
    every safe load is refused and every unsafe one runs, whatever the interleaving."""
    n_threads, rounds = 8, 4
    barrier = threading.Barrier(n_threads, timeout=60)
    x = np.ones((1, 3), np.float32)

    def worker(i):
        outcomes = []
        for r in range(rounds):
            barrier.wait()
            unsafe = (i + r) % 2 == 0
            try:
                y = load_model(files / "lambda.h5", safe_mode=not unsafe).predict(x)
                outcomes.append(("ran", unsafe, float(y[0, 0])))
            except UnsafeLoadError:
                outcomes.append(("refused", unsafe, None))
        return outcomes

    with ThreadPoolExecutor(n_threads) as pool:
        results = [o for f in [pool.submit(worker, i) for i in range(n_threads)]
                   for o in f.result(timeout=120)]
    assert len(results) == n_threads * rounds
    assert all(kind == ("ran" if unsafe else "refused") for kind, unsafe, _ in results)
    assert all(y == 3.0 for kind, _, y in results if kind == "ran")

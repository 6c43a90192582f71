"""backend/blas_pool.py and _native_pool.c: numpy's OpenBLAS runs its multithreaded jobs on
the pool's workers with the numbers of its own threads, bit for bit (GEMM, GEMV, axpy, at
2-4 threads); the kernels split across the same workers make the numbers of one pass on
one thread (SGD, Adam, tanh's gradient, dropout's three mask widths, sizes off the
64-value blocks, batch rows gathered); concurrent callers, a forked child and
MODELKIT_BLAS_POOL=0 all work."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import modelkit
from modelkit.backend import blas, blas_pool, native

pytestmark = pytest.mark.skipif(blas_pool._parts() is None,
                                reason="numpy's BLAS is not OpenBLAS 0.3.27+, or no C kernels")


@pytest.fixture
def pool():
    """The pool installed with workers that stay awake (10 s) and OpenBLAS's thread count
    restorable: `pool(n)` sets n threads and wakes n - 1 workers with a GEMM. Left
    installed afterwards (as the training loop leaves it)."""
    get_threads, set_threads = blas._functions()[:2]
    before = get_threads()
    assert blas_pool.install()
    blas_pool.set_spin(10_000_000)
    a = np.ones((400, 400), np.float32)

    def threads(n):
        set_threads(n)
        a @ a
    yield threads
    blas_pool.set_spin(blas_pool._spin_microseconds())
    set_threads(before)


def _blas_results(rng):
    a = rng.standard_normal((200, 784), dtype=np.float32)
    b = rng.standard_normal((784, 500), dtype=np.float32)
    c = rng.standard_normal((500, 500), dtype=np.float32)
    d = rng.standard_normal((1500, 1500))                    # float64 GEMV
    y = rng.standard_normal(400_000, dtype=np.float32)
    blas.axpy(0.5, rng.standard_normal(400_000, dtype=np.float32), y)
    return [a @ b, (a @ b) @ c.T, a.T @ (a @ b), d @ d[0], y]


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_openblas_jobs_on_the_pool_equal_its_own_threads(pool, threads):
    pool(threads)
    blas_pool.uninstall()
    own = _blas_results(np.random.default_rng(0))
    assert blas_pool.install()
    before = blas_pool.dispatches()
    shared = _blas_results(np.random.default_rng(0))
    assert blas_pool.dispatches() > before                   # the jobs went through it
    assert blas_pool.workers() >= threads - 1
    for x, y in zip(own, shared):
        assert np.array_equal(x, y)


SGD_KERNEL = native.sgd_momentum_takes(np.zeros(1, np.float32))   # it needs AVX-512
KERNEL_CALLS = 7 if SGD_KERNEL else 5                                # in one _kernels()


def _kernels(rng, n):
    """Every pooled kernel's outputs for n values (KERNEL_CALLS calls)."""
    p, v = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    out = [native.tanh_grad(g, np.tanh(p))]
    for nesterov in (0, 1) if SGD_KERNEL else ():
        pn, vn = p.copy(), v.copy()
        native.sgd_momentum(pn, vn, g, 0.9, 0.01, nesterov)
        out += [pn, vn]
    pa, ma, va = p.copy(), v.copy(), np.abs(v)
    native.adam_dense(pa, ma, va, g, 0.9, 0.999, 1e-7, 0.001)
    out += [pa, ma, va]
    for bits, raw_bytes, below in ((1, (n + 63) // 64 * 8, 0), (8, n, 77), (16, 2 * n, 40000)):
        raw = rng.integers(0, 256, raw_bytes, dtype=np.uint8)
        dropped = np.empty_like(g)
        native.dropout_apply(g, raw, bits, below, 2.0, dropped)
        out.append(dropped)
    return out


@pytest.mark.parametrize("n", [16384 * 2, 16384 * 2 + 17, 100_003, 262_144 + 64 * 5 + 3])
@pytest.mark.parametrize("threads", [2, 3])
def test_kernels_split_across_the_pool_equal_one_pass(pool, n, threads):
    pool(threads)
    with blas.single_threaded():                             # one part, this thread
        before = blas_pool.dispatches()
        whole = _kernels(np.random.default_rng(n), n)
        assert blas_pool.dispatches() == before
    split = _kernels(np.random.default_rng(n), n)
    assert blas_pool.dispatches() >= before + KERNEL_CALLS    # each kernel call split
    for x, y in zip(whole, split):
        assert np.array_equal(x, y)


def test_small_arrays_and_sleeping_workers_stay_on_the_calling_thread(pool):
    pool(2)
    before = blas_pool.dispatches()
    _kernels(np.random.default_rng(1), 1000)
    assert blas_pool.dispatches() == before
    blas_pool.set_spin(0)                          # the worker falls asleep at once
    (np.ones((400, 400), np.float32) @ np.ones((400, 400), np.float32))
    time.sleep(0.05)
    assert blas_pool.dispatches() == before + 1     # the GEMM woke it; the kernels do not
    whole = _kernels(np.random.default_rng(2), 100_000)
    assert blas_pool.dispatches() == before + 1
    blas_pool.set_spin(10_000_000)
    pool(2)
    for x, y in zip(whole, _kernels(np.random.default_rng(2), 100_000)):
        assert np.array_equal(x, y)


def _run(code, cwd, **env):
    """Run `code` in a fresh interpreter, in the empty folder `cwd`, with the modelkit these
    tests import (an installed one, not the checkout's sources); its stdout. A hang fails
    after 120 s."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(modelkit.__file__)))
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=120, cwd=cwd,
                            env={**os.environ, "PYTHONPATH": path, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_concurrent_callers_and_a_forked_child(tmp_path):
    out = _run("""
        import os, threading
        import numpy as np
        from modelkit.backend import blas, blas_pool, native
        blas._functions()[1](2)
        rng = np.random.default_rng(0)
        a = rng.standard_normal((300, 600), dtype=np.float32)
        g = rng.standard_normal(200_000, dtype=np.float32)
        y = np.tanh(g)
        want = (a @ a.T, native.tanh_grad(g, y))
        assert blas_pool.install()
        errors = []

        def work():
            for _ in range(30):
                if not (np.array_equal(a @ a.T, want[0])
                        and np.array_equal(native.tanh_grad(g, y), want[1])):
                    errors.append("different numbers")

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        pid = os.fork()
        if pid == 0:                     # the child makes workers of its own
            ok = np.array_equal(a @ a.T, want[0]) and \\
                np.array_equal(native.tanh_grad(g, y), want[1])
            os._exit(0 if ok and blas_pool.workers() >= 1 else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        print("ok", blas_pool.workers())
    """, tmp_path)
    assert out.split()[0] == "ok" and int(out.split()[1]) >= 1


def test_training_installs_the_pool_and_the_environment_switches_it_off(tmp_path):
    code = """
        import numpy as np
        from modelkit.backend import blas_pool
        from modelkit.layers import Dense
        from modelkit.models import Sequential
        model = Sequential([Dense(4, input_shape=(3,))])
        model.compile("sgd", "mse")
        model.fit(np.ones((8, 3), np.float32), np.ones((8, 4), np.float32), verbose=0)
        print(blas_pool.installed())
    """
    assert _run(code, tmp_path).strip() == "True"
    assert _run(code, tmp_path, MODELKIT_BLAS_POOL="0").strip() == "False"


@pytest.mark.parametrize("dtype, row", [(np.float32, (784,)), (np.float64, (3, 5, 7)),
                                        (np.int8, (33,)), (np.uint16, (4096,))])
def test_batch_rows_gathered_in_c_equal_numpy_indexing(pool, dtype, row):
    pool(2)
    rng = np.random.default_rng(3)
    data = (rng.random((3000,) + row) * 100).astype(dtype)
    index = rng.permutation(3000)[:1500]
    index[::7] -= 3000                                        # negative indices too
    before = blas_pool.dispatches()
    got = native.take_rows(data, index)
    assert got.dtype == data.dtype and np.array_equal(got, data[index])
    if data[index].nbytes >= 2 * native.TAKE_ROWS_BYTES * 2:
        assert blas_pool.dispatches() > before                # split across the workers
    with pytest.raises(IndexError):
        native.take_rows(data, np.append(index, 3000))


def test_gathers_numpy_does_better_stay_numpys():
    rng = np.random.default_rng(4)
    cases = [(rng.random((50, 4)), rng.permutation(50)),                  # small
             (np.array([object()] * 40000).reshape(20000, 2), np.arange(20000)[::-1]),
             (rng.random((4000, 300))[:, ::2], rng.permutation(4000)),     # strided
             (rng.random((4000, 300)), rng.permutation(4000).astype(np.float64).astype(int)
              .reshape(80, 50))]                                          # 2-D index
    for data, index in cases:
        got = native.take_rows(data, index)
        want = data[index]
        assert got.shape == want.shape
        assert all(a is b for a, b in zip(got.ravel(), want.ravel())) if data.dtype.hasobject \
            else np.array_equal(got, want)

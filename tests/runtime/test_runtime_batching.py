"""modelkit.runtime.DynamicBatcher: concurrent requests grouped into one session run."""

import threading

import numpy as np
import pytest
from test_runtime_session import (TABLE, gather_elements_model, gather_model,  # noqa: F401
                                  mlp_model, mlp_ref, reshape3_model, two_io_model)

from modelkit.errors import ConfigError, RuntimeSessionError, ShapeError
from modelkit.runtime import DynamicBatcher, InferenceSession


class Counting:
    """Delegates to an InferenceSession and records the rows of every run."""

    def __init__(self, sess):
        self.sess = sess
        self.batch_dynamic = sess.batch_dynamic
        self.inputs, self.outputs = sess.inputs, sess.outputs
        self.rows = []
        self.lock = threading.Lock()

    def validate(self, feeds):
        return self.sess.validate(feeds)

    def run(self, feeds):
        with self.lock:
            self.rows.append(len(next(iter(feeds.values()))))
        return self.sess.run(feeds)


def _concurrently(n, fn):
    results, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def work(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as e:   # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    return results


def test_groups_concurrent_requests_and_splits_outputs():
    sess = Counting(InferenceSession(mlp_model(), device="cpu"))
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((1 + i % 3, 4)).astype(np.float32) for i in range(32)]
    with DynamicBatcher(sess, max_batch_size=16, max_delay_ms=20) as batcher:
        outs = _concurrently(32, lambda i: batcher.run({"x": xs[i]}))
    for x, out in zip(xs, outs):
        assert list(out) == ["y"]
        np.testing.assert_allclose(out["y"], mlp_ref(x), rtol=1e-6, atol=1e-6)
    assert sum(sess.rows) == sum(len(x) for x in xs)
    assert max(sess.rows) <= 16
    assert len(sess.rows) < 32          # some requests shared a run
    assert batcher.runs == len(sess.rows)


def test_multi_io_and_input_forms():
    sess = InferenceSession(two_io_model(), device="cpu")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    with DynamicBatcher(sess, max_batch_size=8, max_delay_ms=5) as batcher:
        futures = [batcher.submit([a + i, a]) for i in range(5)]      # list in input order
        for i, f in enumerate(futures):
            out = f.result(10)
            np.testing.assert_allclose(out["sum"], a + i + a)
            np.testing.assert_allclose(out["prod"], (a + i) * a)


def test_bad_request_fails_alone_in_the_callers_thread():
    sess = InferenceSession(mlp_model(), device="cpu")
    with DynamicBatcher(sess, max_delay_ms=1) as batcher:
        with pytest.raises(ShapeError, match="Input 'x' dimension 1 must be 4"):
            batcher.submit({"x": np.zeros((1, 5), np.float32)})
        good = batcher.run({"x": np.ones((1, 4))}, timeout=10)     # float64 is cast
        np.testing.assert_allclose(good["y"], mlp_ref(np.ones((1, 4))), rtol=1e-6)


def test_runtime_errors_reach_the_caller():
    sess = InferenceSession(reshape3_model(), device="cpu")
    with DynamicBatcher(sess, max_delay_ms=1) as batcher:
        with pytest.raises(RuntimeSessionError, match="onnxruntime failed to run"):
            batcher.run(np.ones(4, np.float32), timeout=10)     # 4 values do not fit (3,)
        np.testing.assert_array_equal(batcher.run(np.arange(3.0), timeout=10)["y"],
                                      np.arange(3.0, dtype=np.float32))


def test_fixed_batch_models_run_one_request_at_a_time():
    sess = Counting(InferenceSession(mlp_model(batch=2), device="cpu"))
    with DynamicBatcher(sess, max_delay_ms=5) as batcher:
        outs = _concurrently(6, lambda i: batcher.run({"x": np.full((2, 4), i, np.float32)}))
    assert sess.rows == [2] * 6
    for i, out in enumerate(outs):
        np.testing.assert_allclose(out["y"], mlp_ref(np.full((2, 4), i)), rtol=1e-6)


def test_close_and_options():
    sess = InferenceSession(mlp_model(), device="cpu")
    batcher = DynamicBatcher(sess)
    batcher.close()
    with pytest.raises(RuntimeSessionError, match="DynamicBatcher is closed"):
        batcher.submit({"x": np.zeros((1, 4), np.float32)})
    with pytest.raises(ConfigError, match="max_batch_size"):
        DynamicBatcher(sess, max_batch_size=0)
    with pytest.raises(ConfigError, match="max_delay_ms"):
        DynamicBatcher(sess, max_delay_ms=-1)


def test_a_bad_value_in_a_batch_fails_only_its_request():
    # GatherElements' indices are not checked before running (index_bounds covers Gather):
    # onnxruntime refuses an index out of range while running the merged batch
    sess = Counting(InferenceSession(gather_elements_model(), device="cpu"))
    rows = lambda *ids: np.array([[i, i] for i in ids])                     # noqa: E731
    expect = lambda *ids: TABLE[[[i, i] for i in ids], [0, 1]]              # noqa: E731
    with DynamicBatcher(sess, max_batch_size=64, max_delay_ms=200) as batcher:
        futures = [batcher.submit(rows(i % 10, (i + 1) % 10)) for i in range(5)]
        bad = batcher.submit(rows(3, 100))                       # index out of range
        futures += [batcher.submit(rows(7)) for _ in range(3)]
        with pytest.raises(RuntimeSessionError, match="onnxruntime failed to run"):
            bad.result(10)
        for i, f in enumerate(futures[:5]):
            np.testing.assert_array_equal(f.result(10)["out"], expect(i % 10, (i + 1) % 10))
        for f in futures[5:]:
            np.testing.assert_array_equal(f.result(10)["out"], expect(7))
    assert sess.rows[0] == 2 * 5 + 2 + 3                         # one batch was tried first


def test_observer_sees_rows_queue_waits_and_run_time():
    seen = []
    sess = InferenceSession(mlp_model(), device="cpu")
    with DynamicBatcher(sess, max_batch_size=8, max_delay_ms=100,
                        observer=lambda *a: seen.append(a)) as batcher:
        futures = [batcher.submit({"x": np.ones((2, 4), np.float32)}) for _ in range(3)]
        for f in futures:
            f.result(10)
    assert sum(rows for rows, _, _ in seen) == 6
    assert sum(len(waits) for _, waits, _ in seen) == 3
    assert all(w >= 0 for _, waits, _ in seen for w in waits)
    assert all(t > 0 for _, _, t in seen)


def test_a_request_larger_than_the_batch_runs_alone_and_whole():
    sess = Counting(InferenceSession(mlp_model(), device="cpu"))
    x = np.random.default_rng(5).standard_normal((40, 4)).astype(np.float32)
    with DynamicBatcher(sess, max_batch_size=8, max_delay_ms=50) as batcher:
        big = batcher.submit({"x": x})
        small = batcher.submit({"x": x[:2]})
        np.testing.assert_allclose(big.result(10)["y"], mlp_ref(x), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(small.result(10)["y"], mlp_ref(x[:2]), rtol=1e-6, atol=1e-6)
    assert sorted(sess.rows) == [2, 40]


def test_outputs_without_the_batch_axis_are_not_batched():
    from onnx import TensorProto, helper

    from modelkit.runtime.batching import rows_can_be_batched
    vi = helper.make_tensor_value_info
    total = helper.make_model(helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1)], "total",
        [vi("x", TensorProto.FLOAT, ["N", 3])], [vi("s", TensorProto.FLOAT, [1, 1])]),
        opset_imports=[helper.make_opsetid("", 17)])
    total.ir_version = 8
    sess = Counting(InferenceSession(total, device="cpu"))
    assert not rows_can_be_batched(sess.sess)
    with DynamicBatcher(sess, max_batch_size=8, max_delay_ms=50) as batcher:
        futures = [batcher.submit({"x": np.full((1, 3), i, np.float32)}) for i in range(3)]
        assert [float(f.result(10)["s"][0, 0]) for f in futures] == [0.0, 3.0, 6.0]
    assert sess.rows == [1, 1, 1]
    assert rows_can_be_batched(InferenceSession(mlp_model(), device="cpu"))
    assert not rows_can_be_batched(InferenceSession(mlp_model(batch=2), device="cpu"))

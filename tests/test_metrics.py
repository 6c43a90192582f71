"""Stateful metrics: values vs numpy, sample weights, accumulation, names, accuracy rule,
dict-valued metric functions."""

import numpy as np
import pytest

from modelkit import metrics as M
from modelkit.errors import ConfigError

rng = np.random.default_rng(0)
N, C = 8, 5
PROBS = rng.dirichlet(np.ones(C), N).astype(np.float32)
IDS = rng.integers(0, C, N)
ONE_HOT = np.eye(C, dtype=np.float32)[IDS]
B_TRUE = rng.integers(0, 2, (N, 1)).astype(np.float32)
B_PRED = rng.random((N, 1)).astype(np.float32)


def test_accuracy_functions():
    np.testing.assert_array_equal(M.categorical_accuracy(ONE_HOT, PROBS),
                                  (IDS == PROBS.argmax(-1)).astype(np.float32))
    np.testing.assert_array_equal(M.sparse_categorical_accuracy(IDS[:, None], PROBS),
                                  (IDS == PROBS.argmax(-1)).astype(np.float32))
    np.testing.assert_array_equal(M.binary_accuracy(B_TRUE, B_PRED),
                                  (B_TRUE == (B_PRED > 0.5)).mean(-1))
    np.testing.assert_array_equal(M.binary_accuracy(B_TRUE, B_PRED, threshold=0.9),
                                  (B_TRUE == (B_PRED > 0.9)).mean(-1))
    ranks = (PROBS > PROBS[np.arange(N), IDS][:, None]).sum(-1)
    for k in (1, 2, 3):
        np.testing.assert_array_equal(M.top_k_categorical_accuracy(ONE_HOT, PROBS, k=k),
                                      (ranks < k).astype(np.float32))
        np.testing.assert_array_equal(M.sparse_top_k_categorical_accuracy(IDS, PROBS, k=k),
                                      (ranks < k).astype(np.float32))


def test_metric_classes_accumulate_over_batches():
    m = M.CategoricalAccuracy()
    assert m.name == "categorical_accuracy"
    m.update_state(ONE_HOT[:3], PROBS[:3])
    m.update_state(ONE_HOT[3:], PROBS[3:])
    assert m.result() == pytest.approx(float((IDS == PROBS.argmax(-1)).mean()))
    m.reset_state()
    assert m.result() == 0.0
    assert M.SparseCategoricalAccuracy()(IDS, PROBS) == pytest.approx(
        float((IDS == PROBS.argmax(-1)).mean()))
    assert M.TopKCategoricalAccuracy(k=C)(ONE_HOT, PROBS) == 1.0
    assert M.SparseTopKCategoricalAccuracy(k=1)(IDS, PROBS) == pytest.approx(
        float((IDS == PROBS.argmax(-1)).mean()))
    assert M.BinaryAccuracy(threshold=0.3)(B_TRUE, B_PRED) == pytest.approx(
        float((B_TRUE == (B_PRED > 0.3)).mean()))
    assert M.Accuracy()(np.array([1, 2, 3]), np.array([1, 2, 4])) == pytest.approx(2 / 3)


def test_sample_weight_and_mean():
    sw = rng.random(N)
    per = (IDS == PROBS.argmax(-1)).astype(np.float64)
    m = M.CategoricalAccuracy()
    m.update_state(ONE_HOT, PROBS, sample_weight=sw)
    assert m.result() == pytest.approx((per * sw).sum() / sw.sum())
    mean = M.Mean()
    mean.update_state([1.0, 2.0, 3.0])
    mean.update_state([10.0], sample_weight=[3.0])
    assert mean.result() == pytest.approx((6 + 30) / 6)
    err = rng.normal(size=(N, 3))
    mse = M.MeanSquaredError()
    mse.update_state(err, np.zeros_like(err), sample_weight=sw)
    assert mse.result() == pytest.approx(((err ** 2).mean(-1) * sw).sum() / sw.sum(), rel=1e-5)


def test_loss_functions_as_metrics():
    t, p = rng.normal(size=(N, 3)), rng.normal(size=(N, 3))
    for name, ref in [("mse", ((p - t) ** 2).mean()), ("mae", np.abs(p - t).mean()),
                      ("mean_squared_error", ((p - t) ** 2).mean())]:
        m = M.get(name)
        assert m.name == name
        assert m(t, p) == pytest.approx(ref, rel=1e-5)
    rmse = M.RootMeanSquaredError()
    assert rmse(t, p) == pytest.approx(np.sqrt(((p - t) ** 2).mean()), rel=1e-5)
    cos = M.CosineSimilarity()(t, p)
    tn = t / np.linalg.norm(t, axis=-1, keepdims=True)
    pn = p / np.linalg.norm(p, axis=-1, keepdims=True)
    assert cos == pytest.approx((tn * pn).sum(-1).mean(), rel=1e-5)
    assert M.get("categorical_crossentropy")(ONE_HOT, PROBS) == pytest.approx(
        float(-np.log(PROBS[np.arange(N), IDS]).mean()), rel=1e-5)


def test_get_wraps_callables_named_after_them():
    def my_metric(y_true, y_pred):
        return np.abs(y_true - y_pred).max(-1)
    m = M.get(my_metric)
    assert isinstance(m, M.MeanMetricWrapper) and m.name == "my_metric"
    assert m.result_names() == ["my_metric"]
    t, p = rng.normal(size=(N, 2)), rng.normal(size=(N, 2))
    assert m(t, p) == pytest.approx(np.abs(t - p).max(-1).mean())
    inst = M.BinaryAccuracy()
    assert M.get(inst) is inst
    assert isinstance(M.get("CategoricalAccuracy"), M.CategoricalAccuracy)
    assert isinstance(M.get(M.CategoricalAccuracy), M.CategoricalAccuracy)
    assert M.get("acc").name == "acc"
    with pytest.raises(ConfigError) as e:
        M.get("categorical_acuracy")
    assert "categorical_accuracy" in str(e.value)


def test_dict_valued_metrics():
    def stats(y_true, y_pred):
        return {"max_err": np.abs(y_true - y_pred).max(-1), "bias": (y_pred - y_true).mean(-1)}
    m = M.get(stats)
    t, p = rng.normal(size=(N, 2)), rng.normal(size=(N, 2))
    m.update_state(t[:4], p[:4])
    m.update_state(t[4:], p[4:])
    result = m.result()
    assert set(result) == {"max_err", "bias"} and m.result_names() == ["max_err", "bias"]
    assert result["max_err"] == pytest.approx(np.abs(t - p).max(-1).mean())
    assert result["bias"] == pytest.approx((p - t).mean())
    m.reset_state()
    assert m.result() == {"max_err": 0.0, "bias": 0.0}
    d = M.DictMetricWrapper(stats, names=["max_err", "bias"])
    assert d.result_names() == ["max_err", "bias"]
    d.update_state(t, p, sample_weight=np.arange(N, dtype=float))
    w = np.arange(N)
    assert d.result()["bias"] == pytest.approx(((p - t).mean(-1) * w).sum() / w.sum())
    with pytest.raises(ConfigError):
        M.DictMetricWrapper(lambda a, b: a)(t, p)


@pytest.mark.parametrize("loss, shape, y_true, expected_fn", [
    ("binary_crossentropy", (None, 3), np.array([[1, 0, 1]] * 2, np.float32),
     M.binary_accuracy),
    ("mse", (None, 1), np.array([[1], [0]], np.float32), M.binary_accuracy),
    ("sparse_categorical_crossentropy", (None, 3), np.array([0, 2]),
     M.sparse_categorical_accuracy),
    ("categorical_crossentropy", (None, 3), np.eye(3, dtype=np.float32)[[0, 2]],
     M.categorical_accuracy),
    ("mse", (None, 3), np.array([[0], [2]]), M.sparse_categorical_accuracy),  # tf.keras fallback
])
def test_resolve_accuracy(loss, shape, y_true, expected_fn):
    y_pred = np.array([[0.7, 0.2, 0.6], [0.1, 0.3, 0.8]], np.float32)[:, :shape[-1]]
    for name in ("accuracy", "acc"):
        m = M.resolve_accuracy(name, loss, shape)
        assert m.name == name
        assert m(y_true, y_pred) == pytest.approx(float(np.mean(expected_fn(y_true, y_pred))))
    with pytest.raises(ConfigError):
        M.resolve_accuracy("precision", loss, shape)


def test_config_round_trip():
    for m in (M.BinaryAccuracy(threshold=0.7), M.TopKCategoricalAccuracy(k=3),
              M.CategoricalAccuracy(name="cat"), M.Mean(name="m"), M.MeanSquaredError()):
        back = M.get(M.serialize(m))
        assert type(back) is type(m) and back.get_config() == m.get_config()
    assert M.serialize(M.get("mse")) == "mse"

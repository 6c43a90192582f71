"""Every loss against a numpy formula, float64 gradient checks, Loss classes, names."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit import losses as L
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.errors import ConfigError, ShapeError

EPS = 1e-7
rng = np.random.default_rng(3)
N, C = 5, 4
ONE_HOT = np.eye(C)[rng.integers(0, C, N)]
IDS = ONE_HOT.argmax(-1)
PROBS = rng.dirichlet(np.ones(C), N)
BINARY = rng.integers(0, 2, (N, C)).astype(np.float64)
UNIT = rng.uniform(0.05, 0.95, (N, C))
REAL_T = rng.normal(size=(N, C))
REAL_P = rng.normal(size=(N, C))
POS_T = rng.uniform(0.5, 2.0, (N, C))
POS_P = rng.uniform(0.5, 2.0, (N, C))


def np_softplus(x):
    return np.log1p(np.exp(x))


def np_l2n(x):
    return x / np.sqrt(np.maximum((x ** 2).sum(-1, keepdims=True), 1e-12))


def np_hinge_labels(t):
    return 2 * t - 1 if np.all((t == 0) | (t == 1)) else t


def np_huber(t, p, d=1.0):
    e = np.abs(p - t)
    return np.where(e <= d, 0.5 * e ** 2, d * e - 0.5 * d * d).mean(-1)


# name: (fn, y_true, y_pred, numpy reference)
CASES = {
    "mse": (L.mse, REAL_T, REAL_P, lambda t, p: ((p - t) ** 2).mean(-1)),
    "mae": (L.mae, REAL_T, REAL_P, lambda t, p: np.abs(p - t).mean(-1)),
    "mape": (L.mape, POS_T, POS_P, lambda t, p: 100 * np.abs((t - p) / t).mean(-1)),
    "msle": (L.msle, POS_T, POS_P,
             lambda t, p: ((np.log(p + 1) - np.log(t + 1)) ** 2).mean(-1)),
    "hinge": (L.hinge, BINARY, REAL_P,
              lambda t, p: np.maximum(1 - np_hinge_labels(t) * p, 0).mean(-1)),
    "hinge_pm1": (L.hinge, 2 * BINARY - 1, REAL_P, lambda t, p: np.maximum(1 - t * p, 0).mean(-1)),
    "squared_hinge": (L.squared_hinge, BINARY, REAL_P,
                      lambda t, p: np.maximum(1 - np_hinge_labels(t) * p, 0).__pow__(2).mean(-1)),
    "categorical_hinge": (L.categorical_hinge, ONE_HOT, REAL_P,
                          lambda t, p: np.maximum(0, ((1 - t) * p).max(-1) - (t * p).sum(-1) + 1)),
    "logcosh": (L.logcosh, REAL_T, REAL_P, lambda t, p: np.log(np.cosh(p - t)).mean(-1)),
    "huber": (L.huber, REAL_T, REAL_P * 2, np_huber),
    "categorical_crossentropy": (L.categorical_crossentropy, ONE_HOT, PROBS,
                                 lambda t, p: -(t * np.log(p)).sum(-1)),
    "sparse_categorical_crossentropy": (L.sparse_categorical_crossentropy, IDS, PROBS,
                                        lambda t, p: -np.log(p[np.arange(N), t])),
    "binary_crossentropy": (L.binary_crossentropy, BINARY, UNIT,
                            lambda t, p: -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(-1)),
    "kld": (L.kld, PROBS[::-1].copy(), PROBS, lambda t, p: (t * np.log(t / p)).sum(-1)),
    "poisson": (L.poisson, POS_T, POS_P, lambda t, p: (p - t * np.log(p + EPS)).mean(-1)),
    "cosine_similarity": (L.cosine_similarity, REAL_T, REAL_P,
                          lambda t, p: -(np_l2n(t) * np_l2n(p)).sum(-1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_matches_numpy(name):
    fn, t, p, ref = CASES[name]
    out = fn(t, p.astype(np.float32))
    assert out.shape == (N,) and out.dtype == np.float32
    np.testing.assert_allclose(out.value, ref(t, p), rtol=2e-4, atol=1e-5)
    out64 = fn(t, K.Tensor(p))
    assert out64.dtype == np.float64
    np.testing.assert_allclose(out64.value, ref(t, p), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_gradient_float64(name):
    fn, t, p, _ = CASES[name]
    assert_gradients_close(lambda v: fn(t, v), [p], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float16, np.float64, bool])
def test_y_true_any_dtype_is_cast(dtype):
    out = L.binary_crossentropy(BINARY.astype(dtype), UNIT.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.value, CASES["binary_crossentropy"][3](BINARY, UNIT),
                               rtol=1e-4)
    out = L.sparse_categorical_crossentropy(IDS.astype(dtype if dtype is not bool else int)
                                            .reshape(N, 1), PROBS.astype(np.float32))
    assert out.shape == (N,)


def test_from_logits_and_softmax_tagging():
    logits = REAL_P
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ref = -(ONE_HOT * logp).sum(-1)
    np.testing.assert_allclose(L.categorical_crossentropy(ONE_HOT, logits, from_logits=True)
                               .value, ref, rtol=1e-5)
    np.testing.assert_allclose(L.categorical_crossentropy(ONE_HOT, K.softmax(K.Tensor(logits)))
                               .value, ref, rtol=1e-6)
    np.testing.assert_allclose(L.sparse_categorical_crossentropy(IDS, logits, from_logits=True)
                               .value, ref, rtol=1e-5)
    s = 1 / (1 + np.exp(-logits))
    bce = -(BINARY * np.log(s) + (1 - BINARY) * np.log(1 - s)).mean(-1)
    np.testing.assert_allclose(L.binary_crossentropy(BINARY, logits, from_logits=True).value,
                               bce, rtol=1e-5)
    np.testing.assert_allclose(L.binary_crossentropy(BINARY, K.sigmoid(K.Tensor(logits))).value,
                               bce, rtol=1e-5)
    assert_gradients_close(lambda v: L.categorical_crossentropy(ONE_HOT, v, from_logits=True),
                           [logits])
    assert_gradients_close(lambda v: L.binary_crossentropy(BINARY, v, from_logits=True),
                           [logits])


def test_label_smoothing():
    ls = 0.2
    t_cce = ONE_HOT * (1 - ls) + ls / C
    np.testing.assert_allclose(
        L.categorical_crossentropy(ONE_HOT, PROBS, label_smoothing=ls).value,
        -(t_cce * np.log(PROBS)).sum(-1), rtol=1e-5)
    t_bce = BINARY * (1 - ls) + 0.5 * ls
    np.testing.assert_allclose(
        L.binary_crossentropy(BINARY, UNIT, label_smoothing=ls).value,
        -(t_bce * np.log(UNIT) + (1 - t_bce) * np.log(1 - UNIT)).mean(-1), rtol=1e-5)


def test_huber_delta_and_cosine_proximity():
    np.testing.assert_allclose(L.huber(REAL_T, REAL_P, delta=0.5).value,
                               np_huber(REAL_T, REAL_P, 0.5), rtol=1e-6)
    with pytest.warns(DeprecationWarning, match="cosine_similarity"):
        fn = L.get("cosine_proximity")
    assert fn is L.cosine_similarity
    with pytest.warns(DeprecationWarning, match="cosine_similarity"):
        L.cosine_proximity(REAL_T, REAL_P)


def test_loss_classes_reduce_and_call():
    ref = ((REAL_P - REAL_T) ** 2).mean(-1)
    mse = L.MeanSquaredError()
    np.testing.assert_allclose(float(mse(REAL_T, REAL_P).value), ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(mse.call(REAL_T, REAL_P).value, ref, rtol=1e-6)
    sw = np.array([1.0, 0.0, 2.0, 0.5, 1.0])
    np.testing.assert_allclose(float(mse(REAL_T, REAL_P, sample_weight=sw).value),
                               (ref * sw).sum() / N, rtol=1e-6)
    np.testing.assert_allclose(float(L.MeanSquaredError(reduction="sum")(REAL_T, REAL_P).value),
                               ref.sum(), rtol=1e-6)
    np.testing.assert_allclose(L.MeanSquaredError(reduction="none")(REAL_T, REAL_P).value, ref,
                               rtol=1e-6)
    cce = L.CategoricalCrossentropy(from_logits=True)
    assert cce.fn is L.categorical_crossentropy and cce.name == "categorical_crossentropy"
    np.testing.assert_allclose(float(cce(ONE_HOT, REAL_P).value),
                               L.categorical_crossentropy(ONE_HOT, REAL_P, from_logits=True)
                               .value.mean(), rtol=1e-6)
    assert L.Huber(0.5).get_config()["delta"] == 0.5
    with pytest.raises(ConfigError):
        L.MeanSquaredError(reduction="mean")


@pytest.mark.parametrize("cls", [L.MeanSquaredError, L.MeanAbsoluteError, L.Huber,
                                 L.CategoricalCrossentropy, L.SparseCategoricalCrossentropy,
                                 L.BinaryCrossentropy, L.KLDivergence, L.Poisson,
                                 L.CosineSimilarity, L.LogCosh, L.Hinge, L.SquaredHinge,
                                 L.CategoricalHinge, L.MeanAbsolutePercentageError,
                                 L.MeanSquaredLogarithmicError])
def test_loss_class_config_round_trip(cls):
    obj = cls()
    back = L.get(L.serialize(obj))
    assert type(back) is cls and back.get_config() == obj.get_config()


def test_names_and_serialize():
    for name in ["mse", "mean_squared_error", "MSE", "mae", "mape", "msle", "kld",
                 "kullback_leibler_divergence", "logcosh", "log_cosh", "huber", "poisson",
                 "hinge", "squared_hinge", "categorical_hinge", "binary_crossentropy",
                 "categorical_crossentropy", "sparse_categorical_crossentropy",
                 "cosine_similarity"]:
        fn = L.get(name)
        assert L.get(L.serialize(fn)) is fn
    assert L.serialize(L.mse) == "mean_squared_error"
    assert isinstance(L.get("BinaryCrossentropy"), L.BinaryCrossentropy)
    with pytest.raises(ConfigError) as e:
        L.get("mean_sqared_error")
    assert "mean_squared_error" in str(e.value)


def test_shape_errors_name_the_problem():
    with pytest.raises(ShapeError, match="y_true"):
        L.mse(np.zeros((3, 2)), np.zeros((4, 5), np.float32))
    with pytest.raises(ShapeError, match="sparse_categorical_crossentropy"):
        L.sparse_categorical_crossentropy(np.zeros((3, 4)), np.zeros((3, 5), np.float32))
    with pytest.raises(ConfigError, match="class ids"):
        L.sparse_categorical_crossentropy(np.array([0, 7]), np.ones((2, 3), np.float32) / 3)

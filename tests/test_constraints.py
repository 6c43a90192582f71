"""Constraints against numpy formulas; names (incl. Keras 1) and configs."""

import numpy as np
import pytest

from modelkit import constraints as C
from modelkit.errors import ConfigError

EPS = 1e-7
W = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32) * 2


def col_norms(w, axis=0):
    return np.sqrt((w.astype(np.float64) ** 2).sum(axis=axis, keepdims=True))


def test_max_norm():
    out = C.MaxNorm(max_value=1.5)(W)
    n = col_norms(W)
    np.testing.assert_allclose(out, W * (np.clip(n, 0, 1.5) / (EPS + n)), rtol=1e-5)
    assert col_norms(out).max() <= 1.5 + 1e-5
    small = W * 0.01
    np.testing.assert_allclose(C.MaxNorm(2)(small), small, rtol=1e-5)
    assert out.dtype == W.dtype


def test_non_neg_and_unit_norm():
    np.testing.assert_array_equal(C.NonNeg()(W), np.where(W >= 0, W, 0))
    out = C.UnitNorm(axis=1)(W)
    np.testing.assert_allclose(col_norms(out, 1), 1.0, rtol=1e-5)


def test_min_max_norm():
    c = C.MinMaxNorm(min_value=1.0, max_value=2.0, rate=0.5)
    n = col_norms(W)
    desired = 0.5 * np.clip(n, 1.0, 2.0) + 0.5 * n
    np.testing.assert_allclose(c(W), W * desired / (EPS + n), rtol=1e-5)


def test_names_configs_and_keras1_aliases():
    for name, cls in [("max_norm", C.MaxNorm), ("MaxNorm", C.MaxNorm), ("non_neg", C.NonNeg),
                      ("unit_norm", C.UnitNorm), ("min_max_norm", C.MinMaxNorm)]:
        assert type(C.get(name)) is cls
    for old, cls in [("maxnorm", C.MaxNorm), ("nonneg", C.NonNeg), ("unitnorm", C.UnitNorm)]:
        with pytest.warns(DeprecationWarning, match="max_norm|non_neg|unit_norm"):
            assert type(C.get(old)) is cls
    with pytest.warns(DeprecationWarning, match="max_norm"):
        assert C.maxnorm(3).max_value == 3
    with pytest.warns(DeprecationWarning, match="max_value"):
        assert C.MaxNorm(m=4).max_value == 4
    for c in (C.MaxNorm(3, axis=[0, 1]), C.NonNeg(), C.UnitNorm(1), C.MinMaxNorm(0.5, 2, 0.3, 1)):
        back = C.get(C.serialize(c))
        assert type(back) is type(c) and back.get_config() == c.get_config()
    assert C.get(None) is None
    with pytest.raises(ConfigError):
        C.get("max_nrom")

"""Regularizers: values, gradients, names, configs."""

import warnings

import numpy as np
import pytest

from modelkit import backend as K
from modelkit import regularizers as R
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.errors import ConfigError

W = np.random.default_rng(0).normal(size=(4, 3))


@pytest.mark.parametrize("reg, expected", [
    (R.L1(0.3), 0.3 * np.abs(W).sum()),
    (R.L2(0.2), 0.2 * np.square(W).sum()),
    (R.L1L2(l1=0.1, l2=0.4), 0.1 * np.abs(W).sum() + 0.4 * np.square(W).sum()),
    (R.l1_l2(), 0.01 * np.abs(W).sum() + 0.01 * np.square(W).sum()),
    (R.L1L2(), 0.0),
])
def test_values_and_gradients(reg, expected):
    out = reg(K.Variable(W.astype(np.float32)))
    assert out.shape == () and out.dtype == np.float32
    np.testing.assert_allclose(float(out.value), expected, rtol=1e-5)
    if expected:
        assert_gradients_close(lambda v: reg(v), [W])


def test_get_names_and_round_trip():
    assert R.get(None) is None
    assert R.get("l2").get_config() == {"l2": 0.01}
    assert R.get("l1").get_config() == {"l1": 0.01}
    assert R.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    for reg in (R.L1(0.5), R.L2(0.25), R.L1L2(0.1, 0.2)):
        config = R.serialize(reg)
        back = R.get(config)
        assert type(back) is type(reg) and back.get_config() == reg.get_config()
    fn = lambda w: K.sum(w)  # noqa: E731
    assert R.get(fn) is fn


def test_bad_values():
    with pytest.raises(ConfigError):
        R.L2(-1)
    with pytest.raises(ConfigError):
        R.L1("a lot")
    with pytest.raises(ConfigError):
        R.get("l3")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert R.L2(l=0.5).l2 == 0.5

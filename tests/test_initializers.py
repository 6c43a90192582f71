"""Initializers: statistics, fans, orthogonality, seeds, names and config round trips."""

import math

import numpy as np
import pytest

from modelkit import initializers as I
from modelkit.errors import ConfigError, ShapeError


def test_constant_family_and_dtype():
    assert I.get("zeros")((2, 3)).dtype == np.float32
    np.testing.assert_array_equal(I.get("zero")((2,)), [0, 0])
    np.testing.assert_array_equal(I.get("one")((2,), dtype="float64"), [1, 1])
    assert I.get("ones")((2,), dtype="float64").dtype == np.float64
    np.testing.assert_array_equal(I.Constant(3.5)((2, 2)), np.full((2, 2), 3.5, np.float32))


def test_random_uniform_and_normal_statistics():
    u = I.RandomUniform(-0.2, 0.3, seed=1)((200, 100))
    assert u.min() >= -0.2 and u.max() <= 0.3
    assert abs(u.mean() - 0.05) < 0.01
    n = I.RandomNormal(mean=1.0, stddev=0.5, seed=2)((200, 100))
    assert abs(n.mean() - 1.0) < 0.02 and abs(n.std() - 0.5) < 0.02
    d = I.get("uniform")((1000,))
    assert np.abs(d).max() <= 0.05


def test_truncated_normal_is_cut_at_two_std():
    t = I.TruncatedNormal(mean=0.0, stddev=2.0, seed=3)((300, 100))
    assert np.abs(t).max() <= 4.0
    assert abs(t.std() - 2.0 * 0.8796) < 0.05


def test_fans():
    assert I.compute_fans((5,)) == (5, 5)
    assert I.compute_fans((4, 6)) == (4, 6)
    assert I.compute_fans((3, 3, 8, 16)) == (72, 144)
    assert I.compute_fans((3, 8, 16)) == (24, 48)


@pytest.mark.parametrize("name, scale, mode, dist", [
    ("glorot_uniform", 1.0, "fan_avg", "uniform"),
    ("glorot_normal", 1.0, "fan_avg", "normal"),
    ("he_uniform", 2.0, "fan_in", "uniform"),
    ("he_normal", 2.0, "fan_in", "normal"),
    ("lecun_uniform", 1.0, "fan_in", "uniform"),
    ("lecun_normal", 1.0, "fan_in", "normal"),
])
def test_variance_scaling_family(name, scale, mode, dist):
    shape = (3, 3, 40, 60)
    fan_in, fan_out = 3 * 3 * 40, 3 * 3 * 60
    fan = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
    w = I.get(name)(shape)
    assert w.shape == shape and w.dtype == np.float32
    assert isinstance(I.get(name), I.VarianceScaling)
    expected_std = math.sqrt(scale / fan)
    assert abs(w.std() - expected_std) / expected_std < 0.03
    if dist == "uniform":
        assert np.abs(w).max() <= math.sqrt(3 * scale / fan) + 1e-7
    else:
        assert np.abs(w).max() <= 2 * expected_std / 0.87962566103423978 + 1e-6


def test_variance_scaling_modes_and_validation():
    w = I.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal",
                          seed=0)((100, 400))
    assert abs(w.std() - math.sqrt(2.0 / 400)) < 0.003
    with pytest.raises(ConfigError):
        I.VarianceScaling(mode="fan_all")
    with pytest.raises(ConfigError):
        I.VarianceScaling(distribution="gamma")
    with pytest.raises(ConfigError):
        I.VarianceScaling(scale=0)


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4), (3, 3, 4, 5)])
def test_orthogonal(shape):
    w = I.Orthogonal(gain=2.0, seed=5)(shape).astype(np.float64)
    flat = w.reshape(-1, shape[-1])
    if flat.shape[0] >= flat.shape[1]:
        np.testing.assert_allclose(flat.T @ flat, 4.0 * np.eye(flat.shape[1]), atol=1e-5)
    else:
        np.testing.assert_allclose(flat @ flat.T, 4.0 * np.eye(flat.shape[0]), atol=1e-5)
    with pytest.raises(ShapeError):
        I.Orthogonal()((5,))


def test_identity():
    np.testing.assert_array_equal(I.get("identity")((2, 3)), np.eye(2, 3, dtype=np.float32))
    np.testing.assert_array_equal(I.Identity(gain=3)((2, 2)), 3 * np.eye(2))
    with pytest.raises(ShapeError):
        I.Identity()((2, 2, 2))


def test_seeded_initializers_repeat_and_global_seed_resets():
    init = I.GlorotUniform(seed=7)
    np.testing.assert_array_equal(init((4, 5)), init((4, 5)))
    I.set_random_seed(123)
    a = I.get("glorot_uniform")((4, 5))
    rng = I.global_rng()
    I.set_random_seed(123)
    assert I.global_rng() is rng
    np.testing.assert_array_equal(a, I.get("glorot_uniform")((4, 5)))
    assert not np.array_equal(a, I.get("glorot_uniform")((4, 5)))


@pytest.mark.parametrize("init", [
    I.Zeros(), I.Ones(), I.Constant(0.5), I.RandomUniform(-1, 1, seed=3),
    I.RandomNormal(0.1, 2.0, seed=4), I.TruncatedNormal(stddev=0.3, seed=1),
    I.VarianceScaling(2.0, "fan_out", "uniform", seed=9), I.GlorotUniform(seed=2),
    I.HeNormal(seed=1), I.LecunUniform(), I.Orthogonal(gain=1.5, seed=3), I.Identity(2.0),
])
def test_config_round_trip(init):
    config = I.serialize(init)
    assert config["class_name"] == type(init).__name__
    back = I.get(config)
    assert type(back) is type(init) and back.get_config() == init.get_config()
    if getattr(init, "seed", 1) is not None and not isinstance(init, I.Identity):
        np.testing.assert_array_equal(back((4, 4)), init((4, 4)))


def test_keras_names_and_errors():
    assert isinstance(I.get("random_uniform"), I.RandomUniform)
    assert isinstance(I.get("normal"), I.RandomNormal)
    assert isinstance(I.get({"class_name": "GlorotUniform", "config": {"seed": None}}),
                      I.GlorotUniform)
    fn = lambda shape, dtype=None: np.zeros(shape)  # noqa: E731
    assert I.get(fn) is fn
    with pytest.raises(ConfigError) as e:
        I.get("glorot_unifrom")
    assert "glorot_uniform" in str(e.value)

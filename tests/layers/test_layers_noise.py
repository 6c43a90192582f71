"""Noise layers: GaussianNoise, GaussianDropout, AlphaDropout, SpatialDropout1D/2D/3D —
identity at inference (one case table through run_layer_test: shapes, config/IR/.h5/.keras/
ONNX round trips), Keras 2 formulas in training (checked against the same random draws and
statistically), float64 training gradients with the noise re-drawn identically, errors."""

import numpy as np
import pytest

from modelkit.backend.gradcheck import assert_layer_gradients_close
from modelkit.backend.tensor import Tensor
from modelkit.errors import ConfigError, ShapeError
from modelkit.layers import (AlphaDropout, Dense, GaussianDropout, GaussianNoise, Input,
                             SpatialDropout1D, SpatialDropout2D, SpatialDropout3D)
from modelkit.models import Sequential

from layer_testing import run_layer_test

rng = np.random.default_rng(21)
ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


def r(*shape):
    return rng.standard_normal(shape).astype(np.float32)


CASES = [   # (id, factory, input shape without batch): identity at inference
    ("gaussian_noise", lambda: GaussianNoise(0.5), (4,)),
    ("gaussian_dropout", lambda: GaussianDropout(0.3), (2, 3)),
    ("alpha_dropout", lambda: AlphaDropout(0.2), (4,)),
    ("alpha_dropout_noise_shape", lambda: AlphaDropout(0.2, noise_shape=(None, 1, 3)), (2, 3)),
    ("spatial1d", lambda: SpatialDropout1D(0.5), (5, 3)),
    ("spatial2d", lambda: SpatialDropout2D(0.5), (4, 4, 3)),
    ("spatial2d_channels_first", lambda: SpatialDropout2D(0.5, data_format="channels_first"),
     (3, 4, 4)),
    ("spatial3d", lambda: SpatialDropout3D(0.5), (2, 2, 2, 3)),
    ("spatial3d_channels_first", lambda: SpatialDropout3D(0.5, data_format="channels_first"),
     (3, 2, 2, 2)),
]


@pytest.mark.parametrize("name,factory,shape", CASES, ids=[c[0] for c in CASES])
def test_layer(name, factory, shape, tmp_path):
    """Identity at inference; shape, config/IR/.h5/.keras/ONNX round trips, gradients."""
    run_layer_test(factory, shape, tmp_path, reference=lambda x, layer: x, output_shape=shape)


def test_gaussian_noise_adds_the_seeded_draws():
    x = r(3, 4)
    y = GaussianNoise(0.5, seed=3)(Tensor(x), training=True).value
    noise = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32) * 0.5
    np.testing.assert_allclose(y, x + noise, rtol=1e-6)
    big = GaussianNoise(0.5, seed=1)(Tensor(np.zeros((200, 100), np.float32)), training=True)
    assert abs(big.value.mean()) < 0.01 and abs(big.value.std() - 0.5) < 0.01


def test_gaussian_dropout_multiplies_by_seeded_noise():
    x = r(3, 4)
    y = GaussianDropout(0.2, seed=4)(Tensor(x), training=True).value
    std = np.sqrt(0.2 / 0.8)
    noise = np.random.default_rng(4).standard_normal((3, 4)) * std + 1.0
    np.testing.assert_allclose(y, x * noise.astype(np.float32), rtol=1e-6)
    big = GaussianDropout(0.2, seed=1)(Tensor(np.ones((200, 100), np.float32)), training=True)
    assert abs(big.value.mean() - 1.0) < 0.01 and abs(big.value.std() - std) < 0.01
    np.testing.assert_array_equal(GaussianDropout(0.0)(Tensor(x), training=True).value, x)


def test_alpha_dropout_keras_formula_and_moments():
    x = r(3, 4)
    y = AlphaDropout(0.3, seed=5)(Tensor(x), training=True).value
    kept = (np.random.default_rng(5).random((3, 4)) >= 0.3).astype(np.float32)
    a = ((1 - 0.3) * (1 + 0.3 * ALPHA_P ** 2)) ** -0.5
    b = -a * ALPHA_P * 0.3
    np.testing.assert_allclose(y, a * (x * kept + ALPHA_P * (1 - kept)) + b, rtol=1e-5,
                               atol=1e-6)
    # SELU's fixed point (mean 0, variance 1) is kept
    big = np.random.default_rng(0).standard_normal((400, 250)).astype(np.float32)
    out = AlphaDropout(0.3, seed=2)(Tensor(big), training=True).value
    assert abs(out.mean()) < 0.02 and abs(out.var() - 1.0) < 0.03
    # noise_shape shares the decision along axis 1
    out = AlphaDropout(0.5, noise_shape=(None, 1, 3), seed=1)(Tensor(np.ones((4, 5, 3),
                                                                             np.float32)),
                                                              training=True).value
    assert np.all(out == out[:, :1, :])


@pytest.mark.parametrize("factory,shape,shared", [
    (lambda: SpatialDropout1D(0.5, seed=1), (40, 6, 8), (1,)),
    (lambda: SpatialDropout2D(0.5, seed=2), (40, 3, 3, 8), (1, 2)),
    (lambda: SpatialDropout2D(0.5, data_format="channels_first", seed=3), (40, 8, 3, 3),
     (2, 3)),
    (lambda: SpatialDropout3D(0.5, seed=4), (20, 2, 2, 2, 8), (1, 2, 3)),
])
def test_spatial_dropout_drops_whole_channels(factory, shape, shared):
    x = np.ones(shape, np.float32)
    y = factory()(Tensor(x), training=True).value
    assert set(np.unique(y)) <= {0.0, 2.0}
    for ax in shared:
        assert np.all(y == np.take(y, [0], axis=ax))
    assert 0.35 < (y == 0).mean() < 0.65


def _grad_check(layer, x, seed=0):
    """Float64 finite differences with the layer's noise re-drawn identically each call."""
    assert_layer_gradients_close(layer, x, training=True, before_call=lambda: setattr(
        layer, "_rng", np.random.default_rng(seed)))


@pytest.mark.parametrize("factory,shape", [
    (lambda: GaussianNoise(0.5, dtype="float64"), (3, 4)),
    (lambda: GaussianDropout(0.3, dtype="float64"), (3, 4)),
    (lambda: AlphaDropout(0.3, dtype="float64"), (3, 4)),
    (lambda: SpatialDropout1D(0.5, dtype="float64"), (2, 3, 4)),
    (lambda: SpatialDropout2D(0.5, data_format="channels_first", dtype="float64"),
     (2, 3, 2, 2)),
])
def test_training_gradients_float64(factory, shape):
    _grad_check(factory(), rng.standard_normal(shape))


def test_noise_layers_train_in_a_model():
    model = Sequential([Dense(8, input_dim=4, activation="selu"), AlphaDropout(0.1),
                        GaussianNoise(0.05), GaussianDropout(0.1), Dense(1)])
    model.compile("adam", "mse")
    g = np.random.default_rng(0)
    x = g.normal(size=(64, 4))
    history = model.fit(x, x.sum(1, keepdims=True), epochs=6, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_keras1_spellings_and_bad_arguments():
    with pytest.warns(DeprecationWarning, match="'sigma' is deprecated.*'stddev'"):
        assert GaussianNoise(sigma=0.2).stddev == 0.2
    with pytest.warns(DeprecationWarning, match="'p' is deprecated.*'rate'"):
        assert GaussianDropout(p=0.2).rate == 0.2
    with pytest.warns(DeprecationWarning, match="'dim_ordering' is deprecated"):
        assert SpatialDropout2D(0.2, dim_ordering="th").data_format == "channels_first"
    with pytest.raises(ConfigError, match="GaussianDropout 'gd'.*rate must be in"):
        GaussianDropout(1.0, name="gd")
    with pytest.raises(ConfigError, match="AlphaDropout 'ad'.*rate must be a number"):
        AlphaDropout("high", name="ad")
    with pytest.raises(ConfigError, match="GaussianNoise 'gn'.*stddev must be >= 0"):
        GaussianNoise(-1, name="gn")
    with pytest.raises(ShapeError, match="'sd2'.*rank 4.*got shape"):
        SpatialDropout2D(0.5, name="sd2")(Input((4, 3)))
    with pytest.raises(ShapeError, match="'sd1'.*rank 3"):
        SpatialDropout1D(0.5, name="sd1")(Tensor(r(2, 3)), training=True)

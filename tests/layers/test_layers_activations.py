"""Advanced activation layers: LeakyReLU, PReLU, ELU, ThresholdedReLU, ReLU, Softmax —
shapes, numpy formulas (Keras 2 definitions), float64 gradients, configs, round trips,
errors and the real Keras `activations` fixtures."""

import pathlib

import numpy as np
import pytest

from modelkit.backend.tensor import Tensor
from modelkit.errors import ConfigError, ShapeError
from modelkit.layers import ELU, Dense, PReLU, ReLU, Input, LeakyReLU, Softmax, ThresholdedReLU
from modelkit.models import Sequential, load_model

from layer_testing import run_layer_test

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
rng = np.random.default_rng(31)


def away_from_kinks(*shape, kinks=(0.0,)):
    x = rng.standard_normal(shape) * 2
    for k in kinks:
        x = np.where(np.abs(x - k) < 0.05, k + 0.3, x)
    return x.astype(np.float32)


def softmax(x, axes):
    e = np.exp(x - x.max(axis=axes, keepdims=True))
    return e / e.sum(axis=axes, keepdims=True)


def relu_keras(x, max_value=None, negative_slope=0.0, threshold=0.0):
    y = np.where(x >= threshold, x, negative_slope * (x - threshold))
    return y if max_value is None else np.minimum(y, max_value)


CASES = [   # (id, factory, input shape without batch, numpy reference(x, layer))
    ("leaky", lambda: LeakyReLU(), (4,), lambda x, la: np.where(x > 0, x, 0.3 * x)),
    ("leaky_0.1", lambda: LeakyReLU(alpha=0.1), (2, 3), lambda x, la: np.where(x > 0, x, 0.1 * x)),
    ("prelu", lambda: PReLU(), (4,),
     lambda x, la: np.where(x > 0, x, la.get_weights()[0] * x)),
    ("prelu_shared", lambda: PReLU(shared_axes=[1, 2]), (2, 3, 4),
     lambda x, la: np.where(x > 0, x, la.get_weights()[0] * x)),
    ("elu", lambda: ELU(), (4,), lambda x, la: np.where(x > 0, x, np.expm1(x))),
    ("elu_0.7", lambda: ELU(alpha=0.7), (3, 2), lambda x, la: np.where(x > 0, x, 0.7 * np.expm1(x))),
    ("thresholded", lambda: ThresholdedReLU(), (4,), lambda x, la: np.where(x > 1.0, x, 0.0)),
    ("thresholded_0.5", lambda: ThresholdedReLU(theta=0.5), (4,),
     lambda x, la: np.where(x > 0.5, x, 0.0)),
    ("relu", lambda: ReLU(), (4,), lambda x, la: relu_keras(x)),
    ("relu6", lambda: ReLU(max_value=6.0), (4,), lambda x, la: relu_keras(x, 6.0)),
    ("relu_all", lambda: ReLU(max_value=1.5, negative_slope=0.2, threshold=0.5), (3, 4),
     lambda x, la: relu_keras(x, 1.5, 0.2, 0.5)),
    ("softmax", lambda: Softmax(), (5,), lambda x, la: softmax(x, (-1,))),
    ("softmax_axis1", lambda: Softmax(axis=1), (3, 4), lambda x, la: softmax(x, (1,))),
    ("softmax_2axes", lambda: Softmax(axis=[1, 2]), (3, 4), lambda x, la: softmax(x, (1, 2))),
]


@pytest.mark.parametrize("name,factory,shape,reference", CASES, ids=[c[0] for c in CASES])
def test_layer(name, factory, shape, reference, tmp_path):
    """Shape, numpy formula, config/IR/HDF5/.keras/ONNX round trips, float64 gradients."""
    x = away_from_kinks(4, *shape, kinks=(0.0, 0.5, 1.0, 1.5, 6.0))
    run_layer_test(factory, shape, tmp_path, reference=reference, x=x)


def test_prelu_alpha_shapes_and_shared_axes():
    layer = PReLU(shared_axes=[1])
    layer(Input((5, 3)))
    assert layer.alpha.shape == (1, 3)
    layer = PReLU()
    layer(Input((10, 4)))
    assert layer.alpha.shape == (10, 4)          # as Keras 3's fixture notes
    layer = PReLU(shared_axes=1)
    layer(Input((None, 4)))                      # unknown steps shared: fine
    assert layer.get_config()["shared_axes"] == [1]
    with pytest.warns(DeprecationWarning, match="'init' is deprecated.*alpha_initializer"):
        PReLU(init="ones")


def test_softmax_mask_excludes_positions():
    x = away_from_kinks(2, 4)
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 1]], bool)
    got = Softmax()(Tensor(x), mask=mask).value
    e = np.where(mask, np.exp(x - x.max(-1, keepdims=True)), 0.0)
    np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    # a mask that does not broadcast (RNN time mask on features) is not applied
    x3 = away_from_kinks(2, 3, 4)
    got = Softmax()(Tensor(x3), mask=np.ones((2, 3), bool)).value
    np.testing.assert_allclose(got, softmax(x3, (-1,)), rtol=1e-5)


def test_keras3_leaky_relu_negative_slope():
    assert LeakyReLU(negative_slope=0.1).alpha == pytest.approx(0.1)
    assert LeakyReLU.from_config({"name": "lr", "negative_slope": 0.2}).alpha == \
        pytest.approx(0.2)


def test_bad_arguments_and_inputs():
    with pytest.raises(ConfigError, match="ReLU 'r1'.*max_value must be >= 0"):
        ReLU(max_value=-1, name="r1")
    with pytest.raises(ConfigError, match="ReLU 'r2'.*negative_slope must be >= 0"):
        ReLU(negative_slope=-0.1, name="r2")
    with pytest.raises(ConfigError, match="ReLU 'r3'.*threshold must be >= 0"):
        ReLU(threshold=-0.5, name="r3")
    with pytest.raises(ConfigError, match="ThresholdedReLU 't1'.*theta must be >= 0"):
        ThresholdedReLU(theta=-1, name="t1")
    with pytest.raises(ConfigError, match="LeakyReLU 'l1'.*alpha must be a number"):
        LeakyReLU(alpha="big", name="l1")
    with pytest.raises(ConfigError, match="ELU 'e1'.*alpha must be a number"):
        ELU(alpha=None, name="e1")
    with pytest.raises(ConfigError, match="PReLU 'p1'.*shared_axes"):
        PReLU(shared_axes=[0], name="p1")
    with pytest.raises(ShapeError, match="PReLU 'p2'.*known size"):
        PReLU(name="p2")(Input((None, 3)))
    with pytest.raises(ShapeError, match="PReLU 'p3'.*shared axis 3 is out of range"):
        PReLU(shared_axes=3, name="p3")(Input((2, 3)))
    layer = PReLU(name="p4")
    layer(Input((3,)))
    with pytest.raises(ShapeError, match="PReLU 'p4' was built for inputs of shape"):
        layer(Tensor(np.zeros((2, 4), np.float32)))
    with pytest.raises(ShapeError, match="Softmax 's1'.*axis 2 is out of range"):
        Softmax(axis=2, name="s1")(Input((3,)))
    with pytest.raises(ConfigError, match="Softmax 's2'.*axis must be"):
        Softmax(axis="last", name="s2")


@pytest.mark.parametrize("version", ["keras2", "keras3"])
def test_real_keras_activations_fixture(version):
    data = np.load(FIXTURES / version / "activations.npz")
    model = load_model(FIXTURES / version / "activations.h5", compile=False)
    kinds = {type(la).__name__ for la in model.layers}
    assert {"LeakyReLU", "PReLU", "ELU", "ReLU", "Softmax"} <= kinds
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5, rtol=0)
    elu = next(la for la in model.layers if type(la).__name__ == "ELU")
    assert elu.alpha == pytest.approx(0.7)


def test_layers_in_a_trained_model():
    model = Sequential([Dense(8, input_dim=4), PReLU(), LeakyReLU(), ELU(),
                        ReLU(max_value=6.0), ThresholdedReLU(0.0), Dense(4), Softmax()])
    model.compile("adam", "categorical_crossentropy")
    g = np.random.default_rng(0)
    x = g.normal(size=(32, 4))
    y = np.eye(4)[x.argmax(1)]
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

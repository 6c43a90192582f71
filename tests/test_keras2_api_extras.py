"""Keras 2 API pieces user code reaches for: evaluate/predict_generator's loading options,
K.one_hot / K.conv2d / K.conv2d_transpose / K.update*, and custom objects registered with
get_custom_objects() or CustomObjectScope and used by name."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.errors import ShapeError
from modelkit.layers import Activation, Dense
from modelkit.models import Sequential, load_model
from modelkit.utils import Sequence


class Batches(Sequence):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.x[i * 4:(i + 1) * 4], self.y[i * 4:(i + 1) * 4]


def test_generator_loading_options_are_accepted():
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 3), dtype=np.float32), rng.random((8, 1), dtype=np.float32)
    model = Sequential([Dense(1, input_shape=(3,))])
    model.compile("sgd", "mse")
    opts = dict(max_queue_size=4, workers=2, use_multiprocessing=False)
    loss = model.evaluate_generator(Batches(x, y), steps=2, **opts)
    assert loss == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
    assert model.predict_generator(Batches(x, y), steps=2, **opts).shape == (8, 1)


def test_one_hot_conv2d_and_updates():
    np.testing.assert_array_equal(K.eval(K.one_hot(np.array([[0, 2], [1, 1]]), 3)),
                                  np.eye(3, dtype="float32")[[[0, 2], [1, 1]]])
    p = K.placeholder(shape=(None,), dtype="int32")
    f = K.function([p], [K.one_hot(p, 4)])
    np.testing.assert_array_equal(f([np.array([3, 0])])[0], np.eye(4)[[3, 0]])
    rng = np.random.default_rng(1)
    x, k = K.variable(rng.random((1, 5, 5, 2))), K.variable(rng.random((3, 3, 2, 4)))
    np.testing.assert_allclose(K.eval(K.conv2d(x, k, padding="same")),
                               K.eval(K.conv(x, k, padding="same")))
    kt = K.variable(rng.random((3, 3, 4, 2)))
    y = K.conv2d_transpose(x, kt, (1, 11, 11, 4), strides=(2, 2))
    assert K.int_shape(y) == (1, 11, 11, 4)
    with pytest.raises(ShapeError, match="output_shape"):
        K.conv2d_transpose(x, kt, (1, 10, 10, 4), strides=(2, 2))
    v = K.variable(1.0)
    assert K.update_add(v, 2.0) is v and K.get_value(v) == 3.0
    K.update_sub(v, 0.5)
    K.update(v, K.get_value(v) * 2)
    assert K.get_value(v) == 5.0


def _swish(x):
    return x * K.sigmoid(x)


def swish_global(x):            # saved by its function name, as Keras saves it
    return x * K.sigmoid(x)


def test_custom_objects_by_name(tmp_path):
    from modelkit.utils import CustomObjectScope, get_custom_objects
    from modelkit.utils.generic_utils import custom_object_scope
    assert custom_object_scope is CustomObjectScope
    with CustomObjectScope({"swish_scoped": _swish}):
        scoped = Sequential([Dense(2, activation="swish_scoped", input_shape=(3,))])
    x = np.ones((1, 3), "float32")
    h = x @ scoped.get_weights()[0] + scoped.get_weights()[1]
    np.testing.assert_allclose(scoped.predict(x), h / (1 + np.exp(-h)), rtol=1e-5)
    get_custom_objects()["swish_global"] = swish_global
    try:
        model = Sequential([Dense(2, input_shape=(3,)), Activation("swish_global")])
        model.save(tmp_path / "m.h5")
        np.testing.assert_allclose(load_model(tmp_path / "m.h5").predict(x), model.predict(x))
    finally:
        del get_custom_objects()["swish_global"]
    with pytest.raises(Exception, match="swish_global"):
        Activation("swish_global")


def test_model_loss_is_what_compile_was_given():
    model = Sequential([Dense(1, input_shape=(3,))])
    assert model.loss is None and model.loss_weights is None
    model.compile("sgd", "mean_squared_error", loss_weights=[2.0])
    assert model.loss == "mean_squared_error" and model.loss_weights == [2.0]

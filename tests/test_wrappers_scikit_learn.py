"""keras.wrappers.scikit_learn in the mnist_sklearn_wrapper style (scikit-learn not needed:
the estimator protocol is exercised directly, cloning as sklearn.base.clone does)."""

import numpy as np
import pytest

from modelkit.errors import ConfigError
from modelkit.layers import Dense
from modelkit.models import Sequential
from modelkit.wrappers.scikit_learn import KerasClassifier, KerasRegressor


def make_classifier(dense_size=16, n_out=3):
    model = Sequential([Dense(dense_size, activation="relu", input_shape=(4,)),
                        Dense(n_out, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return model


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 4)).astype("float32")
    labels = np.array(["cat", "dog", "eel"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)]
    return x, labels


def test_classifier_protocol_learns_string_labels():
    np.random.seed(0)
    clf = KerasClassifier(build_fn=make_classifier, dense_size=32, epochs=40, batch_size=16,
                          verbose=0)
    clone = type(clf)(**clf.get_params())                # sklearn.base.clone
    assert clone.get_params()["dense_size"] == 32
    x, y = data()
    clone.fit(x, y)
    assert list(clone.classes_) == ["cat", "dog", "eel"]
    pred = clone.predict(x)
    assert pred.dtype.kind == "U" and set(pred) <= {"cat", "dog", "eel"}
    proba = clone.predict_proba(x)
    assert proba.shape == (120, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    acc = clone.score(x, y)
    assert acc == pytest.approx(np.mean(pred == y), abs=1e-6) and acc > 0.7
    clone.set_params(dense_size=8)
    clone.fit(x, y, epochs=1)
    assert clone.model.layers[0].units == 8
    with pytest.raises(ConfigError, match="not arguments"):
        KerasClassifier(build_fn=make_classifier, dense_sizes=3)


def test_binary_classifier_probabilities_and_regressor():
    def binary():
        m = Sequential([Dense(1, activation="sigmoid", input_shape=(4,))])
        m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        return m
    x, y = data(1)
    clf = KerasClassifier(binary, epochs=2, verbose=0)
    clf.fit(x, (y == "cat").astype(int))
    assert clf.predict_proba(x).shape == (120, 2) and set(clf.predict(x)) <= {0, 1}

    def reg():
        m = Sequential([Dense(1, input_shape=(4,))])
        m.compile("sgd", "mse")
        return m
    r = KerasRegressor(build_fn=reg, epochs=5, verbose=0)
    target = x @ np.array([1.0, -2.0, 0.5, 0.0], "float32")
    r.fit(x, target)
    assert r.predict(x).shape == (120,)
    assert r.score(x, target) == pytest.approx(-np.mean((r.predict(x) - target) ** 2), rel=1e-4)

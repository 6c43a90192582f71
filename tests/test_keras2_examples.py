"""The classic Keras 2.3.1 examples in miniature: their idioms, small synthetic data, a few
epochs and a loss that must fall (or a number that must match numpy)."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.layers import Dense, Dropout, Flatten, Input, Lambda
from modelkit.models import Model
from modelkit.optimizers import RMSprop


# -- mnist_siamese: contrastive loss on a 1-D target against an (N, 1) distance -----------------

def _euclidean_distance(vects):
    x, y = vects
    sum_square = K.sum(K.square(x - y), axis=1, keepdims=True)
    return K.sqrt(K.maximum(sum_square, K.epsilon()))


def _contrastive_loss(y_true, y_pred):
    margin = 1
    square_pred = K.square(y_pred)
    margin_square = K.square(K.maximum(margin - y_pred, 0))
    return K.mean(y_true * square_pred + (1 - y_true) * margin_square)


def _siamese_pairs(n=400, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.normal(size=(5, 8, 8)).astype("float32")
    labels = rng.randint(5, size=(n, 2))
    same = rng.rand(n) < 0.5
    labels[same, 1] = labels[same, 0]
    x = centers[labels] + 0.3 * rng.normal(size=(n, 2, 8, 8)).astype("float32")
    return x, (labels[:, 0] == labels[:, 1]).astype("float32")


def test_mnist_siamese_contrastive_loss_sees_keras_shapes():
    seen = []

    def loss(y_true, y_pred):
        seen.append((tuple(y_true.shape), tuple(y_pred.shape)))
        return _contrastive_loss(y_true, y_pred)

    def accuracy(y_true, y_pred):
        return K.mean(K.equal(y_true, K.cast(y_pred < 0.5, y_true.dtype)))

    x, y = _siamese_pairs()
    inp = Input(shape=(8, 8))
    h = Dense(64, activation="relu")(Flatten()(inp))
    base = Model(inp, Dense(64, activation="relu")(Dropout(0.1)(h)))
    a, b = Input(shape=(8, 8)), Input(shape=(8, 8))
    distance = Lambda(_euclidean_distance, output_shape=lambda s: (s[0][0], 1))(
        [base(a), base(b)])
    model = Model([a, b], distance)
    model.compile(loss=loss, optimizer=RMSprop(), metrics=[accuracy])
    hist = model.fit([x[:, 0], x[:, 1]], y, batch_size=128, epochs=20, verbose=0).history
    assert seen[0] == ((128, 1), (128, 1))
    assert hist["loss"][-1] < 0.3 * hist["loss"][0]
    pred = model.predict([x[:, 0], x[:, 1]]).ravel() < 0.5
    assert np.mean(pred == y) > 0.9
    assert hist["accuracy"][-1] > 0.85


def test_one_dimensional_target_is_reshaped_for_builtin_losses_and_metrics():
    x = np.random.RandomState(1).normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")                      # (64,) for a (64, 1) output
    inp = Input(shape=(3,))
    model = Model(inp, Dense(1, activation="sigmoid")(inp))
    model.compile("sgd", "mse", metrics=["mae", "binary_accuracy"])
    loss, mae, acc = model.evaluate(x, y, verbose=0)
    pred = model.predict(x)[:, 0]
    np.testing.assert_allclose(loss, np.mean((pred - y) ** 2), rtol=1e-5)
    np.testing.assert_allclose(mae, np.mean(np.abs(pred - y)), rtol=1e-5)
    np.testing.assert_allclose(acc, np.mean((pred > 0.5) == y), rtol=1e-6)

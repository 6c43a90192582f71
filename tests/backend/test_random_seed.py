"""`np.random.seed(1337)  # for reproducibility` works as in Keras 2: unseeded initializers,
dropout, noise and shuffling draw from numpy's global state."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit import initializers
from modelkit.layers import LSTM, Dense, Dropout, GaussianNoise
from modelkit.models import Sequential
from modelkit.utils import set_random_seed

X = np.linspace(-1, 1, 96 * 6, dtype="float32").reshape(96, 6)
Y = (np.sin(3 * X[:, :1]) > 0).astype("float32")


def run(seed=None):
    """Build (unseeded), train with dropout, noise and shuffling; return everything random."""
    if seed is not None:
        np.random.seed(seed)
    model = Sequential([GaussianNoise(0.1, input_shape=(6,)), Dense(16, activation="relu"),
                        Dropout(0.5), Dense(1, activation="sigmoid")])
    initial = [w.copy() for w in model.get_weights()]
    model.compile("adam", "binary_crossentropy")
    hist = model.fit(X, Y, batch_size=16, epochs=3, shuffle=True, verbose=0)
    return initial, model.get_weights(), hist.history["loss"]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_np_random_seed_makes_a_run_reproducible():
    first = run(1337)
    second = run(1337)
    assert same(first[0], second[0])             # initial weights
    assert same(first[1], second[1])             # weights after training
    assert first[2] == second[2]                 # losses, epoch by epoch
    other = run(42)
    assert not same(first[0], other[0])
    assert not same(first[1], other[1]) and first[2] != other[2]


def test_training_randomness_follows_the_seed_not_only_initialization():
    np.random.seed(5)
    model = Sequential([Dense(8, input_shape=(6,)), Dropout(0.5), Dense(1)])
    model.compile("sgd", "mse")
    start = [w.copy() for w in model.get_weights()]
    results = []
    for _ in range(2):
        model.set_weights(start)
        np.random.seed(99)
        model.fit(X, Y, batch_size=8, epochs=1, shuffle=True, verbose=0)
        results.append(model.get_weights())
    assert same(results[0], results[1])
    model.set_weights(start)
    np.random.seed(100)
    model.fit(X, Y, batch_size=8, epochs=1, shuffle=True, verbose=0)
    assert not same(results[0], model.get_weights())


def test_set_random_seed_keeps_working():
    set_random_seed(7)
    a = run()
    set_random_seed(7)
    b = run()
    assert same(a[0], b[0]) and same(a[1], b[1]) and a[2] == b[2]


def test_unseeded_draws_follow_numpy_and_seeded_ones_ignore_it():
    np.random.seed(3)
    a = initializers.GlorotUniform()((4, 5))
    np.random.seed(3)
    b = initializers.GlorotUniform()((4, 5))
    np.testing.assert_array_equal(a, b)
    np.random.seed(3)
    lstm_a = LSTM(3)
    lstm_a.build((None, 2, 4))
    np.random.seed(3)
    lstm_b = LSTM(3)
    lstm_b.build((None, 2, 4))
    assert same(lstm_a.get_weights(), lstm_b.get_weights())
    # a seeded initializer gives its own numbers and leaves numpy's stream alone
    np.random.seed(11)
    expect = np.random.rand()
    np.random.seed(11)
    s1 = initializers.GlorotUniform(seed=1)((4, 5))
    assert np.random.rand() == expect
    np.random.seed(12)
    np.testing.assert_array_equal(initializers.GlorotUniform(seed=1)((4, 5)), s1)


@pytest.mark.parametrize("shape", [(50, 40), (300, 200)])     # small and bulk draws
def test_backend_dropout_without_seed_follows_numpy(shape):
    x = np.ones(shape, "float32")
    np.random.seed(8)
    a = K.eval(K.dropout(K.variable(x), 0.5))
    np.random.seed(8)
    b = K.eval(K.dropout(K.variable(x), 0.5))
    np.random.seed(9)
    c = K.eval(K.dropout(K.variable(x), 0.5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.4 < (a == 0).mean() < 0.6


def test_probing_the_global_rng_draws_nothing():
    """A K function checks every argument for `_keras_history`; for dropout's rng that
    lookup must not make a Generator (which draws from numpy's global state)."""
    from modelkit.backend.random_state import global_rng
    rng = global_rng()
    np.random.seed(5)
    expect = np.random.rand()
    np.random.seed(5)
    assert not hasattr(rng, "_keras_history")
    assert np.random.rand() == expect
    assert hasattr(rng, "bit_generator")             # public Generator attributes still resolve


@pytest.mark.parametrize("size", [np.int64(20000), (np.int32(200), 100), [200, np.int64(100)]])
def test_global_rng_takes_numpy_integer_sizes(size):
    from modelkit.backend.random_state import global_rng
    want = (int(size),) if np.ndim(size) == 0 else tuple(int(d) for d in size)
    assert global_rng().random(size, dtype=np.float32).shape == want
    assert global_rng().integers(0, 7, size=size).shape == want

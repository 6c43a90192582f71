"""Embedding: one case table through run_layer_test (shapes, lookups against numpy indexing,
float64 gradients of the table, config/IR/.h5/.keras/ONNX round trips); dtypes, masks, index
checking, Keras 1 spellings and the real Keras fixture."""

import warnings

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.errors import ConfigError, DTypeError, ShapeError
from modelkit.layers import LSTM, Embedding, Input
from modelkit.models import Sequential, load_model

from layer_testing import run_layer_test

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"
rng = np.random.default_rng(5)

CASES = [   # (id, factory, input shape without batch, output shape without batch)
    ("plain", lambda: Embedding(10, 4), (6,), (6, 4)),
    ("input_length", lambda: Embedding(10, 3, input_length=5), (5,), (5, 3)),
    ("mask_zero", lambda: Embedding(7, 2, mask_zero=True), (4,), (4, 2)),
    ("rank3_ids", lambda: Embedding(9, 2, embeddings_regularizer="l2"), (3, 2), (3, 2, 2)),
    ("tuple_length", lambda: Embedding(9, 2, input_length=(3, None)), (3, 2), (3, 2, 2)),
]


def ids(shape, high=6):
    return rng.integers(0, high, shape).astype("int32")


def randomize(layer_or_model):
    for w in layer_or_model.weights:
        w.assign(rng.standard_normal(w.shape).astype(w.dtype))


@pytest.mark.parametrize("name,factory,in_shape,out_shape", CASES, ids=[c[0] for c in CASES])
def test_layer(name, factory, in_shape, out_shape, tmp_path):
    """The lookup is numpy indexing (repeated indices in x: the embedding gradient
    accumulates); shapes, config/IR/.h5/.keras/ONNX round trips, float64 gradients. Keras 3
    has no input_length (nor the batch_input_shape it implies): .keras files drop it."""
    model, _ = run_layer_test(factory, in_shape, tmp_path, input_dtype="int32",
                              x=ids((4,) + in_shape), output_shape=out_shape,
                              reference=lambda x, layer: layer.embeddings.value[x],
                              keras3_drops=("input_length", "batch_input_shape"))
    layer = model.layers[-1]
    assert layer.compute_output_shape((2,) + in_shape) == (2,) + out_shape
    assert layer.embeddings.shape == (layer.input_dim, layer.output_dim)
    assert layer.weights[0].name == f"{layer.name}/embeddings"


def test_config_keys_are_keras_2s():
    config = Embedding(9, 2, embeddings_regularizer="l2", name="emb").get_config()
    for key in ("input_dim", "output_dim", "embeddings_initializer", "embeddings_regularizer",
                "activity_regularizer", "embeddings_constraint", "mask_zero", "input_length",
                "batch_input_shape"):
        assert key in config
    assert config["embeddings_initializer"]["class_name"] == "RandomUniform"


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64", "uint64",
                                   "float32", "float64"])
def test_any_integer_dtype_and_integral_floats(dtype):
    layer = Embedding(10, 3)
    x = np.array([[1, 9, 0], [4, 4, 2]])
    layer(x)
    randomize(layer)
    np.testing.assert_array_equal(layer(x.astype(dtype)).value, layer.embeddings.value[x])


def test_mask_zero_gives_a_mask_and_lstm_uses_it():
    layer = Embedding(5, 2, mask_zero=True)
    x = np.array([[3, 0, 1], [0, 0, 2]])
    layer(x)
    np.testing.assert_array_equal(layer.compute_mask(K.constant(x)), x != 0)
    assert Embedding(5, 2).compute_mask(K.constant(x)) is None
    model = Sequential([Embedding(5, 2, mask_zero=True, input_length=4), LSTM(3)])
    randomize(model)
    padded = np.array([[2, 4, 0, 0]])
    short = Sequential([Embedding(5, 2, input_length=2), LSTM(3)])
    short.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(padded), short.predict(padded[:, :2]), atol=1e-6)


def test_out_of_range_indices_name_layer_index_and_range():
    layer = Embedding(10, 3, name="words")
    with pytest.raises(ShapeError, match=r"Embedding 'words': index 12 at position \(1, 0\).*"
                                         r"valid indices are 0 to 9"):
        layer(np.array([[1, 2], [12, 3]]))
    with pytest.raises(ShapeError, match="index -1"):
        layer(np.array([[1, -1]]))
    model = Sequential([Embedding(4, 2, input_length=3)])
    with pytest.raises(ShapeError, match="index 4"):
        model.predict(np.array([[0, 1, 4]]))
    with pytest.raises(DTypeError, match="integer indices"):
        layer(np.array([["a", "b"]]))


def test_bad_arguments():
    with pytest.raises(ConfigError, match="input_dim must be a positive integer"):
        Embedding(0, 3)
    with pytest.raises(ConfigError, match="output_dim must be a positive integer"):
        Embedding(3, 2.5)
    with pytest.raises(ShapeError, match="input_length is 5"):
        Embedding(3, 2, input_length=5).compute_output_shape((None, 4))
    with pytest.raises(ShapeError, match="rank"):
        Embedding(3, 2)(Input(batch_shape=(None,), dtype="int32"))


def test_keras1_spellings_and_row_dropout():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = Embedding(20, 4, init="normal", W_regularizer="l2", W_constraint="non_neg",
                        dropout=0.5, input_length=6, name="e")
    words = " ".join(str(w.message) for w in caught)
    for word in ("init", "W_regularizer", "W_constraint", "dropout"):
        assert word in words
    new = Embedding(20, 4, embeddings_initializer="normal", embeddings_regularizer="l2",
                    embeddings_constraint="non_neg", input_length=6, name="e")
    assert old.get_config() == new.get_config()
    x = np.array([[1, 2, 1, 3, 1, 5]] * 3)
    old(x)
    randomize(old)
    np.testing.assert_array_equal(old(x, training=False).value, old.embeddings.value[x])
    out = old(x, training=True).value
    table = old.embeddings.value
    dropped = np.all(out == 0, axis=-1)
    # whole rows (words) are dropped: the same word is dropped everywhere, survivors scaled
    for word in np.unique(x):
        assert len(set(dropped[x == word])) == 1
    np.testing.assert_allclose(out[~dropped], 2 * table[x][~dropped], rtol=1e-6)


@pytest.mark.parametrize("version", ["keras2", "keras3"])
def test_real_keras_fixture(version):
    model = load_model(FIXTURES / version / "lstm.h5")
    assert type(model.layers[0]).__name__ == "Embedding" and model.layers[0].mask_zero
    data = np.load(FIXTURES / version / "lstm.npz")
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5)

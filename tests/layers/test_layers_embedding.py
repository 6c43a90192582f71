"""Embedding: shapes, lookups against numpy indexing, float64 gradients, configs, IR/HDF5
round trips, masks, index checking, Keras 1 spellings and the real Keras fixture."""

import warnings

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.errors import ConfigError, DTypeError, ShapeError
from modelkit.layers import LSTM, Embedding, Flatten, Dense, Input
from modelkit.models import Model, Sequential, from_ir, load_model

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"
rng = np.random.default_rng(5)

ROWS = {   # name -> (factory, input shape without batch, expected output shape without batch)
    "plain": (lambda **kw: Embedding(10, 4, **kw), (6,), (6, 4)),
    "input_length": (lambda **kw: Embedding(10, 3, input_length=5, **kw), (5,), (5, 3)),
    "mask_zero": (lambda **kw: Embedding(7, 2, mask_zero=True, **kw), (4,), (4, 2)),
    "rank3_ids": (lambda **kw: Embedding(9, 2, **kw), (3, 2), (3, 2, 2)),
    "tuple_length": (lambda **kw: Embedding(9, 2, input_length=(3, None), **kw), (3, 2),
                     (3, 2, 2)),
}


def ids(shape, high=6):
    return rng.integers(0, high, shape).astype("int32")


def randomize(layer_or_model):
    for w in layer_or_model.weights:
        w.assign(rng.standard_normal(w.shape).astype(w.dtype))


def model_of(layer, in_shape):
    inp = Input(in_shape, dtype="int32")
    return Model(inp, layer(inp))


@pytest.mark.parametrize("row", list(ROWS))
def test_shapes(row):
    make, in_shape, out_shape = ROWS[row]
    layer = make()
    assert layer(Input(in_shape, dtype="int32")).shape == (None,) + out_shape
    assert layer.compute_output_shape((None,) + in_shape) == (None,) + out_shape
    assert layer(ids((2,) + in_shape)).shape == (2,) + out_shape
    assert layer.embeddings.shape == (layer.input_dim, layer.output_dim)
    assert layer.weights[0].name == f"{layer.name}/embeddings"


@pytest.mark.parametrize("row", list(ROWS))
def test_lookup_is_numpy_indexing(row):
    make, in_shape, _ = ROWS[row]
    layer = make()
    x = ids((3,) + in_shape)
    layer(x)
    randomize(layer)
    np.testing.assert_array_equal(layer(x).value, layer.embeddings.value[x])


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64", "uint64",
                                   "float32", "float64"])
def test_any_integer_dtype_and_integral_floats(dtype):
    layer = Embedding(10, 3)
    x = np.array([[1, 9, 0], [4, 4, 2]])
    layer(x)
    randomize(layer)
    np.testing.assert_array_equal(layer(x.astype(dtype)).value, layer.embeddings.value[x])


def test_gradient_of_the_embeddings_float64():
    layer = Embedding(6, 3, dtype="float64")
    x = np.array([[1, 5, 1], [0, 1, 3]])         # repeated indices accumulate
    layer(x)

    def fn(w):
        layer.embeddings = w
        return K.tanh(layer(x))

    assert_gradients_close(fn, [rng.standard_normal((6, 3))])


@pytest.mark.parametrize("row", list(ROWS))
def test_config_round_trip(row):
    layer = ROWS[row][0](embeddings_regularizer="l2", name=f"emb_{row}")
    config = layer.get_config()
    assert Embedding.from_config(config).get_config() == config
    for key in ("input_dim", "output_dim", "embeddings_initializer", "embeddings_regularizer",
                "activity_regularizer", "embeddings_constraint", "mask_zero", "input_length",
                "batch_input_shape"):
        assert key in config
    assert config["embeddings_initializer"]["class_name"] == "RandomUniform"


@pytest.mark.parametrize("row", list(ROWS))
def test_ir_and_hdf5_round_trips(row, tmp_path):
    make, in_shape, _ = ROWS[row]
    model = model_of(make(), in_shape)
    randomize(model)
    x = ids((3,) + in_shape)
    want = model.predict(x)
    path = tmp_path / "m.h5"
    model.save(path)
    for other in (from_ir(model.to_ir()), load_model(path)):
        np.testing.assert_array_equal(other.predict(x), want)


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


def test_spec_functional_embedding_with_keras1_names():
    main_input = Input(shape=(100,), dtype="int32", name="main_input")
    x = Embedding(output_dim=16, input_dim=50, input_length=100)(main_input)
    assert x.shape == (None, 100, 16)
    flat = Dense(1)(Flatten()(x))
    assert flat.shape == (None, 1)


@pytest.mark.parametrize("version", ["keras2", "keras3"])
def test_real_keras_fixture(version):
    model = load_model(FIXTURES / version / "lstm.h5")
    assert type(model.layers[0]).__name__ == "Embedding" and model.layers[0].mask_zero
    data = np.load(FIXTURES / version / "lstm.npz")
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5)

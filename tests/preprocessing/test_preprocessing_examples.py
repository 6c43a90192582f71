"""The classic Keras 2 example patterns end to end on small synthetic data: preprocessing
feeding real training (imdb/reuters-style text, cifar10-style augmentation, image folders,
time series). Each asserts that the loss falls and the task is learned."""

import os

import numpy as np
import pytest
from PIL import Image

from modelkit.layers import (LSTM, Conv2D, Dense, Embedding, Flatten,
                             GlobalAveragePooling1D, MaxPooling2D)
from modelkit.models import Sequential
from modelkit.preprocessing import sequence, text
from modelkit.preprocessing.image import ImageDataGenerator
from modelkit.utils import set_random_seed, to_categorical

GOOD = ["great", "wonderful", "superb", "loved", "brilliant", "fun"]
BAD = ["awful", "boring", "terrible", "hated", "dull", "worst"]
FILLER = ["the", "movie", "film", "plot", "actors", "was", "and", "a", "it", "story"]


def _reviews(n, rs):
    texts, labels = [], []
    for _ in range(n):
        label = rs.randint(2)
        words = list(rs.choice(FILLER, size=rs.randint(4, 12)))
        for _ in range(rs.randint(1, 3)):
            words.insert(rs.randint(len(words) + 1), rs.choice(GOOD if label else BAD))
        texts.append(" ".join(words).capitalize() + rs.choice([".", "!", "?"]))
        labels.append(label)
    return texts, np.array(labels)


def test_imdb_lstm_style_tokenizer_pad_sequences_embedding_lstm():
    set_random_seed(0)
    rs = np.random.RandomState(0)
    texts, y = _reviews(160, rs)
    tokenizer = text.Tokenizer(num_words=30)
    tokenizer.fit_on_texts(texts)
    x = sequence.pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=12)
    assert x.shape == (160, 12) and x.dtype == np.int32 and x.max() < 30
    model = Sequential([Embedding(30, 8, input_length=12), LSTM(8), Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=30, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0]
    test_texts, test_y = _reviews(60, rs)
    x_test = sequence.pad_sequences(tokenizer.texts_to_sequences(test_texts), maxlen=12)
    loss, acc = model.evaluate(x_test, test_y, verbose=0)
    assert acc >= 0.85


def test_imdb_fasttext_style_post_padding_and_pooling():
    set_random_seed(1)
    rs = np.random.RandomState(1)
    texts, y = _reviews(200, rs)
    tokenizer = text.Tokenizer(oov_token="<unk>")
    tokenizer.fit_on_texts(texts)
    seqs = tokenizer.texts_to_sequences(texts)
    x = sequence.pad_sequences(seqs, maxlen=10, padding="post", truncating="post")
    vocab = len(tokenizer.word_index) + 1
    model = Sequential([Embedding(vocab, 8, input_length=10), GlobalAveragePooling1D(),
                        Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=20, epochs=60, verbose=0, validation_split=0.2)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    assert history.history["val_accuracy"][-1] >= 0.85


def test_reuters_mlp_style_texts_to_matrix_binary():
    set_random_seed(2)
    rs = np.random.RandomState(2)
    topics = [["oil", "crude", "barrel"], ["wheat", "grain", "crop"], ["bank", "rate", "loan"]]
    texts, labels = [], []
    for _ in range(150):
        k = rs.randint(3)
        words = list(rs.choice(FILLER, size=6)) + list(rs.choice(topics[k], size=2))
        rs.shuffle(words)
        texts.append(" ".join(words))
        labels.append(k)
    tokenizer = text.Tokenizer(num_words=25)
    tokenizer.fit_on_texts(texts)
    x = tokenizer.texts_to_matrix(texts, mode="binary")
    y = to_categorical(labels, 3)
    assert x.shape == (150, 25) and set(np.unique(x)) <= {0.0, 1.0}
    model = Sequential([Dense(16, input_shape=(25,), activation="relu"),
                        Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=40, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] >= 0.95


def _stripes(n, rs, size=8):
    """Horizontal (class 0) or vertical (class 1) stripes: invariant under flips and shifts."""
    x = np.zeros((n, size, size, 3), dtype="float32")
    y = rs.randint(2, size=n)
    for i in range(n):
        phase = rs.randint(2)
        pattern = ((np.arange(size) + phase) % 2)[:, None] * np.ones((1, size))
        img = pattern if y[i] == 0 else pattern.T
        x[i] = (img[..., None] * 200 + rs.rand(size, size, 3) * 40).astype("float32")
    return x, y


def _small_cnn():
    model = Sequential([Conv2D(4, (3, 3), activation="relu", input_shape=(8, 8, 3)),
                        MaxPooling2D((2, 2)), Flatten(), Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def test_cifar10_style_augmentation_flow_feeds_fit():
    set_random_seed(3)
    rs = np.random.RandomState(3)
    x, labels = _stripes(96, rs)
    y = to_categorical(labels, 2)
    datagen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
                                 width_shift_range=1, height_shift_range=1,
                                 horizontal_flip=True, vertical_flip=True, fill_mode="wrap")
    datagen.fit(x)
    model = _small_cnn()
    flow = datagen.flow(x, y, batch_size=16, seed=0)
    # Keras's documented call: a fractional steps_per_epoch runs ceil(steps) batches
    history = model.fit_generator(flow, steps_per_epoch=len(x) / 20, epochs=6, verbose=0,
                                  validation_data=(datagen.standardize(x[:16].copy()), y[:16]),
                                  workers=4)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    x_test, test_labels = _stripes(40, rs)
    x_test = datagen.standardize(x_test.copy())
    loss, acc = model.evaluate(x_test, to_categorical(test_labels, 2), verbose=0)
    assert acc >= 0.9


def test_cifar10_style_manual_loop_over_an_endless_flow():
    set_random_seed(4)
    rs = np.random.RandomState(4)
    x, labels = _stripes(64, rs)
    y = to_categorical(labels, 2)
    datagen = ImageDataGenerator(rescale=1 / 255.0, horizontal_flip=True)
    model = _small_cnn()
    first = last = None
    for _ in range(8):
        batches = 0
        for x_batch, y_batch in datagen.flow(x, y, batch_size=16):
            loss = model.train_on_batch(x_batch, y_batch)
            loss = loss[0] if isinstance(loss, (list, tuple)) else loss
            first = loss if first is None else first
            last = loss
            batches += 1
            if batches >= len(x) / 16:
                break          # the generator loops forever, as in Keras
    assert last < 0.5 * first


def _write_colour_folders(root, rs, per_class=12):
    for name, channel in (("blue", 2), ("red", 0)):
        os.makedirs(root / name)
        for i in range(per_class):
            arr = (rs.rand(10, 12, 3) * 60).astype("uint8")
            arr[..., channel] = 150 + rs.randint(0, 100, size=(10, 12))
            Image.fromarray(arr, "RGB").save(root / name / f"{i}.png")


def test_flow_from_directory_feeds_fit_evaluate_and_predict(tmp_path, capsys):
    set_random_seed(5)
    rs = np.random.RandomState(5)
    _write_colour_folders(tmp_path, rs)
    datagen = ImageDataGenerator(rescale=1 / 255.0, rotation_range=10, horizontal_flip=True,
                                 validation_split=0.25)
    train = datagen.flow_from_directory(str(tmp_path), target_size=(8, 8), batch_size=6,
                                        class_mode="binary", subset="training", seed=1)
    val = datagen.flow_from_directory(str(tmp_path), target_size=(8, 8), batch_size=6,
                                      class_mode="binary", subset="validation", seed=1)
    assert "Found 18 images belonging to 2 classes." in capsys.readouterr().out
    assert train.class_indices == {"blue": 0, "red": 1} and val.samples == 6
    model = Sequential([Flatten(input_shape=(8, 8, 3)), Dense(8, activation="relu"),
                        Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(train, epochs=10, validation_data=val, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["val_accuracy"][-1] == 1.0
    plain = ImageDataGenerator(rescale=1 / 255.0).flow_from_directory(
        str(tmp_path), target_size=(8, 8), batch_size=5, class_mode=None, shuffle=False)
    probs = model.predict(plain, steps=len(plain))
    assert probs.shape == (24, 1)
    np.testing.assert_array_equal((probs[:, 0] > 0.5).astype(int), plain.classes)


def test_timeseries_generator_feeds_fit():
    set_random_seed(6)
    t = np.arange(400, dtype="float32")
    series = np.sin(t * 0.3)[:, None].astype("float32")
    gen = sequence.TimeseriesGenerator(series, series, length=6, batch_size=32)
    model = Sequential([LSTM(8, input_shape=(6, 1)), Dense(1)])
    model.compile(loss="mse", optimizer="adam")
    history = model.fit(gen, epochs=30, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]


@pytest.mark.parametrize("categorical", [False, True])
def test_skipgrams_give_one_negative_pair_per_positive_pair(categorical):
    import random
    random.seed(7)
    rs = np.random.RandomState(7)
    seq = list(rs.randint(1, 20, size=300))
    couples, labels = sequence.skipgrams(seq, 20, window_size=2, categorical=categorical)
    pairs, labels = np.array(couples), np.asarray(labels)
    assert pairs.shape == (len(labels), 2) and pairs.min() >= 1 and pairs.max() < 20
    positives = labels[:, 1] if categorical else labels
    assert positives.sum() == len(labels) // 2
    if categorical:
        np.testing.assert_array_equal(labels.sum(axis=1), 1)

"""compile / fit / evaluate / predict and the batch methods, against numpy formulas."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit import callbacks, optimizers, regularizers
from modelkit.errors import ConfigError, NotCompiledError, ShapeError
from modelkit.layers import Dense, Dropout, Input
from modelkit.models import Model, Sequential
from modelkit.utils import Sequence, to_categorical

rng = np.random.default_rng(1)


def linear_model(loss="mse", metrics=None, **kw):
    model = Sequential([Dense(1, input_dim=3, name="lin", **kw)])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss=loss, metrics=metrics)
    return model


def blobs(n=300, classes=3, dim=4, seed=0):
    r = np.random.default_rng(seed)
    centers = r.normal(0, 3, (classes, dim))
    labels = r.integers(0, classes, n)
    x = centers[labels] + r.normal(0, 0.5, (n, dim))
    return x.astype("float32"), labels


def test_fit_learns_a_classification_task_and_history_records_metrics():
    x, labels = blobs()
    y = to_categorical(labels, 3)
    model = Sequential([Dense(16, activation="relu", input_dim=4), Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0, validation_split=0.2)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.9
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.9 and loss < 0.5


def test_evaluate_returns_a_float_without_metrics_and_matches_numpy_mse():
    model = linear_model()
    x, y = rng.random((10, 3)).astype("float32"), rng.random((10, 1)).astype("float32")
    k, b = model.get_weights()
    expected = np.mean((x @ k + b - y) ** 2)
    result = model.evaluate(x, y, batch_size=4, verbose=0)
    assert isinstance(result, float)
    np.testing.assert_allclose(result, expected, rtol=1e-5)


def test_one_sgd_step_matches_hand_computed_gradient():
    model = linear_model()
    x, y = rng.random((8, 3)).astype("float32"), rng.random((8, 1)).astype("float32")
    k, b = model.get_weights()
    err = x @ k + b - y
    grad_k = 2 * x.T @ err / len(x)
    grad_b = 2 * err.mean(0)
    loss = model.train_on_batch(x, y)
    np.testing.assert_allclose(loss, np.mean(err ** 2), rtol=1e-5)
    k2, b2 = model.get_weights()
    np.testing.assert_allclose(k2, k - 0.1 * grad_k, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b2, b - 0.1 * grad_b, rtol=1e-5, atol=1e-7)


def test_sample_weight_and_class_weight_follow_keras_reduction():
    model = linear_model()
    x, y = rng.random((6, 3)).astype("float32"), rng.random((6, 1)).astype("float32")
    sw = np.array([1, 0, 2, 1, 0, 3], dtype="float32")
    k, b = model.get_weights()
    per = ((x @ k + b - y) ** 2).mean(-1)
    np.testing.assert_allclose(model.test_on_batch(x, y, sample_weight=sw),
                               np.sum(per * sw) / len(x), rtol=1e-5)
    clf = Sequential([Dense(2, activation="softmax", input_dim=3)])
    clf.compile("sgd", "categorical_crossentropy")
    labels = np.array([0, 1, 1, 0])
    y2 = to_categorical(labels, 2)
    p = clf.predict(x[:4])
    ce = -np.log(p[np.arange(4), labels])
    w = np.where(labels == 1, 5.0, 1.0)
    before = clf.get_weights()
    loss = clf.train_on_batch(x[:4], y2, class_weight={0: 1.0, 1: 5.0})
    np.testing.assert_allclose(loss, np.sum(ce * w) / 4, rtol=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(before, clf.get_weights()))


def test_multi_output_losses_weights_and_names():
    inp = Input(shape=(3,), name="x")
    a = Dense(1, name="reg")(inp)
    b = Dense(2, activation="softmax", name="cls")(inp)
    model = Model(inp, [a, b])
    model.compile("sgd", loss={"reg": "mse", "cls": "categorical_crossentropy"},
                  loss_weights={"reg": 0.5, "cls": 2.0}, metrics={"cls": ["accuracy"]})
    x = rng.random((5, 3)).astype("float32")
    ya, yb = rng.random((5, 1)).astype("float32"), to_categorical([0, 1, 1, 0, 1], 2)
    pa, pb = model.predict(x)
    mse = np.mean((pa - ya) ** 2)
    ce = np.mean(-np.log(np.sum(pb * yb, -1)))
    result = model.test_on_batch(x, {"reg": ya, "cls": yb}, return_dict=True)
    assert list(result) == ["loss", "reg_loss", "cls_loss", "cls_accuracy"]
    np.testing.assert_allclose(result["loss"], 0.5 * mse + 2.0 * ce, rtol=1e-5)
    np.testing.assert_allclose(result["reg_loss"], mse, rtol=1e-5)
    assert model.metrics_names == ["loss", "reg_loss", "cls_loss", "cls_accuracy"]
    history = model.fit(x, [ya, yb], epochs=2, verbose=0)
    assert "cls_accuracy" in history.history


def test_regularization_is_added_to_the_loss():
    model = linear_model(kernel_regularizer=regularizers.l2(0.1))
    x, y = rng.random((4, 3)).astype("float32"), rng.random((4, 1)).astype("float32")
    k, b = model.get_weights()
    expected = np.mean((x @ k + b - y) ** 2) + 0.1 * np.sum(k ** 2)
    np.testing.assert_allclose(model.test_on_batch(x, y), expected, rtol=1e-5)


def test_custom_loss_and_metric_written_with_backend_functions():
    def mean_pred(y_true, y_pred):
        return K.mean(y_pred)

    def pair(y_true, y_pred):
        return {"low": K.mean(K.cast(y_pred < 0.5, "float32")), "top": K.max(y_pred)}

    def my_mse(y_true, y_pred):
        return K.mean(K.square(y_pred - y_true), axis=-1)

    model = Sequential([Dense(1, activation="sigmoid", input_dim=3)])
    model.compile(optimizer="rmsprop", loss=my_mse, metrics=["accuracy", mean_pred, pair])
    x, y = rng.random((8, 3)).astype("float32"), rng.integers(0, 2, (8, 1))
    logs = model.test_on_batch(x, y, return_dict=True)
    p = model.predict(x)
    np.testing.assert_allclose(logs["loss"], np.mean((p - y) ** 2), rtol=1e-5)
    np.testing.assert_allclose(logs["mean_pred"], p.mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["top"], p.max(), rtol=1e-5)
    np.testing.assert_allclose(logs["accuracy"], np.mean((p > 0.5) == y), rtol=1e-6)


def test_generators_and_sequences():
    x, labels = blobs(n=128)
    y = to_categorical(labels, 3)

    class Batches(Sequence):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]

    def gen():
        while True:
            for i in range(4):
                yield x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]

    model = Sequential([Dense(3, activation="softmax", input_dim=4)])
    model.compile("adam", "categorical_crossentropy", metrics=["acc"])
    h1 = model.fit(Batches(), epochs=2, verbose=0)
    h2 = model.fit(gen(), steps_per_epoch=4, epochs=2, verbose=0)
    assert len(h1.history["loss"]) == 2 and "acc" in h2.history
    assert model.predict(Batches()).shape == (128, 3)
    assert len(model.evaluate(Batches(), verbose=0)) == 2


def test_inputs_as_dicts_and_keras1_spellings():
    inp = Input(shape=(3,), name="features")
    model = Model(inp, Dense(1, name="target")(inp))
    with pytest.warns(DeprecationWarning):
        model.compile(optimizer=optimizers.SGD(lr=0.05), loss="mse", class_mode="binary")
    x, y = rng.random((16, 3)), rng.random((16, 1))
    with pytest.warns(DeprecationWarning, match="epochs"):
        history = model.fit({"features": x}, {"target": y}, nb_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_predict_classes_and_proba():
    model = Sequential([Dense(4, activation="softmax", input_dim=3)])
    x = rng.random((5, 3))
    with pytest.warns(DeprecationWarning):
        classes = model.predict_classes(x, batch_size=2)
    with pytest.warns(DeprecationWarning):
        proba = model.predict_proba(x)
    np.testing.assert_array_equal(classes, proba.argmax(-1))


def test_verbose_one_prints_a_progress_bar(capsys):
    model = linear_model()
    model.fit(rng.random((64, 3)), rng.random((64, 1)), batch_size=16, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "4/4" in out and "loss:" in out and "[" in out and "=" in out


def test_callbacks_early_stopping_and_checkpoint(tmp_path):
    model = linear_model()
    x, y = rng.random((32, 3)), rng.random((32, 1))
    stop = callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch:02d}.h5"), save_weights_only=True)
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[stop, ckpt])
    assert len(history.history["loss"]) == 2
    assert (tmp_path / "w-01.h5").exists() and (tmp_path / "w-02.h5").exists()


def test_dropout_changes_training_but_not_inference():
    model = Sequential([Dropout(0.5, input_shape=(50,))])
    x = np.ones((4, 50), dtype="float32")
    np.testing.assert_array_equal(model.predict(x), x)


@pytest.mark.parametrize("bad, error, match", [
    (lambda m: m.fit(np.zeros((4, 3)), np.zeros((5, 1)), verbose=0), ShapeError, "same number"),
    (lambda m: m.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0), ShapeError,
     r"expects shape \(None, 3\).*dimension 1 is 2"),
    (lambda m: m.fit([np.zeros((4, 3)), np.zeros((4, 3))], np.zeros((4, 1)), verbose=0),
     ShapeError, "expects 1 input"),
    (lambda m: m.fit(np.array([["a", "b", "c"]]), np.zeros((1, 1)), verbose=0), Exception,
     "dtype"),
    (lambda m: m.compile("nope", "mse"), ConfigError, "nope"),
    (lambda m: m.compile("sgd", "not_a_loss"), ConfigError, "not_a_loss"),
])
def test_bad_training_input_raises_named_errors(bad, error, match):
    model = linear_model()
    with pytest.raises(error, match=match):
        bad(model)


def test_fit_before_compile_and_unknown_metric():
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(NotCompiledError, match="compile"):
        model.fit(np.zeros((2, 3)), np.zeros((2, 1)), verbose=0)
    with pytest.raises(ConfigError, match="no_such_metric"):
        model.compile("sgd", "mse", metrics=["no_such_metric"])


def test_loss_instances_apply_sample_weights_once():
    from modelkit import losses
    model = Sequential([Dense(1, input_dim=3)])
    model.compile("sgd", loss=losses.MeanSquaredError())
    x, y = rng.random((4, 3)).astype("float32"), rng.random((4, 1)).astype("float32")
    sw = np.array([1.0, 0.0, 2.0, 1.0], dtype="float32")
    per = ((model.predict(x) - y) ** 2).mean(-1)
    np.testing.assert_allclose(model.test_on_batch(x, y, sample_weight=sw),
                               np.sum(per * sw) / 4, rtol=1e-5)


def test_fit_save_load_fit_resumes_exactly(tmp_path):
    from modelkit.models import load_model
    from modelkit.utils import set_random_seed
    x, labels = blobs(n=64)
    y = to_categorical(labels, 3)

    def fresh():
        set_random_seed(5)
        model = Sequential([Dense(8, activation="relu", input_dim=4), Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    straight = fresh()
    straight.fit(x, y, epochs=4, batch_size=16, shuffle=False, verbose=0)
    resumed = fresh()
    resumed.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    resumed.save(tmp_path / "half.h5")
    resumed = load_model(tmp_path / "half.h5")
    assert resumed.optimizer.iterations == 8
    resumed.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def _trained_on_batches(batches, x, y):
    """A linear model after plain SGD steps on x[b], y[b] for each batch index b, in order."""
    from modelkit.utils import set_random_seed
    set_random_seed(3)
    model = linear_model()
    for b in batches:
        model.train_on_batch(x[b], y[b])
    return model.get_weights()


@pytest.mark.parametrize("shuffle", [False, "batch"])
def test_fit_batches_without_shuffle_and_with_batch_shuffle_follow_keras(shuffle):
    # Keras 2: shuffle=False takes consecutive batches; "batch" permutes the whole batches
    # (for HDF5 data, read in increasing order inside a batch) and keeps the short one last
    from modelkit.engine import data_adapter as da
    n, size = 50, 8
    batches = da.batch_indices(n, size, shuffle, np.random.default_rng(0))
    starts = [b.start for b in batches]
    assert [b.stop - b.start for b in batches] == [8] * 6 + [2] and starts[-1] == 48
    if shuffle:
        assert sorted(starts[:-1]) == list(range(0, 48, 8)) and starts[:-1] != sorted(starts)
    else:
        assert starts == list(range(0, 50, 8))
    x = rng.normal(size=(n, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    from modelkit.utils import set_random_seed
    set_random_seed(3)
    model = linear_model()
    model._rng = np.random.default_rng(0)     # fit's shuffling draws from this generator
    x_before = x.copy()
    model.fit(x, y, batch_size=size, epochs=1, shuffle=shuffle, verbose=0)
    np.testing.assert_array_equal(x, x_before)          # batches are views: x untouched
    for got, want in zip(model.get_weights(), _trained_on_batches(batches, x, y)):
        np.testing.assert_array_equal(got, want)


def test_fit_shuffle_true_draws_a_permutation_of_all_samples():
    from modelkit.engine import data_adapter as da
    batches = da.batch_indices(50, 8, True, np.random.default_rng(0))
    everything = np.concatenate(batches)
    assert sorted(everything) == list(range(50)) and list(everything) != list(range(50))
    assert [len(b) for b in batches] == [8] * 6 + [2]


def _image_model():
    from modelkit.layers import (Activation, BatchNormalization, Conv2D, Flatten,
                                 MaxPooling2D)
    return Sequential([Conv2D(8, 3, padding="same", input_shape=(8, 8, 3)),
                       BatchNormalization(), Activation("relu"), MaxPooling2D(),
                       Conv2D(8, 3, activation="relu"), Flatten(), Dropout(0.5),
                       Dense(3, activation="softmax")])


def _text_model():
    from modelkit.layers import LSTM, Embedding
    return Sequential([Embedding(50, 8, input_length=6), LSTM(8), Dense(3, activation="softmax")])


@pytest.mark.parametrize("build, x", [
    (_image_model, rng.random((40, 8, 8, 3), dtype=np.float32)),
    (_text_model, rng.integers(0, 50, (40, 6)).astype("int32"))], ids=["conv", "lstm"])
def test_fit_on_views_of_the_callers_arrays_leaves_them_untouched(build, x):
    # unshuffled batches are views of x and y: no op may write into its inputs
    y = to_categorical(rng.integers(0, 3, 40), 3)
    model = build()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x_before, y_before = x.copy(), y.copy()
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)

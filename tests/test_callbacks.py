"""Callbacks driven by hand against a small fake model."""

import csv
import math

import numpy as np
import pytest

from modelkit import backend as K
from modelkit import callbacks as cbks
from modelkit import optimizers
from modelkit.errors import ConfigError


class FakeModel:
    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(2)]
        self.optimizer = optimizers.SGD(0.1)
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, path, overwrite=True):
        self.saved.append(("model", path))

    def save_weights(self, path, overwrite=True):
        self.saved.append(("weights", path))


def drive(callback, epoch_logs, model=None, params=None, batches=1):
    """Run the hooks like fit does; weights become [epoch, epoch]; returns the model."""
    model = model or FakeModel()
    callback.set_model(model)
    callback.set_params(params or {"epochs": len(epoch_logs), "steps": batches, "verbose": 0,
                                   "metrics": ["loss"]})
    callback.on_train_begin({})
    for epoch, logs in enumerate(epoch_logs):
        callback.on_epoch_begin(epoch, {})
        for b in range(batches):
            callback.on_train_batch_begin(b, {"batch": b, "size": 4})
            callback.on_train_batch_end(b, {"loss": logs.get("loss", 1.0)})
        model.weights = [np.full(2, float(epoch))]
        callback.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    callback.on_train_end({})
    return model


def test_history():
    h = cbks.History()
    model = drive(h, [{"loss": 1.0, "acc": 0.5}, {"loss": 0.5, "acc": 0.75}])
    assert h.history == {"loss": [1.0, 0.5], "acc": [0.5, 0.75]} and h.epoch == [0, 1]
    assert model.history is h


def test_keras1_batch_hooks_are_called():
    seen = []

    class Old(cbks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, logs["loss"]))

    drive(Old(), [{"loss": 2.0}], batches=2)
    assert seen == [(0, 2.0), (1, 2.0)]


def test_callback_list_dispatches_and_lambda():
    events = []
    lam = cbks.LambdaCallback(on_epoch_end=lambda e, logs: events.append(("end", e)),
                              on_train_begin=lambda logs: events.append("begin"),
                              on_test_begin=lambda logs: events.append("test"))
    cl = cbks.CallbackList([lam], add_history=True, model=FakeModel(), epochs=1)
    assert isinstance(cl.callbacks[-1], cbks.History) and cl.params == {"epochs": 1}
    cl.on_train_begin({})
    cl.on_epoch_end(0, {"loss": 1.0})
    cl.on_test_begin({})
    assert events == ["begin", ("end", 0), "test"]
    assert cl.callbacks[-1].history == {"loss": [1.0]}
    with pytest.raises(ConfigError):
        cbks.LambdaCallback(on_epoch_ennd=print)


def losses(*values):
    return [{"val_loss": v} for v in values]


def test_early_stopping_patience():
    es = cbks.EarlyStopping(patience=2)
    model = drive(es, losses(1.0, 0.9, 0.95, 0.96, 0.5))
    assert model.stop_training and es.stopped_epoch == 3 and es.best == 0.9


def test_early_stopping_min_delta_mode_and_restore():
    es = cbks.EarlyStopping(monitor="val_acc", min_delta=0.05, patience=1,
                            restore_best_weights=True)
    assert es.mode == "max"
    model = drive(es, [{"val_acc": 0.5}, {"val_acc": 0.6}, {"val_acc": 0.62}, {"val_acc": 0.9}])
    assert es.stopped_epoch == 2 and es.best_epoch == 1
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])


def test_early_stopping_baseline_and_missing_monitor():
    es = cbks.EarlyStopping(patience=2, baseline=0.1)
    model = drive(es, losses(0.5, 0.4, 0.45, 0.45))   # never beats the baseline
    assert model.stop_training and es.stopped_epoch == 2
    es = cbks.EarlyStopping(patience=2)
    model = drive(es, losses(0.5, 0.4, 0.45, 0.45))
    assert model.stop_training and es.stopped_epoch == 3
    with pytest.warns(RuntimeWarning, match="val_loss"):
        model = drive(cbks.EarlyStopping(), [{"loss": 1.0}, {"loss": 2.0}])
    assert not model.stop_training


def test_model_checkpoint_formats_and_best_only(tmp_path):
    path = str(tmp_path / "w.{epoch:02d}-{val_loss:.2f}.h5")
    mc = cbks.ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    model = drive(mc, losses(0.5, 0.7, 0.25))
    assert model.saved == [("weights", str(tmp_path / "w.01-0.50.h5")),
                           ("weights", str(tmp_path / "w.03-0.25.h5"))]
    model = drive(cbks.ModelCheckpoint(str(tmp_path / "m{epoch}.h5")), losses(1, 1))
    assert model.saved == [("model", str(tmp_path / "m1.h5")), ("model", str(tmp_path / "m2.h5"))]
    with pytest.warns(DeprecationWarning, match="save_freq"):
        mc = cbks.ModelCheckpoint(str(tmp_path / "p{epoch}.h5"), period=2)
    assert [p for _, p in drive(mc, losses(1, 1, 1, 1)).saved] == \
        [str(tmp_path / "p2.h5"), str(tmp_path / "p4.h5")]
    mc = cbks.ModelCheckpoint(str(tmp_path / "b{epoch}-{batch}.h5"), save_freq=3)
    assert [p for _, p in drive(mc, losses(1, 1), batches=3).saved] == \
        [str(tmp_path / "b1-3.h5"), str(tmp_path / "b2-3.h5")]
    with pytest.raises(ConfigError, match="val_acc"):
        drive(cbks.ModelCheckpoint(str(tmp_path / "{val_acc}.h5")), losses(1))


def test_reduce_lr_on_plateau():
    rl = cbks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=1, min_lr=0.02)
    model = FakeModel()
    logs = losses(1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    rl.set_model(model)
    rl.on_train_begin({})
    lrs = []
    for epoch, log in enumerate(logs):
        rl.on_epoch_end(epoch, log)
        lrs.append(float(K.get_value(model.optimizer.lr)))
        assert log["lr"] == pytest.approx(lrs[-2] if len(lrs) > 1 else 0.1)
    np.testing.assert_allclose(lrs, [0.1, 0.05, 0.025, 0.02, 0.02, 0.02], rtol=1e-6)
    with pytest.raises(ConfigError):
        cbks.ReduceLROnPlateau(factor=1.5)
    with pytest.warns(DeprecationWarning, match="min_delta"):
        assert cbks.ReduceLROnPlateau(epsilon=0.01).min_delta == 0.01


def test_learning_rate_scheduler():
    model = FakeModel()
    seen = []
    sched = cbks.LearningRateScheduler(lambda epoch, lr: seen.append(lr) or lr * 0.5)
    drive(sched, losses(1, 1, 1), model=model)
    np.testing.assert_allclose(seen, [0.1, 0.05, 0.025], rtol=1e-6)
    assert float(K.get_value(model.optimizer.learning_rate)) == pytest.approx(0.0125)
    old = cbks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))   # Keras 1 form
    drive(old, losses(1, 1), model=model)
    assert float(K.get_value(model.optimizer.lr)) == pytest.approx(0.02)
    with pytest.raises(ConfigError):
        drive(cbks.LearningRateScheduler(lambda e: "fast"), losses(1))


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    drive(cbks.CSVLogger(path), [{"loss": 1.5, "acc": 0.25}, {"loss": 1.0, "acc": 0.5}])
    drive(cbks.CSVLogger(path, append=True), [{"loss": 0.5, "acc": 0.75}])
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows == [["epoch", "acc", "loss"], ["0", "0.25", "1.5"], ["1", "0.5", "1.0"],
                    ["0", "0.75", "0.5"]]
    drive(cbks.CSVLogger(path, separator=";"), [{"loss": 2.0}])
    assert path.read_text() == "epoch;loss\n0;2.0\n"


def test_terminate_on_nan(capsys):
    t = cbks.TerminateOnNaN()
    model = FakeModel()
    t.set_model(model)
    t.on_train_batch_end(0, {"loss": 1.0})
    assert not model.stop_training
    t.on_train_batch_end(1, {"loss": math.nan})
    assert model.stop_training and "Invalid loss" in capsys.readouterr().out


def test_progbar_logger_prints_epochs_and_values(capsys):
    pl = cbks.ProgbarLogger(count_mode="steps")
    drive(pl, [{"loss": 0.5}, {"loss": 0.25, "val_loss": 0.75}], batches=3,
          params={"epochs": 2, "steps": 3, "verbose": 1, "metrics": ["loss", "val_loss"]})
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "3/3" in out and "loss: 0.2500" in out and "val_loss: 0.7500" in out
    with pytest.raises(ConfigError):
        cbks.ProgbarLogger(count_mode="batches")


# -- TensorBoard: scalar event files TensorBoard reads (no TensorFlow needed) ------------------

def _read_records(path):
    """(data of every TFRecord, checking both masked CRCs) - an independent parse."""
    import struct
    from modelkit.callbacks.event_files import masked_crc
    out = []
    with open(path, "rb") as f:
        blob = f.read()
    pos = 0
    while pos < len(blob):
        header = blob[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", blob[pos + 8:pos + 12])[0] == masked_crc(header)
        data = blob[pos + 12:pos + 12 + length]
        assert struct.unpack("<I", blob[pos + 12 + length:pos + 16 + length])[0] == \
            masked_crc(data)
        out.append(data)
        pos += 16 + length
    return out


def test_crc32c_known_vector():
    from modelkit.callbacks.event_files import crc32c
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


def test_tensorboard_writes_epoch_scalars_per_split(tmp_path):
    import glob
    import struct
    from modelkit.callbacks import TensorBoard
    from modelkit.layers import Dense
    from modelkit.models import Sequential
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile("sgd", "mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    hist = model.fit(rng.random((20, 2)), rng.random((20, 1)), epochs=2, verbose=0,
                     validation_split=0.2, callbacks=[TensorBoard(log_dir=str(tmp_path))])
    for split, key in (("train", "loss"), ("validation", "val_loss")):
        (path,) = glob.glob(str(tmp_path / split / "events.out.tfevents.*"))
        records = _read_records(path)
        assert b"brain.Event:2" in records[0] and len(records) == 3
        for epoch, data in enumerate(records[1:]):
            at = data.index(b"epoch_loss")
            value = struct.unpack("<f", data[at + len(b"epoch_loss") + 1:][:4])[0]
            assert value == pytest.approx(hist.history[key][epoch], rel=1e-6)
            assert b"epoch_mae" in data
    with pytest.raises(Exception, match="update_freq"):
        TensorBoard(update_freq="sometimes")

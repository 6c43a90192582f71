"""Callbacks that watch the logs: EarlyStopping, ModelCheckpoint, TerminateOnNaN, CSVLogger."""

import csv
import math
import os
import warnings

import numpy as np

from ..errors import ConfigError
from .base import Callback


def _monitor_mode(monitor, mode, owner):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{owner}: mode {mode!r} is unknown, falling back to 'auto'",
                      RuntimeWarning, stacklevel=3)
        mode = "auto"
    if mode == "auto":
        m = monitor or ""
        mode = "max" if ("acc" in m or m.startswith("fmeasure") or m.endswith("auc")) else "min"
    return mode


def _current(logs, monitor, owner):
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(f"{owner}: the monitored quantity {monitor!r} is not in the logs; "
                      f"available: {sorted(logs or {})}", RuntimeWarning, stacklevel=3)
    return value


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by at least `min_delta` for `patience` epochs.

    tf.keras 2 rules: the first epoch never stops training; with `baseline` the wait
    counter only resets on improvements over the baseline; `restore_best_weights` restores
    the best epoch's weights when stopping; `start_from_epoch` skips early epochs."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.mode = _monitor_mode(monitor, mode, "EarlyStopping")
        if self.mode == "min":
            self.monitor_op = np.less
            self.min_delta *= -1
        else:
            self.monitor_op = np.greater
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.monitor_op is np.less else -np.inf
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value, reference):
        return bool(self.monitor_op(value - self.min_delta, reference))

    def on_epoch_end(self, epoch, logs=None):
        current = _current(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose > 0:
                    print("Restoring model weights from the end of the best epoch: "
                          f"{self.best_epoch + 1}.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class ModelCheckpoint(Callback):
    """Save the model (or its weights) after every epoch, every `save_freq` batches, or
    every `period` epochs (Keras 1/2.0). `filepath` may hold ``{epoch:02d}``, ``{batch}`` and
    any log name, e.g. ``"w.{epoch:02d}-{val_loss:.2f}.h5"``."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", period=None,
                 initial_value_threshold=None, options=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        if period is not None:
            warnings.warn("ModelCheckpoint: the argument 'period' is deprecated; use "
                          "'save_freq' instead", DeprecationWarning, stacklevel=2)
        self.period = int(period) if period is not None else 1
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ConfigError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int "
                              f"(batches), got {save_freq!r}")
        self.save_freq = save_freq
        self.mode = _monitor_mode(monitor, mode, "ModelCheckpoint")
        self.monitor_op = np.less if self.mode == "min" else np.greater
        self.best = initial_value_threshold if initial_value_threshold is not None else \
            (np.inf if self.mode == "min" else -np.inf)
        self.epochs_since_last_save = 0
        self._batches_seen = 0
        self._current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if self.save_freq == "epoch":
            return
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._current_epoch, batch + 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_since_last_save += 1
        if self.save_freq == "epoch" and self.epochs_since_last_save >= self.period:
            self.epochs_since_last_save = 0
            self._save(epoch, None, logs)

    def _format_path(self, epoch, batch, logs):
        fields = dict(logs or {})
        try:
            if batch is None:
                return self.filepath.format(epoch=epoch + 1, **fields)
            return self.filepath.format(epoch=epoch + 1, batch=batch, **fields)
        except KeyError as e:
            raise ConfigError(f"ModelCheckpoint: filepath {self.filepath!r} uses {e.args[0]!r}, "
                              f"which is not in the logs; available: "
                              f"{['epoch'] + sorted(fields)}") from None

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        path = self._format_path(epoch, batch, logs)
        if self.save_best_only:
            current = _current(logs, self.monitor, "ModelCheckpoint")
            if current is None:
                return
            if not self.monitor_op(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)


class CSVLogger(Callback):
    """Stream epoch results to a CSV file: a header ``epoch,<sorted log names>`` then one
    row per epoch. With `append`, an existing file is continued without a new header."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None
        self.writer = None
        self.csv_file = None
        self._append_header = True

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self._append_header = not bool(f.readline())
            mode = "a"
        else:
            mode = "w"
        self.csv_file = open(self.filename, mode, newline="")
        self.keys = None
        self.writer = None

    @staticmethod
    def _value(v):
        is_zero_dim = isinstance(v, np.ndarray) and v.ndim == 0
        if isinstance(v, str):
            return v
        if hasattr(v, "__iter__") and not is_zero_dim:
            return '"[%s]"' % ", ".join(map(str, v))
        return v

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.keys is None:
            self.keys = sorted(logs.keys())
        if getattr(self.model, "stop_training", False):
            logs = {k: logs.get(k, "NA") for k in self.keys}
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         delimiter=self.sep, lineterminator="\n",
                                         extrasaction="ignore")
            if self._append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, self._value(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
            self.csv_file = None
        self.writer = None


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (math.isnan(loss) or math.isinf(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class TensorBoard(Callback):
    """Keras's TensorBoard callback: the epoch's logs as scalars TensorBoard plots, in
    `log_dir/train` (`epoch_loss`, `epoch_<metric>`) and `log_dir/validation` (the `val_`
    entries), as tf.keras 2 lays them out; `update_freq` as an integer also writes every
    that many batches (`batch_<name>`). Written without TensorFlow (callbacks/event_files.py).
    Histograms, graphs, images, embeddings and profiling are not written (their arguments
    are accepted, and a non-default value warns)."""

    def __init__(self, log_dir="logs", histogram_freq=0, batch_size=None, write_graph=True,
                 write_grads=False, write_images=False, embeddings_freq=0,
                 embeddings_layer_names=None, embeddings_metadata=None, embeddings_data=None,
                 update_freq="epoch", profile_batch=0, **kwargs):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        if update_freq not in ("epoch", "batch") and not isinstance(update_freq, int):
            raise ConfigError(f"TensorBoard: update_freq must be 'epoch', 'batch' or an "
                              f"integer, got {update_freq!r}")
        self.update_freq = 1 if update_freq == "batch" else update_freq
        unsupported = [k for k, v in (("histogram_freq", histogram_freq),
                                      ("write_grads", write_grads),
                                      ("write_images", write_images),
                                      ("embeddings_freq", embeddings_freq)) if v]
        if unsupported:
            warnings.warn(f"TensorBoard: {', '.join(unsupported)} are not written by modelkit "
                          "(only scalars are)", RuntimeWarning, stacklevel=2)
        self._writers = {}
        self._batches = 0

    def _writer(self, which):
        from .event_files import EventFileWriter
        if which not in self._writers:
            self._writers[which] = EventFileWriter(os.path.join(self.log_dir, which))
        return self._writers[which]

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if isinstance(self.update_freq, int) and self._batches % self.update_freq == 0:
            values = {f"batch_{k}": float(v) for k, v in (logs or {}).items()
                      if k not in ("batch", "size") and _is_number(v)}
            if values:
                self._writer("train").scalars(self._batches, values)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        train = {f"epoch_{k}": v for k, v in logs.items() if not k.startswith("val_")}
        val = {f"epoch_{k[4:]}": v for k, v in logs.items() if k.startswith("val_")}
        if train:
            self._writer("train").scalars(epoch, train)
        if val:
            self._writer("validation").scalars(epoch, val)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _is_number(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False

"""Training callbacks (Keras 2 semantics).

The model interface callbacks use: ``model.stop_training`` (bool), ``model.get_weights()`` /
``model.set_weights(list)``, ``model.optimizer.learning_rate`` (a Variable: read and written
with ``K.get_value`` / ``K.set_value``), ``model.save(path, overwrite=True)`` and
``model.save_weights(path, overwrite=True)``.

Hooks: ``on_{train,test,predict}_{begin,end}(logs)``, ``on_epoch_{begin,end}(epoch, logs)``,
``on_{train,test,predict}_batch_{begin,end}(batch, logs)``. Keras 1's ``on_batch_begin`` /
``on_batch_end`` are called by the default ``on_train_batch_*`` hooks, so overriding either
spelling works.
"""

import csv
import inspect
import math
import os
import warnings

import numpy as np

from . import backend as K
from .errors import ConfigError


class Callback:
    """Base class: every hook does nothing."""

    def __init__(self):
        self.model = None
        self.params = {}
        self.validation_data = None

    def set_params(self, params):
        self.params = dict(params or {})

    def set_model(self, model):
        self.model = model

    # Keras 1 names; the train-batch hooks forward to them.
    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass


_HOOKS = [f"on_{mode}_{when}" for mode in ("train", "test", "predict") for when in
          ("begin", "end")] + \
    [f"on_{mode}_batch_{when}" for mode in ("train", "test", "predict") for when in
     ("begin", "end")] + ["on_epoch_begin", "on_epoch_end", "on_batch_begin", "on_batch_end"]


class CallbackList:
    """Calls each hook on every callback in order; `add_history`/`add_progbar` as Keras."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None,
                 **params):
        self.callbacks = list(callbacks or [])
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.insert(0, ProgbarLogger(count_mode="steps"))
        if add_history and not any(isinstance(c, History) for c in self.callbacks):
            self.callbacks.append(History())
        self.model = None
        self.params = {}
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def set_params(self, params):
        self.params = dict(params)
        for c in self.callbacks:
            c.set_params(params)

    def set_model(self, model):
        self.model = model
        for c in self.callbacks:
            c.set_model(model)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)


def _make_dispatch(hook):
    def dispatch(self, *args, **kwargs):
        for c in self.callbacks:
            fn = getattr(c, hook, None)
            if fn is not None:
                fn(*args, **kwargs)
    dispatch.__name__ = hook
    return dispatch


for _hook in _HOOKS:
    setattr(CallbackList, _hook, _make_dispatch(_hook))


class History(Callback):
    """Records every epoch's logs: `history` = {name: [value per epoch]}, `epoch` = [...]."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints a Keras progress bar per epoch (`modelkit.utils.generic_utils.Progbar`).

    count_mode 'steps' counts batches, 'samples' counts samples (from the batch logs'
    ``size``). The logs the trainer passes are running averages already, so every value is
    shown as given (stateful)."""

    def __init__(self, count_mode="samples", stateful_metrics=None):
        super().__init__()
        if count_mode not in ("samples", "steps"):
            raise ConfigError(f"ProgbarLogger: count_mode must be 'samples' or 'steps', "
                              f"got {count_mode!r}")
        self.use_steps = count_mode == "steps"
        self.stateful_metrics = set(stateful_metrics or [])
        self.progbar = None
        self.seen = 0
        self._batch_size = 0

    def set_params(self, params):
        super().set_params(params)
        self.verbose = self.params.get("verbose", 1)
        self.epochs = self.params.get("epochs", 1)
        if self.use_steps:
            self.target = self.params.get("steps")
        else:
            self.target = self.params.get("samples")

    def on_train_begin(self, logs=None):
        self.verbose = self.params.get("verbose", 1)
        self.epochs = self.params.get("epochs", 1)

    def on_epoch_begin(self, epoch, logs=None):
        from .utils.generic_utils import Progbar
        self.seen = 0
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}")
        names = set(self.params.get("metrics") or []) | {"loss"} | self.stateful_metrics
        self.progbar = Progbar(target=self.target, verbose=self.verbose,
                               stateful_metrics=names,
                               unit_name="step" if self.use_steps else "sample")

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_size = int((logs or {}).get("size", 1) or 1)
        super().on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        logs = dict(logs or {})
        if self.use_steps:
            self.seen = batch + 1
        else:
            self.seen += int(logs.pop("size", self._batch_size) or 0)
        logs.pop("batch", None)
        logs.pop("size", None)
        if self.progbar is not None:
            self.progbar.stateful_metrics.update(logs)
            self.progbar.update(self.seen, list(logs.items()), finalize=False)
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs.pop("batch", None)
        logs.pop("size", None)
        if self.progbar is not None:
            self.progbar.stateful_metrics.update(logs)
            self.progbar.update(self.seen if self.target is None else self.target,
                                list(logs.items()), finalize=True)


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


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` after `patience` epochs without improvement
    (Keras 1's `epsilon` is `min_delta`)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0, **kwargs):
        super().__init__()
        if "epsilon" in kwargs:
            warnings.warn("ReduceLROnPlateau: the argument 'epsilon' is deprecated; use "
                          "'min_delta' instead", DeprecationWarning, stacklevel=2)
            min_delta = kwargs.pop("epsilon")
        if kwargs:
            raise ConfigError(f"ReduceLROnPlateau: unknown argument(s) {sorted(kwargs)}")
        if factor >= 1.0:
            raise ConfigError(f"ReduceLROnPlateau: factor must be < 1, got {factor}")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.mode = _monitor_mode(monitor, mode, "ReduceLROnPlateau")
        self._reset()

    def _reset(self):
        if self.mode == "min":
            self.monitor_op = lambda a, b: np.less(a, b - self.min_delta)
            self.best = np.inf
        else:
            self.monitor_op = lambda a, b: np.greater(a, b + self.min_delta)
            self.best = -np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        lr_var = self.model.optimizer.learning_rate
        logs["lr"] = float(K.get_value(lr_var))
        current = _current(logs, self.monitor, "ReduceLROnPlateau")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(K.get_value(lr_var))
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    K.set_value(lr_var, np.asarray(new_lr, dtype=np.asarray(
                        K.get_value(lr_var)).dtype))
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start to ``schedule(epoch, lr)`` (or Keras 1's
    ``schedule(epoch)``)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose
        self._takes_lr = _accepts_two_args(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        lr_var = self.model.optimizer.learning_rate
        if self._takes_lr:
            lr = self.schedule(epoch, float(K.get_value(lr_var)))
        else:
            lr = self.schedule(epoch)
        lr = K.get_value(lr) if isinstance(lr, K.Tensor) else lr
        if not isinstance(lr, (float, int, np.floating, np.integer)) or isinstance(lr, bool):
            raise ConfigError(f"LearningRateScheduler: the schedule must return a float, got "
                              f"{lr!r}")
        K.set_value(lr_var, np.asarray(lr, dtype=np.asarray(K.get_value(lr_var)).dtype))
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(K.get_value(self.model.optimizer.learning_rate))


def _accepts_two_args(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    positional = [p for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()):
        return True
    return len(positional) >= 2


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


class LambdaCallback(Callback):
    """A callback from plain functions: ``on_epoch_begin(epoch, logs)``,
    ``on_epoch_end(epoch, logs)``, ``on_batch_begin(batch, logs)``,
    ``on_batch_end(batch, logs)``, ``on_train_begin(logs)``, ``on_train_end(logs)``, and any
    other hook by keyword."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_begin=None,
                 on_batch_end=None, on_train_begin=None, on_train_end=None, **kwargs):
        super().__init__()
        unknown = sorted(set(kwargs) - set(_HOOKS))
        if unknown:
            raise ConfigError(f"LambdaCallback: unknown hook(s) {unknown}; known: "
                              f"{sorted(_HOOKS)}")
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_batch_begin=on_batch_begin, on_batch_end=on_batch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end, **kwargs)
        for hook, fn in given.items():
            if fn is not None:
                setattr(self, hook, fn)


"""The callback protocol: Callback, CallbackList, and the callbacks fit always installs
(History, ProgbarLogger), plus LambdaCallback. See the package docstring for the hooks."""

from ..errors import ConfigError


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
        from ..utils.generic_utils import Progbar
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


class BaseLogger(Callback):
    """Keras 2's BaseLogger: the epoch logs hold the epoch's sample-weighted mean of each
    batch metric (the last value for `stateful_metrics`). Keras 1/2 added it to every fit
    and averaged per-batch values; modelkit's batch logs are already running means, so the
    epoch value is the last batch's (the same numbers), taken for every key the batch logs
    have and the epoch logs lack or hold differently."""

    def __init__(self, stateful_metrics=None):
        super().__init__()
        self.stateful_metrics = set(stateful_metrics or [])
        self._last = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._last = {}

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        self._last.update({k: v for k, v in (logs or {}).items()
                           if k not in ("batch", "size")})

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self._last)


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

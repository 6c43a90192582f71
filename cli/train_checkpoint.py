"""Checkpoints of `modelkit train`: what the checkpoint folder holds and how a run resumes.

    DIR/epoch-003.h5      the model after epoch 3, optimizer state included (every epoch is
                          kept; with --save-best-only only the newest, for --resume)
    DIR/best.h5           with --save-best-only: the model at the best --monitor value
    DIR/checkpoint.json   the training state, written last: which epoch file is current,
                          the history so far, the seed, the best value and early-stopping
                          counter, and whether the run was interrupted (Ctrl-C)

Every file is written atomically (`converters.atomic`, through the format table), and
checkpoint.json only after the model file it names, so a run killed at any moment leaves
a consistent checkpoint. Resuming loads that model (weights and optimizer state), restores
the counters and goes on with the same per-epoch random seeds, so the result equals an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from modelkit.callbacks import Callback
from modelkit.converters.atomic import atomic_write
from modelkit.errors import ModelLoadError

__all__ = ["STATE_FILE", "CheckpointWriter", "EpochSeeds", "StopOnSignal", "HistoryRecorder",
           "read_state", "epoch_seed"]

STATE_FILE = "checkpoint.json"
FORMAT = "modelkit-train-checkpoint"
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.h5$")
INTERRUPTED_FILE = "interrupted.h5"       # the model of an epoch Ctrl-C cut short


def epoch_seed(seed, epoch):
    """The random seed of one epoch: shuffling and dropout depend only on (seed, epoch)."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


class EpochSeeds(Callback):
    """Seed modelkit's random generators at the start of every epoch from (seed, epoch)."""

    def __init__(self, seed):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        from modelkit.initializers import set_random_seed
        set_random_seed(epoch_seed(self.seed, epoch))


class StopOnSignal(Callback):
    """Stop training after the current batch once `flag()` is true (Ctrl-C); remembers where."""

    def __init__(self, flag):
        super().__init__()
        self.flag = flag
        self.stopped_at = None            # (epoch, batches done) when stopped
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.flag() and self.stopped_at is None:
            self.stopped_at = (self._epoch, batch + 1)
            self.model.stop_training = True


def _json_value(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v


class HistoryRecorder(Callback):
    """The per-epoch logs of complete epochs ({metric: [values]}), continuing `initial` (the
    history of a resumed run); an epoch cut short by Ctrl-C is left out."""

    def __init__(self, stopper=None, initial=None):
        super().__init__()
        self.stopper = stopper
        self.history = {k: list(v) for k, v in (initial or {}).items()}

    def interrupted(self):
        return self.stopper is not None and self.stopper.stopped_at is not None

    def on_epoch_end(self, epoch, logs=None):
        if not self.interrupted():
            for k, v in (logs or {}).items():
                self.history.setdefault(k, []).append(_json_value(v))


class CheckpointWriter(Callback):
    """Write the checkpoint folder after every epoch (and when Ctrl-C stopped an epoch).

    state: the resumed checkpoint state (None for a new run); early_stopping: the
    EarlyStopping callback whose counters are saved and restored; recorder: the
    HistoryRecorder (placed before this callback) whose history is saved, and which says
    whether Ctrl-C cut the epoch short (saved as interrupted, not as done)."""

    def __init__(self, folder, seed, monitor, recorder, save_best_only=False,
                 early_stopping=None, state=None, save=None, options=None):
        super().__init__()
        self.folder = folder
        self.seed = seed
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.early_stopping = early_stopping
        self.recorder = recorder
        self.state = state or {}
        self.options = dict(options or {})      # command-line options --resume reuses
        best = self.state.get("best") or {}
        self.best = best.get("value")
        self.best_epoch = best.get("epoch")
        self._save = save                     # save(model, path): through the format table
        os.makedirs(folder, exist_ok=True)

    def on_train_begin(self, logs=None):
        es = self.early_stopping
        saved = self.state.get("early_stopping")
        if es is not None and saved:
            es.wait = int(saved["wait"])
            es.best = float(saved["best"])
            es.best_epoch = int(saved.get("best_epoch", 0))

    def _improved(self, value):
        if value is None:
            return False
        if self.best is None:
            return True
        lower = not ("acc" in self.monitor or self.monitor.endswith("auc"))
        return value < self.best if lower else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        interrupted = self.recorder.interrupted()
        done = epoch if interrupted else epoch + 1          # epochs completely trained
        name = INTERRUPTED_FILE if interrupted else f"epoch-{epoch + 1:03d}.h5"
        self._save(self.model, os.path.join(self.folder, name))
        value = logs.get(self.monitor)
        if self.save_best_only and not interrupted and self._improved(value):
            self.best, self.best_epoch = float(value), epoch + 1
            self._save(self.model, os.path.join(self.folder, "best.h5"))
        elif not self.save_best_only and not interrupted and self._improved(value):
            self.best, self.best_epoch = float(value), epoch + 1
        state = {"format": FORMAT, "version": 1, "epoch": done, "model": name,
                 "seed": self.seed, "monitor": self.monitor, "history": self.recorder.history,
                 "best": {"value": self.best, "epoch": self.best_epoch,
                          "model": "best.h5" if self.save_best_only else None},
                 "interrupted": interrupted, "options": self.options}
        if interrupted:
            stopped_epoch, batches = self.recorder.stopper.stopped_at
            state["stopped_at"] = {"epoch": stopped_epoch + 1, "batches": batches}
        es = self.early_stopping
        if es is not None:
            state["early_stopping"] = {"wait": int(es.wait), "best": float(es.best),
                                       "best_epoch": int(es.best_epoch)}
        with atomic_write(os.path.join(self.folder, STATE_FILE), mode="w") as f:
            json.dump(state, f, indent=1)
        self.state = state
        if self.save_best_only:
            self._remove_old_epochs(keep=name)

    def _remove_old_epochs(self, keep):
        for entry in os.listdir(self.folder):
            if (_EPOCH_FILE.match(entry) or entry == INTERRUPTED_FILE) and entry != keep:
                try:
                    os.unlink(os.path.join(self.folder, entry))
                except OSError:
                    pass


def read_state(folder):
    """(state dict, path of the model file to resume from) of a checkpoint folder (or of
    its checkpoint.json). ModelLoadError names what is missing or malformed."""
    path = folder
    if os.path.isdir(folder):
        path = os.path.join(folder, STATE_FILE)
    if not os.path.exists(path):
        raise ModelLoadError(f"Cannot resume: {path} not found (a checkpoint folder written by "
                             f"'modelkit train --checkpoint-dir' holds it)")
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"Cannot resume: {path} is not a checkpoint state file: {e}") \
            from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ModelLoadError(f"Cannot resume: {path} is not a modelkit training checkpoint "
                             f"(no \"format\": \"{FORMAT}\")")
    for key, kind in (("epoch", int), ("model", str), ("seed", int), ("history", dict)):
        if not isinstance(state.get(key), kind):
            raise ModelLoadError(f"Cannot resume: {path}: field {key!r} must be a "
                                 f"{kind.__name__}, got {state.get(key)!r}")
    model = state["model"]
    if not (_EPOCH_FILE.match(model) or model == INTERRUPTED_FILE):
        raise ModelLoadError(f"Cannot resume: {path}: field 'model' must name an epoch-NNN.h5 "
                             f"(or {INTERRUPTED_FILE}) file beside it, got {model!r}")
    model_path = os.path.join(os.path.dirname(os.path.abspath(path)), model)
    if not os.path.exists(model_path):
        raise ModelLoadError(f"Cannot resume: {model_path} (named by {path}) is missing")
    return state, model_path

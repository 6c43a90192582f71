"""`modelkit train MODEL --data train.npz ... --out OUT`: Keras `fit` from the command line.

MODEL is any model file modelkit loads (.h5/.keras, .onnx where ONNX import exists) or a
Keras JSON config (`model.to_json()`); OUT any format modelkit writes. The data are `.npz`
files (`cli/train_data.py`), checked against the model before any training starts. The
Keras progress bar runs while it trains; `--checkpoint-dir` keeps resumable checkpoints
(`cli/train_checkpoint.py`); Ctrl-C stops after the current batch and saves OUT and a
checkpoint (exit status 130).
"""

from __future__ import annotations

import json
import os
import signal
import sys

from .commands import UsageError, register

EXAMPLE = """  modelkit train model.h5 --data train.npz --validation-split 0.1 --loss categorical_crossentropy \\
      --optimizer adam --learning-rate 0.001 --epochs 20 --metrics accuracy --out trained.h5 \\
      --checkpoint-dir ckpt --save-best-only --early-stopping-patience 3 --history history.json
  modelkit train --resume ckpt --data train.npz --validation-split 0.1 --epochs 30 --out trained.h5"""

DESCRIPTION = """MODEL: .h5/.hdf5/.keras (or .onnx), or a Keras JSON config. Data: .npz files holding
'x' and 'y' (or 'x_<input>' / 'y_<output>' per model input/output). --loss, --optimizer and
--metrics default to the MODEL file's own training config when it has one.
--checkpoint-dir DIR: DIR/epoch-NNN.h5 after each epoch (optimizer state included), DIR/best.h5
with --save-best-only, DIR/checkpoint.json (what --resume reads; a resumed run reuses the
checkpoint's model, optimizer state, seed, batch size, validation split, shuffling, --monitor,
--save-best-only and early-stopping patience unless given again). Ctrl-C stops after the
current batch, saves OUT and the checkpoint, and exits with status 130."""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", nargs="?",
                   help="model to train (.h5/.hdf5/.keras/.onnx or a Keras .json config); "
                        "not needed with --resume")
    p.add_argument("--data", required=True, metavar="TRAIN.npz",
                   help="training arrays: 'x' and 'y', or 'x_<input>' / 'y_<output>'")
    val = p.add_mutually_exclusive_group()
    val.add_argument("--validation-data", metavar="VAL.npz", help="validation arrays, same keys")
    val.add_argument("--validation-split", type=float, default=None, metavar="F",
                     help="hold out the last fraction F of the training arrays for validation")
    p.add_argument("--loss", help="Keras loss name (e.g. categorical_crossentropy, mse)")
    p.add_argument("--optimizer", help="sgd, rmsprop, adagrad, adadelta, adam, adamax, nadam")
    p.add_argument("--learning-rate", type=float, default=None, metavar="R")
    p.add_argument("--metrics", default=None, metavar="M1,M2",
                   help="comma-separated Keras metric names (e.g. accuracy)")
    p.add_argument("--epochs", type=int, default=1, metavar="N",
                   help="train until epoch N (counting epochs already done when resuming)")
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="samples per gradient step (default 32)")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="trained model to write (.h5/.hdf5/.keras/.onnx)")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="write resumable checkpoints here")
    p.add_argument("--save-best-only", action="store_true",
                   help="keep DIR/best.h5 at the best --monitor value (and only the newest "
                        "epoch file, for --resume)")
    p.add_argument("--monitor", default=None,
                   help="quantity for --save-best-only and early stopping (default val_loss "
                        "with validation data, else loss)")
    p.add_argument("--early-stopping-patience", type=int, default=None, metavar="N",
                   help="stop when --monitor has not improved for N epochs")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="DIR",
                   help="continue from the checkpoint in DIR (default: --checkpoint-dir), "
                        "weights and optimizer state included")
    p.add_argument("--history", metavar="HISTORY.json", help="write the per-epoch logs as JSON")
    p.add_argument("--plot-history", metavar="HISTORY.png",
                   help="draw loss/metric curves per epoch (.png/.svg; needs matplotlib: "
                        "pip install 'modelkit[plot]')")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of shuffling and dropout (default 0)")
    p.add_argument("--no-shuffle", action="store_true", help="keep the samples in file order")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                   help="1: progress bar (default), 2: one line per epoch, 0: silent")


# Options a checkpoint remembers: --resume uses them unless the command line gives its own.
RESUMED_OPTIONS = ("batch_size", "validation_split", "no_shuffle", "save_best_only", "monitor",
                   "early_stopping_patience")


def _resumed_options(args, state):
    """Fill the options not given on the command line from the checkpoint's."""
    saved = state.get("options") or {}
    for name in RESUMED_OPTIONS:
        if getattr(args, name) in (None, False) and saved.get(name) not in (None, False):
            if name == "validation_split" and args.validation_data is not None:
                continue
            setattr(args, name, saved[name])


def _check_args(args):
    if args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.batch_size is None:
        args.batch_size = 32
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.validation_split is not None and not 0.0 < args.validation_split < 1.0:
        raise UsageError(f"--validation-split must be between 0 and 1, got "
                         f"{args.validation_split}")
    if args.early_stopping_patience is not None and args.early_stopping_patience < 0:
        raise UsageError("--early-stopping-patience must be 0 or more")
    if args.learning_rate is not None and not args.learning_rate > 0:
        raise UsageError(f"--learning-rate must be positive, got {args.learning_rate}")
    if args.resume == "":
        if not args.checkpoint_dir:
            raise UsageError("--resume needs a checkpoint folder: --resume DIR or "
                             "--checkpoint-dir DIR")
        args.resume = args.checkpoint_dir
    if args.model is None and args.resume is None:
        raise UsageError("MODEL is required (unless --resume continues a checkpoint)")
    if args.save_best_only and not args.checkpoint_dir:
        raise UsageError("--save-best-only needs --checkpoint-dir")
    from modelkit.converters import formats
    if formats.format_by_extension(args.out) is None:
        raise UsageError(f"--out {args.out!r} must end in {', '.join(formats.EXTENSIONS)}")
    for flag, path, kinds in (("--history", args.history, (".json",)),
                              ("--plot-history", args.plot_history, (".png", ".svg", ".pdf"))):
        if path and os.path.splitext(path)[1].lower() not in kinds:
            raise UsageError(f"{flag} {path!r} must end in {', '.join(kinds)}")
    if args.plot_history:                 # before training, not after it
        from modelkit.utils.vis_utils import require_matplotlib
        require_matplotlib()
    validating = args.validation_data is not None or args.validation_split is not None
    if args.monitor is None:
        args.monitor = "val_loss" if validating else "loss"
    elif args.monitor.startswith("val_") and not validating:
        raise UsageError(f"--monitor {args.monitor} needs --validation-data or "
                         f"--validation-split")


# -- the model --------------------------------------------------------------------------------

def _load(path):
    """A model (compiled when the file holds a training config) from a file or JSON config."""
    from modelkit.errors import ModelLoadError
    if path.lower().endswith(".json"):
        from modelkit.models import model_from_json
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ModelLoadError(f"Cannot read {path}: {e.strerror or e}") from None
        return model_from_json(text)
    from modelkit.saving import load_model
    return load_model(path, compile=True)


def _compile(model, args):
    """Compile with --loss/--optimizer/--metrics/--learning-rate, the file's own training
    config filling what is not given."""
    from modelkit import optimizers
    compiled = getattr(model, "_compile_args", None) and model.optimizer is not None
    if not compiled and (args.loss is None or args.optimizer is None):
        missing = " and ".join(f for f, v in (("--loss", args.loss), ("--optimizer",
                                                                      args.optimizer)) if v is None)
        raise UsageError(f"{args.model} has no training config, so {missing} must be given")
    if compiled and args.loss is None and args.optimizer is None and args.metrics is None:
        if args.learning_rate is not None:
            model.optimizer.learning_rate = args.learning_rate
        return model
    previous = model._compile_args if compiled else {}
    optimizer = model.optimizer if compiled and args.optimizer is None else \
        optimizers.get(args.optimizer)
    if args.learning_rate is not None:
        optimizer.learning_rate = args.learning_rate
    metrics = [m for m in args.metrics.split(",") if m] if args.metrics is not None \
        else previous.get("metrics")
    model.compile(optimizer=optimizer, loss=args.loss or previous.get("loss"), metrics=metrics,
                  loss_weights=previous.get("loss_weights"))
    return model


def _sparse_outputs(model):
    loss = model._compile_args.get("loss")
    names = list(model.output_names)
    if isinstance(loss, dict):
        per = [loss.get(n) for n in names]
    elif isinstance(loss, (list, tuple)):
        per = list(loss)
    else:
        per = [loss] * len(names)
    return {n for n, lo in zip(names, per)
            if "sparse" in str(getattr(lo, "__name__", lo)).lower()
            or "sparse" in type(lo).__name__.lower()}


def _check_writable(model, args):
    """Refuse, before training, outputs a Keras file cannot hold (imported ONNX ops)."""
    from modelkit.converters import formats
    keras_out = formats.format_by_extension(args.out) is not formats.ONNX
    if not (args.checkpoint_dir or keras_out):
        return
    from modelkit.ir_bridge import to_ir
    ops = formats.imported_onnx_ops(to_ir(model, include_weights=False, include_optimizer=False))
    if not ops:
        return
    what = "--checkpoint-dir (checkpoints are .h5 files, with the optimizer state)" \
        if args.checkpoint_dir else f"--out {args.out}"
    raise UsageError(f"{what} cannot hold the model's {len(ops)} imported ONNX op(s) without a "
                     f"Keras layer form: {', '.join(ops)}; train without --checkpoint-dir and "
                     f"write OUT as .onnx")


def _save(model, path):
    """Write `model` through the format table (atomically)."""
    from modelkit.converters import formats
    from modelkit.ir_bridge import to_ir
    formats.write_graph(to_ir(model, include_optimizer=True), path)


# -- Ctrl-C -----------------------------------------------------------------------------------

class _CtrlC:
    """SIGINT sets a flag (training stops after the current batch); a second one interrupts."""

    def __init__(self):
        self.pressed = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:          # not the main thread: Ctrl-C keeps its default meaning
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        print("\nmodelkit: Ctrl-C: stopping after this batch and saving (press again to "
              "abort without saving)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


# -- run --------------------------------------------------------------------------------------

def run(args):
    from . import train_checkpoint as ckpt
    state = model_path = None
    if args.resume == "" and args.checkpoint_dir:
        args.resume = args.checkpoint_dir
    if args.resume:
        state, model_path = ckpt.read_state(args.resume)
        _resumed_options(args, state)
        if args.checkpoint_dir is None:      # go on writing checkpoints where they were
            args.checkpoint_dir = os.path.dirname(os.path.abspath(model_path))
    _check_args(args)
    from modelkit import callbacks as cbks

    from .train_data import read_arrays

    if state is not None:
        if args.model or args.loss or args.optimizer or args.learning_rate is not None \
                or args.metrics:
            print("modelkit: --resume continues with the checkpoint's model, loss, optimizer "
                  "and metrics; MODEL/--loss/--optimizer/--learning-rate/--metrics are ignored",
                  file=sys.stderr)
        model = _load(model_path)
        seed = state["seed"]
        initial_epoch = state["epoch"]
        how = " (interrupted there by Ctrl-C)" if state.get("interrupted") else ""
        print(f"modelkit: resuming from {model_path} after {initial_epoch} epoch(s){how}",
              file=sys.stderr)
    else:
        model = _compile(_load(args.model), args)
        seed, initial_epoch = args.seed, 0

    _check_writable(model, args)
    sparse = _sparse_outputs(model)
    train = read_arrays(args.data, model, sparse)
    validation = read_arrays(args.validation_data, model, sparse) if args.validation_data \
        else None
    if args.validation_split is not None and int(len(train) * (1 - args.validation_split)) < 1:
        raise UsageError(f"--validation-split {args.validation_split} leaves no training "
                         f"sample out of {len(train)}")

    with _CtrlC() as ctrl_c:
        stopper = ckpt.StopOnSignal(lambda: ctrl_c.pressed)
        recorder = ckpt.HistoryRecorder(stopper, state["history"] if state else None)
        callbacks = [ckpt.EpochSeeds(seed), stopper]
        early = None
        if args.early_stopping_patience is not None:
            early = cbks.EarlyStopping(monitor=args.monitor, patience=args.early_stopping_patience,
                                       verbose=1 if args.verbose else 0)
            callbacks.append(early)
        callbacks.append(recorder)
        if args.checkpoint_dir:
            callbacks.append(ckpt.CheckpointWriter(
                args.checkpoint_dir, seed, args.monitor, recorder,
                save_best_only=args.save_best_only, early_stopping=early, state=state,
                save=_save, options={n: getattr(args, n) for n in RESUMED_OPTIONS}))
        if initial_epoch >= args.epochs:
            print(f"modelkit: the checkpoint has already trained {initial_epoch} epoch(s); "
                  f"nothing to do for --epochs {args.epochs}", file=sys.stderr)
        else:
            model.fit(train.x, train.y, batch_size=args.batch_size, epochs=args.epochs,
                      verbose=args.verbose, callbacks=callbacks,
                      validation_split=args.validation_split or 0.0,
                      validation_data=(validation.x, validation.y) if validation else None,
                      shuffle=not args.no_shuffle, initial_epoch=initial_epoch)
    _save(model, args.out)
    _write_history(recorder.history, args)
    done = len(next(iter(recorder.history.values()), []))
    if stopper.stopped_at is not None:
        epoch, batches = stopper.stopped_at
        where = f" and checkpoint {os.path.join(args.checkpoint_dir, ckpt.STATE_FILE)}" \
            if args.checkpoint_dir else ""
        print(f"modelkit: interrupted in epoch {epoch + 1} after {batches} batch(es); saved "
              f"{args.out}{where}", file=sys.stderr)
        return 130
    last = {k: v[-1] for k, v in recorder.history.items() if v}
    summary = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if isinstance(v, float))
    print(f"Trained {done} epoch(s){': ' + summary if summary else ''}; saved {args.out}")
    return 0


def _write_history(history, args):
    if args.history:
        from modelkit.converters.atomic import atomic_write
        with atomic_write(args.history, mode="w") as f:
            json.dump(history, f, indent=1)
    if args.plot_history and history:
        from modelkit.utils.vis_utils import plot_history
        plot_history(history, args.plot_history)
    elif args.plot_history:
        print(f"modelkit: no complete epoch to draw; {args.plot_history} not written",
              file=sys.stderr)


register("train", add_arguments, run, example=EXAMPLE, description=DESCRIPTION)

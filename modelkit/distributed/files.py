"""`predict_files`: predictions for a set of shard files, one output file per input shard,
on one process (`engine='local'`) or a Ray cluster (`engine='ray'`).

Each output shard is written atomically as soon as it is complete, so an interrupted run
leaves only whole files; running again with the same output folder skips the shards whose
output is complete (same row count and outputs) and computes the rest. A small manifest
(``_modelkit_predict.json``) records the model's fingerprint: a folder holding another
model's predictions is refused rather than silently mixed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from modelkit.converters.atomic import atomic_write
from modelkit.errors import ConfigError
from modelkit.runtime import InferenceSession

from . import shards as shard_io
from .columns import plan_columns, plan_inputs
from .predictor import ShardPredictor
from .source import digest, portable_model

ENGINES = ("local", "ray")
MANIFEST = "_modelkit_predict.json"


@dataclass
class Report:
    """What a run did: shards written and skipped (already complete), rows predicted."""
    engine: str
    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0


def _check_manifest(folder, fingerprint, outputs):
    path = os.path.join(folder, MANIFEST)
    want = {"model": fingerprint, "outputs": list(outputs)}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                have = json.load(f)
        except (OSError, ValueError):
            have = None
        if isinstance(have, dict) and have.get("model") not in (None, fingerprint):
            raise ConfigError(f"output folder {folder} holds predictions of another model "
                              f"(see {MANIFEST}); use a new folder or empty this one")
    with atomic_write(path, mode="w") as f:
        json.dump(want, f)


def _empty_outputs(session):
    """Zero-row outputs (onnxruntime is not run on empty inputs)."""
    out = []
    for spec in session.outputs:
        if any(d is None for d in spec.shape[1:]):
            raise ConfigError(f"a shard has no rows and the model's output {spec.name!r} "
                              f"has dynamic dims {spec.shape}, so its empty shape is unknown")
        out.append(np.zeros((0,) + tuple(spec.shape[1:]), dtype=spec.dtype))
    return out


def _check_columns(shards, needed):
    for s in shards:
        missing = [c for c in needed if c not in s.columns]
        if missing:
            raise ConfigError(f"input shard {s.path} has no column {missing[0]!r} "
                              f"(columns: {list(s.columns)})")


def _local(predictor, todo, batch_size):
    """The local engine: the Ray engine's pieces, run in order in this process."""
    for shard in todo:
        parts = [predictor.run_piece(shard.index, a, b)
                 for a, b in shard_io.pieces(shard, batch_size, 1)]
        yield shard, {c: np.concatenate([p[c] for p in parts]) for c in predictor.columns}


def predict_files(model, inputs, output_dir, *, engine="local", input_columns=None,
                  batch_size=256, device="auto", num_workers=None, address=None,
                  progress=None):
    """Predict every shard of `inputs` (glob, file, folder or a list of them: see
    `shards.find_paths`) into `output_dir`, one output shard per input shard, same order
    and row counts. `progress(report, shard, path)` is called after each written shard.
    Returns a `Report`."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    start = time.perf_counter()
    paths = shard_io.find_paths(inputs)
    shards = [shard_io.describe(i, p) for i, p in enumerate(paths)]
    source = portable_model(model)
    session = InferenceSession(source, device=device if engine == "local" else "cpu")
    plan = plan_inputs(session.input_names, shards[0].columns, input_columns,
                       where=f"input shard {shards[0].path}")
    _check_columns(shards, plan_columns(plan))
    outputs = session.output_names
    os.makedirs(output_dir, exist_ok=True)
    _check_manifest(output_dir, digest(source), outputs)
    targets = {s.index: shard_io.output_path(output_dir, s, len(outputs)) for s in shards}
    report = Report(engine)
    todo = []
    for s in shards:
        if shard_io.is_finished(targets[s.index], s.rows, outputs):
            report.skipped.append(targets[s.index])
        else:
            todo.append(s)

    def done(shard, result):
        shard_io.write_shard(targets[shard.index], result)
        report.written.append(targets[shard.index])
        report.rows += shard.rows
        report.seconds = time.perf_counter() - start
        if progress is not None:
            progress(report, shard, targets[shard.index])

    empty = [s for s in todo if s.rows == 0]
    todo = [s for s in todo if s.rows]
    if engine == "local":
        predictor = ShardPredictor(session, plan, outputs, shards, batch_size=batch_size)
        results = _local(predictor, todo, batch_size)
    else:
        from .data import predict_pieces
        results = predict_pieces(source, todo, plan, outputs, batch_size=batch_size,
                                 num_workers=num_workers, device=device, address=address)
    for shard, result in results:
        while empty and empty[0].index < shard.index:        # keep the input order
            done(empty.pop(0), dict(zip(outputs, _empty_outputs(session))))
        done(shard, result)
    for shard in empty:
        done(shard, dict(zip(outputs, _empty_outputs(session))))
    report.seconds = time.perf_counter() - start
    return report

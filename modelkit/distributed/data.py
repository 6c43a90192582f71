"""Batch inference on Ray Data.

`predict_dataset` adds prediction columns to any `ray.data.Dataset`; `predict_pieces` is
the Ray engine of `predict_files`: worker actors read pieces of shard files themselves and
stream predictions back to the driver in input order.

Fault tolerance is Ray's: Ray Data creates map_batches actors with ``max_restarts=-1`` and
``max_task_retries=-1`` (its defaults), so when a worker process dies its actor restarts and
the batches it held run again; the result of each batch is taken once, so no row is lost or
repeated (the driver checks every row number of every shard arrives exactly once, in order).
"""

from __future__ import annotations

import numpy as np

from modelkit.errors import ConfigError, RuntimeSessionError
from modelkit.runtime import InferenceSession

from . import deps
from .cluster import connect, plan_workers
from .columns import ROW_COLUMN, SHARD_COLUMN, output_columns, plan_inputs
from .predictor import BatchPredictor, ShardPredictor
from .shards import pieces
from .source import portable_model


def predict_dataset(model_path, dataset, *, input_columns=None, output_prefix="pred",
                    batch_size=256, num_workers=None, device="auto"):
    """`dataset` (a ray.data.Dataset) with prediction columns added, computed lazily by a
    pool of `num_workers` actors (default: one per CPU, or one per GPU) that each open the
    model once.

    input_columns: see `modelkit.distributed.columns` (default: columns named after the
    model's inputs, or the only column); predictions are the column `output_prefix` for a
    one-output model, else `output_prefix_<output name>`; other columns pass through.
    """
    rd = deps.ray_data("predict_dataset")
    if not isinstance(dataset, rd.Dataset):
        raise ConfigError(f"dataset must be a ray.data.Dataset, got {type(dataset).__name__}")
    ray = connect(feature="predict_dataset")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    source = portable_model(model_path)
    probe = InferenceSession(source, device="cpu")
    available = list(dataset.columns())
    plan = plan_inputs(probe.input_names, available, input_columns)
    columns = output_columns(probe.output_names, output_prefix)
    clash = [c for c in columns if c in available]
    if clash:
        raise ConfigError(f"the dataset already has a column {clash[0]!r}; choose another "
                          f"output_prefix")
    workers = plan_workers(ray, num_workers, device)
    return dataset.map_batches(
        BatchPredictor, batch_size=batch_size, batch_format="numpy",
        fn_constructor_kwargs=dict(model=source, plan=plan, columns=columns,
                                   device=workers.device, threads=workers.threads),
        compute=rd.ActorPoolStrategy(size=workers.count), **workers.remote_args)


def predict_pieces(source, shards, plan, columns, *, batch_size, num_workers=None,
                   device="auto", address=None):
    """Yield (shard, {column: array}) for each of `shards` (with rows), in order, computed
    by Ray Data actors (`ShardPredictor`)."""
    rd = deps.ray_data("predict --engine ray")
    ray = connect(address, feature="predict --engine ray")
    workers = plan_workers(ray, num_workers, device)
    items = [{"shard": s.index, "start": a, "stop": b}
             for s in shards for a, b in pieces(s, batch_size, workers.count)]
    if not items:
        return
    ds = rd.from_items(items, override_num_blocks=len(items))
    ds.context.execution_options.preserve_order = True
    ds.context.enable_progress_bars = False
    ds = ds.map_batches(
        ShardPredictor, batch_size=1, batch_format="numpy",
        fn_constructor_kwargs=dict(model=source, plan=plan, columns=columns, shards=shards,
                                   device=workers.device, threads=workers.threads,
                                   batch_size=batch_size),
        compute=rd.ActorPoolStrategy(size=workers.count), **workers.remote_args)
    yield from assemble(ds.iter_batches(batch_size=None, batch_format="numpy"), shards, columns)


def assemble(batches, shards, columns):
    """Regroup tagged prediction batches into whole shards, in order, checking that every row
    of every shard arrives exactly once (RuntimeSessionError otherwise)."""
    todo = [s for s in shards if s.rows]
    pos, done, parts = 0, 0, {c: [] for c in columns}
    for batch in batches:
        ids, rows = batch[SHARD_COLUMN], batch[ROW_COLUMN]
        i = 0
        while i < len(ids):
            if pos >= len(todo):
                raise RuntimeSessionError(f"Ray returned {len(ids) - i} rows more than the "
                                          f"shards hold")
            shard = todo[pos]
            take = min(len(ids) - i, shard.rows - done)
            if not (ids[i:i + take] == shard.index).all() or not np.array_equal(
                    rows[i:i + take], np.arange(done, done + take)):
                raise RuntimeSessionError(
                    f"rows of {shard.path} arrived out of order, twice or not at all "
                    f"(expected rows {done}..{done + take - 1})")
            for c in columns:
                parts[c].append(batch[c][i:i + take])
            i, done = i + take, done + take
            if done == shard.rows:
                yield shard, {c: np.concatenate(parts[c]) for c in columns}
                pos, done, parts = pos + 1, 0, {c: [] for c in columns}
    if pos != len(todo):
        raise RuntimeSessionError(f"Ray stopped after {done} of the {todo[pos].rows} rows of "
                                  f"{todo[pos].path}")

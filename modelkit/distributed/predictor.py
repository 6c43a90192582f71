"""`BatchPredictor`: the callable class Ray Data's `map_batches` runs, one per worker actor
(each opens its `InferenceSession` once), and the local engine runs in-process.

A batch is {column: numpy array}. The plan (`columns.plan_inputs`) says which columns feed
which model input; the predictions come back as extra columns. `ShardPredictor` runs on
piece descriptors instead (shard, first row, last row) and reads the rows itself, so the
input data never travels through Ray's object store.
"""

from __future__ import annotations

import numpy as np

from modelkit.runtime import InferenceSession

from . import shards as shard_io
from .columns import ROW_COLUMN, SHARD_COLUMN, feeds_from_batch, plan_columns


class BatchPredictor:
    """Predictions for batches of a dataset.

    model: ONNX bytes or path (see `source.portable_model`), or an open InferenceSession; plan: {input: column(s)};
    columns: the prediction column of each model output, in output order; threads:
    onnxruntime intra-op threads (set per actor so actors do not oversubscribe cores);
    batch_size: rows per onnxruntime run inside one call (None: the whole batch);
    keep: the input columns passed through to the result (None: all of them).
    """

    def __init__(self, model, plan, columns, device="cpu", threads=None, batch_size=None,
                 keep=None):
        self.session = model if isinstance(model, InferenceSession) else \
            InferenceSession(model, device=device, intra_op_threads=threads)
        self._plan = plan
        self.columns = list(columns)
        self._batch_size = batch_size
        self._keep = keep

    def predict(self, feeds):
        """{output column: array} for {model input: array}."""
        outs = self.session.predict(feeds, batch_size=self._batch_size)
        outs = outs if isinstance(outs, list) else [outs]
        return dict(zip(self.columns, outs))

    def __call__(self, batch):
        result = {k: v for k, v in batch.items() if self._keep is None or k in self._keep}
        result.update(self.predict(feeds_from_batch(batch, self._plan)))
        return result


class ShardPredictor(BatchPredictor):
    """Predictions for pieces of shard files: each row of a batch names a shard index and a
    row range [start, stop); the result has one row per shard row, tagged with the shard
    index and the row number (so the driver can prove no row was lost or repeated)."""

    def __init__(self, model, plan, columns, shards, device="cpu", threads=None,
                 batch_size=None):
        super().__init__(model, plan, columns, device=device, threads=threads,
                         batch_size=batch_size, keep=())
        self._shards = {s.index: s for s in shards}
        self._read = plan_columns(plan)

    def run_piece(self, index, start, stop):
        shard = self._shards[index]
        rows = shard_io.read_rows(shard, start, stop, columns=self._read)
        out = {SHARD_COLUMN: np.full(stop - start, index, dtype=np.int64),
               ROW_COLUMN: np.arange(start, stop, dtype=np.int64)}
        out.update(self.predict(feeds_from_batch(rows, self._plan)))
        return out

    def __call__(self, batch):
        parts = [self.run_piece(int(i), int(a), int(b))
                 for i, a, b in zip(batch["shard"], batch["start"], batch["stop"])]
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

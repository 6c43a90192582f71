"""Past one machine, on Ray (the optional extra: ``pip install 'modelkit[ray]'``).

* `predict_dataset(model_path, dataset, ...)`: batch inference on a `ray.data.Dataset`
  (an actor pool, one InferenceSession per actor).
* `predict_files(model, inputs, output_dir, engine='local'|'ray', ...)`: one output shard
  per input shard (.npy, .npz, .parquet), resumable, atomic; `modelkit predict --output DIR/`.
* `serve_deployment(models, replicas=N, ...)`: the `modelkit serve` ASGI app as a Ray Serve
  deployment; `modelkit serve --engine ray`.

Importing this package loads neither Ray nor pyarrow; a feature that needs a missing one
raises `modelkit.errors.MissingDependencyError` naming the extra.
"""

from __future__ import annotations

import importlib

_LAZY = {"predict_dataset": ".data", "predict_files": ".files", "serve_deployment": ".serve",
         "BatchPredictor": ".predictor"}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

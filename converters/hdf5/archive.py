"""Keras 3 `.keras` archives: a zip with metadata.json, config.json and model.weights.h5."""

from __future__ import annotations

import datetime
import io
import json
import os
import zipfile

from modelkit.utils.atomic import atomic_write

from ._common import KERAS3_VERSION
from modelkit.ir import NESTED_MODEL_OPS, json_default

from .h5io import _Ctx, _read_new_layout
from .keras_config import (attach_layer_weights, attach_wrapped_models, graph_to_keras_config,
                           keras_config_to_graph)

__all__ = ["load_keras_archive", "save_keras_archive"]

_MAX_MEMBER = 4 << 30


def load_keras_archive(path):
    """Read a `.keras` zip (config.json + model.weights.h5 + metadata.json) into a Graph."""
    import h5py
    ctx = _Ctx(path)
    if not os.path.isfile(path):
        ctx.fail("no such file")
    try:
        if not zipfile.is_zipfile(path):
            ctx.fail("not a .keras archive (not a zip file)")
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            for info in z.infolist():
                if info.file_size > _MAX_MEMBER and info.file_size > 100 * max(info.compress_size, 1):
                    ctx.fail(f"member {info.filename!r} declares {info.file_size} bytes; refused")
            if "config.json" not in names:
                ctx.fail("archive has no config.json")
            ctx.piece = "metadata.json"
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
            version = meta.get("keras_version") if isinstance(meta, dict) else None
            ctx.piece = "config.json"
            try:
                config = json.loads(z.read("config.json"))
            except ValueError as e:
                ctx.fail(f"config.json is not valid JSON: {e}")
            graph = keras_config_to_graph(config, keras_version=version or "3")
            if "model.weights.h5" in names:
                ctx.piece = "model.weights.h5"
                data = z.read("model.weights.h5")
                with h5py.File(io.BytesIO(data), "r") as f:
                    stored = _read_new_layout(f, graph, ctx)
                attach_layer_weights(graph, stored)
                attach_wrapped_models(graph, keras3=True)
                graph.validate()
            graph.metadata["source"] = "keras"
            return graph
    except Exception as e:
        raise ctx.wrap(e) from None


def _write_new_layout(f, graph):
    from .h5io import _new_layout_paths
    from .keras_config import keras_weight_order
    import numpy as np
    paths = _new_layout_paths(graph)
    for node in graph.nodes:
        if node.subgraph is not None:       # a nested model, or a wrapper's (under /layer)
            where = paths[node.name] if node.op in NESTED_MODEL_OPS else paths[node.name] + "/layer"
            _write_new_layout(f.require_group(where), node.subgraph)
            continue
        items = keras_weight_order(node, graph)
        if not items:
            continue
        g = f.require_group(paths[node.name] + "/vars")
        for i, (sg, key) in enumerate(items):
            g.create_dataset(str(i), data=np.ascontiguousarray(sg.weights[key]))


def save_keras_archive(graph, path):
    """Write a `.keras` zip (Keras 3 dialect config, weights in the `layers/<x>/vars/<i>`
    layout). Layers whose Keras 3 weights sit in sub-objects (RNN cells, wrappers) are
    written flat under their layer; modelkit reads them back, Keras 3 may not."""
    import h5py
    config = graph_to_keras_config(graph, dialect="keras3")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        _write_new_layout(f, graph)
    meta = {"keras_version": KERAS3_VERSION,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    with atomic_write(path, mode="wb") as out:
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("metadata.json", json.dumps(meta))
            z.writestr("config.json", json.dumps(config, default=json_default))
            z.writestr("model.weights.h5", buf.getvalue())



"""Keras 3 `.keras` archives: a zip with metadata.json, config.json and model.weights.h5."""

from __future__ import annotations

import datetime
import io
import json
import zipfile

from modelkit.converters.atomic import atomic_write

from modelkit.ir import json_default

from ..file_checks import require_regular_file
from .optimizer_vars import read_optimizer_vars, write_optimizer_vars
from .h5io import (_Ctx, _open, _read_new_layout, _write_new_layout,
                   training_from_compile_config, training_to_compile_config)
from modelkit.keras_config import (KERAS3_VERSION, attach_layer_weights, attach_wrapped_models,
                                   graph_to_archive_config, keras_config_to_graph)

__all__ = ["load_keras_archive", "save_keras_archive"]

# Only the compression methods Keras writes; bzip2/lzma can inflate a few KB to gigabytes.
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_MAX_JSON = 64 << 20          # config.json / metadata.json
_MAX_TOTAL = 16 << 30         # all members read, inflated
_MAX_RATIO = 200              # inflated / compressed for members above _RATIO_FROM bytes
_RATIO_FROM = 1 << 20
_CHUNK = 1 << 20


def _check_members(z, ctx):
    """Refuse duplicate names, foreign compression methods and declared sizes beyond the
    limits, before any member is inflated."""
    seen = set()
    total = 0
    for info in z.infolist():
        name = info.filename
        if name in seen:
            ctx.fail(f"the archive holds two members named {name!r}")
        seen.add(name)
        if info.compress_type not in _METHODS:
            ctx.fail(f"member {name!r} uses compression method {info.compress_type}; a .keras "
                     f"archive uses only stored or deflate")
        total += info.file_size
        if (info.file_size > _RATIO_FROM
                and info.file_size > _MAX_RATIO * max(info.compress_size, 1)):
            ctx.fail(f"member {name!r} inflates {info.compress_size} bytes to {info.file_size} "
                     f"(more than {_MAX_RATIO}:1); refused")
    if total > _MAX_TOTAL:
        ctx.fail(f"the archive inflates to {total} bytes, more than the {_MAX_TOTAL} allowed")
    return seen


def _read_member(z, name, limit, ctx):
    """Inflate one member in bounded chunks: never more than its declared size (zipfile
    stops there and checks the CRC) and never more than `limit`."""
    ctx.piece = name
    info = z.getinfo(name)
    if info.file_size > limit:
        ctx.fail(f"member {name!r} declares {info.file_size} bytes, more than the {limit} "
                 f"allowed")
    out = bytearray()
    with z.open(info) as stream:
        while True:
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            out += chunk
            if len(out) > info.file_size:
                ctx.fail(f"member {name!r} inflates past its declared {info.file_size} bytes")
    return bytes(out)


def _read_json_member(z, name, ctx):
    try:
        return json.loads(_read_member(z, name, _MAX_JSON, ctx))
    except (ValueError, RecursionError) as e:
        ctx.fail(f"{name} is not valid JSON: {type(e).__name__}: {e}")


def load_keras_archive(path):
    """Read a `.keras` zip (config.json + model.weights.h5 + metadata.json) into a Graph."""
    import h5py
    ctx = _Ctx(path)
    require_regular_file(path, ".keras archive")
    try:
        if not zipfile.is_zipfile(path):
            ctx.fail("not a .keras archive (not a zip file)")
        with zipfile.ZipFile(path) as z:
            names = _check_members(z, ctx)
            for needed in ("config.json", "model.weights.h5"):
                if needed not in names:
                    ctx.fail(f"archive has no {needed} (a .keras archive holds config.json, "
                             f"model.weights.h5 and metadata.json)")
            meta = _read_json_member(z, "metadata.json", ctx) if "metadata.json" in names else {}
            version = meta.get("keras_version") if isinstance(meta, dict) else None
            config = _read_json_member(z, "config.json", ctx)
            ctx.piece = "config.json"
            graph = keras_config_to_graph(config, keras_version=version or "3")
            compile_config = config.get("compile_config") if isinstance(config, dict) else None
            if compile_config:      # what Keras's load_model compiles the model with
                ctx.piece = "config.json compile_config"
                graph.training = training_from_compile_config(compile_config,
                                                              len(graph.outputs))
            data = _read_member(z, "model.weights.h5", _MAX_TOTAL, ctx)
            inner = _Ctx(f"{ctx.path}: model.weights.h5")
            with _open(io.BytesIO(data), inner) as f:
                stored = _read_new_layout(f, graph, inner)
                ctx.piece = "model.weights.h5"
                attach_layer_weights(graph, stored)
                attach_wrapped_models(graph, keras3=True)
                if graph.training is not None and "optimizer/vars" in f:
                    inner.piece = "optimizer/vars"
                    graph.training.optimizer_state = read_optimizer_vars(
                        f["optimizer/vars"], graph, f"{ctx.path}: model.weights.h5")
            graph.validate()
            graph.metadata["source"] = "keras"
            return graph
    except Exception as e:
        raise ctx.wrap(e) from None


def save_keras_archive(graph, path):
    """Write a `.keras` zip (a config both tf-keras 2.x and Keras 3 load, see
    `graph_to_archive_config`; weights in Keras 3's
    `layers/<x>/vars/<i>` layout, with the sub-objects Keras 3 saves them under: an RNN's
    `cell`, Bidirectional's `forward_layer` / `backward_layer`, TimeDistributed's `layer`,
    MultiHeadAttention's EinsumDense sub-layers)."""
    import h5py
    config = graph_to_archive_config(graph)
    if graph.training is not None and graph.training.loss is not None:
        config = {**config, "compile_config": training_to_compile_config(
            graph.training, len(graph.outputs))}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        _write_new_layout(f, graph)
        write_optimizer_vars(f, graph)
    meta = {"keras_version": KERAS3_VERSION,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    with atomic_write(path, mode="wb") as out:
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("metadata.json", json.dumps(meta))
            z.writestr("config.json", json.dumps(config, default=json_default))
            z.writestr("model.weights.h5", buf.getvalue())



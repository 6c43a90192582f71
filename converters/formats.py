"""The one table of model file formats: which format a path holds, and how to read/write it.

    fmt = format_of("m.keras")          # by the file's first bytes, else by its extension
    graph = read_graph("m.h5")          # any format -> IR Graph
    write_graph(graph, "m.onnx", opset=17)

`modelkit.saving` (load_model / Model.save), `modelkit.runtime.InferenceSession` and every CLI
command go through here, so `.h5`, `.keras` and `.onnx` are accepted the same everywhere.
The converters are imported on first use: asking for a format loads only what it needs.
Every write is atomic (`converters.atomic.atomic_write`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from modelkit.errors import ModelLoadError, ModelSaveError, UnsupportedError

from .file_checks import require_regular_file


@dataclass(frozen=True)
class Format:
    """One file format: its name, extensions, leading bytes and IR reader/writer."""

    name: str
    description: str
    extensions: tuple
    magic: bytes | None                      # the file's first bytes; None: not recognisable
    read: Callable                           # read(path) -> Graph
    write: Callable                          # write(graph, path, **options)


def _read_hdf5(path):
    from . import hdf5
    return hdf5.load_graph(path)


def imported_onnx_ops(graph):
    """'name (OpType)' of every imported ONNX op (`OnnxOp` node) of `graph`, nested included:
    Keras files have no form for them."""
    def walk(g, prefix=""):
        for n in g.nodes:
            if n.op == "OnnxOp":
                yield f"{prefix}{n.name} ({n.config.get('op_type')})"
            if n.subgraph is not None:
                yield from walk(n.subgraph, f"{prefix}{n.name}/")
    return list(walk(graph))


def _refuse_onnx_ops(graph, path, description):
    """Keras files have no form for imported ONNX ops (`OnnxOp` nodes): name every one."""
    found = imported_onnx_ops(graph)
    if found:
        raise UnsupportedError(
            f"Cannot save {path} as {description}: {len(found)} imported ONNX op(s) have no "
            f"Keras layer form: {', '.join(found)}. Save as .onnx instead (it runs and trains "
            "in modelkit either way).", found)


def _write_hdf5(graph, path, dialect="keras2", include_optimizer=True, opset=None):
    from . import hdf5
    _refuse_onnx_ops(graph, path, "Keras HDF5")
    hdf5.save_graph(graph, path, dialect=dialect, include_optimizer=include_optimizer)


def _read_keras(path):
    from . import hdf5
    return hdf5.load_keras_archive(path)


def _write_keras(graph, path, dialect=None, include_optimizer=True, opset=None):
    from . import hdf5
    _refuse_onnx_ops(graph, path, "a Keras archive")
    hdf5.save_keras_archive(graph, path)


def _read_onnx(path):
    from . import onnx as onnx_conv
    return onnx_conv.import_graph(path)     # checked by onnx.reading.read_model first


def _write_onnx(graph, path, dialect=None, include_optimizer=None, opset=None):
    from . import onnx as onnx_conv
    onnx_conv.export(graph, path=path, **({} if opset is None else {"opset": opset}))


HDF5 = Format("hdf5", "Keras HDF5", (".h5", ".hdf5", ".keras_h5"), b"\x89HDF\r\n\x1a\n",
              _read_hdf5, _write_hdf5)
KERAS = Format("keras", "Keras archive", (".keras",), b"PK\x03\x04", _read_keras, _write_keras)
ONNX = Format("onnx", "ONNX", (".onnx",), None, _read_onnx, _write_onnx)
FORMATS = (HDF5, KERAS, ONNX)

EXTENSIONS = tuple(e for f in FORMATS for e in f.extensions)


def _expected():
    return ", ".join(EXTENSIONS)


def format_by_extension(path):
    """The Format a path's extension names, or None."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    return next((f for f in FORMATS if ext in f.extensions), None)


def format_of(path):
    """The Format of an existing file: its leading bytes decide (a Keras 3 `.h5` that is
    really a zip archive reads as one), else its extension. Raises ModelLoadError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelLoadError(f"Model file not found: {path}")
    if os.path.isdir(path):
        raise ModelLoadError(f"Model path is a directory, not a file: {path}")
    require_regular_file(path)          # a FIFO or a device is refused before reading
    with open(path, "rb") as f:
        head = f.read(8)
    for fmt in FORMATS:
        if fmt.magic is not None and head.startswith(fmt.magic):
            return fmt
    fmt = format_by_extension(path)
    if fmt is None:
        ext = os.path.splitext(path)[1].lower()
        raise ModelLoadError(f"Cannot tell the format of {path!r}: unknown model file extension "
                             f"{ext!r} and no known leading bytes; expected {_expected()}")
    return fmt


def read_graph(path):
    """Any supported model file -> IR Graph."""
    return format_of(path).read(os.fspath(path))


def format_for_writing(path):
    """The Format a path to be written names by its extension; ModelSaveError if none."""
    fmt = format_by_extension(path)
    if fmt is None:
        raise ModelSaveError(f"Cannot tell the format of {os.fspath(path)!r} from its extension; "
                             f"use {_expected()}")
    return fmt


def write_graph(graph, path, *, dialect="keras2", include_optimizer=True, opset=None):
    """Write `graph` in the format `path`'s extension names (atomically).

    dialect ("keras2"/"keras3") applies to HDF5, opset to ONNX (None: the exporter's default)."""
    path = os.fspath(path)
    fmt = format_for_writing(path)
    fmt.write(graph, path, dialect=dialect, include_optimizer=include_optimizer, opset=opset)
    return fmt

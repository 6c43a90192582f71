"""Reading `.onnx` files: refuse what is not an ONNX model before anyone uses it.

`read_model(path)` checks that the path is a regular file (no FIFO or device), parses it
and `check_model_proto` refuses what protobuf happily parses but is no model: an empty
(0-byte) file, a bare GraphProto or other message (no IR version, no graph, no opset), a
graph without outputs, names that are not UTF-8. `check_external_data` refuses tensors whose
external data lies outside the model's folder (absolute paths, `..`, symbolic links out)
or in anything but a regular file (a FIFO would block the reader). Errors are
`ModelLoadError`s naming the file.
"""

from __future__ import annotations

import os

from modelkit.errors import ModelLoadError

from ..file_checks import require_regular_file

__all__ = ["read_model", "parse_model", "check_model_proto", "check_external_data"]


def check_model_proto(model, where):
    """Raise ModelLoadError naming `where` unless `model` looks like a real ModelProto."""
    problems = []
    if model.ir_version <= 0:
        problems.append("no IR version")
    if not model.HasField("graph"):
        problems.append("no graph")
    elif not model.graph.output:
        problems.append("a graph without outputs")
    if not model.opset_import:
        problems.append("no opset_import")
    if not problems and not _text_is_utf8(model):
        problems.append("names that are not UTF-8 text")
    if problems:
        hint = "; an empty file or a bare GraphProto?" if model.ir_version <= 0 else ""
        raise ModelLoadError(f"Cannot load ONNX model {where}: not an ONNX model "
                             f"({', '.join(problems)}{hint})")
    return model


def _text_is_utf8(model):
    """protobuf hands back bytes for a string field that is not valid UTF-8."""
    g = model.graph
    texts = [model.producer_name, model.producer_version, model.domain, g.name]
    texts += [o.domain for o in model.opset_import]
    for n in g.node:
        texts += [n.op_type, n.domain, n.name, *n.input, *n.output]
        texts += [a.name for a in n.attribute]
    texts += [v.name for v in list(g.input) + list(g.output) + list(g.value_info)]
    texts += [t.name for t in g.initializer]
    texts += [p.key for p in model.metadata_props] + [p.value for p in model.metadata_props]
    return all(isinstance(t, str) for t in texts)


def parse_model(data, where):
    """Serialized bytes -> a checked ModelProto."""
    import onnx
    try:
        model = onnx.load_model_from_string(bytes(data))
    except Exception as e:      # noqa: BLE001 - protobuf DecodeError and friends
        raise ModelLoadError(f"Cannot load ONNX model {where}: {' '.join(str(e).split())}") \
            from None
    check_model_proto(model, where)
    import onnx
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _tensors(model.graph)):
        raise ModelLoadError(f"Cannot load ONNX model {where}: it keeps tensors in external "
                             f"files, which only a model read from a path can use")
    return model


def _tensors(graph):
    """Every TensorProto of a graph: initializers, Constant values, subgraphs' tensors."""
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield sp.values
        yield sp.indices
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _tensors(a.g)
            for g in a.graphs:
                yield from _tensors(g)


def check_external_data(model, folder, where):
    """Refuse external data outside `folder` or in anything but a regular file."""
    import onnx
    root = os.path.realpath(folder)
    for t in _tensors(model.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        target = os.path.realpath(os.path.join(root, loc))
        if (not loc or os.path.isabs(loc) or ".." in loc.replace("\\", "/").split("/")
                or os.path.commonpath([root, target]) != root):
            raise ModelLoadError(f"Cannot load ONNX model {where}: tensor {t.name!r} keeps "
                                 f"its data in {loc!r}, outside the model's folder; refused")
        try:
            require_regular_file(target, f"external data file of tensor {t.name!r}")
        except ModelLoadError as e:
            raise ModelLoadError(f"Cannot load ONNX model {where}: {e}") from None


def read_model(path, load_external_data=False):
    """A checked ModelProto from the regular file `path` (its external data checked too)."""
    import onnx
    where = os.fsdecode(os.fspath(path))
    require_regular_file(path, "ONNX file")
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as e:      # noqa: BLE001
        raise ModelLoadError(f"Cannot load ONNX model {where}: {' '.join(str(e).split())}") \
            from None
    check_model_proto(model, where)
    folder = os.path.dirname(os.path.abspath(where))
    check_external_data(model, folder, where)
    if load_external_data:
        from onnx.external_data_helper import load_external_data_for_model
        try:
            load_external_data_for_model(model, folder)
        except Exception as e:      # noqa: BLE001
            raise ModelLoadError(f"Cannot load ONNX model {where}: external data: "
                                 f"{' '.join(str(e).split())}") from None
    return model

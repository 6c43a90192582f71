"""Reading `.onnx` files: refuse what is not an ONNX model before anyone uses it.

`read_model(path)` checks that the path is a regular file (no FIFO or device), parses it
and `check_model_proto` refuses what protobuf happily parses but is no model: an empty
(0-byte) file, a bare GraphProto or other message (no IR version, no graph, no opset), a
graph without outputs. Errors are `ModelLoadError`s naming the file.
"""

from __future__ import annotations

import os

from modelkit.errors import ModelLoadError

from ..file_checks import require_regular_file

__all__ = ["read_model", "parse_model", "check_model_proto"]


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
    if problems:
        raise ModelLoadError(f"Cannot load ONNX model {where}: not an ONNX model ({', '.join(problems)}; an empty "
                             f"file or a bare GraphProto?)")
    return model


def parse_model(data, where):
    """Serialized bytes -> a checked ModelProto."""
    import onnx
    try:
        model = onnx.load_model_from_string(bytes(data))
    except Exception as e:      # noqa: BLE001 - protobuf DecodeError and friends
        raise ModelLoadError(f"Cannot load ONNX model {where}: {' '.join(str(e).split())}") \
            from None
    return check_model_proto(model, where)


def read_model(path, load_external_data=False):
    """A checked ModelProto from the regular file `path`."""
    import onnx
    where = os.fsdecode(os.fspath(path))
    require_regular_file(path, "ONNX file")
    try:
        model = onnx.load(os.fspath(path), load_external_data=load_external_data)
    except Exception as e:      # noqa: BLE001
        raise ModelLoadError(f"Cannot load ONNX model {where}: {' '.join(str(e).split())}") \
            from None
    return check_model_proto(model, where)

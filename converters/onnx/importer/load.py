"""Reading an ONNX model safely: path / bytes / ModelProto -> a checked ModelProto.

* External data is read only from files inside the model's folder (absolute locations,
  `..` components and symlinks that leave the folder are refused by `reading.read_model`);
  offset and length are checked against the file's size before anything is read.
* Every initializer's declared size (dims x element size) must match the bytes present
  before a numpy array is made from it.
* Models older than MIN_OPSET are upgraded with `onnx.version_converter`; models newer than
  the installed `onnx` are refused with a message saying so.
Every problem raises `ModelLoadError` naming the file and the piece.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from modelkit.errors import ModelLoadError, UnsupportedError

from .. import reading
from ..reading import check_model_proto, parse_model

MIN_OPSET = 13
_ELEM_BITS = {TensorProto.FLOAT: 32, TensorProto.UINT8: 8, TensorProto.INT8: 8,
              TensorProto.UINT16: 16, TensorProto.INT16: 16, TensorProto.INT32: 32,
              TensorProto.INT64: 64, TensorProto.BOOL: 8, TensorProto.FLOAT16: 16,
              TensorProto.DOUBLE: 64, TensorProto.UINT32: 32, TensorProto.UINT64: 64,
              TensorProto.BFLOAT16: 16, TensorProto.FLOAT8E4M3FN: 8,
              TensorProto.FLOAT8E4M3FNUZ: 8, TensorProto.FLOAT8E5M2: 8,
              TensorProto.FLOAT8E5M2FNUZ: 8, TensorProto.FLOAT8E8M0: 8,
              # packed: two 4-bit / four 2-bit values a byte (or an int32_data entry)
              TensorProto.UINT4: 4, TensorProto.INT4: 4, TensorProto.FLOAT4E2M1: 4,
              TensorProto.UINT2: 2, TensorProto.INT2: 2}
_TYPED_FIELD = {TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data",
                TensorProto.INT64: "int64_data", TensorProto.UINT64: "uint64_data",
                TensorProto.UINT32: "uint64_data"}
MAX_TENSOR_BYTES = 1 << 34


def read_model(source):
    """-> (ModelProto, label, folder or None). `source`: path, bytes or ModelProto.

    A path is read by `converters.onnx.reading` (a regular file, a real ModelProto, external
    data only inside the model's folder); bytes are parsed and checked the same way."""
    if isinstance(source, onnx.ModelProto):
        return check_model_proto(source, "<ModelProto>"), "<ModelProto>", None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return parse_model(source, "<bytes>"), "<bytes>", None
    try:
        path = os.fspath(source)
    except TypeError:
        raise ModelLoadError(f"import_graph needs a path, bytes or onnx.ModelProto, got "
                             f"{type(source).__name__}") from None
    label = os.fsdecode(path)
    return reading.read_model(path), label, os.path.dirname(os.path.abspath(label))


def default_opset(model, label):
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ModelLoadError(f"{label}: the model imports no version of the default ONNX "
                             "domain (opset_import)")
    return int(versions[0])


def check_versions(model, label):
    """Refuse models newer than the installed onnx; upgrade ones older than MIN_OPSET."""
    opset = default_opset(model, label)
    newest = onnx.defs.onnx_opset_version()
    if opset > newest or model.ir_version > onnx.IR_VERSION:
        raise UnsupportedError(
            f"{label}: the model uses opset {opset} / IR version {model.ir_version}, newer than "
            f"the installed onnx {onnx.__version__} knows (opset {newest}, IR {onnx.IR_VERSION});"
            f" upgrade the onnx package", [f"opset {opset}"])
    if opset < 9 and any(n.op_type == "Scan" for n in model.graph.node):
        raise UnsupportedError(f"{label}: Scan of opset {opset} (the batched form before "
                               "opset 9, which onnx.version_converter does not upgrade)",
                               [f"Scan opset {opset}"])
    if opset < 7:
        model = _per_channel_prelu_slopes(model)
    if opset < MIN_OPSET:
        from onnx import version_converter
        try:
            model = version_converter.convert_version(model, MIN_OPSET)
        except Exception as e:
            raise UnsupportedError(f"{label}: opset {opset} could not be upgraded to opset "
                                   f"{MIN_OPSET} by onnx.version_converter: {e}",
                                   [f"opset {opset}"]) from None
    return model, default_opset(model, label)


def _per_channel_prelu_slopes(model):
    """PRelu before opset 7 applied a 1-D slope of C values per channel (axis 1); from opset 7
    slopes broadcast numpy-style. Such slope initializers get the trailing 1s that keep their
    meaning (C, 1, ..., 1) before the model is upgraded (on a copy: the caller's proto is
    left alone)."""
    if not any(n.op_type == "PRelu" for n in model.graph.node):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    model = copy
    inits = {t.name: t for t in model.graph.initializer}
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim)
             for vi in list(model.graph.input) + list(model.graph.value_info)
             if vi.type.tensor_type.HasField("shape")}
    for node in model.graph.node:
        if node.op_type != "PRelu" or len(node.input) < 2:
            continue
        slope, rank = inits.get(node.input[1]), ranks.get(node.input[0])
        if slope is None or rank is None or rank < 3 or len(slope.dims) != 1 or \
                slope.dims[0] <= 1:
            continue
        slope.dims.extend([1] * (rank - 2))
        for vi in model.graph.input:            # old models list initializers as inputs
            if vi.name == slope.name and vi.type.tensor_type.HasField("shape"):
                for _ in range(rank - 2):
                    vi.type.tensor_type.shape.dim.add().dim_value = 1
    return model


# -- tensors -------------------------------------------------------------------------------

def tensor_to_array(t, label, folder, what=None):
    """TensorProto -> numpy array after checking its declared size against its data."""
    what = what or f"initializer {t.name!r}"
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        raise ModelLoadError(f"{label}: {what} has negative dims {dims}")
    if t.data_type == TensorProto.STRING and t.data_location != TensorProto.EXTERNAL:
        count = int(np.prod(dims, dtype=object)) if dims else 1
        if len(t.string_data) != count:
            raise ModelLoadError(f"{label}: {what} declares dims {dims} ({count} strings) but "
                                 f"holds {len(t.string_data)}")
        return numpy_helper.to_array(t)
    bits = _ELEM_BITS.get(t.data_type)
    if bits is None:
        raise ModelLoadError(f"{label}: {what} has data type "
                             f"{TensorProto.DataType.Name(t.data_type) if t.data_type in TensorProto.DataType.values() else t.data_type}"
                             ", which modelkit does not compute with")
    count = int(np.prod(dims, dtype=object)) if dims else 1
    nbytes = -(-count * bits // 8)
    if nbytes > MAX_TENSOR_BYTES:
        raise ModelLoadError(f"{label}: {what} declares {nbytes} bytes (dims {dims}), more "
                             "than modelkit accepts")
    if t.data_location == TensorProto.EXTERNAL:
        raw = _external_bytes(t, label, folder, what, nbytes)
        if bits < 8:            # packed: numpy_helper unpacks raw data
            inline = TensorProto()
            inline.CopyFrom(t)
            del inline.external_data[:]
            inline.data_location = TensorProto.DEFAULT
            inline.raw_data = raw
            return numpy_helper.to_array(inline)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
        return np.frombuffer(raw, dtype=dtype).reshape(dims).copy()
    if t.HasField("raw_data"):
        if len(t.raw_data) != nbytes:
            raise ModelLoadError(f"{label}: {what} declares dims {dims} ({nbytes} bytes) but "
                                 f"holds {len(t.raw_data)} bytes of raw data")
    else:
        field = _TYPED_FIELD.get(t.data_type, "int32_data")
        present = len(getattr(t, field))
        if bits < 8:            # packed into int32_data as into bytes
            count = -(-count * bits // 8)
        if present != count:
            raise ModelLoadError(f"{label}: {what} declares dims {dims} ({count} values) but "
                                 f"holds {present} in {field}")
    try:
        return numpy_helper.to_array(t)
    except Exception as e:
        raise ModelLoadError(f"{label}: {what} cannot be read: {e}") from None


def _external_bytes(t, label, folder, what, nbytes):
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    if folder is None:
        raise ModelLoadError(f"{label}: {what} keeps its data in external file {location!r}; "
                             "load the model from its path so the file can be found")
    path = os.path.realpath(os.path.join(folder, location))   # inside: reading.read_model
    if not os.path.isfile(path):
        raise ModelLoadError(f"{label}: {what}: external data file {location!r} does not exist")
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else nbytes
    except ValueError:
        raise ModelLoadError(f"{label}: {what}: external data offset/length are not "
                             "integers") from None
    file_size = os.path.getsize(path)
    if offset < 0 or length != nbytes or offset + length > file_size:
        raise ModelLoadError(f"{label}: {what}: external data needs {nbytes} bytes at offset "
                             f"{offset} (length {length}) of {location!r}, which has "
                             f"{file_size} bytes")
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)

"""Tensor datatype names: KServe v2 ("FP32"), TensorFlow ("DT_FLOAT") and numpy.

The v2 protocol never casts: a request's datatype must be the model input's. These tables
are the only place the three vocabularies meet.
"""

from __future__ import annotations

import numpy as np

from .errors import RequestError, brief

# v2 name -> numpy dtype (BYTES holds Python bytes/str in object arrays).
V2_TO_NUMPY = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
NUMPY_TO_V2 = {dt: name for name, dt in V2_TO_NUMPY.items()}
KNOWN_V2 = tuple(V2_TO_NUMPY) + ("BF16",)

# numpy dtype -> TensorFlow DataType enum name (TF Serving metadata).
NUMPY_TO_TF = {
    np.dtype(np.bool_): "DT_BOOL", np.dtype(np.uint8): "DT_UINT8",
    np.dtype(np.uint16): "DT_UINT16", np.dtype(np.uint32): "DT_UINT32",
    np.dtype(np.uint64): "DT_UINT64", np.dtype(np.int8): "DT_INT8",
    np.dtype(np.int16): "DT_INT16", np.dtype(np.int32): "DT_INT32",
    np.dtype(np.int64): "DT_INT64", np.dtype(np.float16): "DT_HALF",
    np.dtype(np.float32): "DT_FLOAT", np.dtype(np.float64): "DT_DOUBLE",
    np.dtype(object): "DT_STRING",
}


def v2_name(dtype, onnx_type=""):
    """The v2 datatype name of a numpy dtype (or of an ONNX type numpy cannot hold)."""
    if dtype is None:
        return "BF16" if onnx_type == "tensor(bfloat16)" else onnx_type or "UNKNOWN"
    name = NUMPY_TO_V2.get(dtype)
    return name if name is not None else str(np.dtype(dtype))


def v2_dtype(name, where):
    """numpy dtype of the v2 datatype `name`; 400 naming `where` when it is unknown."""
    if not isinstance(name, str):
        raise RequestError(f"{where}: 'datatype' must be a string such as \"FP32\", "
                           f"got {brief(name)}")
    dt = V2_TO_NUMPY.get(name)
    if dt is None:
        if name == "BF16":
            raise RequestError(f"{where}: datatype BF16 is not supported by this server")
        raise RequestError(f"{where}: unknown datatype {brief(name)}; expected one of "
                           f"{', '.join(V2_TO_NUMPY)}")
    return dt


def tf_name(dtype):
    return NUMPY_TO_TF.get(np.dtype(dtype), "DT_INVALID") if dtype is not None else "DT_INVALID"

"""How a `BackendOp` node stores its call's arguments in a config (JSON-safe, no code).

`{"__tensor__": i}` stands for the call's i-th input tensor, `{"__array__": [...], "dtype"}`
for a constant array, `{"__slice__": [start, stop, step]}` and `{"__ellipsis__": true}` for
indexing. The engine encodes when a K function meets a symbolic tensor; the engine and the
ONNX exporter decode.
"""

import numpy as np

TENSOR = "__tensor__"


def encode(value, tensors, is_tensor):
    """JSON-safe form of `value`; tensors (by `is_tensor`) are appended to `tensors`."""
    if is_tensor(value):
        tensors.append(value)
        return {TENSOR: len(tensors) - 1}
    if isinstance(value, (list, tuple)):
        return [encode(v, tensors, is_tensor) for v in value]
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, slice):
        return {"__slice__": [value.start, value.stop, value.step]}
    if value is Ellipsis:
        return {"__ellipsis__": True}
    return value


def decode(value, tensors):
    """Inverse of `encode`, with `tensors[i]` substituted for `{"__tensor__": i}`."""
    if isinstance(value, dict):
        if TENSOR in value:
            return tensors[value[TENSOR]]
        if "__array__" in value:
            return np.asarray(value["__array__"], dtype=value.get("dtype", "float32"))
        if "__slice__" in value:
            return slice(*value["__slice__"])
        if "__ellipsis__" in value:
            return Ellipsis
        return value
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    return value

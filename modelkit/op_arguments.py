"""How a `BackendOp` node stores its call's arguments in a config (JSON-safe, no code).

`{"__tensor__": i}` stands for the call's i-th input tensor, `{"__array__": [...], "dtype"}`
for a constant array, `{"__slice__": [start, stop, step]}` and `{"__ellipsis__": true}` for
indexing. The engine encodes when a K function meets a symbolic tensor; the engine and the
ONNX exporter decode.
"""

import numpy as np

from .errors import ConfigError, ShapeError

TENSOR = "__tensor__"
MAX_CONSTANT = 1 << 24          # elements of one stored constant array
MAX_DEPTH = 32
# functions whose integer arguments multiply the size of their output
_EXPANDING = {"tile", "repeat", "repeat_elements", "pad", "resize", "one_hot"}
MAX_EXPANSION = 1 << 16


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


def check_arguments(function, arguments, where):
    """Check a stored call's arguments before anything is built from them: the layout, the
    constant arrays (numeric dtype, bounded size), and the integers of functions that
    multiply sizes (`tile`, `repeat`, ...). Returns `arguments`; ConfigError naming `where`."""
    if not isinstance(arguments, dict) or not isinstance(arguments.get("args", []), list) \
            or not isinstance(arguments.get("kwargs", {}), dict):
        raise ConfigError(f"{where}: arguments must be {{'args': [...], 'kwargs': {{...}}}}, "
                          f"got {arguments!r:.120}")
    limit = MAX_EXPANSION if function in _EXPANDING else None
    _check_value(list(arguments.get("args", [])) + list(arguments.get("kwargs", {}).values()),
                 where, limit, 0)
    return arguments


def _check_value(value, where, limit, depth):
    if depth > MAX_DEPTH:
        raise ConfigError(f"{where}: arguments nest deeper than {MAX_DEPTH} levels")
    if isinstance(value, bool) or value is None or isinstance(value, (float, str)):
        return
    if isinstance(value, int):
        if limit is not None and abs(value) > limit:
            raise ConfigError(f"{where}: argument {value} is beyond {limit}; refused (it "
                              f"would multiply the size of the output)")
        return
    if isinstance(value, list):
        for v in value:
            _check_value(v, where, limit, depth + 1)
        return
    if isinstance(value, dict):
        if TENSOR in value:
            i = value[TENSOR]
            if not isinstance(i, int) or isinstance(i, bool) or i < 0:
                raise ConfigError(f"{where}: bad tensor reference {value!r:.80}")
            return
        if "__array__" in value:
            _check_constant_dtype(value.get("dtype", "float32"), where)
            if _count(value["__array__"], MAX_CONSTANT) > MAX_CONSTANT:
                raise ConfigError(f"{where}: a constant holds more than {MAX_CONSTANT} values")
            return
        if "__slice__" in value:
            s = value["__slice__"]
            if not (isinstance(s, list) and len(s) == 3 and all(
                    v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in s)):
                raise ConfigError(f"{where}: bad slice {value!r:.80}")
            return
        if "__ellipsis__" in value:
            return
        for v in value.values():
            _check_value(v, where, limit, depth + 1)
    # anything else (a dtype object, ...) was not read from a file: nothing to check


def _check_constant_dtype(dtype, where):
    """Constants are numeric or bool (never strings such as 'U500000000' or objects)."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError, RecursionError):
        raise ConfigError(f"{where}: constant dtype {dtype!r:.80} is not a dtype") from None
    if dt.kind not in "biuf" or dt.itemsize > 8 or dt.fields or dt.subdtype:
        raise ConfigError(f"{where}: constant dtype {dtype!r:.80} is not a numeric or bool "
                          f"tensor dtype")


def _count(value, cap):
    """Number of leaves of a nested list, stopping once past `cap`."""
    if not isinstance(value, list):
        return 1
    n = 0
    stack = [value]
    while stack and n <= cap:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        else:
            n += 1
    return n


def split_sizes(n, num_or_size_splits):
    """The part sizes of `tf.split` along an axis of length n: an int (equal parts, dividing
    n) or a list of sizes summing to n, one of which may be -1 (the rest)."""
    if isinstance(num_or_size_splits, (int, np.integer)) and not isinstance(
            num_or_size_splits, bool):
        k = int(num_or_size_splits)
        if k <= 0 or n % k:
            raise ShapeError(f"split: {k} equal parts do not divide an axis of length {n}")
        return [n // k] * k
    sizes = [int(v) for v in num_or_size_splits]
    if sizes.count(-1) > 1 or any(v < -1 for v in sizes):
        raise ShapeError(f"split: bad sizes {sizes}")
    if -1 in sizes:
        sizes[sizes.index(-1)] = n - (sum(sizes) + 1)
    if sum(sizes) != n or min(sizes) < 0:
        raise ShapeError(f"split: sizes {list(num_or_size_splits)} do not add up to {n}")
    return sizes

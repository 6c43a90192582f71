"""Turning what users pass to fit/evaluate/predict into checked lists of arrays and batches."""

import numpy as np

from ..backend import config as backend_config
from ..backend import native
from ..errors import ConfigError, DTypeError, ShapeError


def standardize(data, names, shapes, dtypes, what, model_name):
    """Array / list / dict -> list of arrays ordered like `names`, checked against
    `shapes` (batch dim first, None = any) and cast to `dtypes` where safe."""
    if data is None:
        return None
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        if missing:
            raise ConfigError(f"Model {model_name!r}: {what} dict is missing {missing}; it has "
                              f"{sorted(data)}, expected keys {names}")
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"Model {model_name!r}: {what} dict has unknown keys {unknown}; "
                              f"expected {names}")
        arrays = [data[n] for n in names]
    elif isinstance(data, (list, tuple)):
        if len(names) == 1 and len(data) != 1 and not _looks_like_list_of_arrays(data):
            arrays = [data]
        else:
            arrays = list(data)
    else:
        arrays = [data]
    if len(arrays) != len(names):
        raise ShapeError(f"Model {model_name!r} expects {len(names)} {what}(s) {names}, "
                         f"but got {len(arrays)} array(s)")
    out = []
    shapes = shapes or [None] * len(names)
    for arr, name, shape, dtype in zip(arrays, names, shapes, dtypes):
        out.append(_check_array(arr, name, shape, dtype, what, model_name))
    return out


def match_target_ranks(ys, output_shapes):
    """Keras 2: a target one rank short of an output whose last dim is 1 (a 1-D target for an
    `(N, 1)` prediction) becomes `(..., 1)` before any loss or metric sees it, so custom
    losses never broadcast `(N,)` against `(N, 1)` to `(N, N)`."""
    if ys is None:
        return None
    return [y.reshape(y.shape + (1,)) if shape is not None and y.ndim == len(shape) - 1
            and shape[-1] == 1 else y for y, shape in zip(ys, output_shapes)]


def _looks_like_list_of_arrays(data):
    return all(hasattr(d, "shape") and getattr(d, "ndim", 0) >= 1 for d in data)


def _check_array(arr, name, shape, dtype, what, model_name):
    if dtype is not None and np.dtype(dtype) == object:
        raise DTypeError(f"Model {model_name!r}: {what} {name!r} is an ONNX sequence, "
                         "optional or string input; call the model on it directly "
                         "(model(x)): fit/predict/evaluate batch numeric arrays only")
    a = np.asarray(arr.value if hasattr(arr, "value") else arr)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DTypeError(f"Model {model_name!r}: {what} {name!r} has dtype {a.dtype}; "
                         "expected a numeric array")
    want = np.dtype(dtype) if dtype is not None else None
    if want is not None and a.dtype != want:
        if np.issubdtype(want, np.integer) and np.issubdtype(a.dtype, np.floating):
            if not np.all(np.mod(a, 1) == 0):
                raise DTypeError(f"Model {model_name!r}: {what} {name!r} expects integer "
                                 f"values ({want}), got non-integer floats")
        a = a.astype(want)
    elif want is None and np.issubdtype(a.dtype, np.floating) and \
            a.dtype != np.dtype(backend_config.floatx()):
        a = a.astype(backend_config.floatx())
    if shape is not None:
        if a.ndim == len(shape) - 1 and shape[-1] == 1 and what == "target":
            a = a.reshape(a.shape + (1,))
        if a.ndim != len(shape):
            raise ShapeError(f"Model {model_name!r}: {what} {name!r} expects shape "
                             f"{_fmt(shape)} ({len(shape)} dims, batch first), got array of "
                             f"shape {a.shape}")
        for i, (d, e) in enumerate(zip(a.shape, shape)):
            if e is not None and d != e and i > 0:
                raise ShapeError(f"Model {model_name!r}: {what} {name!r} expects shape "
                                 f"{_fmt(shape)}, got {a.shape} (dimension {i} is {d}, "
                                 f"expected {e})")
    return a


def _fmt(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def check_lengths(*groups, names=("x", "y", "sample_weight")):
    lengths = {}
    for label, arrays in zip(names, groups):
        if arrays is None:
            continue
        for a in arrays:
            lengths.setdefault(label, set()).add(len(a))
    all_n = set().union(*lengths.values()) if lengths else set()
    if len(all_n) > 1:
        detail = ", ".join(f"{k}: {sorted(v)}" for k, v in lengths.items())
        raise ShapeError(f"Input arrays must all have the same number of samples; got {detail}")
    return all_n.pop() if all_n else 0


def slice_arrays(arrays, index):
    if arrays is None:
        return None
    if isinstance(index, np.ndarray):           # a shuffled batch: the rows copied in C
        return [native.take_rows(a, index) for a in arrays]
    return [a[index] for a in arrays]


def batch_indices(n, batch_size, shuffle, rng):
    """The index of each batch of an epoch over n samples, as Keras 2's fit draws them:
    shuffle=True: a permutation cut into batches (index arrays: each batch is a copy);
    False: consecutive slices (each batch a view, no copy); "batch": the whole batches'
    slices in a random order, the short last batch staying last (Keras's batch_shuffle,
    for HDF5 data that can only be read in increasing order)."""
    if shuffle and shuffle != "batch":
        order = rng.permutation(n)
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    batches = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if shuffle == "batch":
        whole = n // batch_size
        batches[:whole] = [batches[j] for j in rng.permutation(whole)]
    return batches


def class_weights_to_sample_weights(y, class_weight):
    """Keras: per-sample weight = class_weight[class of the sample]."""
    y = np.asarray(y)
    classes = y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else \
        np.round(y.reshape(len(y), -1)[:, 0]).astype(int)
    try:
        return np.asarray([class_weight[int(c)] for c in classes], dtype=backend_config.floatx())
    except KeyError as e:
        raise ConfigError(f"class_weight has no entry for class {e.args[0]}; it has "
                          f"{sorted(class_weight)}") from None


def whole_steps(steps):
    """A step count as Keras runs it (`while done < steps`): fractions round up, e.g. the
    documented `steps_per_epoch=len(x_train) / 32`; None stays None."""
    return None if steps is None else int(np.ceil(steps))


def is_generator_like(x):
    from ..utils.data_utils import Sequence
    return isinstance(x, Sequence) or (hasattr(x, "__next__") and not hasattr(x, "shape"))


def unpack_batch(item):
    """A generator item: (x,), (x, y) or (x, y, sample_weight)."""
    if isinstance(item, tuple):
        if len(item) == 1:
            return item[0], None, None
        if len(item) == 2:
            return item[0], item[1], None
        if len(item) == 3:
            return item
    return item, None, None

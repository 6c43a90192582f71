"""Training data for `modelkit train`: `.npz` files checked against the model before training.

A file holds ``x`` and ``y`` (one input, one output) or ``x_<input name>`` / ``y_<output
name>`` for several (a single ``x``/``y`` also fits a model with one of them). Every problem
(a missing array, a shape or dtype the model does not take, arrays of different lengths) is
one `ShapeError` naming the file, the array and what the model expects.
"""

from __future__ import annotations

import os

import numpy as np

from modelkit.errors import ModelLoadError, ShapeError

__all__ = ["read_arrays", "TrainingArrays"]


class TrainingArrays:
    """Inputs and targets of one `.npz` file, ordered like the model's inputs/outputs."""

    def __init__(self, path, x, y):
        self.path, self.x, self.y = path, x, y

    def __len__(self):
        return len(self.x[0])


def _load_npz(path):
    if not os.path.exists(path):
        raise ModelLoadError(f"Data file not found: {path}")
    if not path.lower().endswith(".npz"):
        raise ShapeError(f"Data file {path} must be an .npz archive holding arrays 'x' and 'y' "
                         f"(or 'x_<input>' / 'y_<output>')")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise ModelLoadError(f"Cannot read data file {path}: {' '.join(str(e).split())}") from None


def _pick(arrays, prefix, names, path, what):
    """The arrays for `names` (model inputs or outputs): `prefix` alone for one, else
    `prefix_<name>` for each."""
    keyed = [f"{prefix}_{n}" for n in names]
    if all(k in arrays for k in keyed):
        return keyed
    if len(names) == 1 and prefix in arrays:
        return [prefix]
    if len(names) == 1:
        missing, want = prefix, f"'{prefix}' (or '{keyed[0]}')"
    else:
        missing, want = next(k for k in keyed if k not in arrays), ", ".join(map(repr, keyed))
    raise ShapeError(f"{path}: no array {missing!r}: the model's {what} {names} need "
                     f"{want}; the file holds {sorted(arrays) or 'no arrays'}")


def _fits(shape, expected):
    if len(shape) != len(expected):
        return False
    return all(e is None or int(e) == int(s) for s, e in zip(shape[1:], expected[1:]))


def _shape_text(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def _check_numeric(path, key, arr, expected_dtype, what):
    if arr.dtype.kind not in "biuf":
        raise ShapeError(f"{path}: array {key!r} has dtype {arr.dtype}, but {what} expects "
                         f"numbers ({np.dtype(expected_dtype).name})")
    if np.dtype(expected_dtype).kind in "iu" and arr.dtype.kind == "f" \
            and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ShapeError(f"{path}: array {key!r} holds non-integer values, but {what} "
                         f"expects integers ({np.dtype(expected_dtype).name} indices)")


def _target_fits(y_shape, out_shape, sparse):
    if _fits(y_shape, out_shape):
        return True
    rest = tuple(out_shape[1:])
    if len(y_shape) == 1 and rest == (1,):                    # (N,) for a (None, 1) output
        return True
    if sparse:                                              # class indices for the last axis
        lead = rest[:-1]
        ys = tuple(y_shape[1:])
        return ys in (lead, lead + (1,)) and all(
            e is None or e == s for e, s in zip(lead, ys))
    return False


def read_arrays(path, model, sparse_outputs=()):
    """Read `path` (.npz) and check it against `model`; returns TrainingArrays.

    sparse_outputs: output names whose loss takes class indices (sparse crossentropy)."""
    arrays = _load_npz(path)
    in_names, out_names = list(model.input_names), list(model.output_names)
    x_keys = _pick(arrays, "x", in_names, path, "inputs")
    y_keys = _pick(arrays, "y", out_names, path, "outputs")
    xs, ys = [], []
    for key, name, t in zip(x_keys, in_names, model.inputs):
        arr = arrays[key]
        expected = tuple(t.shape)
        what = f"input {name!r}"
        _check_numeric(path, key, arr, t.dtype, what)
        if not _fits(arr.shape, expected):
            raise ShapeError(f"{path}: array {key!r} has shape {_shape_text(arr.shape)}, but "
                             f"{what} expects {_shape_text(expected)} (samples first)")
        xs.append(arr.astype(t.dtype, copy=False))
    for key, name, t in zip(y_keys, out_names, model.outputs):
        arr = arrays[key]
        expected = tuple(t.shape)
        what = f"output {name!r}"
        _check_numeric(path, key, arr, "float32", what)
        if not _target_fits(arr.shape, expected, name in sparse_outputs):
            hint = " (class indices need a sparse_categorical_crossentropy loss)" \
                if arr.ndim == 1 and len(expected) == 2 else ""
            raise ShapeError(f"{path}: array {key!r} has shape {_shape_text(arr.shape)}, but "
                             f"{what} gives {_shape_text(expected)}{hint}")
        ys.append(arr)
    lengths = {k: len(a) for k, a in zip(x_keys + y_keys, xs + ys)}
    if len(set(lengths.values())) > 1:
        first = x_keys[0]
        other = next(k for k, n in lengths.items() if n != lengths[first])
        raise ShapeError(f"{path}: array {first!r} has {lengths[first]} samples but {other!r} "
                         f"has {lengths[other]}; every array needs one row per sample")
    if lengths[x_keys[0]] == 0:
        raise ShapeError(f"{path}: array {x_keys[0]!r} holds no samples")
    unused = sorted(set(arrays) - set(x_keys) - set(y_keys))
    if unused:
        import warnings
        warnings.warn(f"{path}: arrays {unused} are not used (expected {x_keys + y_keys})",
                      RuntimeWarning, stacklevel=2)
    return TrainingArrays(path, xs, ys)

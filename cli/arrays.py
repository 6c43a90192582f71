"""Reading model inputs from and writing outputs to .npy / .npz / .json files or stdio.

Inputs (`read_inputs`):
* ``.npy``: one array, for a single-input model.
* ``.npz``: arrays named after the model's inputs, or (any names) one per input in order.
* ``.json`` or ``-`` (JSON on stdin): a list (the single input's array, or one array per
  input in order), ``{"inputs": <array or {name: array}>}`` (TF-Serving columnar),
  ``{"instances": [<row or {name: row}>, ...]}`` (TF-Serving rows), or ``{name: array}``.

Outputs (`write_outputs`): ``.npy`` (single-output models), ``.npz`` (by output name),
``.json`` or ``-`` (JSON on stdout): ``{"outputs": {name: nested list}}``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from modelkit.converters.atomic import atomic_write
from modelkit.errors import ModelLoadError, ShapeError

from .commands import UsageError

INPUT_KINDS = (".npy", ".npz", ".json")
OUTPUT_KINDS = (".npy", ".npz", ".json")


def _kind(path, kinds, what):
    if path == "-":
        return "-"
    ext = os.path.splitext(path)[1].lower()
    if ext not in kinds:
        raise UsageError(f"{what} {path!r} must end in {', '.join(kinds)} (or be '-' for "
                         f"JSON on {'stdin' if what == 'input file' else 'stdout'})")
    return ext


def check_input_path(path):
    return _kind(path, INPUT_KINDS, "input file")


def check_output_path(path):
    return _kind(path, OUTPUT_KINDS, "output file")


def _array(value, where):
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ShapeError(f"{where} is not a rectangular array: {' '.join(str(e).split())}") from None
    if arr.dtype == object:
        raise ShapeError(f"{where} is not a rectangular array of numbers")
    return arr


def inputs_from_json(obj, names, source="JSON input"):
    """Arrays for the model inputs `names` from parsed JSON `obj` (see module doc)."""
    n = len(names)
    if isinstance(obj, dict) and "instances" in obj:
        rows = obj["instances"]
        if not isinstance(rows, list) or not rows:
            raise ShapeError(f"{source}: 'instances' must be a non-empty list of rows")
        if all(isinstance(r, dict) for r in rows):
            out = {}
            for name in names:
                missing = [i for i, r in enumerate(rows) if name not in r]
                if missing:
                    raise ShapeError(f"{source}: instance {missing[0]} has no input {name!r} "
                                     f"(the model's inputs are {names})")
                out[name] = _array([r[name] for r in rows], f"{source}: input {name!r}")
            extra = sorted({k for r in rows for k in r} - set(names))
            if extra:
                raise ShapeError(f"{source}: unknown input {extra[0]!r} in 'instances' "
                                 f"(the model's inputs are {names})")
            return out
        if n != 1:
            raise ShapeError(f"{source}: the model has {n} inputs {names}, so each instance "
                             f"must be an object keyed by input name")
        return {names[0]: _array(rows, f"{source}: 'instances'")}
    if isinstance(obj, dict) and "inputs" in obj:
        obj = obj["inputs"]
        if not isinstance(obj, dict):
            if n == 1:
                return {names[0]: _array(obj, f"{source}: 'inputs'")}
            return _by_order(obj, names, source)
    if isinstance(obj, dict):
        unknown = [k for k in obj if k not in names]
        if unknown:
            raise ShapeError(f"{source}: unknown input {unknown[0]!r} (the model's inputs are "
                             f"{names}); use a list, {{\"inputs\": ...}} or {{\"instances\": ...}}")
        return {k: _array(v, f"{source}: input {k!r}") for k, v in obj.items()}
    if isinstance(obj, list):
        if n == 1:
            return {names[0]: _array(obj, source)}
        return _by_order(obj, names, source)
    raise ShapeError(f"{source} must be a list, {{\"inputs\": ...}} or {{\"instances\": [...]}}, "
                     f"got {type(obj).__name__}")


def _by_order(obj, names, source):
    if not isinstance(obj, list) or len(obj) != len(names):
        raise ShapeError(f"{source}: the model has {len(names)} inputs {names}; give a list of "
                         f"{len(names)} arrays in that order or an object keyed by input name")
    return {name: _array(v, f"{source}: input {name!r}") for name, v in zip(names, obj)}


def read_inputs(path, names, stdin=None):
    """Arrays for the model inputs `names` read from `path` ('-' for JSON on stdin)."""
    kind = check_input_path(path)
    if kind == "-":
        text = (stdin or sys.stdin).read()
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ShapeError(f"stdin is not valid JSON: {e}") from None
        return inputs_from_json(obj, names, "JSON on stdin")
    if not os.path.exists(path):
        raise ModelLoadError(f"Input file not found: {path}")
    if kind == ".json":
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelLoadError(f"Input file {path} is not valid JSON: {e}") from None
        return inputs_from_json(obj, names, f"input file {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ModelLoadError(f"Cannot read {path}: {e}") from None
    except (OSError, EOFError) as e:
        raise ModelLoadError(f"Cannot read {path}: not a valid {kind} file ({e})") from None
    if kind == ".npy":
        if not isinstance(loaded, np.ndarray):
            raise ModelLoadError(f"Cannot read {path}: not a .npy array")
        if len(names) != 1:
            raise ShapeError(f"The model has {len(names)} inputs {names}; a .npy file holds one "
                             f"array, so use .npz (arrays named after the inputs) or .json")
        return {names[0]: loaded}
    with loaded as z:
        files = list(z.files)
        try:
            if set(files) == set(names):
                return {name: z[name] for name in names}
            if len(files) == len(names):
                return {name: z[f] for name, f in zip(names, files)}
        except ValueError as e:
            raise ModelLoadError(f"Cannot read {path}: {e}") from None
    raise ShapeError(f"{path} holds arrays {files} but the model's inputs are {names}; name the "
                     f"arrays after the inputs or store one per input, in order")


def outputs_to_json(outputs):
    return {"outputs": {name: np.asarray(v).tolist() for name, v in outputs.items()}}


def write_outputs(path, outputs, stdout=None):
    """Write {name: array} to `path` ('-' for JSON on stdout)."""
    kind = check_output_path(path)
    if kind == "-":
        out = stdout or sys.stdout
        json.dump(outputs_to_json(outputs), out)
        out.write("\n")
        out.flush()
        return
    if kind == ".npy" and len(outputs) != 1:
        raise UsageError(f"The model has {len(outputs)} outputs {list(outputs)}; a .npy file "
                         f"holds one array, so write .npz or .json")

    def write(f):
        if kind == ".npy":
            np.save(f, next(iter(outputs.values())), allow_pickle=False)
        elif kind == ".npz":
            np.savez(f, **outputs)
        else:
            f.write(json.dumps(outputs_to_json(outputs)).encode("utf-8"))
    with atomic_write(path, mode="wb") as f:
        write(f)

"""TensorFlow Serving REST `:predict`: row ("instances") and columnar ("inputs") formats.

Row format: ``{"instances": [row, ...]}``, a row per example, or for models with several
inputs an object per example keyed by input name; answered ``{"predictions": [...]}``
(an object per example keyed by output name when the model has several outputs).
Columnar format: ``{"inputs": tensor}`` for one input or ``{"inputs": {name: tensor}}``;
answered ``{"outputs": tensor}`` or ``{"outputs": {name: tensor}}``.
Unlike the v2 API, JSON numbers are cast to the model's input type (whole numbers only
for integer inputs). String tensors accept ``{"b64": "..."}``; string outputs whose name
ends in ``_bytes`` are answered base64-encoded, as TF Serving does.
"""

from __future__ import annotations

import base64

import numpy as np

from .errors import RequestError, brief
from .jsonio import json_values, load_object
from .tensors import array_from_json, check_against_model

SIGNATURE = "serving_default"


def decode(body, model):
    """(feeds, row_format) from a `:predict` request body."""
    obj = load_object(body)
    sig = obj.get("signature_name", SIGNATURE)
    if sig not in (SIGNATURE, ""):
        raise RequestError(f"signature_name {brief(sig)} not found; model {model.name!r} has "
                           f"only {SIGNATURE!r}")
    has_rows, has_cols = "instances" in obj, "inputs" in obj
    if has_rows and has_cols:
        raise RequestError("request has both 'instances' and 'inputs'; a request has one "
                           "of them, not both")
    if not has_rows and not has_cols:
        raise RequestError("request has neither 'instances' (row format) nor 'inputs' "
                           "(columnar format)")
    names = list(model.input_specs)
    if has_rows:
        columns = _rows_to_columns(obj["instances"], names)
    else:
        columns = _columns(obj["inputs"], names)
    feeds = {}
    for name in names:
        spec = model.input_specs[name]
        where = f"input {name!r}"
        arr = array_from_json(columns[name], spec.dtype if spec.dtype is not None
                              else np.dtype(np.float32), where, cast=True)
        check_against_model(arr, spec, where)
        feeds[name] = arr
    return feeds, has_rows


def _rows_to_columns(instances, names):
    if not isinstance(instances, list) or not instances:
        raise RequestError("'instances' must be a non-empty list (one item per example)")
    if all(isinstance(row, dict) for row in instances):
        columns = {n: [] for n in names}
        for i, row in enumerate(instances):
            for key in row:
                if key not in columns:
                    raise RequestError(f"instances[{i}] has {brief(key)}, which is not an input; "
                                       f"the model's inputs are {names}")
            for n in names:
                if n not in row:
                    raise RequestError(f"instances[{i}] has no input {n!r}; the model's "
                                       f"inputs are {names}")
                columns[n].append(row[n])
        return columns
    if any(isinstance(row, dict) for row in instances):
        raise RequestError("'instances' mixes objects and plain values; use one form")
    if len(names) != 1:
        raise RequestError(f"the model has inputs {names}; each instance must be an object "
                           f"keyed by input name")
    return {names[0]: instances}


def _columns(inputs, names):
    if isinstance(inputs, dict):
        for key in inputs:
            if key not in names:
                raise RequestError(f"'inputs' has {brief(key)}, which is not an input; the "
                                   f"model's inputs are {names}")
        missing = [n for n in names if n not in inputs]
        if missing:
            raise RequestError(f"'inputs' has no {missing[0]!r}; the model's inputs are "
                               f"{names}")
        return inputs
    if len(names) != 1:
        raise RequestError(f"the model has inputs {names}; 'inputs' must be an object "
                           f"keyed by input name")
    return {names[0]: inputs}


def encode(model, results, row_format):
    """The response object for `results` {output name: array}."""
    names = model.output_names
    if row_format:
        if len(names) == 1:
            return {"predictions": _json(names[0], results[names[0]])}
        n = len(results[names[0]]) if np.ndim(results[names[0]]) else -1
        cols = {k: _json(k, results[k]) for k in names}
        if all(np.ndim(results[k]) and len(results[k]) == n for k in names):
            return {"predictions": [{k: cols[k][i] for k in names} for i in range(n)]}
        return {"predictions": cols}
    if len(names) == 1:
        return {"outputs": _json(names[0], results[names[0]])}
    return {"outputs": {k: _json(k, results[k]) for k in names}}


def _json(name, arr):
    if arr.dtype.kind != "O" or not name.endswith("_bytes"):
        return json_values(arr)
    flat = [{"b64": base64.b64encode(x if isinstance(x, bytes) else str(x).encode()).decode()}
            for x in arr.reshape(-1)]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape).tolist()

"""Which dataset columns feed which model input, and how predictions are named.

`plan_inputs` turns the user's `input_columns` into a plan {model input: column or tuple of
columns}; a tuple is stacked along a new last axis (tabular feature columns -> one (n, k)
matrix). `feeds_from_batch` applies a plan to one batch {column: array}.

`input_columns`:
* None: the columns named after the model's inputs; for a one-input model, the dataset's
  only column when it has just one (``data`` for numpy shards and `ray.data.from_numpy`).
* a column name (one-input models).
* a list of names: for a one-input model, feature columns stacked in that order; for a
  model with several inputs, one column per input, in input order.
* a dict {input name: column name or list of names}.
"""

from __future__ import annotations

import numpy as np

from modelkit.errors import ConfigError, ShapeError

# Columns the file engine adds to tag rows; never model inputs.
SHARD_COLUMN = "__shard"
ROW_COLUMN = "__row"
TAG_COLUMNS = (SHARD_COLUMN, ROW_COLUMN)


def _names(value, where):
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where} must be a column name or a non-empty list of column names, "
                      f"got {value!r}")


def plan_inputs(input_names, columns, input_columns=None, where="the dataset"):
    """{model input: column | (columns...)} checked against the available `columns`."""
    input_names = list(input_names)
    columns = [c for c in columns if c not in TAG_COLUMNS]
    if input_columns is None:
        if all(n in columns for n in input_names):
            plan = {n: n for n in input_names}
        elif len(input_names) == 1 and len(columns) == 1:
            plan = {input_names[0]: columns[0]}
        else:
            missing = [n for n in input_names if n not in columns]
            raise ConfigError(
                f"{where} has no column for the model input(s) {missing} (columns: {columns}); "
                f"name the columns after the inputs or pass input_columns (CLI: "
                f"--input-columns; a list of feature columns to stack, or one per input)")
    elif isinstance(input_columns, dict):
        unknown = [k for k in input_columns if k not in input_names]
        missing = [n for n in input_names if n not in input_columns]
        if unknown or missing:
            raise ConfigError(f"input_columns keys must be the model's inputs {input_names}; "
                              f"unknown {unknown}, missing {missing}")
        plan = {n: _names(input_columns[n], f"input_columns[{n!r}]") for n in input_names}
    elif isinstance(input_columns, str):
        if len(input_names) != 1:
            raise ConfigError(f"the model has {len(input_names)} inputs {input_names}; give "
                              f"input_columns as a list (one column per input) or a dict")
        plan = {input_names[0]: input_columns}
    else:
        cols = _names(input_columns, "input_columns")
        cols = (cols,) if isinstance(cols, str) else cols
        if len(input_names) == 1:
            plan = {input_names[0]: cols[0] if len(cols) == 1 else cols}
        elif len(cols) == len(input_names):
            plan = dict(zip(input_names, cols))
        else:
            raise ConfigError(f"the model has {len(input_names)} inputs {input_names} but "
                              f"input_columns lists {len(cols)} columns {list(cols)}")
    used = [c for v in plan.values() for c in ((v,) if isinstance(v, str) else v)]
    absent = [c for c in used if c not in columns]
    if absent:
        raise ConfigError(f"{where} has no column {absent[0]!r} (columns: {columns})")
    return plan


def plan_columns(plan):
    """Every column a plan reads, in first-use order."""
    out = []
    for v in plan.values():
        for c in ((v,) if isinstance(v, str) else v):
            if c not in out:
                out.append(c)
    return out


def feeds_from_batch(batch, plan):
    """{model input: array} from one batch {column: array}."""
    feeds = {}
    for name, cols in plan.items():
        if isinstance(cols, str):
            feeds[name] = np.asarray(batch[cols])
            continue
        parts = [np.asarray(batch[c]) for c in cols]
        if any(p.ndim != 1 for p in parts):
            bad = next(c for c, p in zip(cols, parts) if p.ndim != 1)
            raise ShapeError(f"column {bad!r} holds arrays, not one number per row, so it "
                             f"cannot be stacked with {list(cols)} into input {name!r}")
        feeds[name] = np.stack(parts, axis=-1)
    return feeds


def output_columns(output_names, prefix="pred"):
    """Prediction column names: `prefix` for a one-output model, else `prefix_<output>`."""
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"output_prefix must be a non-empty string, got {prefix!r}")
    if len(output_names) == 1:
        return [prefix]
    return [f"{prefix}_{n}" for n in output_names]

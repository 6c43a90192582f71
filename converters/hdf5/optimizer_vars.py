"""Optimizer state in the `optimizer/vars/<i>` group of a `.keras` archive's model.weights.h5.

Keras 3 (and tf-keras's `.keras` writer) store the optimizer's variables by position:
`0` the iteration count, then (Keras 3 only) `1` the learning rate, then the slots. Slots are
built in groups (`add_optimizer_variables(vars, ["momentum", "velocity"])`), each group
interleaved per trainable variable in `model.trainable_variables` order: Adam is
`m(w0), v(w0), m(w1), v(w1), ...`, RMSprop `rms(w0), rms(w1), ..., momentum(w0), ...`.
The IR keeps `{"iterations": n, "weights": {"<slot>/<weight key>": array}}` with modelkit's
slot names.
"""

from __future__ import annotations

import warnings

import numpy as np

from modelkit.keras_config import trainable_weights_in_order

# optimizer class (lower case) -> config -> slot groups (modelkit slot names), in build order
_SLOT_GROUPS = {
    "adam": lambda c: [("m", "v")] + ([("vhat",)] if c.get("amsgrad") else []),
    "adamax": lambda c: [("m", "v")],
    "sgd": lambda c: [("momentum",)] if c.get("momentum") else [],
    "rmsprop": lambda c: ([("rms",)] + ([("momentum",)] if c.get("momentum") else [])
                          + ([("mg",)] if c.get("centered") else [])),
    "adagrad": lambda c: [("accumulator",)],
    "adadelta": lambda c: [("accum_grad", "accum_var")],
}


def _layout(training, graph):
    """[(slot name, graph, weight key)] in file order after the scalars, or None when the
    optimizer's layout is not known."""
    opt = training.optimizer if training is not None else None
    if isinstance(opt, str):
        opt = {"class_name": opt, "config": {}}
    if not isinstance(opt, dict):
        return None
    groups = _SLOT_GROUPS.get(str(opt.get("class_name", "")).lower())
    if groups is None:
        return None
    trainable = trainable_weights_in_order(graph)
    return [(slot, g, key) for names in groups(opt.get("config") or {})
            for g, key in trainable for slot in names]


def read_optimizer_vars(group, graph, where):
    """The IR optimizer state from an `optimizer/vars` group, or None (with a warning, as
    Keras does) when it does not match the model's optimizer: the model still loads."""
    arrays = [np.asarray(group[str(i)][()]) for i in range(len(group)) if str(i) in group]
    if not arrays or len(arrays) != len(group):
        return None
    layout = _layout(graph.training, graph)
    scalars = len(arrays) - len(layout) if layout is not None else -1
    problem = None
    if layout is None:
        problem = "modelkit does not know this optimizer's variable layout"
    elif scalars not in (1, 2):
        problem = (f"the file stores {len(arrays)} optimizer variables, the model's optimizer "
                   f"has {len(layout)} slots plus the iteration count")
    else:
        for (slot, g, key), arr in zip(layout, arrays[scalars:]):
            if arr.shape != np.shape(g.weights[key]):
                problem = (f"optimizer slot {slot!r} of {key!r} has shape {arr.shape}, the "
                           f"weight {np.shape(g.weights[key])}")
                break
    if problem is None and arrays[0].size != 1:
        problem = f"the iteration count has shape {arrays[0].shape}"
    if problem:
        warnings.warn(f"{where}: the optimizer state was not restored ({problem}); the "
                      f"optimizer starts fresh", stacklevel=4)
        return None
    if scalars == 2 and arrays[1].size == 1:   # Keras 3's current learning rate
        opt = graph.training.optimizer
        if isinstance(opt, dict) and isinstance((opt.get("config") or {}).get(
                "learning_rate", 0.0), (int, float)):
            opt.setdefault("config", {})["learning_rate"] = float(arrays[1].reshape(()))
    return {"iterations": int(arrays[0].reshape(())),
            "weights": {f"{slot}/{key}": arr
                        for (slot, _, key), arr in zip(layout, arrays[scalars:])}}


def write_optimizer_vars(f, graph):
    """Write the graph's optimizer state as Keras 3 does (`optimizer/vars/0` iteration,
    `1` learning rate, then the slots), when every slot is known; else write nothing (Keras
    then starts its optimizer fresh)."""
    training = graph.training
    state = training.optimizer_state if training is not None else None
    layout = _layout(training, graph)
    if not state or layout is None:
        return
    weights = state.get("weights") or {}
    if any(f"{slot}/{key}" not in weights for slot, _, key in layout):
        return
    opt = training.optimizer if isinstance(training.optimizer, dict) else {}
    lr = (opt.get("config") or {}).get("learning_rate", 0.001)
    group = f.require_group("optimizer").require_group("vars")
    values = [np.asarray(int(state.get("iterations") or 0), dtype=np.int64)]
    if isinstance(lr, (int, float)):      # a schedule is no variable
        values.append(np.asarray(lr, dtype=np.float32))
    values += [np.asarray(weights[f"{slot}/{key}"], dtype=np.float32) for slot, _, key in layout]
    for i, v in enumerate(values):
        group.create_dataset(str(i), data=v)

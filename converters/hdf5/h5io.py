"""The Keras legacy HDF5 layout: full-model files and weights-only files.

Layout written (what tf-keras 2.x writes; Keras 3's legacy loader reads it too)::

    /  attrs keras_version, backend, model_config (JSON), training_config (JSON, if compiled)
    /model_weights            attrs layer_names, backend, keras_version
        /<layer>              attrs weight_names = ["<layer>/kernel:0", ...] (Keras 2 spelling)
            /<layer>/kernel:0 dataset (the slashes make nested groups)
        /top_level_model_weights   (empty, as Keras writes it)
    /optimizer_weights        attrs weight_names = ["iteration:0", "Adam/m/dense/kernel:0", ...]

A nested model is one layer group holding all of its weights (`vision/conv2d/kernel:0`,
weight name `conv2d/kernel:0`), trainable ones first, as Keras writes it.

Optimizer state: the IR keeps `{"iterations": n, "weights": {"<slot>/<weight key>": array}}`
(e.g. `"m/dense/kernel"`); the file spells it like tf-keras >= 2.11 / Keras 3 optimizers,
`"<Optimizer>/<slot>/<weight key>:0"` plus `"iteration:0"`. Reading also understands legacy
tf-keras names (`training/Adam/dense/kernel/m:0`, `Adam/iter:0`) and Keras 3 paths
(`adam/dense_kernel_momentum`, `adam/iteration`).
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from modelkit.errors import IRError, ModelkitError, ModelLoadError, UnsupportedError
from modelkit.ir import NESTED_MODEL_OPS, TrainingConfig, json_default
from modelkit.converters.atomic import atomic_write

from modelkit.keras_config import (BACKEND, KERAS2_VERSION, KERAS3_VERSION, graph_to_keras_config,
                                   keras3_subobject, keras_config_to_graph, keras_weight_order,
                                   non_trainable_variable, snake_case, strip_weight_suffix,
                                   variable_names)

from ..file_checks import require_regular_file
from ._common import ConfigProblem, read_name_list, to_str, write_name_list
from .h5guard import inspect_file

__all__ = ["save_graph", "load_graph", "save_weights", "load_weights_into"]


def _h5py():
    import h5py
    return h5py


# ---------------------------------------------------------------------------------------
# error context

class _Ctx:
    """Names the piece being read, so any failure becomes one ModelLoadError."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.piece = "file"
        self.budget = None        # set by `_open` from the structure check (h5guard)

    def fail(self, msg):
        raise ModelLoadError(f"{self.path}: {msg}")

    def wrap(self, e):
        if isinstance(e, ModelLoadError):
            msg = str(e)
            if msg.startswith(self.path):
                return e
            return ModelLoadError(f"{self.path}: {self.piece}: {msg}")
        if isinstance(e, (IRError, UnsupportedError, ModelkitError)):
            return ModelLoadError(f"{self.path}: {self.piece}: {e}")
        return ModelLoadError(f"{self.path}: cannot read {self.piece}: {type(e).__name__}: {e}")


def _open(path, ctx):
    """Open `path` (a regular file) or a file object read-only, after checking its structure."""
    h5py = _h5py()
    if isinstance(path, (str, bytes, os.PathLike)):
        require_regular_file(path, "HDF5 file")
    try:
        if isinstance(path, (str, bytes, os.PathLike)) and not h5py.is_hdf5(path):
            ctx.fail("not an HDF5 file")
        f = h5py.File(path, "r")
    except ModelLoadError:
        raise
    except Exception as e:        # truncated / corrupt superblock
        ctx.fail(f"cannot open as HDF5 ({type(e).__name__}: {e})")
    try:
        ctx.piece = "file structure"
        ctx.budget = inspect_file(f, ctx.path)
    except BaseException as e:
        f.close()
        raise ctx.wrap(e) from None
    return f


def _read_dataset(group, name, ctx, where):
    h5py = _h5py()
    ctx.piece = where
    link = None
    try:
        parent, _, leaf = name.rpartition("/")
        g = group[parent] if parent else group
        link = g.get(leaf, getlink=True) if isinstance(g, h5py.Group) else None
    except Exception:
        link = None
    if link is None:
        ctx.fail(f"{where}: dataset {name!r} is missing from group {group.name!r}")
    if isinstance(link, h5py.ExternalLink):     # inspect_file refused these already
        ctx.fail(f"{where}: {name!r} is an external link; not allowed")
    obj = g[leaf]
    if not isinstance(obj, h5py.Dataset):
        ctx.fail(f"{where}: {name!r} in {group.name!r} is a group, not a dataset")
    if obj.is_virtual or obj.external:
        ctx.fail(f"{where}: {name!r} uses external or virtual storage; not allowed")
    if obj.dtype.kind not in "biuf":
        ctx.fail(f"{where}: {name!r} has dtype {obj.dtype}, not a numeric array")
    nbytes = int(np.prod(obj.shape, dtype=object) if obj.shape else 1) * obj.dtype.itemsize
    ctx.budget.charge(nbytes, f"{where} ({name!r}, shape {obj.shape})")
    arr = obj[()]
    arr = np.asarray(arr)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _read_json_attr(f, key, ctx):
    ctx.piece = f"attribute {key!r}"
    try:
        text = to_str(f.attrs[key])
    except TypeError as e:
        ctx.fail(f"attribute {key!r} is not a string: {e}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        ctx.fail(f"attribute {key!r} is not valid JSON: {e}")


# ---------------------------------------------------------------------------------------
# weights groups (shared by full-model files and weights-only files)

def _layer_weight_list(graph, node):
    """[(stored_name, array)] of one layer, Keras 2 spelling."""
    out = []
    for g, key in keras_weight_order(node, graph):
        out.append((key + ":0", g.weights[key]))
    return out


def _write_weights_group(group, graph, keras_version):
    layer_names = [n.name for n in graph.nodes]
    write_name_list(group, "layer_names", layer_names)
    group.attrs["backend"] = BACKEND
    group.attrs["keras_version"] = keras_version
    for node in sorted(graph.nodes, key=lambda n: n.name):
        g = group.create_group(node.name)
        items = _layer_weight_list(graph, node)
        write_name_list(g, "weight_names", [name for name, _ in items])
        for name, arr in items:
            arr = np.asarray(arr)
            if arr.shape == ():
                g.create_dataset(name, data=arr)
            else:
                g.create_dataset(name, data=np.ascontiguousarray(arr))
    if "top_level_model_weights" not in group:
        tl = group.create_group("top_level_model_weights")
        write_name_list(tl, "weight_names", [])


def _read_weights_group(group, ctx, known_layers=None):
    """{layer_name: [(stored_name, array)]} in `layer_names` order, plus that order.

    With `known_layers` (the config's layer names), a listed layer the config does not have
    is refused before any data is read if it stores weights. Names listed twice are refused.
    """
    ctx.piece = f"attribute layer_names of {group.name!r}"
    try:
        layer_names = read_name_list(group, "layer_names")
    except KeyError:
        ctx.fail(f"group {group.name!r} has no layer_names attribute")
    except TypeError as e:
        ctx.fail(f"layer_names of {group.name!r} is malformed: {e}")
    _refuse_repeats(layer_names, f"layer_names of {group.name!r}", ctx)
    listed = {}
    for lname in layer_names:
        ctx.piece = f"layer {lname!r}"
        if lname not in group:
            ctx.fail(f"layer {lname!r} is listed in layer_names but its weight group is missing")
        g = group[lname]
        if not isinstance(g, _h5py().Group):
            ctx.fail(f"layer {lname!r}: expected a group, found a dataset")
        try:
            names = read_name_list(g, "weight_names")
        except KeyError:
            ctx.fail(f"layer {lname!r}: weight group has no weight_names attribute")
        except TypeError as e:
            ctx.fail(f"layer {lname!r}: weight_names is malformed: {e}")
        _refuse_repeats(names, f"weight_names of layer {lname!r}", ctx)
        listed[lname] = (g, names)
    if known_layers is not None:
        extra = [ln for ln, (_, names) in listed.items() if names and ln not in known_layers]
        if extra:
            ctx.fail(f"{group.name!r} has weights for layers the config does not have: {extra}")
    out = {}
    for lname, (g, names) in listed.items():
        ctx.piece = f"layer {lname!r}"
        out[lname] = [(w, _read_dataset(g, w, ctx, f"layer {lname!r} weight {w!r}"))
                      for w in names]
    return layer_names, out


def _refuse_repeats(names, where, ctx):
    seen = set()
    for n in names:
        if n in seen:
            ctx.fail(f"{where} lists {n!r} more than once")
        seen.add(n)


# ---------------------------------------------------------------------------------------
# Keras 3 "new" weights layout (`*.weights.h5`, `model.weights.h5` inside .keras)

_CHILD_ORDER = ("cell", "forward_layer", "backward_layer", "layer",
                "query_dense", "key_dense", "value_dense", "output_dense")


_MAX_LAYER_VARS = 1024


def _collect_vars(group, ctx, where, depth=0):
    """[(vars group, key, label)] of a Keras 3 layer group and its sub-objects, in Keras
    order; nothing is read yet."""
    h5py = _h5py()
    if depth > 32:
        ctx.fail(f"{where}: groups nest too deeply")
    found = []
    if "vars" in group and isinstance(group["vars"], h5py.Group):
        v = group["vars"]
        keys = list(v.keys())
        try:
            keys.sort(key=int)
        except ValueError:
            ctx.fail(f"{where}: variable names {keys[:10]} are not numbers")
        found += [(v, k, f"{where}/vars/{k}") for k in keys]
        if len(found) > _MAX_LAYER_VARS:
            ctx.fail(f"{where}: more than {_MAX_LAYER_VARS} variables for one layer")
    children = [k for k in group.keys() if k != "vars" and isinstance(group[k], h5py.Group)]
    children.sort(key=lambda k: (_CHILD_ORDER.index(k) if k in _CHILD_ORDER else len(_CHILD_ORDER), k))
    for k in children:
        found += _collect_vars(group[k], ctx, f"{where}/{k}", depth + 1)
        if len(found) > _MAX_LAYER_VARS:
            ctx.fail(f"{where}: more than {_MAX_LAYER_VARS} variables for one layer")
    return found


def _new_layout_paths(graph, prefix="layers"):
    """{node_name: h5 path} the way Keras 3 names saveables (snake_case class name, de-duplicated)."""
    used, out = {}, {}
    for s in graph.inputs:
        used["input_layer"] = used.get("input_layer", -1) + 1
    for n in graph.nodes:
        base = snake_case(n.op)
        if n.op in NESTED_MODEL_OPS:
            base = "sequential" if n.op == "Sequential" else "functional"
        if base in used:
            used[base] += 1
            name = f"{base}_{used[base]}"
        else:
            used[base] = 0
            name = base
        out[n.name] = f"{prefix}/{name}"
    return out


def _wrapped_model_config(node):
    inner = node.config.get("layer")
    if isinstance(inner, dict) and inner.get("class_name") in NESTED_MODEL_OPS:
        return inner
    return None


def _nested_items(group, subgraph, ctx):
    """[(`<layer>/<var>`, array)] of a nested model, in Keras's order: all trainable
    weights, then the rest."""
    sub = _read_new_layout(group, subgraph, ctx)
    frozen = {n.name for n in subgraph.nodes if n.config.get("trainable") is False}
    items = [(w, a) for sname, entries in sub.items() for w, a in entries]
    items.sort(key=lambda wa: non_trainable_variable(wa[0]) or wa[0].split("/", 1)[0] in frozen)
    return items


def _write_new_layout(f, graph, top=True):
    """Write `graph`'s weights in the Keras 3 layout (`layers/<x>/vars/<i>`, with the
    sub-objects Keras 3 keeps them under: an RNN's `cell`, a wrapper's inner layer, ...).
    The model's own (empty) `vars` group is written too: tf-keras's loader opens it."""
    if top:
        f.require_group("vars")
    paths = _new_layout_paths(graph)
    for node in graph.nodes:
        if node.subgraph is not None:       # a nested model, or a wrapper's (under /layer)
            where = paths[node.name] if node.op in NESTED_MODEL_OPS else paths[node.name] + "/layer"
            _write_new_layout(f.require_group(where), node.subgraph, top=False)
            continue
        items = keras_weight_order(node, graph)
        if not items:
            continue
        counts = {}
        for sg, key in items:
            sub = keras3_subobject(node.op, key.split("/", 1)[-1], node.config)
            where = paths[node.name] + (f"/{sub}" if sub else "") + "/vars"
            i = counts[where] = counts.get(where, -1) + 1
            f.require_group(where).create_dataset(str(i),
                                                  data=np.asarray(sg.weights[key], order="C"))


def _by_subobject(f, path, node, names, found):
    """`found` in the order of `names` where each name's sub-object path is in the file (the
    groups' alphabetical order is not Keras's order for a list of cells); else as found."""
    if names is None or len(names) != len(found):
        return found
    counts, ordered = {}, []
    for name in names:
        sub = keras3_subobject(node.op, name, node.config)
        where = path + (f"/{sub}" if sub else "") + "/vars"
        i = counts[where] = counts.get(where, -1) + 1
        if where not in f or str(i) not in f[where]:
            return found
        ordered.append((f[where], str(i), f"{where}/{i}"))
    return ordered


def _read_new_layout(f, graph, ctx):
    """{node_name: [(stored_name, array)]} from the Keras 3 layout, names from the op table."""
    out = {}
    paths = _new_layout_paths(graph)
    for node in graph.nodes:
        path = paths[node.name]
        if path not in f:
            alt = f"layers/{node.name}"
            if alt in f:
                path = alt
            else:
                continue
        ctx.piece = f"layer {node.name!r} ({path})"
        inner = _wrapped_model_config(node)
        wrapped = inner is not None and f"{path}/layer" in f
        if node.subgraph is not None or wrapped:
            # a nested model, or a wrapper of one (its model sits under `<path>/layer`)
            sub = node.subgraph if node.subgraph is not None else \
                keras_config_to_graph(inner, keras_version="3")
            items = _nested_items(f[f"{path}/layer"] if wrapped else f[path], sub, ctx)
            if items:
                out[node.name] = items
            continue
        found = _collect_vars(f[path], ctx, path)
        if not found:
            continue
        names = variable_names(node.op, node.config)
        if names is not None and len(found) > len(names):
            ctx.fail(f"layer {node.name!r} ({node.op}) has {len(names)} variables, the file "
                     f"stores {len(found)} under {path!r}")
        found = _by_subobject(f, path, node, names, found)
        arrays = [_read_dataset(g, k, ctx, label) for g, k, label in found]
        if names is None or len(names) != len(arrays):
            names = [f"var_{i}" for i in range(len(arrays))]
        out[node.name] = [(f"{node.name}/{nm}", a) for nm, a in zip(names, arrays)]
    return out


# ---------------------------------------------------------------------------------------
# optimizer state

def _optimizer_name(training):
    opt = (training.optimizer or {}) if training else {}
    cfg = opt.get("config") or {}
    name = cfg.get("name") or opt.get("class_name") or "optimizer"
    return str(name).split(">")[-1]


def _write_optimizer_weights(f, graph):
    state = graph.training.optimizer_state if graph.training else None
    if not state:
        return
    g = f.create_group("optimizer_weights")
    prefix = _optimizer_name(graph.training)
    names, arrays = [], []
    if state.get("iterations") is not None:
        names.append("iteration:0")
        arrays.append(np.asarray(int(state["iterations"]), dtype=np.int64))
    for slot, arr in (state.get("weights") or {}).items():
        names.append(f"{prefix}/{slot}:0")
        arrays.append(np.asarray(arr))
    write_name_list(g, "weight_names", names)
    for n, a in zip(names, arrays):
        g.create_dataset(n, data=a if a.shape == () else np.ascontiguousarray(a))


def _map_optimizer_name(raw, opt_name, weight_keys):
    """A stored optimizer variable name -> ("iterations", None) or ("slot", ir_name)."""
    w = strip_weight_suffix(raw)
    parts = w.split("/")
    if parts[-1] in ("iter", "iteration", "iterations") and len(parts) <= 3:
        return "iterations", None
    if parts[0] == "training":
        parts = parts[1:]
    if parts and opt_name and parts[0].lower() == opt_name.lower():
        parts = parts[1:]
    rest = "/".join(parts)
    if len(parts) >= 2 and "/".join(parts[1:]) in weight_keys:      # m/dense/kernel
        return "slot", rest
    if len(parts) >= 2 and "/".join(parts[:-1]) in weight_keys:     # dense/kernel/m (legacy)
        return "slot", f"{parts[-1]}/{'/'.join(parts[:-1])}"
    if len(parts) == 1:            # Keras 3: [<model>_]dense_kernel_momentum
        flat = {k.replace("/", "_"): k for k in weight_keys}
        for fk, key in sorted(flat.items(), key=lambda kv: -len(kv[0])):
            i = rest.find(fk + "_")
            while i >= 0:
                if i == 0 or rest[i - 1] == "_":
                    return "slot", f"{rest[i + len(fk) + 1:]}/{key}"
                i = rest.find(fk + "_", i + 1)
    return "slot", rest


def _all_weight_keys(graph):
    keys = set(graph.weights)
    for n in graph.nodes:
        if n.subgraph is not None:
            keys |= _all_weight_keys(n.subgraph)
    return keys


def _read_optimizer_weights(f, graph, ctx):
    g = f["optimizer_weights"]
    ctx.piece = "optimizer_weights"
    try:
        names = read_name_list(g, "weight_names")
    except KeyError:
        ctx.fail("optimizer_weights has no weight_names attribute")
    opt_name = _optimizer_name(graph.training)
    keys = _all_weight_keys(graph)
    state = {"iterations": None, "weights": {}}
    for raw in names:
        arr = _read_dataset(g, raw, ctx, f"optimizer weight {raw!r}")
        if strip_weight_suffix(raw).rsplit("/", 1)[-1] == "learning_rate":
            continue               # Keras 3 keeps it as a variable; it is in the config
        kind, name = _map_optimizer_name(raw, opt_name, keys)
        if kind == "iterations" and arr.size == 1:
            state["iterations"] = int(arr.reshape(()))
        else:
            state["weights"][name] = arr
    return state


# ---------------------------------------------------------------------------------------
# training config

# Short loss names tf-keras accepts but Keras 3 cannot deserialize from a training_config;
# the long names work in both.
_LOSS_LONG_NAMES = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
                    "mape": "mean_absolute_percentage_error",
                    "msle": "mean_squared_logarithmic_error"}


def _long_loss_names(loss):
    if isinstance(loss, str):
        return _LOSS_LONG_NAMES.get(loss, loss)
    if isinstance(loss, list):
        return [_long_loss_names(v) for v in loss]
    if isinstance(loss, dict) and "class_name" not in loss:
        return {k: _long_loss_names(v) for k, v in loss.items()}
    return loss


def _training_to_json(training, keras3=False):
    opt = training.optimizer
    if isinstance(opt, dict):
        opt = {"class_name": str(opt.get("class_name", "")).split(">")[-1],
               "config": opt.get("config") or {}}
    elif isinstance(opt, str):
        opt = {"class_name": opt, "config": {}}
    return {"loss": _long_loss_names(training.loss), "metrics": training.metrics,
            "weighted_metrics": None,
            "loss_weights": training.loss_weights, "optimizer_config": opt}


def _clean_obj(o):
    if isinstance(o, list):
        return [_clean_obj(v) for v in o]
    if isinstance(o, dict) and o.get("class_name") == "function" and \
            isinstance(o.get("config"), str):
        return o["config"]                  # Keras 3's reference to a function by name
    if isinstance(o, dict):
        return {k: _clean_obj(v) for k, v in o.items()
                if not (k in ("module", "registered_name") and "class_name" in o)}
    return o


def _normalise_metric(m):
    if isinstance(m, dict) and m.get("class_name") == "MeanMetricWrapper":
        return (m.get("config") or {}).get("name", m)
    if isinstance(m, list):
        return [_normalise_metric(v) for v in m]
    return m


def _training_from_json(tc, n_outputs):
    if not isinstance(tc, dict):
        raise ConfigProblem(f"training_config must be a JSON object, got {type(tc).__name__}")
    opt = tc.get("optimizer_config")
    if isinstance(opt, dict):
        opt = _clean_obj(opt)
        opt["class_name"] = str(opt.get("class_name", "")).split(">")[-1]
        opt.setdefault("config", {})
    metrics = _normalise_metric(_clean_obj(tc.get("metrics")))
    if (n_outputs == 1 and isinstance(metrics, list) and len(metrics) == 1
            and isinstance(metrics[0], list)):
        metrics = metrics[0]
    return TrainingConfig(optimizer=opt, loss=_clean_obj(tc.get("loss")), metrics=metrics,
                          loss_weights=tc.get("loss_weights"))


def training_to_compile_config(training, n_outputs):
    """TrainingConfig -> the `compile_config` of a Keras 3 `.keras` archive (the optimizer
    in Keras 3's serialized form, which `Model.compile_from_config` reads; Keras 2's flat
    metric list of a multi-output model spelled per output, as Keras 3 requires)."""
    tc = _training_to_json(training, keras3=True)
    opt = tc["optimizer_config"]
    if opt is not None:
        cfg = {k: v for k, v in opt["config"].items() if not (k == "decay" and not v)}
        opt = {"module": "keras.optimizers", "class_name": opt["class_name"],
               "config": cfg, "registered_name": None}
    metrics = tc["metrics"]
    if n_outputs > 1 and isinstance(metrics, list) and \
            not any(isinstance(m, (list, dict)) for m in metrics):
        metrics = [list(metrics) for _ in range(n_outputs)]
    return {"optimizer": opt, "loss": tc["loss"], "loss_weights": tc["loss_weights"],
            "metrics": metrics, "weighted_metrics": None, "run_eagerly": False,
            "steps_per_execution": 1, "jit_compile": False}


def training_from_compile_config(cc, n_outputs):
    """A Keras 3 `.keras` archive's `compile_config` (optimizer, loss, metrics,
    loss_weights) -> TrainingConfig, through the same reading as a .h5 training_config."""
    if not isinstance(cc, dict):
        raise ConfigProblem(f"compile_config must be a JSON object, got {type(cc).__name__}")
    opt = cc.get("optimizer")
    if isinstance(opt, str):                    # compile("rmsprop", ...) keeps the name
        opt = {"class_name": opt, "config": {}}
    return _training_from_json({"optimizer_config": opt, "loss": cc.get("loss"),
                                "metrics": cc.get("metrics"),
                                "loss_weights": cc.get("loss_weights")}, n_outputs)


# ---------------------------------------------------------------------------------------
# public API

def save_graph(graph, path, dialect="keras2", include_optimizer=True):
    """Write `graph` as a Keras legacy full-model .h5 file (atomically)."""
    h5py = _h5py()
    config = graph_to_keras_config(graph, dialect)
    version = KERAS2_VERSION if dialect == "keras2" else KERAS3_VERSION
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["keras_version"] = version
            f.attrs["backend"] = BACKEND
            f.attrs["model_config"] = json.dumps(config, default=json_default)
            if include_optimizer and graph.training is not None:
                f.attrs["training_config"] = json.dumps(_training_to_json(graph.training),
                                                        default=json_default)
            _write_weights_group(f.create_group("model_weights"), graph, version)
            if include_optimizer:
                _write_optimizer_weights(f, graph)


def load_graph(path):
    """Read a full-model .h5 (tf-keras 2.x, Keras 3 legacy, or ours) into a Graph."""
    ctx = _Ctx(path)
    f = _open(path, ctx)
    try:
        with f:
            return _load_graph(f, ctx)
    except Exception as e:
        raise ctx.wrap(e) from None


def _load_graph(f, ctx):
    h5py = _h5py()
    if "model_config" not in f.attrs:
        if "layer_names" in f.attrs or "layers" in f:
            ctx.fail("this is a weights-only file (no model_config); load it with "
                     "load_weights_into(graph, path)")
        ctx.fail("no model_config attribute: not a Keras model file")
    version = None
    if "keras_version" in f.attrs:
        ctx.piece = "attribute 'keras_version'"
        version = to_str(f.attrs["keras_version"])
    config = _read_json_attr(f, "model_config", ctx)
    ctx.piece = "model_config"
    known = {n.name for n in keras_config_to_graph(config, keras_version=version).nodes}
    weights = {}
    if "model_weights" in f:
        mw = f["model_weights"]
        if not isinstance(mw, h5py.Group):
            ctx.fail("model_weights is not a group")
        _, weights = _read_weights_group(mw, ctx, known_layers=known)
    ctx.piece = "model_config"
    graph = keras_config_to_graph(config, weights=weights, keras_version=version)
    if "backend" in f.attrs:
        try:
            graph.metadata["backend"] = to_str(f.attrs["backend"])
        except TypeError:
            pass
    graph.metadata["source"] = "hdf5"
    if "training_config" in f.attrs:
        tc = _read_json_attr(f, "training_config", ctx)
        ctx.piece = "training_config"
        graph.training = _training_from_json(tc, len(graph.outputs))
        if "optimizer_weights" in f:
            graph.training.optimizer_state = _read_optimizer_weights(f, graph, ctx)
    return graph


def save_weights(graph, path):
    """Write a weights-only file, atomically: for a `*.weights.h5` name the Keras 3 layout
    (what Keras 3 and tf-keras >= 2.13 write and expect for that name), otherwise the
    Keras 2 one (layer groups at the root)."""
    h5py = _h5py()
    graph.validate()
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            if os.fspath(path).endswith(".weights.h5"):
                _write_new_layout(f, graph)
            else:
                _write_weights_group(f, graph, KERAS2_VERSION)


def _shallow_copy(graph):
    import copy
    g = copy.copy(graph)
    g.weights = dict(graph.weights)
    g.metadata = dict(graph.metadata)
    nodes = []
    for n in graph.nodes:
        n2 = copy.copy(n)
        n2.weights = list(n.weights)
        if n.subgraph is not None:
            n2.subgraph = _shallow_copy(n.subgraph)
        nodes.append(n2)
    g.nodes = nodes
    return g


def load_weights_into(graph, path, by_name=False, skip_mismatch=False):
    """Return a copy of `graph` whose weights come from a weights file (or full-model file).

    Reads the Keras 2 layout (layer groups with `layer_names`, at the root or under
    `model_weights`) and the Keras 3 `*.weights.h5` layout (`layers/<x>/vars/<i>`).
    Layers are matched by position among layers that have weights, or by layer name with
    `by_name=True`. A mismatch raises ModelLoadError naming the layer, the weight and both
    shapes, or is skipped with a warning when `skip_mismatch=True`.
    """
    h5py = _h5py()
    ctx = _Ctx(path)
    f = _open(path, ctx)
    try:
        with f:
            root = f
            if "layer_names" not in f.attrs and "model_weights" in f:
                root = f["model_weights"]
            if "layer_names" in root.attrs:
                order, stored = _read_weights_group(root, ctx)
            elif "layers" in f and isinstance(f["layers"], h5py.Group):
                stored = _read_new_layout(f, graph, ctx)
                order = [n.name for n in graph.nodes if n.name in stored]
            else:
                ctx.fail("no layer_names attribute and no `layers` group: not a Keras "
                         "weights file")
            return _assign(graph, order, stored, by_name, skip_mismatch, ctx)
    except Exception as e:
        raise ctx.wrap(e) from None


def _assign(graph, order, stored, by_name, skip_mismatch, ctx):
    g = _shallow_copy(graph)
    targets = [n for n in g.nodes if keras_weight_order(n, g)]
    if by_name:
        pairs = [(n, n.name) for n in targets if n.name in stored]
        missing = [n.name for n in targets if n.name not in stored]
        if missing:
            warnings.warn(f"{ctx.path}: no weights in the file for layer(s) {missing}; "
                          f"they keep their current values", stacklevel=3)
    else:
        saved = [ln for ln in order if stored.get(ln)]
        if len(saved) != len(targets):
            ctx.fail(f"layer count mismatch: the graph has {len(targets)} layers with weights "
                     f"({[n.name for n in targets]}), the file has {len(saved)} ({saved})")
        pairs = list(zip(targets, saved))
    for node, lname in pairs:
        expect = keras_weight_order(node, g)
        got = stored[lname]
        ctx.piece = f"layer {node.name!r}"
        if len(expect) != len(got):
            msg = (f"layer {node.name!r} (file layer {lname!r}) expects {len(expect)} "
                   f"weight(s), the file has {len(got)}")
            if skip_mismatch:
                warnings.warn(f"{ctx.path}: skipping {msg}", stacklevel=3)
                continue
            ctx.fail(msg)
        bad = [(key, sg.weights[key].shape, arr.shape, wname)
               for (sg, key), (wname, arr) in zip(expect, got)
               if tuple(sg.weights[key].shape) != tuple(arr.shape)]
        if bad:
            key, es, gs, wname = bad[0]
            msg = (f"layer {node.name!r} weight {key!r} (file {wname!r}): expected shape "
                   f"{tuple(es)}, the file has {tuple(gs)}")
            if skip_mismatch:
                warnings.warn(f"{ctx.path}: skipping layer {node.name!r}: {msg}", stacklevel=3)
                continue
            ctx.fail(msg)
        for (sg, key), (_, arr) in zip(expect, got):
            old = sg.weights[key]
            sg.weights[key] = arr if arr.dtype == old.dtype else arr.astype(old.dtype)
    return g

"""IR Graph -> Keras model config, in the Keras 2 or the Keras 3 dialect."""

from __future__ import annotations

from modelkit.ir import NESTED_MODEL_OPS
from modelkit.nesting import pack_structure

from .dialect import (CALL_TENSOR_ARGS, keras2_layer_config, keras3_activation_names,
                      keras3_layer_config)
from .keras3_ops import keras3_op_entry
from .tf_ops import TF_OP_LAYERS, tf_op_entry


def graph_to_keras_config(graph, dialect="keras2"):
    """The Keras model config (`{"class_name", "config"}`) of `graph`.

    dialect "keras2" is what tf-keras 2.x writes (and what Keras 3's legacy loader reads):
    `batch_input_shape`, list-form inbound nodes, no `time_major`. dialect "keras3" is what
    Keras 3 writes (`batch_shape`, dict-form nodes, `module`/`registered_name`,
    `hard_sigmoid` for modelkit's `keras3_hard_sigmoid`).
    """
    if dialect not in ("keras2", "keras3"):
        raise ValueError(f"dialect must be 'keras2' or 'keras3', got {dialect!r}")
    graph.validate(weights=bool(graph.weights))       # a config-only graph has none
    return _graph_config(graph, dialect == "keras3")


def _input_layer(spec, keras3):
    if keras3:
        return {"module": "keras.layers", "class_name": "InputLayer",
                "config": {"batch_shape": list(spec.shape), "dtype": spec.dtype,
                           "sparse": False, "ragged": False, "name": spec.name},
                "registered_name": None, "name": spec.name, "inbound_nodes": []}
    return {"class_name": "InputLayer",
            "config": {"batch_input_shape": list(spec.shape), "dtype": spec.dtype,
                       "sparse": False, "ragged": False, "name": spec.name},
            "name": spec.name, "inbound_nodes": []}


def _layer_entry(node, keras3, archive=False):
    if node.subgraph is not None and node.op in NESTED_MODEL_OPS:
        sub = _graph_config(node.subgraph, keras3, archive)
        if "trainable" in node.config:
            sub["config"]["trainable"] = node.config["trainable"]
        sub["config"]["name"] = node.name
        entry = {"class_name": sub["class_name"], "config": sub["config"]}
        if keras3:
            entry = {"module": sub.get("module"), **entry, "registered_name": None}
        return entry
    where = f"layer {node.name!r} ({node.op})"
    cfg = dict(node.config)
    cfg["name"] = node.name
    cfg = keras3_layer_config(node.op, cfg, where) if keras3 else keras2_layer_config(node.op, cfg)
    if node.subgraph is not None and keras3:    # a wrapper of a whole model, Keras 3 dialect
        sub = _graph_config(node.subgraph, keras3)
        sub["config"]["name"] = (node.config.get("layer") or {}).get("config", {}).get(
            "name", node.subgraph.name)
        cfg["layer"] = {"module": sub.get("module"), "class_name": sub["class_name"],
                        "config": sub["config"], "registered_name": None}
    if keras3:
        return {"module": "keras.layers", "class_name": node.op, "config": cfg,
                "registered_name": None}
    return {"class_name": node.op, "config": cfg}


def _graph_config(graph, keras3, archive=False):
    """`archive`: Keras 2 dialect, but operations keep the dialect they came from (a Keras 3
    op entry, a tf-keras TFOpLambda), each readable by its own Keras."""
    seq = graph.metadata.get("model_class") == "Sequential" and graph.nodes and graph.is_chain()
    if seq:
        spec = graph.inputs[0]
        layers = [_input_layer(spec, keras3)]
        for i, n in enumerate(graph.nodes):
            e = _layer_entry(n, keras3, archive)
            e.pop("name", None)
            e.pop("inbound_nodes", None)
            if i == 0 and not keras3 and n.op not in NESTED_MODEL_OPS:
                e["config"] = {"name": e["config"]["name"],
                               "batch_input_shape": list(spec.shape), **e["config"]}
            layers.append(e)
        for e in layers:
            e.pop("name", None)
            e.pop("inbound_nodes", None)
        out = {"class_name": "Sequential", "config": {"name": graph.name, "layers": layers}}
        if keras3:
            out["config"]["trainable"] = True
            out["config"]["build_input_shape"] = list(spec.shape)
            out = {"module": "keras", **out, "registered_name": None}
        return out

    nested = {n.name for n in graph.nodes if n.op in NESTED_MODEL_OPS}
    shapes = {s.name: s for s in graph.inputs}

    def ref_item(r, keras3=keras3):
        # tf-keras numbers a nested model's calls from 1 (its node 0 links its own input to
        # its output), Keras 3 from 0 even in list-form nodes: an archive follows Keras 3
        ni = r.call_index + (1 if r.node in nested and not (keras3 or archive) else 0)
        if keras3:
            spec = shapes.get(r.node)
            return {"class_name": "__keras_tensor__",
                    # Keras 3 swaps the placeholder for the inbound layer's real output
                    # but cannot make one of shape None: [] stands for a layer output
                    "config": {"shape": list(spec.shape) if spec else [],
                               "dtype": spec.dtype if spec else "float32",
                               "keras_history": [r.node, ni, r.tensor_index]}}
        return [r.node, ni, r.tensor_index, {}]

    layers = [_input_layer(s, keras3) for s in graph.inputs]
    for n in graph.nodes:
        keras_op = n.config.get("keras_op") if n.op == "BackendOp" else None
        if keras_op and (archive or keras3 == ("module" in keras_op)):   # as its reader needs
            layers.append(keras3_op_entry(n, lambda r: ref_item(r, True))
                          if "module" in keras_op else
                          tf_op_entry(n, lambda name: 1 if name in nested and not archive else 0))
            continue
        # MultiHeadAttention: tf-keras needs query/key/value_shape and kwargs tensors as
        # lists, Keras 3 refuses both; an archive writes what Keras 3 reads
        k3 = keras3 or (archive and n.op in CALL_TENSOR_ARGS)
        e = _layer_entry(n, k3, archive)
        e["name"] = n.name
        named = CALL_TENSOR_ARGS.get(n.op)
        if named:                  # called with named tensors: query first, the rest by name
            if k3:
                e["inbound_nodes"] = [
                    {"args": [ref_item(r, k3) for r in call[:2]],
                     "kwargs": {**{k: ref_item(r, k3) for k, r in zip(named[2:], call[2:])},
                                **n.kwargs_of(ci)}} for ci, call in enumerate(n.calls)]
            else:
                e["inbound_nodes"] = [
                    [ref_item(call[0], k3)[:3] + [{**{k: ref_item(r, k3)[:3]
                                                      for k, r in zip(named[1:], call[1:])},
                                                   **n.kwargs_of(ci)}]]
                    for ci, call in enumerate(n.calls)]
        elif k3:
            e["inbound_nodes"] = [
                {"args": ([ref_item(call[0], k3)] if len(call) == 1
                          else [[ref_item(r, k3) for r in call]]),
                 "kwargs": n.kwargs_of(ci)} for ci, call in enumerate(n.calls)]
        else:
            e["inbound_nodes"] = [[ref_item(r, k3)[:3] + [n.kwargs_of(ci)] for r in call]
                                  for ci, call in enumerate(n.calls)]
        layers.append(e)
    cfg = {"name": graph.name, "trainable": True, "layers": layers,
           "input_layers": [[s.name, 0, 0] for s in graph.inputs],
           "output_layers": [[r.node, r.call_index + (1 if r.node in nested and not keras3 else 0),
                              r.tensor_index] for r in graph.outputs]}
    if graph.metadata.get("output_structure"):             # nested as the model's outputs
        cfg["output_layers"] = pack_structure(graph.metadata["output_structure"],
                                              cfg["output_layers"])
    out = {"class_name": "Functional", "config": cfg}
    if keras3:
        out = {"module": "keras.src.models.functional", **out, "registered_name": "Functional"}
    return out


# What `module` a serialized object needs so that both tf-keras 2.x's and Keras 3's
# `deserialize_keras_object` find its class (both resolve `keras.<kind>.<class_name>`
# through their public API table).
_SERIAL_MODULES = (("initializer", "keras.initializers"), ("regularizer", "keras.regularizers"),
                   ("constraint", "keras.constraints"))


def graph_to_archive_config(graph):
    """The `config.json` of a `.keras` archive that both tf-keras 2.x's and Keras 3's
    `.keras` loaders read: the Keras 2 dialect (`batch_input_shape` on the InputLayer only,
    list-form inbound nodes, string dtypes; Keras 3 reads all of these) with each object's
    `module`/`registered_name`, the way tf-keras writes its own archives, except that a
    functional model is class `Model` of module `keras` (tf-keras writes
    `tf_keras.src.engine.functional.Functional`, Keras 3 `keras.src.models.functional`:
    neither imports the other's module, both resolve `keras.Model` to their functional
    model). Activations are spelled as Keras 3 reads them (see `keras3_activation_names`).
    """
    graph.validate(weights=bool(graph.weights))
    return _archive_model(_graph_config(graph, False, archive=True))


def _archive_model(entry):
    out = {"module": "keras", **entry, "registered_name": None}
    if out["class_name"] != "Sequential":
        out["class_name"] = "Model"
    cfg = out["config"] = dict(out["config"])
    cfg["layers"] = [_archive_layer(e) for e in cfg.get("layers", [])]
    return out


def _archive_layer(entry):
    if entry.get("class_name") in NESTED_MODEL_OPS:
        return _archive_model(entry)
    if entry.get("class_name") in TF_OP_LAYERS:   # a tf op: only tf-keras reads it
        return entry
    where = f"layer {(entry.get('config') or {}).get('name')!r} ({entry.get('class_name')})"
    entry = {**entry, "module": entry.get("module") or "keras.layers",
             "registered_name": entry.get("registered_name")}
    cfg = entry["config"] = dict(entry["config"])
    if entry["class_name"] != "InputLayer":
        cfg.pop("batch_input_shape", None)    # Keras 3 layers refuse it
    keras3_activation_names(cfg, where)
    for k, v in cfg.items():
        if k == "cells" and isinstance(v, list):       # StackedRNNCells
            cfg[k] = [_archive_layer(c) if isinstance(c, dict) and "config" in c else c
                      for c in v]
            continue
        if not (isinstance(v, dict) and "class_name" in v and "config" in v):
            continue
        if k in ("layer", "backward_layer", "cell"):
            cfg[k] = _archive_layer(v)
        else:
            module = next((m for suffix, m in _SERIAL_MODULES if k.endswith(suffix)), None)
            if module:
                cfg[k] = {"module": module, **v, "registered_name": None}
    return entry

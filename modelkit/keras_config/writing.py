"""IR Graph -> Keras model config, in the Keras 2 or the Keras 3 dialect."""

from __future__ import annotations

from modelkit.ir import NESTED_MODEL_OPS

from .dialect import CALL_TENSOR_ARGS, keras2_layer_config, keras3_layer_config
from .keras3_ops import keras3_op_entry
from .tf_ops import tf_op_entry


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


def _layer_entry(node, keras3):
    if node.subgraph is not None and node.op in NESTED_MODEL_OPS:
        sub = _graph_config(node.subgraph, keras3)
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


def _graph_config(graph, keras3):
    seq = graph.metadata.get("model_class") == "Sequential" and graph.nodes and graph.is_chain()
    if seq:
        spec = graph.inputs[0]
        layers = [_input_layer(spec, keras3)]
        for i, n in enumerate(graph.nodes):
            e = _layer_entry(n, keras3)
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

    def ref_item(r):
        ni = r.call_index + (1 if r.node in nested and not keras3 else 0)
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
        if keras_op and keras3 == ("module" in keras_op):    # an op as the reader needs it
            layers.append(keras3_op_entry(n, ref_item) if keras3 else
                          tf_op_entry(n, lambda name: 1 if name in nested else 0))
            continue
        e = _layer_entry(n, keras3)
        e["name"] = n.name
        named = CALL_TENSOR_ARGS.get(n.op)
        if named:                  # called with named tensors: query first, the rest by name
            if keras3:
                e["inbound_nodes"] = [
                    {"args": [ref_item(r) for r in call[:2]],
                     "kwargs": {**{k: ref_item(r) for k, r in zip(named[2:], call[2:])},
                                **n.kwargs_of(ci)}} for ci, call in enumerate(n.calls)]
            else:
                e["inbound_nodes"] = [
                    [ref_item(call[0])[:3] + [{**{k: ref_item(r)[:3]
                                                  for k, r in zip(named[1:], call[1:])},
                                               **n.kwargs_of(ci)}]]
                    for ci, call in enumerate(n.calls)]
        elif keras3:
            e["inbound_nodes"] = [
                {"args": [ref_item(call[0])] if len(call) == 1 else [[ref_item(r) for r in call]],
                 "kwargs": n.kwargs_of(ci)} for ci, call in enumerate(n.calls)]
        else:
            e["inbound_nodes"] = [[ref_item(r)[:3] + [n.kwargs_of(ci)] for r in call]
                                  for ci, call in enumerate(n.calls)]
        layers.append(e)
    cfg = {"name": graph.name, "trainable": True, "layers": layers,
           "input_layers": [[s.name, 0, 0] for s in graph.inputs],
           "output_layers": [[r.node, r.call_index + (1 if r.node in nested and not keras3 else 0),
                              r.tensor_index] for r in graph.outputs]}
    out = {"class_name": "Functional", "config": cfg}
    if keras3:
        out = {"module": "keras.src.models.functional", **out, "registered_name": "Functional"}
    return out

"""Model <-> IR: the one module that knows both the layer classes and `modelkit.ir`.

`to_ir(model)` and `from_ir(graph)` are exact inverses: same configs, same weights, same
predictions, for Sequential, functional, multi-input/output, shared-layer and nested models.
"""

import warnings

import numpy as np

from . import __version__
from .engine.functional import Model
from .engine.input_layer import Input, InputLayer
from .engine.sequential import Sequential
from .errors import IRError, ModelkitError
from .ir import NESTED_MODEL_OPS, Graph, Node, TensorRef, TensorSpec, TrainingConfig
from .layers.serialization import custom_object_scope, deserialize, get_layer_class


def _model_class(model):
    return "Sequential" if isinstance(model, Sequential) else "Functional"


def to_ir(model, include_weights=True, include_optimizer=True):
    """Describe a built model as an IR Graph."""
    if not model.built:
        raise IRError(f"Model {model.name!r} is not built yet (no input shape): give the first "
                      "layer an input shape or call the model on data first")
    inputs = [TensorSpec(t._keras_history[0].name, t.shape, str(t.dtype)) for t in model.inputs]
    call_index = {}            # (layer id, keras node index) -> call index within this graph
    for t in model.inputs:
        call_index[(id(t._keras_history[0]), t._keras_history[1])] = 0
    nodes, weights, by_layer = [], {}, {}
    for knode in model._nodes_in_order:
        layer = knode.layer
        if id(layer) not in by_layer:
            node = _layer_node(layer, weights, include_weights)
            by_layer[id(layer)] = node
            nodes.append(node)
        node = by_layer[id(layer)]
        call_index[(id(layer), knode.index)] = len(node.calls)
        node.calls.append([_ref(t, call_index) for t in knode.input_tensors])
    outputs = [_ref(t, call_index) for t in model.outputs]
    graph = Graph(name=model.name, inputs=inputs, outputs=outputs, nodes=nodes,
                  weights=weights if include_weights else {},
                  training=_training_config(model, include_optimizer),
                  metadata={"source": "modelkit", "modelkit_version": __version__,
                            "model_class": _model_class(model)})
    if include_weights:
        graph.validate()
    return graph


def _ref(tensor, call_index):
    layer, node_index, tensor_index = tensor._keras_history
    return TensorRef(layer.name, call_index[(id(layer), node_index)], tensor_index)


def _layer_node(layer, weights, include_weights):
    if isinstance(layer, Model):
        sub = to_ir(layer, include_weights=include_weights, include_optimizer=False)
        sub.training = None
        return Node(layer.name, _model_class(layer), {"name": layer.name,
                                                      "trainable": layer.trainable},
                    calls=[], weights=[], subgraph=sub)
    keys = []
    for var in layer.weights:
        local = var.name[len(layer.name) + 1:] if var.name.startswith(layer.name + "/") \
            else var.name
        key = f"{layer.name}/{local}"
        while key in weights:
            key += "_"
        weights[key] = np.array(var.value) if include_weights else np.empty(0)
        keys.append(key)
    inner = getattr(layer, "layer", None)         # a wrapper (TimeDistributed) of a whole model
    subgraph = to_ir(inner, include_weights=include_weights, include_optimizer=False) \
        if isinstance(inner, Model) else None
    if subgraph is not None:
        subgraph.training = None
    return Node(layer.name, type(layer).__name__, layer.get_config(), calls=[], weights=keys,
                subgraph=subgraph)


def _training_config(model, include_optimizer):
    args = getattr(model, "_compile_args", None)
    if not args or model.optimizer is None:
        return None
    from . import losses, metrics, optimizers
    state = model.optimizer.get_state() if include_optimizer else None
    return TrainingConfig(optimizer=optimizers.serialize(model.optimizer),
                          loss=_serialize_nested(args["loss"], losses.serialize),
                          metrics=_serialize_nested(args["metrics"], metrics.serialize),
                          loss_weights=args["loss_weights"], optimizer_state=state)


def _serialize_nested(value, fn):
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _serialize_nested(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_serialize_nested(v, fn) for v in value]
    return value if isinstance(value, str) else fn(value)


def from_ir(graph, custom_objects=None, compile=True):
    """Build a modelkit Model (Sequential when the graph says so) from an IR Graph.
    A graph without weights (from JSON) gives freshly initialised weights."""
    if graph.weights:
        graph.validate()
    with custom_object_scope(custom_objects or {}):
        model = _build(graph, custom_objects)
        _assign_weights(model, graph)
        if compile and graph.training is not None and graph.training.loss is not None:
            _compile_from(model, graph)
    return model


def _build(graph, custom_objects):
    layers = {}
    for node in graph.nodes:
        if node.subgraph is not None and node.op in NESTED_MODEL_OPS:
            sub = _build(node.subgraph, custom_objects)
            _assign_weights(sub, node.subgraph)
            sub.name = node.name
            sub.trainable = node.config.get("trainable", True)
            layers[node.name] = sub
        elif node.subgraph is not None:        # a wrapper of a whole model: TimeDistributed
            sub = _build(node.subgraph, custom_objects)
            _assign_weights(sub, node.subgraph)
            inner = node.config.get("layer") or {}
            sub.name = (inner.get("config") or {}).get("name") or node.subgraph.name
            config = dict(node.config, layer=sub)
            layers[node.name] = get_layer_class(node.op, node.name, custom_objects)(**config)
        else:
            layers[node.name] = deserialize({"class_name": node.op, "config": node.config},
                                            custom_objects)
    if graph.metadata.get("model_class") == "Sequential" and _is_chain(graph):
        spec = graph.inputs[0]
        model = Sequential(name=graph.name)
        model.add(InputLayer(batch_input_shape=spec.shape, dtype=spec.dtype, name=spec.name))
        for node in graph.nodes:
            model.add(layers[node.name])
        return model
    tensors = {}
    inputs = []
    for spec in graph.inputs:
        t = Input(batch_shape=spec.shape, dtype=spec.dtype, name=spec.name)
        tensors[(spec.name, 0, 0)] = t
        inputs.append(t)
    for node, ci in graph.call_order():
        layer = layers[node.name]
        try:
            args = [tensors[(r.node, r.call_index, r.tensor_index)] for r in node.calls[ci]]
        except KeyError as e:
            raise IRError(f"Node {node.name!r}: input {e.args[0]} is not produced") from None
        out = layer(args[0] if len(args) == 1 else args)
        for ti, t in enumerate(out if isinstance(out, (list, tuple)) else [out]):
            tensors[(node.name, ci, ti)] = t
    try:
        outputs = [tensors[(r.node, r.call_index, r.tensor_index)] for r in graph.outputs]
    except KeyError as e:
        raise IRError(f"Graph {graph.name!r}: output {e.args[0]} is not produced") from None
    return Model(inputs=inputs, outputs=outputs if len(outputs) > 1 else outputs[0],
                 name=graph.name)


def _is_chain(graph):
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return False
    prev = graph.inputs[0].name
    for node in graph.nodes:
        if len(node.calls) != 1 or len(node.calls[0]) != 1 or node.calls[0][0].node != prev:
            return False
        prev = node.name
    return graph.outputs[0].node == prev


def _assign_weights(model, graph):
    for node in graph.nodes:
        if node.subgraph is not None or not node.weights or node.weights[0] not in graph.weights:
            continue
        layer = model.get_layer(node.name)
        layer.set_weights([graph.weights[k] for k in node.weights])


def _compile_from(model, graph):
    training = graph.training
    _compile_fresh(model, training)
    if training.optimizer_state:
        try:
            model.optimizer.set_state(_state_by_variable_name(model, graph, training.optimizer_state),
                                      model.trainable_weights)
        except ModelkitError as e:
            # as Keras does: the model loads, its optimizer starts fresh
            warnings.warn(f"The saved optimizer state could not be restored ({e}); the model "
                          f"is loaded with a freshly initialized optimizer.", stacklevel=3)
            _compile_fresh(model, training)


def _state_by_variable_name(model, graph, state):
    """Optimizer state keyed `<slot>/<IR weight key>` -> keyed by the model's variable names:
    a file's weight names need not be modelkit's (Keras 3 names a TimeDistributed layer's
    kernel `td/dense/kernel`, modelkit `td/kernel`). Weights pair up by position, as
    `_assign_weights` pairs them."""
    variables = {}
    _variables_by_key(model, graph, variables)
    trainable = list(model.trainable_weights)
    unique = dict(zip(map(id, trainable), model.optimizer._unique_names(trainable)))
    names = {k: unique[id(v)] for k, v in variables.items() if id(v) in unique}
    weights = {}
    for k, v in (state.get("weights") or {}).items():
        slot, _, key = k.partition("/")
        weights[f"{slot}/{names[key]}" if key in names else k] = v
    return dict(state, weights=weights)


def _variables_by_key(model, graph, out):
    """{IR weight key: the model's variable} for the graph and its nested models."""
    layers = {la.name: la for la in model.layers}
    for node in graph.nodes:
        layer = layers.get(node.name)
        if layer is None:
            continue
        if node.subgraph is not None:
            inner = layer if node.op in NESTED_MODEL_OPS else getattr(layer, "layer", None)
            if isinstance(inner, Model):
                _variables_by_key(inner, node.subgraph, out)
            continue
        for key, var in zip(node.weights, layer.weights):
            out.setdefault(key, var)


def _compile_fresh(model, training):
    from . import optimizers
    optimizer = optimizers.get(training.optimizer) if training.optimizer else "rmsprop"
    model.compile(optimizer=optimizer, loss=training.loss, metrics=training.metrics,
                  loss_weights=training.loss_weights)


def model_from_keras_config(config, custom_objects=None):
    """Keras `model.get_config()` dict -> Model (through the IR)."""
    from .saving import graph_from_keras_config
    return from_ir(graph_from_keras_config(config), custom_objects=custom_objects,
                   compile=False)


def model_to_keras_config(model):
    from .saving import keras_config_of
    return keras_config_of(model)

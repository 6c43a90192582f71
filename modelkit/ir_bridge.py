"""Model <-> IR: the one module that knows both the layer classes and `modelkit.ir`.

`to_ir(model)` and `from_ir(graph)` are exact inverses: same configs, same weights, same
predictions, for Sequential, functional, multi-input/output, shared-layer and nested models.
"""

import json
import warnings

import numpy as np

from ._version import __version__
from .engine.functional import Model
from .engine.build_budget import build_budget
from .engine.input_layer import Input, InputLayer
from .engine.sequential import Sequential
from .errors import ConfigError, IRError, ModelkitError, ModelLoadError, as_load_error
from .ir import CALL_FLAGS, NESTED_MODEL_OPS, Graph, Node, TensorRef, TensorSpec, TrainingConfig
from .layers.serialization import custom_object_scope, deserialize, get_layer_class
from .nesting import flatten_structure, index_structure, pack_structure


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
        node.call_kwargs.append(portable_call_kwargs(knode.call_kwargs))
    rank = {la.name: i for i, la in enumerate(model.layers)}      # Keras's layer order
    nodes.sort(key=lambda n: rank.get(n.name, len(rank)))
    outputs = [_ref(t, call_index) for t in model.outputs]
    graph = Graph(name=model.name, inputs=inputs, outputs=outputs, nodes=nodes,
                  weights=weights if include_weights else {},
                  training=_training_config(model, include_optimizer),
                  metadata={"source": "modelkit", "modelkit_version": __version__,
                            "model_class": _model_class(model),
                            **getattr(model, "_onnx_value_types", {})})
    if getattr(model, "_output_structure", None) is not None:
        graph.metadata["output_structure"] = index_structure(model._output_structure)
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


def from_ir(graph, custom_objects=None, compile=True, require_weights=False):
    """Build a modelkit Model (Sequential when the graph says so) from an IR Graph.
    A graph without weights (from JSON) gives freshly initialised weights; with
    `require_weights` (loading a model file) a layer with weights but none stored in the
    graph is an error instead. Building is checked against the stored weight shapes
    (`engine.build_budget`) before anything is allocated."""
    if graph.weights:
        graph.validate()
    stored = _stored_shapes(graph)
    limit = FILE_UNSTORED_BYTES if stored or require_weights else None
    with custom_object_scope(custom_objects or {}):
        with build_budget(stored, limit=limit,
                          source=f"model {graph.name!r}" if stored else "the model config"):
            model = _build(graph, custom_objects)
        if require_weights:
            _require_weights(model, graph)
        _assign_weights(model, graph)
        if compile and graph.training is not None and graph.training.loss is not None:
            _compile_from(model, graph)
    return model


# Weights a model file does not store may still be built (small state), up to this much.
FILE_UNSTORED_BYTES = 64 << 20


def _require_weights(model, graph, within=""):
    """A layer the file stores no weights for would keep fresh random ones: refuse, naming
    it (and the nested models or wrappers of a model it sits in)."""
    for node in graph.nodes:
        layer = model.get_layer(node.name)
        if node.subgraph is not None:
            # a nested model, or a wrapper of one (TimeDistributed(model)) holding it as .layer
            inner = layer if node.op in NESTED_MODEL_OPS else getattr(layer, "layer", None)
            if isinstance(inner, Model):
                _require_weights(inner, node.subgraph, f"{within}{node.name!r} ({node.op}) > ")
            continue
        if not node.weights and layer.weights:
            raise IRError(f"Layer {within}{node.name!r} ({node.op}) has weights but the file "
                          f"stores none for it")


def _stored_shapes(graph):
    shapes = [np.shape(w) for w in graph.weights.values()]
    for node in graph.nodes:
        if node.subgraph is not None:
            shapes += _stored_shapes(node.subgraph)
    return shapes


def _build(graph, custom_objects):
    try:
        return _build_layers(graph, custom_objects)
    except ModelkitError:
        raise
    except RecursionError:
        raise ConfigError(f"model {graph.name!r}: the config nests too deeply") from None
    except Exception as e:      # noqa: BLE001 - a malformed config, named; never foreign
        raise ConfigError(f"model {graph.name!r}: the config cannot be built: "
                          f"{type(e).__name__}: {e}") from None


def _build_layers(graph, custom_objects):
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
            layers[node.name] = _named(node, lambda: get_layer_class(
                node.op, node.name, custom_objects)(**config))
        else:
            layers[node.name] = _named(node, deserialize, {"class_name": node.op,
                                                            "config": node.config},
                                       custom_objects)
    if graph.metadata.get("model_class") == "Sequential" and graph.is_chain():
        spec = graph.inputs[0]
        model = Sequential(name=graph.name)
        model.add(InputLayer(batch_input_shape=spec.shape, dtype=spec.dtype, name=spec.name))
        for node in graph.nodes:
            _named(node, model.add, layers[node.name])
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
        out = _named(node, layer, args[0] if len(args) == 1 else args, **node.kwargs_of(ci))
        for ti, t in enumerate(flatten_structure(out)):       # an RNN's states nest
            tensors[(node.name, ci, ti)] = t
    try:
        outputs = [tensors[(r.node, r.call_index, r.tensor_index)] for r in graph.outputs]
    except KeyError as e:
        raise IRError(f"Graph {graph.name!r}: output {e.args[0]} is not produced") from None
    if graph.metadata.get("output_structure"):                  # nested as Keras's
        outputs = pack_structure(graph.metadata["output_structure"], outputs)
    model = Model(inputs=inputs, outputs=outputs if len(outputs) > 1 else outputs[0],
                  name=graph.name)
    # the ONNX types of sequence / optional inputs and outputs (an export writes them back)
    model._onnx_value_types = {k: graph.metadata[k] for k in ONNX_VALUE_TYPES
                               if k in graph.metadata}
    return model


ONNX_VALUE_TYPES = ("onnx_input_types", "onnx_output_types")


def portable_call_kwargs(kwargs):
    """The call keyword arguments a file keeps: the boolean flags of `ir.CALL_FLAGS`
    (Keras's `training=True/False`, the attention layers' `use_causal_mask`, ...)."""
    return {k: v for k, v in (kwargs or {}).items() if k in CALL_FLAGS and isinstance(v, bool)}


def _named(node, fn, *args, **kwargs):
    """Call fn(*args, **kwargs); a failure that is not modelkit's becomes a ConfigError
    naming the layer (malformed configs: string sizes, zero strides, ...)."""
    try:
        return fn(*args, **kwargs)
    except ModelkitError:
        raise
    except RecursionError:
        raise ConfigError(f"Layer {node.name!r} ({node.op}): the config nests too deeply") \
            from None
    except Exception as e:      # noqa: BLE001
        raise ConfigError(f"Layer {node.name!r} ({node.op}): config cannot be built: "
                          f"{type(e).__name__}: {e}") from None


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
    model.compile(optimizer=optimizer, loss=training.loss,
                  metrics=_loadable_metrics(training.metrics, model.name),
                  loss_weights=training.loss_weights)


_DROPPED = object()


def _loadable_metrics(spec, where):
    """The file's metrics modelkit can compute. One it cannot (a Keras metric class modelkit
    lacks, such as AUC, or a custom one) is left out with a warning: metrics never block
    loading a model (they do not change its weights or predictions)."""
    from . import metrics
    dropped = []

    def keep(m):
        if isinstance(m, (list, tuple)):
            return [v for v in map(keep, m) if v is not _DROPPED]
        if isinstance(m, dict) and "class_name" not in m:       # per output name
            return {k: keep(v) for k, v in m.items()}
        try:
            metrics.get(m)
            return m
        except ModelkitError:
            dropped.append(m.get("class_name") if isinstance(m, dict) else m)
            return _DROPPED

    kept = spec if spec is None else keep(spec)
    if dropped:
        warnings.warn(f"Model {where!r}: the saved metric(s) {dropped} are not available in "
                      f"modelkit and were left out of the compiled model", stacklevel=4)
    return kept


# -- Keras configs (get_config / from_config / to_json / model_from_json) ------------------
# Straight through `modelkit.keras_config`, on the IR without weights: nothing is copied.

def model_to_keras_config(model):
    """`model.get_config()`: the Keras 2 functional/sequential config dict."""
    return _keras_config(model)["config"]


def model_from_keras_config(config, custom_objects=None):
    """Keras `model.get_config()` dict (or `{"class_name", "config"}`) -> Model."""
    from .keras_config import keras_config_to_graph
    if isinstance(config, dict) and "class_name" not in config:
        kind = "Functional" if "input_layers" in config else "Sequential"
        config = {"class_name": kind, "config": config}
    return from_ir(keras_config_to_graph(config), custom_objects=custom_objects, compile=False)


def model_to_json(model, **kwargs):
    """`model.to_json()`: the Keras 2 model config as JSON, with the versions Keras writes."""
    cfg = _keras_config(model)
    from .keras_config import BACKEND, KERAS2_VERSION
    cfg.setdefault("keras_version", KERAS2_VERSION)
    cfg.setdefault("backend", BACKEND)
    cfg["modelkit_version"] = __version__
    return json.dumps(cfg, **kwargs)


def model_from_json(json_string, custom_objects=None, safe_mode=True):
    """A model (fresh weights) from `to_json()` text, Keras 2 or Keras 3."""
    from .keras_config import keras_config_to_graph
    from .layers.serialization import safe_mode_scope
    try:
        cfg = json.loads(json_string)
    except (ValueError, TypeError, RecursionError) as e:
        raise ModelLoadError(f"model JSON is not valid JSON: {type(e).__name__}: {e}") from None
    try:
        version = cfg.get("keras_version") if isinstance(cfg, dict) else None
        graph = keras_config_to_graph(cfg, keras_version=version)
        with safe_mode_scope(safe_mode):
            return from_ir(graph, custom_objects=custom_objects, compile=False)
    except Exception as e:      # noqa: BLE001 - every failure is modelkit's, named
        raise as_load_error("model JSON", e) from None


def _keras_config(model):
    from .keras_config import graph_to_keras_config
    return graph_to_keras_config(to_ir(model, include_weights=False, include_optimizer=False))

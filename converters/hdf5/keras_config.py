"""Keras model configs (the JSON in `model_config`, `to_json()`, `config.json`) <-> the IR.

Reading accepts both dialects:

* Keras 2 (tf-keras 2.x): InputLayer `batch_input_shape`, string dtypes, list-form
  `inbound_nodes` `[[["name", node_index, tensor_index, {kwargs}], ...], ...]`.
* Keras 3: InputLayer `batch_shape`, `DTypePolicy` dicts, `module`/`registered_name`/
  `build_config`, dict-form nodes `{"args": [...__keras_tensor__...], "kwargs": {...}}`,
  explicit `NotEqual` mask nodes.

Every layer config is normalised to the canonical Keras-2 `get_config()` spelling
(`normalise_layer_config`), so the IR never depends on which Keras wrote the file:

* serialized objects (initializers, regularizers, constraints, DTypePolicy) lose `module`,
  `registered_name`, `shared_object_id`; a DTypePolicy becomes its name string;
* `build_config`, `compile_config` are dropped;
* keys only Keras 3 has and modelkit layers would not accept are dropped
  (`KERAS3_ONLY_KEYS`, `KERAS3_ONLY_KEYS_BY_OP`; `zero_output_for_mask` only when False,
  as Keras 2 writes it only when True);
* `time_major: false` is dropped (Keras 3 refuses it; tf-keras defaults it);
* Keras 3 LeakyReLU `negative_slope` becomes `alpha`; Keras 3 LayerNormalization int `axis`
  becomes `[axis]`;
* Keras 3 `hard_sigmoid` (x/6+0.5) becomes modelkit's `keras3_hard_sigmoid`, in
  `activation` and `recurrent_activation`, also inside wrappers; the Keras-3 writer maps back.

Graph mapping: InputLayers are graph inputs (`TensorSpec`), every other layer one node.
A Sequential config becomes a chain with one input (named after its InputLayer, else
`<first layer>_input` as Keras names it; shape from the InputLayer or the first layer's
`batch_input_shape`, which is then removed from that layer's config). A layer whose
class is Functional/Sequential/Model becomes a node with a `subgraph`. Lambda functions
(Keras 2 marshalled bytecode, Keras 3 `__lambda__`) stay as plain data in the node config:
nothing here decodes, unmarshals or evaluates them.
"""

from __future__ import annotations

import copy

from modelkit.errors import IRError, UnsupportedError
from modelkit.ir import NESTED_MODEL_OPS, Graph, Node, TensorRef, TensorSpec

from ._common import ConfigProblem, non_trainable_variable

__all__ = ["keras_config_to_graph", "graph_to_keras_config", "normalise_layer_config",
           "KERAS3_ONLY_KEYS", "KERAS3_ONLY_KEYS_BY_OP", "KERAS3_ONLY_INITIALIZER_KEYS",
           "attach_layer_weights", "attach_wrapped_models",
           "keras_weight_order", "is_keras3_config"]

# Keys Keras 3 writes that Keras 2 layers (and modelkit's) do not take: dropped on reading.
KERAS3_ONLY_KEYS = ("quantization_config", "lora_rank", "lora_alpha", "lora_enabled",
                    "build_config", "compile_config", "use_cudnn")
KERAS3_ONLY_KEYS_BY_OP = {
    "LSTM": ("seed",), "GRU": ("seed",), "SimpleRNN": ("seed",),
    "LSTMCell": ("seed",), "GRUCell": ("seed",), "SimpleRNNCell": ("seed",),
    "LayerNormalization": ("rms_scaling",),
}
# Keys of serialized objects (initializers) only Keras 3 writes; dropped when None.
KERAS3_ONLY_INITIALIZER_KEYS = ("input_axes", "output_axes")
_SERIAL_JUNK = ("module", "registered_name", "shared_object_id", "build_config")
_ACTIVATION_KEYS = ("activation", "recurrent_activation")
_RNN_OPS = ("LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
_WRAPPER_KEYS = ("layer", "backward_layer")
_INPUT_SHAPE_KEYS = ("batch_input_shape",)


# ---------------------------------------------------------------------------------------
# dialect detection and config normalisation

def is_keras3_config(model_config):
    """Heuristic for configs without a version: Keras 3 markers anywhere in the tree."""
    found = False

    def walk(o, depth=0):
        nonlocal found
        if found or depth > 200:
            return
        if isinstance(o, dict):
            if "batch_shape" in o or o.get("class_name") in ("__keras_tensor__", "DTypePolicy"):
                found = True
                return
            if "args" in o and "kwargs" in o:
                found = True
                return
            for v in o.values():
                walk(v, depth + 1)
        elif isinstance(o, list):
            for v in o:
                walk(v, depth + 1)

    walk(model_config)
    return found


def _major(keras_version):
    try:
        return int(str(keras_version).split(".")[0])
    except (TypeError, ValueError):
        return None


def _clean_serialized(obj, keras3):
    """Recursively strip Keras-3 serialisation wrappers from nested config values."""
    if isinstance(obj, list):
        return [_clean_serialized(v, keras3) for v in obj]
    if not isinstance(obj, dict):
        return obj
    cls = obj.get("class_name")
    if cls in ("DTypePolicy", "Policy", "FloatDTypePolicy") and isinstance(obj.get("config"), dict):
        return obj["config"].get("name", "float32")
    if cls in ("__lambda__",):
        return copy.deepcopy(obj)        # code stays data, untouched
    if cls == "__tuple__" and isinstance(obj.get("config"), dict) and "value" in obj["config"]:
        return _clean_serialized(list(obj["config"]["value"]), keras3)
    out = {}
    for k, v in obj.items():
        if k in _SERIAL_JUNK and "class_name" in obj:
            continue
        out[k] = _clean_serialized(v, keras3)
    if "class_name" in out and isinstance(out.get("config"), dict):
        for k in KERAS3_ONLY_INITIALIZER_KEYS:     # Keras 3.x GlorotUniform etc.
            if k in out["config"] and out["config"][k] is None:
                del out["config"][k]
    return out


def normalise_layer_config(op, config, keras3=False):
    """Canonical Keras-2 `get_config()` spelling of one layer config (a new dict)."""
    if not isinstance(config, dict):
        raise ConfigProblem(f"layer {op!r}: config must be a dict, got {type(config).__name__}")
    cfg = {}
    drop = set(KERAS3_ONLY_KEYS) | set(KERAS3_ONLY_KEYS_BY_OP.get(op, ()))
    for k, v in config.items():
        if k in drop:
            continue
        if k in _WRAPPER_KEYS and isinstance(v, dict) and "class_name" in v:
            inner_op = v.get("class_name")
            cfg[k] = {"class_name": inner_op,
                      "config": normalise_layer_config(inner_op, v.get("config") or {}, keras3)}
            continue
        cfg[k] = _clean_serialized(v, keras3)
    if isinstance(cfg.get("dtype"), dict):        # a policy the cleaner did not recognise
        cfg["dtype"] = (cfg["dtype"].get("config") or {}).get("name", "float32")
    if cfg.get("time_major") is False:
        del cfg["time_major"]
    if cfg.get("zero_output_for_mask") is False:
        del cfg["zero_output_for_mask"]
    if op == "LeakyReLU" and "negative_slope" in cfg:
        cfg["alpha"] = cfg.pop("negative_slope")
    if op == "LayerNormalization" and isinstance(cfg.get("axis"), int):
        cfg["axis"] = [cfg["axis"]]
    if keras3 and op == "Embedding":
        cfg.setdefault("input_length", None)      # Keras 2 get_config always has it
    if keras3:
        for k in _ACTIVATION_KEYS:
            if cfg.get(k) == "hard_sigmoid":
                cfg[k] = "keras3_hard_sigmoid"
    return cfg


def _keras3_layer_config(op, config, where):
    """The inverse for the Keras 3 dialect: modelkit names -> Keras 3 names."""
    cfg = {}
    for k, v in config.items():
        if k in _WRAPPER_KEYS and isinstance(v, dict) and "class_name" in v:
            inner_op = v["class_name"]
            cfg[k] = {"module": "keras.layers", "class_name": inner_op,
                      "config": _keras3_layer_config(inner_op, v.get("config") or {}, where),
                      "registered_name": None}
            continue
        cfg[k] = copy.deepcopy(v)
    for k in _ACTIVATION_KEYS:
        if cfg.get(k) == "keras3_hard_sigmoid":
            cfg[k] = "hard_sigmoid"
        elif cfg.get(k) == "hard_sigmoid":
            raise UnsupportedError(
                f"{where}: {k}='hard_sigmoid' (Keras 2: clip(0.2x+0.5)) has no Keras 3 "
                f"equivalent; save with dialect='keras2'", items=[where])
    if op == "LeakyReLU" and "alpha" in cfg:
        cfg["negative_slope"] = cfg.pop("alpha")
    if op == "LayerNormalization" and isinstance(cfg.get("axis"), list) and len(cfg["axis"]) == 1:
        cfg["axis"] = cfg["axis"][0]
    if op == "Embedding":
        cfg.pop("input_length", None)
    cfg.pop("time_major", None)
    cfg.pop("batch_input_shape", None)    # Keras 3 refuses it; its InputLayer has the shape
    for k, v in list(cfg.items()):
        if isinstance(v, dict) and "class_name" in v and "config" in v and k not in _WRAPPER_KEYS:
            if k.endswith("initializer") or k.endswith("regularizer") or k.endswith("constraint"):
                kind = ("initializers" if k.endswith("initializer") else
                        "regularizers" if k.endswith("regularizer") else "constraints")
                cfg[k] = {"module": f"keras.{kind}", **v, "registered_name": None}
    return cfg


# where Keras 3 finds a wrapped whole model's class
_KERAS3_MODULES = {"Sequential": "keras", "Functional": "keras.src.models.functional",
                   "Model": "keras.src.models.functional"}


def _keras2_layer_config(op, config):
    cfg = copy.deepcopy(config)
    if cfg.get("time_major") is False:
        del cfg["time_major"]         # Keras 3 refuses it; tf-keras defaults it to False
    for k in _WRAPPER_KEYS:
        v = cfg.get(k)
        if isinstance(v, dict) and isinstance(v.get("config"), dict):
            v["config"] = _keras2_layer_config(v.get("class_name"), v["config"])
            # tf-keras writes (and ignores) these; Keras 3 needs them to find a wrapped
            # built-in layer class, so a wrapper written here loads in both
            v.setdefault("module", _KERAS3_MODULES.get(v.get("class_name"), "keras.layers"))
            v.setdefault("registered_name", None)
    return cfg


# ---------------------------------------------------------------------------------------
# reading

# Keras 3 op layers that only compute a mask (see _functional_to_graph)
_MASK_OPS = ("NotEqual", "Any")


def keras_config_to_graph(model_config, weights=None, keras_version=None):
    """Convert a Keras model config (`{"class_name", "config"}`, either dialect) to a Graph.

    `weights` (optional) maps a layer name to its stored weights, a list of
    `(weight_name, array)` pairs in file order (weight names as stored, `:0` or not), the
    way the `model_weights` group of an .h5 file holds them; a nested model's entry holds
    all of its weights. `keras_version` (e.g. "2.15.0", "3.5.0") decides which
    `hard_sigmoid` a file means; without it the dialect is guessed from the config.
    """
    if not isinstance(model_config, dict):
        raise ConfigProblem(f"model config must be a JSON object, got {type(model_config).__name__}")
    major = _major(keras_version)
    keras3 = (major >= 3) if major is not None else is_keras3_config(model_config)
    try:
        graph = _model_to_graph(model_config, keras3, "model")
    except (ConfigProblem, IRError, UnsupportedError):
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise ConfigProblem(f"model config is malformed: {type(e).__name__}: {e}") from None
    graph.metadata["keras_version"] = (str(keras_version) if keras_version is not None
                                       else ("3" if keras3 else "2"))
    if weights is not None:
        attach_layer_weights(graph, weights)
    attach_wrapped_models(graph, keras3)
    try:
        graph.validate()
    except IRError as e:
        raise ConfigProblem(f"model config does not describe a valid graph: {e}") from None
    return graph


def attach_wrapped_models(graph, keras3):
    """Give a wrapper of a whole model (`TimeDistributed(model)`) the model as `subgraph`, with
    the wrapper's weights in the model's layer order, as modelkit's model bridge does; the ONNX
    exporter inlines it. Wrappers whose weights are not loaded (yet) are left as they are."""
    for node in graph.nodes:
        if node.subgraph is not None:
            if node.op in NESTED_MODEL_OPS:
                attach_wrapped_models(node.subgraph, keras3)
            continue
        inner = node.config.get("layer")
        if not (isinstance(inner, dict) and inner.get("class_name") in NESTED_MODEL_OPS):
            continue
        if not node.weights or any(k not in graph.weights for k in node.weights):
            continue
        sub = _model_to_graph(inner, keras3, f"layer {node.name!r}")
        # Keras (and modelkit) store the wrapped model's weights in the wrapper's group,
        # named after the inner layers (`frame_dense/kernel:0`): hand each to its layer.
        holder = Node(node.name, inner.get("class_name"), {}, [], [], subgraph=sub)
        try:
            _attach_nested(holder, [(k, graph.weights[k]) for k in node.weights])
        except ConfigProblem as e:
            raise ConfigProblem(f"layer {node.name!r} ({node.op}): {e}") from None
        node.subgraph = sub
        # the wrapper's own keys follow the model's (Keras 3 spells `td/step_seq/dense/kernel`
        # what tf-keras spells `td/dense/kernel`), in Keras's weight order
        for key in node.weights:
            del graph.weights[key]
        node.weights = []
        for g, key in keras_weight_order(holder):
            graph.weights[f"{node.name}/{key}"] = g.weights[key]
            node.weights.append(f"{node.name}/{key}")


def _model_to_graph(model_config, keras3, where):
    cls = model_config.get("class_name")
    cfg = model_config.get("config")
    if cls == "Sequential":
        g = _sequential_to_graph(cfg, keras3, where)
        g.metadata["model_class"] = "Sequential"
    elif cls in ("Functional", "Model"):
        if not isinstance(cfg, dict):
            raise ConfigProblem(f"{where}: {cls} config must be a dict")
        g = _functional_to_graph(cfg, keras3, where)
        g.metadata["model_class"] = "Functional"
    else:
        raise ConfigProblem(f"{where}: top-level class_name must be Sequential, Functional or "
                            f"Model, got {cls!r}")
    return g


def _layer_name(layer, where):
    name = layer.get("name") or (layer.get("config") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise ConfigProblem(f"{where}: a layer ({layer.get('class_name')!r}) has no name")
    return name


def _input_spec(layer_cfg, name, where):
    shape = layer_cfg.get("batch_input_shape", layer_cfg.get("batch_shape"))
    if shape is None and layer_cfg.get("input_shape") is not None:
        shape = [layer_cfg.get("batch_size")] + list(layer_cfg["input_shape"])
    if shape is None:
        raise ConfigProblem(f"{where}: input {name!r} has no shape")
    dtype = layer_cfg.get("dtype") or "float32"
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name", "float32")
    try:
        return TensorSpec(name, tuple(shape), dtype)
    except (TypeError, ValueError) as e:
        raise ConfigProblem(f"{where}: input {name!r} has a bad shape/dtype "
                            f"({shape!r}, {dtype!r}): {e}") from None


def _make_node(layer, keras3, where, name=None):
    op = layer.get("class_name")
    if not isinstance(op, str) or not op:
        raise ConfigProblem(f"{where}: a layer has no class_name")
    name = name or _layer_name(layer, where)
    lcfg = layer.get("config")
    if op in NESTED_MODEL_OPS:
        sub = _model_to_graph({"class_name": op, "config": lcfg}, keras3, f"{where}/{name}")
        op = "Sequential" if op == "Sequential" else "Functional"
        node_cfg = {"name": name}
        if isinstance(lcfg, dict) and "trainable" in lcfg:
            node_cfg["trainable"] = lcfg["trainable"]
        return Node(name=name, op=op, config=node_cfg, calls=[], weights=[], subgraph=sub)
    if lcfg is None:
        lcfg = {}
    cfg = normalise_layer_config(op, lcfg, keras3)
    cfg["name"] = name
    return Node(name=name, op=op, config=cfg, calls=[], weights=[])


def _sequential_to_graph(cfg, keras3, where):
    if isinstance(cfg, list):            # Keras <= 2.2: the config is the layer list
        layers, name = cfg, "sequential"
    elif isinstance(cfg, dict):
        layers, name = cfg.get("layers"), cfg.get("name") or "sequential"
    else:
        raise ConfigProblem(f"{where}: Sequential config must be a dict or a list")
    if not isinstance(layers, list) or not layers:
        raise ConfigProblem(f"{where}: Sequential {name!r} has no layers")
    layers = list(layers)
    spec = None
    if isinstance(layers[0], dict) and layers[0].get("class_name") == "InputLayer":
        first = layers.pop(0)
        spec = _input_spec(first.get("config") or {}, _layer_name(first, where), where)
    if not layers:
        raise ConfigProblem(f"{where}: Sequential {name!r} has only an InputLayer")
    nodes = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ConfigProblem(f"{where}: layer #{i} of Sequential {name!r} is not a dict")
        node = _make_node(layer, keras3, f"{where}/{name}")
        if i == 0:
            lc = layer.get("config") if isinstance(layer.get("config"), dict) else {}
            if spec is None:
                if node.subgraph is not None:
                    spec = TensorSpec(f"{node.name}_input", node.subgraph.inputs[0].shape,
                                      node.subgraph.inputs[0].dtype)
                elif isinstance(cfg, dict) and cfg.get("build_input_shape") is not None:
                    spec = TensorSpec(f"{node.name}_input", tuple(cfg["build_input_shape"]),
                                      _dtype_name(lc.get("dtype")))
                else:
                    spec = _input_spec(lc, f"{node.name}_input", f"{where}/{name}")
            for k in _INPUT_SHAPE_KEYS + ("batch_shape",):
                node.config.pop(k, None)
        prev = TensorRef(spec.name, 0, 0) if i == 0 else TensorRef(nodes[-1].name, 0, 0)
        node.calls = [[prev]]
        nodes.append(node)
    return Graph(name=name, inputs=[spec], outputs=[TensorRef(nodes[-1].name, 0, 0)],
                 nodes=nodes, metadata={})


def _dtype_name(d):
    if isinstance(d, dict):
        return (d.get("config") or {}).get("name", "float32")
    return d or "float32"


def _wrap_refs(refs):
    """`input_layers`/`output_layers`: a list of [name, node, tensor] (or one such triple)."""
    if not isinstance(refs, list):
        raise ConfigProblem(f"input_layers/output_layers must be lists, got {refs!r}")
    if len(refs) == 3 and isinstance(refs[0], str) and not isinstance(refs[1], list):
        return [refs]
    return refs


def _keras_tensors(obj, out, depth=0):
    """Collect keras_history triples of `__keras_tensor__` entries in Keras 3 node args."""
    if depth > 100:
        raise ConfigProblem("node arguments nest too deeply")
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            hist = (obj.get("config") or {}).get("keras_history")
            if not isinstance(hist, list) or len(hist) != 3:
                raise ConfigProblem(f"__keras_tensor__ without a keras_history: {obj!r}")
            out.append(hist)
            return
        for v in obj.values():
            _keras_tensors(v, out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _keras_tensors(v, out, depth + 1)


def _parse_calls(layer, where):
    """inbound_nodes -> list of calls, each a list of [name, node_index, tensor_index] and
    the names of tensors that were passed as `mask=` (Keras 3)."""
    nodes = layer.get("inbound_nodes") or []
    if not isinstance(nodes, list):
        raise ConfigProblem(f"{where}: inbound_nodes must be a list")
    calls, masks = [], []
    for n in nodes:
        refs, mask_refs = [], []
        if isinstance(n, dict):                                   # Keras 3
            _keras_tensors(n.get("args", []), refs)
            kwargs = n.get("kwargs") or {}
            if not isinstance(kwargs, dict):
                raise ConfigProblem(f"{where}: node kwargs must be a dict")
            for k, v in kwargs.items():
                if k == "mask":
                    _keras_tensors(v, mask_refs)
                else:
                    _keras_tensors(v, refs)                       # e.g. initial_state
        elif isinstance(n, list):                                 # Keras 2
            for item in n:
                if not isinstance(item, list) or len(item) < 3:
                    raise ConfigProblem(f"{where}: bad inbound node entry {item!r}")
                refs.append(item[:3])
        else:
            raise ConfigProblem(f"{where}: bad inbound node {n!r}")
        calls.append(refs)
        masks.append(mask_refs)
    return calls, masks


def _functional_to_graph(cfg, keras3, where):
    name = cfg.get("name") or "model"
    layers = cfg.get("layers")
    if not isinstance(layers, list):
        raise ConfigProblem(f"{where}: Functional {name!r} has no layer list")
    where = f"{where}/{name}" if where != "model" else name
    specs, nodes, raw_calls, raw_masks = {}, {}, {}, {}
    order = []
    for layer in layers:
        if not isinstance(layer, dict):
            raise ConfigProblem(f"{where}: a layer entry is not a dict")
        lname = _layer_name(layer, where)
        if lname in specs or lname in nodes:
            raise ConfigProblem(f"{where}: layer name {lname!r} is used twice")
        if layer.get("class_name") == "InputLayer":
            specs[lname] = _input_spec(layer.get("config") or {}, lname, where)
            continue
        nodes[lname] = _make_node(layer, keras3, where, lname)
        raw_calls[lname], raw_masks[lname] = _parse_calls(layer, f"{where}/{lname}")
        order.append(lname)

    # Keras 3 writes the mask of Embedding(mask_zero=True) as an explicit NotEqual node, and
    # that of Masking as NotEqual -> Any, feeding the RNN's `mask=`; modelkit (like Keras 2)
    # propagates masks implicitly, so such nodes are dropped when only masks consume them.
    outputs = {r[0] for r in _wrap_refs(cfg.get("output_layers") or []) if isinstance(r, list)}
    dropped = True
    while dropped:
        used = outputs | {r[0] for ln in order for call in raw_calls[ln] for r in call}
        dropped = [ln for ln in order if nodes[ln].op in _MASK_OPS and ln not in used]
        for ln in dropped:
            order.remove(ln)
            del nodes[ln]

    all_items = [item for ln in order for call in raw_calls[ln] for item in call]
    out_items = _wrap_refs(cfg.get("output_layers") or [])

    def node_offset(lname):
        """Keras numbers the calls of a nested model from 1 (its node 0 links its own
        input to its output and is not saved); Keras 3 files are checked, not assumed."""
        n = nodes.get(lname)
        if n is None or n.subgraph is None:
            return 0
        if not keras3:
            return 1
        # Keras 3 numbers them from 0; an index past the last call means the old scheme
        used = [it[1] for it in all_items + list(out_items)
                if isinstance(it, list) and len(it) > 1 and it[0] == lname]
        if any(isinstance(u, int) and u >= len(raw_calls[lname]) for u in used):
            return 1
        return 0

    offsets = {ln: node_offset(ln) for ln in order}

    def to_ref(item, ctx):
        if not isinstance(item, list) or len(item) < 3:
            raise ConfigProblem(f"{ctx}: bad tensor reference {item!r}")
        lname, ni, ti = item[0], item[1], item[2]
        if not isinstance(lname, str):
            raise ConfigProblem(f"{ctx}: bad tensor reference {item!r}")
        try:
            ni, ti = int(ni), int(ti)
        except (TypeError, ValueError):
            raise ConfigProblem(f"{ctx}: bad tensor reference {item!r}") from None
        if lname in specs:
            return TensorRef(lname, 0, ti)
        if lname not in nodes:
            raise ConfigProblem(f"{ctx}: refers to unknown layer {lname!r}")
        return TensorRef(lname, max(ni - offsets[lname], 0), ti)

    for ln in order:
        nodes[ln].calls = [[to_ref(item, f"{where}/{ln}") for item in call]
                           for call in raw_calls[ln]]
        nodes[ln].calls = [c for c in nodes[ln].calls if c] or nodes[ln].calls
    inputs = []
    for item in _wrap_refs(cfg.get("input_layers") or []):
        if not isinstance(item, list) or not item or item[0] not in specs:
            raise ConfigProblem(f"{where}: input_layers names an unknown input {item!r}")
        inputs.append(specs[item[0]])
    if not inputs:
        inputs = list(specs.values())
    outputs = [to_ref(item, f"{where} output") for item in out_items]
    ordered = _topological([nodes[ln] for ln in order], set(specs))
    return Graph(name=name, inputs=inputs, outputs=outputs, nodes=ordered, metadata={})


def _topological(nodes, inputs):
    """Stable topological order (Keras lists layers by first call; a shared layer's later
    call may use a layer listed after it). Cycles are left for `Graph.validate` to report."""
    remaining = list(nodes)
    done = set(inputs)
    out = []
    while remaining:
        for i, n in enumerate(remaining):
            if all(r.node in done for call in n.calls for r in call):
                out.append(n)
                done.add(n.name)
                del remaining[i]
                break
        else:
            out.extend(remaining)
            break
    return out


# ---------------------------------------------------------------------------------------
# weights

def _strip_suffix(w):
    return w[:-2] if w.endswith(":0") else w


def _ir_key(stored, owner, model_name=None):
    """IR weight key `<owner>/<variable>` from a stored weight name (either Keras).

    Keras 3 prefixes a top-level Sequential's name (`my_model/dense/kernel`): dropped."""
    w = _strip_suffix(stored)
    if model_name and w.startswith(model_name + "/"):
        rest = w[len(model_name) + 1:]
        if owner in rest.split("/")[:-1]:
            w = rest
    if w.startswith(owner + "/"):
        return w
    parts = w.split("/")
    if owner in parts[:-1]:
        i = parts.index(owner)
        return "/".join(parts[i:])
    return f"{owner}/{w}"


def attach_layer_weights(graph, layer_weights):
    """Give each node of `graph` its weights from `{layer_name: [(stored_name, array)]}`."""
    for node in graph.nodes:
        entries = layer_weights.get(node.name)
        if not entries:
            continue
        if node.subgraph is not None:
            _attach_nested(node, entries)
            continue
        node.weights = []
        for stored, arr in entries:
            key = _ir_key(stored, node.name, graph.name)
            base, k = key, 1
            while key in graph.weights:
                key = f"{base}_{k}"
                k += 1
            graph.weights[key] = arr
            node.weights.append(key)
    return graph


def _all_leaf_nodes_path(graph, prefix):
    for n in graph.nodes:
        if n.subgraph is not None:
            yield from _all_leaf_nodes_path(n.subgraph, prefix + (n.name,))
        else:
            yield prefix, n


def _attach_nested(node, entries):
    """A nested model's group holds all its weights; hand each to the sub-layer it names."""
    sub = node.subgraph
    per = {}
    leaves = list(_all_leaf_nodes_path(sub, ()))
    names = {leaf.name: (path, leaf) for path, leaf in leaves}
    # a wrapper of a whole model (TimeDistributed(model)) owns its inner layers' weights
    for path, leaf in leaves:
        for inner in _wrapped_model_layer_names(leaf.config.get("layer")):
            names.setdefault(inner, (path, leaf))
    for stored, arr in entries:
        parts = _strip_suffix(stored).split("/")
        owner = next((p for p in parts[:-1] if p in names), None)
        if owner is None:
            raise ConfigProblem(f"nested model {node.name!r}: weight {stored!r} names no layer "
                                f"of the nested model (layers: {sorted(names)})")
        per.setdefault(names[owner][1].name, []).append((stored, arr))
    for owner, items in per.items():
        path, leaf = names[owner]
        g = sub
        for p in path:
            g = g.node(p).subgraph
        attach_layer_weights(g, {owner: items})


def _wrapped_model_layer_names(config):
    """Names of every layer inside a wrapped model's config (nested ones too); [] when the
    config is not a model."""
    if not (isinstance(config, dict) and config.get("class_name") in NESTED_MODEL_OPS):
        return []
    out = []
    for layer in (config.get("config") or {}).get("layers") or []:
        if not isinstance(layer, dict):
            continue
        out.append(layer.get("name") or (layer.get("config") or {}).get("name"))
        out += _wrapped_model_layer_names(layer)
        out += _wrapped_model_layer_names((layer.get("config") or {}).get("layer"))
    return [n for n in out if isinstance(n, str)]


def keras_weight_order(graph_or_node, graph=None):
    """The (graph, key) pairs a Keras file stores for a node: its own weights in order, or
    for a nested model all sub-layer weights, trainable ones first (Keras's
    `model.trainable_weights + model.non_trainable_weights`)."""
    node = graph_or_node
    if node.subgraph is None:
        return [(graph, k) for k in node.weights]
    trainable, frozen = [], []
    _collect_nested(node.subgraph, trainable, frozen, True)
    return trainable + frozen


def _collect_nested(g, trainable, frozen, parent_trainable):
    for n in g.nodes:
        t = parent_trainable and n.config.get("trainable", True) is not False
        if n.subgraph is not None:
            _collect_nested(n.subgraph, trainable, frozen, t)
            continue
        for k in n.weights:
            (trainable if t and not non_trainable_variable(k) else frozen).append((g, k))


# ---------------------------------------------------------------------------------------
# writing

def _is_chain(graph):
    if len(graph.inputs) != 1 or len(graph.outputs) != 1 or not graph.nodes:
        return False
    prev = TensorRef(graph.inputs[0].name, 0, 0)
    for n in graph.nodes:
        if len(n.calls) != 1 or n.calls[0] != [prev]:
            return False
        prev = TensorRef(n.name, 0, 0)
    return graph.outputs[0] == prev


def graph_to_keras_config(graph, dialect="keras2"):
    """The Keras model config (`{"class_name", "config"}`) of `graph`.

    dialect "keras2" is what tf-keras 2.x writes (and what Keras 3's legacy loader reads):
    `batch_input_shape`, list-form inbound nodes, no `time_major`. dialect "keras3" is what
    Keras 3 writes (`batch_shape`, dict-form nodes, `module`/`registered_name`,
    `hard_sigmoid` for modelkit's `keras3_hard_sigmoid`).
    """
    if dialect not in ("keras2", "keras3"):
        raise ValueError(f"dialect must be 'keras2' or 'keras3', got {dialect!r}")
    graph.validate()
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
    cfg = _keras3_layer_config(node.op, cfg, where) if keras3 else _keras2_layer_config(node.op, cfg)
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
    seq = graph.metadata.get("model_class") == "Sequential" and _is_chain(graph)
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
                    "config": {"shape": list(spec.shape) if spec else None,
                               "dtype": spec.dtype if spec else "float32",
                               "keras_history": [r.node, ni, r.tensor_index]}}
        return [r.node, ni, r.tensor_index, {}]

    layers = [_input_layer(s, keras3) for s in graph.inputs]
    for n in graph.nodes:
        e = _layer_entry(n, keras3)
        e["name"] = n.name
        if keras3:
            e["inbound_nodes"] = [
                {"args": [ref_item(call[0])] if len(call) == 1 else [[ref_item(r) for r in call]],
                 "kwargs": {}} for call in n.calls]
        else:
            e["inbound_nodes"] = [[ref_item(r) for r in call] for call in n.calls]
        layers.append(e)
    cfg = {"name": graph.name, "trainable": True, "layers": layers,
           "input_layers": [[s.name, 0, 0] for s in graph.inputs],
           "output_layers": [[r.node, r.call_index + (1 if r.node in nested and not keras3 else 0),
                              r.tensor_index] for r in graph.outputs]}
    out = {"class_name": "Functional", "config": cfg}
    if keras3:
        out = {"module": "keras.src.models.functional", **out, "registered_name": "Functional"}
    return out

"""Keras model config (either dialect) -> IR Graph."""

from __future__ import annotations

from modelkit.nesting import index_structure
from modelkit.errors import IRError, KerasConfigError, UnsupportedError
from modelkit.ir import CALL_FLAGS, NESTED_MODEL_OPS, Graph, Node, TensorRef, TensorSpec

from .dialect import CALL_TENSOR_ARGS, is_keras3_config, keras_major_version, normalise_layer_config
from .keras3_ops import is_keras3_op, keras3_op_node
from .tf_ops import TF_OP_LAYERS, tf_op_node
from .weights import attach_layer_weights, attach_nested, keras_weight_order

_INPUT_SHAPE_KEYS = ("batch_input_shape", "batch_shape")


def keras_config_to_graph(model_config, weights=None, keras_version=None):
    """Convert a Keras model config (`{"class_name", "config"}`, either dialect) to a Graph.

    `weights` (optional) maps a layer name to its stored weights, a list of
    `(weight_name, array)` pairs in file order (weight names as stored, `:0` or not), the
    way the `model_weights` group of an .h5 file holds them; a nested model's entry holds
    all of its weights. `keras_version` (e.g. "2.15.0", "3.5.0") decides which
    `hard_sigmoid` a file means; without it the dialect is guessed from the config.
    """
    if not isinstance(model_config, dict):
        raise KerasConfigError(f"model config must be a JSON object, got {type(model_config).__name__}")
    major = keras_major_version(keras_version)
    keras3 = (major >= 3) if major is not None else is_keras3_config(model_config)
    try:
        graph = _model_to_graph(model_config, keras3, "model")
    except (KerasConfigError, IRError, UnsupportedError):
        raise
    except RecursionError:
        raise KerasConfigError("model config nests too deeply (or refers to itself)") from None
    except Exception as e:      # noqa: BLE001 - a malformed config is a KerasConfigError
        raise KerasConfigError(f"model config is malformed: {type(e).__name__}: {e}") from None
    graph.metadata["keras_version"] = (str(keras_version) if keras_version is not None
                                       else ("3" if keras3 else "2"))
    if weights is not None:
        attach_layer_weights(graph, weights)
    attach_wrapped_models(graph, keras3)
    try:
        graph.validate()
    except IRError as e:
        raise KerasConfigError(f"model config does not describe a valid graph: {e}") from None
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
            attach_nested(holder, [(k, graph.weights[k]) for k in node.weights])
        except KerasConfigError as e:
            raise KerasConfigError(f"layer {node.name!r} ({node.op}): {e}") from None
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
            raise KerasConfigError(f"{where}: {cls} config must be a dict")
        g = _functional_to_graph(cfg, keras3, where)
        g.metadata["model_class"] = "Functional"
    else:
        raise KerasConfigError(f"{where}: top-level class_name must be Sequential, Functional or "
                            f"Model, got {cls!r}")
    return g


def _layer_name(layer, where):
    name = layer.get("name") or (layer.get("config") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise KerasConfigError(f"{where}: a layer ({layer.get('class_name')!r}) has no name")
    return name


def _input_spec(layer_cfg, name, where):
    shape = layer_cfg.get("batch_input_shape", layer_cfg.get("batch_shape"))
    if shape is None and layer_cfg.get("input_shape") is not None:
        shape = [layer_cfg.get("batch_size")] + list(layer_cfg["input_shape"])
    if shape is None:
        raise KerasConfigError(f"{where}: input {name!r} has no shape")
    dtype = layer_cfg.get("dtype") or "float32"
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name", "float32")
    try:
        return TensorSpec(name, tuple(shape), dtype)
    except (TypeError, ValueError) as e:
        raise KerasConfigError(f"{where}: input {name!r} has a bad shape/dtype "
                            f"({shape!r}, {dtype!r}): {e}") from None


def _make_node(layer, keras3, where, name=None):
    op = layer.get("class_name")
    if not isinstance(op, str) or not op:
        raise KerasConfigError(f"{where}: a layer has no class_name")
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
        raise KerasConfigError(f"{where}: Sequential config must be a dict or a list")
    if not isinstance(layers, list) or not layers:
        raise KerasConfigError(f"{where}: Sequential {name!r} has no layers")
    layers = list(layers)
    spec = None
    if isinstance(layers[0], dict) and layers[0].get("class_name") == "InputLayer":
        first = layers.pop(0)
        spec = _input_spec(first.get("config") or {}, _layer_name(first, where), where)
    if not layers:
        raise KerasConfigError(f"{where}: Sequential {name!r} has only an InputLayer")
    nodes = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise KerasConfigError(f"{where}: layer #{i} of Sequential {name!r} is not a dict")
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
            for k in _INPUT_SHAPE_KEYS:
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


def _wrap_refs(refs, depth=0):
    """`input_layers`/`output_layers`: a list of [name, node, tensor] (or one such triple),
    flat; Keras nests them as the model's outputs are (an RNN's states per cell:
    [[rnn, 0, 0], [[rnn, 0, 1], [rnn, 0, 2]], [rnn, 0, 3]])."""
    if not isinstance(refs, list) or depth > 100:
        raise KerasConfigError(f"input_layers/output_layers must be lists, got {refs!r}")
    if len(refs) == 3 and isinstance(refs[0], str) and not isinstance(refs[1], list):
        return [refs]
    return [r for item in refs
            for r in (_wrap_refs(item, depth + 1) if _is_nested_refs(item) else [item])]


def _is_nested_refs(item):
    return isinstance(item, list) and bool(item) and isinstance(item[0], list)


def _keras_tensors(obj, out, depth=0):
    """Collect keras_history triples of `__keras_tensor__` entries in Keras 3 node args."""
    if depth > 100:
        raise KerasConfigError("node arguments nest too deeply")
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            hist = (obj.get("config") or {}).get("keras_history")
            if not isinstance(hist, list) or len(hist) != 3:
                raise KerasConfigError(f"__keras_tensor__ without a keras_history: {obj!r}")
            out.append(hist)
            return out
        for v in obj.values():
            _keras_tensors(v, out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _keras_tensors(v, out, depth + 1)
    return out


def _parse_calls(layer, where):
    """inbound_nodes -> list of calls, each a list of [name, node_index, tensor_index], the
    names of tensors that were passed as `mask=` (Keras 3) and each call's kwargs kept in the
    IR (the boolean flags of CALL_FLAGS, such as `training=`)."""
    nodes = layer.get("inbound_nodes") or []
    if not isinstance(nodes, list):
        raise KerasConfigError(f"{where}: inbound_nodes must be a list")
    named_args = CALL_TENSOR_ARGS.get(layer.get("class_name"))
    calls, masks, call_kwargs = [], [], []
    for n in nodes:
        refs, mask_refs, flags, named = [], [], {}, {}
        if isinstance(n, dict):                                   # Keras 3
            args = n.get("args", [])
            if named_args and isinstance(args, list):
                for name, arg in zip(named_args, args):
                    named[name] = _keras_tensors(arg, [])
            else:
                _keras_tensors(args, refs)
            kwargs = n.get("kwargs") or {}
            if not isinstance(kwargs, dict):
                raise KerasConfigError(f"{where}: node kwargs must be a dict")
            for k, v in kwargs.items():
                if k == "mask":
                    _keras_tensors(v, mask_refs)
                elif k in CALL_FLAGS:
                    flags[k] = v
                elif named_args and k in named_args:
                    named[k] = _keras_tensors(v, [])
                else:
                    _keras_tensors(v, refs)                       # e.g. initial_state
        elif isinstance(n, list):                                 # Keras 2
            for item in n:
                if not isinstance(item, list) or len(item) < 3:
                    raise KerasConfigError(f"{where}: bad inbound node entry {item!r}")
                refs.append(item[:3])
                if len(item) > 3 and isinstance(item[3], dict):
                    for k, v in item[3].items():
                        if k in CALL_FLAGS:
                            flags[k] = v
                        elif named_args and k in named_args:
                            named[k] = [v] if _is_ref(v) else []
            if named_args:
                named[named_args[0]] = refs
                refs = []
        else:
            raise KerasConfigError(f"{where}: bad inbound node {n!r}")
        if named_args:
            refs = _named_call(named_args, named, where)
        if isinstance(n, dict) and layer.get("class_name") in KERAS3_AUGMENTATION:
            flags.pop("training", None)
        calls.append(refs)
        masks.append(mask_refs)
        call_kwargs.append({k: v for k, v in flags.items() if isinstance(v, bool)})
    return calls, masks, call_kwargs


# Keras 3 records its augmentation layers' call default `training=True` in every node; its
# Functional replaces it with the model's own mode (predict: False), so the stored one is
# not kept
KERAS3_AUGMENTATION = ("RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
                       "RandomContrast", "RandomBrightness", "RandomCrop")


def _is_ref(v):
    return isinstance(v, list) and len(v) >= 3 and isinstance(v[0], str)


def _named_call(names, named, where):
    """The IR input list of a layer called with named tensors (MultiHeadAttention's query,
    value, key, attention_mask): in signature order, a missing key standing for the value
    when a later tensor is given."""
    got = {}
    for name, refs in named.items():
        if len(refs) > 1:
            raise KerasConfigError(f"{where}: argument {name!r} holds {len(refs)} tensors")
        if refs:
            got[name] = refs[0]
    out = []
    for i, name in enumerate(names):
        if name in got:
            out.append(got[name])
        elif any(later in got for later in names[i + 1:]):
            if i != 2 or names[1] not in got:
                raise KerasConfigError(f"{where}: the call has no {name!r} tensor")
            out.append(got[names[1]])                 # key defaults to value
    if out and len(out) < 2:
        raise KerasConfigError(f"{where}: the call names only {sorted(got)}")
    return out


# Keras 3 op layers that only compute a mask (see _functional_to_graph); LogicalOr/And merge
# the masks of a merge layer's inputs (an Add residual around MultiHeadAttention)
_MASK_OPS = ("NotEqual", "Any", "LogicalOr", "LogicalAnd")


def _functional_to_graph(cfg, keras3, where):
    name = cfg.get("name") or "model"
    layers = cfg.get("layers")
    if not isinstance(layers, list):
        raise KerasConfigError(f"{where}: Functional {name!r} has no layer list")
    where = f"{where}/{name}" if where != "model" else name
    specs, nodes, raw_calls, raw_masks, raw_kwargs = {}, {}, {}, {}, {}
    order = []
    for layer in layers:
        if not isinstance(layer, dict):
            raise KerasConfigError(f"{where}: a layer entry is not a dict")
        lname = _layer_name(layer, where)
        if lname in specs or lname in nodes:
            raise KerasConfigError(f"{where}: layer name {lname!r} is used twice")
        if layer.get("class_name") == "InputLayer":
            specs[lname] = _input_spec(layer.get("config") or {}, lname, where)
            continue
        op_node = (tf_op_node if layer.get("class_name") in TF_OP_LAYERS
                   else keras3_op_node if is_keras3_op(layer)
                   and layer.get("class_name") not in _MASK_OPS else None)
        if op_node is not None:    # TF ops (tf-keras), operations (Keras 3; not mask-only)
            op_cfg, raw_calls[lname] = op_node(layer, f"{where}/{lname}")
            nodes[lname] = Node(name=lname, op="BackendOp", config=op_cfg)
            raw_masks[lname] = [[] for _ in raw_calls[lname]]
            raw_kwargs[lname] = [{} for _ in raw_calls[lname]]
        else:
            nodes[lname] = _make_node(layer, keras3, where, lname)
            raw_calls[lname], raw_masks[lname], raw_kwargs[lname] = _parse_calls(
                layer, f"{where}/{lname}")
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

    uses = {}                         # layer name -> node indices used in references
    for it in all_items + list(out_items):
        if isinstance(it, list) and len(it) > 1 and isinstance(it[0], str):
            uses.setdefault(it[0], []).append(it[1])

    def node_offset(lname):
        """Keras numbers the calls of a nested model from 1 (its node 0 links its own
        input to its output and is not saved); Keras 3 files are checked, not assumed."""
        n = nodes.get(lname)
        if n is None or n.subgraph is None:
            return 0
        if not keras3:
            return 1
        # Keras 3 numbers them from 0; an index past the last call means the old scheme
        used = uses.get(lname, ())
        if any(isinstance(u, int) and u >= len(raw_calls[lname]) for u in used):
            return 1
        return 0

    offsets = {ln: node_offset(ln) for ln in order}

    def to_ref(item, ctx):
        if not isinstance(item, list) or len(item) < 3:
            raise KerasConfigError(f"{ctx}: bad tensor reference {item!r}")
        lname, ni, ti = item[0], item[1], item[2]
        if not isinstance(lname, str):
            raise KerasConfigError(f"{ctx}: bad tensor reference {item!r}")
        try:
            ni, ti = int(ni), int(ti)
        except (TypeError, ValueError):
            raise KerasConfigError(f"{ctx}: bad tensor reference {item!r}") from None
        if lname in specs:
            return TensorRef(lname, 0, ti)
        if lname not in nodes:
            raise KerasConfigError(f"{ctx}: refers to unknown layer {lname!r}")
        return TensorRef(lname, max(ni - offsets[lname], 0), ti)

    for ln in order:
        calls = [[to_ref(item, f"{where}/{ln}") for item in call] for call in raw_calls[ln]]
        kept = [i for i, c in enumerate(calls) if c] or list(range(len(calls)))
        nodes[ln].calls = [calls[i] for i in kept]
        nodes[ln].call_kwargs = [raw_kwargs[ln][i] for i in kept]
    inputs = []
    for item in _wrap_refs(cfg.get("input_layers") or []):
        if not isinstance(item, list) or not item or item[0] not in specs:
            raise KerasConfigError(f"{where}: input_layers names an unknown input {item!r}")
        inputs.append(specs[item[0]])
    if not inputs:
        inputs = list(specs.values())
    outputs = [to_ref(item, f"{where} output") for item in out_items]
    ordered = _topological([nodes[ln] for ln in order], set(specs))
    metadata = {}
    if any(_is_nested_refs(item) for item in cfg.get("output_layers") or []):
        metadata["output_structure"] = index_structure(
            cfg["output_layers"], lambda r: not r or isinstance(r[0], str))
    return Graph(name=name, inputs=inputs, outputs=outputs, nodes=ordered, metadata=metadata)


def _topological(nodes, inputs):
    """Stable topological order (Keras lists layers by first call; a shared layer's later
    call may use a layer listed after it): repeatedly the first listed node whose inputs
    are all available, in O(n log n) (a long config must not take quadratic time). Cycles
    are left for `Graph.validate` to report."""
    import heapq
    waiting = []                     # per node: how many distinct producers it still needs
    users = {}
    for i, n in enumerate(nodes):
        deps = {r.node for call in n.calls for r in call if r.node not in inputs}
        waiting.append(len(deps))
        for d in deps:
            users.setdefault(d, []).append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    out, placed = [], set()
    while ready:
        i = heapq.heappop(ready)
        out.append(nodes[i])
        placed.add(i)
        for j in users.get(nodes[i].name, ()):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    out.extend(n for i, n in enumerate(nodes) if i not in placed)
    return out

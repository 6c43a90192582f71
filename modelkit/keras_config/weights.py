"""Keras weight naming: stored weight names <-> IR weight keys, and the order files store them in."""

from __future__ import annotations

import re

from modelkit.errors import KerasConfigError
from modelkit.ir import NESTED_MODEL_OPS


def strip_weight_suffix(w):
    """A stored weight name without its TensorFlow `:0` suffix."""
    return w[:-2] if w.endswith(":0") else w


def _ir_key(stored, owner, model_name=None):
    """IR weight key `<owner>/<variable>` from a stored weight name (either Keras).

    Keras 3 prefixes a top-level Sequential's name (`my_model/dense/kernel`): dropped."""
    w = strip_weight_suffix(stored)
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
            attach_nested(node, entries)
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


def attach_nested(node, entries):
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
        parts = strip_weight_suffix(stored).split("/")
        owner = next((p for p in parts[:-1] if p in names), None)
        if owner is None:
            raise KerasConfigError(f"nested model {node.name!r}: weight {stored!r} names no layer "
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


def trainable_weights_in_order(graph):
    """(graph, key) of every trainable weight, nested models included, in the order of
    Keras's `model.trainable_variables` (the order optimizers keep their slots in)."""
    trainable, frozen = [], []
    _collect_nested(graph, trainable, frozen, True)
    return trainable


def _collect_nested(g, trainable, frozen, parent_trainable):
    for n in g.nodes:
        t = parent_trainable and n.config.get("trainable", True) is not False
        if n.subgraph is not None:
            _collect_nested(n.subgraph, trainable, frozen, t)
            continue
        for k in n.weights:
            (trainable if t and not non_trainable_variable(k) else frozen).append((g, k))


def snake_case(name):
    """Keras's `to_snake_case` (used for `.keras` weight paths): "Conv2DTranspose" -> "conv2d_transpose"."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    s = re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()
    return s


_CELL = {"LSTM": "lstm_cell", "GRU": "gru_cell", "SimpleRNN": "simple_rnn_cell",
         "ConvLSTM1D": "conv_lstm_cell", "ConvLSTM2D": "conv_lstm_cell",
         "ConvLSTM3D": "conv_lstm_cell"}
_CELL_CLASSES = ("SimpleRNNCell", "GRUCell", "LSTMCell")
_CONV_LIKE = ("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
              "Conv3DTranspose", "Convolution1D", "Convolution2D", "Convolution3D",
              "LocallyConnected1D", "LocallyConnected2D")


# MultiHeadAttention's EinsumDense sublayers: Keras 2 variable prefix -> Keras 3 sub-object
MHA_SUBLAYERS = {"query": "query_dense", "key": "key_dense", "value": "value_dense",
                 "attention_output": "output_dense"}


_CELL_OWNERS = frozenset(_CELL) | {"RNN"}


def keras3_subobject(op, variable, config=None):
    """The Keras 3 `.keras` sub-object path under a layer's group that holds one of its
    variables (None: the layer's own `vars`): `cell` for a recurrent layer,
    `forward_layer/...` / `backward_layer/...` for Bidirectional, `layer/...` for
    TimeDistributed (the wrapped layer's own sub-objects follow), the EinsumDense
    sub-layers of MultiHeadAttention. `variable` is the IR key without the layer name."""
    cfg = config or {}
    if op == "MultiHeadAttention":
        return MHA_SUBLAYERS.get(variable.split("/", 1)[0])
    if op in _CELL_OWNERS:
        return "cell" + _stacked_cell_path(cfg, variable)
    if op == "TimeDistributed":
        return _under("layer", cfg.get("layer"), variable)
    if op == "Bidirectional":
        side, _, rest = variable.partition("/")
        if side.startswith("backward_"):
            return _under("backward_layer", cfg.get("backward_layer") or cfg.get("layer"), rest)
        return _under("forward_layer", cfg.get("layer"), rest)
    return None


def _stacked_cells(config):
    """The cell configs of an RNN config whose cell is a StackedRNNCells (None otherwise)."""
    cell = (config or {}).get("cell")
    if not (isinstance(cell, dict) and cell.get("class_name") == "StackedRNNCells"):
        return None
    return [c for c in (cell.get("config") or {}).get("cells") or [] if isinstance(c, dict)]


def _stacked_cell_path(config, variable):
    """`/cells/<name>` for a variable `stacked_rnn_cells/<cell>/kernel` of a stacked RNN: Keras 3
    names a list's objects by snake-case class name, `_1`, `_2`, ... for repeats ("" else)."""
    cells = _stacked_cells(config)
    if cells is None:
        return ""
    parts = variable.split("/")
    used = {}
    for c in cells:
        base = snake_case(c.get("class_name") or "cell")
        k3 = base if base not in used else f"{base}_{used[base] + 1}"
        used[base] = used.get(base, -1) + 1
        if len(parts) > 2 and (c.get("config") or {}).get("name") == parts[1]:
            return f"/cells/{k3}"
    return ""


def _under(slot, inner, variable):
    """`slot`, then the wrapped layer's own sub-object path for `variable`."""
    inner = inner if isinstance(inner, dict) else {}
    sub = keras3_subobject(inner.get("class_name"), variable, inner.get("config"))
    return f"{slot}/{sub}" if sub else slot


def variable_names(op, config):
    """The Keras-2 variable names (without the layer prefix) of a layer, in weight order.

    Used where a file stores weights without names (Keras 3 `layers/<x>/vars/<i>`).
    Returns None for ops not in the table (the caller then numbers them).
    """
    cfg = config or {}
    bias = ["bias"] if cfg.get("use_bias", True) else []
    if op == "Dense" or op in _CONV_LIKE:
        return ["kernel"] + bias
    if op in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return ["depthwise_kernel"] + bias
    if op in ("SeparableConv1D", "SeparableConv2D"):
        return ["depthwise_kernel", "pointwise_kernel"] + bias
    if op == "BatchNormalization":
        return ((["gamma"] if cfg.get("scale", True) else [])
                + (["beta"] if cfg.get("center", True) else [])
                + ["moving_mean", "moving_variance"])
    if op == "Normalization":
        return None if cfg.get("mean") is not None else ["mean", "variance", "count"]
    if op in ("LayerNormalization", "GroupNormalization"):
        return ((["gamma"] if cfg.get("scale", True) else [])
                + (["beta"] if cfg.get("center", True) else []))
    if op == "Embedding":
        return ["embeddings"]
    if op == "PReLU":
        return ["alpha"]
    if op in _CELL:
        return [f"{_CELL[op]}/{v}" for v in ["kernel", "recurrent_kernel"] + bias]
    if op == "RNN":
        cell = cfg.get("cell") if isinstance(cfg.get("cell"), dict) else {}
        cell_op = cell.get("class_name")
        cells = _stacked_cells(cfg)
        if cells is not None:
            prefix = (cell.get("config") or {}).get("name") or "stacked_rnn_cells"
            out = []
            for c in cells:
                inner = variable_names("RNN", {"cell": c})
                if inner is None:
                    return None
                out += [f"{prefix}/{v}" for v in inner]
            return out
        if cell_op not in _CELL_CLASSES:
            return None
        ccfg = cell.get("config") or {}
        prefix = ccfg.get("name") or snake_case(cell_op)
        cbias = ["bias"] if ccfg.get("use_bias", True) else []
        return [f"{prefix}/{v}" for v in ["kernel", "recurrent_kernel"] + cbias]
    if op == "Bidirectional":
        inner = cfg.get("layer") or {}
        back = cfg.get("backward_layer") or inner
        iname = (inner.get("config") or {}).get("name", "layer")
        bname = (back.get("config") or {}).get("name", iname)
        f = variable_names(inner.get("class_name"), inner.get("config"))
        b = variable_names(back.get("class_name"), back.get("config"))
        if f is None or b is None:
            return None
        return [f"forward_{iname}/{v}" for v in f] + [f"backward_{bname}/{v}" for v in b]
    if op in ("Attention", "AdditiveAttention"):
        return ((["scale"] if cfg.get("use_scale", op == "AdditiveAttention") else [])
                + (["concat_score_weight"] if cfg.get("score_mode") == "concat" else []))
    if op == "MultiHeadAttention":
        return [f"{part}/{v}" for part in MHA_SUBLAYERS for v in ["kernel"] + bias]
    if op == "TimeDistributed":
        inner = cfg.get("layer") or {}
        return variable_names(inner.get("class_name"), inner.get("config"))
    return None


def non_trainable_variable(key):
    """Whether a weight is non-trainable by its name alone (BatchNormalization statistics)."""
    base = key.rsplit("/", 1)[-1]
    return base in ("moving_mean", "moving_variance")

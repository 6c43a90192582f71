"""`modelkit summary MODEL`: describe an .onnx model or a Keras .h5/.keras file.

ONNX: inputs and outputs (shapes, dtypes), IR version, opsets, op-type counts (subgraphs
included) and the parameter count (elements of floating-point initializers and Constant
tensors; integer constants such as shapes are counted apart).

HDF5 / .keras: a Keras-style layer table built from the IR graph (`load_graph`), without
the layer classes: "Layer (type)", "Output Shape" (inferred from the layer configs for
common layers, '?' otherwise), "Param #" (from the weights), plus "Connected to" for
graphs that are not a plain chain.
"""

from __future__ import annotations

import math
import os
from collections import Counter

from modelkit.errors import ModelLoadError

from .commands import register

EXAMPLE = """  modelkit summary model.onnx
  modelkit summary model.h5"""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="model file (.onnx, .h5, .hdf5, .keras)")


def run(args):
    from modelkit.converters import formats
    path = args.model
    fmt = formats.format_of(path)
    text = onnx_summary(path) if fmt is formats.ONNX else graph_summary(fmt.read(path))
    print(text)
    return 0


register("summary", add_arguments, run, example=EXAMPLE)


# -- ONNX -------------------------------------------------------------------------------

def _onnx_dtype(elem_type):
    import onnx
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _value_info(vi):
    t = vi.type
    if t.HasField("tensor_type"):
        tt = t.tensor_type
        dims = []
        if tt.HasField("shape"):
            for d in tt.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(str(d.dim_value))
                elif d.dim_param:
                    dims.append(d.dim_param)
                else:
                    dims.append("None")
            shape = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
        else:
            shape = "?"
        return shape, _onnx_dtype(tt.elem_type)
    return "?", t.WhichOneof("value") or "?"


def _walk_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g and attr.g.node:
                yield from _walk_nodes(attr.g)
            for g in attr.graphs:
                yield from _walk_nodes(g)


def _table(rows, header=None, indent="  "):
    rows = [list(map(str, r)) for r in rows]
    allrows = ([list(header)] if header else []) + rows
    if not allrows:
        return []
    widths = [max(len(r[i]) for r in allrows) for i in range(len(allrows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in allrows]


def onnx_summary(path):
    import numpy as np
    import onnx
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise ModelLoadError(f"Cannot read ONNX model {path}: {' '.join(str(e).split())}") from None
    g = model.graph
    init_names = {t.name for t in g.initializer}
    params = const = 0
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                   onnx.TensorProto.BFLOAT16}

    def count(tensor):
        nonlocal params, const
        n = int(np.prod(tensor.dims)) if len(tensor.dims) else 1
        if tensor.data_type in float_types:
            params += n
        else:
            const += n

    for t in g.initializer:
        count(t)
    nodes = list(_walk_nodes(g))
    for node in nodes:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    count(attr.t)
    ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                  for n in nodes)
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    producer = " ".join(x for x in (model.producer_name, model.producer_version) if x) or "?"
    lines = [f'Model: "{g.name or os.path.basename(path)}"  ({path})',
             f"IR version: {model.ir_version}   opset: {opsets}   producer: {producer}",
             "", "Inputs:"]
    lines += _table([(vi.name, *_value_info(vi)) for vi in g.input if vi.name not in init_names])
    lines += ["", "Outputs:"]
    lines += _table([(vi.name, *_value_info(vi)) for vi in g.output])
    lines += ["", f"Ops ({len(nodes)} nodes):"]
    lines += _table(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
    lines += ["", f"Parameters: {params:,}" + (f"   (plus {const:,} integer/other constant "
                                                f"elements)" if const else "")]
    return "\n".join(lines)


# -- IR graph (Keras files) ---------------------------------------------------------------

_SAME_SHAPE = {
    "Activation", "Dropout", "BatchNormalization", "LayerNormalization", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "LeakyReLU", "PReLU", "ELU", "ReLU", "Softmax",
    "ThresholdedReLU", "Masking", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "ActivityRegularization", "UnitNormalization",
}
_MERGE_SAME = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
_RNN = {"LSTM", "GRU", "SimpleRNN", "CuDNNLSTM", "CuDNNGRU"}


def _tuple(v, n):
    if isinstance(v, (list, tuple)):
        return tuple(v)
    return (v,) * n


def _conv_len(length, k, s, d, padding):
    if length is None:
        return None
    if padding in ("same", "causal"):
        return -(-length // s)
    return (length - d * (k - 1) - 1) // s + 1


def _spatial(shape, cfg, rank, kernel, strides, dilation, channels):
    """Output shape of a conv/pool over `rank` spatial dims with `channels` out channels."""
    first = cfg.get("data_format") == "channels_first"
    if len(shape) != rank + 2:
        return None
    sp = shape[2:] if first else shape[1:-1]
    if channels is None:
        channels = shape[1] if first else shape[-1]
    padding = cfg.get("padding", "valid")
    out = tuple(_conv_len(L, k, s, d, padding)
                for L, k, s, d in zip(sp, kernel, strides, dilation))
    return (shape[0], channels) + out if first else (shape[0],) + out + (channels,)


def infer_output_shapes(op, cfg, ins):
    """Output shapes of one layer call from its Keras config and input shapes; None if unknown."""
    if not ins or any(s is None for s in ins):
        return None
    s = ins[0]
    if op in _SAME_SHAPE:
        return [s]
    if op == "Dense":
        return [s[:-1] + (cfg["units"],)]
    if op == "Flatten":
        rest = s[1:]
        return [(s[0], math.prod(rest) if all(d is not None for d in rest) else None)]
    if op == "Reshape":
        target = list(cfg["target_shape"])
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            total = math.prod(s[1:]) if all(d is not None for d in s[1:]) else None
            target[target.index(-1)] = total // known if total is not None and known else None
        return [(s[0],) + tuple(target)]
    if op == "Embedding":
        return [s + (cfg["output_dim"],)]
    if op == "RepeatVector":
        return [(s[0], cfg["n"]) + s[1:]]
    if op == "Permute":
        return [(s[0],) + tuple(s[d] for d in cfg["dims"])]
    if op in _MERGE_SAME:
        return [s]
    if op == "Concatenate":
        axis = cfg.get("axis", -1) % len(s)
        size = sum(x[axis] for x in ins) if all(x[axis] is not None for x in ins) else None
        return [s[:axis] + (size,) + s[axis + 1:]]
    for prefix, rank in (("Conv1D", 1), ("Conv2D", 2), ("Conv3D", 3), ("SeparableConv1D", 1),
                         ("SeparableConv2D", 2), ("DepthwiseConv2D", 2), ("DepthwiseConv1D", 1)):
        if op == prefix:
            k = _tuple(cfg["kernel_size"], rank)
            st = _tuple(cfg.get("strides", 1), rank)
            dl = _tuple(cfg.get("dilation_rate", 1), rank)
            if op.startswith("Depthwise"):
                first = cfg.get("data_format") == "channels_first"
                c = s[1] if first else s[-1]
                ch = c * cfg.get("depth_multiplier", 1) if c is not None else None
            else:
                ch = cfg["filters"]
            return [_spatial(s, cfg, rank, k, st, dl, ch)]
    for kind in ("MaxPooling", "AveragePooling"):
        for rank in (1, 2, 3):
            if op == f"{kind}{rank}D":
                pool = _tuple(cfg.get("pool_size", 2), rank)
                st = cfg.get("strides") or pool
                return [_spatial(s, cfg, rank, pool, _tuple(st, rank), (1,) * rank, None)]
    if op.startswith("Global") and op.endswith("D") and "Pooling" in op:
        first = cfg.get("data_format") == "channels_first"
        c = s[1] if first else s[-1]
        if cfg.get("keepdims"):
            return [(s[0], c) + (1,) * (len(s) - 2) if first else (s[0],) + (1,) * (len(s) - 2) + (c,)]
        return [(s[0], c)]
    if op in _RNN:
        units = cfg["units"]
        out = (s[0], s[1], units) if cfg.get("return_sequences") else (s[0], units)
        extra = {"LSTM": 2, "CuDNNLSTM": 2}.get(op, 1) if cfg.get("return_state") else 0
        return [out] + [(s[0], units)] * extra
    if op == "Bidirectional":
        inner = cfg.get("layer", {})
        icfg = inner.get("config", {})
        if inner.get("class_name") not in _RNN:
            return None
        units = icfg["units"] * (2 if cfg.get("merge_mode", "concat") == "concat" else 1)
        out = (s[0], s[1], units) if icfg.get("return_sequences") else (s[0], units)
        return None if icfg.get("return_state") else [out]
    if op == "TimeDistributed":
        inner = cfg.get("layer", {})
        sub = infer_output_shapes(inner.get("class_name"), inner.get("config", {}), [s[1:]])
        return [(s[0],) + sub[0]] if sub and sub[0] is not None else None
    return None


def _graph_shapes(graph):
    """{(node, call, tensor): shape or None} for every input and node output of `graph`."""
    shapes = {(spec.name, 0, 0): tuple(spec.shape) for spec in graph.inputs}
    for node in graph.nodes:
        for ci, call in enumerate(node.calls):
            ins = [shapes.get((r.node, r.call_index, r.tensor_index)) for r in call]
            try:
                if node.subgraph is not None:
                    sub = _graph_shapes(node.subgraph)
                    outs = [sub.get((r.node, r.call_index, r.tensor_index))
                            for r in node.subgraph.outputs]
                else:
                    outs = infer_output_shapes(node.op, node.config, ins)
            except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
                outs = None
            for ti, shape in enumerate(outs or [None]):
                shapes[(node.name, ci, ti)] = shape
    return shapes


def _fmt(shape):
    if shape is None:
        return "?"
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _node_params(graph, node):
    """(total, non-trainable) weight elements of a node (nested models included)."""
    if node.subgraph is not None:
        total = non = 0
        for sub in node.subgraph.nodes:
            t, n = _node_params(node.subgraph, sub)
            total, non = total + t, non + n
        return (total, total) if node.config.get("trainable") is False else (total, non)
    total = non = 0
    frozen = node.config.get("trainable") is False
    for key in node.weights:
        w = graph.weights.get(key)
        n = int(w.size) if w is not None else 0
        total += n
        if frozen or key.endswith(("moving_mean", "moving_variance")):
            non += n
    return total, non


def graph_summary(graph):
    """A Keras-style summary table of an IR graph."""
    shapes = _graph_shapes(graph)
    branched = (len(graph.inputs) > 1 or len(graph.outputs) > 1 or any(
        len(n.calls) > 1 or any(len(c) > 1 for c in n.calls) for n in graph.nodes))
    header = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if branched else [])
    rows = []
    for spec in graph.inputs:
        rows.append([f"{spec.name} (InputLayer)", _fmt(tuple(spec.shape)), "0"]
                    + ([""] if branched else []))
    total = non = 0
    for node in graph.nodes:
        t, n = _node_params(graph, node)
        total, non = total + t, non + n
        outs = {_fmt(shapes.get((node.name, ci, 0))) for ci in range(len(node.calls))}
        shape = outs.pop() if len(outs) == 1 else "multiple"
        row = [f"{node.name} ({node.op})", shape, f"{t:,}"]
        if branched:
            row.append(", ".join(f"{r.node}[{r.call_index}][{r.tensor_index}]"
                                 for call in node.calls for r in call))
        rows.append(row)
    body = _table(rows, header, indent=" ")
    width = max(len(line) for line in body) + 1
    lines = [f'Model: "{graph.name}"', "_" * width, body[0], "=" * width]
    for i, line in enumerate(body[1:]):
        lines.append(line)
        lines.append("_" * width if i < len(body) - 2 else "=" * width)
    lines += [f"Total params: {total:,}", f"Trainable params: {total - non:,}",
              f"Non-trainable params: {non:,}", "_" * width]
    return "\n".join(lines)

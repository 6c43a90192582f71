"""`modelkit summary MODEL`: describe an .onnx model or a Keras .h5/.keras file.

ONNX: inputs and outputs (shapes, dtypes), IR version, opsets, op-type counts (subgraphs
included) and the parameter count (elements of floating-point initializers and Constant
tensors; integer constants such as shapes are counted apart).

HDF5 / .keras: the loaded model's own `summary()` (the Keras layer table: "Layer (type)",
"Output Shape" from the layers' shape rules, "Param #", and "Connected to" for graphs that
are not a plain chain); a file with Lambda code is refused (safe mode), not run.

`--json` prints the same facts as one JSON object for programs: format, name, inputs and
outputs ({name, shape, dtype}; unknown dims are null, symbolic ONNX dims their name), the
layers (Keras: name, class_name, output_shape, parameters, trainable, inbound) or ops (ONNX:
op type counts) and the parameter counts.
"""

from __future__ import annotations

import os
from collections import Counter

from modelkit.errors import ModelLoadError

from .commands import register

EXAMPLE = """  modelkit summary model.onnx
  modelkit summary model.keras
  modelkit summary model.h5 --json"""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="model file (.onnx, .h5, .hdf5, .keras)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (layers/ops, shapes, parameters, inputs/outputs)")


def run(args):
    import json

    from modelkit.converters import formats
    path = args.model
    fmt = formats.format_of(path)
    if args.json:
        info = onnx_info(path) if fmt is formats.ONNX else keras_info(path)
        print(json.dumps({"format": fmt.name, "path": path, **info}, indent=1))
        return 0
    text = onnx_summary(path) if fmt is formats.ONNX else keras_summary(path)
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


def _onnx_facts(path):
    """(model, parameter count, other constant count, op counts, node count)."""
    import numpy as np
    import onnx
    from modelkit.converters.onnx.reading import read_model
    model = read_model(path)
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
    return model, params, const, ops, len(nodes)


def _dims(vi):
    """[int | str | None] dims of a ValueInfo (None: unknown rank)."""
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in tt.shape.dim]


def onnx_info(path):
    """`modelkit summary --json` of an ONNX file."""
    model, params, const, ops, n_nodes = _onnx_facts(path)
    g = model.graph
    init_names = {t.name for t in g.initializer}

    def io(vi):
        return {"name": vi.name, "shape": _dims(vi), "dtype": _value_info(vi)[1]}
    return {"name": g.name or os.path.basename(path), "ir_version": model.ir_version,
            "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
            "producer": " ".join(x for x in (model.producer_name, model.producer_version) if x),
            "inputs": [io(vi) for vi in g.input if vi.name not in init_names],
            "outputs": [io(vi) for vi in g.output],
            "nodes": n_nodes, "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
            "parameters": {"total": params, "other_constants": const}}


def onnx_summary(path):
    """The ONNX text summary (inputs, outputs, ops, parameters)."""
    model, params, const, ops, n_nodes = _onnx_facts(path)
    g = model.graph
    init_names = {t.name for t in g.initializer}
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    producer = " ".join(x for x in (model.producer_name, model.producer_version) if x) or "?"
    lines = [f'Model: "{g.name or os.path.basename(path)}"  ({path})',
             f"IR version: {model.ir_version}   opset: {opsets}   producer: {producer}",
             "", "Inputs:"]
    lines += _table([(vi.name, *_value_info(vi)) for vi in g.input if vi.name not in init_names])
    lines += ["", "Outputs:"]
    lines += _table([(vi.name, *_value_info(vi)) for vi in g.output])
    lines += ["", f"Ops ({n_nodes} nodes):"]
    lines += _table(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
    lines += ["", f"Parameters: {params:,}" + (f"   (plus {const:,} integer/other constant "
                                                f"elements)" if const else "")]
    return "\n".join(lines)


# -- Keras files ------------------------------------------------------------------------------

def keras_summary(path):
    """The model's own `summary()` (Keras's layer table: shapes from the layers themselves).
    Loading is safe: a file whose Lambda layers hold code is refused, not run."""
    from modelkit.saving import load_model
    lines = []
    load_model(path, compile=False).summary(print_fn=lines.append)
    return "\n".join(lines)


def _shape_list(shape):
    if isinstance(shape, list):
        return [_shape_list(s) for s in shape]
    return None if shape is None else [None if d is None else int(d) for d in shape]


def keras_info(path):
    """`modelkit summary --json` of a Keras file: the loaded model's layers (safe loading)."""
    from modelkit.saving import load_model
    model = load_model(path, compile=False)
    layers = []
    for layer in model.layers:
        try:
            out = _shape_list(layer.output_shape)
        except Exception:   # noqa: BLE001 - a shared layer has several shapes
            out = None
        inbound = []
        for node in getattr(layer, "_inbound_nodes", []):
            for t in getattr(node, "input_tensors", []) or []:
                history = getattr(t, "_keras_history", None)
                if history is not None:
                    inbound.append(history[0].name)
        layers.append({"name": layer.name, "class_name": type(layer).__name__,
                       "output_shape": out,
                       "parameters": int(layer.count_params()) if layer.built else 0,
                       "trainable": bool(getattr(layer, "trainable", True)),
                       "inbound": list(dict.fromkeys(inbound))})
    total = sum(int(_np_size(w)) for w in model.weights)
    trainable = sum(int(_np_size(w)) for w in model.trainable_weights)

    def io(tensors, names):
        return [{"name": n, "shape": _shape_list(tuple(t.shape)), "dtype": str(t.dtype)}
                for n, t in zip(names, tensors)]
    return {"name": model.name, "class_name": type(model).__name__,
            "inputs": io(model.inputs, model.input_names),
            "outputs": io(model.outputs, model.output_names), "layers": layers,
            "parameters": {"total": total, "trainable": trainable,
                           "non_trainable": total - trainable}}


def _np_size(w):
    n = 1
    for d in w.shape:
        n *= int(d)
    return n

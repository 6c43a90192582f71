"""`modelkit summary MODEL`: describe an .onnx model or a Keras .h5/.keras file.

ONNX: inputs and outputs (shapes, dtypes), IR version, opsets, op-type counts (subgraphs
included) and the parameter count (elements of floating-point initializers and Constant
tensors; integer constants such as shapes are counted apart).

HDF5 / .keras: the loaded model's own `summary()` (the Keras layer table: "Layer (type)",
"Output Shape" from the layers' shape rules, "Param #", and "Connected to" for graphs that
are not a plain chain); a file with Lambda code is refused (safe mode), not run.
"""

from __future__ import annotations

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


def onnx_summary(path):
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


# -- Keras files ------------------------------------------------------------------------------

def keras_summary(path):
    """The model's own `summary()` (Keras's layer table: shapes from the layers themselves).
    Loading is safe: a file whose Lambda layers hold code is refused, not run."""
    from modelkit.saving import load_model
    lines = []
    load_model(path, compile=False).summary(print_fn=lines.append)
    return "\n".join(lines)

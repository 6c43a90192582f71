"""ONNX ModelProto -> IR Graph: check everything first, then emit node by node.

1. read the model safely, refuse too-new opsets, upgrade old ones (load.py);
2. walk the whole graph and collect EVERY unsupported op (with node name and opset) and
   every unusable input into ONE UnsupportedError;
3. emit in the graph's (topological) order: nodes whose inputs are all constant are folded
   to constants; the others go to their import handler (a Keras layer when a pattern
   matches, a generic `OnnxOp` otherwise);
4. drop IR nodes no output depends on (e.g. the Shape/ConstantOfShape chains exporters
   write for zero initial states, once the RNN handler has recognised them).
"""

from __future__ import annotations

import onnx

from modelkit.backend.onnx_ops import run_onnx_op
from modelkit.backend.onnx_ops._util import ONNX_DTYPES
from modelkit.backend.tensor import Tensor
from modelkit.errors import ModelLoadError, UnsupportedError
from modelkit.ir import Graph, TensorRef, TensorSpec
from modelkit.op_arguments import decode

from . import handlers  # noqa: F401  (registers every handler)
from .context import ChannelsLast, ImportContext, Lazy, attributes_of, clean_name, np_dtype_name
from .load import check_versions, read_model
from .handlers.recurrent import view_rule
from .registry import handler_for


def unsupported_ops(model, opset):
    """Every reason the graph cannot be imported, one line per node/input."""
    problems = []
    for node in model.graph.node:
        label = f"{node.op_type} node {node.name!r} (opset {opset})"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{label}: custom domain {node.domain!r} is not supported")
        elif handler_for(node.op_type, opset) is None:
            problems.append(f"{label}: no import handler for op {node.op_type!r}")
        else:
            for a in node.attribute:
                if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                    problems.append(f"{label}: attribute {a.name!r} holds a subgraph")
    inits = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            problems.append(f"graph input {vi.name!r}: only tensor inputs are supported")
        elif t.elem_type not in ONNX_DTYPES:
            problems.append(f"graph input {vi.name!r}: element type "
                            f"{onnx.TensorProto.DataType.Name(t.elem_type)} is not supported")
        elif t.HasField("shape") and len(t.shape.dim) == 0:
            problems.append(f"graph input {vi.name!r}: rank-0 (scalar) inputs are not "
                            "supported (a modelkit Input has a batch dimension)")
    return problems


def _input_specs(ctx):
    inits = {t.name for t in ctx.graph.initializer}
    specs = []
    for vi in ctx.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            raise ModelLoadError(f"{ctx.label}: graph input {vi.name!r} has no shape (its rank "
                                 "is needed to build the model)")
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
                      for d in t.shape.dim)
        name = clean_name(vi.name)
        ctx.reserve(name)
        specs.append(TensorSpec(name, shape, np_dtype_name(t.elem_type)))
        ctx.values[vi.name] = TensorRef(name, 0, 0)
    return specs


def fold(node, ctx):
    """Evaluate a node whose inputs are all constants."""
    attrs = {k: decode(v, []) for k, v in attributes_of(node, ctx).items()}
    ins = [Tensor(ctx.const(i)) if i else None for i in node.input]
    outs = run_onnx_op(node.op_type, ins, attrs, opset=ctx.opset, num_outputs=len(node.output))
    return [o.value for o in outs]


def emit_all(ctx):
    for node in ctx.graph.node:
        if id(node) in ctx.done:
            continue
        if all(not i or ctx.is_const(i) for i in node.input):
            outs = fold(node, ctx)
        else:
            missing = [i for i in node.input if i and i not in ctx.values]
            if missing:
                raise ModelLoadError(f"{ctx.label}: {node.op_type} node {node.name!r} reads "
                                     f"{missing}, which no node produces (the graph is not in "
                                     "topological order or is incomplete)")
            outs = view_rule(node, ctx) if node.input else None
            if outs is None:
                outs = handler_for(node.op_type, ctx.opset).emit(node, ctx)
        for name, value in zip(node.output, outs):
            if not name or value is None:
                continue
            if isinstance(value, ChannelsLast):
                ctx.set_value(name, value.ref, channels_last=True)
            else:
                ctx.set_value(name, value)


def _prune(nodes, outputs):
    live = {r.node for r in outputs}
    kept = []
    for n in reversed(nodes):
        if n.name in live:
            kept.append(n)
            live.update(r.node for call in n.calls for r in call)
    return kept[::-1]


def build_graph(model, label="<model>", folder=None, name=None):
    model, opset = check_versions(model, label)
    problems = unsupported_ops(model, opset)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UnsupportedError(f"Cannot import {label}: {len(problems)} unsupported op(s) or "
                               f"input(s):\n{lines}", problems)
    ctx = ImportContext(model, opset, label, folder)
    inputs = _input_specs(ctx)
    emit_all(ctx)
    outputs, const_outputs = [], []
    for o in ctx.graph.output:
        v = ctx.values.get(o.name)
        if isinstance(v, (TensorRef, Lazy)):
            outputs.append(ctx.ref(o.name))      # outputs keep ONNX's layout
        else:
            const_outputs.append(o.name)
    if const_outputs:
        raise UnsupportedError(f"Cannot import {label}: output(s) {const_outputs} do not depend "
                               "on any input (constant outputs have no layer form)",
                               const_outputs)
    nodes = _prune(ctx.nodes, outputs)
    used = {k for n in nodes for k in n.weights}
    graph = Graph(name=clean_name(name or model.graph.name or "onnx_model"), inputs=inputs,
                  outputs=outputs, nodes=nodes,
                  weights={k: v for k, v in ctx.weights.items() if k in used},
                  metadata={"source": "onnx", "model_class": "Functional",
                            "onnx_opset": opset, "onnx_producer": model.producer_name,
                            "onnx_input_names": [vi.name for vi in ctx.graph.input
                                                 if vi.name not in ctx.values or
                                                 isinstance(ctx.values[vi.name], TensorRef)],
                            "onnx_output_names": [o.name for o in ctx.graph.output]})
    graph.validate()
    return graph


def import_graph(source, name=None):
    """An ONNX model (path, bytes or onnx.ModelProto) -> `modelkit.ir.Graph`."""
    model, label, folder = read_model(source)
    return build_graph(model, label, folder, name=name)


def import_model(source, name=None, compile=False):
    """An ONNX model (path, bytes or onnx.ModelProto) -> a trainable modelkit Model.

    Converters know the IR, not the layer classes: the Model is built by the one module that
    knows both (`modelkit.ir_bridge`), looked up at call time.
    """
    import importlib
    bridge = importlib.import_module("modelkit.ir_bridge")
    return bridge.from_ir(import_graph(source, name=name), compile=compile)

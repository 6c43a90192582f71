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

import numpy as np
import onnx

from modelkit.errors import ModelkitError, ModelLoadError, UnsupportedError
from modelkit.ir import NON_TENSOR, Graph, TensorRef, TensorSpec
from modelkit.onnx_spec import CONTROL_FLOW, ONNX_DTYPES, RANDOM_OPS, config_problem
from modelkit.op_arguments import decode

from . import handlers  # noqa: F401  (registers every handler)
from .evaluate import run_node
from .context import (ChannelsLast, ImportContext, Lazy, attributes_of, clean_name,
                      np_dtype_name, value_kind)
from ..context import type_text
from .load import check_versions, read_model
from .handlers.recurrent import view_rule
from .subgraph import free_names, subgraph_problems
from .registry import handler_for


def unsupported_ops(model, opset):
    """Every reason the graph cannot be imported, one line per node/input."""
    problems = []
    read = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    for node in model.graph.node:
        used = [bool(o) and o in read for o in node.output]
        label = f"{node.op_type} node {node.name!r} (opset {opset})"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{label}: custom domain {node.domain!r} is not supported")
        elif handler_for(node.op_type, opset) is None:
            problems.append(f"{label}: no import handler for op {node.op_type!r}")
        elif node.op_type in CONTROL_FLOW:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    problems.extend(subgraph_problems(a.g, label))
        elif any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                 for a in node.attribute):
            problems.append(f"{label}: an attribute holds a subgraph")
        else:
            why = _config_problem(node, used)
            if why:
                problems.append(f"{label}: {why} is not supported")
    inits = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        if value_kind(vi):
            continue                    # a sequence / optional: a list / None at run time
        if not vi.type.HasField("tensor_type"):
            problems.append(f"graph input {vi.name!r}: only tensor, sequence and optional "
                            "inputs are supported")
        elif t.elem_type not in ONNX_DTYPES:
            problems.append(f"graph input {vi.name!r}: element type "
                            f"{onnx.TensorProto.DataType.Name(t.elem_type)} is not supported")

    return problems


def _config_problem(node, used):
    attrs = {}
    for a in node.attribute:
        if a.type != onnx.AttributeProto.TENSOR:
            attrs[a.name] = onnx.helper.get_attribute_value(a)
    try:
        return config_problem(node.op_type, attrs, used)
    except Exception as e:           # a malformed attribute: say so, naming the node
        return f"attributes ({type(e).__name__}: {e})"


def _input_specs(ctx):
    inits = {t.name for t in ctx.graph.initializer}
    specs = []
    for vi in ctx.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        if value_kind(vi):
            name = ctx.unique(vi.name)
            specs.append(TensorSpec(name, (), NON_TENSOR))
            ctx.values[vi.name] = TensorRef(name, 0, 0)
            continue
        if not t.HasField("shape"):
            raise ModelLoadError(f"{ctx.label}: graph input {vi.name!r} has no shape (its rank "
                                 "is needed to build the model)")
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
                      for d in t.shape.dim)
        name = ctx.unique(vi.name)          # Keras-friendly and distinct
        specs.append(TensorSpec(name, shape, np_dtype_name(t.elem_type)))
        ctx.values[vi.name] = TensorRef(name, 0, 0)
    ctx.anchor = TensorRef(specs[0].name, 0, 0) if specs else None
    return specs


def reads(node):
    """The values a node reads: its inputs, and what its subgraphs read from this graph."""
    outer = [n for a in node.attribute if a.type == onnx.AttributeProto.GRAPH
             for n in free_names(a.g)]
    return list(node.input) + outer


def fold(node, ctx):
    """Evaluate a node whose inputs (and subgraphs' outer reads) are all constants."""
    outer = {n: ctx.const(n) for n in reads(node)[len(node.input):]}
    return run_node(node, [ctx.const(i) if i else None for i in node.input], ctx.opset,
                    attributes_of(node, ctx), outer=outer)


def emit_all(ctx):
    for node in ctx.graph.node:         # Constant nodes first: patterns look ahead at them
        if node.op_type == "Constant" and not node.input:
            emit_node(node, ctx)
            ctx.done.add(id(node))
    for node in ctx.graph.node:
        if id(node) in ctx.done:
            continue
        try:
            emit_node(node, ctx)
        except ModelkitError:
            raise
        except (KeyError, ValueError, IndexError, TypeError, AttributeError,
                ArithmeticError) as e:
            raise ModelLoadError(f"{ctx.label}: {node.op_type} node {node.name!r} cannot be "
                                 f"imported: {type(e).__name__}: {e}") from None


def emit_node(node, ctx):
    """Fold `node` when its inputs are constants, else run its handler; record its outputs."""
    constant = all(not i or ctx.is_const(i) for i in reads(node)) and \
        not any(o in ctx.kinds for o in node.output)    # sequences are not folded
    if constant and node.op_type in RANDOM_OPS:
        raise UnsupportedError(f"{ctx.label}: {node.op_type} node {node.name!r} draws from "
                               "constant inputs only: a fresh draw per call has no layer form "
                               "and folding would freeze one draw", [node.name])
    if constant:
        outs = fold(node, ctx)
    else:
        missing = [i for i in reads(node) if i and i not in ctx.values]
        if missing:
            raise ModelLoadError(f"{ctx.label}: {node.op_type} node {node.name!r} reads "
                                 f"{missing}, which no node produces (the graph is not in "
                                 "topological order or is incomplete)")
        outs = view_rule(node, ctx)
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


RNN_OPS = ("LSTM", "GRU", "SimpleRNN")


def fold_last_step(nodes, outputs):
    """`y[:, -1]` of a unidirectional Keras RNN's sequence (an OnnxOp Gather, index -1 on
    axis 1) read by nothing else becomes `return_sequences=False` of the RNN itself; RNN
    states nobody reads are not returned (`return_state=False`)."""
    producers = {n.name: n for n in nodes}
    readers = {}
    for n in nodes:
        for r in n.calls[0]:
            readers.setdefault((r.node, r.tensor_index), []).append(n)
    replace = {}
    for g in nodes:
        cfg = g.config
        if g.op != "OnnxOp" or cfg.get("op_type") != "Gather" or \
                cfg.get("attributes", {}).get("axis") != 1 or cfg.get("inputs") != ["x0", "c0"]:
            continue
        index = np.asarray(decode(cfg["constants"][0], []))
        src = g.calls[0][0]
        rnn = producers.get(src.node)
        if index.size != 1 or int(index) != -1 or rnn is None or rnn.op not in RNN_OPS or \
                src.tensor_index != 0 or len(readers.get((src.node, 0), [])) != 1 or \
                any(o.node == src.node and o.tensor_index == 0 for o in outputs):
            continue
        rnn.config["return_sequences"] = False
        replace[g.name] = src
    for n in nodes:                     # states nobody reads are not returned
        if n.op in RNN_OPS + ("Bidirectional",) and n.name not in replace:
            used = any(k[0] == n.name and k[1] > 0 for k in readers) or \
                any(o.node == n.name and o.tensor_index > 0 for o in outputs)
            if not used:
                inner = n.config["layer"]["config"] if n.op == "Bidirectional" else n.config
                inner["return_state"] = False
    if not replace:
        return nodes, outputs

    def fix(r):
        return replace.get(r.node, r) if r.tensor_index == 0 else r
    kept = [n for n in nodes if n.name not in replace]
    for n in kept:
        n.calls = [[fix(r) for r in call] for call in n.calls]
    return kept, [fix(r) for r in outputs]


def name_outputs_like_onnx(nodes, outputs, weights, onnx_names, taken):
    """Name each output-producing IR node after its ONNX graph output, so the exported model
    (and the Keras model) keeps the source's output names. Only for a node that produces
    exactly that one output, when the ONNX name is a usable layer name."""
    producers = {n.name: n for n in nodes}
    counts = {}
    for r in outputs:
        counts[r.node] = counts.get(r.node, 0) + 1
    renames = {}
    for ref, want in zip(outputs, onnx_names):
        node = producers.get(ref.node)
        if node is None or counts[ref.node] != 1 or ref.tensor_index or ref.call_index or \
                clean_name(want) != want or want in taken or want in renames.values():
            continue
        renames[node.name] = want
    if not renames:
        return nodes, outputs, weights

    def fix(r):
        return TensorRef(renames.get(r.node, r.node), r.call_index, r.tensor_index)
    new_weights = {}
    for n in nodes:
        n.calls = [[fix(r) for r in call] for call in n.calls]
        if n.name in renames:
            old, new = n.name, renames[n.name]
            keys = [new + k[len(old):] for k in n.weights]       # "<node>/<var>" keys
            for k_old, k_new in zip(n.weights, keys):
                new_weights[k_new] = weights.pop(k_old)
            n.name, n.config["name"], n.weights = new, new, keys
    weights.update(new_weights)
    return nodes, [fix(r) for r in outputs], weights


def _non_tensor_types(ctx):
    """The ONNX types of sequence / optional graph inputs and outputs (by position; None
    for tensors), so an export writes them back; {} when there are none."""
    inits = {t.name for t in ctx.graph.initializer}
    ins = [vi for vi in ctx.graph.input if vi.name not in inits]
    kinds = [[type_text(vi.type) if value_kind(vi) else None for vi in vis]
             for vis in (ins, ctx.graph.output)]
    if not any(k for ks in kinds for k in ks):
        return {}
    return {"onnx_input_types": kinds[0], "onnx_output_types": kinds[1]}


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
    nodes, outputs = fold_last_step(_prune(ctx.nodes, outputs), outputs)
    weights = dict(ctx.weights)
    taken = {n.name for n in nodes} | {s.name for s in inputs}
    nodes, outputs, weights = name_outputs_like_onnx(
        nodes, outputs, weights, [o.name for o in ctx.graph.output], taken)
    used = {k for n in nodes for k in n.weights}
    graph = Graph(name=clean_name(name or model.graph.name or "onnx_model"), inputs=inputs,
                  outputs=outputs, nodes=nodes,
                  weights={k: v for k, v in weights.items() if k in used},
                  metadata={"source": "onnx", "model_class": "Functional",
                            "onnx_opset": opset, "onnx_producer": model.producer_name,
                            "onnx_input_names": [vi.name for vi in ctx.graph.input
                                                 if vi.name not in ctx.values or
                                                 isinstance(ctx.values[vi.name], TensorRef)],
                            "onnx_output_names": [o.name for o in ctx.graph.output],
                            **_non_tensor_types(ctx)})
    graph.validate()
    return graph


def import_graph(source, name=None):
    """An ONNX model (path, bytes or onnx.ModelProto) -> `modelkit.ir.Graph`."""
    model, label, folder = read_model(source)
    return build_graph(model, label, folder, name=name)


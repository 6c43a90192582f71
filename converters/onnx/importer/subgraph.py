"""Subgraph attributes (the bodies of If / Loop / Scan) as JSON-safe IR config.

A body becomes {"__graph__": {name, inputs, outputs, initializers, nodes, outer}} (see
`modelkit.onnx_spec.is_graph`): its nodes keep their ONNX op types and attributes (checked as
the top-level ones are), its initializers are read with the same size checks, and `outer`
lists the names it reads from enclosing graphs; the importer passes those as extra inputs
of the node, so the backend runs the body with its own ONNX ops and gradients flow through.
"""

from __future__ import annotations

import onnx

from modelkit.onnx_spec import GRAPH_KEY, ONNX_DTYPES, OP_TYPES, config_problem
from modelkit.op_arguments import encode

from .load import tensor_to_array


def free_names(graph):
    """Names `graph` (and its nested subgraphs) read but does not define, in first-use
    order."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    free = []

    def use(name):
        if name and name not in defined and name not in free:
            free.append(name)
    for node in graph.node:
        for name in node.input:
            use(name)
        for a in node.attribute:
            for g in _graphs(a):
                for name in free_names(g):
                    use(name)
        defined.update(o for o in node.output if o)
    for o in graph.output:
        use(o.name)
    return free


def _graphs(attribute):
    if attribute.type == onnx.AttributeProto.GRAPH:
        return [attribute.g]
    if attribute.type == onnx.AttributeProto.GRAPHS:
        return list(attribute.graphs)
    return []


def _value_spec(vi):
    t = vi.type.tensor_type
    shape = [int(d.dim_value) if d.HasField("dim_value") else None for d in t.shape.dim] \
        if t.HasField("shape") else None
    return {"name": vi.name, "dtype": ONNX_DTYPES.get(t.elem_type), "shape": shape}


def graph_config(graph, label, folder, attributes_of):
    """`graph` as the JSON-safe dict the IR stores (attributes_of: the importer's own
    attribute reader, which calls back here for nested subgraphs)."""
    where = f"subgraph {graph.name!r}"
    return {GRAPH_KEY: {
        "name": graph.name,
        "inputs": [_value_spec(vi) for vi in graph.input],
        "outputs": [_value_spec(vi) for vi in graph.output],
        "initializers": {t.name: encode(tensor_to_array(t, label, folder,
                                                        f"initializer {t.name!r} of {where}"),
                                        [], lambda v: False)
                         for t in graph.initializer},
        "nodes": [{"op_type": n.op_type, "name": n.name, "inputs": list(n.input),
                   "outputs": list(n.output), "attributes": attributes_of(n)}
                  for n in graph.node],
        "outer": free_names(graph)}}


def subgraph_problems(graph, label):
    """Why a body cannot run: ops the backend lacks, non-tensor inputs/outputs."""
    problems = []
    for vi in list(graph.input) + list(graph.output):
        kind = vi.type.WhichOneof("value")     # None: no type given (a tensor is assumed)
        if kind not in (None, "tensor_type", "sequence_type", "optional_type"):
            problems.append(f"{label}: subgraph {graph.name!r} value {vi.name!r} is a "
                            f"{kind}, which is not supported")
        elif kind == "tensor_type" and vi.type.tensor_type.elem_type not in (*ONNX_DTYPES, 0):
            problems.append(f"{label}: subgraph {graph.name!r} value {vi.name!r} has element "
                            f"type {onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type)}"
                            ", which is not supported")
    for node in graph.node:
        where = f"{label}: {node.op_type} node {node.name!r} in subgraph {graph.name!r}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: custom domain {node.domain!r} is not supported")
            continue
        if node.op_type not in OP_TYPES:
            problems.append(f"{where}: op {node.op_type!r} is not supported")
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute
                 if a.type not in (onnx.AttributeProto.TENSOR, onnx.AttributeProto.GRAPH,
                                   onnx.AttributeProto.GRAPHS)}
        try:
            why = config_problem(node.op_type, attrs, [True] * len(node.output))
        except Exception as e:      # noqa: BLE001 - a malformed attribute, named
            why = f"attributes ({type(e).__name__}: {e})"
        if why:
            problems.append(f"{where}: {why} is not supported")
        for a in node.attribute:
            for g in _graphs(a):
                problems.extend(subgraph_problems(g, label))
    return problems

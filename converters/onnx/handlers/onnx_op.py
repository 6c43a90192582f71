"""`OnnxOp` nodes (imported ONNX ops with no layer form) written back unchanged.

Config (see modelkit/layers/onnx_op.py): `op_type`, `attributes` (tensors encoded as
{"__array__", "dtype"}), `domain`, `num_outputs`, and `inputs`, the operator's input slots:
"x<i>" the call's i-th tensor, "w<j>" the node's j-th weight (an initializer), "c<k>" the k-th of its small
`constants` (written as initializers too), "" an omitted
optional input. Without `inputs` the call's tensors come first, then the weights.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from modelkit.onnx_spec import GRAPH_KEY, is_graph, outer_names
from modelkit.op_arguments import decode

from ..context import LayerUnsupported, Tensor
from ..registry import export_handler


def _attr_value(v, rename=None):
    if is_graph(v):
        return _graph_proto(v[GRAPH_KEY], rename or {})
    v = decode(v, [])
    if isinstance(v, np.ndarray):
        return numpy_helper.from_array(v)
    if isinstance(v, tuple):
        return list(v)
    return v


def _graph_proto(g, rename):
    """A subgraph attribute (see modelkit.onnx_spec.is_graph) as a GraphProto; the names it
    reads from the enclosing graph become `rename`'s (the exported names of those values)."""
    def value_info(spec):
        if spec.get("dtype") is None:
            vi = onnx.ValueInfoProto()
            vi.name = spec["name"]
            return vi
        return helper.make_tensor_value_info(
            spec["name"], helper.np_dtype_to_tensor_dtype(np.dtype(spec["dtype"])),
            spec.get("shape"))
    nodes = [helper.make_node(n["op_type"], [rename.get(i, i) for i in n["inputs"]],
                              n["outputs"], name=n.get("name") or None,
                              **{k: _attr_value(a, rename) for k, a in n["attributes"].items()})
             for n in g["nodes"]]
    inits = [numpy_helper.from_array(np.asarray(decode(v, [])), name=k)
             for k, v in g["initializers"].items()]
    outputs = [value_info(o) for o in g["outputs"]]
    passthrough = []            # a body output that is an enclosing value: an Identity
    for o in outputs:
        if o.name in rename:
            new = f"{o.name}__out"
            passthrough.append(helper.make_node("Identity", [rename[o.name]], [new]))
            o.name = new
    return helper.make_graph(nodes + passthrough, g.get("name") or "body",
                             [value_info(i) for i in g["inputs"]], outputs, inits)


def _same_definition(op_type, domain, own, opset):
    """Whether ONNX defines `op_type` identically at opsets `own` and `opset` (the same
    schema version is in force at both), so the node is written back unchanged."""
    import onnx
    try:
        return onnx.defs.get_schema(op_type, own, domain).since_version == \
            onnx.defs.get_schema(op_type, opset, domain).since_version
    except Exception:   # noqa: BLE001 - SchemaError: the op does not exist at `opset`
        return False


def _check(node, opset):
    own = int(node.config.get("opset", opset))
    op_type = node.config.get("op_type")
    domain = node.config.get("domain") or ""
    if own > opset and not (domain in ("", "ai.onnx") and isinstance(op_type, str)
                            and _same_definition(op_type, "", own, opset)):
        return (f"{op_type} was imported from opset {own}; export with "
                f"opset >= {own} (its inputs and attributes follow that opset)")
    return None


@export_handler("OnnxOp", check=_check)
def onnx_op(node, ctx, inputs):
    cfg = node.config
    op_type = cfg.get("op_type")
    if not op_type:
        raise LayerUnsupported("OnnxOp node has no 'op_type' in its config")
    domain = cfg.get("domain") or ""
    if domain not in ("", "ai.onnx"):
        ctx.extra_domains.setdefault(domain, int(cfg.get("domain_version", 1)))
    raw = cfg.get("attributes") or {}
    outer = outer_names(raw)            # the subgraphs' reads: the node's trailing inputs
    n_outer = len(outer)
    weights = [ctx.param(node, f"w{i}", lambda a=a: a) for i, a in enumerate(ctx.weights(node))]
    constants = [ctx.const(np.asarray(decode(c, [])), hint=f"{node.name}/c{k}")
                 for k, c in enumerate(cfg.get("constants") or [])]
    slots = cfg.get("inputs")
    if slots is None:
        operands = list(inputs) + weights
    else:
        operands = []
        for slot in slots:
            pool = {"x": inputs, "w": weights, "c": constants}.get(slot[:1], [])
            if not slot:
                operands.append(None)
            elif slot[:1] in ("x", "w", "c") and slot[1:].isdigit() and int(slot[1:]) < len(pool):
                operands.append(pool[int(slot[1:])])
            else:
                raise LayerUnsupported(f"input slot {slot!r} does not exist ({len(inputs)} "
                                       f"input(s), {len(weights)} weight(s))")
    if n_outer:
        operands, reads = operands[:-n_outer], operands[-n_outer:]
        # each read goes through an Identity of its own, so the body refers to a name no
        # export pass renames (the passes see the Identity's explicit input)
        rename = {}
        for name, t in zip(outer, reads):
            (rename[name],) = ctx.emit("Identity", [t], 1, hint=f"{node.name}/outer")
    else:
        rename = {}
    attrs = {k: _attr_value(v, rename) for k, v in raw.items()}
    n_out = int(cfg.get("num_outputs", 1))
    outs = ctx.emit(op_type, operands, n_out, hint=node.name, domain=domain or None, **attrs)
    shapes = cfg.get("output_shapes") or [None] * n_out
    dtypes = cfg.get("output_dtypes") or [inputs[0].dtype if inputs else "float32"] * n_out
    return [Tensor(o, s, d) for o, s, d in zip(outs, shapes, dtypes)]

"""`OnnxOp` nodes (imported ONNX ops with no layer form) written back unchanged.

Config (see modelkit/layers/onnx_op.py): `op_type`, `attributes` (tensors encoded as
{"__array__", "dtype"}), `domain`, `num_outputs`, and `inputs`, the operator's input slots:
"x<i>" the call's i-th tensor, "w<j>" the node's j-th weight (an initializer), "c<k>" the k-th of its small
`constants` (written as initializers too), "" an omitted
optional input. Without `inputs` the call's tensors come first, then the weights.
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from modelkit.op_arguments import decode

from ..context import LayerUnsupported, Tensor
from ..registry import export_handler


def _attr_value(v):
    v = decode(v, [])
    if isinstance(v, np.ndarray):
        return numpy_helper.from_array(v)
    if isinstance(v, tuple):
        return list(v)
    return v


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
    attrs = {k: _attr_value(v) for k, v in (cfg.get("attributes") or {}).items()}
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
    n_out = int(cfg.get("num_outputs", 1))
    outs = ctx.emit(op_type, operands, n_out, hint=node.name, domain=domain or None, **attrs)
    shapes = cfg.get("output_shapes") or [None] * n_out
    dtypes = cfg.get("output_dtypes") or [inputs[0].dtype if inputs else "float32"] * n_out
    return [Tensor(o, s, d) for o, s, d in zip(outs, shapes, dtypes)]

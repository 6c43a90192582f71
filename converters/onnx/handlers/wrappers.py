"""TimeDistributed: fold time into batch, run the inner layer's handler, unfold."""

from __future__ import annotations

from modelkit.ir import Node

from ..context import LayerUnsupported
from ..registry import check_node, export_handler, get_handler


def _inner_node(node):
    layer = node.config.get("layer") or {}
    return Node(name=node.name, op=layer.get("class_name", "?"),
                config=dict(layer.get("config") or {}), calls=node.calls,
                weights=list(node.weights), subgraph=node.subgraph)


def _check_time_distributed(node, opset):
    inner = _inner_node(node)
    problems = check_node(inner, opset)
    return [f"TimeDistributed layer {node.name!r}: inner {p}" for p in problems] or None


@export_handler("TimeDistributed", check=_check_time_distributed, keeps_mask=True)
def time_distributed(node, ctx, inputs):
    """(B, T, ...) -> Reshape (B*T, ...) -> inner layer -> Reshape (B, T, ...out)."""
    x = inputs[0]
    if x.rank is None or x.rank < 3:
        raise LayerUnsupported("TimeDistributed needs an input of known rank >= 3")
    inner = _inner_node(node)
    handler = get_handler(inner.op)
    if x.shape is not None and all(d is not None for d in x.shape[2:]):
        folded = ctx.reshape(x, [-1] + list(x.shape[2:]), (None,) + x.shape[2:],
                             hint=f"{node.name}/fold")
    else:
        tail = ctx.shape_of(x, start=2)
        target = ctx.op("Concat", [ctx.ints([-1]), tail], (x.rank - 1,), dtype="int64", axis=0)
        folded = ctx.op("Reshape", [x, target], (None,) + x.shape[2:], hint=f"{node.name}/fold")
    outs = handler.emit(inner, ctx, [folded] + list(inputs[1:]))
    result = []
    bt = ctx.shape_of(x, start=0, end=2)
    for y in outs:
        if y.shape is None:
            raise LayerUnsupported(f"inner {inner.op} output rank is unknown")
        if all(d is not None for d in y.shape[1:]):
            target = ctx.op("Concat", [bt, ctx.ints(list(y.shape[1:]))], (y.rank + 1,),
                            dtype="int64", axis=0)
        else:
            target = ctx.op("Concat", [bt, ctx.shape_of(y, start=1)], (y.rank + 1,),
                            dtype="int64", axis=0)
        result.append(ctx.op("Reshape", [y, target], x.shape[:2] + y.shape[1:], hint=node.name))
    return result

"""The one registry of ONNX export handlers, keyed by IR op name (the Keras layer class name).

A handler is a small function `(node, ctx, inputs) -> list[Tensor]` that only emits ONNX
nodes for ONE call of the layer. It may come with a `check(node, opset) -> str | None` that
says, before anything is emitted, why this configuration cannot be exported (the exporter
collects every such reason into one UnsupportedError). Handlers of nested graphs check them
with `check_graph` here and emit them with `ctx.emit_subgraph`, never importing the exporter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from modelkit.errors import ModelkitError, UnsupportedError
from modelkit.registry import Registry


@dataclass(frozen=True)
class ExportHandler:
    op: str
    emit: Callable
    check: Callable | None = None
    # Whether a mask on input 0 passes unchanged to output 0 (Keras `supports_masking`
    # layers whose compute_mask returns the input mask).
    keeps_mask: bool = False


EXPORT_HANDLERS = Registry("ONNX export handler", error_type=UnsupportedError)


def export_handler(*ops, check=None, keeps_mask=False):
    """Decorator: register `fn` as the export handler of every op name in `ops`."""
    def decorator(fn):
        for op in ops:
            EXPORT_HANDLERS.register(op, ExportHandler(op, fn, check, keeps_mask))
        return fn
    return decorator


def get_handler(op):
    """The handler for `op`, or None."""
    return EXPORT_HANDLERS.get(op) if op in EXPORT_HANDLERS else None


def check_graph(graph, opset, prefix=""):
    """Every reason a node of `graph` cannot be exported, as "<Op> layer '<name>': why"."""
    problems = []
    for node in graph.nodes:
        problems.extend(check_node(node, opset, prefix))
    return problems


def check_node(node, opset, prefix=""):
    """Every reason `node` cannot be exported (its handler's check), labelled with its name."""
    label = f"{node.op} layer {prefix + node.name!r}"
    handler = get_handler(node.op)
    if handler is None:
        return [f"{label}: no ONNX export handler for op {node.op!r}"]
    if handler.check is None:
        return []
    try:
        result = handler.check(node, opset)
    except ModelkitError:
        raise
    except Exception as e:      # noqa: BLE001 - any failure of a check is a bad config
        return [f"{label}: malformed config ({type(e).__name__}: {e})"]
    if not result:
        return []
    if isinstance(result, str):
        return [f"{label}: {result}"]
    return list(result)

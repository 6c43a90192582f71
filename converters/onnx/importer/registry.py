"""The one registry of ONNX import handlers, keyed by ONNX op_type (and opset range).

A handler is a small function `(node, ctx) -> list` returning, for each ONNX output of
`node`, a `TensorRef` (an IR tensor), a numpy array (a constant) or None (output unused).
It only emits IR nodes through `ctx` (see context.py); it never sees layer classes.
Handlers that recognise a Keras pattern fall back to `ctx.onnx_op(node)` (a generic
`OnnxOp` IR node) when the pattern does not match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from modelkit.errors import UnsupportedError
from modelkit.registry import Registry


@dataclass(frozen=True)
class ImportHandler:
    op_type: str
    emit: Callable
    since: int = 1              # first opset the handler understands
    until: int | None = None    # last opset (None: up to the newest)

    def covers(self, opset):
        return self.since <= opset and (self.until is None or opset <= self.until)


IMPORT_HANDLERS = Registry("ONNX import handler", error_type=UnsupportedError)


def import_handler(*op_types, since=1, until=None):
    """Decorator: register `fn` as the import handler of every op type in `op_types`."""
    def decorator(fn):
        for op_type in op_types:
            IMPORT_HANDLERS.register(op_type, ImportHandler(op_type, fn, since, until))
        return fn
    return decorator


def handler_for(op_type, opset):
    """The handler for `op_type` at `opset`, or None."""
    if op_type not in IMPORT_HANDLERS:
        return None
    h = IMPORT_HANDLERS.get(op_type)
    return h if h.covers(opset) else None

"""ONNX operators run on modelkit's backend: what an imported `OnnxOp` node executes.

One registry, `ONNX_OPS`, maps an ONNX `op_type` to a function

    fn(inputs, attrs, ctx) -> Tensor | list[Tensor]

`inputs` are backend `Tensor`s (None for an omitted optional input), `attrs` the node's
attributes as plain Python values (tensor attributes as numpy arrays) and `ctx` an `OpContext`
(opset, training flag, output count). Everything is built from differentiable backend ops
(`modelkit.backend.engine.OPS`), so an `OnnxOp` trains like any layer; integer and boolean
tensors keep their dtypes. Semantics follow the ONNX operator specification for opset 13 and
later (older models are upgraded by the importer first).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import UnsupportedError
from ...registry import Registry

ONNX_OPS = Registry("ONNX op", error_type=UnsupportedError)
# op_type -> check(attrs, outputs_used) -> reason it cannot run, or None. The importer calls
# these for every node before emitting anything, so one error lists every problem.
ONNX_CHECKS = {}


@dataclass(frozen=True)
class OpContext:
    opset: int = 17
    training: bool = False
    num_outputs: int = 1


def onnx_op(*op_types):
    """Decorator: register `fn` as the implementation of every ONNX op type in `op_types`."""
    def decorator(fn):
        for op_type in op_types:
            ONNX_OPS.register(op_type, fn)
        return fn
    return decorator


def onnx_check(*op_types):
    """Decorator: register `fn(attrs, outputs_used)` as the configuration check of op types."""
    def decorator(fn):
        for op_type in op_types:
            ONNX_CHECKS[op_type] = fn
        return fn
    return decorator


def config_problem(op_type, attrs, outputs_used):
    """Why this configuration of `op_type` cannot run (None when it can)."""
    check = ONNX_CHECKS.get(op_type)
    return check(attrs, outputs_used) if check is not None else None


def run_onnx_op(op_type, inputs, attrs=None, opset=17, training=False, num_outputs=1):
    """Run one ONNX op; always returns a list of Tensors."""
    fn = ONNX_OPS.get(op_type)
    out = fn(list(inputs), dict(attrs or {}), OpContext(int(opset), bool(training),
                                                        int(num_outputs)))
    return list(out) if isinstance(out, (list, tuple)) else [out]


def supported_op_types():
    return ONNX_OPS.names()


from . import elementwise, nn, recurrent, tensor_ops  # noqa: E402,F401  (register the ops)

__all__ = ["ONNX_OPS", "ONNX_CHECKS", "OpContext", "onnx_op", "onnx_check", "config_problem",
           "run_onnx_op", "supported_op_types"]

"""ONNX operators run on modelkit's backend: what an imported `OnnxOp` node executes.

One registry, `ONNX_OPS`, maps an ONNX `op_type` to a function

    fn(inputs, attrs, ctx) -> Tensor | list[Tensor]

`inputs` are backend `Tensor`s (None for an omitted optional input), `attrs` the node's
attributes as plain Python values (tensor attributes as numpy arrays) and `ctx` an `OpContext`
(opset, training flag, output count). Everything is built from differentiable backend ops
(`modelkit.backend.tape.OPS`), so an `OnnxOp` trains like any layer; integer and boolean
tensors keep their dtypes. Semantics follow the ONNX operator specification for opset 13 and
later (older models are upgraded by the importer first).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import UnsupportedError
from ...onnx_spec import OP_TYPES, config_problem  # noqa: F401  (re-exported)
from ...registry import Registry

ONNX_OPS = Registry("ONNX op", error_type=UnsupportedError)


@dataclass(frozen=True)
class OpContext:
    opset: int = 17
    training: bool = False
    num_outputs: int = 1


def onnx_op(*op_types):
    """Decorator: register `fn` as the implementation of every ONNX op type in `op_types`."""
    def decorator(fn):
        for op_type in op_types:
            if op_type not in OP_TYPES:
                raise UnsupportedError(f"ONNX op {op_type!r} is missing from "
                                       "modelkit.onnx_spec.OP_TYPES")
            ONNX_OPS.register(op_type, fn)
        return fn
    return decorator


# ops that take the low-precision types (bfloat16, float8, int4, ...) as they are (casts,
# quantization, moving tensors in and out of sequences); the others compute on them widened
# (low_precision.run_widened)
LOW_PRECISION_NATIVE = frozenset({
    "Cast", "CastLike", "QuantizeLinear", "DequantizeLinear", "Identity",
    "SequenceConstruct", "SequenceInsert", "SequenceAt", "SequenceErase", "SequenceLength",
    "Optional", "OptionalHasElement", "OptionalGetElement"})


def run_onnx_op(op_type, inputs, attrs=None, opset=17, training=False, num_outputs=1):
    """Run one ONNX op; always returns a list of Tensors."""
    fn = ONNX_OPS.get(op_type)
    inputs = list(inputs)
    args = (dict(attrs or {}), OpContext(int(opset), bool(training), int(num_outputs)))
    if op_type not in LOW_PRECISION_NATIVE and any(
            getattr(x, "dtype", None) is not None and is_low(x.dtype) for x in inputs):
        out = run_widened(fn, inputs, *args)
    else:
        out = fn(inputs, *args)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def supported_op_types():
    return ONNX_OPS.names()


from .low_precision import is_low, run_widened  # noqa: E402
from . import (attention, bitwise, construct, control_flow, detection,  # noqa: E402,F401
               elementwise, losses, nn, normalization, quantized, random_ops, recurrent,
               sampling, scatter_ops, selection, sequences, spectral, strings,
               tensor_ops)  # (register the ops)

__all__ = ["ONNX_OPS", "OpContext", "onnx_op", "config_problem",
           "run_onnx_op", "supported_op_types"]

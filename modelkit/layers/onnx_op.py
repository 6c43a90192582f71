"""`OnnxOp`: one ONNX operator with no Keras layer equivalent, run on modelkit's backend.

The ONNX importer emits it; it trains like any layer (forward and backward are backend ops,
see `modelkit.backend.onnx_ops`) and the ONNX exporter writes it back unchanged.

Config (JSON-safe):
  op_type, domain ('' = ai.onnx), opset     which operator, in which opset's semantics
  attributes       {name: value}; tensors as {"__array__": [...], "dtype": ...}
  inputs           the operator's input slots in order: "x<i>" = the call's i-th tensor,
                   "w<j>" = the layer's j-th weight, "c<k>" = the k-th of `constants`,
                   "" = an omitted optional input (default: call tensors, then weights)
  constants        small fixed inputs (shapes, axes, indices, scalars), encoded as attributes
  num_outputs      how many outputs the node has
  output_shapes    per output, the shape with None for unknown dims (None: probe by running)
  output_dtypes    per output, the numpy dtype name
  weight_shapes, weight_dtypes, weight_trainable    the initializers this node owns
"""

from __future__ import annotations

import numpy as np

from ..backend.onnx_ops import ONNX_OPS, run_onnx_op
from ..backend.onnx_ops.sequences import box, unbox
from ..backend.tensor import Tensor
from ..engine.base_layer import Layer
from ..errors import ConfigError, ModelkitError, ShapeError
from ..op_arguments import decode
from .serialization import register_layer

__all__ = ["OnnxOp"]


@register_layer
class OnnxOp(Layer):
    """An ONNX operator as a layer (see the module docstring for the config)."""

    def __init__(self, op_type, attributes=None, domain="", opset=17, inputs=None, constants=(),
                 num_outputs=1, output_shapes=None, output_dtypes=None, weight_shapes=(),
                 weight_dtypes=None, weight_trainable=None, **kwargs):
        super().__init__(**kwargs)
        if domain not in ("", "ai.onnx") or op_type not in ONNX_OPS:
            ONNX_OPS.get(op_type, context=f"OnnxOp layer {self.name!r}")
        self.op_type = op_type
        self.domain = domain or ""
        self.opset = int(opset)
        self.attributes = dict(attributes or {})
        self._attrs = {k: decode(v, []) for k, v in self.attributes.items()}
        self.inputs_spec = None if inputs is None else [str(s) for s in inputs]
        self.constants = list(constants or [])
        self._constants = [Tensor(np.asarray(decode(c, []))) for c in self.constants]
        self.num_outputs = int(num_outputs)
        self.output_shapes = None if output_shapes is None else \
            [None if s is None else [None if d is None else int(d) for d in s]
             for s in output_shapes]
        self.output_dtypes = None if output_dtypes is None else [str(d) for d in output_dtypes]
        self.weight_shapes = [tuple(int(d) for d in s) for s in weight_shapes]
        n = len(self.weight_shapes)
        self.weight_dtypes = list(weight_dtypes or ["float32"] * n)
        self.weight_trainable = [bool(t) for t in (weight_trainable if weight_trainable
                                                   is not None else
                                                   [np.issubdtype(np.dtype(d), np.floating)
                                                    for d in self.weight_dtypes])]
        if not (len(self.weight_dtypes) == len(self.weight_trainable) == n):
            raise ConfigError(f"OnnxOp {self.name!r}: weight_shapes, weight_dtypes and "
                              "weight_trainable must have the same length")

    def build(self, input_shape):
        self._w = [self.add_weight(f"w{j}", shape, dtype=dt, initializer="zeros",
                                   trainable=tr)
                   for j, (shape, dt, tr) in enumerate(zip(self.weight_shapes, self.weight_dtypes,
                                                            self.weight_trainable))]
        self.built = True

    def _operands(self, tensors):
        if self.inputs_spec is None:
            return list(tensors) + list(self._w)
        out = []
        for slot in self.inputs_spec:
            if not slot:
                out.append(None)
            elif slot[0] == "x" and int(slot[1:]) < len(tensors):
                out.append(tensors[int(slot[1:])])
            elif slot[0] == "w" and int(slot[1:]) < len(self._w):
                out.append(self._w[int(slot[1:])])
            elif slot[0] == "c" and int(slot[1:]) < len(self._constants):
                out.append(self._constants[int(slot[1:])])
            else:
                raise ConfigError(f"OnnxOp {self.name!r}: input slot {slot!r} does not exist "
                                  f"({len(tensors)} call input(s), {len(self._w)} weight(s))")
        return out

    def call(self, inputs, training=None):
        tensors = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        try:
            outs = run_onnx_op(self.op_type, [unbox(x) for x in self._operands(tensors)],
                               self._attrs, opset=self.opset, training=bool(training),
                               num_outputs=self.num_outputs)
            outs = [box(o) for o in outs]       # sequences / optionals cross layers boxed
        except ModelkitError as e:
            if str(e).startswith("OnnxOp"):
                raise
            raise type(e)(f"OnnxOp {self.name!r} ({self.op_type}): {e}") from None
        except (ValueError, IndexError, KeyError, TypeError) as e:
            shapes = [tuple(t.shape) for t in tensors]
            raise ShapeError(f"OnnxOp {self.name!r} ({self.op_type}) failed on inputs of shapes "
                             f"{shapes}: {type(e).__name__}: {e}") from None
        return outs[0] if self.num_outputs == 1 else list(outs)

    def compute_output_shape(self, input_shape):
        if self.output_shapes is None or any(s is None for s in self.output_shapes):
            return super().compute_output_shape(input_shape)
        shapes = [tuple(s) for s in self.output_shapes]
        return shapes[0] if self.num_outputs == 1 else shapes

    def _probe_dtypes(self, input_shape):
        return getattr(self, "_input_dtypes", None) or super()._probe_dtypes(input_shape)

    def _symbolic_call(self, inputs, *args, **kwargs):
        ts = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        dts = [str(t.dtype) for t in ts]
        self._input_dtypes = dts if isinstance(inputs, (list, tuple)) else dts[0]
        return super()._symbolic_call(inputs, *args, **kwargs)

    def compute_output_dtype(self, input_dtype):
        if self.output_dtypes:
            return self.output_dtypes[0] if self.num_outputs == 1 else list(self.output_dtypes)
        first = input_dtype[0] if isinstance(input_dtype, (list, tuple)) else input_dtype
        return str(first)

    def get_config(self):
        config = super().get_config()
        config.update({"op_type": self.op_type, "domain": self.domain, "opset": self.opset,
                       "attributes": self.attributes, "inputs": self.inputs_spec,
                       "constants": self.constants,
                       "num_outputs": self.num_outputs, "output_shapes": self.output_shapes,
                       "output_dtypes": self.output_dtypes,
                       "weight_shapes": [list(s) for s in self.weight_shapes],
                       "weight_dtypes": self.weight_dtypes,
                       "weight_trainable": self.weight_trainable})
        return config

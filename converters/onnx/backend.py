"""modelkit as an ONNX backend (`onnx.backend.base.Backend`): the interface ONNX's own
conformance runner drives (`onnx.backend.test.BackendTest(backend, __name__)`).

    from modelkit.converters.onnx import backend
    rep = backend.prepare(model_proto)          # imported into a trainable modelkit Model
    outputs = rep.run([x])                      # numpy arrays, in the graph's output order

`prepare` imports the model with `import_model` (Keras layers where the pattern fits, an
OnnxOp otherwise) and the representation runs it in modelkit's numpy engine, so the
conformance cases check the importer and the backend's ONNX ops, not onnxruntime.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from onnx.backend.base import Backend, BackendRep

from modelkit.onnx_spec import OnnxValue, to_numpy

from .model_import import import_model


class ModelkitRep(BackendRep):
    """A prepared model: `run(inputs)` takes a list (graph input order) or a dict by name."""

    def __init__(self, model, input_names, non_tensor=()):
        self.model = model
        self.input_names = list(input_names)
        self.non_tensor = set(non_tensor)       # sequence / optional inputs, by name

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            inputs = [inputs[name] for name in self.input_names]
        elif not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        xs = [OnnxValue(x) if name in self.non_tensor else np.asarray(x)
              for name, x in zip(self.input_names, inputs)]
        out = self.model(xs if len(xs) > 1 else xs[0])
        outs = out if isinstance(out, (list, tuple)) else [out]
        return tuple(to_numpy(o) for o in outs)


class ModelkitBackend(Backend):
    """ONNX backend running imported models in modelkit (CPU)."""

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        super().prepare(model, device, **kwargs)
        model_obj = import_model(model)
        inits = {t.name for t in model.graph.initializer}
        graph_inputs = [i for i in model.graph.input if i.name not in inits]
        return ModelkitRep(model_obj, [i.name for i in graph_inputs],
                           [i.name for i in graph_inputs
                            if i.type.WhichOneof("value") in ("sequence_type", "optional_type")])

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        """One node on `inputs` (arrays in the node's input order), as a one-node model."""
        arrays = [np.asarray(x) for x in inputs]
        names = [n for n in node.input if n]
        graph_inputs = [helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for name, a in zip(names, arrays)]
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
        types = onnx.shape_inference.infer_node_outputs(
            schema, node, {vi.name: vi.type for vi in graph_inputs})
        graph_outputs = [helper.make_value_info(o, types[o]) for o in node.output if o]
        proto = helper.make_model(helper.make_graph([node], "run_node", graph_inputs,
                                                    graph_outputs),
                                  opset_imports=[helper.make_opsetid("", opset)])
        return cls.prepare(proto, device).run(arrays)

    @classmethod
    def supports_device(cls, device):
        return str(device).upper().startswith("CPU")


prepare = ModelkitBackend.prepare
run_model = ModelkitBackend.run_model
run_node = ModelkitBackend.run_node
supports_device = ModelkitBackend.supports_device

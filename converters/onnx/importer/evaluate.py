"""Running single ONNX nodes on constant numpy inputs at import time (constant folding, shape
probes), with ONNX's own reference implementation (`onnx.reference`).

The converters never import the backend, so the importer evaluates with the spec's
reference rather than with modelkit's `OnnxOp` kernels. Tensor attributes are the arrays the
importer already checked (`attributes_of` -> `load.tensor_to_array`), never re-read from the
file.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from modelkit.op_arguments import decode


def run_node(node, inputs, opset, checked_attrs, outer=None):
    """Evaluate `node` on `inputs` (numpy arrays, None for an omitted optional input).

    checked_attrs: the node's attributes as `attributes_of` returns them (tensor attributes
    validated). outer: {name: array} the node's subgraphs read from the enclosing graph.
    Returns one numpy array (or None) per output of the node. Any failure is a
    ValueError saying why (the walk names the node)."""
    from onnx.reference import ReferenceEvaluator
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    for a in copy.attribute:
        if a.type == onnx.AttributeProto.TENSOR:
            a.t.CopyFrom(numpy_helper.from_array(np.asarray(decode(checked_attrs[a.name], []))))
    del copy.input[:]
    copy.input.extend(f"in{i}" if x is not None else "" for i, x in enumerate(inputs))
    wanted = [f"out{i}" for i, name in enumerate(node.output) if name]
    del copy.output[:]
    copy.output.extend(f"out{i}" if name else "" for i, name in enumerate(node.output))
    feeds = {f"in{i}": np.asarray(x) for i, x in enumerate(inputs) if x is not None}
    outer = outer or {}
    try:
        if outer:           # a subgraph reads enclosing values: evaluate a one-node model
            from onnx import helper
            feeds.update({k: np.asarray(v) for k, v in outer.items()})
            graph = helper.make_graph(
                [copy], "fold", [helper.make_tensor_value_info(
                    k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                    for k, v in feeds.items()],
                [helper.make_tensor_value_info(w, onnx.TensorProto.UNDEFINED, None)
                 for w in wanted])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
            results = ReferenceEvaluator(model).run(wanted, feeds)
        else:
            results = ReferenceEvaluator(copy, opsets={"": int(opset)}).run(wanted, feeds)
    except Exception as e:      # noqa: BLE001 - the reference raises anything; say why
        raise ValueError(f"evaluating it on constant inputs failed: "
                         f"{type(e).__name__}: {' '.join(str(e).split())}") from None
    by_name = dict(zip(wanted, results))
    return [None if not name else _value(by_name[f"out{i}"])
            for i, name in enumerate(node.output)]


def _value(v):
    """A result as an array; a sequence (list) or an optional (None) as it is."""
    return v if v is None or isinstance(v, list) else np.asarray(v)

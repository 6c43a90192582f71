"""The valid range of every model input that indexes a table, checked before a run.

onnxruntime's CPU ``Gather`` refuses an index outside its table, but its CUDA ``Gather``
does not check: on an H200 with onnxruntime-gpu 1.31 an Embedding model answered an
out-of-range id with numbers read from wherever the index pointed. So a session finds the
graph inputs whose values reach the indices of a ``Gather`` over a table of fixed shape (through
value-preserving ops: Identity, integer Cast, Squeeze/Unsqueeze/Reshape/Flatten) and
checks them on every device before running, with a message naming the input, the node and
the valid range. The range is ONNX's: ``[-rows, rows - 1]`` (negative indices count from
the end).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass

__all__ = ["IndexBound", "index_bounds", "check_indices", "load_for_bounds"]

# ONNX TensorProto element types of integers
_INT_TYPES = {2, 3, 4, 5, 6, 7, 12, 13}     # uint8 int8 uint16 int16 int32 int64 uint32 uint64
_PASS_THROUGH = {"Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten"}


@dataclass(frozen=True)
class IndexBound:
    """Input values must lie in [-rows, rows - 1]: they index `rows` rows of `node`'s table."""
    rows: int
    node: str


def _static_dims(model):
    """{tensor name: dims} for every tensor whose shape is fixed: initializers, Constant
    nodes, inputs with all dims fixed (the session checks those) and, through ONNX shape
    inference, tables computed by nodes (a DequantizeLinear of a quantized table, say)."""
    import onnx
    graph = model.graph
    dims = {}
    with contextlib.suppress(Exception):        # inference is a help, never a requirement
        inferred = onnx.shape_inference.infer_shapes(model).graph
        for value in list(inferred.value_info) + list(graph.input):
            tensor = value.type.tensor_type
            if tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim):
                dims[value.name] = tuple(d.dim_value for d in tensor.shape.dim)
    dims.update((t.name, tuple(t.dims)) for t in graph.initializer)
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    dims[node.output[0]] = tuple(a.t.dims)
    return dims


def _axis(node):
    for a in node.attribute:
        if a.name == "axis":
            return a.i
    return 0


def index_bounds(model):
    """{input name: IndexBound} for the graph inputs of `model` (an onnx.ModelProto) that
    index a table of fixed shape; the tightest bound where an input feeds several tables."""
    graph = model.graph
    tables = _static_dims(model)
    consumers = defaultdict(list)
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers[name].append((node, i))
    bounds = {}
    for value in graph.input:
        name = value.name
        if value.type.tensor_type.elem_type not in _INT_TYPES:
            continue
        frontier, seen = [name], {name}
        while frontier:
            for node, slot in consumers[frontier.pop()]:
                follow = (slot == 0 and (node.op_type in _PASS_THROUGH or (
                    node.op_type == "Cast"
                    and any(a.name == "to" and a.i in _INT_TYPES for a in node.attribute))))
                if follow and node.output and node.output[0] not in seen:
                    seen.add(node.output[0])
                    frontier.append(node.output[0])
                elif node.op_type == "Gather" and slot == 1 and node.input[0] in tables:
                    dims = tables[node.input[0]]
                    if not dims:
                        continue
                    rows = int(dims[_axis(node) % len(dims)])
                    if name not in bounds or rows < bounds[name].rows:
                        bounds[name] = IndexBound(rows, node.name or node.output[0])
    return bounds


def check_indices(name, x, bound):
    """Raise RuntimeSessionError unless every value of input `name` (array `x`) is a valid
    index for `bound`."""
    if not x.size:
        return
    lo, hi = x.min(), x.max()
    if lo >= -bound.rows and hi < bound.rows:
        return
    from modelkit.errors import RuntimeSessionError
    bad = hi if hi >= bound.rows else lo
    raise RuntimeSessionError(
        f"Input {name!r} holds index {int(bad)} (values in [{int(lo)}, {int(hi)}]), outside "
        f"[{-bound.rows}, {bound.rows - 1}]: it looks up a table of {bound.rows} rows in "
        f"node {bound.node!r} (an Embedding's input_dim)")


def load_for_bounds(model):
    """The onnx.ModelProto of a session's model (a path or serialized bytes), without
    external data: only the graph's structure and the tables' shapes are needed."""
    import onnx
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    return onnx.load(model, load_external_data=False)


"""The import context: what import handlers read ONNX facts from and emit IR nodes into.

Values: every ONNX tensor name maps to a `TensorRef` (an IR tensor computed at run time) or
a numpy array (a constant: an initializer, a Constant node, or anything folded from them).
Static shapes and dtypes come from ONNX shape inference (None for unknown dims).
"""

from __future__ import annotations

import re

import numpy as np
import onnx
from onnx import helper

from modelkit.errors import ModelLoadError, UnsupportedError
from modelkit.ir import Node, TensorRef
from modelkit.op_arguments import encode

from modelkit.ir import NON_TENSOR
from modelkit.onnx_spec import CONTROL_FLOW, outer_names

from .evaluate import run_node
from .load import tensor_to_array
from .subgraph import graph_config


def clean_name(name):
    """An ONNX name as a Keras-friendly layer/input name ('/fc1/Gemm' -> 'fc1_Gemm')."""
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(name)).strip("_.")
    return name or "node"


def np_dtype_name(elem_type):
    try:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        return None


def _symbolic_dims(vi):
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(int(d.dim_value) if d.HasField("dim_value") else
                 (d.dim_param or None) for d in t.shape.dim)


def value_kind(vi):
    """"sequence" / "optional" for a ValueInfo of such a type, None for a tensor (or no
    type given)."""
    kind = vi.type.WhichOneof("value")
    return {"sequence_type": "sequence", "optional_type": "optional"}.get(kind)


def _value_info_shape(vi):
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in t.shape.dim)


class Lazy:
    """A value the IR does not hold yet: `make()` emits the nodes that compute it in ONNX's
    layout, on first use. `view` tells pattern rules what it is (e.g. an RNN's Y as a
    batch-major Keras sequence), so chains that only undo ONNX's layout emit nothing."""

    __slots__ = ("make", "view")

    def __init__(self, make, view):
        self.make = make
        self.view = view


class ChannelsLast:
    """A handler's output held channels_last in the IR (the ONNX value is channels-first)."""

    __slots__ = ("ref",)

    def __init__(self, ref):
        self.ref = ref


class ImportContext:
    """Values, shapes, producers/consumers of the ONNX graph and the IR nodes emitted."""

    def __init__(self, model, opset, label, folder):
        self.model = model
        self.graph = model.graph
        self.opset = opset
        self.label = label
        self.folder = folder
        self.values = {}
        self.shapes = {}
        self.dims = {}                  # shapes with symbolic dims (dim_param names) kept
        self.dtypes = {}
        self.kinds = {}                 # values that are no tensor: "sequence" / "optional"
        self.anchor = None              # the first graph input (where input-less ops hang)
        self.nodes = []
        self.weights = {}
        self.done = set()               # ids of ONNX nodes a pattern already emitted
        # Layout-aware import: ONNX names whose IR tensor is held channels_last (N, *sp, C)
        # while the ONNX value is channels-first (N, C, *sp); see `ref` / `cl_ref`.
        self.channels_last = set()
        # Flattened channels_last tensors read only by Dense layers: name -> (spatial, C);
        # the Dense kernels' rows are permuted to match (layout.py).
        self.flat_rows = {}
        self._converted = {}
        self._names = set()
        self.producers = {o: n for n in self.graph.node for o in n.output if o}
        self.consumers = {}
        for n in self.graph.node:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.graph_outputs = {o.name for o in self.graph.output}
        for init in self.graph.initializer:
            self.values[init.name] = tensor_to_array(init, label, folder)
        self._infer_shapes()
        self._probe_missing_shapes()

    def _infer_shapes(self):
        try:
            inferred = onnx.shape_inference.infer_shapes(self.model, strict_mode=False,
                                                         data_prop=True)
        except Exception:                # inference is a hint; folding fills constants
            inferred = self.model
        g = inferred.graph
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            kind = value_kind(vi)
            if kind:
                self.kinds.setdefault(vi.name, kind)
                continue
            self.shapes.setdefault(vi.name, _value_info_shape(vi))
            self.dims.setdefault(vi.name, _symbolic_dims(vi))
            if vi.type.tensor_type.elem_type:
                self.dtypes.setdefault(vi.name, np_dtype_name(vi.type.tensor_type.elem_type))

    def _probe_missing_shapes(self):
        """Shapes and dims ONNX inference could not find (value-dependent Reshape targets
        built from Shape ops, such as PyTorch's `x.view(x.size(0), -1)` with a dynamic
        batch): run the graph twice on small random inputs with modelkit's ONNX ops; dims
        that differ between the runs are unknown, dims inference already knew are kept."""
        outs = [o for n in self.graph.node for o in n.output if o]
        if all(self._fully_known(o) for o in outs):
            return
        runs = [self._run_sample(fill) for fill in (2, 3)]
        if any(r is None for r in runs):
            return
        for name in outs:
            a, b = runs[0].get(name), runs[1].get(name)
            if a is None or b is None or self._fully_known(name) or len(a[0]) != len(b[0]):
                continue
            probed = tuple(x if x == y else None for x, y in zip(a[0], b[0]))
            known, dims = self.shapes.get(name), self.dims.get(name)
            if known is None or len(known) != len(probed):
                self.shapes[name] = self.dims[name] = probed
            else:
                self.shapes[name] = tuple(k if k is not None else p
                                          for k, p in zip(known, probed))
                self.dims[name] = tuple(d if d is not None else p for d, p in
                                        zip(dims or known, self.shapes[name]))
            self.dtypes.setdefault(name, a[1])

    def _fully_known(self, name):
        """Inference gave every dim of `name` but (maybe) the batch axis."""
        shape = self.shapes.get(name)
        return shape is not None and None not in shape[1:]

    def _run_sample(self, fill):
        rng = np.random.default_rng(fill)
        env = {k: v for k, v in self.values.items() if isinstance(v, np.ndarray)}
        for vi in self.graph.input:
            if vi.name in env:
                continue
            shape = self.shapes.get(vi.name)
            dtype = self.dtypes.get(vi.name)
            if shape is None or dtype is None:
                return None
            concrete = tuple(fill if d is None else d for d in shape)
            arr = rng.standard_normal(concrete) if np.dtype(dtype).kind == "f" else \
                np.zeros(concrete)
            env[vi.name] = arr.astype(dtype)
        seen = {}
        try:
            for node in self.graph.node:
                res = run_node(node, [env[i] if i else None for i in node.input], self.opset,
                               attributes_of(node, self))
                for name, value in zip(node.output, res):
                    if value is None:
                        continue
                    env[name] = value
                    seen[name] = (tuple(value.shape), str(value.dtype))
        except Exception:       # a hint only: stop where the sample run cannot go on
            return seen
        return seen

    # -- reading -------------------------------------------------------------------------
    def const(self, name):
        """The constant value of `name`, or None when it is computed at run time."""
        v = self.values.get(name) if name else None
        return v if isinstance(v, np.ndarray) else None

    def is_const(self, name):
        return self.const(name) is not None

    def _raw_ref(self, name):
        v = self.values.get(name)
        if isinstance(v, Lazy):
            v = v.make()
            self.values[name] = v
        if not isinstance(v, TensorRef):
            raise ModelLoadError(f"{self.label}: tensor {name!r} is used before it is produced")
        return v

    def ref(self, name):
        """`name` as an IR tensor in ONNX's own layout (a channels_last IR tensor gets a
        Permute back to channels-first, made once)."""
        v = self._raw_ref(name)
        if name not in self.channels_last:
            return v
        return self._permuted(name, v, to_channels_first=True)

    def cl_ref(self, name):
        """`name` (channels-first in ONNX) as a channels_last IR tensor."""
        v = self._raw_ref(name)
        if name in self.channels_last:
            return v
        return self._permuted(name, v, to_channels_first=False)

    def _permuted(self, name, v, to_channels_first):
        key = (name, to_channels_first)
        if key not in self._converted:
            r = self.rank(name)
            dims = [r - 1] + list(range(1, r - 1)) if to_channels_first else \
                list(range(2, r)) + [1]
            (out,) = self.add_node("Permute", {"dims": dims}, [v],
                                   hint=f"{name}_to_{'nchw' if to_channels_first else 'nhwc'}")
            self._converted[key] = out
        return self._converted[key]

    def set_value(self, name, ref, channels_last=False):
        self.values[name] = ref
        if channels_last:
            self.channels_last.add(name)
        else:
            self.channels_last.discard(name)

    def shape(self, name):
        c = self.const(name)
        if c is not None:
            return c.shape
        return self.shapes.get(name)

    def dtype(self, name):
        c = self.const(name)
        if c is not None:
            return str(c.dtype)
        return self.dtypes.get(name)

    def rank(self, name):
        s = self.shape(name)
        return None if s is None else len(s)

    def producer(self, name):
        return self.producers.get(name)

    def only_consumer(self, name):
        """The single node reading `name`, or None (several readers, or a graph output)."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.graph_outputs:
            return None
        return users[0]

    # -- emitting ------------------------------------------------------------------------
    def unique(self, hint):
        base = clean_name(hint)
        name, k = base, 1
        while name in self._names:
            name = f"{base}_{k}"
            k += 1
        self._names.add(name)
        return name

    def reserve(self, name):
        self._names.add(name)

    def add_node(self, op, config, inputs, weights=(), hint=None, n_outputs=1):
        """Append an IR node called once on `inputs` (TensorRefs); `weights` are
        (variable name, array) pairs in the layer's weight order. -> its output refs."""
        name = self.unique(hint or op)
        config = dict(config)
        config.setdefault("name", name)
        config["name"] = name
        config.setdefault("trainable", True)
        config.setdefault("dtype", "float32")
        keys = []
        for var, arr in weights:
            key = f"{name}/{var}"
            self.weights[key] = np.array(arr, order="C")
            keys.append(key)
        self.nodes.append(Node(name, op, config, calls=[list(inputs)], weights=keys))
        return [TensorRef(name, 0, i) for i in range(n_outputs)]

    def onnx_op(self, node):
        """The generic form: `node` as one OnnxOp IR node (constants become its weights)."""
        attributes = attributes_of(node, self)
        # a subgraph's reads of this graph's values are extra inputs of the node
        operands = [None if not i else (self.const(i) if self.is_const(i) else i)
                    for i in list(node.input) + outer_names(attributes)]
        return self.emit_onnx(node.op_type, operands, attributes,
                              [[] if o in self.kinds else self._out_shape(o)
                               for o in node.output],
                              [NON_TENSOR if o in self.kinds else
                               self.dtypes.get(o) or "float32" for o in node.output],
                              hint=node.name or node.op_type)

    def emit_onnx(self, op_type, operands, attributes, out_shapes, out_dtypes, hint=None):
        """An OnnxOp IR node. operands: ONNX value names, TensorRefs, numpy arrays
        (constants: the node's weights) or None (omitted inputs)."""
        call, slots, weights, x_index, constants = [], [], [], {}, []
        for i in operands:
            if i is None:
                slots.append("")
            elif isinstance(i, np.ndarray) and is_small_constant(i):
                slots.append(f"c{len(constants)}")
                constants.append(encode(i, [], lambda v: False))
            elif isinstance(i, np.ndarray):
                slots.append(f"w{len(weights)}")
                weights.append(i)
            else:
                key = i if isinstance(i, str) else ("ref", i)
                if key not in x_index:
                    x_index[key] = len(call)
                    call.append(self.ref(i) if isinstance(i, str) else i)
                slots.append(f"x{x_index[key]}")
        if not call and self.anchor is not None:
            call.append(self.anchor)    # no input (SequenceEmpty...): placed after input 0
        config = {"op_type": op_type, "domain": "", "opset": self.opset,
                  "attributes": attributes, "inputs": slots, "constants": constants,
                  "num_outputs": len(out_shapes),
                  "output_shapes": out_shapes, "output_dtypes": out_dtypes,
                  "weight_shapes": [list(w.shape) for w in weights],
                  "weight_dtypes": [str(w.dtype) for w in weights],
                  "weight_trainable": [bool(np.issubdtype(w.dtype, np.floating))
                                       for w in weights]}
        return self.add_node("OnnxOp", config, call, [(f"w{j}", w) for j, w in
                                                      enumerate(weights)],
                             hint=hint or op_type, n_outputs=len(out_shapes))

    def _out_shape(self, name):
        s = self.shapes.get(name)
        return None if s is None else list(s)


def is_small_constant(array):
    """Constants kept in an OnnxOp's config instead of its weights: shapes, axes, indices,
    scalars (not trained, and needed before the weights are set)."""
    return array.size == 1 or (not np.issubdtype(array.dtype, np.floating) and array.size <= 64)


def attributes_of(node, ctx=None):
    """A node's attributes as JSON-safe values (tensors as {"__array__", "dtype"})."""
    out = {}
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH and node.op_type in CONTROL_FLOW:
            out[a.name] = graph_config(a.g, ctx.label if ctx else "<model>",
                                       ctx.folder if ctx else None,
                                       lambda n: attributes_of(n, ctx))
            continue
        if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS,
                      onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.SPARSE_TENSORS):
            raise UnsupportedError(f"{node.op_type} node {node.name!r}: attribute {a.name!r} "
                                   "holds a subgraph or sparse tensor", [node.name])
        if a.type == onnx.AttributeProto.TENSOR:
            label = ctx.label if ctx else "<model>"
            value = tensor_to_array(a.t, label, ctx.folder if ctx else None,
                                    f"attribute {a.name!r} of node {node.name!r}")
            out[a.name] = encode(value, [], lambda v: False)
            continue
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list):
            v = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out

"""The emit context: what export handlers write into.

A handler receives `(node, ctx, inputs)` where `inputs` are `Tensor`s and returns a list of
`Tensor`s. It only emits: `ctx.op(...)` adds an ONNX node, `ctx.const(...)` an initializer,
`ctx.param(...)` a per-layer initializer shared by every call of that layer.

`Tensor.shape` is the statically known shape (batch first, `None` for unknown dims, or the
whole shape `None` when even the rank is unknown). Handlers keep it up to date because
several layers (Flatten, Dense on rank > 2, recurrent layers, normalisations) need the rank.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from modelkit.errors import UnsupportedError


class Tensor:
    """One ONNX value: its name, static shape (None dims unknown) and numpy dtype name."""

    __slots__ = ("name", "shape", "dtype")

    def __init__(self, name, shape, dtype="float32"):
        self.name = name
        self.shape = None if shape is None else tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(np.dtype(dtype))

    @property
    def rank(self):
        return None if self.shape is None else len(self.shape)

    def __repr__(self):
        return f"Tensor({self.name!r}, {self.shape}, {self.dtype})"


class LayerUnsupported(UnsupportedError):
    """Raised by a handler while emitting: this layer (as configured/connected) cannot be exported."""


def onnx_dtype(dtype):
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def type_text(type_proto):
    """An ONNX TypeProto (a sequence / optional graph input or output) as JSON-safe text
    for the IR's metadata (the IR itself only says "object")."""
    import base64
    return base64.b64encode(type_proto.SerializeToString()).decode("ascii")


def value_info(name, text, dtype, dims):
    """A graph input/output: of the TypeProto `text` (from `type_text`) when given, else a
    tensor of `dtype` and `dims`."""
    if not text:
        return helper.make_tensor_value_info(name, onnx_dtype(dtype), dims)
    import base64

    import onnx
    t = onnx.TypeProto()
    t.ParseFromString(base64.b64decode(text))
    return helper.make_value_info(name, t)


class ExportContext:
    """Unique names, initializers, emitted nodes, masks and the target opset."""

    def __init__(self, opset, reserved=(), emit_graph=None):
        self.opset = int(opset)
        self._emit_graph = emit_graph   # the exporter's walk: (graph, ctx, feeds) -> outputs
        self.nodes = []                 # onnx.NodeProto, in emission order
        self.initializers = []          # onnx.TensorProto
        self.extra_domains = {}         # domain -> version (OnnxOp nodes in custom domains)
        self.masks = {}                 # tensor name -> Tensor (bool, (batch, time))
        self.call_kwargs = {}           # the flags of the call being emitted (ir.CALL_FLAGS)
        self._names = set(reserved)
        self._counters = {}
        self._param_cache = {}
        self._const_cache = {}
        self._graphs = []               # stack of the IR graphs being emitted (for weights)
        self._prefixes = []             # name prefixes of inlined nested models

    # -- names ----------------------------------------------------------------------------
    def unique(self, hint):
        hint = "/".join(self._prefixes + [str(hint)]) if self._prefixes else str(hint)
        name = hint
        while name in self._names:
            n = self._counters.get(hint, 0) + 1
            self._counters[hint] = n
            name = f"{hint}_{n}"
        self._names.add(name)
        return name

    def reserve(self, name):
        self._names.add(name)

    # -- scopes (nested models) -----------------------------------------------------------
    def push_graph(self, graph, prefix=None):
        self._graphs.append(graph)
        if prefix:
            self._prefixes.append(prefix)
        return _Scope(self, bool(prefix))

    @property
    def graph(self):
        return self._graphs[-1]

    def emit_subgraph(self, graph, inputs, prefix):
        """Inline `graph` (a nested model) on `inputs`, its names under `prefix`; -> outputs."""
        with self.push_graph(graph, prefix=prefix):
            return self._emit_graph(graph, self, dict(zip(graph.input_names(), inputs)))

    # -- weights and constants ------------------------------------------------------------
    def weights(self, node):
        """The node's weight arrays (Keras order) from the graph being emitted."""
        g = self.graph
        try:
            return [np.asarray(g.weights[k]) for k in node.weights]
        except KeyError as e:
            raise LayerUnsupported(f"{node.op} layer {node.name!r}: weight {e.args[0]!r} is "
                                   f"missing from graph {g.name!r}", [node.name]) from None

    def weight_named(self, node, suffix, default_index=None):
        """The weight whose key ends with `/suffix` (or the one at `default_index`)."""
        arrays = self.weights(node)
        for key, arr in zip(node.weights, arrays):
            if key == suffix or key.endswith("/" + suffix) or key.endswith("/" + suffix + ":0"):
                return arr
        if default_index is not None and default_index < len(arrays):
            return arrays[default_index]
        return None

    def const(self, array, hint="const", dtype=None):
        array = np.asarray(array, dtype=dtype)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        name = self.unique(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return Tensor(name, array.shape, array.dtype)

    def ints(self, values, hint="shape"):
        """A small int64 constant, deduplicated."""
        values = tuple(int(v) for v in np.atleast_1d(values))
        key = ("i64", values)
        if key not in self._const_cache:
            self._const_cache[key] = self.const(np.array(values, dtype=np.int64), hint)
        return self._const_cache[key]

    def scalar(self, value, dtype="float32", hint="scalar"):
        key = (str(np.dtype(dtype)), float(value))
        if key not in self._const_cache:
            self._const_cache[key] = self.const(np.array(value, dtype=dtype), hint)
        return self._const_cache[key]

    def param(self, node, tag, make):
        """An initializer computed once per layer by `make()`, shared by all its calls."""
        key = (id(self.graph), node.name, tag)
        if key not in self._param_cache:
            self._param_cache[key] = self.const(make(), f"{node.name}/{tag}")
        return self._param_cache[key]

    # -- nodes ----------------------------------------------------------------------------
    def emit(self, op_type, inputs, n_out=1, hint=None, domain=None, **attrs):
        """Add one node; return the names of its outputs. `None` inputs become ''."""
        names = ["" if i is None else (i if isinstance(i, str) else i.name) for i in inputs]
        while names and names[-1] == "":
            names.pop()
        hint = hint or op_type
        outs = [self.unique(f"{hint}:{k}" if n_out > 1 else hint) for k in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = helper.make_node(op_type, names, outs, name=self.unique(f"{hint}/{op_type}"),
                                domain=domain or None, **attrs)
        self.nodes.append(node)
        return outs

    def op(self, op_type, inputs, shape, dtype=None, hint=None, **attrs):
        """Add a single-output node; return its output Tensor with the given static shape."""
        if dtype is None:
            first = next((i for i in inputs if isinstance(i, Tensor)), None)
            dtype = first.dtype if first is not None else "float32"
        (out,) = self.emit(op_type, inputs, 1, hint=hint, **attrs)
        return Tensor(out, shape, dtype)

    # -- common shape-aware helpers ---------------------------------------------------------
    def transpose(self, x, perm, hint=None):
        perm = [int(p) for p in perm]
        if perm == list(range(len(perm))):
            return x
        shape = None if x.shape is None else tuple(x.shape[p] for p in perm)
        return self.op("Transpose", [x], shape, hint=hint, perm=perm)

    def reshape(self, x, target, shape, hint=None):
        """Reshape to `target` (ONNX semantics: 0 copies a dim, -1 infers one)."""
        return self.op("Reshape", [x, self.ints(target)], shape, hint=hint)

    def unsqueeze(self, x, axes, hint=None):
        axes = sorted(int(a) for a in np.atleast_1d(axes))
        shape = None
        if x.shape is not None:
            shape = list(x.shape)
            for a in axes:
                shape.insert(a if a >= 0 else len(shape) + 1 + a, 1)
        return self.op("Unsqueeze", [x, self.ints(axes)], shape, hint=hint)

    def squeeze(self, x, axes, hint=None):
        axes = [int(a) for a in np.atleast_1d(axes)]
        shape = None
        if x.shape is not None:
            r = len(x.shape)
            drop = {a % r for a in axes}
            shape = [d for i, d in enumerate(x.shape) if i not in drop]
        return self.op("Squeeze", [x, self.ints(axes)], shape, hint=hint)

    def reduce(self, op_type, x, axes, keepdims, hint=None):
        """ReduceSum/Mean/Max/Min/... with the axes spelled as the opset wants."""
        axes = [int(a) for a in np.atleast_1d(axes)]
        shape = None
        if x.shape is not None:
            r = len(x.shape)
            ax = {a % r for a in axes}
            shape = [(1 if i in ax else d) for i, d in enumerate(x.shape) if keepdims or i not in ax]
        axes_as_input = op_type == "ReduceSum" or self.opset >= 18
        if axes_as_input:
            return self.op(op_type, [x, self.ints(axes)], shape, hint=hint,
                           keepdims=int(bool(keepdims)))
        return self.op(op_type, [x], shape, hint=hint, axes=axes, keepdims=int(bool(keepdims)))

    def slice(self, x, axis, start, end, step=1, hint=None):
        shape = None
        if x.shape is not None:
            shape = list(x.shape)
            n = shape[axis]
            shape[axis] = len(range(*slice(start, end, step).indices(n))) if n is not None else None
        return self.op("Slice", [x, self.ints([start]), self.ints([end]), self.ints([axis]),
                                 self.ints([step])], shape, hint=hint)

    def reverse(self, x, axis, hint=None):
        """x reversed along `axis` (dynamic length)."""
        return self.slice(x, axis, -1, -(2 ** 63), -1, hint=hint)

    def shape_of(self, x, start=None, end=None, hint=None):
        kw = {}
        if start is not None:
            kw["start"] = int(start)
        if end is not None:
            kw["end"] = int(end)
        if kw and self.opset < 15:
            full = self.op("Shape", [x], (x.rank,), dtype="int64", hint=hint)
            s = 0 if start is None else start
            e = (2 ** 63 - 1) if end is None else end
            return self.op("Slice", [full, self.ints([s]), self.ints([e]), self.ints([0])],
                           (None,), dtype="int64", hint=hint)
        return self.op("Shape", [x], (None,), dtype="int64", hint=hint, **kw)

    def cast(self, x, dtype, hint=None):
        if np.dtype(x.dtype) == np.dtype(dtype):
            return x
        return self.op("Cast", [x], x.shape, dtype=dtype, hint=hint, to=onnx_dtype(dtype))


class _Scope:
    def __init__(self, ctx, has_prefix):
        self.ctx = ctx
        self.has_prefix = has_prefix

    def __enter__(self):
        return self.ctx

    def __exit__(self, *exc):
        self.ctx._graphs.pop()
        if self.has_prefix:
            self.ctx._prefixes.pop()
        return False


def broadcast_shape(*shapes):
    """Numpy broadcasting of static shapes (None = unknown dim; any None shape -> None)."""
    if any(s is None for s in shapes):
        return None
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        known = [d for d in dims if d is not None and d != 1]
        if known:
            out.append(known[0])
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


__all__ = ["Tensor", "ExportContext", "LayerUnsupported", "broadcast_shape", "onnx_dtype", "onnx"]

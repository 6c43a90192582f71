"""tf-keras `TFOpLambda` / `SlicingOpLambda` layers <-> modelkit `BackendOp` nodes.

tf-keras 2.x saves a TF function or Python operator applied to a KerasTensor (`x * 2`,
`tf.concat([a, b], 1)`, `x[:, 1:]`) as a layer whose config names the function
(`"function": "math.multiply"`, `"__operators__.getitem"`) and whose inbound node holds the
call: the first argument as tensor references `[layer, node, tensor, kwargs]` (nested as
the argument was, e.g. the list `tf.concat` takes; a constant first argument is
`["_CONSTANT_VALUE", -1, value, kwargs]`) and every other argument by name in `kwargs`,
where a `[layer, node, tensor]` list is a tensor.

Reading maps the function through `TF_OPS`, a table of names to public K functions (nothing
a file names is imported, evaluated or looked up anywhere else); an unknown name, or a
parameter outside what modelkit computes, is refused naming the layer and the function.
The node keeps the call as tf-keras wrote it (`keras_op`), so it is written back the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelkit.errors import KerasConfigError

TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")
CONSTANT = "_CONSTANT_VALUE"
TENSOR = "__tensor__"
_REQUIRED = object()


@dataclass(frozen=True)
class TFOp:
    """One TF function: the K function it is, the TF parameters that give that function's
    positional arguments in order (`"name"` required, `("name", default)` optional), the
    TF parameters that must keep their default value, and constant K keyword arguments."""

    k: str
    params: tuple
    fixed: dict = field(default_factory=dict)
    k_kwargs: dict = field(default_factory=dict)


_XY = ("x", "y")
_REDUCE = ("input_tensor", ("axis", None), ("keepdims", False))
_MATMUL_DEFAULTS = {"transpose_a": False, "transpose_b": False, "adjoint_a": False,
                    "adjoint_b": False, "a_is_sparse": False, "b_is_sparse": False,
                    "output_type": None, "grad_a": False, "grad_b": False}


def _aliases(names, op):
    return {n: op for n in names}


TF_OPS = {
    **_aliases(("__operators__.add", "math.add", "math.add_n_pair"), TFOp("add", _XY)),
    **_aliases(("math.subtract", "__operators__.sub"), TFOp("subtract", _XY)),
    **_aliases(("math.multiply", "__operators__.mul"), TFOp("multiply", _XY)),
    **_aliases(("math.truediv", "math.divide", "__operators__.truediv"), TFOp("divide", _XY)),
    "math.maximum": TFOp("maximum", _XY),
    "math.minimum": TFOp("minimum", _XY),
    "math.pow": TFOp("pow_", _XY),
    **{f"math.{f}": TFOp(f, ("x",)) for f in ("abs", "exp", "log", "sqrt", "negative",
                                               "square", "sin", "cos", "floor", "ceil",
                                               "round", "sign", "log1p", "expm1")},
    **_aliases(("math.tanh", "nn.tanh"), TFOp("tanh", ("x",))),
    **_aliases(("math.sigmoid", "nn.sigmoid"), TFOp("sigmoid", ("x",))),
    "nn.relu": TFOp("relu", ("features",)),
    "nn.relu6": TFOp("relu", ("features",), k_kwargs={"max_value": 6.0}),
    "nn.leaky_relu": TFOp("relu", ("features", ("alpha", 0.2))),
    "nn.elu": TFOp("elu", ("features",)),
    "nn.selu": TFOp("selu", ("features",)),
    **_aliases(("nn.softplus", "math.softplus"), TFOp("softplus", ("features",))),
    **_aliases(("nn.softsign", "math.softsign"), TFOp("softsign", ("features",))),
    **_aliases(("nn.silu", "nn.swish"), TFOp("silu", ("features",), fixed={"beta": 1.0})),
    "nn.gelu": TFOp("gelu", ("features", ("approximate", False))),
    **_aliases(("nn.softmax", "math.softmax"), TFOp("softmax", ("logits", ("axis", -1)))),
    **_aliases(("nn.log_softmax", "math.log_softmax"),
               TFOp("log_softmax", ("logits", ("axis", -1)))),
    "math.reduce_mean": TFOp("mean", _REDUCE),
    "math.reduce_sum": TFOp("sum", _REDUCE),
    "math.reduce_max": TFOp("max", _REDUCE),
    "math.reduce_min": TFOp("min", _REDUCE),
    "math.reduce_prod": TFOp("prod", _REDUCE),
    "math.reduce_logsumexp": TFOp("logsumexp", _REDUCE),
    "math.reduce_std": TFOp("std", _REDUCE),
    "math.reduce_variance": TFOp("var", _REDUCE),
    "concat": TFOp("concatenate", ("values", "axis")),
    "stack": TFOp("stack", ("values", ("axis", 0))),
    "reshape": TFOp("reshape", ("tensor", "shape")),
    "expand_dims": TFOp("expand_dims", ("input", "axis")),
    "squeeze": TFOp("squeeze", ("input", "axis")),
    **_aliases(("compat.v1.transpose", "transpose"),
               TFOp("permute_dimensions", ("a", ("perm", None)), fixed={"conjugate": False})),
    **_aliases(("linalg.matmul", "matmul"), TFOp("matmul", ("a", "b"), fixed=_MATMUL_DEFAULTS)),
    "tile": TFOp("tile", ("input", "multiples")),
    "split": TFOp("split", ("value", "num_or_size_splits", ("axis", 0)), fixed={"num": None}),
    "clip_by_value": TFOp("clip", ("t", "clip_value_min", "clip_value_max")),
    "cast": TFOp("cast", ("x", "dtype")),
    **_aliases(("math.l2_normalize", "nn.l2_normalize", "linalg.l2_normalize"),
               TFOp("l2_normalize", ("x", ("axis", None)), fixed={"epsilon": 1e-12})),
    "where": TFOp("where", ("condition", "x", "y")),
    "zeros_like": TFOp("zeros_like", ("input",), fixed={"dtype": None}),
    "ones_like": TFOp("ones_like", ("input",), fixed={"dtype": None}),
    "__operators__.getitem": TFOp("getitem", ("tensor", "slice_spec")),
    **{f"math.{f}": TFOp(f, _XY) for f in ("equal", "not_equal", "greater", "greater_equal",
                                           "less", "less_equal", "logical_and",
                                           "logical_or")},
    "math.logical_not": TFOp("logical_not", ("x",)),
    "math.reduce_any": TFOp("any", _REDUCE),
    "math.reduce_all": TFOp("all", _REDUCE),
    **_aliases(("compat.v1.shape", "shape"),
               TFOp("shape", ("input",), fixed={"out_type": "int32"})),
    "nn.bias_add": TFOp("add", ("value", "bias"), fixed={"data_format": None}),
    **{f"math.{f}": TFOp(f, ("input", ("axis", 0)), fixed={"output_type": "int64"})
       for f in ("argmax", "argmin")},
    "gather": TFOp("gather", ("params", "indices"),
                   fixed={"axis": None, "batch_dims": 0, "validate_indices": None}),
    **{f"math.{f}": TFOp(f, ("x",)) for f in ("rsqrt", "reciprocal", "erf")},
    "one_hot": TFOp("one_hot", ("indices", "depth"),
                    fixed={"on_value": None, "off_value": None, "axis": None, "dtype": None}),
    "image.resize": TFOp("resize", ("images", "size", ("method", "bilinear")),
                         fixed={"preserve_aspect_ratio": False, "antialias": False}),
}
# TF functions tf-keras writes without what it takes to call them again (tf-keras itself
# cannot reload them): refused with the reason
UNREADABLE_TF_OPS = {
    "einsum": "tf-keras saves only tf.einsum's first argument (the equation), not the "
              "operands, and cannot reload it itself; call keras.layers.EinsumDense or save "
              "the model with Keras 3 (ops.einsum)",
}


def _is_ref(v):
    """A `[layer, node, tensor]` (or `[..., kwargs]`) tensor reference, as tf-keras reads it."""
    return isinstance(v, list) and len(v) in (3, 4) and isinstance(v[0], str)


def _first_argument(data, refs, where):
    """The first call argument of an inbound node, refs replaced by `{"__tensor__": i}`;
    returns (argument, the kwargs stored with its tensors)."""
    if _is_ref(data):
        kwargs = data[3] if len(data) == 4 else {}
        if not isinstance(kwargs, dict):
            raise KerasConfigError(f"{where}: bad call kwargs {kwargs!r:.80}")
        if data[0] == CONSTANT:
            return {CONSTANT: data[2]}, kwargs
        refs.append(list(data[:3]))
        return {TENSOR: len(refs) - 1}, kwargs
    if isinstance(data, list) and data:
        kwargs = {}
        out = []
        for d in data:
            v, kw = _first_argument(d, refs, where)
            out.append(v)
            kwargs = kw or kwargs
        return out, kwargs
    raise KerasConfigError(f"{where}: bad inbound node {data!r:.80}")


def _tensor_refs(value, refs, depth=0):
    """`value` (call kwargs) with `[layer, node, tensor]` lists replaced by tensor slots."""
    if depth > 32:
        raise KerasConfigError("call arguments nest too deeply")
    if _is_ref(value):
        refs.append(list(value[:3]))
        return {TENSOR: len(refs) - 1}
    if isinstance(value, list):
        return [_tensor_refs(v, refs, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _tensor_refs(v, refs, depth + 1) for k, v in value.items()}
    return value


def _unmark(value):
    """The first argument with its constant markers replaced by the constants."""
    if isinstance(value, dict):
        return value[CONSTANT] if set(value) == {CONSTANT} else value
    if isinstance(value, list):
        return [_unmark(v) for v in value]
    return value


def index_item(item, where):
    """One item of an indexing key, in the op-argument form: tf-keras writes a slice as
    `{"start", "stop", "step"}` and `...` as `{"class_name": "__ellipsis__"}`; Keras 3 a slice
    as `{"class_name": "__slice__", "config": {...}}`. Ints pass; anything else is refused."""
    if isinstance(item, dict) and item.get("class_name") == "__ellipsis__":
        return {"__ellipsis__": True}
    bounds = None
    if isinstance(item, dict) and item.get("class_name") == "__slice__":
        bounds = item.get("config") or {}
    elif isinstance(item, dict) and set(item) <= {"start", "stop", "step"}:
        bounds = item
    if isinstance(bounds, dict):
        s = [bounds.get("start"), bounds.get("stop"), bounds.get("step")]
        if all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in s):
            return {"__slice__": s}
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    raise KerasConfigError(f"{where}: index {item!r:.80} is not supported (ints, constant "
                           f"slices and `...` are)")


def _k_arguments(function, op, first, kwargs, where):
    """The K call {"args", "kwargs"} for TF function `function` called with `first` and the
    named `kwargs`."""
    kwargs = dict(kwargs)
    kwargs.pop("name", None)
    names = [p if isinstance(p, str) else p[0] for p in op.params]
    for k, v in kwargs.items():
        if k in names[1:]:
            continue
        if k in op.fixed and v == op.fixed[k]:
            continue
        raise KerasConfigError(f"{where}: TF function {function!r} is called with {k}={v!r:.60}, "
                               f"which modelkit does not compute")
    args = [first]
    for p in op.params[1:]:
        name, default = (p, _REQUIRED) if isinstance(p, str) else p
        value = kwargs.get(name, default)
        if value is _REQUIRED:
            raise KerasConfigError(f"{where}: TF function {function!r} is called without "
                                   f"its argument {name!r}")
        args.append(value)
    if op.k == "getitem":
        spec = args[1] if isinstance(args[1], list) else [args[1]]
        args[1] = [index_item(s, where) for s in spec]
    if op.k == "permute_dimensions" and args[1] is None:
        args = args[:1]
    return {"args": args, "kwargs": dict(op.k_kwargs)}


def tf_op_node(layer, where):
    """A TFOpLambda/SlicingOpLambda layer entry -> (BackendOp node config, calls), each call
    a list of `[layer, node, tensor]` references in the order of the `__tensor__` slots."""
    cls = layer.get("class_name")
    cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    function = cfg.get("function")
    op = TF_OPS.get(function) if isinstance(function, str) else None
    if function in UNREADABLE_TF_OPS:
        raise KerasConfigError(f"{where}: {cls} layer calls TF function {function!r}: "
                               f"{UNREADABLE_TF_OPS[function]}")
    if op is None:
        raise KerasConfigError(
            f"{where}: {cls} layer calls TF function {function!r:.80}, which modelkit does not "
            f"support (supported: {', '.join(sorted(TF_OPS))})")

    def parse(data, refs):
        first, kwargs = _first_argument(data, refs, where)
        kwargs = _tensor_refs(kwargs, refs)
        call = {"class_name": cls, "function": function, "args": first, "kwargs": kwargs}
        return call, _k_arguments(function, op, _unmark(first), kwargs, where)

    return op_node_config(layer, cfg, op.k, parse, where)


def op_node_config(layer, cfg, k_name, parse, where):
    """The BackendOp config and calls of an op entry; `parse(node, refs)` gives one inbound
    node's (call as the file has it, K arguments), filling `refs`. An op called more than
    once must be called with the same arguments (one BackendOp holds one call's)."""
    nodes = layer.get("inbound_nodes")
    if not isinstance(nodes, list) or not nodes:
        raise KerasConfigError(f"{where}: {layer.get('class_name')} has no inbound node")
    calls, keras_op, arguments = [], None, None
    for data in nodes:
        refs = []
        call, k_args = parse(data, refs)
        if keras_op is not None and call != keras_op:
            raise KerasConfigError(f"{where}: {layer.get('class_name')} is called twice with "
                                   f"different arguments")
        keras_op, arguments = call, k_args
        calls.append(refs)
    config = {"name": _name(layer, cfg), "function": k_name, "arguments": arguments,
              "keras_op": keras_op}
    return config, calls


def restore_tensors(value, items):
    """`value` with each `{"__tensor__": i}` slot replaced by `items[i]`."""
    if isinstance(value, dict):
        if set(value) == {TENSOR}:
            return items[value[TENSOR]]
        return {k: restore_tensors(v, items) for k, v in value.items()}
    if isinstance(value, list):
        return [restore_tensors(v, items) for v in value]
    return value


def _name(layer, cfg):
    return layer.get("name") or cfg.get("name")


def _ref_list(ref, call_offset):
    return [ref.node, ref.call_index + call_offset(ref.node), ref.tensor_index]


def tf_op_entry(node, call_offset):
    """The tf-keras layer entry (config and inbound nodes) of a BackendOp node read from a
    TFOpLambda/SlicingOpLambda layer; `call_offset(name)` is the node-index offset of a
    producer (1 for nested models in the Keras 2 numbering)."""
    keras_op = node.config["keras_op"]
    inbound = []
    for call in node.calls:
        refs = [_ref_list(r, call_offset) for r in call]
        kwargs = restore_tensors(keras_op["kwargs"], refs)

        def first(v):
            if isinstance(v, dict) and set(v) == {TENSOR}:
                return refs[v[TENSOR]] + [kwargs]
            if isinstance(v, dict) and set(v) == {CONSTANT}:
                return [CONSTANT, -1, v[CONSTANT], kwargs]
            return [first(x) for x in v]

        inbound.append(first(keras_op["args"]))
    cfg = {"name": node.name, "trainable": node.config.get("trainable", True),
           "dtype": node.config.get("dtype", "float32"), "function": keras_op["function"]}
    return {"class_name": keras_op["class_name"], "config": cfg, "name": node.name,
            "inbound_nodes": inbound}

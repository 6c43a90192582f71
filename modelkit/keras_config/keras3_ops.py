"""Keras 3 operations in a functional config (`keras.ops.*` / operators on KerasTensors)
<-> modelkit `BackendOp` nodes.

Keras 3 saves `x * 2`, `ops.concatenate([a, b], axis=1)`, `x[:, 1:]` as entries whose
`module` is `keras.src.ops.<numpy|nn|core|math>`, whose `class_name` is the operation class
(`Multiply`, `Concatenate`, `GetItem`: some share a name with a layer, so the module decides),
whose `config` holds the operation's constructor arguments (`axis`, `keepdims`, `newshape`)
and whose inbound node holds the call's positional `args` (`__keras_tensor__`s and constants).

Reading maps the class through `KERAS3_OPS`, a table of names to public K functions; an
unknown operation, or an argument outside what modelkit computes, is refused naming the
layer. The node keeps the entry as Keras wrote it (`keras_op`), so the Keras 3 writer puts
it back the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelkit.errors import KerasConfigError

from .tf_ops import TENSOR, index_item, op_node_config, restore_tensors

OPS_MODULE_PREFIX = "keras.src.ops."


@dataclass(frozen=True)
class Keras3Op:
    """One Keras 3 operation: the K function, how many call arguments come first, the config
    entries that follow them in K's positional order (`(name, default)`), and config entries
    that must keep their default."""

    k: str
    n_args: int = 1
    params: tuple = ()
    fixed: dict = field(default_factory=dict)


_AXIS_KEEP = (("axis", None), ("keepdims", False))


def _binary(k):
    return Keras3Op(k, 2)


KERAS3_OPS = {
    "Add": _binary("add"), "Subtract": _binary("subtract"), "Multiply": _binary("multiply"),
    "TrueDivide": _binary("divide"), "Divide": _binary("divide"),
    "Maximum": _binary("maximum"), "Minimum": _binary("minimum"), "Power": _binary("pow_"),
    "Matmul": _binary("matmul"),
    **{c: Keras3Op(k) for c, k in (
        ("Absolute", "abs"), ("Abs", "abs"), ("Exp", "exp"), ("Log", "log"), ("Sqrt", "sqrt"),
        ("Negative", "negative"), ("Square", "square"), ("Sin", "sin"), ("Cos", "cos"),
        ("Floor", "floor"), ("Ceil", "ceil"), ("Sign", "sign"), ("Log1p", "log1p"),
        ("Expm1", "expm1"), ("Tanh", "tanh"), ("Sigmoid", "sigmoid"), ("Relu", "relu"),
        ("Selu", "selu"), ("Softplus", "softplus"), ("Softsign", "softsign"),
        ("Silu", "silu"))},
    "Elu": Keras3Op("elu", 1, (("alpha", 1.0),)),
    "Gelu": Keras3Op("gelu", 1, (("approximate", True),)),
    "LeakyRelu": Keras3Op("relu", 1, (("negative_slope", 0.2),)),
    "Relu6": Keras3Op("relu", 1, (("alpha", 0.0), ("max_value", 6.0))),
    "Softmax": Keras3Op("softmax", 1, (("axis", -1),)),
    "LogSoftmax": Keras3Op("log_softmax", 1, (("axis", -1),)),
    "Mean": Keras3Op("mean", 1, _AXIS_KEEP),
    "Sum": Keras3Op("sum", 1, _AXIS_KEEP),
    "Max": Keras3Op("max", 1, _AXIS_KEEP, fixed={"initial": None}),
    "Min": Keras3Op("min", 1, _AXIS_KEEP, fixed={"initial": None}),
    "Prod": Keras3Op("prod", 1, _AXIS_KEEP, fixed={"dtype": None}),
    "Var": Keras3Op("var", 1, _AXIS_KEEP),
    "Std": Keras3Op("std", 1, _AXIS_KEEP),
    "Concatenate": Keras3Op("concatenate", 1, (("axis", 0),)),
    "Stack": Keras3Op("stack", 1, (("axis", 0),)),
    "Reshape": Keras3Op("reshape", 1, (("newshape", None),)),
    "ExpandDims": Keras3Op("expand_dims", 1, (("axis", None),)),
    "Squeeze": Keras3Op("squeeze", 1, (("axis", None),)),
    "Transpose": Keras3Op("permute_dimensions", 1, (("axes", None),)),
    "Tile": Keras3Op("tile", 1, (("repeats", None),)),
    "Clip": Keras3Op("clip", 1, (("x_min", None), ("x_max", None))),
    "Where": Keras3Op("where", 3),
    **{c: _binary(k) for c, k in (("Equal", "equal"), ("Greater", "greater"),
                                  ("GreaterEqual", "greater_equal"), ("Less", "less"),
                                  ("LessEqual", "less_equal"), ("LogicalAnd", "logical_and"),
                                  ("LogicalOr", "logical_or"))},
    "LogicalNot": Keras3Op("logical_not"),
    "All": Keras3Op("all", 1, _AXIS_KEEP),
    "Cast": Keras3Op("cast", 1, (("dtype", "float32"),)),
    "GetItem": Keras3Op("getitem", 2),
    "Split": Keras3Op("split", 1, (("indices_or_sections", None), ("axis", 0))),
    "Rsqrt": Keras3Op("rsqrt"), "Reciprocal": Keras3Op("reciprocal"), "Erf": Keras3Op("erf"),
    "OneHot": Keras3Op("one_hot", 1, (("num_classes", None),),
                       fixed={"axis": -1, "sparse": False, "dtype": "float32"}),
    "Resize": Keras3Op("resize", 1, (("size", None), ("interpolation", "bilinear"),
                                     ("data_format", None)),
                       fixed={"antialias": False, "crop_to_aspect_ratio": False,
                              "pad_to_aspect_ratio": False, "fill_mode": "constant",
                              "fill_value": 0.0}),
    # any number of operands; the equation (K's first argument) is in the config
    "Einsum": Keras3Op("einsum", None, (("subscripts", None),)),
}


def is_keras3_op(layer):
    """Whether a functional-config entry is a Keras 3 operation (not a layer)."""
    module = layer.get("module")
    return isinstance(module, str) and module.startswith(OPS_MODULE_PREFIX)


def _mark(value, refs, depth=0):
    """Node arguments with `__keras_tensor__`s replaced by `{"__tensor__": i}` slots."""
    if depth > 32:
        raise KerasConfigError("call arguments nest too deeply")
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            hist = (value.get("config") or {}).get("keras_history")
            if not isinstance(hist, list) or len(hist) != 3:
                raise KerasConfigError(f"__keras_tensor__ without a keras_history: {value!r:.80}")
            refs.append(list(hist))
            return {TENSOR: len(refs) - 1}
        return {k: _mark(v, refs, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(v, refs, depth + 1) for v in value]
    return value


def _k_arguments(cls, op, cfg, args, where):
    extra = set(cfg) - {"name", "trainable", "dtype"} - {p for p, _ in op.params}
    for k in sorted(extra):
        if k in op.fixed and cfg[k] == op.fixed[k]:
            continue
        raise KerasConfigError(f"{where}: Keras operation {cls!r} has {k}={cfg[k]!r:.60}, which "
                               f"modelkit does not compute")
    if op.n_args is not None and len(args) != op.n_args:
        raise KerasConfigError(f"{where}: Keras operation {cls!r} takes {op.n_args} "
                               f"argument(s), the file gives {len(args)}")
    args = list(args) + [cfg.get(p, d) for p, d in op.params]
    if op.k == "einsum":
        args = args[-1:] + args[:-1]
    if op.k == "getitem":
        key = args[1] if isinstance(args[1], list) else [args[1]]
        args[1] = [index_item(k, where) for k in key]
    if op.k == "split" and isinstance(args[1], list):     # numpy's split indices -> sizes
        bounds = [0] + [int(i) for i in args[1]]
        args[1] = [b - a for a, b in zip(bounds, bounds[1:])] + [-1]
    if cls == "LeakyRelu":
        args[1] = float(args[1])
    return {"args": args, "kwargs": {}}


def keras3_op_node(layer, where):
    """A Keras 3 operation entry -> (BackendOp node config, calls), each call a list of
    `[layer, node, tensor]` references in the order of the `__tensor__` slots."""
    cls = layer.get("class_name")
    op = KERAS3_OPS.get(cls) if isinstance(cls, str) else None
    if op is None:
        raise KerasConfigError(
            f"{where}: Keras operation {cls!r:.80} ({layer.get('module')}) is not supported "
            f"(supported: {', '.join(sorted(KERAS3_OPS))})")
    cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}

    def parse(n, refs):
        if not isinstance(n, dict) or not isinstance(n.get("args", []), list):
            raise KerasConfigError(f"{where}: bad inbound node {n!r:.80}")
        if n.get("kwargs"):
            raise KerasConfigError(f"{where}: Keras operation {cls!r} is called with keyword "
                                   f"arguments {sorted(n['kwargs'])}, which modelkit does not "
                                   f"compute")
        args = _mark(n.get("args", []), refs)
        call = {"module": layer.get("module"), "class_name": cls, "config": cfg, "args": args}
        return call, _k_arguments(cls, op, cfg, args, where)

    return op_node_config(layer, cfg, op.k, parse, where)


def keras3_op_entry(node, tensor_item):
    """The Keras 3 entry of a BackendOp node read from a Keras 3 operation; `tensor_item(ref)`
    is the `__keras_tensor__` dict of a reference."""
    keras_op = node.config["keras_op"]
    inbound = [{"args": restore_tensors(keras_op["args"], [tensor_item(r) for r in call]),
                "kwargs": {}} for call in node.calls]
    return {"module": keras_op["module"], "class_name": keras_op["class_name"],
            "config": dict(keras_op["config"], name=node.name),
            "registered_name": keras_op["class_name"], "name": node.name,
            "inbound_nodes": inbound}

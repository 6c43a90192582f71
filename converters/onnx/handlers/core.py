"""Core layers: Dense, identity-at-inference layers, shape layers, Embedding, Masking,
Keras 1's Highway and MaxoutDense, Lambda and nested models (OnnxOp: onnx_op.py)."""

from __future__ import annotations

import numpy as np

from ..context import LayerUnsupported
from ..registry import check_graph, export_handler
from .activations import activation_problem, apply_activation


def _check_activation(node, opset):
    return activation_problem(node.config.get("activation"))


@export_handler("Dense", check=_check_activation, keeps_mask=True)
def dense(node, ctx, inputs):
    x = inputs[0]
    ws = ctx.weights(node)
    kernel = ctx.param(node, "kernel", lambda: np.asarray(ws[0], np.float32))
    units = ws[0].shape[1]
    shape = None if x.shape is None else x.shape[:-1] + (units,)
    y = ctx.op("MatMul", [x, kernel], shape, hint=node.name)
    if node.config.get("use_bias", True) and len(ws) > 1:
        bias = ctx.param(node, "bias", lambda: np.asarray(ws[1], np.float32))
        y = ctx.op("Add", [y, bias], shape, hint=node.name)
    return [apply_activation(ctx, y, node.config.get("activation"), hint=node.name)]


IDENTITY_OPS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
                "InputLayer", "Identity")


@export_handler(*IDENTITY_OPS, keeps_mask=True)
def identity(node, ctx, inputs):
    """Layers that do nothing at inference: the output is the input tensor itself."""
    return [inputs[0]]


@export_handler("Rescaling")
def rescaling(node, ctx, inputs):
    """x * scale + offset (per channel when they are lists); integer inputs cast first."""
    x = inputs[0]
    if x.dtype != "float32":
        x = ctx.cast(x, "float32", hint=node.name)
    scale = ctx.const(np.asarray(node.config.get("scale", 1.0), np.float32), hint="scale")
    offset = ctx.const(np.asarray(node.config.get("offset", 0.0), np.float32), hint="offset")
    y = ctx.op("Mul", [x, scale], x.shape, hint=node.name)
    return [ctx.op("Add", [y, offset], x.shape, hint=node.name)]


@export_handler("Flatten")
def flatten(node, ctx, inputs):
    """Keras 2 Flatten: channels_first input is read as (N, C, d...) and flattened in
    (d..., C) order, so a Dense after it sees the same features as with channels_last."""
    x = inputs[0]
    if node.config.get("data_format") == "channels_first" and x.rank is not None and x.rank > 2:
        x = ctx.transpose(x, [0] + list(range(2, x.rank)) + [1], hint=node.name)
    shape = None
    if x.shape is not None:
        rest = x.shape[1:]
        shape = (x.shape[0], int(np.prod(rest)) if all(d is not None for d in rest) else None)
    return [ctx.op("Flatten", [x], shape, hint=node.name, axis=1)]


@export_handler("Reshape")
def reshape(node, ctx, inputs):
    x = inputs[0]
    target = [int(d) for d in node.config["target_shape"]]
    out = list(target)
    if -1 in target and x.shape is not None and all(d is not None for d in x.shape[1:]):
        known = int(np.prod([d for d in target if d != -1]))
        out[target.index(-1)] = int(np.prod(x.shape[1:])) // max(known, 1)
    shape = (None if x.shape is None else x.shape[0],) + tuple(None if d == -1 else d for d in out)
    # 0 copies the (dynamic) batch dim; Keras target shapes never hold 0 themselves.
    return [ctx.reshape(x, [0] + target, shape, hint=node.name)]


@export_handler("Permute")
def permute(node, ctx, inputs):
    dims = [int(d) for d in node.config["dims"]]
    return [ctx.transpose(inputs[0], [0] + dims, hint=node.name)]


@export_handler("RepeatVector")
def repeat_vector(node, ctx, inputs):
    x = inputs[0]
    n = int(node.config["n"])
    u = ctx.unsqueeze(x, [1], hint=node.name)
    shape = None if x.shape is None else (x.shape[0], n, x.shape[1])
    return [ctx.op("Tile", [u, ctx.ints([1, n, 1])], shape, hint=node.name)]


@export_handler("Embedding")
def embedding(node, ctx, inputs):
    """Gather rows of the table; indices are cast to int64. mask_zero -> mask = (x != 0)."""
    x = inputs[0]
    (table,) = ctx.weights(node)[:1]
    w = ctx.param(node, "embeddings", lambda: np.asarray(table, np.float32))
    idx = ctx.cast(x, "int64", hint=node.name)
    shape = None if x.shape is None else x.shape + (table.shape[1],)
    y = ctx.op("Gather", [w, idx], shape, dtype="float32", hint=node.name, axis=0)
    if node.config.get("mask_zero"):
        ctx.masks[y.name] = ctx.op("Not", [ctx.op("Equal", [idx, ctx.ints([0])], x.shape,
                                                  dtype="bool")], x.shape, dtype="bool",
                                   hint=f"{node.name}/mask")
    return [y]


@export_handler("Masking")
def masking(node, ctx, inputs):
    """y = x * any(x != mask_value, axis=-1); the mask (batch, steps) feeds later RNNs."""
    x = inputs[0]
    value = float(node.config.get("mask_value", 0.0))
    keep_shape = None if x.shape is None else x.shape[:-1] + (1,)
    ne = ctx.op("Not", [ctx.op("Equal", [x, ctx.scalar(value)], x.shape, dtype="bool")],
                x.shape, dtype="bool")
    keep = ctx.reduce("ReduceMax", ctx.cast(ne, "float32"), [-1], True, hint=f"{node.name}/keep")
    keep.shape = keep_shape
    y = ctx.op("Mul", [x, keep], x.shape, hint=node.name)
    mask = ctx.cast(ctx.squeeze(keep, [-1]), "bool", hint=f"{node.name}/mask")
    ctx.masks[y.name] = mask
    return [y]


@export_handler("Highway", check=_check_activation)
def highway(node, ctx, inputs):
    """Keras 1 Highway: y = t * act(x W + b) + (1 - t) * x, t = sigmoid(x W_carry + b_carry).

    Weights are found by name (`W`, `b`, `W_carry`, `b_carry`), falling back to the order
    W, b, W_carry, b_carry.
    """
    x = inputs[0]
    W = ctx.weight_named(node, "W", 0)
    b = ctx.weight_named(node, "b", 1)
    Wc = ctx.weight_named(node, "W_carry", 2)
    bc = ctx.weight_named(node, "b_carry", 3)
    use_bias = node.config.get("use_bias", node.config.get("bias", True))
    s = x.shape
    h = ctx.op("MatMul", [x, ctx.param(node, "W", lambda: W.astype(np.float32))], s)
    t = ctx.op("MatMul", [x, ctx.param(node, "W_carry", lambda: Wc.astype(np.float32))], s)
    if use_bias and b is not None and bc is not None:
        h = ctx.op("Add", [h, ctx.param(node, "b", lambda: b.astype(np.float32))], s)
        t = ctx.op("Add", [t, ctx.param(node, "b_carry", lambda: bc.astype(np.float32))], s)
    t = ctx.op("Sigmoid", [t], s)
    h = apply_activation(ctx, h, node.config.get("activation"), hint=node.name)
    carry = ctx.op("Mul", [ctx.op("Sub", [ctx.scalar(1.0), t], s), x], s)
    return [ctx.op("Add", [ctx.op("Mul", [t, h], s), carry], s, hint=node.name)]


@export_handler("MaxoutDense")
def maxout_dense(node, ctx, inputs):
    """Keras 1 MaxoutDense: y = max_k (x W[k] + b[k]); W (nb_feature, in, out), b (nb_feature, out)."""
    x = inputs[0]
    ws = ctx.weights(node)
    W = ws[0]
    nb, _, units = W.shape
    batch = None if x.shape is None else x.shape[0]
    w2 = ctx.param(node, "W", lambda: np.ascontiguousarray(
        np.transpose(W, (1, 0, 2)).reshape(W.shape[1], nb * units)).astype(np.float32))
    y = ctx.op("MatMul", [x, w2], (batch, nb * units))
    y = ctx.reshape(y, [0, nb, units], (batch, nb, units))
    use_bias = node.config.get("use_bias", node.config.get("bias", True))
    if use_bias and len(ws) > 1:
        y = ctx.op("Add", [y, ctx.param(node, "b", lambda: ws[1].astype(np.float32))], y.shape)
    return [ctx.reduce("ReduceMax", y, [1], False, hint=node.name)]


def _lambda_problem(node, opset):
    traced = node.config.get("traced")
    if traced is not None and TRACED_LAMBDA_EXPORTER is not None:
        return None
    why = ("it holds Python code" if traced is None else
           "its traced backend-op form is not exportable yet")
    return (f"{why}; ONNX cannot run Python. Replace it with built-in layers, or trace it to "
            f"backend ops")


# Hook for traced Lambdas: a Lambda node's config may carry `"traced"`, an IR subgraph of
# backend ops. When the backend-op export handlers exist, set this to a function
# `(node, ctx, inputs) -> list[Tensor]` that emits that subgraph; until then every Lambda is
# reported as unsupported.
TRACED_LAMBDA_EXPORTER = None


@export_handler("Lambda", check=_lambda_problem)
def lambda_layer(node, ctx, inputs):
    if node.config.get("traced") is not None and TRACED_LAMBDA_EXPORTER is not None:
        return TRACED_LAMBDA_EXPORTER(node, ctx, inputs)
    raise LayerUnsupported(_lambda_problem(node, ctx.opset))


def _nested_problem(node, opset):
    if node.subgraph is None:
        return "nested model has no subgraph"
    return check_graph(node.subgraph, opset, prefix=f"{node.name}/") or None


@export_handler("Functional", "Sequential", "Model", check=_nested_problem)
def nested_model(node, ctx, inputs):
    """Inline the nested model's graph, once per call; weights are shared between calls."""
    sub = node.subgraph
    if len(inputs) != len(sub.inputs):
        raise LayerUnsupported(f"nested model takes {len(sub.inputs)} input(s), "
                               f"the call passes {len(inputs)}")
    return ctx.emit_subgraph(sub, inputs, prefix=node.name)

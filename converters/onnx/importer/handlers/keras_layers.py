"""Import handlers that recognise Keras layers: Dense, Conv1D/2D, DepthwiseConv2D,
BatchNormalization, pools, activations, merges, Flatten/Reshape/Permute, Dropout, Embedding.

Layout-aware: convolution trunks run channels_last. A Conv reads its input through
`ctx.cl_ref` (one Permute where an NCHW tensor enters the trunk) and returns a
`ChannelsLast` value; layout-neutral layers (BatchNormalization, pools, activations, merges,
Dropout) keep it; anything that needs ONNX's layout reads `ctx.ref`, which adds the Permute
back. A Flatten of a channels_last tensor feeding only Dense layers flattens in (H, W, C)
order and the Dense kernels get their rows permuted instead (layout.py), so no transpose
runs at prediction time. Every handler falls back to the generic OnnxOp when its pattern
does not match.
"""

from __future__ import annotations

import numpy as np

from modelkit.errors import UnsupportedError
from modelkit.onnx_spec import (bilinear_matrix, conv_geometry, pool_geometry, resize_plan,
                                 text)
from modelkit.op_arguments import decode

from ... import layout
from ..context import ChannelsLast, attributes_of
from ..registry import import_handler

NON_NEGATIVE_OPS = {"Relu", "Sigmoid", "Softmax", "Abs", "Exp", "Softplus", "HardSigmoid"}


def attrs(node, ctx):
    return {k: decode(v, []) for k, v in attributes_of(node, ctx).items()}


def raw(ctx, name):
    """(IR tensor as held, whether it is channels_last)."""
    return ctx._raw_ref(name), name in ctx.channels_last


def keep_layout(ref, channels_last):
    return ChannelsLast(ref) if channels_last else ref


def is_float(ctx, name):
    dt = ctx.dtype(name)
    return dt is not None and np.issubdtype(np.dtype(dt), np.floating)


def used_outputs(node, ctx):
    return [o for o in node.output if o and (ctx.consumers.get(o) or o in ctx.graph_outputs)]


def _spatial_known(ctx, name):
    s = ctx.shape(name)
    return s is not None and all(d is not None for d in s[1:])


def _zero_pad(ctx, ref, pads, n, hint):
    if not any(b or e for b, e in pads):
        return ref
    if n == 1:
        cfg = {"padding": [int(pads[0][0]), int(pads[0][1])]}
    else:
        cfg = {"padding": [[int(b), int(e)] for b, e in pads], "data_format": "channels_last"}
    return ctx.add_node(f"ZeroPadding{n}D", cfg, [ref], hint=f"{hint}_pad")[0]


# Ops that work element by element (with ONNX broadcasting): layout-neutral
ELEMENTWISE = {"Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Sin", "Cos", "Tanh", "Sigmoid",
               "Erf", "Softplus", "Softsign", "Floor", "Ceil", "Round", "Sign", "Relu",
               "LeakyRelu", "PRelu", "Elu", "Celu", "Selu", "ThresholdedRelu", "HardSigmoid",
               "HardSwish", "Gelu", "Mish", "Clip", "Identity", "Add", "Sub", "Mul", "Div", "Pow",
               "Max", "Min", "Sum", "Mean", "Where", "Equal", "Greater", "Less", "GreaterOrEqual",
               "LessOrEqual", "And", "Or", "Xor", "Not", "IsNaN", "IsInf", "Mod", "Cast"}


def channels_last_elementwise(node, ctx):
    """An elementwise op whose tensor inputs are all channels_last trunk tensors: run it on
    them (constants permuted to match), keeping the trunk channels_last. None otherwise."""
    if node.op_type not in ELEMENTWISE:
        return None
    dynamic = [i for i in node.input if i and not ctx.is_const(i)]
    if not dynamic or any(i not in ctx.channels_last for i in dynamic):
        return None
    r = ctx.rank(dynamic[0])
    if any(ctx.rank(i) != r for i in dynamic):
        return None
    to_cl = [0] + list(range(2, r)) + [1]
    operands = []
    for i in node.input:
        if not i:
            operands.append(None)
        elif i in ctx.channels_last:
            operands.append(ctx._raw_ref(i))
        else:
            c = ctx.const(i)
            if c.size > 1:
                if c.ndim > r:
                    return None
                c = np.transpose(c.reshape((1,) * (r - c.ndim) + c.shape), to_cl)
            operands.append(c)
    shape = ctx.shape(node.output[0])
    out_shape = None if shape is None else [shape[p] for p in to_cl]
    (out,) = ctx.emit_onnx(node.op_type, operands, attributes_of(node, ctx), [out_shape],
                           [ctx.dtype(node.output[0]) or "float32"],
                           hint=node.name or node.op_type)[:1]
    return [ChannelsLast(out)] + [None] * (len(node.output) - 1)


def fallback(node, ctx):
    """What a handler emits when its Keras pattern does not fit: the generic OnnxOp (kept on
    the channels_last trunk tensors when the op is elementwise)."""
    return channels_last_elementwise(node, ctx) or ctx.onnx_op(node)


# -- convolution ------------------------------------------------------------------------------

@import_handler("Conv", since=1)
def conv(node, ctx):
    x, w = node.input[0], node.input[1]
    b = node.input[2] if len(node.input) > 2 and node.input[2] else None
    W, B = ctx.const(w), (ctx.const(b) if b else None)
    r = ctx.rank(x)
    if W is None or (b and B is None) or r not in (3, 4) or W.ndim != r or \
            not _spatial_known(ctx, x) or not is_float(ctx, x):
        return fallback(node, ctx)
    a = attrs(node, ctx)
    n = r - 2
    kernel = [int(k) for k in a.get("kernel_shape", W.shape[2:])]
    strides, dilations, pads = conv_geometry(ctx.shape(x)[2:], a, kernel)
    if any(st > 1 for st in strides) and any(d > 1 for d in dilations):
        return fallback(node, ctx)          # Keras convolutions refuse strides with dilation
    group = int(a.get("group", 1))
    cin = ctx.shape(x)[1]
    hint = node.name or "conv"
    same = [layout.keras_same_pads(L, k, st, d)
            for L, k, st, d in zip(ctx.shape(x)[2:], kernel, strides, dilations)]
    padding = "same" if [tuple(p) for p in pads] == same and any(b or e for b, e in pads) \
        else "valid"
    inp = ctx.cl_ref(x) if padding == "same" else _zero_pad(ctx, ctx.cl_ref(x), pads, n, hint)
    base = {"kernel_size": kernel, "strides": strides, "padding": padding,
            "data_format": "channels_last", "dilation_rate": dilations,
            "use_bias": B is not None, "activation": "linear"}
    bias = [("bias", B.astype(W.dtype))] if B is not None else []
    if group == 1:
        op = f"Conv{n}D"
        cfg = dict(base, filters=int(W.shape[0]))
        weights = [("kernel", layout.onnx_conv_kernel_to_keras(W))] + bias
    elif n == 2 and group == cin and W.shape[1] == 1:
        op = "DepthwiseConv2D"
        cfg = dict(base, depth_multiplier=int(W.shape[0]) // cin)
        weights = [("depthwise_kernel", layout.onnx_depthwise_kernel_to_keras(W, cin))] + bias
    else:
        op = f"Conv{n}D"
        cfg = dict(base, filters=int(W.shape[0]), groups=group)
        weights = [("kernel", layout.onnx_conv_kernel_to_keras(W))] + bias
    (out,) = ctx.add_node(op, cfg, [inp], weights, hint=hint)
    return [ChannelsLast(out)]


@import_handler("ConvTranspose", since=1)
def conv_transpose(node, ctx):
    """-> Conv1DTranspose/Conv2DTranspose ('valid', output_padding given), then Cropping for
    ONNX's pads."""
    x, w = node.input[0], node.input[1]
    b = node.input[2] if len(node.input) > 2 and node.input[2] else None
    W, B = ctx.const(w), (ctx.const(b) if b else None)
    r = ctx.rank(x)
    a = attrs(node, ctx)
    if W is None or (b and B is None) or r not in (3, 4) or W.ndim != r or \
            not _spatial_known(ctx, x) or not is_float(ctx, x) or int(a.get("group", 1)) != 1 \
            or any(d != 1 for d in a.get("dilations", [])) or "output_shape" in a or \
            str(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
        return fallback(node, ctx)
    n = r - 2
    strides = [int(v) for v in a.get("strides", [1] * n)]
    out_pad = [int(v) for v in a.get("output_padding", [0] * n)]
    pads = [0] * (2 * n) if a.get("auto_pad") == "VALID" else \
        [int(v) for v in a.get("pads", [0] * (2 * n))]
    hint = node.name or "conv_transpose"
    cfg = {"filters": int(W.shape[1]), "kernel_size": list(W.shape[2:]), "strides": strides,
           "padding": "valid", "output_padding": out_pad, "data_format": "channels_last",
           "use_bias": B is not None, "activation": "linear"}
    weights = [("kernel", layout.onnx_conv_kernel_to_keras(W))] + \
        ([("bias", B.astype(W.dtype))] if B is not None else [])
    (out,) = ctx.add_node(f"Conv{n}DTranspose", cfg, [ctx.cl_ref(x)], weights, hint=hint)
    crop = list(zip(pads[:n], pads[n:]))
    if any(p0 or p1 for p0, p1 in crop):
        cfg = {"cropping": list(crop[0])} if n == 1 else \
            {"cropping": [list(c) for c in crop], "data_format": "channels_last"}
        (out,) = ctx.add_node(f"Cropping{n}D", cfg, [out], hint=f"{hint}_crop")
    return [ChannelsLast(out)]


@import_handler("LayerNormalization", since=17)
def layer_normalization(node, ctx):
    """Normalisation over the last axis with constant scale/bias -> LayerNormalization."""
    x = node.input[0]
    scale = ctx.const(node.input[1])
    has_b = len(node.input) > 2 and bool(node.input[2])
    bias = ctx.const(node.input[2]) if has_b else None
    a = attrs(node, ctx)
    r = ctx.rank(x)
    if r is None or int(a.get("axis", -1)) % r != r - 1 or scale is None or \
            (has_b and bias is None) or len(used_outputs(node, ctx)) != 1 or \
            node.output[0] not in used_outputs(node, ctx) or not is_float(ctx, x) or \
            ctx.shape(x)[-1] is None or scale.size != ctx.shape(x)[-1]:
        return fallback(node, ctx)
    cfg = {"axis": -1, "epsilon": float(a.get("epsilon", 1e-5)), "center": bias is not None,
           "scale": True}
    weights = [("gamma", scale.reshape(-1))] + \
        ([("beta", bias.reshape(-1))] if bias is not None else [])
    (out,) = ctx.add_node("LayerNormalization", cfg, [ctx.ref(x)], weights,
                          hint=node.name or "layer_norm")
    return [out]


# -- normalisation ----------------------------------------------------------------------------

@import_handler("BatchNormalization", since=1)
def batch_normalization(node, ctx):
    x = node.input[0]
    params = [ctx.const(i) for i in node.input[1:5]]
    a = attrs(node, ctx)
    r = ctx.rank(x)
    if any(p is None for p in params) or a.get("training_mode", 0) or \
            len(used_outputs(node, ctx)) != 1 or r is None or not 2 <= r <= 5 or \
            not is_float(ctx, x):
        return fallback(node, ctx)
    scale, bias, mean, var = params
    cfg = {"axis": -1, "momentum": float(a.get("momentum", 0.9)),
           "epsilon": float(a.get("epsilon", 1e-5)), "center": True, "scale": True}
    weights = [("gamma", scale), ("beta", bias), ("moving_mean", mean),
               ("moving_variance", var)]
    inp = ctx.ref(x) if r == 2 else ctx.cl_ref(x)
    (out,) = ctx.add_node("BatchNormalization", cfg, [inp], weights, hint=node.name or "bn")
    return [out if r == 2 else ChannelsLast(out)]


# -- pooling ----------------------------------------------------------------------------------

@import_handler("MaxPool", "AveragePool", since=1)
def pool(node, ctx):
    x = node.input[0]
    r = ctx.rank(x)
    a = attrs(node, ctx)
    if r not in (3, 4) or len(node.output) > 1 and node.output[1] or \
            any(d != 1 for d in a.get("dilations", [])) or a.get("storage_order", 0) or \
            not _spatial_known(ctx, x) or not is_float(ctx, x):
        return fallback(node, ctx)
    n = r - 2
    kernel = [int(k) for k in a["kernel_shape"]]
    strides, pads, extra = pool_geometry(ctx.shape(x)[2:], a, kernel)
    padded = any(b or e for b, e in pads) or any(extra)
    is_max = node.op_type == "MaxPool"
    if padded:
        producer = ctx.producer(x)
        zero_ok = (is_max and producer is not None and producer.op_type in NON_NEGATIVE_OPS) \
            or (not is_max and a.get("count_include_pad", 0) and not any(extra))
        if not zero_ok:
            return fallback(node, ctx)
    hint = node.name or node.op_type
    full = [(b, e + c) for (b, e), c in zip(pads, extra)]
    inp = _zero_pad(ctx, ctx.cl_ref(x), full, n, hint)
    op = f"{'Max' if is_max else 'Average'}Pooling{n}D"
    cfg = {"pool_size": kernel, "strides": strides, "padding": "valid",
           "data_format": "channels_last"}
    (out,) = ctx.add_node(op, cfg, [inp], hint=hint)
    return [ChannelsLast(out)]


@import_handler("Pad", since=1)
def pad(node, ctx):
    """Zero padding of the spatial axes of an (N, C, *spatial) tensor (PyTorch's ZeroPad2d,
    F.pad) -> ZeroPadding1D/2D/3D on the channels_last trunk; other pads stay OnnxOps."""
    x = node.input[0]
    r = ctx.rank(x)
    a = attrs(node, ctx)
    if r not in (3, 4, 5) or not is_float(ctx, x) or \
            text(a.get("mode"), "constant") != "constant":
        return fallback(node, ctx)
    pads = a.get("pads") if len(node.input) < 2 or not node.input[1] else ctx.const(node.input[1])
    value = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else \
        np.asarray(a.get("value", 0.0))
    axes = ctx.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if pads is None or value is None or float(np.asarray(value).reshape(-1)[0] if
                                              np.asarray(value).size else 0.0) != 0.0:
        return fallback(node, ctx)
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    axes = list(range(r)) if axes is None else [int(v) % r for v in np.asarray(axes).reshape(-1)]
    k = len(axes)
    widths = {axis: (pads[i], pads[i + k]) for i, axis in enumerate(axes)}
    if any(b < 0 or e < 0 for b, e in widths.values()) or \
            any(widths.get(axis, (0, 0)) != (0, 0) for axis in (0, 1)):
        return fallback(node, ctx)
    spatial = [widths.get(axis, (0, 0)) for axis in range(2, r)]
    out = _zero_pad(ctx, ctx.cl_ref(x), spatial, r - 2, node.name or "pad")
    return [ChannelsLast(out)]


@import_handler("GlobalAveragePool", "GlobalMaxPool", since=1)
def global_pool(node, ctx):
    x = node.input[0]
    r = ctx.rank(x)
    if r not in (3, 4) or not is_float(ctx, x):
        return fallback(node, ctx)
    n = r - 2
    op = f"Global{'Average' if node.op_type == 'GlobalAveragePool' else 'Max'}Pooling{n}D"
    follower = ctx.only_consumer(node.output[0])
    flattens = follower is not None and follower.op_type == "Flatten" and \
        int(attrs(follower, ctx).get("axis", 1)) == 1
    cfg = {"data_format": "channels_last", "keepdims": not flattens}
    (out,) = ctx.add_node(op, cfg, [ctx.cl_ref(x)], hint=node.name or op)
    if flattens:            # (N, C, 1, 1) flattened is the pooled (N, C): one layer
        ctx.done.add(id(follower))
        ctx.set_value(follower.output[0], out)
        return [None]
    return [ChannelsLast(out)]


# -- activations --------------------------------------------------------------------------------

def _activation_name(node, a):
    t = node.op_type
    simple = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus",
              "Softsign": "softsign"}
    if t in simple:
        return simple[t]
    if t == "Selu" and "alpha" not in a and "gamma" not in a:
        return "selu"
    if t == "Elu" and float(a.get("alpha", 1.0)) == 1.0:
        return "elu"
    if t == "HardSigmoid" and np.isclose(a.get("alpha", 0.2), 0.2) and \
            np.isclose(a.get("beta", 0.5), 0.5):
        return "hard_sigmoid"
    if t == "Gelu" and a.get("approximate", "none") == "none":
        return "gelu"
    return None


@import_handler("Relu", "Sigmoid", "Tanh", "Softplus", "Softsign", "Selu", "Elu",
                "HardSigmoid", "Gelu", "LeakyRelu", "Softmax", "LogSoftmax", since=1)
def activation(node, ctx):
    x = node.input[0]
    if not is_float(ctx, x) or ctx.rank(x) is None:
        return fallback(node, ctx)
    a = attrs(node, ctx)
    ref, cl = raw(ctx, x)
    hint = node.name or node.op_type
    if node.op_type == "LeakyRelu":
        (out,) = ctx.add_node("LeakyReLU", {"alpha": float(a.get("alpha", 0.01))}, [ref],
                              hint=hint)
        return [keep_layout(out, cl)]
    if node.op_type in ("Softmax", "LogSoftmax"):
        r = ctx.rank(x)
        axis = int(a.get("axis", -1 if ctx.opset >= 13 else 1)) % r
        if ctx.opset < 13 and axis != r - 1:
            return fallback(node, ctx)
        if cl:
            axis = r - 1 if axis == 1 else (axis - 1 if axis >= 2 else 0)
        if axis == 0:
            return fallback(node, ctx)
        if axis == r - 1:       # log_softmax: tf-keras 2.x and Keras 3 both resolve it
            name = "softmax" if node.op_type == "Softmax" else "log_softmax"
            (out,) = ctx.add_node("Activation", {"activation": name}, [ref], hint=hint)
        elif node.op_type == "LogSoftmax":
            return fallback(node, ctx)
        else:
            (out,) = ctx.add_node("Softmax", {"axis": axis}, [ref], hint=hint)
        return [keep_layout(out, cl)]
    name = _activation_name(node, a)
    if name is None:
        return fallback(node, ctx)
    (out,) = ctx.add_node("Activation", {"activation": name}, [ref], hint=hint)
    return [keep_layout(out, cl)]


@import_handler("Clip", since=1)
def clip(node, ctx):
    """Clip(x, 0[, m]) -> ReLU(max_value=m) (PyTorch's ReLU6 / Hardtanh(0, m))."""
    x = node.input[0]
    lo = ctx.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    hi = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    dynamic = any(i and not ctx.is_const(i) for i in node.input[1:])
    if dynamic or lo is None or float(lo) != 0.0 or not is_float(ctx, x) or \
            (hi is not None and float(hi) <= 0):
        return fallback(node, ctx)
    ref, cl = raw(ctx, x)
    cfg = {"max_value": None if hi is None else float(hi)}
    (out,) = ctx.add_node("ReLU", cfg, [ref], hint=node.name or "relu")
    return [keep_layout(out, cl)]


@import_handler("Resize", since=11)
def resize(node, ctx):
    """Integer nearest / half-pixel bilinear upsampling of the spatial axes -> UpSampling."""
    x = node.input[0]
    r = ctx.rank(x)
    consts = [ctx.const(i) if i else None for i in list(node.input[1:]) + ["", ""]][:3]
    dynamic = any(i and not ctx.is_const(i) for i in node.input[1:])
    if dynamic or r not in (3, 4) or not _spatial_known(ctx, x) or not is_float(ctx, x):
        return fallback(node, ctx)
    a = attrs(node, ctx)
    scales = consts[1] if consts[1] is not None and consts[1].size else None
    try:
        plan = resize_plan(ctx.shape(x), a, scales, consts[2])
    except UnsupportedError:
        return fallback(node, ctx)
    sizes, interpolation = [1] * (r - 2), None
    for axis, kind, data in plan:
        n = ctx.shape(x)[axis]
        factor = len(data) // n
        if axis < 2 or factor * n != len(data):
            return fallback(node, ctx)
        if kind == "take" and np.array_equal(data, np.repeat(np.arange(n), factor)):
            mode = "nearest"
        elif kind == "matmul" and np.allclose(data, bilinear_matrix(n, n * factor)):
            mode = "bilinear"
        else:
            return fallback(node, ctx)
        if interpolation not in (None, mode):
            return fallback(node, ctx)
        interpolation, sizes[axis - 2] = mode, factor
    if interpolation is None or (r == 3 and interpolation != "nearest"):
        return fallback(node, ctx)
    cfg = {"size": sizes[0]} if r == 3 else \
        {"size": sizes, "data_format": "channels_last", "interpolation": interpolation}
    (out,) = ctx.add_node(f"UpSampling{r - 2}D", cfg, [ctx.cl_ref(x)],
                          hint=node.name or "upsampling")
    return [ChannelsLast(out)]


def _scalar_const(ctx, name, value):
    c = ctx.const(name)
    return c is not None and c.size == 1 and np.isclose(float(c.reshape(-1)[0]), value,
                                                        rtol=1e-5)


def _other(node, name):
    ins = [i for i in node.input if i != name]
    return ins[0] if len(ins) == 1 else None


def gelu_chain(node, ctx):
    """x / sqrt(2) -> Erf -> + 1 -> * x -> * 0.5 (either multiplication first): the exact
    GELU older exporters write. -> (x, the nodes after `node`) or None."""
    x = node.input[0]
    if not _scalar_const(ctx, node.input[1], np.sqrt(2.0)):
        return None
    erf = ctx.only_consumer(node.output[0])
    add = erf and erf.op_type == "Erf" and ctx.only_consumer(erf.output[0])
    if not add or add.op_type != "Add" or not _scalar_const(ctx, _other(add, erf.output[0]), 1):
        return None
    m1 = ctx.only_consumer(add.output[0])
    if not m1 or m1.op_type != "Mul":
        return None
    other = _other(m1, add.output[0])
    m2 = ctx.only_consumer(m1.output[0])
    if other == x and m2 is not None and m2.op_type == "Mul" and \
            _scalar_const(ctx, _other(m2, m1.output[0]), 0.5):
        return x, [erf, add, m1, m2]
    half = ctx.producer(other) if other else None          # (x * 0.5) * (1 + erf)
    if half is not None and half.op_type == "Mul" and x in half.input and \
            _scalar_const(ctx, _other(half, x), 0.5) and ctx.only_consumer(half.output[0]):
        return x, [erf, add, m1]
    return None


@import_handler("Div", since=1)
def div(node, ctx):
    found = gelu_chain(node, ctx) if is_float(ctx, node.input[0]) and \
        not ctx.is_const(node.input[0]) else None
    if found is None:
        return fallback(node, ctx)
    x, chain = found
    ref, cl = raw(ctx, x)
    (out,) = ctx.add_node("Activation", {"activation": "gelu"}, [ref], hint=node.name or "gelu")
    for n in chain:
        ctx.done.add(id(n))
    ctx.set_value(chain[-1].output[0], out, channels_last=cl)
    return [None]


# -- merges -------------------------------------------------------------------------------------

MERGES = {"Add": "Add", "Sub": "Subtract", "Mul": "Multiply", "Max": "Maximum",
          "Min": "Minimum", "Sum": "Add", "Mean": "Average"}


def _batches_agree(shapes):
    """True when no input can broadcast along axis 0 (a Keras merge needs equal batches):
    the static batch sizes agree, and a 1 is not beside a dynamic batch."""
    static = {s[0] for s in shapes if s[0] is not None}
    return len(static) <= 1 and not (static == {1} and any(s[0] is None for s in shapes))


@import_handler("Add", "Sub", "Mul", "Max", "Min", "Sum", "Mean", since=1)
def merge(node, ctx):
    ins = list(node.input)
    shapes = [ctx.shape(i) for i in ins]
    ok = len(ins) >= 2 and (node.op_type not in ("Sub",) or len(ins) == 2) and \
        all(i and not ctx.is_const(i) and is_float(ctx, i) for i in ins) and \
        all(s is not None and len(s) >= 2 for s in shapes) and \
        all(s[1:] == shapes[0][1:] and None not in s[1:] for s in shapes) and \
        _batches_agree(shapes)
    if not ok:
        return fallback(node, ctx)
    r = len(shapes[0])
    any_cl = any(i in ctx.channels_last for i in ins) and r >= 3
    refs = [ctx.cl_ref(i) if any_cl else ctx.ref(i) for i in ins]
    (out,) = ctx.add_node(MERGES[node.op_type], {}, refs, hint=node.name or node.op_type)
    return [keep_layout(out, any_cl)]


@import_handler("Concat", since=1)
def concat(node, ctx):
    ins = [i for i in node.input if i]
    a = attrs(node, ctx)
    ranks = {ctx.rank(i) for i in ins}
    if len(ins) < 2 or len(ranks) != 1 or None in ranks or \
            any(ctx.is_const(i) or not is_float(ctx, i) for i in ins):
        return fallback(node, ctx)
    r = ranks.pop()
    axis = int(a["axis"]) % r
    if axis == 0:
        return fallback(node, ctx)
    any_cl = r >= 3 and any(i in ctx.channels_last for i in ins)
    if any_cl:
        axis = r - 1 if axis == 1 else axis - 1
    refs = [ctx.cl_ref(i) if any_cl else ctx.ref(i) for i in ins]
    (out,) = ctx.add_node("Concatenate", {"axis": axis}, refs, hint=node.name or "concat")
    return [keep_layout(out, any_cl)]


# -- dense ----------------------------------------------------------------------------------------

def dense_pattern(node, ctx):
    """(input name, kernel (in, units), bias or None, Add node fused or None) when `node`
    (Gemm, or MatMul optionally followed by an Add of a constant) is a Dense layer."""
    if node.op_type == "Gemm":
        a = attrs(node, ctx)
        A, B = node.input[0], ctx.const(node.input[1])
        C = ctx.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        has_c = len(node.input) > 2 and bool(node.input[2])
        if B is None or (has_c and C is None) or a.get("transA", 0) or ctx.is_const(A) or \
                ctx.rank(A) != 2 or not is_float(ctx, A):
            return None
        kernel = (B.T if a.get("transB", 0) else B) * np.asarray(a.get("alpha", 1.0), B.dtype)
        units = kernel.shape[1]
        bias = None
        if C is not None:
            if C.size not in (1, units) or (C.ndim == 2 and C.shape[0] != 1) or C.ndim > 2:
                return None
            bias = np.broadcast_to(C.reshape(-1) * np.asarray(a.get("beta", 1.0), C.dtype),
                                   (units,)).astype(kernel.dtype)
        return A, np.ascontiguousarray(kernel), bias, None
    if node.op_type == "MatMul":
        A, B = node.input[0], ctx.const(node.input[1])
        r = ctx.rank(A)
        if B is None or B.ndim != 2 or ctx.is_const(A) or r is None or r < 2 or \
                not is_float(ctx, A) or A in ctx.channels_last:
            return None
        bias, add = None, None
        follower = ctx.only_consumer(node.output[0])
        if follower is not None and follower.op_type == "Add":
            other = [i for i in follower.input if i != node.output[0]]
            c = ctx.const(other[0]) if len(other) == 1 else None
            if c is not None and c.size == B.shape[1] and c.shape[-1] == B.shape[1] and \
                    all(d == 1 for d in c.shape[:-1]) and c.ndim <= r:
                bias, add = c.reshape(-1).astype(B.dtype), follower
        return A, B, bias, add
    return None


@import_handler("Gemm", "MatMul", since=1)
def dense(node, ctx):
    found = dense_pattern(node, ctx)
    if found is None:
        return fallback(node, ctx)
    A, kernel, bias, add = found
    flat = ctx.flat_rows.get(A)
    if flat is not None:
        kernel = layout.channels_first_rows_to_channels_last(kernel, *flat)
    cfg = {"units": int(kernel.shape[1]), "use_bias": bias is not None,
           "activation": "linear"}
    weights = [("kernel", kernel)] + ([("bias", bias)] if bias is not None else [])
    (out,) = ctx.add_node("Dense", cfg, [ctx._raw_ref(A) if flat else ctx.ref(A)], weights,
                          hint=node.name or "dense")
    if add is not None:
        ctx.done.add(id(add))
        ctx.set_value(add.output[0], out)
        return [None]
    return [out]


# -- reshaping ------------------------------------------------------------------------------------

@import_handler("Flatten", since=1)
def flatten(node, ctx):
    x = node.input[0]
    a = attrs(node, ctx)
    s = ctx.shape(x)
    if int(a.get("axis", 1)) != 1 or s is None or len(s) < 2:
        return fallback(node, ctx)
    return _flatten(node, ctx)


def _flatten(node, ctx):
    """`node` (a Flatten, or a Reshape to (batch, -1)) as a Keras Flatten."""
    x = node.input[0]
    s = ctx.shape(x)
    hint = node.name or "flatten"
    cfg = {"data_format": "channels_last"}
    if x in ctx.channels_last and None not in s[1:]:
        spatial, channels = tuple(s[2:]), s[1]
        users = ctx.consumers.get(node.output[0], [])
        feeds_dense = users and node.output[0] not in ctx.graph_outputs and all(
            u.input[0] == node.output[0] and dense_pattern(u, ctx) is not None for u in users)
        if int(np.prod(spatial)) == 1 or feeds_dense:
            (out,) = ctx.add_node("Flatten", cfg, [ctx._raw_ref(x)], hint=hint)
            if int(np.prod(spatial)) != 1:
                ctx.flat_rows[node.output[0]] = (spatial, channels)
            return [out]
    (out,) = ctx.add_node("Flatten", cfg, [ctx.ref(x)], hint=hint)
    return [out]


@import_handler("Reshape", since=1)
def reshape(node, ctx):
    x, target = node.input[0], ctx.const(node.input[1])
    s_in, s_out = ctx.shape(x), ctx.shape(node.output[0])
    a = attrs(node, ctx)
    if s_in is None or s_out is None or None in s_out[1:] or len(s_out) < 2 or \
            not is_float(ctx, x):
        return fallback(node, ctx)
    if x in ctx.channels_last and len(s_out) == 2 and None not in s_in[1:] and \
            s_out[1] == int(np.prod(s_in[1:])) and _same_batch(ctx, x, node.output[0]):
        return _flatten(node, ctx)            # (N, C, H, W) -> (N, C*H*W) of a trunk
    if target is None or (a.get("allowzero", 0) and 0 in target):
        return fallback(node, ctx)
    t0 = int(target.reshape(-1)[0]) if target.size else None
    batch_kept = t0 == 0 or (s_in[0] is not None and t0 == s_in[0] == s_out[0]) or \
        (t0 == -1 and None not in s_in[1:] and
         int(np.prod(s_in[1:])) == int(np.prod(s_out[1:])))
    if not batch_kept:
        return fallback(node, ctx)
    (out,) = ctx.add_node("Reshape", {"target_shape": [int(d) for d in s_out[1:]]},
                          [ctx.ref(x)], hint=node.name or "reshape")
    return [out]


def _same_batch(ctx, a, b):
    da, db = ctx.dims.get(a), ctx.dims.get(b)
    return da is not None and db is not None and da[0] is not None and da[0] == db[0]


@import_handler("ReduceMean", "ReduceMax", since=1)
def reduce_spatial(node, ctx):
    """Mean/max over every spatial axis of an (N, C, *spatial) tensor: global pooling."""
    x = node.input[0]
    a = attrs(node, ctx)
    r = ctx.rank(x)
    axes = ctx.const(node.input[1]) if len(node.input) > 1 and node.input[1] else \
        a.get("axes")
    if axes is None or r not in (3, 4) or not is_float(ctx, x):
        return fallback(node, ctx)
    if sorted(int(i) % r for i in np.asarray(axes).reshape(-1)) != list(range(2, r)):
        return fallback(node, ctx)
    keep = bool(a.get("keepdims", 1))
    kind = "Average" if node.op_type == "ReduceMean" else "Max"
    op = f"Global{kind}Pooling{r - 2}D"
    (out,) = ctx.add_node(op, {"data_format": "channels_last", "keepdims": keep},
                          [ctx.cl_ref(x)], hint=node.name or op)
    return [ChannelsLast(out) if keep else out]


@import_handler("Transpose", since=1)
def transpose(node, ctx):
    x = node.input[0]
    r = ctx.rank(x)
    a = attrs(node, ctx)
    perm = [int(p) for p in a.get("perm", list(range(r or 0))[::-1])]
    if r is None or perm[0] != 0 or not is_float(ctx, x):
        return fallback(node, ctx)
    ref, cl = raw(ctx, x)
    to_cf = [0, r - 1] + list(range(1, r - 1))
    if not cl and perm == to_cf and r in (3, 4):
        return [ChannelsLast(ref)]          # NHWC -> NCHW (tf2onnx's input edge): no-op
    if cl:
        perm = [to_cf[p] for p in perm]
    if perm == list(range(r)):
        return [ref]
    (out,) = ctx.add_node("Permute", {"dims": perm[1:]}, [ref], hint=node.name or "permute")
    return [out]


# -- the rest -----------------------------------------------------------------------------------

@import_handler("Identity", since=1)
def identity(node, ctx):
    ref, cl = raw(ctx, node.input[0])
    return [keep_layout(ref, cl)]


@import_handler("Dropout", since=1)
def dropout(node, ctx):
    x = node.input[0]
    ratio = ctx.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    a = attrs(node, ctx)
    if (len(node.input) > 1 and node.input[1] and ratio is None) or \
            (len(node.input) > 2 and node.input[2]) or len(used_outputs(node, ctx)) != 1 or \
            node.output[0] not in used_outputs(node, ctx) or not is_float(ctx, x):
        return fallback(node, ctx)
    rate = float(ratio) if ratio is not None else float(a.get("ratio", 0.5))
    ref, cl = raw(ctx, x)
    (out,) = ctx.add_node("Dropout", {"rate": rate}, [ref], hint=node.name or "dropout")
    return [keep_layout(out, cl)]


@import_handler("Gather", since=1)
def gather(node, ctx):
    data, indices = ctx.const(node.input[0]), node.input[1]
    a = attrs(node, ctx)
    if data is None or data.ndim != 2 or int(a.get("axis", 0)) != 0 or \
            ctx.is_const(indices) or ctx.rank(indices) is None or ctx.rank(indices) < 1 or \
            not np.issubdtype(data.dtype, np.floating):
        return fallback(node, ctx)
    cfg = {"input_dim": int(data.shape[0]), "output_dim": int(data.shape[1])}
    (out,) = ctx.add_node("Embedding", cfg, [ctx.ref(indices)], [("embeddings", data)],
                          hint=node.name or "embedding")
    return [out]

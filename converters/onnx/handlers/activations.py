"""Activation functions and the advanced-activation layers.

Keras 2 semantics: `hard_sigmoid` is HardSigmoid(alpha=0.2, beta=0.5); modelkit's
`keras3_hard_sigmoid` is HardSigmoid(alpha=1/6, beta=0.5).
"""

from __future__ import annotations

import math

import numpy as np

from ..context import LayerUnsupported
from ..registry import export_handler

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def is_code(spec):
    """Whether an activation spec is a serialized Python function (Keras 2 bytecode list,
    Keras 3 `__lambda__`, a `function` dict holding code) rather than a name."""
    if isinstance(spec, (list, tuple)):
        return True
    if isinstance(spec, dict):
        return (spec.get("class_name") in ("__lambda__", "Lambda")
                or (spec.get("class_name") == "function" and not isinstance(spec.get("config"), str)))
    return False


def activation_name(spec):
    """Normalise an activation spec (str, None or a serialized dict) to (name, options);
    (None, {}) for anything else, which no table maps (never the identity)."""
    if spec is None:
        return "linear", {}
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict):
        name = spec.get("class_name") or spec.get("name")
        cfg = spec.get("config") if isinstance(spec.get("config"), dict) else {}
        if isinstance(name, str) and name not in ("function", "Lambda", "__lambda__"):
            return name, dict(cfg)
    return None, {}


# name -> emitter(ctx, x, opts, hint) for the elementwise activations
def _unary(op_type, **attrs):
    return lambda ctx, x, opts, hint: ctx.op(op_type, [x], x.shape, hint=hint, **attrs)


def _swish(ctx, x, opts, hint):
    s = ctx.op("Sigmoid", [x], x.shape, hint=hint)
    return ctx.op("Mul", [x, s], x.shape, hint=hint)


def _gelu(ctx, x, opts, hint, approximate=None):
    if approximate is None:
        approximate = bool(opts.get("approximate", False))
    if ctx.opset >= 20:
        return ctx.op("Gelu", [x], x.shape, hint=hint,
                      approximate="tanh" if approximate else "none")
    half = ctx.scalar(0.5)
    one = ctx.scalar(1.0)
    if approximate:   # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = ctx.op("Mul", [ctx.op("Mul", [x, x], x.shape), x], x.shape)
        inner = ctx.op("Add", [x, ctx.op("Mul", [x3, ctx.scalar(0.044715)], x.shape)], x.shape)
        inner = ctx.op("Mul", [inner, ctx.scalar(math.sqrt(2.0 / math.pi))], x.shape)
        t = ctx.op("Tanh", [inner], x.shape)
    else:             # 0.5 x (1 + erf(x / sqrt(2)))
        t = ctx.op("Erf", [ctx.op("Mul", [x, ctx.scalar(1.0 / math.sqrt(2.0))], x.shape)],
                   x.shape)
    y = ctx.op("Mul", [x, ctx.op("Add", [t, one], x.shape)], x.shape)
    return ctx.op("Mul", [y, half], x.shape, hint=hint)


def _relu6(ctx, x, opts, hint):
    return ctx.op("Clip", [x, ctx.scalar(0.0), ctx.scalar(6.0)], x.shape, hint=hint)


def _softmax(ctx, x, opts, hint):
    return ctx.op("Softmax", [x], x.shape, hint=hint, axis=int(opts.get("axis", -1)))


def _log_softmax(ctx, x, opts, hint):
    return ctx.op("LogSoftmax", [x], x.shape, hint=hint, axis=int(opts.get("axis", -1)))


def _mish(ctx, x, opts, hint):
    sp = ctx.op("Softplus", [x], x.shape)
    return ctx.op("Mul", [x, ctx.op("Tanh", [sp], x.shape)], x.shape, hint=hint)


ACTIVATIONS = {
    "relu": _unary("Relu"),
    "sigmoid": _unary("Sigmoid"),
    "hard_sigmoid": _unary("HardSigmoid", alpha=0.2, beta=0.5),
    "keras3_hard_sigmoid": _unary("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
    "tanh": _unary("Tanh"),
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "softplus": _unary("Softplus"),
    "softsign": _unary("Softsign"),
    "elu": _unary("Elu", alpha=1.0),
    "selu": _unary("Selu", alpha=SELU_ALPHA, gamma=SELU_SCALE),
    "exponential": _unary("Exp"),
    "swish": _swish,
    "silu": _swish,
    "gelu": _gelu,
    "approximate_gelu": lambda ctx, x, o, h: _gelu(ctx, x, o, h, approximate=True),
    "relu6": _relu6,
    "mish": _mish,
}
LINEAR = ("linear",)
# Activations that mix values along an axis: a conv handler applies them after returning
# to the layer's own data format instead of inside the channels-first section.
AXIS_ACTIVATIONS = ("softmax", "log_softmax")


def activation_supported(spec):
    name, _ = activation_name(spec)
    return name in LINEAR or name in ACTIVATIONS


def activation_problem(spec):
    """A reason string if `spec` is not exportable, else None."""
    if activation_supported(spec):
        return None
    if is_code(spec):
        return ("activation is a serialized Python function, which has no ONNX mapping "
                "(refused rather than exported as the identity)")
    return f"activation {spec!r} has no ONNX mapping (known: {', '.join(sorted(ACTIVATIONS))})"


def apply_activation(ctx, x, spec, hint="activation", **opts):
    """Emit activation `spec` on tensor x; `linear`/None return x unchanged."""
    name, cfg = activation_name(spec)
    if name in LINEAR:
        return x
    if name not in ACTIVATIONS:
        raise LayerUnsupported(activation_problem(spec))
    cfg.update(opts)
    return ACTIVATIONS[name](ctx, x, cfg, hint)


# -- recurrent activations (ONNX RNN/GRU/LSTM `activations` attribute) -------------------------
RNN_ACTIVATIONS = {   # name -> (ONNX name, alpha or None, beta or None)
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "relu": ("Relu", None, None),
    "hard_sigmoid": ("HardSigmoid", 0.2, 0.5),
    "keras3_hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "linear": ("Affine", 1.0, 0.0),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
    "elu": ("Elu", 1.0, None),
}


def rnn_activation_problem(spec):
    name, _ = activation_name(spec)
    if name in RNN_ACTIVATIONS:
        return None
    if is_code(spec):
        return activation_problem(spec)
    return (f"recurrent layer activation {spec!r} has no ONNX RNN equivalent "
            f"(supported: {', '.join(sorted(RNN_ACTIVATIONS))})")


def rnn_activation_attrs(specs):
    """-> dict(activations=[...], activation_alpha=[...], activation_beta=[...]).

    alpha/beta are listed only for the activations that take them, in order (the ONNX and
    onnxruntime convention); absent lists are left out.
    """
    names, alphas, betas = [], [], []
    for spec in specs:
        name, _ = activation_name(spec if spec is not None else "linear")
        onnx_name, a, b = RNN_ACTIVATIONS[name]
        names.append(onnx_name)
        if a is not None:
            alphas.append(float(a))
        if b is not None:
            betas.append(float(b))
    attrs = {"activations": names}
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    return attrs


# -- layers ------------------------------------------------------------------------------------

def _check_activation(node, opset):
    return activation_problem(node.config.get("activation"))


@export_handler("Activation", check=_check_activation, keeps_mask=True)
def activation_layer(node, ctx, inputs):
    cfg = node.config
    opts = {k: cfg[k] for k in ("approximate", "axis") if k in cfg}
    return [apply_activation(ctx, inputs[0], cfg.get("activation"), hint=node.name, **opts)]


@export_handler("Softmax", keeps_mask=True)
def softmax_layer(node, ctx, inputs):
    # A Keras mask on the Softmax layer's input is not applied (Keras 2 only uses it when
    # the mask broadcasts against the logits, which masks of sequence layers do not).
    axis = node.config.get("axis", -1)
    x = inputs[0]
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return [_softmax_over_axes(ctx, x, [int(a) for a in axis], node.name)]
        axis = axis[0]
    return [ctx.op("Softmax", [x], x.shape, hint=node.name, axis=int(axis))]


def _softmax_over_axes(ctx, x, axes, hint):
    """exp(x - max) / sum(exp(x - max)) with the reductions over all `axes` at once (ONNX
    Softmax normalises over one axis only)."""
    m = ctx.reduce("ReduceMax", x, axes, keepdims=True)
    e = ctx.op("Exp", [ctx.op("Sub", [x, m], x.shape)], x.shape)
    total = ctx.reduce("ReduceSum", e, axes, keepdims=True)
    return ctx.op("Div", [e, total], x.shape, hint=hint)


@export_handler("LeakyReLU", keeps_mask=True)
def leaky_relu(node, ctx, inputs):
    cfg = node.config
    alpha = cfg.get("alpha", cfg.get("negative_slope", 0.3))
    return [ctx.op("LeakyRelu", [inputs[0]], inputs[0].shape, hint=node.name, alpha=float(alpha))]


@export_handler("ELU", keeps_mask=True)
def elu_layer(node, ctx, inputs):
    alpha = float(node.config.get("alpha", 1.0))
    return [ctx.op("Elu", [inputs[0]], inputs[0].shape, hint=node.name, alpha=alpha)]


@export_handler("ThresholdedReLU", keeps_mask=True)
def thresholded_relu(node, ctx, inputs):
    theta = float(node.config.get("theta", 1.0))
    return [ctx.op("ThresholdedRelu", [inputs[0]], inputs[0].shape, hint=node.name, alpha=theta)]


@export_handler("PReLU", keeps_mask=True)
def prelu(node, ctx, inputs):
    x = inputs[0]
    (alpha,) = ctx.weights(node)[:1]
    slope = ctx.param(node, "alpha", lambda: np.asarray(alpha, np.float32))
    return [ctx.op("PRelu", [x, slope], x.shape, hint=node.name)]


@export_handler("ReLU", keeps_mask=True)
def relu_layer(node, ctx, inputs):
    """Keras 2 `relu(x, alpha=negative_slope, max_value, threshold)`:

    y = clip(x * (x > threshold) [or relu(x) when threshold == 0], 0, max_value)
        - negative_slope * relu(threshold - x)
    """
    x = inputs[0]
    cfg = node.config
    max_value = cfg.get("max_value")
    slope = float(cfg.get("negative_slope", 0.0) or 0.0)
    thr = float(cfg.get("threshold", 0.0) or 0.0)
    s = x.shape
    if max_value is None and thr == 0.0:
        if slope == 0.0:
            return [ctx.op("Relu", [x], s, hint=node.name)]
        return [ctx.op("LeakyRelu", [x], s, hint=node.name, alpha=slope)]
    if thr != 0.0:
        gate = ctx.cast(ctx.op("Greater", [x, ctx.scalar(thr)], s, dtype="bool"), x.dtype)
        y = ctx.op("Mul", [x, gate], s)
    else:
        y = ctx.op("Relu", [x], s)
    if max_value is not None:
        y = ctx.op("Clip", [y, ctx.scalar(0.0), ctx.scalar(float(max_value))], s)
    if slope != 0.0:
        neg = ctx.op("Relu", [ctx.op("Sub", [ctx.scalar(thr), x], s)], s)
        y = ctx.op("Sub", [y, ctx.op("Mul", [neg, ctx.scalar(slope)], s)], s)
    return [ctx.op("Identity", [y], s, hint=node.name)]

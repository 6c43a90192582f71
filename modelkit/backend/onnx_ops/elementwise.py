"""Elementwise ONNX ops (multidirectional broadcasting), activations, Clip, Cast, compares."""

from __future__ import annotations

import numpy as np

from . import extra_ops  # noqa: F401  (erf, take)
from . import onnx_op
from ._util import ONNX_DTYPES, const, is_float, like, np_dtype, op, values
from .low_precision import cast_into, is_low, wide_dtype

# -- binary arithmetic -------------------------------------------------------------------


def _int_div(a, b):
    """C-style integer division (truncates toward zero), as onnxruntime computes it."""
    q = np.abs(a) // np.where(b == 0, 1, np.abs(b))
    return (np.sign(a) * np.sign(b) * q).astype(np.result_type(a, b))


def _binary(name):
    def fn(inputs, attrs, ctx):
        a, b = inputs
        if name == "divide" and not is_float(a):
            return const(_int_div(values(a), values(b)))
        return op(name, a, b)
    return fn


for _onnx, _name in {"Add": "add", "Sub": "subtract", "Mul": "multiply",
                     "Div": "divide"}.items():
    onnx_op(_onnx)(_binary(_name))


@onnx_op("Pow")
def pow_(inputs, attrs, ctx):
    x, y = inputs
    if not is_float(x):
        return const(np.power(values(x), values(y).astype(np.int64)).astype(x.dtype))
    if y.dtype != x.dtype:
        y = op("cast", y, dtype=x.dtype)
    return op("power", x, y)


@onnx_op("Mod")
def mod(inputs, attrs, ctx):
    a, b = (values(t) for t in inputs)
    if attrs.get("fmod", 0):
        return const(np.fmod(a, b))
    return const(np.mod(a, b))


@onnx_op("Max")
def max_(inputs, attrs, ctx):
    return _fold("maximum", inputs)


@onnx_op("Min")
def min_(inputs, attrs, ctx):
    return _fold("minimum", inputs)


@onnx_op("Sum")
def sum_(inputs, attrs, ctx):
    return _fold("add", inputs)


@onnx_op("Mean")
def mean_(inputs, attrs, ctx):
    total = _fold("add", inputs)
    return op("divide", total, like(total, len(inputs)))


def _fold(name, inputs):
    out = inputs[0]
    for x in inputs[1:]:
        out = op(name, out, x)
    if len(inputs) == 1:
        out = op("add", out, like(out, 0)) if is_float(out) else out
    return out


# -- comparisons and logic (no gradient) ----------------------------------------------------

_COMPARE = {"Equal": np.equal, "Greater": np.greater, "Less": np.less,
            "GreaterOrEqual": np.greater_equal, "LessOrEqual": np.less_equal,
            "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}


def _compare(fn):
    return lambda inputs, attrs, ctx: const(np.asarray(fn(values(inputs[0]),
                                                          values(inputs[1])), bool))


for _onnx, _fn in _COMPARE.items():
    onnx_op(_onnx)(_compare(_fn))


@onnx_op("Not")
def not_(inputs, attrs, ctx):
    return const(np.logical_not(values(inputs[0])))


@onnx_op("IsNaN")
def isnan(inputs, attrs, ctx):
    return const(np.isnan(values(inputs[0])))


@onnx_op("IsInf")
def isinf(inputs, attrs, ctx):
    x = values(inputs[0])
    pos, neg = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    return const((np.isposinf(x) & bool(pos)) | (np.isneginf(x) & bool(neg)))


@onnx_op("Where")
def where(inputs, attrs, ctx):
    cond, a, b = inputs
    if not is_float(a):
        return const(np.where(values(cond), values(a), values(b)))
    shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    a = op("broadcast_to", a, shape=shape) if a.shape != shape else a
    b = op("broadcast_to", b, shape=shape) if b.shape != shape else b
    return op("where", np.broadcast_to(values(cond), shape), a, b)


# -- unary math -----------------------------------------------------------------------------

_UNARY = {"Abs": "abs", "Neg": "negative", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
          "Reciprocal": "reciprocal", "Sin": "sin", "Cos": "cos", "Tanh": "tanh",
          "Sigmoid": "sigmoid", "Erf": "erf", "Softplus": "softplus", "Softsign": "softsign",
          "Floor": "floor", "Ceil": "ceil", "Round": "round", "Sign": "sign", "Tan": "tan",
          "Asin": "arcsin", "Acos": "arccos", "Atan": "arctan", "Sinh": "sinh", "Cosh": "cosh",
          "Asinh": "arcsinh", "Acosh": "arccosh", "Atanh": "arctanh"}
_INT_OK = {"Abs": np.abs, "Neg": np.negative, "Sign": np.sign}


def _unary(onnx_type, name):
    def fn(inputs, attrs, ctx):
        (x,) = inputs
        if not is_float(x) and onnx_type in _INT_OK:
            return const(_INT_OK[onnx_type](values(x)).astype(x.dtype))
        if onnx_type == "Round":      # round half to even, as numpy
            return const(np.round(values(x)))
        return op(name, x)
    return fn


for _onnx, _name in _UNARY.items():
    onnx_op(_onnx)(_unary(_onnx, _name))


@onnx_op("Identity")
def identity(inputs, attrs, ctx):
    return inputs[0]


# -- activations with attributes --------------------------------------------------------------

@onnx_op("Relu")
def relu(inputs, attrs, ctx):
    (x,) = inputs
    if not is_float(x):
        return const(np.maximum(values(x), 0).astype(x.dtype))
    return op("relu", x)


@onnx_op("LeakyRelu")
def leaky_relu(inputs, attrs, ctx):
    return op("relu", inputs[0], negative_slope=float(attrs.get("alpha", 0.01)))


@onnx_op("PRelu")
def prelu(inputs, attrs, ctx):
    x, slope = inputs
    neg = op("multiply", op("minimum", x, like(x, 0)), slope)
    return op("add", op("relu", x), neg)


@onnx_op("Elu")
def elu(inputs, attrs, ctx):
    return op("elu", inputs[0], alpha=float(attrs.get("alpha", 1.0)))


@onnx_op("Celu")
def celu(inputs, attrs, ctx):
    (x,) = inputs
    alpha = float(attrs.get("alpha", 1.0))
    scaled = op("divide", x, like(x, alpha))
    return op("multiply", op("elu", scaled, alpha=1.0), like(x, alpha)) if alpha != 1.0 \
        else op("elu", x, alpha=1.0)


@onnx_op("Selu")
def selu(inputs, attrs, ctx):
    (x,) = inputs
    alpha = float(attrs.get("alpha", 1.67326319217681884765625))
    gamma = float(attrs.get("gamma", 1.05070102214813232421875))
    return op("multiply", op("elu", x, alpha=alpha), like(x, gamma))


@onnx_op("ThresholdedRelu")
def thresholded_relu(inputs, attrs, ctx):
    (x,) = inputs
    alpha = float(attrs.get("alpha", 1.0))
    keep = values(x) > alpha
    return op("where", keep, x, like(x, np.zeros(x.shape)))


@onnx_op("HardSigmoid")
def hard_sigmoid(inputs, attrs, ctx):
    (x,) = inputs
    return _hard_sigmoid(x, float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5)))


def _hard_sigmoid(x, alpha, beta):
    return op("clip", op("add", op("multiply", x, like(x, alpha)), like(x, beta)), lo=0.0, hi=1.0)


@onnx_op("HardSwish")
def hard_swish(inputs, attrs, ctx):
    (x,) = inputs
    return op("multiply", x, _hard_sigmoid(x, 1.0 / 6.0, 0.5))


@onnx_op("Gelu")
def gelu(inputs, attrs, ctx):
    approximate = attrs.get("approximate", "none")
    if isinstance(approximate, bytes):
        approximate = approximate.decode()
    return op("gelu", inputs[0], approximate=approximate == "tanh")


@onnx_op("Mish")
def mish(inputs, attrs, ctx):
    (x,) = inputs
    return op("multiply", x, op("tanh", op("softplus", x)))


@onnx_op("Swish")
def swish(inputs, attrs, ctx):
    """x * sigmoid(alpha * x)."""
    (x,) = inputs
    return _swish(x, float(attrs.get("alpha", 1.0)))


@onnx_op("SwiGLU")
def swiglu(inputs, attrs, ctx):
    """Swish(a) * b, a and b of one shape."""
    a, b = inputs
    if a.shape != b.shape:
        from ...errors import ShapeError
        raise ShapeError(f"SwiGLU inputs must have one shape, not {a.shape} and {b.shape}")
    return op("multiply", _swish(a, float(attrs.get("alpha", 1.0))), b)


def _swish(x, alpha):
    scaled = x if alpha == 1.0 else op("multiply", x, like(x, alpha))
    return op("multiply", x, op("sigmoid", scaled))


def _softmax_fn(kind):
    def fn(inputs, attrs, ctx):
        (x,) = inputs
        if ctx.opset >= 13:
            return op(kind, x, axis=int(attrs.get("axis", -1)))
        # opset < 13: coerce to 2D at `axis` (default 1), normalise the flattened rows
        axis = int(attrs.get("axis", 1)) % max(x.ndim, 1)
        rows = int(np.prod(x.shape[:axis]))
        y = op(kind, op("reshape", x, shape=(rows, -1)), axis=-1)
        return op("reshape", y, shape=x.shape)
    return fn


onnx_op("Softmax")(_softmax_fn("softmax"))
onnx_op("LogSoftmax")(_softmax_fn("log_softmax"))


@onnx_op("Clip")
def clip(inputs, attrs, ctx):
    x = inputs[0]
    lo = inputs[1] if len(inputs) > 1 else None
    hi = inputs[2] if len(inputs) > 2 else None
    lo = float(values(lo)) if lo is not None else attrs.get("min")
    hi = float(values(hi)) if hi is not None else attrs.get("max")
    if not is_float(x):
        return const(np.clip(values(x), lo, hi).astype(x.dtype))
    return op("clip", x, lo=lo, hi=hi)


@onnx_op("Cast")
def cast(inputs, attrs, ctx):
    (x,) = inputs
    return _cast_to(x, np_dtype(attrs["to"]), attrs)


@onnx_op("CastLike")
def cast_like(inputs, attrs, ctx):
    return _cast_to(inputs[0], inputs[1].dtype, attrs)


def _cast_to(x, dtype, attrs):
    """Float to float stays differentiable; anything else (integers, bool, the
    low-precision types with their saturation and rounding rules) is `cast_into`."""
    if x.dtype == dtype:
        return x
    if is_float(x) and np.issubdtype(dtype, np.floating):
        return op("cast", x, dtype=dtype)
    return const(cast_into(values(x), dtype, saturate=int(attrs.get("saturate", 1)),
                           round_mode=attrs.get("round_mode", "up")))



@onnx_op("Shrink")
def shrink(inputs, attrs, ctx):
    (x,) = inputs
    lambd, bias = float(attrs.get("lambd", 0.5)), float(attrs.get("bias", 0.0))
    v = values(x)
    if not is_float(x):
        return const(np.where(v < -lambd, v + bias, np.where(v > lambd, v - bias, 0))
                     .astype(x.dtype))
    shifted = op("add", x, like(x, np.where(v < -lambd, bias, -bias)))
    return op("where", (v < -lambd) | (v > lambd), shifted, like(x, np.zeros(x.shape)))


@onnx_op("Hardmax")
def hardmax(inputs, attrs, ctx):
    v = values(inputs[0])
    axis = int(attrs.get("axis", -1)) % v.ndim
    out = np.zeros_like(v)
    np.put_along_axis(out, np.expand_dims(np.argmax(v, axis=axis), axis), 1, axis=axis)
    return const(out)


# -- quantization (QDQ models: constant weights fold to floats at import) -----------------------

def _per_axis(param, x, axis, block=0):
    """A scale / zero point lined up with x: per tensor, per axis, or (block > 0) one per
    block of `block` consecutive elements along the axis (the parameter has x's rank)."""
    p = values(param)
    if block:
        a = axis % x.ndim
        if p.ndim != x.ndim or p.shape[a] != -(-x.shape[a] // block):
            from ...errors import ShapeError
            raise ShapeError(f"blocked quantization: parameter shape {p.shape} does not "
                             f"give one value per {block} elements of {x.shape} on axis {a}")
        return np.take(np.repeat(p, block, axis=a), np.arange(x.shape[a]), axis=a)
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    shape = [1] * x.ndim
    shape[axis % x.ndim] = p.size
    return p.reshape(shape)


@onnx_op("DequantizeLinear")
def dequantize_linear(inputs, attrs, ctx):
    x = inputs[0]
    axis = int(attrs.get("axis", 1))
    block = int(attrs.get("block_size", 0))
    scale = _per_axis(inputs[1], x, axis, block)
    zero = _per_axis(inputs[2], x, axis, block) if len(inputs) > 2 and inputs[2] is not None \
        else 0
    xv = values(x)
    xv = xv.astype(wide_dtype(xv.dtype)) if is_low(xv.dtype) else xv
    zero = np.asarray(zero)
    zero = zero.astype(wide_dtype(zero.dtype)) if is_low(zero.dtype) else zero
    v = (xv.astype(np.float64) - zero.astype(np.float64)) * scale.astype(np.float64)
    return const(cast_into(v, scale.dtype))


@onnx_op("QuantizeLinear")
def quantize_linear(inputs, attrs, ctx):
    x = inputs[0]
    axis = int(attrs.get("axis", 1))
    block = int(attrs.get("block_size", 0))
    scale = _per_axis(inputs[1], x, axis, block)
    zp = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    if zp is not None:
        dtype = np.dtype(values(zp).dtype)
    else:
        dtype = np_dtype(attrs["output_dtype"]) if int(attrs.get("output_dtype", 0)) else \
            np.dtype(np.uint8)
    zero = _per_axis(zp, x, axis, block) if zp is not None else np.zeros((), dtype)
    zero = zero.astype(wide_dtype(zero.dtype)) if is_low(zero.dtype) else zero
    xv = values(x)
    xv = xv.astype(wide_dtype(xv.dtype)) if is_low(xv.dtype) else xv
    # x / scale in x's float type (or `precision`'s), as ONNX and onnxruntime compute it
    calc = np_dtype(attrs["precision"]) if int(attrs.get("precision", 0)) else xv.dtype
    if is_low(calc):
        calc = wide_dtype(calc)
    xs = xv.astype(calc) / np.asarray(scale).astype(calc)
    if dtype.kind in "iub" or dtype.name in ("int4", "uint4", "int2", "uint2"):
        # integers: round half to even, add the zero point, saturate
        q = np.round(xs).astype(np.float64) + zero.astype(np.float64)
        lo, hi = _int_range(dtype)
        return const(np.clip(q, lo, hi).astype(dtype))
    if dtype.name == "float4_e2m1fn":          # no inf/NaN: the cast saturates by itself
        xs = xs + zero.astype(xs.dtype)
    # float8: x / scale cast (the zero point is 0), saturating unless saturate=0
    return const(cast_into(xs, dtype, saturate=int(attrs.get("saturate", 1))))


def _int_range(dtype):
    """(min, max) of an integer type, ml_dtypes' int4/int2 included."""
    if is_low(dtype):
        import ml_dtypes
        info = ml_dtypes.iinfo(dtype)
    else:
        info = np.iinfo(dtype)
    return int(info.min), int(info.max)



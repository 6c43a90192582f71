"""ONNX operator facts shared by the backend's ONNX ops and the ONNX importer (pure numpy).

* `OP_TYPES`: the ONNX op types `modelkit.backend.onnx_ops` runs (what an imported `OnnxOp`
  node may hold); the backend registers exactly these (checked when it registers).
* `config_problem(op_type, attrs, outputs_used)`: why a configuration cannot run (None when
  it can); the importer asks before emitting anything, so one error lists every problem.
* The attribute geometry both sides compute from: `conv_geometry`, `pool_geometry`,
  `resize_plan`, `einsum_parts`, `bilinear_matrix`; `ONNX_DTYPES` (`dtype_named`), `text`.

A leaf module (numpy and modelkit.errors only; ml_dtypes once a low-precision type is met):
the backend imports nothing above it and the converters never import the backend, so what
both need lives here.
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedError

# TensorProto.DataType -> numpy dtype name (the types modelkit computes with)
ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
               7: "int64", 9: "bool", 10: "float16", 11: "float64", 12: "uint32",
               13: "uint64", 8: "object",      # STRING: object arrays of Python str
               # the low-precision types: numpy dtypes of `ml_dtypes` (one byte or two per
               # element in memory; ONNX packs 4- and 2-bit ones, onnx.numpy_helper unpacks)
               16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2",
               20: "float8_e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4_e2m1fn",
               24: "float8_e8m0fnu", 25: "uint2", 26: "int2"}
LOW_PRECISION = frozenset(ONNX_DTYPES[t] for t in range(16, 27))


def dtype_named(name):
    """numpy dtype of an ONNX_DTYPES name; the low-precision ones come from ml_dtypes
    (imported only when such a type is met)."""
    name = str(name)
    if name in LOW_PRECISION:
        import ml_dtypes
        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)

class OnnxValue:
    """An ONNX sequence (a list of tensors) or optional (None, or its value) boxed, as it
    crosses layers and enters or leaves a model: `model(OnnxValue([a, b]))`."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        v = self.value
        kind = f"sequence of {len(v)}" if isinstance(v, list) else \
            "empty optional" if v is None else "optional"
        return f"<OnnxValue {kind}>"


def to_numpy(x):
    """A model output for the caller: an array; a sequence as a list of arrays, an empty
    optional as None (boxed values and tensors wrapping them unpacked)."""
    v = x.value if isinstance(x, OnnxValue) else getattr(x, "value", x)
    if isinstance(v, np.ndarray) and v.dtype == object and v.ndim == 0 and \
            not isinstance(v.item(), (str, bytes)):         # (a 0-d string tensor stays)
        v = v.item()
        v = v.value if isinstance(v, OnnxValue) else v
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return [to_numpy(e) for e in v]
    return np.asarray(getattr(v, "value", v))


OP_TYPES = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand Flatten
Floor GRU Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalMaxPool Greater
GreaterOrEqual HardSigmoid HardSwish Hardmax Identity InstanceNormalization IsInf IsNaN LRN
LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax MatMul Max MaxPool Mean
Min Mish Mod Mul Neg NonZero Not OneHot Or PRelu Pad Pow QuantizeLinear RNN Range Reciprocal
ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
ReduceSum ReduceSumSquare Relu Reshape Resize Round ScatterElements ScatterND Selu Shape
Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Where Xor
RMSNormalization GroupNormalization MeanVarianceNormalization LpNormalization LpPool
BitShift BitwiseAnd BitwiseOr BitwiseXor BitwiseNot EyeLike HannWindow HammingWindow
BlackmanWindow CumProd Det Compress ReverseSequence CenterCropPad Swish SwiGLU
NegativeLogLikelihoodLoss SoftmaxCrossEntropyLoss Attention GridSample If Loop Scan
AffineGrid BitCast DynamicQuantizeLinear MatMulInteger ConvInteger QLinearMatMul QLinearConv
NonMaxSuppression Unique RotaryEmbedding DFT STFT CausalConvWithState LinearAttention
TensorScatter MaxUnpool Col2Im RoiAlign DeformConv MelWeightMatrix TfIdfVectorizer
ImageDecoder Bernoulli RandomNormalLike RandomUniformLike Multinomial
SequenceConstruct SequenceEmpty SequenceInsert SequenceAt SequenceErase SequenceLength
SplitToSequence ConcatFromSequence SequenceMap Optional OptionalHasElement OptionalGetElement
StringNormalizer StringConcat StringSplit RegexFullMatch
""".split())

# ops whose outputs are draws: never folded into constants at import
RANDOM_OPS = frozenset({"Bernoulli", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                        "RandomNormal", "RandomUniform"})

# op_type -> check(attrs, outputs_used) -> reason it cannot run, or None
CHECKS = {}


def _check(*op_types):
    def decorator(fn):
        for op_type in op_types:
            CHECKS[op_type] = fn
        return fn
    return decorator


def config_problem(op_type, attrs, outputs_used):
    """Why this configuration of `op_type` cannot run (None when it can)."""
    check = CHECKS.get(op_type)
    return check(attrs, outputs_used) if check is not None else None


def text(value, default):
    """A string attribute (ONNX stores bytes) or its default."""
    value = default if value is None else value
    return value.decode() if isinstance(value, bytes) else str(value)


def conv_geometry(spatial, attrs, kernel):
    """-> (strides, dilations, [(pad_begin, pad_end)] per spatial dim) for Conv/pools.
    `spatial` (the input's spatial dims) is only read for auto_pad SAME_*."""
    n = len(kernel)
    strides = [int(s) for s in attrs.get("strides", [1] * n)]
    dilations = [int(d) for d in attrs.get("dilations", [1] * n)]
    auto_pad = text(attrs.get("auto_pad"), "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for L, k, s, d in zip(spatial, kernel, strides, dilations):
            out = -(-L // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - L, 0)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
    elif auto_pad == "VALID":
        pads = [(0, 0)] * n
    else:
        p = [int(v) for v in attrs.get("pads", [0] * (2 * n))]
        pads = list(zip(p[:n], p[n:]))
    return strides, dilations, pads


def pool_geometry(spatial, attrs, kernel):
    """-> (strides, pads, ceil_extra): explicit pads and the end cells ceil_mode adds
    (a dilated window spans (k - 1) * d + 1 cells)."""
    strides, dilations, pads = conv_geometry(spatial, attrs, kernel)
    ceil_extra = []
    for L, k, s, (b, e), d in zip(spatial, kernel, strides, pads, dilations):
        k = (k - 1) * d + 1
        span = L + b + e - k
        if int(attrs.get("ceil_mode", 0)):
            out = -(-span // s) + 1
            if (out - 1) * s >= L + b:          # the last window must start inside
                out -= 1
        else:
            out = span // s + 1
        ceil_extra.append(max((out - 1) * s + k - (L + b + e), 0))
    return strides, pads, ceil_extra


def _source_coords(out_len, in_len, scale, mode, roi=None):
    """ONNX Resize coordinate_transformation_mode: output index -> input coordinate."""
    x = np.arange(out_len, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_len > 1 else np.zeros(out_len)
    if mode == "align_corners":
        length = in_len * scale
        return x * (in_len - 1) / (length - 1) if length > 1 else np.zeros(out_len)
    if mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / (in_len * scale))
        return offset + (x + 0.5) / scale - 0.5
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    if mode == "tf_crop_and_resize":
        lo, hi = roi
        length = in_len * scale
        src = x * (hi - lo) * (in_len - 1) / (length - 1) if length > 1 else \
            np.full(out_len, (hi - lo) * (in_len - 1) / 2)
        return src + lo * (in_len - 1)
    raise UnsupportedError(f"Resize coordinate_transformation_mode {mode!r} is not supported")


def _cubic_kernel(d, a):
    """Keys' cubic convolution kernel with coefficient a, at distances d."""
    d = np.abs(d)
    return np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                    np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))


def _interpolation_matrix(src, n, scale, mode, attrs):
    """(out, n) weights of linear or cubic interpolation at source coordinates `src`.

    Each output mixes the taps around its coordinate (2 for linear, 4 for cubic; with
    antialias when downsampling, the kernel is stretched by 1/scale and normalised); taps
    outside the input read the edge value, or are dropped (and the rest renormalised) with
    exclude_outside."""
    antialias = bool(int(attrs.get("antialias", 0))) and scale < 1
    s = scale if antialias else 1.0
    a = float(attrs.get("cubic_coeff_a", -0.75))
    if mode == "linear":
        first = int(np.floor(-1 / s) + 1)
        kernel = lambda d: np.clip(1 - np.abs(d), 0, 1)      # noqa: E731
    else:
        first = int(np.floor(-2 / s) + 1)
        kernel = lambda d: _cubic_kernel(d, a)               # noqa: E731
    taps = np.arange(first, 2 - first)
    floor = np.floor(src)
    whole = floor == src
    base = np.where(whole, src - 1, floor).astype(np.int64)  # taps start below the point
    ratio = np.where(whole, 1.0, src - floor)
    idx = base[:, None] + taps[None, :]
    w = kernel((taps[None, :] - ratio[:, None]) * s)
    if antialias or mode == "linear":
        w = w / w.sum(axis=1, keepdims=True)
    if int(attrs.get("exclude_outside", 0)):
        w = np.where((idx < 0) | (idx >= n), 0.0, w)
        w = w / w.sum(axis=1, keepdims=True)
    out = np.zeros((len(src), n))
    np.add.at(out, (np.repeat(np.arange(len(src)), len(taps)), np.clip(idx, 0, n - 1).ravel()),
              w.ravel())
    return out


_ROUNDERS = {"round_prefer_floor": lambda v: np.ceil(v - 0.5),
             "round_prefer_ceil": lambda v: np.floor(v + 0.5),
             "floor": np.floor, "ceil": np.ceil}


def resize_plan(in_shape, attrs, scales=None, sizes=None, roi=None):
    """Per resized axis: (axis, "take", indices) for nearest, (axis, "matmul", (out, in)
    weights) for linear/cubic, or (axis, "affine", (weights, added)) for tf_crop_and_resize
    (outputs outside the input get extrapolation_value), from the static input shape (ONNX
    Resize, opset 11+)."""
    mode = text(attrs.get("mode"), "nearest")
    coord = text(attrs.get("coordinate_transformation_mode"), "half_pixel")
    nearest = text(attrs.get("nearest_mode"), "round_prefer_floor")
    policy = text(attrs.get("keep_aspect_ratio_policy"), "stretch")
    if mode not in ("nearest", "linear", "cubic"):
        raise UnsupportedError(f"Resize mode {mode!r} is not supported")
    rank = len(in_shape)
    axes = [int(a) % rank for a in attrs.get("axes", range(rank))]
    if sizes is not None and policy != "stretch":
        ratios = [int(sizes[k]) / int(in_shape[a]) for k, a in enumerate(axes)]
        common = min(ratios) if policy == "not_larger" else max(ratios)
        scales, sizes = [common] * len(axes), None
    crop = coord == "tf_crop_and_resize"
    if crop and (roi is None or len(roi) != 2 * len(axes)):
        raise UnsupportedError("Resize tf_crop_and_resize needs a constant roi of "
                               f"{2 * len(axes)} values")
    plan = []
    for k, a in enumerate(axes):
        if in_shape[a] is None:             # an unknown dim (import time) must stay as it is
            if sizes is not None or float(scales[k]) != 1.0:
                raise UnsupportedError(f"Resize of axis {a}, whose length is unknown")
            continue
        n = int(in_shape[a])
        if sizes is not None:
            out = int(sizes[k])
            scale = out / n
        elif policy != "stretch":
            scale = float(scales[k])
            out = int(np.round(n * scale))
        else:
            scale = float(scales[k])
            out = int(np.floor(n * scale))
        span = (float(roi[k]), float(roi[k + len(axes)])) if crop else None
        if out == n and scale == 1.0 and not crop:
            continue
        src = _source_coords(out, n, scale, coord, span)
        if mode == "nearest":
            idx = np.clip(_ROUNDERS[nearest](src), 0, n - 1).astype(np.int64)
            if not crop:
                plan.append((a, "take", idx))
                continue
            w = np.zeros((out, n))
            w[np.arange(out), idx] = 1.0
        else:
            w = _interpolation_matrix(src, n, scale, mode, attrs)
        if crop:
            outside = (src < 0) | (src > n - 1)
            w[outside] = 0.0
            added = np.where(outside, float(attrs.get("extrapolation_value", 0.0)), 0.0)
            plan.append((a, "affine", (w, added)))
        else:
            plan.append((a, "matmul", w))
    return plan


def bilinear_matrix(in_len, out_len, dtype=np.float64):
    """(out_len, in_len) interpolation matrix of TF2 `resize` (half-pixel centres)."""
    scale = in_len / out_len
    src = (np.arange(out_len) + 0.5) * scale - 0.5
    src = np.clip(src, 0, in_len - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, in_len - 1)
    frac = src - lo
    a = np.zeros((out_len, in_len))
    np.add.at(a, (np.arange(out_len), lo), 1 - frac)
    np.add.at(a, (np.arange(out_len), hi), frac)
    return a.astype(dtype)


def einsum_parts(equation, ranks=None):
    """'ij,jk->ik' -> (['ij', 'jk'], 'ik'); an implicit output is numpy's (the ellipsis, then
    the letters used once, sorted). With the operands' `ranks`, each '...' becomes letters
    of its own (right-aligned across operands, as broadcasting aligns them); without, '...'
    is kept. Repeated letters in one operand (diagonals) are allowed."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    ins = lhs.split(",")
    if any(t.replace("...", "").count(".") or not t.replace("...", "").isalpha() and
           t.replace("...", "") for t in ins + ([rhs] if arrow else [])):
        raise UnsupportedError(f"Einsum equation {equation!r} is not valid")
    if not arrow:
        letters = "".join(t.replace("...", "") for t in ins)
        rhs = ("..." if "..." in lhs else "") + \
            "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if ranks is None or "..." not in eq:
        return ins, rhs
    if len(ranks) != len(ins):
        raise UnsupportedError(f"Einsum {equation!r} has {len(ins)} operands, got {len(ranks)}")
    spans = [int(r) - len(t.replace("...", "")) if "..." in t else 0
             for t, r in zip(ins, ranks)]
    if any(n < 0 for n in spans):
        raise UnsupportedError(f"Einsum {equation!r}: an operand has fewer axes than letters")
    used = set(eq)
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    widest = max(spans)
    ell = "".join(spare[:widest])
    ins = [t.replace("...", ell[widest - n:]) for t, n in zip(ins, spans)]
    return ins, rhs.replace("...", ell)


# -- configuration checks ----------------------------------------------------------------------

@_check("BatchNormalization")
def _bn_check(attrs, used):
    if not attrs.get("training_mode", 0) and any(used[1:]):
        return "the running-statistics outputs without training_mode=1"
    return None


@_check("Resize")
def _resize_check(attrs, used):
    mode = text(attrs.get("mode"), "nearest")
    coord = text(attrs.get("coordinate_transformation_mode"), "half_pixel")
    if mode not in ("nearest", "linear", "cubic"):
        return f"mode {mode!r}"
    if coord not in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                     "tf_half_pixel_for_nn", "half_pixel_symmetric", "tf_crop_and_resize"):
        return f"coordinate_transformation_mode {coord!r}"
    return None


@_check("Cast")
def _cast_check(attrs, used):
    to = int(attrs.get("to", 1))
    return None if to in ONNX_DTYPES else f"casting to ONNX type {to}"


@_check("QuantizeLinear", "DequantizeLinear")
def _qdq_check(attrs, used):
    if "output_dtype" in attrs and int(attrs["output_dtype"]) not in ONNX_DTYPES:
        return f"output_dtype {attrs['output_dtype']}"
    return None


@_check("LSTM", "GRU", "RNN")
def _recurrent_check(attrs, used):
    known = {"Sigmoid", "Tanh", "Relu", "Softsign", "Softplus", "LeakyRelu", "Elu",
             "HardSigmoid", "Affine", "ScaledTanh", "ThresholdedRelu"}
    names = [a.decode() if isinstance(a, bytes) else str(a) for a in attrs.get("activations", [])]
    bad = [n for n in names if n not in known]
    return f"recurrent activation(s) {bad}" if bad else None


@_check("Einsum")
def _einsum_check(attrs, used):
    equation = attrs.get("equation", "")
    equation = equation.decode() if isinstance(equation, bytes) else equation
    try:
        einsum_parts(equation)
    except Exception as e:       # UnsupportedError naming the equation
        return str(e)
    return None



# -- subgraphs (If / Loop / Scan bodies) --------------------------------------------------------

GRAPH_KEY = "__graph__"
CONTROL_FLOW = ("If", "Loop", "Scan", "SequenceMap")     # ops with subgraph attributes


def is_graph(value):
    """Whether an attribute value is a subgraph (as the importer stores it: {GRAPH_KEY: {...}}
    with name, inputs, outputs ([{name, dtype, shape}]), initializers ({name: encoded
    array}), nodes ([{op_type, name, inputs, outputs, attributes}]) and outer (the names it
    reads from enclosing graphs, in order))."""
    return isinstance(value, dict) and GRAPH_KEY in value


def outer_names(attrs):
    """The enclosing-scope names a node's subgraphs read, in one order both the importer
    (extra inputs of the node) and the backend (where it finds them) use."""
    names = []
    for key in sorted(attrs):
        if is_graph(attrs[key]):
            for n in attrs[key][GRAPH_KEY].get("outer", []):
                if n not in names:
                    names.append(n)
    return names

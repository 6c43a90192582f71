"""ONNX export, one row per layer configuration: onnxruntime output vs a direct numpy formula.

Each row builds a one-layer IR graph with random non-zero weights, exports it (the exporter
runs the ONNX checker with full shape inference) and compares onnxruntime's output with the
reference written here, max abs diff <= 1e-5.
"""

import math

import numpy as np
import pytest

from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import layer_graph, run

RNG = np.random.default_rng(1234)


def rnd(*shape, scale=1.0):
    return (RNG.normal(size=shape) * scale).astype(np.float32)


def nz(*shape):
    """Random weights bounded away from zero."""
    w = RNG.uniform(0.2, 1.0, size=shape) * RNG.choice([-1.0, 1.0], size=shape)
    return w.astype(np.float32)


# -- numpy references ------------------------------------------------------------------------

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def erf(x):
    return np.vectorize(math.erf)(x.astype(np.float64))


SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
ACT = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": sigmoid,
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0, 1),
    "keras3_hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "tanh": np.tanh,
    "softmax": softmax,
    "softplus": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(x)),
    "exponential": np.exp,
    "swish": lambda x: x * sigmoid(x),
    "silu": lambda x: x * sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))),
    "relu6": lambda x: np.clip(x, 0, 6),
}


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def same_pads(n, k, s, d=1):
    k = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv_nd_ref(x, kernel, bias, strides, dil, padding, groups=1):
    """Channels-last direct convolution by loops over output positions (1D or 2D)."""
    n = kernel.ndim - 2
    if n == 1:
        x, kernel = x[:, None], kernel[None]
        strides, dil = (1,) + tuple(strides), (1,) + tuple(dil)
        if padding == "causal":
            pads = [(0, 0), ((kernel.shape[1] - 1) * dil[1], 0)]
            padding = pads
    else:
        strides, dil = tuple(strides), tuple(dil)
    kh, kw, cin_g, cout = kernel.shape
    if padding == "valid":
        pads = [(0, 0), (0, 0)]
    elif padding == "same":
        pads = [same_pads(x.shape[1], kh, strides[0], dil[0]) if n == 2 else (0, 0),
                same_pads(x.shape[2], kw, strides[1], dil[1])]
    else:
        pads = padding
    xp = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    H = (xp.shape[1] - (kh - 1) * dil[0] - 1) // strides[0] + 1
    W = (xp.shape[2] - (kw - 1) * dil[1] - 1) // strides[1] + 1
    out = np.zeros((x.shape[0], H, W, cout), np.float64)
    og = cout // groups
    for i in range(H):
        for j in range(W):
            for a in range(kh):
                for b in range(kw):
                    v = xp[:, i * strides[0] + a * dil[0], j * strides[1] + b * dil[1], :]
                    for g in range(groups):
                        out[:, i, j, g * og:(g + 1) * og] += \
                            v[:, g * cin_g:(g + 1) * cin_g] @ kernel[a, b, :, g * og:(g + 1) * og]
    if bias is not None:
        out += bias
    return out[:, 0] if n == 1 else out


def depthwise_ref(x, dk, bias, strides, padding, dil=(1, 1)):
    kh, kw, cin, mult = dk.shape
    outs = []
    for c in range(cin):
        outs.append(conv_nd_ref(x[..., c:c + 1], dk[:, :, c:c + 1, :], None, strides, dil, padding))
    y = np.concatenate(outs, axis=-1)       # channel c*mult + m
    return y if bias is None else y + bias


def conv_transpose_ref(x, kernel, bias, strides, padding, output_padding=None):
    """2D channels-last transposed conv = adjoint of the forward conv of the Keras output size."""
    kh, kw, cout, cin = kernel.shape
    outs, pb = [], []
    for ax, k in ((1, kh), (2, kw)):
        n, s = x.shape[ax], strides[ax - 1]
        if output_padding is None:
            L = n * s + max(k - s, 0) if padding == "valid" else n * s
        else:
            pad = k // 2 if padding == "same" else 0
            L = (n - 1) * s + k - 2 * pad + output_padding[ax - 1]
        outs.append(L)
        pb.append(max((n - 1) * s + k - L, 0) // 2 if padding == "same" else 0)
    y = np.zeros((x.shape[0], outs[0], outs[1], cout))
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            for a in range(kh):
                for b in range(kw):
                    r, c = i * strides[0] + a - pb[0], j * strides[1] + b - pb[1]
                    if 0 <= r < outs[0] and 0 <= c < outs[1]:
                        y[:, r, c, :] += x[:, i, j, :] @ kernel[a, b].T
    return y + bias


def pool_ref(x, pool, strides, padding, kind):
    """Channels-last 1D/2D pooling; 'same' pads at the end as Keras, ignored by both kinds."""
    one_d = x.ndim == 3
    if one_d:
        x = x[:, None]
        pool, strides = (1,) + tuple(pool), (1,) + tuple(strides)
    pads = [(0, 0), (0, 0)] if padding == "valid" else \
        [same_pads(x.shape[1], pool[0], strides[0]), same_pads(x.shape[2], pool[1], strides[1])]
    xp = np.pad(x.astype(np.float64), [(0, 0), pads[0], pads[1], (0, 0)], constant_values=np.nan)
    H = (xp.shape[1] - pool[0]) // strides[0] + 1
    W = (xp.shape[2] - pool[1]) // strides[1] + 1
    out = np.zeros((x.shape[0], H, W, x.shape[3]))
    for i in range(H):
        for j in range(W):
            win = xp[:, i * strides[0]:i * strides[0] + pool[0], j * strides[1]:j * strides[1] + pool[1]]
            out[:, i, j] = np.nanmax(win, axis=(1, 2)) if kind == "max" else np.nanmean(win, axis=(1, 2))
    return out[:, 0] if one_d else out


def bn_ref(x, gamma, beta, mean, var, eps, axis):
    shape = [1] * x.ndim
    shape[axis] = -1
    r = lambda a: a.reshape(shape)  # noqa: E731
    y = (x - r(mean)) / np.sqrt(r(var) + eps)
    if gamma is not None:
        y = y * r(gamma)
    if beta is not None:
        y = y + r(beta)
    return y


def ln_ref(x, gamma, beta, eps, axes):
    m = x.mean(axis=tuple(axes), keepdims=True)
    v = ((x - m) ** 2).mean(axis=tuple(axes), keepdims=True)
    y = (x - m) / np.sqrt(v + eps)
    shape = [1] * x.ndim
    for a in axes:
        shape[a] = x.shape[a]
    return y * gamma.reshape(shape) + beta.reshape(shape)


def keras_relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    y = np.where(x > threshold, x, 0.0) if threshold else np.maximum(x, 0)
    if max_value is not None:
        y = np.clip(y, 0, max_value)
    return y - negative_slope * np.maximum(threshold - x, 0)


def batch_dot_ref(x, y, ax, ay):
    out = np.stack([np.tensordot(x[i], y[i], axes=(ax - 1, ay - 1)) for i in range(len(x))])
    return out[:, None] if out.ndim == 1 else out


def l2n(x, axis):
    return x / np.sqrt(np.maximum((x ** 2).sum(axis=axis, keepdims=True), 1e-12))


# -- the table -------------------------------------------------------------------------------

CASES = []


def case(id, op, config, weights, inputs, ref, n_outputs=1, opset=17, input_dtype="float32"):
    CASES.append(pytest.param(op, config, weights, inputs, ref, n_outputs, opset, input_dtype,
                              id=id))


x24 = rnd(3, 4)
x345 = rnd(2, 3, 5)
img = rnd(2, 5, 6, 3)          # NHWC
img_cf = rnd(2, 3, 5, 6)       # NCHW
seq = rnd(2, 7, 3)

Wd, bd = nz(4, 3), nz(3)
case("Dense-relu", "Dense", {"units": 3, "activation": "relu"}, [Wd, bd], [x24],
     lambda x: np.maximum(x @ Wd + bd, 0))
W5 = nz(5, 2)
case("Dense-rank3-tanh-nobias", "Dense", {"units": 2, "activation": "tanh", "use_bias": False},
     [W5], [x345], lambda x: np.tanh(x @ W5))
for name, f in ACT.items():
    case(f"Activation-{name}", "Activation", {"activation": name}, [], [x345 * 2], f)
case("Activation-gelu-approximate", "Activation", {"activation": "gelu", "approximate": True},
     [], [x345], gelu_tanh)
case("Activation-gelu-approximate-opset20", "Activation",
     {"activation": "gelu", "approximate": True}, [], [x345], gelu_tanh, opset=20)
case("Activation-gelu-opset20", "Activation", {"activation": "gelu"}, [], [x345], ACT["gelu"],
     opset=20)
for op in ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
           "ActivityRegularization"):
    case(op, op, {"rate": 0.5}, [], [x345], lambda x: x)
case("SpatialDropout2D", "SpatialDropout2D", {"rate": 0.5}, [], [img], lambda x: x)
case("Flatten-channels_last", "Flatten", {"data_format": "channels_last"}, [], [img],
     lambda x: x.reshape(len(x), -1))
case("Flatten-channels_first", "Flatten", {"data_format": "channels_first"}, [], [img_cf],
     lambda x: x.transpose(0, 2, 3, 1).reshape(len(x), -1))
case("Reshape-minus1", "Reshape", {"target_shape": [5, -1]}, [], [x345],
     lambda x: x.reshape(len(x), 5, -1))
case("Permute", "Permute", {"dims": [2, 1]}, [], [x345], lambda x: x.transpose(0, 2, 1))
case("RepeatVector", "RepeatVector", {"n": 3}, [], [x24],
     lambda x: np.repeat(x[:, None], 3, axis=1))

# convolutions
K1 = nz(3, 3, 4)
b4 = nz(4)
for pad, s, d in (("valid", 1, 1), ("same", 2, 1), ("causal", 1, 2), ("same", 1, 2)):
    case(f"Conv1D-{pad}-s{s}-d{d}", "Conv1D",
         {"filters": 4, "kernel_size": [3], "strides": [s], "padding": pad,
          "dilation_rate": [d], "activation": "relu"},
         [K1, b4], [seq], lambda x, pad=pad, s=s, d=d:
         np.maximum(conv_nd_ref(x, K1, b4, (s,), (d,), pad), 0))
K2 = nz(3, 2, 3, 4)
for pad, s in (("valid", (1, 1)), ("same", (2, 2)), ("same", (1, 2))):
    case(f"Conv2D-{pad}-s{s[0]}{s[1]}", "Conv2D",
         {"filters": 4, "kernel_size": [3, 2], "strides": list(s), "padding": pad},
         [K2, b4], [img], lambda x, pad=pad, s=s: conv_nd_ref(x, K2, b4, s, (1, 1), pad))
case("Conv2D-channels_first-dilated", "Conv2D",
     {"filters": 4, "kernel_size": [3, 2], "padding": "same", "dilation_rate": [2, 1],
      "data_format": "channels_first", "activation": "sigmoid"},
     [K2, b4], [img_cf], lambda x: sigmoid(conv_nd_ref(x.transpose(0, 2, 3, 1), K2, b4, (1, 1),
                                                     (2, 1), "same")).transpose(0, 3, 1, 2))
Kg = nz(2, 2, 2, 4)
img4 = rnd(2, 4, 5, 4)
case("Conv2D-groups2", "Conv2D", {"filters": 4, "kernel_size": [2, 2], "groups": 2},
     [Kg, b4], [img4], lambda x: conv_nd_ref(x, Kg, b4, (1, 1), (1, 1), "valid", groups=2))
case("Conv2D-softmax", "Conv2D", {"filters": 4, "kernel_size": [3, 2], "activation": "softmax"},
     [K2, b4], [img], lambda x: softmax(conv_nd_ref(x, K2, b4, (1, 1), (1, 1), "valid")))
Kt = nz(3, 3, 2, 3)     # (kh, kw, out, in)
b2 = nz(2)
for pad, s, op_ in (("valid", 2, None), ("same", 2, None), ("valid", 1, None),
                    ("same", 3, None), ("same", 2, (1, 1)), ("valid", 2, (1, 0))):
    case(f"Conv2DTranspose-{pad}-s{s}-op{op_}", "Conv2DTranspose",
         {"filters": 2, "kernel_size": [3, 3], "strides": [s, s], "padding": pad,
          "output_padding": op_},
         [Kt, b2], [img], lambda x, pad=pad, s=s, op_=op_:
         conv_transpose_ref(x, Kt, b2, (s, s), pad, op_))
Kt2 = nz(2, 2, 2, 3)
case("Conv2DTranspose-k2-s3", "Conv2DTranspose",
     {"filters": 2, "kernel_size": [2, 2], "strides": [3, 3], "padding": "valid"},
     [Kt2, b2], [img], lambda x: conv_transpose_ref(x, Kt2, b2, (3, 3), "valid"))
Dk = nz(3, 3, 3, 2)
b6 = nz(6)
case("DepthwiseConv2D-same-s2", "DepthwiseConv2D",
     {"kernel_size": [3, 3], "strides": [2, 2], "padding": "same", "depth_multiplier": 2},
     [Dk, b6], [img], lambda x: depthwise_ref(x, Dk, b6, (2, 2), "same"))
Pk = nz(1, 1, 6, 4)
case("SeparableConv2D", "SeparableConv2D",
     {"filters": 4, "kernel_size": [3, 3], "padding": "valid", "depth_multiplier": 2,
      "activation": "relu"},
     [Dk, Pk, b4], [img], lambda x: np.maximum(
         conv_nd_ref(depthwise_ref(x, Dk, None, (1, 1), "valid"), Pk, b4, (1, 1), (1, 1),
                     "valid"), 0))
case("ZeroPadding1D", "ZeroPadding1D", {"padding": [1, 2]}, [], [seq],
     lambda x: np.pad(x, [(0, 0), (1, 2), (0, 0)]))
case("ZeroPadding2D", "ZeroPadding2D", {"padding": [[1, 0], [2, 1]]}, [], [img],
     lambda x: np.pad(x, [(0, 0), (1, 0), (2, 1), (0, 0)]))
case("ZeroPadding2D-channels_first", "ZeroPadding2D",
     {"padding": [[1, 1], [0, 2]], "data_format": "channels_first"}, [], [img_cf],
     lambda x: np.pad(x, [(0, 0), (0, 0), (1, 1), (0, 2)]))
case("Cropping1D", "Cropping1D", {"cropping": [2, 1]}, [], [seq], lambda x: x[:, 2:-1])
case("Cropping2D", "Cropping2D", {"cropping": [[1, 0], [2, 1]]}, [], [img],
     lambda x: x[:, 1:, 2:-1])
case("UpSampling1D", "UpSampling1D", {"size": 3}, [], [seq], lambda x: np.repeat(x, 3, axis=1))
case("UpSampling2D", "UpSampling2D", {"size": [2, 3]}, [], [img],
     lambda x: np.repeat(np.repeat(x, 2, axis=1), 3, axis=2))
case("UpSampling2D-channels_first", "UpSampling2D",
     {"size": [2, 2], "data_format": "channels_first"}, [], [img_cf],
     lambda x: np.repeat(np.repeat(x, 2, axis=2), 2, axis=3))


def bilinear_ref(x, sh, sw):
    """TF2 resize bilinear, half-pixel centers, channels-last."""
    def coords(n, s):
        src = np.clip((np.arange(n * s) + 0.5) / s - 0.5, 0, None)
        lo = np.minimum(np.floor(src).astype(int), n - 1)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, src - lo
    hl, hh, hf = coords(x.shape[1], sh)
    wl, wh, wf = coords(x.shape[2], sw)
    top = x[:, hl][:, :, wl] * (1 - wf)[None, None, :, None] + x[:, hl][:, :, wh] * wf[None, None, :, None]
    bot = x[:, hh][:, :, wl] * (1 - wf)[None, None, :, None] + x[:, hh][:, :, wh] * wf[None, None, :, None]
    return top * (1 - hf)[None, :, None, None] + bot * hf[None, :, None, None]


case("UpSampling2D-bilinear", "UpSampling2D", {"size": [2, 3], "interpolation": "bilinear"},
     [], [img], lambda x: bilinear_ref(x, 2, 3))

# pooling (odd sizes so 'same' pads)
seq9 = rnd(2, 9, 3)
img7 = rnd(2, 7, 5, 3)
for kind, op in (("max", "MaxPooling"), ("avg", "AveragePooling")):
    for pad in ("valid", "same"):
        case(f"{op}1D-{pad}", f"{op}1D", {"pool_size": [2], "strides": [2], "padding": pad},
             [], [seq9], lambda x, pad=pad, kind=kind: pool_ref(x, (2,), (2,), pad, kind))
        case(f"{op}2D-{pad}", f"{op}2D",
             {"pool_size": [3, 2], "strides": [2, 2], "padding": pad}, [], [img7],
             lambda x, pad=pad, kind=kind: pool_ref(x, (3, 2), (2, 2), pad, kind))
case("MaxPooling2D-channels_first", "MaxPooling2D",
     {"pool_size": [2, 2], "padding": "valid", "data_format": "channels_first"}, [], [img_cf],
     lambda x: pool_ref(x.transpose(0, 2, 3, 1), (2, 2), (2, 2), "valid", "max").transpose(0, 3, 1, 2))
case("GlobalMaxPooling1D", "GlobalMaxPooling1D", {}, [], [seq], lambda x: x.max(axis=1))
case("GlobalAveragePooling1D", "GlobalAveragePooling1D", {}, [], [seq], lambda x: x.mean(axis=1))
case("GlobalMaxPooling2D", "GlobalMaxPooling2D", {}, [], [img], lambda x: x.max(axis=(1, 2)))
case("GlobalAveragePooling2D-cf-keepdims", "GlobalAveragePooling2D",
     {"data_format": "channels_first", "keepdims": True}, [], [img_cf],
     lambda x: x.mean(axis=(2, 3), keepdims=True))

# embedding
E = nz(10, 4)
ids = RNG.integers(0, 10, size=(3, 6))
case("Embedding-int", "Embedding", {"input_dim": 10, "output_dim": 4}, [E], [ids.astype(np.int32)],
     lambda x: E[x], input_dtype="int32")
case("Embedding-float-input", "Embedding", {"input_dim": 10, "output_dim": 4}, [E],
     [ids.astype(np.float32)], lambda x: E[x.astype(int)])

# merges
a, b, c = rnd(3, 4), rnd(3, 4), rnd(3, 4)
for op, f in (("Add", lambda x, y, z: x + y + z), ("Multiply", lambda x, y, z: x * y * z),
              ("Average", lambda x, y, z: (x + y + z) / 3),
              ("Maximum", lambda x, y, z: np.maximum(np.maximum(x, y), z)),
              ("Minimum", lambda x, y, z: np.minimum(np.minimum(x, y), z))):
    case(op, op, {}, [], [a, b, c], f)
case("Subtract", "Subtract", {}, [], [a, b], lambda x, y: x - y)
case("Concatenate-axis-1", "Concatenate", {"axis": -1}, [], [a, b, c],
     lambda *xs: np.concatenate(xs, axis=-1))
case("Concatenate-axis1-rank3", "Concatenate", {"axis": 1}, [], [x345, rnd(2, 2, 5)],
     lambda x, y: np.concatenate([x, y], axis=1))
case("Dot-2d", "Dot", {"axes": -1}, [], [a, b], lambda x, y: batch_dot_ref(x, y, 1, 1))
case("Dot-2d-normalize", "Dot", {"axes": 1, "normalize": True}, [], [a, b],
     lambda x, y: batch_dot_ref(l2n(x, 1), l2n(y, 1), 1, 1))
m1, m2 = rnd(2, 3, 4), rnd(2, 4, 5)
case("Dot-3d-axes21", "Dot", {"axes": [2, 1]}, [], [m1, m2], lambda x, y: batch_dot_ref(x, y, 2, 1))
m3 = rnd(2, 3, 5)
case("Dot-3d-axes22", "Dot", {"axes": [1, 1]}, [], [m3, rnd(2, 3, 4)],
     lambda x, y: batch_dot_ref(x, y, 1, 1))

# normalization
g5, be5, mu5, var5 = nz(5), nz(5), nz(5), RNG.uniform(0.5, 2, 5).astype(np.float32)
case("BatchNormalization-axis-1", "BatchNormalization", {"axis": -1, "epsilon": 1e-3},
     [g5, be5, mu5, var5], [x345], lambda x: bn_ref(x, g5, be5, mu5, var5, 1e-3, -1))
g3, mu3, var3 = nz(3), nz(3), RNG.uniform(0.5, 2, 3).astype(np.float32)
case("BatchNormalization-axis1-nocenter", "BatchNormalization",
     {"axis": 1, "center": False, "epsilon": 0.01}, [g3, mu3, var3], [img_cf],
     lambda x: bn_ref(x, g3, None, mu3, var3, 0.01, 1))
be3 = nz(3)
case("BatchNormalization-noscale-list-axis", "BatchNormalization",
     {"axis": [3], "scale": False, "epsilon": 0.001}, [be3, mu3, var3], [img],
     lambda x: bn_ref(x, None, be3, mu3, var3, 0.001, 3))
for opset in (13, 17):
    case(f"LayerNormalization-last-opset{opset}", "LayerNormalization",
         {"axis": [-1], "epsilon": 1e-3}, [g5, be5], [x345],
         lambda x: ln_ref(x, g5, be5, 1e-3, [2]), opset=opset)
gl, bl = nz(5, 6, 3), nz(5, 6, 3)
case("LayerNormalization-multi-axis", "LayerNormalization", {"axis": [1, 2, 3], "epsilon": 1e-5},
     [gl, bl], [img], lambda x: ln_ref(x, gl, bl, 1e-5, [1, 2, 3]))
gm, bm = nz(5), nz(5)
case("LayerNormalization-axis1-rank4", "LayerNormalization", {"axis": 1, "epsilon": 1e-3},
     [gm, bm], [img], lambda x: ln_ref(x, gm, bm, 1e-3, [1]))

# advanced activations
case("LeakyReLU", "LeakyReLU", {"alpha": 0.3}, [], [x345], lambda x: np.where(x > 0, x, 0.3 * x))
case("LeakyReLU-keras3", "LeakyReLU", {"negative_slope": 0.1}, [], [x345],
     lambda x: np.where(x > 0, x, 0.1 * x))
Ap = nz(3, 5)
case("PReLU", "PReLU", {}, [Ap], [x345], lambda x: np.where(x > 0, x, Ap * x))
Aps = nz(1, 1, 3)
case("PReLU-shared_axes", "PReLU", {"shared_axes": [1, 2]}, [Aps], [img],
     lambda x: np.where(x > 0, x, Aps * x))
case("ELU", "ELU", {"alpha": 0.7}, [], [x345], lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)))
case("ThresholdedReLU", "ThresholdedReLU", {"theta": 0.4}, [], [x345],
     lambda x: np.where(x > 0.4, x, 0))
for cfg in ({}, {"max_value": 0.8}, {"negative_slope": 0.2}, {"threshold": 0.3},
            {"max_value": 6.0, "negative_slope": 0.1, "threshold": -0.5}):
    case("ReLU-" + "-".join(f"{k}{v}" for k, v in cfg.items()), "ReLU", cfg, [], [x345 * 3],
         lambda x, cfg=cfg: keras_relu(x, **cfg))
case("Softmax-axis1", "Softmax", {"axis": 1}, [], [x345], lambda x: softmax(x, axis=1))

# Keras 1 layers
Wh, Wc, bh, bc = nz(4, 4), nz(4, 4), nz(4), nz(4)
case("Highway", "Highway", {"activation": "tanh"}, [Wh, bh, Wc, bc], [x24],
     lambda x: sigmoid(x @ Wc + bc) * np.tanh(x @ Wh + bh) + (1 - sigmoid(x @ Wc + bc)) * x)
Wm, bmx = nz(3, 4, 2), nz(3, 2)
case("MaxoutDense", "MaxoutDense", {"output_dim": 2, "nb_feature": 3}, [Wm, bmx], [x24],
     lambda x: np.max(np.einsum("bi,kio->bko", x, Wm) + bmx, axis=1))

# raw ONNX op
case("OnnxOp-LeakyRelu", "OnnxOp", {"op_type": "LeakyRelu", "attributes": {"alpha": 0.25}},
     [], [x345], lambda x: np.where(x > 0, x, 0.25 * x))
Wo = nz(5)
case("OnnxOp-Add-weight", "OnnxOp", {"op_type": "Add"}, [Wo], [x345], lambda x: x + Wo)


@pytest.mark.parametrize("op,config,weights,inputs,ref,n_outputs,opset,input_dtype", CASES)
def test_layer_matches_numpy(op, config, weights, inputs, ref, n_outputs, opset, input_dtype):
    shapes = [(None,) + tuple(x.shape[1:]) for x in inputs]
    graph = layer_graph(op, config, weights, shapes, n_outputs=n_outputs, name="layer",
                        input_dtype=input_dtype)
    model = onnx_conv.export(graph, opset=opset)
    got = run(model, inputs)
    want = ref(*[x.astype(np.float64) if x.dtype.kind == "f" else x for x in inputs])
    want = want if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == np.shape(w), (g.shape, np.shape(w))
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)

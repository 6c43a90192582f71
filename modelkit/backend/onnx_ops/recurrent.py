"""ONNX LSTM, GRU and RNN: every direction, `layout`, `sequence_lens`, initial states,
`clip`, peepholes, `input_forget`, `linear_before_reset` and the activation list.

A step loop of differentiable backend ops (imported recurrent nodes usually become Keras
LSTM/GRU/SimpleRNN layers and run the fused kernels; this is the general form). Gate orders
are ONNX's: LSTM i,o,f,c; GRU z,r,h.
"""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from . import onnx_op
from ._util import const, like, op, values

_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"],
                 "RNN": ["Tanh"]}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_TAKES_ALPHA = {"LeakyRelu": 0.01, "ThresholdedRelu": 1.0, "ScaledTanh": 1.0,
                "HardSigmoid": 0.2, "Elu": 1.0, "Affine": 1.0}
_TAKES_BETA = {"ScaledTanh": 1.0, "HardSigmoid": 0.5, "Affine": 0.0}


def _activation(name, alpha, beta):
    """A unary function of backend tensors for an ONNX RNN activation name."""
    simple = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "Softsign": "softsign",
              "Softplus": "softplus"}
    if name in simple:
        return lambda x: op(simple[name], x)
    if name == "LeakyRelu":
        return lambda x: op("relu", x, negative_slope=alpha)
    if name == "Elu":
        return lambda x: op("elu", x, alpha=alpha)
    if name == "HardSigmoid":
        return lambda x: op("clip", op("add", op("multiply", x, like(x, alpha)), like(x, beta)),
                            lo=0.0, hi=1.0)
    if name == "Affine":
        return lambda x: op("add", op("multiply", x, like(x, alpha)), like(x, beta))
    if name == "ScaledTanh":
        return lambda x: op("multiply", op("tanh", op("multiply", x, like(x, beta))),
                            like(x, alpha))
    if name == "ThresholdedRelu":
        return lambda x: op("where", values(x) > alpha, x, like(x, np.zeros(x.shape)))
    raise UnsupportedError(f"recurrent activation {name!r} is not supported")


def _activations(kind, attrs, n_dirs):
    names = [a.decode() if isinstance(a, bytes) else str(a)
             for a in attrs.get("activations", _DEFAULT_ACTS[kind] * n_dirs)]
    alphas = list(attrs.get("activation_alpha", []))
    betas = list(attrs.get("activation_beta", []))
    fns = []
    for name in names:
        alpha = float(alphas.pop(0)) if name in _TAKES_ALPHA and alphas else _TAKES_ALPHA.get(name)
        beta = float(betas.pop(0)) if name in _TAKES_BETA and betas else _TAKES_BETA.get(name)
        fns.append(_activation(name, alpha, beta))
    per = len(_DEFAULT_ACTS[kind])
    return [fns[d * per:(d + 1) * per] for d in range(n_dirs)]


def _take(t, index):
    return op("getitem", t, index=index)


def _split_last(t, n):
    size = t.shape[-1] // n
    return [_take(t, (Ellipsis, slice(i * size, (i + 1) * size))) for i in range(n)]


def _maybe_clip(t, clip):
    return t if clip is None else op("clip", t, lo=-clip, hi=clip)


def _reverse_index(lengths, steps):
    """idx[t, b]: time step read at processing step t for batch b of a reverse direction
    (reversed within each sequence's length; positions past the length stay put)."""
    t = np.arange(steps)[:, None]
    lens = lengths[None, :]
    return np.where(t < lens, lens - 1 - t, t)


def _run(kind, inputs, attrs, ctx):
    x = inputs[0]
    W, R = inputs[1], inputs[2]
    B = inputs[3] if len(inputs) > 3 else None
    seq_lens = inputs[4] if len(inputs) > 4 else None
    h0 = inputs[5] if len(inputs) > 5 else None
    c0 = inputs[6] if kind == "LSTM" and len(inputs) > 6 else None
    P = inputs[7] if kind == "LSTM" and len(inputs) > 7 else None
    layout = int(attrs.get("layout", 0))
    if layout:
        x = op("transpose", x, axes=(1, 0, 2))                  # -> (seq, batch, in)
        h0 = None if h0 is None else op("transpose", h0, axes=(1, 0, 2))
        c0 = None if c0 is None else op("transpose", c0, axes=(1, 0, 2))
    steps, batch = x.shape[0], x.shape[1]
    hidden = int(attrs.get("hidden_size", R.shape[-1]))
    direction = attrs.get("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dirs = ["forward", "reverse"] if direction == "bidirectional" else [direction]
    acts = _activations(kind, attrs, len(dirs))
    clip = float(attrs["clip"]) if "clip" in attrs else None
    lengths = np.full(batch, steps, np.int64) if seq_lens is None else \
        values(seq_lens).astype(np.int64).reshape(-1)
    valid = (np.arange(steps)[:, None] < lengths[None, :])[..., None]   # (seq, batch, 1)
    ys, hs, cs = [], [], []
    for d, name in enumerate(dirs):
        xd = x
        if name == "reverse":
            xd = _take(x, (_reverse_index(lengths, steps), np.arange(batch)[None, :]))
        w_t = op("transpose", _take(W, d), axes=(1, 0))
        r_t = op("transpose", _take(R, d), axes=(1, 0))
        bias = None
        if B is not None:
            wb, rb = _split_last(_take(B, d), 2)
            bias = (wb, rb)
        xw = op("matmul", xd, w_t)                               # (seq, batch, G*H)
        if bias is not None and kind != "GRU":
            xw = op("add", xw, op("add", bias[0], bias[1]))
        elif bias is not None:
            xw = op("add", xw, bias[0])
        zeros = const(np.zeros((batch, hidden), dtype=x.dtype))
        h = zeros if h0 is None else _take(h0, d)
        c = None
        if kind == "LSTM":
            c = zeros if c0 is None else _take(c0, d)
        peep = None if P is None else _split_last(_take(P, d), 3)
        outs = []
        for t in range(steps):
            mask = valid[t]
            pre = _take(xw, t)
            if kind == "LSTM":
                h_new, c_new = _lstm_step(pre, h, c, r_t, acts[d], clip, peep,
                                          int(attrs.get("input_forget", 0)))
                c = op("where", mask, c_new, c)
            elif kind == "GRU":
                h_new = _gru_step(pre, h, r_t, bias[1] if bias else None, acts[d], clip,
                                  int(attrs.get("linear_before_reset", 0)), hidden)
            else:
                h_new = _activation_clip(acts[d][0], op("add", pre, op("matmul", h, r_t)), clip)
            h = op("where", mask, h_new, h)
            outs.append(op("where", mask, h_new, like(h_new, np.zeros(h_new.shape))))
        y = op("stack", *outs, axis=0)                            # (seq, batch, H)
        if name == "reverse":
            y = _take(y, (_reverse_index(lengths, steps), np.arange(batch)[None, :]))
        ys.append(y)
        hs.append(h)
        cs.append(c)
    Y = op("stack", *ys, axis=1)                                  # (seq, dirs, batch, H)
    Yh = op("stack", *hs, axis=0)                                 # (dirs, batch, H)
    Yc = op("stack", *cs, axis=0) if kind == "LSTM" else None
    if layout:
        Y = op("transpose", Y, axes=(2, 0, 1, 3))
        Yh = op("transpose", Yh, axes=(1, 0, 2))
        Yc = None if Yc is None else op("transpose", Yc, axes=(1, 0, 2))
    outs = [Y, Yh] + ([Yc] if kind == "LSTM" else [])
    return outs[:max(ctx.num_outputs, 1)]


def _activation_clip(fn, pre, clip):
    return fn(_maybe_clip(pre, clip))


def _lstm_step(pre, h, c, r_t, acts, clip, peep, input_forget):
    f, g, hact = acts
    z = op("add", pre, op("matmul", h, r_t))
    zi, zo, zf, zc = _split_last(z, 4)
    if peep is not None:
        zi = op("add", zi, op("multiply", peep[0], c))
        zf = op("add", zf, op("multiply", peep[2], c))
    i = _activation_clip(f, zi, clip)
    fg = op("subtract", like(i, 1.0), i) if input_forget else _activation_clip(f, zf, clip)
    cc = _activation_clip(g, zc, clip)
    c_new = op("add", op("multiply", fg, c), op("multiply", i, cc))
    if peep is not None:
        zo = op("add", zo, op("multiply", peep[1], c_new))
    o = _activation_clip(f, zo, clip)
    return op("multiply", o, hact(c_new)), c_new


def _gru_step(pre, h, r_t, rb, acts, clip, linear_before_reset, hidden):
    f, g = acts
    xz, xr, xh = _split_last(pre, 3)
    rz_t, rr_t, rh_t = _split_last(r_t, 3)
    rbz, rbr, rbh = _split_last(rb, 3) if rb is not None else (None, None, None)

    def rec(m, b):
        y = op("matmul", h, m)
        return y if b is None else op("add", y, b)

    z = _activation_clip(f, op("add", xz, rec(rz_t, rbz)), clip)
    r = _activation_clip(f, op("add", xr, rec(rr_t, rbr)), clip)
    if linear_before_reset:
        hh = op("add", xh, op("multiply", r, rec(rh_t, rbh)))
    else:
        hr = op("matmul", op("multiply", r, h), rh_t)
        hh = op("add", xh, hr if rbh is None else op("add", hr, rbh))
    hcand = _activation_clip(g, hh, clip)
    return op("add", op("multiply", op("subtract", like(z, 1.0), z), hcand),
              op("multiply", z, h))


@onnx_op("LSTM")
def lstm(inputs, attrs, ctx):
    return _run("LSTM", inputs, attrs, ctx)


@onnx_op("GRU")
def gru(inputs, attrs, ctx):
    return _run("GRU", inputs, attrs, ctx)


@onnx_op("RNN")
def rnn(inputs, attrs, ctx):
    return _run("RNN", inputs, attrs, ctx)




"""Fast float32 convolution kernels for training: onnxruntime's MLAS for the forward pass and
the input gradient, a cache-blocked im2col + GEMM for the kernel gradient.

`conv_ops.conv` dispatches here when `usable(...)` says so (float32, one group, onnxruntime
importable, not switched off with MODELKIT_FAST_CONV=0); float64 and everything else keep
the exact numpy path, so the float64 gradient checks see the same code as before.

Layout. MLAS convolves channels-first (NCHW) arrays. The forward pass hands back a
channels-last *view* of its NCHW result (`np.moveaxis`, no copy); numpy's elementwise ops
keep that memory order, so the next convolution usually finds its input already NCHW in
memory and converts nothing. Whatever layout arrives, `_nchw` makes one copy at most.

- forward: one cached InferenceSession per (shapes, strides, dilation, pads, bias, relu)
  running ONNX `Conv` (or `com.microsoft.FusedConv` with Relu: bias and relu fused).
- input gradient: ONNX `ConvTranspose` of the output gradient with the same kernel, pads
  and strides (`output_padding` restores the rows a strided conv skipped).
- kernel gradient: im2col and GEMM a few images at a time, so the column block stays in
  cache instead of streaming a (N*H*W, k*k*C) matrix through memory.
- bias gradient: a sum over batch and positions.

The sessions run on onnxruntime's own thread pool (MODELKIT_NUM_THREADS, default all
cores) with spinning off, so idle pools do not burn the CPU between calls.
"""

import os
from collections import OrderedDict

import numpy as np
from numpy.lib.stride_tricks import as_strided

_ORT = None            # onnxruntime module, False when unavailable
_SESSIONS = OrderedDict()
_MAX_SESSIONS = 64
_CHUNK_BYTES = 1 << 20  # im2col block of the kernel gradient (about the L2 cache)


def _ort():
    global _ORT
    if _ORT is None:
        try:
            import onnxruntime
            _ORT = onnxruntime
        except ImportError:          # pragma: no cover - onnxruntime is a dependency
            _ORT = False
    return _ORT


def enabled():
    return os.environ.get("MODELKIT_FAST_CONV", "1") != "0" and bool(_ort())


def usable(x, kernel, groups):
    """True when the fast path computes this convolution (else conv_ops does)."""
    return (x.dtype == np.float32 and kernel.dtype == np.float32 and groups == 1
            and 1 <= kernel.ndim - 2 <= 3 and x.size > 0 and enabled())


class Saved:
    """What the VJP needs: NCHW input, OIHW kernel, geometry, relu output (or None)."""

    __slots__ = ("x", "w", "kshape", "pads", "strides", "dilation", "out", "has_bias",
                 "relu_y", "channels_first")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


# ---------------------------------------------------------------------------------------
# sessions

def _threads():
    n = os.environ.get("MODELKIT_NUM_THREADS")
    return int(n) if n else (os.cpu_count() or 1)


def _session(key, build):
    sess = _SESSIONS.get(key)
    if sess is not None:
        _SESSIONS.move_to_end(key)
        return sess
    from onnx import TensorProto, helper
    ort = _ort()
    nodes, inputs = build(helper)
    g = helper.make_graph(
        nodes, "conv_fast",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = _threads()
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    _SESSIONS[key] = sess
    if len(_SESSIONS) > _MAX_SESSIONS:
        _SESSIONS.popitem(last=False)
    return sess


def _conv_attrs(pads, strides, dilation):
    return dict(pads=[b for b, _ in pads] + [a for _, a in pads], strides=list(strides),
                dilations=list(dilation))


def _nchw(a, channels_first):
    """Channels-first contiguous float32 array of a channels-last (or -first) one."""
    if not channels_first:
        a = np.moveaxis(a, -1, 1)
    return np.ascontiguousarray(a, dtype=np.float32)


def _from_nchw(y, channels_first):
    return y if channels_first else np.moveaxis(y, 1, -1)


# ---------------------------------------------------------------------------------------
# forward

def conv(x, kernel, bias, strides, dilation, pads, out, channels_first, relu):
    """Forward pass; `pads` per spatial dim (before, after), `out` the output spatial size.
    Returns (y, Saved)."""
    xn = _nchw(x, channels_first)
    w = np.ascontiguousarray(np.moveaxis(kernel, (-1, -2), (0, 1)))    # (O, I, *k)
    has_bias = bias is not None
    key = ("fwd", xn.shape, w.shape, tuple(pads), tuple(strides), tuple(dilation), has_bias,
           relu)

    def build(helper):
        ins = ["x", "w"] + (["b"] if has_bias else [])
        attrs = _conv_attrs(pads, strides, dilation)
        if relu:
            node = helper.make_node("FusedConv", ins, ["y"], domain="com.microsoft",
                                    activation="Relu", **attrs)
        else:
            node = helper.make_node("Conv", ins, ["y"], **attrs)
        shapes = [("x", list(xn.shape)), ("w", list(w.shape))]
        if has_bias:
            shapes.append(("b", [w.shape[0]]))
        return [node], shapes

    feeds = {"x": xn, "w": w}
    if has_bias:
        feeds["b"] = np.ascontiguousarray(bias, dtype=np.float32)
    y = _session(key, build).run(None, feeds)[0]
    assert y.shape[2:] == tuple(out), (y.shape, out)
    saved = Saved(x=xn, w=w, kshape=kernel.shape, pads=tuple(pads), strides=tuple(strides),
                  dilation=tuple(dilation), out=tuple(out), has_bias=has_bias,
                  relu_y=y if relu else None, channels_first=channels_first)
    return _from_nchw(y, channels_first), saved


# ---------------------------------------------------------------------------------------
# backward

def conv_vjp(g, s, needs):
    gn = _nchw(g, s.channels_first)
    if s.relu_y is not None:
        gn = gn * (s.relu_y > 0)
    gx = gk = gb = None
    if needs[0]:
        gx = _from_nchw(_input_grad(gn, s), s.channels_first)
    if needs[1]:
        gk = _kernel_grad(gn, s)
    if s.has_bias and len(needs) > 2 and needs[2]:
        gb = gn.reshape(gn.shape[0], gn.shape[1], -1).sum(axis=(0, 2))
    return gx, gk, gb


def _input_grad(gn, s):
    xshape = s.x.shape
    spatial = xshape[2:]
    k = s.w.shape[2:]
    # a strided conv never reads the last `r` rows; ConvTranspose adds them back as zeros
    out_pad = [(L + b + a - ((kk - 1) * d + 1)) % st
               for L, (b, a), kk, d, st in zip(spatial, s.pads, k, s.dilation, s.strides)]
    key = ("dx", gn.shape, s.w.shape, s.pads, s.strides, s.dilation, tuple(out_pad))

    def build(helper):
        node = helper.make_node("ConvTranspose", ["x", "w"], ["y"],
                                output_padding=out_pad,
                                **_conv_attrs(s.pads, s.strides, s.dilation))
        return [node], [("x", list(gn.shape)), ("w", list(s.w.shape))]

    gx = _session(key, build).run(None, {"x": gn, "w": s.w})[0]
    assert gx.shape == xshape, (gx.shape, xshape)
    return gx


def _kernel_grad(gn, s):
    """dW[*k, i, o] = sum over images and positions of x[i, shifted by k] * g[o]: im2col of
    a few images at a time (a cache-sized block, channels-last so that each window copies
    whole channel runs) and one GEMM per block, (k*C_in, rows) @ (rows, C_out), accumulated.
    The result is already in Keras's (*k, C_in, C_out) layout."""
    xn = s.x
    nb, cin = xn.shape[:2]
    cout = gn.shape[1]
    k = tuple(s.w.shape[2:])
    n = len(k)
    out = s.out
    p = int(np.prod(out))
    kp = int(np.prod(k))
    gl = np.ascontiguousarray(np.moveaxis(gn, 1, -1)).reshape(nb * p, cout)
    xl = np.moveaxis(xn, 1, -1)                                   # view (N, *spatial, C)
    padded = tuple(L + b + a for L, (b, a) in zip(xl.shape[1:-1], s.pads))
    chunk = max(1, min(nb, _CHUNK_BYTES // max(cin * kp * p * 4, 1)))
    xp = np.zeros((chunk,) + padded + (cin,), np.float32)
    interior = (slice(None),) + tuple(slice(b, b + L) for L, (b, _)
                                      in zip(xl.shape[1:-1], s.pads)) + (slice(None),)
    st = xp.strides
    win = as_strided(xp, shape=(chunk,) + tuple(out) + k + (cin,),
                     strides=(st[0],) + tuple(st[1 + i] * s.strides[i] for i in range(n))
                     + tuple(st[1 + i] * s.dilation[i] for i in range(n)) + (st[-1],),
                     writeable=False)
    cols = np.empty(win.shape, np.float32)
    acc = np.zeros((kp * cin, cout), np.float32)
    part = np.empty_like(acc)
    for n0 in range(0, nb, chunk):
        c = min(chunk, nb - n0)
        xp[:c][interior] = xl[n0:n0 + c]
        np.copyto(cols[:c], win[:c])
        np.matmul(cols[:c].reshape(c * p, kp * cin).T, gl[n0 * p:(n0 + c) * p], out=part)
        acc += part
    return acc.reshape(k + (cin, cout))

"""Quantized-integer ONNX ops (forward only: integers carry no gradient):
DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv."""

from __future__ import annotations

import numpy as np

from . import onnx_op, run_onnx_op
from ._util import const, values


def _saturate(q, dtype):
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


def _zero(t, default_dtype=np.uint8):
    return (np.zeros((), default_dtype) if t is None else np.asarray(values(t)))


@onnx_op("DynamicQuantizeLinear")
def dynamic_quantize_linear(inputs, attrs, ctx):
    """uint8 quantization with the scale and zero point of x's range (widened to hold 0)."""
    x = np.asarray(values(inputs[0]), dtype=np.float32)
    lo, hi = min(0.0, float(x.min(initial=0.0))), max(0.0, float(x.max(initial=0.0)))
    scale = np.float32((hi - lo) / 255.0)
    if scale == 0:
        zero = np.uint8(0)
        y = np.zeros(x.shape, np.uint8)
    else:
        zero = _saturate(np.round(0.0 - lo / scale), np.uint8)
        y = _saturate(np.round(x / scale) + zero.astype(np.float64), np.uint8)
    return [const(y), const(np.asarray(scale, np.float32)), const(np.asarray(zero, np.uint8))]


def _rows(zp, ndim):
    """A zero point per row of A (shape (M,)) lines up with A's second-last axis."""
    zp = np.asarray(zp)
    return zp.reshape(zp.shape + (1,)) if zp.ndim == 1 and ndim >= 2 else zp


def _int_matmul(a, b, a_zp, b_zp):
    a = np.asarray(a).astype(np.int64) - _rows(a_zp, np.ndim(a)).astype(np.int64)
    b = np.asarray(b).astype(np.int64) - np.asarray(b_zp).astype(np.int64)
    return np.matmul(a, b)


@onnx_op("MatMulInteger")
def matmul_integer(inputs, attrs, ctx):
    a, b = values(inputs[0]), values(inputs[1])
    a_zp = _zero(inputs[2] if len(inputs) > 2 else None)
    b_zp = _zero(inputs[3] if len(inputs) > 3 else None)
    return const(_int_matmul(a, b, a_zp, b_zp).astype(np.int32))


def _int_conv(x, w, x_zp, w_zp, attrs, ctx):
    """Exact integer convolution of (x - x_zp) and (w - w_zp) (float64 holds the sums)."""
    xs = np.asarray(x).astype(np.float64) - np.asarray(x_zp).astype(np.float64)
    w_zp = np.asarray(w_zp).astype(np.float64)
    if w_zp.ndim == 1 and w_zp.size > 1:            # one zero point per output channel
        w_zp = w_zp.reshape((-1,) + (1,) * (np.ndim(w) - 1))
    ws = np.asarray(w).astype(np.float64) - w_zp
    conv_attrs = {k: v for k, v in attrs.items()
                  if k in ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")}
    (y,) = run_onnx_op("Conv", [const(xs), const(ws)], conv_attrs, opset=ctx.opset)
    return np.rint(values(y)).astype(np.int64)


@onnx_op("ConvInteger")
def conv_integer(inputs, attrs, ctx):
    x_zp = _zero(inputs[2] if len(inputs) > 2 else None)
    w_zp = _zero(inputs[3] if len(inputs) > 3 else None)
    return const(_int_conv(values(inputs[0]), values(inputs[1]), x_zp, w_zp, attrs, ctx)
                 .astype(np.int32))


def _requantize(acc, scale, y_scale, y_zp):
    """round(acc * scale / y_scale) + y_zp, saturated to y_zp's type (half to even)."""
    real = acc.astype(np.float64) * np.asarray(scale, np.float64) / float(y_scale)
    y_zp = np.asarray(y_zp)
    return _saturate(np.round(real) + y_zp.astype(np.float64), y_zp.dtype)


def _flat1(v):
    """A one-element parameter as a scalar (per-tensor); others unchanged (per-axis)."""
    v = np.asarray(v)
    return v.reshape(()) if v.size == 1 else v


@onnx_op("QLinearMatMul")
def qlinear_matmul(inputs, attrs, ctx):
    a, b = values(inputs[0]), values(inputs[3])
    a_s, a_zp, b_s, b_zp, y_s, y_zp = [_flat1(values(inputs[i])) for i in (1, 2, 4, 5, 6, 7)]
    acc = _int_matmul(a, b, a_zp, b_zp)
    scale = _rows(a_s.astype(np.float32), acc.ndim).astype(np.float64) * \
        b_s.astype(np.float32)
    return const(_requantize(acc, scale, np.float32(y_s), y_zp))


@onnx_op("QLinearConv")
def qlinear_conv(inputs, attrs, ctx):
    x, w = values(inputs[0]), values(inputs[3])
    x_s, x_zp, w_s, w_zp, y_s, y_zp = [_flat1(values(inputs[i])) for i in (1, 2, 4, 5, 6, 7)]
    acc = _int_conv(x, w, x_zp, w_zp, attrs, ctx)
    if len(inputs) > 8 and inputs[8] is not None:
        acc = acc + np.asarray(values(inputs[8])).astype(np.int64).reshape(
            (1, -1) + (1,) * (acc.ndim - 2))
    w_s = np.asarray(w_s, np.float64)
    scale = float(x_s) * (w_s.reshape((1, -1) + (1,) * (acc.ndim - 2)) if w_s.size > 1
                          else w_s.reshape(()))
    return const(_requantize(acc, scale, y_s, y_zp))

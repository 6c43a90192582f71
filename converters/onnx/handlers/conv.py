"""Convolution, pooling, padding, cropping and upsampling layers.

channels_last layers run as Transpose(to NC...) -> ONNX op -> Transpose(back); the
exporter's pass removes the inverse pairs between consecutive layers. Elementwise
activations are applied before the transpose back, so they do not break the pairs.
'same' padding uses auto_pad=SAME_UPPER, which like TF/Keras puts the extra pad at the end.
"""

from __future__ import annotations

import numpy as np

from .. import layout
from ..context import LayerUnsupported
from ..registry import export_handler
from .activations import AXIS_ACTIVATIONS, activation_name, activation_problem, apply_activation


def _tuple(v, n):
    if v is None:
        return None
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(x) for x in v)
    return v * n if len(v) == 1 and n > 1 else v


def _channels_last(cfg):
    return cfg.get("data_format", "channels_last") != "channels_first"


def to_cf(ctx, x, cfg, hint):
    """The input in channels-first layout."""
    if _channels_last(cfg) and x.rank is not None:
        return ctx.transpose(x, layout.to_channels_first_perm(x.rank), hint=hint)
    return x


def from_cf(ctx, y, cfg, hint):
    if _channels_last(cfg) and y.rank is not None:
        return ctx.transpose(y, layout.to_channels_last_perm(y.rank), hint=hint)
    return y


def _out_len(n, k, s, d, padding):
    if n is None:
        return None
    dk = (k - 1) * d + 1
    if padding == "valid":
        return (n - dk) // s + 1
    return -(-n // s)     # same, causal


def _pad_attrs(padding, kernel, strides, dilations, x_cf=None):
    """ONNX padding attributes for Keras 'valid' / 'same' / 'causal'.

    'same' with stride 1 has static pads (total (k-1)*d, the extra one at the end); with
    strides and no dilation SAME_UPPER computes TF's pads at run time (onnxruntime does not
    take SAME_* with dilation); otherwise the pads are computed from static input dims.
    """
    if padding == "valid":
        return {"pads": [0] * (2 * len(kernel))}
    if padding == "same":
        if all(s == 1 for s in strides):
            tot = [(k - 1) * d for k, d in zip(kernel, dilations)]
            return {"pads": [t // 2 for t in tot] + [t - t // 2 for t in tot]}
        if all(d == 1 for d in dilations):
            return {"auto_pad": "SAME_UPPER"}
        dims = None if x_cf is None or x_cf.shape is None else x_cf.shape[2:]
        if dims is None or None in dims:
            raise LayerUnsupported("'same' padding with both strides and dilation needs static "
                                   "spatial input dims")
        pp = [layout.keras_same_pads(n, k, s, d)
              for n, k, s, d in zip(dims, kernel, strides, dilations)]
        return {"pads": [p[0] for p in pp] + [p[1] for p in pp]}
    if padding == "causal":     # left pad only (Conv1D)
        return {"pads": [(kernel[0] - 1) * dilations[0], 0]}
    raise LayerUnsupported(f"padding {padding!r} is not supported")


def _finish(ctx, node, y_cf, hint):
    """Activation (elementwise ones in channels-first), then back to the layer's format."""
    act = node.config.get("activation")
    name, _ = activation_name(act)
    if name in AXIS_ACTIVATIONS:
        return apply_activation(ctx, from_cf(ctx, y_cf, node.config, hint), act, hint=hint)
    y_cf = apply_activation(ctx, y_cf, act, hint=hint)
    return from_cf(ctx, y_cf, node.config, hint)


def _check_conv(node, opset):
    cfg = node.config
    problems = []
    pad = cfg.get("padding", "valid")
    if pad not in ("valid", "same", "causal"):
        problems.append(f"padding {pad!r} is not supported")
    if pad == "causal" and node.op not in ("Conv1D", "SeparableConv1D", "DepthwiseConv1D"):
        problems.append("causal padding is only defined for 1D convolutions")
    p = activation_problem(cfg.get("activation"))
    if p:
        problems.append(p)
    return "; ".join(problems) or None


def _spatial_out(x_cf, cfg_kernel, strides, dil, padding, channels):
    if x_cf.shape is None:
        return None
    spatial = [_out_len(n, k, s, d, padding)
               for n, k, s, d in zip(x_cf.shape[2:], cfg_kernel, strides, dil)]
    return (x_cf.shape[0], channels) + tuple(spatial)


class _ConvArgs:
    """The preamble every convolution handler shares: the layer's weights, its spatial
    rank `n`, kernel size, strides, dilations and padding, and the input in channels-first
    layout (`xc`)."""

    def __init__(self, node, ctx, inputs):
        cfg = node.config
        self.node, self.ctx = node, ctx
        self.ws = ctx.weights(node)
        self.n = n = self.ws[0].ndim - 2
        self.kernel = self.ws[0].shape[:n]
        self.strides = _tuple(cfg.get("strides", 1), n)
        self.dil = _tuple(cfg.get("dilation_rate", 1), n)
        self.padding = cfg.get("padding", "valid")
        self.xc = to_cf(ctx, inputs[0], cfg, node.name)

    def param(self, name, index, to_onnx):
        """Weight `index`, converted to the ONNX layout, as the initializer `name`."""
        w = self.ws[index]
        return self.ctx.param(self.node, name, lambda: to_onnx(w).astype(np.float32))

    def with_bias(self, conv_in, index):
        """`conv_in` plus the bias (weight `index`) when the layer has one."""
        if self.node.config.get("use_bias", True) and len(self.ws) > index:
            conv_in.append(self.param("bias", index, np.asarray))
        return conv_in

    def conv(self, conv_in, channels, group):
        """The strided, dilated, padded Conv over `xc` with `channels` output channels."""
        k, s, d, x = self.kernel, self.strides, self.dil, self.xc
        return self.ctx.op("Conv", conv_in, _spatial_out(x, k, s, d, self.padding, channels),
                           hint=self.node.name, kernel_shape=list(k), strides=list(s),
                           dilations=list(d), group=group,
                           **_pad_attrs(self.padding, k, s, d, x))


@export_handler("Conv1D", "Conv2D", "Conv3D", check=_check_conv)
def conv(node, ctx, inputs):
    a = _ConvArgs(node, ctx, inputs)
    W = a.param("kernel", 0, layout.conv_kernel_to_onnx)
    y = a.conv(a.with_bias([a.xc, W], 1), a.ws[0].shape[-1],
               int(node.config.get("groups", 1) or 1))
    return [_finish(ctx, node, y, node.name)]


def _depthwise(a, conv_in):
    cin, mult = a.ws[0].shape[-2:]
    return a.conv(conv_in, cin * mult, int(cin))


@export_handler("DepthwiseConv1D", "DepthwiseConv2D", check=_check_conv)
def depthwise_conv(node, ctx, inputs):
    a = _ConvArgs(node, ctx, inputs)
    W = a.param("depthwise_kernel", 0, layout.depthwise_kernel_to_onnx)
    y = _depthwise(a, a.with_bias([a.xc, W], 1))
    return [_finish(ctx, node, y, node.name)]


@export_handler("SeparableConv1D", "SeparableConv2D", check=_check_conv)
def separable_conv(node, ctx, inputs):
    """Depthwise conv (strides, padding, dilation) then a 1x1 pointwise conv with the bias."""
    a = _ConvArgs(node, ctx, inputs)
    d = _depthwise(a, [a.xc, a.param("depthwise_kernel", 0, layout.depthwise_kernel_to_onnx)])
    Wp = a.param("pointwise_kernel", 1, layout.conv_kernel_to_onnx)
    filters = a.ws[1].shape[-1]
    shape = None if d.shape is None else (d.shape[0], filters) + d.shape[2:]
    y = ctx.op("Conv", a.with_bias([d, Wp], 2), shape, hint=node.name, kernel_shape=[1] * a.n)
    return [_finish(ctx, node, y, node.name)]


def _check_conv_transpose(node, opset):
    cfg = node.config
    if cfg.get("padding", "valid") not in ("valid", "same"):
        return f"padding {cfg.get('padding')!r} is not supported"
    return activation_problem(cfg.get("activation"))


@export_handler("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
                check=_check_conv_transpose)
def conv_transpose(node, ctx, inputs):
    a = _ConvArgs(node, ctx, inputs)
    n, kernel, strides, dil, xc = a.n, a.kernel, a.strides, a.dil, a.xc
    filters = a.ws[0].shape[n]
    out_pad = _tuple(node.config.get("output_padding"), n) or (None,) * n
    geo = [layout.conv_transpose_pads(k, s, d, a.padding, op)
           for k, s, d, op in zip(kernel, strides, dil, out_pad)]
    pads = [g[0] for g in geo] + [g[1] for g in geo]
    extra = [g[2] for g in geo]
    W = a.param("kernel", 0, layout.conv_transpose_kernel_to_onnx)
    shape = None
    if xc.shape is not None:
        spatial = [None if L is None else (L - 1) * s + (k - 1) * d + 1 + e - pb - pe
                   for L, s, k, d, e, pb, pe in zip(xc.shape[2:], strides, kernel, dil, extra,
                                                     pads[:n], pads[n:])]
        shape = (xc.shape[0], filters) + tuple(spatial)
    y = ctx.op("ConvTranspose", a.with_bias([xc, W], 1), shape, hint=node.name,
               kernel_shape=list(kernel), strides=list(strides), dilations=list(dil), pads=pads,
               output_padding=extra if any(extra) else None)
    return [_finish(ctx, node, y, node.name)]


# -- pooling ---------------------------------------------------------------------------------

def _check_pool(node, opset):
    pad = node.config.get("padding", "valid")
    return None if pad in ("valid", "same") else f"padding {pad!r} is not supported"


def _pool(node, ctx, inputs, op_type, n):
    cfg = node.config
    x = inputs[0]
    pool = _tuple(cfg.get("pool_size", 2), n)
    strides = _tuple(cfg.get("strides"), n) or pool
    padding = cfg.get("padding", "valid")
    xc = to_cf(ctx, x, cfg, node.name)
    shape = None
    if xc.shape is not None:
        shape = xc.shape[:2] + tuple(_out_len(L, k, s, 1, padding)
                                     for L, k, s in zip(xc.shape[2:], pool, strides))
    attrs = dict(kernel_shape=list(pool), strides=list(strides))
    if padding == "same":
        attrs["auto_pad"] = "SAME_UPPER"
        if op_type == "AveragePool":
            attrs["count_include_pad"] = 0   # Keras averages over the real elements only
    y = ctx.op(op_type, [xc], shape, hint=node.name, **attrs)
    return [from_cf(ctx, y, cfg, node.name)]


def _register_pools():
    for n in (1, 2, 3):
        for keras_name, op_type in (("MaxPooling", "MaxPool"), ("AveragePooling", "AveragePool")):
            def handler(node, ctx, inputs, op_type=op_type, n=n):
                return _pool(node, ctx, inputs, op_type, n)
            export_handler(f"{keras_name}{n}D", check=_check_pool)(handler)
    for n in (1, 2, 3):
        for keras_name, op_type in (("GlobalMaxPooling", "ReduceMax"),
                                    ("GlobalAveragePooling", "ReduceMean")):
            def handler(node, ctx, inputs, op_type=op_type):
                return _global_pool(node, ctx, inputs, op_type)
            export_handler(f"{keras_name}{n}D")(handler)


def _global_pool(node, ctx, inputs, op_type):
    cfg = node.config
    x = inputs[0]
    r = x.rank
    axes = list(range(1, r - 1)) if _channels_last(cfg) else list(range(2, r))
    keep = bool(cfg.get("keepdims", False))
    mask = ctx.masks.get(x.name)
    if mask is not None and op_type == "ReduceMean" and r == 3:
        # Keras 2 GlobalAveragePooling1D with a mask averages over the unmasked steps only.
        m = ctx.cast(mask, x.dtype)
        m = ctx.unsqueeze(m, [2] if _channels_last(cfg) else [1])
        s = ctx.reduce("ReduceSum", ctx.op("Mul", [x, m], x.shape), axes, keep)
        cnt = ctx.reduce("ReduceSum", m, axes, keep)
        return [ctx.op("Div", [s, cnt], s.shape, hint=node.name)]
    return [ctx.reduce(op_type, x, axes, keep, hint=node.name)]


_register_pools()


# -- padding / cropping / upsampling -----------------------------------------------------------

def _pairs(v, n):
    """Keras padding/cropping config -> [(before, after)] * n."""
    if isinstance(v, (int, np.integer)):
        return [(int(v), int(v))] * n
    v = list(v)
    if n == 1 and len(v) == 2 and all(isinstance(a, (int, np.integer)) for a in v):
        return [(int(v[0]), int(v[1]))]
    out = []
    for a in v:
        if isinstance(a, (int, np.integer)):
            out.append((int(a), int(a)))
        else:
            out.append((int(a[0]), int(a[1])))
    return out


def _spatial_axes(cfg, rank, n):
    if n == 1:                           # (batch, steps, features) unless said otherwise
        return [2] if cfg.get("data_format") == "channels_first" else [1]
    return list(range(1, 1 + n)) if _channels_last(cfg) else list(range(2, 2 + n))


def _zero_padding(node, ctx, inputs, n):
    x = inputs[0]
    pairs = _pairs(node.config.get("padding", 1), n)
    axes = _spatial_axes(node.config, x.rank, n)
    begin = [0] * x.rank
    end = [0] * x.rank
    for a, (b, e) in zip(axes, pairs):
        begin[a], end[a] = b, e
    shape = None
    if x.shape is not None:
        shape = tuple(None if d is None else d + begin[i] + end[i] for i, d in enumerate(x.shape))
    return [ctx.op("Pad", [x, ctx.ints(begin + end)], shape, hint=node.name, mode="constant")]


def _cropping(node, ctx, inputs, n):
    x = inputs[0]
    pairs = _pairs(node.config.get("cropping", 1), n)
    axes = _spatial_axes(node.config, x.rank, n)
    starts = [b for b, _ in pairs]
    ends = [(-e if e else 2 ** 63 - 1) for _, e in pairs]
    shape = None
    if x.shape is not None:
        shape = list(x.shape)
        for a, (b, e) in zip(axes, pairs):
            shape[a] = None if shape[a] is None else shape[a] - b - e
    return [ctx.op("Slice", [x, ctx.ints(starts), ctx.ints(ends), ctx.ints(axes)], shape,
                   hint=node.name)]


def _check_upsampling(node, opset):
    interp = node.config.get("interpolation", "nearest")
    if interp not in ("nearest", "bilinear"):
        return f"interpolation {interp!r} is not supported (nearest, bilinear are)"
    return None


def _upsampling(node, ctx, inputs, n):
    cfg = node.config
    x = inputs[0]
    size = _tuple(cfg.get("size", 2), n)
    axes = _spatial_axes(cfg, x.rank, n)
    interp = cfg.get("interpolation", "nearest")
    if interp == "bilinear":
        # TF2 resize (half-pixel centers, no antialias when upsampling) on NCHW.
        xc = to_cf(ctx, x, cfg, node.name)
        scales = [1.0, 1.0] + [float(s) for s in size]
        shape = None if xc.shape is None else xc.shape[:2] + tuple(
            None if d is None else d * s for d, s in zip(xc.shape[2:], size))
        y = ctx.op("Resize", [xc, "", ctx.const(np.array(scales, np.float32), "scales")],
                   shape, hint=node.name, mode="linear",
                   coordinate_transformation_mode="half_pixel")
        return [from_cf(ctx, y, cfg, node.name)]
    # nearest: repeat each element `size` times along each spatial axis (Keras repeat_elements)
    y = x
    for a, s in zip(axes, size):
        if s == 1:
            continue
        y = _repeat_axis(ctx, y, a, s, node.name)
    return [y]


def _repeat_axis(ctx, x, axis, times, hint):
    """Repeat each slice along `axis` `times` times: Unsqueeze, Tile, Reshape (dynamic dims ok)."""
    r = x.rank
    u = ctx.unsqueeze(x, [axis + 1])
    reps = [1] * (r + 1)
    reps[axis + 1] = times
    t_shape = None if u.shape is None else tuple(
        (None if d is None else d * reps[i]) for i, d in enumerate(u.shape))
    t = ctx.op("Tile", [u, ctx.ints(reps)], t_shape)
    target = [0] * r
    target[axis] = -1
    shape = None if x.shape is None else tuple(
        (None if d is None else d * times) if i == axis else d for i, d in enumerate(x.shape))
    # 0 copies a dim from the tiled tensor, which equals x's dims before `axis` only;
    # after it use explicit sizes.
    if any(x.shape[i] is None for i in range(axis + 1, r)):
        tail = ctx.shape_of(x, start=axis + 1)
        head = ctx.shape_of(x, start=0, end=axis)
        dyn = ctx.op("Concat", [head, ctx.ints([-1]), tail], (r,), dtype="int64", axis=0)
        return ctx.op("Reshape", [t, dyn], shape, hint=hint)
    target = [0] * axis + [-1] + [int(x.shape[i]) for i in range(axis + 1, r)]
    return ctx.reshape(t, target, shape, hint=hint)


def _register_shape_layers():
    for n in (1, 2, 3):
        export_handler(f"ZeroPadding{n}D")(lambda node, ctx, ins, n=n: _zero_padding(node, ctx, ins, n))
        export_handler(f"Cropping{n}D")(lambda node, ctx, ins, n=n: _cropping(node, ctx, ins, n))
        export_handler(f"UpSampling{n}D", check=_check_upsampling)(
            lambda node, ctx, ins, n=n: _upsampling(node, ctx, ins, n))


_register_shape_layers()

"""Fused convolution, pooling and upsampling ops (numpy, any number of spatial dims).

Every op works on channels-last arrays `(batch, *spatial, channels)`; with
`channels_first=True` the op reads `(batch, channels, *spatial)` through a transposed
*view* (no copy: the im2col copy that follows reads it in place) and returns a transposed
view of its channels-last result, so consecutive channels_first layers never pay for a
transpose pass.

- `conv`: im2col (a stride-tricks window view, copied once into a `(M, K*C)` matrix) and
  one GEMM per group. Its VJP is two GEMMs and a col2im made of strided adds, one per
  kernel offset (never a loop over pixels).
- `conv_transpose`: the adjoint of `conv` (GEMM then col2im forward, im2col + GEMM back).
- `depthwise_conv`: one multiply-accumulate pass per kernel offset.
- `pool_max` / `pool_avg`: one pass per window offset; max pooling records the arg-max
  offset so the gradient goes to the first maximum of each window, as TensorFlow's does.
- `upsample_nearest`, `upsample_bilinear` (TF2 `resize`, half-pixel centres).

Padding follows TensorFlow/Keras: 'same' pads `max((out-1)*stride + (k-1)*dilation + 1 - in, 0)`
in total with the odd pixel at the end; 'causal' pads `(k-1)*dilation` at the start.
"""

import itertools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..onnx_spec import bilinear_matrix

from ..errors import ConfigError, ShapeError
from . import conv_fast, parallel, pool_fast
from .tape import defop
from .layout import empty_ordered_like

# ---------------------------------------------------------------------------------------
# geometry helpers (also used by the layers for compute_output_shape)


def normalize_tuple(value, n, name):
    """An int or a sequence of n ints -> a tuple of n ints."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(out) == 1 and n > 1:
        out = out * n
    if len(out) != n:
        raise ConfigError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    return out


def effective_kernel(k, d):
    return (k - 1) * d + 1


def same_pads(length, k, s, d):
    """TF 'SAME': total = max((ceil(L/s)-1)*s + (k-1)*d + 1 - L, 0), extra pixel at the end."""
    out = -(-length // s)
    total = max((out - 1) * s + effective_kernel(k, d) - length, 0)
    return (total // 2, total - total // 2)


def conv_pads(spatial, kernel, strides, dilation, padding):
    """Per-dim (before, after) pads for 'valid' / 'same' / 'causal' or explicit pairs."""
    if isinstance(padding, str):
        if padding == "valid":
            return tuple((0, 0) for _ in spatial)
        if padding == "same":
            return tuple(same_pads(L, k, s, d)
                         for L, k, s, d in zip(spatial, kernel, strides, dilation))
        if padding == "causal":
            return tuple((effective_kernel(k, d) - 1, 0) for k, d in zip(kernel, dilation))
        raise ConfigError(f"padding must be 'valid', 'same' or 'causal', got {padding!r}")
    return tuple((int(b), int(a)) for b, a in padding)


def conv_output_length(length, k, padding, s, d=1):
    """Keras conv_utils.conv_output_length (None stays None)."""
    if length is None:
        return None
    dk = effective_kernel(k, d)
    if padding in ("same", "causal"):
        out = length
    elif padding == "valid":
        out = length - dk + 1
    else:
        raise ConfigError(f"padding must be 'valid', 'same' or 'causal', got {padding!r}")
    return (out + s - 1) // s


def deconv_output_length(length, k, padding, output_padding, s, d=1):
    """Keras conv_utils.deconv_output_length (None stays None)."""
    if length is None:
        return None
    dk = effective_kernel(k, d)
    if output_padding is None:
        if padding == "valid":
            return length * s + max(dk - s, 0)
        return length * s
    pad = dk // 2 if padding == "same" else 0
    return (length - 1) * s + dk - 2 * pad + output_padding


def _pad(x, pads, value=0.0):
    """Pad the spatial axes 1..n of a channels-last array (one allocation, one copy)."""
    if not any(b or a for b, a in pads):
        return x
    shape = (x.shape[0],) + tuple(L + b + a for L, (b, a) in zip(x.shape[1:-1], pads)) + \
        (x.shape[-1],)
    out = empty_ordered_like(shape, x.strides, x.dtype, zero=not value)   # x's memory order
    if value:
        out.fill(value)
    out[_interior(x.shape, pads)] = x
    return out


def _interior(shape, pads):
    return (slice(None),) + tuple(slice(b, b + L) for L, (b, _) in zip(shape[1:-1], pads)) + \
        (slice(None),)


def _offset_slices(offset, strides, dilation, out):
    """Index of the input positions that kernel offset `offset` sees, one per output."""
    return (slice(None),) + tuple(slice(i * d, i * d + s * (o - 1) + 1, s)
                                  for i, s, d, o in zip(offset, strides, dilation, out)) + \
        (Ellipsis,)


def _windows(xp, kernel, strides, dilation, out):
    """View (N, *out, *kernel, C) of all windows of the padded channels-last array xp."""
    st = xp.strides
    n = len(kernel)
    shape = (xp.shape[0],) + tuple(out) + tuple(kernel) + (xp.shape[-1],)
    strides_ = (st[0],) + tuple(st[1 + i] * strides[i] for i in range(n)) + \
        tuple(st[1 + i] * dilation[i] for i in range(n)) + (st[-1],)
    return as_strided(xp, shape=shape, strides=strides_, writeable=False)


def _out_shape(padded, kernel, strides, dilation, what):
    out = []
    for L, k, s, d in zip(padded, kernel, strides, dilation):
        span = effective_kernel(k, d)
        if L < span:
            raise ShapeError(f"{what}: the (padded) input has spatial size {tuple(padded)}, "
                             f"smaller than the kernel's extent {span} (kernel {tuple(kernel)}, "
                             f"dilation {tuple(dilation)})")
        out.append((L - span) // s + 1)
    return tuple(out)


def _to_last(x, channels_first):
    return np.moveaxis(x, 1, -1) if channels_first else x


def _from_last(y, channels_first):
    return np.moveaxis(y, -1, 1) if channels_first else y


# ---------------------------------------------------------------------------------------
# convolution


@defop("conv")
def _conv(x, kernel, bias=None, strides=None, dilation=None, padding="valid", groups=1,
          channels_first=False, relu=False):
    """N-d convolution; kernel (*k, C_in/groups, C_out) as in Keras; optional bias (C_out,);
    `relu=True` applies max(y, 0) in place (Keras's default relu, fused)."""
    n = kernel.ndim - 2
    strides = strides or (1,) * n
    dilation = dilation or (1,) * n
    xl = _to_last(x, channels_first)
    ksize = kernel.shape[:n]
    cin, cout = xl.shape[-1], kernel.shape[-1]
    cg = kernel.shape[-2]
    if cin != cg * groups:
        raise ShapeError(f"conv: input has {cin} channels, the kernel {kernel.shape} expects "
                         f"{cg * groups} ({groups} group(s) of {cg})")
    pads = conv_pads(xl.shape[1:-1], ksize, strides, dilation, padding)
    if conv_fast.usable(xl, kernel, groups):                      # float32: MLAS kernels
        padded = tuple(L + b + a for L, (b, a) in zip(xl.shape[1:-1], pads))
        out = _out_shape(padded, ksize, strides, dilation, "conv")
        return conv_fast.conv(x, kernel, bias, strides, dilation, pads, out, channels_first,
                              relu)
    xp = _pad(xl, pads)
    out = _out_shape(xp.shape[1:-1], ksize, strides, dilation, "conv")
    kp = int(np.prod(ksize))
    win = _windows(xp, ksize, strides, dilation, out)             # (N, *out, *k, C)
    m = xl.shape[0] * int(np.prod(out))
    if groups == 1:
        cols = win.reshape(m, kp * cin)                           # the one im2col copy
        y = cols @ kernel.reshape(kp * cin, cout)
    else:
        cog = cout // groups
        win = win.reshape(win.shape[:-1] + (groups, cg))
        win = np.moveaxis(win, -2, 0)                             # (G, N, *out, *k, cg)
        cols = win.reshape(groups, m, kp * cg)
        wg = kernel.reshape(kp * cg, groups, cog).transpose(1, 0, 2)
        y = np.matmul(cols, wg).transpose(1, 0, 2).reshape(m, cout)
    if bias is not None:
        y += bias
    if relu:
        np.maximum(y, 0, out=y)
    y = y.reshape((xl.shape[0],) + out + (cout,))
    saved = (cols, kernel, xl.shape, xp.shape, pads, out, strides, dilation, groups,
             channels_first, bias is not None, y if relu else None)
    return _from_last(y, channels_first), saved


@_conv.defvjp
def _(g, s, needs):
    if isinstance(s, conv_fast.Saved):
        return conv_fast.conv_vjp(g, s, needs)
    (cols, kernel, xshape, xpshape, pads, out, strides, dilation, groups, cf, has_bias,
     relu_out) = s
    n = len(out)
    ksize = kernel.shape[:n]
    kp = int(np.prod(ksize))
    cg, cout = kernel.shape[-2], kernel.shape[-1]
    gl = _to_last(g, cf)
    m = cols.shape[-2]
    if relu_out is not None:
        gl = gl * (relu_out > 0)                  # channels-last result, contiguous
    g2 = gl.reshape(m, cout)                      # copies only for channels_first
    gx = gk = gb = None
    if groups == 1:
        if needs[1]:
            gk = (cols.T @ g2).reshape(kernel.shape)
        if needs[0]:
            gx = _input_grad(g2, kernel, xshape, xpshape, pads, strides, dilation, out)
    else:
        cog = cout // groups
        gg = g2.reshape(m, groups, cog).transpose(1, 0, 2)        # (G, M, cog)
        if needs[1]:
            gk = np.matmul(cols.transpose(0, 2, 1), gg)             # (G, kp*cg, cog)
            gk = gk.transpose(1, 0, 2).reshape(kernel.shape)
        if needs[0]:
            wg = kernel.reshape(kp * cg, groups, cog).transpose(1, 2, 0)   # (G, cog, kp*cg)
            dcols = np.matmul(gg, wg)                               # (G, M, kp*cg)
            dcols = dcols.reshape((groups, xshape[0]) + out + tuple(ksize) + (cg,))
            dcols = np.moveaxis(dcols, 0, -2)                       # (N, *out, *k, G, cg)
            dcols = dcols.reshape(dcols.shape[:-2] + (groups * cg,))
            gx = _col2im(dcols, xshape, xpshape, pads, ksize, strides, dilation, out)
    if has_bias and len(needs) > 2 and needs[2]:
        gb = parallel.ones(m, g2.dtype) @ g2          # a GEMV: faster than sum(axis=0)
    if gx is not None:
        gx = _from_last(gx, cf)
    return gx, gk, gb


def _input_grad(g2, kernel, xshape, xpshape, pads, strides, dilation, out):
    """Input gradient of an ungrouped conv.

    Stride 1: a "full" convolution of the zero-padded output gradient with the flipped,
    transposed kernel -- one im2col copy and one GEMM straight into dx, no scatter.
    Strides > 1 (that would convolve mostly zeros): per kernel offset, one GEMM
    (M, C_out) @ (C_out, C_in) into a reused buffer, then one strided add of that block.
    """
    n = len(out)
    ksize = kernel.shape[:n]
    if all(s == 1 for s in strides) and all(max(b, a) <= (k - 1) * d for k, d, (b, a)
                                            in zip(ksize, dilation, pads)):
        cin, cout = kernel.shape[-2], kernel.shape[-1]
        # dx[l] = sum_j gpad[l + j*d] . W[k-1-j]^T, gpad = g padded by (k-1)*d - pad_before
        # in front and (k-1)*d - pad_after behind
        gpads = tuple(((k - 1) * d - b, (k - 1) * d - a)
                      for k, d, (b, a) in zip(ksize, dilation, pads))
        gp = _pad(g2.reshape((xshape[0],) + tuple(out) + (cout,)), gpads)
        spatial = tuple(xshape[1:-1])
        cols = _windows(gp, ksize, (1,) * n, dilation, spatial)
        cols = cols.reshape(-1, int(np.prod(ksize)) * cout)          # im2col copy
        flipped = kernel[(slice(None, None, -1),) * n]                # (*k, C_in, C_out)
        wf = np.swapaxes(flipped, -1, -2).reshape(-1, cin)            # (k*C_out, C_in)
        return (cols @ wf).reshape(xshape)
    ksize = kernel.shape[:n]
    cin = kernel.shape[-2]
    w = kernel.reshape((-1,) + kernel.shape[-2:])               # (kp, C_in, C_out)
    dtype = np.result_type(g2, kernel)
    dxp = np.zeros(xpshape, dtype=dtype)
    tmp = np.empty((g2.shape[0], cin), dtype=dtype)
    block = (xshape[0],) + tuple(out) + (cin,)
    for k, offset in enumerate(itertools.product(*(range(kk) for kk in ksize))):
        np.matmul(g2, w[k].T, out=tmp)
        dxp[_offset_slices(offset, strides, dilation, out)] += tmp.reshape(block)
    if any(b or a for b, a in pads):
        return dxp[_interior(xshape, pads)]
    return dxp


def _col2im(dcols, xshape, xpshape, pads, ksize, strides, dilation, out):
    """Sum window gradients (N, *out, *k, C) back onto the input: one strided add per
    kernel offset, then drop the padding."""
    n = len(ksize)
    dxp = np.zeros(xpshape, dtype=dcols.dtype)
    lead = (slice(None),) * (1 + n)
    for offset in itertools.product(*(range(k) for k in ksize)):
        dxp[_offset_slices(offset, strides, dilation, out)] += dcols[lead + offset]
    if any(b or a for b, a in pads):
        return dxp[_interior(xshape, pads)]
    return dxp


@defop("conv_transpose")
def _conv_transpose(x, kernel, bias=None, strides=None, dilation=None, output_shape=None,
                    pad_before=None, channels_first=False):
    """Transposed convolution (the adjoint of `conv`); kernel (*k, C_out, C_in) as in Keras.

    The full result has length (L-1)*s + (k-1)*d + 1 per dim; the output is its window
    [pad_before, pad_before + output_shape) (zeros past the end), as TF computes it.
    """
    n = kernel.ndim - 2
    strides = strides or (1,) * n
    dilation = dilation or (1,) * n
    xl = _to_last(x, channels_first)
    ksize = kernel.shape[:n]
    cout, cin = kernel.shape[-2], kernel.shape[-1]
    if xl.shape[-1] != cin:
        raise ShapeError(f"conv_transpose: input has {xl.shape[-1]} channels, the kernel "
                         f"{kernel.shape} expects {cin}")
    spatial = xl.shape[1:-1]
    pad_before = tuple(pad_before or (0,) * n)
    full = tuple((L - 1) * s + effective_kernel(k, d)
                 for L, k, s, d in zip(spatial, ksize, strides, dilation))
    output_shape = tuple(output_shape or full)
    ext = tuple(max(f, b + o) for f, b, o in zip(full, pad_before, output_shape))
    kp = int(np.prod(ksize))
    m = xl.shape[0] * int(np.prod(spatial))
    x2 = xl.reshape(m, cin)
    w2 = kernel.reshape(kp * cout, cin)
    cols = (x2 @ w2.T).reshape((xl.shape[0],) + spatial + tuple(ksize) + (cout,))
    yext = np.zeros((xl.shape[0],) + ext + (cout,), dtype=cols.dtype)
    lead = (slice(None),) * (1 + n)
    for offset in itertools.product(*(range(k) for k in ksize)):
        yext[_offset_slices(offset, strides, dilation, spatial)] += cols[lead + offset]
    crop = (slice(None),) + tuple(slice(b, b + o) for b, o in zip(pad_before, output_shape))
    y = yext[crop]
    if bias is not None:
        y = y + bias
    elif y.shape != yext.shape:
        y = np.ascontiguousarray(y)
    saved = (x2, kernel, xl.shape, ext, pad_before, output_shape, strides, dilation,
             channels_first, bias is not None)
    return _from_last(y, channels_first), saved


@_conv_transpose.defvjp
def _(g, s, needs):
    x2, kernel, xshape, ext, pad_before, output_shape, strides, dilation, cf, has_bias = s
    n = len(ext)
    ksize = kernel.shape[:n]
    kp = int(np.prod(ksize))
    cout, cin = kernel.shape[-2], kernel.shape[-1]
    gl = _to_last(g, cf)
    gext = np.zeros((xshape[0],) + ext + (cout,), dtype=g.dtype)
    gext[(slice(None),) + tuple(slice(b, b + o) for b, o in zip(pad_before, output_shape))] = gl
    spatial = xshape[1:-1]
    gcols = _windows(gext, ksize, strides, dilation, spatial).reshape(x2.shape[0], kp * cout)
    w2 = kernel.reshape(kp * cout, cin)
    gx = gk = gb = None
    if needs[0]:
        gx = _from_last((gcols @ w2).reshape(xshape), cf)
    if needs[1]:
        gk = (gcols.T @ x2).reshape(kernel.shape)
    if has_bias and len(needs) > 2 and needs[2]:
        gb = gl.reshape(-1, cout).sum(axis=0)
    return gx, gk, gb


@defop("depthwise_conv")
def _depthwise_conv(x, kernel, bias=None, strides=None, dilation=None, padding="valid",
                    channels_first=False):
    """Depthwise convolution; kernel (*k, C_in, depth_multiplier); output channel c*dm + j."""
    n = kernel.ndim - 2
    strides = strides or (1,) * n
    dilation = dilation or (1,) * n
    xl = _to_last(x, channels_first)
    ksize = kernel.shape[:n]
    cin, dm = kernel.shape[-2], kernel.shape[-1]
    if xl.shape[-1] != cin:
        raise ShapeError(f"depthwise_conv: input has {xl.shape[-1]} channels, the kernel "
                         f"{kernel.shape} expects {cin}")
    pads = conv_pads(xl.shape[1:-1], ksize, strides, dilation, padding)
    xp = _pad(xl, pads)
    out = _out_shape(xp.shape[1:-1], ksize, strides, dilation, "depthwise_conv")
    acc = np.zeros((xl.shape[0],) + out + (cin, dm), dtype=np.result_type(x, kernel))
    tmp = np.empty_like(acc)
    for offset in itertools.product(*(range(k) for k in ksize)):
        v = xp[_offset_slices(offset, strides, dilation, out)]
        np.multiply(v[..., None], kernel[offset], out=tmp)
        acc += tmp
    y = acc.reshape((xl.shape[0],) + out + (cin * dm,))
    if bias is not None:
        y += bias
    saved = (xp, kernel, xl.shape, pads, out, strides, dilation, channels_first,
             bias is not None)
    return _from_last(y, channels_first), saved


@_depthwise_conv.defvjp
def _(g, s, needs):
    xp, kernel, xshape, pads, out, strides, dilation, cf, has_bias = s
    n = len(out)
    ksize = kernel.shape[:n]
    cin, dm = kernel.shape[-2], kernel.shape[-1]
    gl = _to_last(g, cf)
    g4 = gl.reshape(gl.shape[:-1] + (cin, dm))
    gx = gk = gb = None
    dxp = np.zeros(xp.shape, dtype=g.dtype) if needs[0] else None
    if needs[1]:
        gk = np.empty_like(kernel)
    lead = "npqrs"[:n + 1]
    for offset in itertools.product(*(range(k) for k in ksize)):
        sl = _offset_slices(offset, strides, dilation, out)
        if needs[1]:
            gk[offset] = np.einsum(f"{lead}c,{lead}cm->cm", xp[sl], g4)
        if needs[0]:
            dxp[sl] += np.einsum(f"{lead}cm,cm->{lead}c", g4, kernel[offset])
    if needs[0]:
        gx = dxp[_interior(xshape, pads)] if any(b or a for b, a in pads) else dxp
        gx = _from_last(gx, cf)
    if has_bias and len(needs) > 2 and needs[2]:
        gb = gl.reshape(-1, cin * dm).sum(axis=0)
    return gx, gk, gb


# ---------------------------------------------------------------------------------------
# pooling


def _pool_setup(xl, pool, strides, padding, what):
    n = len(pool)
    pads = conv_pads(xl.shape[1:-1], pool, strides, (1,) * n, padding)
    if padding == "causal":
        raise ConfigError(f"{what}: padding must be 'valid' or 'same', got 'causal'")
    padded = tuple(L + b + a for L, (b, a) in zip(xl.shape[1:-1], pads))
    out = _out_shape(padded, pool, strides, (1,) * n, what)
    return pads, out


@defop("pool_max")
def _pool_max(x, pool=None, strides=None, padding="valid", channels_first=False):
    """Max pooling (TF semantics: 'same' windows ignore the padding)."""
    xl = _to_last(x, channels_first)
    n = xl.ndim - 2
    pool = tuple(pool)
    strides = tuple(strides or pool)
    pads, out = _pool_setup(xl, pool, strides, padding, "pool_max")
    if pool_fast.usable(x, pads, channels_first):               # float32: MLAS MaxPool
        return pool_fast.pool_max(x, pool, strides, out, channels_first)
    neg = -np.inf if np.issubdtype(xl.dtype, np.floating) else np.iinfo(xl.dtype).min
    xp = _pad(xl, pads, value=neg)
    offsets = list(itertools.product(*(range(k) for k in pool)))
    ones = (1,) * n
    views = [xp[_offset_slices(offset, strides, ones, out)] for offset in offsets]
    best = np.empty_like(views[0])                                    # x's memory order
    arg = np.zeros_like(best, dtype=np.uint8 if len(offsets) < 256 else np.int32)

    def images(lo, hi):                       # blocks of images on the worker threads
        b, a = best[lo:hi], arg[lo:hi]
        np.copyto(b, views[0][lo:hi])
        upd = np.empty_like(b, dtype=bool)
        for k, v in enumerate(views[1:], start=1):
            v = v[lo:hi]
            np.greater(v, b, out=upd)         # strictly greater: ties keep the first offset
            np.maximum(b, v, out=b)
            np.putmask(a, upd, k)

    parallel.map_blocks(images, xp.shape[0], xp[:1].nbytes)
    saved = (arg, xl.shape, xp.shape, pads, pool, strides, out, channels_first)
    return _from_last(best, channels_first), saved


@_pool_max.defvjp
def _(g, s, needs):
    if isinstance(s, pool_fast.Saved):
        return (pool_fast.pool_max_vjp(g, s),)
    arg, xshape, xpshape, pads, pool, strides, out, cf = s
    gl = _to_last(g, cf)
    n = len(pool)
    ones = (1,) * n
    # Windows that tile the input exactly are written in place (each cell once); otherwise
    # accumulate into zeros.
    tiled = all(st == p and o * p == L for st, p, o, L in zip(strides, pool, out, xpshape[1:-1]))
    dxp = empty_ordered_like(xpshape, arg.strides, g.dtype, zero=not tiled)   # as x was
    slices = [_offset_slices(offset, strides, ones, out)
              for offset in itertools.product(*(range(p) for p in pool))]

    def images(lo, hi):                       # blocks of images on the worker threads
        d, gb, a = dxp[lo:hi], gl[lo:hi], arg[lo:hi]
        for k, sl in enumerate(slices):
            if tiled:
                np.multiply(gb, a == k, out=d[sl])
            else:
                d[sl] += gb * (a == k)

    parallel.map_blocks(images, dxp.shape[0], dxp[:1].nbytes)
    gx = dxp[_interior(xshape, pads)] if any(b or a for b, a in pads) else dxp
    return (_from_last(gx, cf),)


def _same_counts(xshape, pads, pool, strides, out, dtype):
    """Number of real (non-padded) cells in each 'same' window: separable per dim."""
    count = np.ones((), dtype=dtype)
    n = len(pool)
    for i, (L, (b, _), p, st, o) in enumerate(zip(xshape[1:-1], pads, pool, strides, out)):
        start = np.arange(o) * st - b
        c = (np.minimum(start + p, L) - np.maximum(start, 0)).astype(dtype)
        shape = [1] * (n + 2)
        shape[1 + i] = o
        count = count * c.reshape(shape)
    return count


@defop("pool_avg")
def _pool_avg(x, pool=None, strides=None, padding="valid", channels_first=False):
    """Average pooling; 'same' divides by the number of real cells (TF semantics)."""
    xl = _to_last(x, channels_first)
    n = xl.ndim - 2
    pool = tuple(pool)
    strides = tuple(strides or pool)
    pads, out = _pool_setup(xl, pool, strides, padding, "pool_avg")
    xp = _pad(xl, pads)
    ones = (1,) * n
    offsets = list(itertools.product(*(range(k) for k in pool)))
    acc = np.array(xp[_offset_slices(offsets[0], strides, ones, out)])
    for offset in offsets[1:]:
        acc += xp[_offset_slices(offset, strides, ones, out)]
    if any(b or a for b, a in pads):
        scale = 1.0 / _same_counts(xl.shape, pads, pool, strides, out, np.float64)
        scale = scale.astype(acc.dtype)
    else:
        scale = np.asarray(1.0 / len(offsets), dtype=acc.dtype)
    acc *= scale
    saved = (scale, xl.shape, xp.shape, pads, pool, strides, out, channels_first, acc.strides)
    return _from_last(acc, channels_first), saved


@_pool_avg.defvjp
def _(g, s, needs):
    scale, xshape, xpshape, pads, pool, strides, out, cf, order = s
    gl = _to_last(g, cf) * scale
    ones = (1,) * len(pool)
    dxp = empty_ordered_like(xpshape, order, g.dtype, zero=True)      # x's memory order
    for offset in itertools.product(*(range(p) for p in pool)):
        dxp[_offset_slices(offset, strides, ones, out)] += gl
    gx = dxp[_interior(xshape, pads)] if any(b or a for b, a in pads) else dxp
    return (_from_last(gx, cf),)


# ---------------------------------------------------------------------------------------
# upsampling


@defop("upsample_nearest")
def _upsample_nearest(x, axes=None, sizes=None):
    """Repeat every element `sizes[i]` times along `axes[i]` (Keras repeat_elements)."""
    axes = tuple(a % x.ndim for a in axes)
    factor = dict(zip(axes, sizes))
    expanded, target, final = [], [], []
    for i, d in enumerate(x.shape):
        expanded.append(d)
        target.append(d)
        if i in factor:
            expanded.append(1)
            target.append(factor[i])
            final.append(d * factor[i])
        else:
            final.append(d)
    y = np.broadcast_to(x.reshape(expanded), target).reshape(final)
    return y, (tuple(target), x.shape, axes)


@_upsample_nearest.defvjp
def _(g, s, needs):
    target, xshape, axes = s
    inserted = tuple(a + 1 + j for j, a in enumerate(sorted(axes)))
    return (g.reshape(target).sum(axis=inserted).reshape(xshape),)


@defop("upsample_bilinear")
def _upsample_bilinear(x, axes=None, sizes=None):
    """Bilinear resize by integer factors along `axes` (separable: one small GEMM per axis)."""
    mats = []
    y = x
    for a, f in zip(axes, sizes):
        a = a % x.ndim
        m = bilinear_matrix(y.shape[a], y.shape[a] * f, dtype=x.dtype)
        mats.append((a, m))
        y = np.moveaxis(np.tensordot(m, y, axes=(1, a)), 0, a)
    return np.ascontiguousarray(y), (mats,)


@_upsample_bilinear.defvjp
def _(g, s, needs):
    (mats,) = s
    for a, m in reversed(mats):
        g = np.moveaxis(np.tensordot(m.T, g, axes=(1, a)), 0, a)
    return (np.ascontiguousarray(g),)

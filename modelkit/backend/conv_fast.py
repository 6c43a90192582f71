"""Fast float32 convolution kernels for training: onnxruntime's MLAS for the forward pass and
the input gradient, a cache-blocked im2col + GEMM for the kernel gradient.

`conv_ops.conv` dispatches here when `usable(...)` says so (float32, one group, onnxruntime
importable, not switched off with MODELKIT_FAST_CONV=0); float64 and everything else keep
the exact numpy path, so the float64 gradient checks see the same code as before.

Layout. MLAS convolves channels-first (NCHW) arrays. The forward pass hands back a
channels-last *view* of its NCHW result (`np.moveaxis`, no copy); numpy's elementwise ops
keep that memory order, so the next convolution usually finds its input already NCHW in
memory and converts nothing. Whatever layout arrives, `_nchw` makes one copy at most.

- forward: one cached InferenceSession per (shapes, strides, dilation, pads, bias, relu).
  2D convolutions whose channel counts fit MLAS's channel blocks (8 or 16 wide, probed once)
  run MLAS's direct NCHWc kernel (`com.microsoft.nchwc.Conv`, the kernel onnxruntime itself
  picks for constant weights; here the kernel is a graph input that `_blocked_filter`
  reorders in numpy each step, input and output reordered by MLAS); other shapes run ONNX
  `Conv`, or `com.microsoft.FusedConv` with Relu. Bias and relu are fused either way.
- input gradient: stride 1 is the "full" convolution of the output gradient with the
  flipped, transposed kernel (NCHWc when the channels fit); otherwise ONNX `ConvTranspose`
  of the output gradient with the same kernel, pads and strides (`output_padding` restores
  the rows a strided conv skipped).
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

from . import parallel

_ORT = None            # onnxruntime module, False when unavailable
_SESSIONS = OrderedDict()
_RUNS = [0]            # forward passes run here (see runs())
_MAX_SESSIONS = 64
_CHUNK_BYTES = 1 << 20  # im2col block of the kernel gradient (about the L2 cache)
# the row-shift kernel gradient for last-axis columns (k_last * C_in) in this range: it
# copies less, but its GEMMs run over the padded grid; measured faster for 16 input
# channels (3x3: 8.3 vs 9.5 ms), slower for 64, and too narrow a GEMM for 1-3 channels
_ROWS_COLUMNS = (32, 64)


def _forget_after_fork():
    """A forked child inherits onnxruntime's sessions but not their threads: running one
    there hangs. The child computes on the exact numpy path instead (and, as with any
    onnxruntime use before a fork, should leave with os._exit, as multiprocessing does)."""
    global _ORT
    _ORT = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


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


def runs():
    """How many convolutions the fast path has run in this process (the training step
    watches it to know whether its model uses these kernels: see backend/blas.py)."""
    return _RUNS[0]


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

def _session(key, build, threads=None):
    threads = threads or parallel.threads()
    key = key + (threads,)
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
                                                helper.make_opsetid("com.microsoft", 1),
                                                helper.make_opsetid(_NCHWC_DOMAIN, 1)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    _SESSIONS[key] = sess
    if len(_SESSIONS) > _MAX_SESSIONS:
        _SESSIONS.popitem(last=False)
    return sess


_NCHWC_DOMAIN = "com.microsoft.nchwc"
_BLOCK = None          # MLAS's NCHWc channel block (8 or 16), 0 when unusable


def _block_size():
    """MLAS's NCHWc block size on this CPU: the one whose blocked filter reproduces a plain
    Conv on a probe (0 when none does or the NCHWc ops are missing)."""
    global _BLOCK
    if _BLOCK is None:
        _BLOCK = 0
        if os.environ.get("MODELKIT_NCHWC", "1") != "0":
            rng = np.random.default_rng(0)
            x = rng.standard_normal((1, 16, 5, 5)).astype(np.float32)
            w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
            want = _run_conv(x, w, None, ((1, 1), (1, 1)), (1, 1), (1, 1), False, 0)
            for block in (16, 8):
                try:
                    got = _run_conv(x, w, None, ((1, 1), (1, 1)), (1, 1), (1, 1), False,
                                    block)
                except Exception:                     # noqa: BLE001 - no NCHWc ops
                    break
                if np.allclose(got, want, rtol=1e-4, atol=1e-4):
                    _BLOCK = block
                    break
    return _BLOCK


def _nchwc_block(w, n):
    """The block size when the (O, I, *k) kernel `w` suits MLAS's NCHWc conv, else 0."""
    if n != 2:
        return 0
    block = _block_size()
    cout, cin = w.shape[:2]
    if not block or cout % block or (cin % block and cin >= block):
        return 0
    return block


def _blocked_filter(w, block):
    """(O, I, kh, kw) -> MLAS's NCHWc filter order, still shaped (O, I, kh, kw): OIhw{B}i{B}o
    when the input channels are blocked too, OIhw{B}o when there are fewer than B."""
    o, i, kh, kw = w.shape
    if i % block == 0:
        r = w.reshape(o // block, block, i // block, block, kh, kw).transpose(0, 2, 4, 5, 3, 1)
    else:
        r = w.reshape(o // block, block, i, kh, kw).transpose(0, 2, 3, 4, 1)
    return np.ascontiguousarray(r).reshape(w.shape)


def _run_conv(xn, w, bias, pads, strides, dilation, relu, block):
    """y = conv(xn, w) (+ bias, relu) on NCHW arrays through a cached session; `block` > 0
    runs MLAS's NCHWc kernel with that channel block."""
    has_bias = bias is not None
    key = ("conv", xn.shape, w.shape, tuple(pads), tuple(strides), tuple(dilation), has_bias,
           relu, block)

    def build(helper):
        ins = ["x", "w"] + (["b"] if has_bias else [])
        attrs = _conv_attrs(pads, strides, dilation)
        shapes = [("x", list(xn.shape)), ("w", list(w.shape))]
        if has_bias:
            shapes.append(("b", [w.shape[0]]))
        if block:
            act = {"activation": "Relu"} if relu else {}
            blocked_in = xn.shape[1] % block == 0
            nodes = []
            if blocked_in:
                nodes.append(helper.make_node("ReorderInput", ["x"], ["xb"],
                                              domain=_NCHWC_DOMAIN))
                ins[0] = "xb"
            nodes.append(helper.make_node("Conv", ins, ["yb"], domain=_NCHWC_DOMAIN,
                                          kernel_shape=list(w.shape[2:]), **attrs, **act))
            nodes.append(helper.make_node("ReorderOutput", ["yb"], ["y"], domain=_NCHWC_DOMAIN,
                                          channels=int(w.shape[0])))
            return nodes, shapes
        if relu:
            node = helper.make_node("FusedConv", ins, ["y"], domain="com.microsoft",
                                    activation="Relu", **attrs)
        else:
            node = helper.make_node("Conv", ins, ["y"], **attrs)
        return [node], shapes

    feeds = {"x": xn, "w": _blocked_filter(w, block) if block else w}
    if has_bias:
        feeds["b"] = np.ascontiguousarray(bias, dtype=np.float32)
    return _session(key, build).run(None, feeds)[0]


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
    _RUNS[0] += 1
    xn = _nchw(x, channels_first)
    w = np.ascontiguousarray(np.moveaxis(kernel, (-1, -2), (0, 1)))    # (O, I, *k)
    has_bias = bias is not None
    y = _run_conv(xn, w, bias, pads, strides, dilation, relu, _nchwc_block(w, w.ndim - 2))
    assert y.shape[2:] == tuple(out), (y.shape, out)
    saved = Saved(x=xn, w=w, kshape=kernel.shape, pads=tuple(pads), strides=tuple(strides),
                  dilation=tuple(dilation), out=tuple(out), has_bias=has_bias,
                  relu_y=y if relu else None, channels_first=channels_first)
    return _from_nchw(y, channels_first), saved


# ---------------------------------------------------------------------------------------
# backward

def conv_vjp(g, s, needs):
    gn, gb = _relu_and_bias_grad(_nchw(g, s.channels_first), s,
                                 s.has_bias and len(needs) > 2 and needs[2])
    gx = gk = None
    if needs[0]:
        gx = _from_nchw(_input_grad(gn, s), s.channels_first)
    if needs[1]:
        gk = _kernel_grad(gn, s)
    return gx, gk, gb


def _relu_and_bias_grad(gn, s, bias):
    """(gradient through the fused relu, bias gradient or None) in one pass over blocks of
    images on the worker threads; the per-block sums are combined in float64."""
    relu = s.relu_y is not None
    if not (relu or bias):
        return gn, None
    out = np.empty_like(gn) if relu else gn

    def block(lo, hi):
        gb = gn[lo:hi]
        if relu:
            gb = np.multiply(gb, s.relu_y[lo:hi] > 0, out=out[lo:hi])
        return gb.reshape(hi - lo, gb.shape[1], -1).sum(axis=(0, 2)) if bias else None

    parts = parallel.map_blocks(block, gn.shape[0], gn[0].nbytes)
    if not bias:
        return out, None
    return out, np.sum([p.astype(np.float64) for p in parts], axis=0).astype(np.float32)


def _input_grad(gn, s):
    xshape = s.x.shape
    k = s.w.shape[2:]
    if all(st == 1 for st in s.strides) and all(
            max(b, a) <= (kk - 1) * d for kk, d, (b, a) in zip(k, s.dilation, s.pads)):
        # dx = full convolution of g with the flipped, transposed kernel: g padded by
        # (k-1)*d - pad on each side
        wf = np.ascontiguousarray(np.swapaxes(s.w, 0, 1)[(slice(None),) * 2 +
                                                         (slice(None, None, -1),) * len(k)])
        gpads = tuple(((kk - 1) * d - b, (kk - 1) * d - a)
                      for kk, d, (b, a) in zip(k, s.dilation, s.pads))
        gx = _run_conv(gn, wf, None, gpads, s.strides, s.dilation, False,
                       _nchwc_block(wf, len(k)))
        assert gx.shape == xshape, (gx.shape, xshape)
        return gx
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
    """dW[*k, i, o] = sum over images and positions of x[i, shifted by k] * g[o], the
    images split over `parallel.threads()` threads (their own buffers, single-threaded
    GEMMs: the per-block GEMMs are too small to use several cores well). Returns Keras's
    (*k, C_in, C_out) layout."""
    nb = s.x.shape[0]
    cout = gn.shape[1]
    gl = np.moveaxis(gn, 1, -1)                                   # (N, *out, C_out) view
    xl = np.moveaxis(s.x, 1, -1)                                  # (N, *spatial, C_in) view
    lo, hi = _ROWS_COLUMNS
    rows_form = (all(st == 1 for st in s.strides[:-1])
                 and lo <= s.w.shape[-1] * s.x.shape[1] <= hi)
    part = _kernel_grad_rows if rows_form else _kernel_grad_cols
    workers = min(parallel.threads(), nb)
    if workers == 1:
        acc = part(xl, gl, s, 0, nb, parallel.threads())
    else:
        bounds = np.linspace(0, nb, workers + 1).astype(int)
        acc = sum(parallel.run_parts(
            lambda i: part(xl, gl, s, bounds[i], bounds[i + 1], 1), workers))
    return acc.reshape(tuple(s.w.shape[2:]) + (s.x.shape[1], cout))


def _kernel_grad_rows(xl, gl, s, n0, n1, threads):
    """The kernel gradient summed over images n0..n1, for stride 1 along every spatial axis
    but the last: im2col along the last axis only (k_last copies of x instead of prod(k)),
    the other kernel offsets as row shifts. Rows run over the padded grid of the outer axes
    times the last axis' output positions; g sits in the same grid, zero where no output
    is, so a shifted row block of the columns lines up with g's rows, and each outer
    offset is one GEMM (k_last*C_in, rows) @ (rows, C_out) on a contiguous block of the
    columns."""
    cin, cout = xl.shape[-1], gl.shape[-1]
    k, d, out = tuple(s.w.shape[2:]), s.dilation, s.out
    n = len(k)
    padded = tuple(L + b + a for L, (b, a) in zip(xl.shape[1:-1], s.pads))
    grid = padded[:-1] + (out[-1],)                  # outer axes padded, last axis = output
    per_image = int(np.prod(grid))
    row_step = [int(np.prod(grid[i + 1:])) for i in range(n - 1)]
    shifts = [sum(o * d[i] * row_step[i] for i, o in enumerate(offs))
              for offs in np.ndindex(*k[:-1])]
    extra = max(shifts)
    kc = k[-1] * cin
    chunk = max(1, min(n1 - n0, _CHUNK_BYTES // max(per_image * kc * 4, 1)))
    xp = np.zeros((chunk,) + padded + (cin,), np.float32)
    cols = np.zeros((chunk * per_image + extra, kc), np.float32)
    gp = np.zeros((chunk,) + grid + (cout,), np.float32)
    interior = (slice(None),) + tuple(slice(b, b + L) for L, (b, _)
                                      in zip(xl.shape[1:-1], s.pads)) + (slice(None),)
    g_part = (slice(None),) + tuple(slice(0, o) for o in out) + (slice(None),)
    st = xp.strides
    win = as_strided(xp, shape=(chunk,) + grid + (k[-1], cin),
                     strides=st[:-2] + (st[-2] * s.strides[-1], st[-2] * d[-1], st[-1]),
                     writeable=False)
    cols_img = cols[:chunk * per_image].reshape((chunk,) + grid + (k[-1], cin))
    acc = np.zeros((len(shifts), kc, cout), np.float32)
    gemm = _ColsTimesG(kc, cout, threads)
    for i in range(n0, n1, chunk):
        c = min(chunk, n1 - i)
        rows = c * per_image
        xp[:c][interior] = xl[i:i + c]
        np.copyto(cols_img[:c], win[:c])
        if c < chunk:
            cols[rows:rows + extra] = 0                # no stale rows behind a short chunk
        gp[:c][g_part] = gl[i:i + c]
        g2 = gp[:c].reshape(rows, cout)
        for j, shift in enumerate(shifts):
            gemm.add_to(acc[j], cols[shift:shift + rows], g2)
    return acc


def _kernel_grad_cols(xl, gl, s, n0, n1, threads):
    """The kernel gradient summed over images n0..n1 for any strides: im2col of a few
    images at a time (a cache-sized block, channels-last so that each window copies whole
    channel runs) and one GEMM per block, (k*C_in, rows) @ (rows, C_out), accumulated."""
    cin, cout = xl.shape[-1], gl.shape[-1]
    k = tuple(s.w.shape[2:])
    n = len(k)
    out = s.out
    p = int(np.prod(out))
    kp = int(np.prod(k))
    padded = tuple(L + b + a for L, (b, a) in zip(xl.shape[1:-1], s.pads))
    chunk = max(1, min(n1 - n0, _CHUNK_BYTES // max(cin * kp * p * 4, 1)))
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
    gemm = _ColsTimesG(kp * cin, cout, threads)
    for i in range(n0, n1, chunk):
        c = min(chunk, n1 - i)
        xp[:c][interior] = xl[i:i + c]
        np.copyto(cols[:c], win[:c])
        g2 = np.ascontiguousarray(gl[i:i + c]).reshape(c * p, cout)
        gemm.add_to(acc, cols[:c].reshape(c * p, kp * cin), g2)
    return acc


class _ColsTimesG:
    """acc += cols.T @ g for cols (rows, k), g (rows, n): MLAS's GEMM in a cached session.
    MLAS runs the narrower operand as the transposed left one faster (measured: 15-20% for
    n = 16 output channels), so the product is computed as (g.T @ cols).T when k >= n.
    Many small multithreaded GEMMs stall when the cores are oversubscribed; onnxruntime's
    pool (spinning off) copes far better there than numpy's BLAS threads."""

    def __init__(self, k, n, threads):
        self.swap = k >= n
        a, b = (n, k) if self.swap else (k, n)

        def build(helper):
            return ([helper.make_node("Gemm", ["a", "b"], ["y"], transA=1)],
                    [("a", ["rows", a]), ("b", ["rows", b])])
        self.session = _session(("gemm_at_b", a, b), build, threads)

    def add_to(self, acc, cols, g):
        if self.swap:
            acc += self.session.run(None, {"a": g, "b": cols})[0].T
        else:
            acc += self.session.run(None, {"a": cols, "b": g})[0]
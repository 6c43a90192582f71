"""Fast float32 convolution kernels for training: onnxruntime's MLAS for the forward pass and
the input gradient, MLAS GEMMs on shifted views (stride 1) or a blocked K-major im2col for
the kernel gradient.

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
  An NCHWc session may also compute what the op after it reads (learnt at its tape site,
  see "what the next op reads"): a max pooling of its output, its blocked output for the
  next conv.
- Winograd: 3x3 convolutions with stride and dilation 1, pads of 2 at most and 8 or more
  input channels (VGG's and ResNet's, forward and input gradient) run Winograd F(2x2, 3x3)
  in C (native.winograd_conv, AVX-512 CPUs; MODELKIT_WINOGRAD=0 switches it off): 16
  multiplies per 2x2 outputs and channel pair instead of 36, the images in parts on the
  threads. Isolated (64 images, one thread, MLAS NCHWc -> Winograd): 32->32@28 9.57 ->
  7.58 ms, 64->64@14 9.44 -> 7.58, 16->16@32 3.48 -> 2.21; two threads 4.89 -> 3.82, 4.78 ->
  3.87, 1.74 -> 1.08. Its output is plain NCHW; a 2x2 max pooling (stride 2) after it
  comes from the same pass, each 2x2 tile of outputs being one window (asked for through
  ahead.py as for the NCHWc convs; VGG step 48.0-49.7 -> 45.8-47.2 ms).
  Their kernel gradient is Winograd F(3x3, 2x2) (`_WinogradGrad`).
- input gradient: stride 1 is the "full" convolution of the output gradient with the
  flipped, transposed kernel (NCHWc when the channels fit); otherwise ONNX `ConvTranspose`
  of the output gradient with the same kernel, pads and strides (`output_padding` restores
  the rows a strided conv skipped).
- kernel gradient, stride 1 (`_Shifted`): im2col along the last axis only. A few images
  of x and g at a time are copied channel-major into flat buffers whose spatial axes but
  the last are each followed by a gap of zeros as wide as the larger pad, x once per
  offset of the kernel's last axis (shifted along it); then every offset of the other
  axes reads a contiguous slice of the same buffer, and dW[offset] = slice @ g.T is one
  MLAS GEMM of k_last*C_in rows (all offsets in one session call). Below 8 input
  channels (`_PerImage`, a first layer): im2col per image, times g as it is, numpy's
  batched GEMM. Other strides (`_Windows`): im2col in K-major order (k*C_in, positions)
  straight from the NCHW input, a few images at a time (about `_CHUNK_ROWS` output
  positions), times g reordered to (C_out, positions). Chunk buffers come from a
  per-thread pool (`_scratch`). Images go in parts (4 per thread) claimed by the worker
  threads, the input gradient one more item among them (`_both_grads`); in a backward
  pass with a side stream (streams.py) the kernel gradient's parts go to the side worker
  instead (`_kernel_grad_later`), handed over before this thread runs the input gradient
  and carries the chain on, and share the parts left when it waits.
  (Measured and not taken: the 9 offsets' GEMMs with g channels-last (no transB), 93
  against 98 GFLOP/s in cache; all 9 offsets stacked as one GEMM of 9*C_in rows, 112
  GFLOP/s but 9 copies of x: 658 against 630 us a chunk; the GEMM as (positions, k*C_in)
  columns, 50-60 GFLOP/s against 75-100; the shifted slices channels-last, (positions, C)
  operands with transA, 33-50 GFLOP/s; ONNX Conv with batch and channel roles swapped, 4x slower;
  OpenBLAS, 10-30% slower than MLAS here; the relu mask and bias sum folded into the
  kernel gradient's copy of g: no gain on a VGG step's CPU time within the noise, 0.2 ms;
  MLAS's NCHWc conv with batch and channel roles swapped (x as (C_in, N, H, W), g as the
  filter): 44-53 GFLOP/s, one core.)
- bias gradient: a sum over batch and positions (a GEMV), or the sums that the op after
  the conv had at hand (`mark_channel_sums`): a max pooling after the fused relu, from its
  4x smaller gradient; a batch normalization, from its own backward sums.

The sessions run on onnxruntime's own thread pool (MODELKIT_NUM_THREADS, default all
cores) with spinning off, so idle pools do not burn the CPU between calls.
"""

import os
import threading
import weakref
from collections import OrderedDict

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import ahead, array_tags, native, parallel, streams
from .buffers import BufferPool
from .streams import SIDE, Deferred, worth_side

_ORT = None            # onnxruntime module, False when unavailable
_SESSIONS = OrderedDict()
_SESSIONS_LOCK = threading.Lock()
_RUNS = [0]            # forward passes run here (see runs())
_MAX_SESSIONS = 64
_CHUNK_ROWS = 4096     # output positions per im2col kernel-gradient GEMM (_Windows)
# the kernel gradient's shifted-view form (_Shifted, stride 1) from this many input
# channels and up to this share of extra (gap) positions, this much input and gradient
# per chunk of images
_SHIFTED_MIN_CHANNELS = 8
_SHIFTED_MAX_WASTE = 1.3         # 1.25 (10x10 valid): 0.89x _Windows; 1.33: 0.96-1.10x
_SHIFTED_CHUNK_BYTES = 2 << 20
_SHIFTED_MIN_ROWS = 4096     # rows per chunk at most asked for by a large result
# the kernel gradient per image (_PerImage) below this many input channels, this much of
# the images' windows per chunk
_FEW_CHANNELS = 8
_PER_IMAGE_BYTES = 1 << 20
_SCRATCH = threading.local()       # .pool: this thread's BufferPool of chunk buffers
_SCRATCH_BYTES = 32 << 20
_PARTS_PER_THREAD = 4        # the kernel gradient's image parts (see _image_parts)
_NATIVE_MIN_POSITIONS = 32   # the relu mask and bias sums as a C pass from this many positions
WINOGRAD_MIN_CHANNELS = 8    # input channels from which a 3x3 conv goes through Winograd
WINOGRAD_MAX_IMAGE_BYTES = 32 << 20  # and up to this much of one image's transforms (larger
                                     # maps keep MLAS; 4x64x112x112: 29.98 vs 35.64 ms)
WINOGRAD_GRAD_MAX_CHANNELS = 256     # the kernel gradient's F(3x3, 2x2) up to C_in + C_out:
                                     # beyond, its blocks hold too few tiles (8 images, one
                                     # thread, _Shifted -> Winograd: 128->128@28 19.31 ->
                                     # 13.47 ms, 256->256@14 19.63 -> 22.47, 512@7 22.44 ->
                                     # 30.54)


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
    """What the VJP needs: NCHW input, OIHW kernel, geometry, relu output (or None); and
    the kernel gradient's form once a part asked for it (`_kernel_form`)."""

    __slots__ = ("x", "w", "kshape", "pads", "strides", "dilation", "out", "has_bias",
                 "relu_y", "channels_first", "kernel_form", "__weakref__")

    def __init__(self, **kw):
        self.kernel_form = None
        for k, v in kw.items():
            setattr(self, k, v)


# ---------------------------------------------------------------------------------------
# fused relu outputs and the gradients already masked for them

# A max pooling after a fused-relu conv can apply the relu's mask on its small, pooled side
# (a window's gradient goes to a cell equal to the window's maximum, so that cell is > 0
# exactly when the maximum is): it asks `relu_output` whether its input is such an output
# and marks its input gradient with `mark_relu_masked`; the conv's VJP then skips its own
# mask pass over the full-size gradient. Arrays are matched by memory while alive
# (array_tags), so a sum with another gradient, a copy or a reshaped view is never taken
# for the marked array.
_RELU_OUTPUTS = {}
_MASKED = {}
_CHANNEL_SUMS = {}


def relu_output(a):
    """The fused-relu conv output (NCHW) whose memory the array `a` is exactly, else None."""
    y = array_tags.recall(_RELU_OUTPUTS, a)
    return y() if y is not None else None


def mark_relu_masked(g, y):
    """Record that the NCHW gradient `g` is already zero wherever the relu output `y`
    (from `relu_output`) is not positive."""
    array_tags.remember(_MASKED, g, weakref.ref(y))


def _relu_masked(gn, y):
    ref = array_tags.recall(_MASKED, gn)
    return ref is not None and ref() is y


def mark_channel_sums(g, sums, axis=1):
    """Record the float32 sums of the gradient `g` over all its axes but `axis`, which its
    maker had at hand (a max pooling's from its 4x smaller gradient, a batch norm's from
    its own sums): a conv whose output gradient is exactly `g`, with its channels on
    `axis`, takes them as its bias gradient instead of a pass over `g`."""
    array_tags.remember(_CHANNEL_SUMS, g, (axis % g.ndim, sums))


def _channel_sums(g, gn, channels_first):
    """The sums `mark_channel_sums` recorded for the conv output gradient `g` (the NCHW
    `gn` or `g` as it came, in the conv's data format), else None."""
    for a, axis in ((gn, 1), (g, 1 if channels_first else g.ndim - 1)):
        entry = array_tags.recall(_CHANNEL_SUMS, a)
        if entry is not None and entry[0] == axis:
            return entry[1]
    return None


# ---------------------------------------------------------------------------------------
# what the next op reads, fused into the conv's session

# MLAS's NCHWc convolution writes a channel-blocked result that its session reorders to
# NCHW. Two readers of that output can take it from the session instead (backend/ahead.py:
# the reader asks at the conv's tape site, the conv computes it from the next step on):
# - a max pooling, request ("max_pool", window, strides, blocked): the session pools the
#   blocked result itself (nchwc.MaxPool, vectorized over the channel block) while it is
#   fresh, instead of the pool reading the NCHW output again (VGG's 2x2 pools: 1.36 ms a
#   step); with `blocked` also the maxima's blocked form, which the pool passes on to the
#   conv after it; the maxima are the same numbers;
# - the next NCHWc conv, request "nchwc": the session hands out the blocked result as
#   well, and the next conv's session starts from it without its own ReorderInput (0.66
#   ms a 64x32x28x28 input, one thread); the same numbers.


class _Fused(tuple):
    """What a conv session computes besides y: `pool` (window, strides) of a max pooling of
    y or None, `blocked_out` y's NCHWc form too, `blocked_in` x arrives NCHWc,
    `pooled_blocked` the pooling's NCHWc form too."""

    __slots__ = ()

    def __new__(cls, pool=None, blocked_out=False, blocked_in=False, pooled_blocked=False):
        return super().__new__(cls, (pool, blocked_out, blocked_in, pooled_blocked))

    pool = property(lambda self: self[0])
    blocked_out = property(lambda self: self[1])
    blocked_in = property(lambda self: self[2])
    pooled_blocked = property(lambda self: self[3])


_PLAIN = _Fused()


# ---------------------------------------------------------------------------------------
# sessions

def session(key, build, threads=None, outputs=("y",)):
    """The cached onnxruntime session of the graph `build(helper) -> (nodes, [(input, shape)])`
    (float inputs, float `outputs`) under `key`, on `threads` intra-op threads."""
    threads = threads or parallel.available()
    key = key + (threads,)
    with _SESSIONS_LOCK:            # the backward pass's side stream asks from its thread too
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
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs])
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
    with _SESSIONS_LOCK:
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


def _run_conv(xn, w, bias, pads, strides, dilation, relu, block, threads=None,
              fused=_PLAIN):
    """y = conv(xn, w) (+ bias, relu) on NCHW arrays through a cached session; `block` > 0
    runs MLAS's NCHWc kernel with that channel block, and then `fused` (a _Fused) may add
    outputs: -> [y, pooled if fused.pool, y's NCHWc form if fused.blocked_out, pooled's
    if fused.pooled_blocked]; with fused.blocked_in, xn is the input's NCHWc form."""
    has_bias = bias is not None
    key = ("conv", xn.shape, w.shape, tuple(pads), tuple(strides), tuple(dilation), has_bias,
           relu, block, fused)
    outputs = ("y",) + (("p",) if fused.pool else ()) + (("yb",) if fused.blocked_out else ()) \
        + (("pb",) if fused.pooled_blocked else ())

    def build(helper):
        ins = ["x", "w"] + (["b"] if has_bias else [])
        attrs = _conv_attrs(pads, strides, dilation)
        shapes = [("x", list(xn.shape)), ("w", list(w.shape))]
        if has_bias:
            shapes.append(("b", [w.shape[0]]))
        if block:
            act = {"activation": "Relu"} if relu else {}
            nodes = []
            if xn.shape[1] % block == 0 and not fused.blocked_in:
                nodes.append(helper.make_node("ReorderInput", ["x"], ["xb"],
                                              domain=_NCHWC_DOMAIN))
                ins[0] = "xb"
            nodes.append(helper.make_node("Conv", ins, ["yb"], domain=_NCHWC_DOMAIN,
                                          kernel_shape=list(w.shape[2:]), **attrs, **act))
            nodes.append(helper.make_node("ReorderOutput", ["yb"], ["y"], domain=_NCHWC_DOMAIN,
                                          channels=int(w.shape[0])))
            if fused.pool:
                window, pool_strides = fused.pool
                nodes.append(helper.make_node("MaxPool", ["yb"], ["pb"], domain=_NCHWC_DOMAIN,
                                              kernel_shape=list(window),
                                              strides=list(pool_strides)))
                nodes.append(helper.make_node("ReorderOutput", ["pb"], ["p"],
                                              domain=_NCHWC_DOMAIN, channels=int(w.shape[0])))
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
    if fused == _PLAIN:
        return session(key, build, threads).run(None, feeds)[0]
    threads = threads or parallel.available()
    new = key + (threads,) not in _SESSIONS
    got = session(key, build, threads, outputs=outputs).run(None, feeds)
    if new:                # the plain session it replaces: its memory arena goes too
        with _SESSIONS_LOCK:
            _SESSIONS.pop(key[:-1] + (_PLAIN, threads), None)
    return got


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
    if _winograd_applies(xn, w, strides, dilation, pads):
        pool = _pool_asked(out)
        y, pooled = _winograd(xn, w, bias, pads, relu, pool=pool is not None)
        ahead.produced(y, None if pool is None else {pool: (pooled, None)})
    else:
        y = _conv_fused(xn, w, bias, strides, dilation, pads, relu, _nchwc_block(w, w.ndim - 2))
    assert y.shape[2:] == tuple(out), (y.shape, out)
    if relu:
        array_tags.remember(_RELU_OUTPUTS, y, weakref.ref(y))
    saved = Saved(x=xn, w=w, kshape=kernel.shape, pads=tuple(pads), strides=tuple(strides),
                  dilation=tuple(dilation), out=tuple(out), has_bias=has_bias,
                  relu_y=y if relu else None, channels_first=channels_first)
    return _from_nchw(y, channels_first), saved


def _conv_fused(xn, w, bias, strides, dilation, pads, relu, block):
    """y; an NCHWc conv starts from its input's NCHWc form when the op before made it, and
    computes what its readers asked for (`ahead`, see "what the next op reads")."""
    if not block:
        return _run_conv(xn, w, bias, pads, strides, dilation, relu, block)
    xb = ahead.take(xn, "nchwc") if xn.shape[1] % block == 0 else None
    asked = ahead.wanted()
    pool = next(_pools_asked(asked), None)
    fused = _Fused(pool and pool[1:3], "nchwc" in asked, xb is not None,
                   bool(pool and pool[3]))
    got = _run_conv(xn if xb is None else xb, w, bias, pads, strides, dilation, relu, block,
                    fused=fused)
    if fused == _PLAIN:
        ahead.produced(got)
        return got
    y, rest = got[0], list(got[1:])
    extras = {}
    if pool:
        pooled = rest.pop(0)
        yb = rest.pop(0) if fused.blocked_out else None
        extras[pool] = (pooled, rest.pop(0) if fused.pooled_blocked else None)
    else:
        yb = rest.pop(0) if fused.blocked_out else None
    if yb is not None:
        extras["nchwc"] = yb
    ahead.produced(y, extras)
    return y


def _winograd_applies(xn, w, strides, dilation, pads):
    """Whether the Winograd F(2x2, 3x3) kernel (native.winograd_conv) takes this conv: 2D,
    3x3, stride and dilation 1, pads of 2 at most, WINOGRAD_MIN_CHANNELS input channels or
    more, an AVX-512 CPU; MODELKIT_WINOGRAD=0 switches it off."""
    return (xn.ndim == 4 and w.shape[2:] == (3, 3) and tuple(strides) == (1, 1)
            and tuple(dilation) == (1, 1) and all(0 <= p <= 2 for pair in pads for p in pair)
            and xn.shape[1] >= WINOGRAD_MIN_CHANNELS and xn.shape[0] > 0
            and all(L + b + a >= 3 for L, (b, a) in zip(xn.shape[2:], pads))
            and _winograd_image_bytes(xn, w, pads) <= WINOGRAD_MAX_IMAGE_BYTES
            and os.environ.get("MODELKIT_WINOGRAD", "1") != "0"
            and native.winograd_available())


def _pool_asked(out):
    """The request of a 2x2 max pooling with stride 2 that the op after this conv made
    (ahead.py) and that the Winograd output can answer (even sizes, no blocked form), else
    None."""
    if out[0] % 2 or out[1] % 2:
        return None
    return next((r for r in _pools_asked(ahead.wanted())
                 if r[1:3] == ((2, 2), (2, 2)) and not r[3]), None)


def _pools_asked(asked):
    """The 2D max-pooling requests among `asked` (ahead.py): ("max_pool", window, strides,
    whether its NCHWc form is wanted too)."""
    return (r for r in asked if isinstance(r, tuple) and r[0] == "max_pool" and len(r[1]) == 2)


def _winograd_image_bytes(xn, w, pads):
    """The bytes of one image's transforms (input and output, 16 values per 2x2 tile and
    channel): the C kernels hold at least one image's at a time."""
    tiles = np.prod([(L + b + a - 1) // 2 for L, (b, a) in zip(xn.shape[2:], pads)])
    return 16 * 4 * int(tiles) * (w.shape[0] + w.shape[1])


def _winograd(xn, w, bias, pads, relu, threads=None, pool=False):
    """conv(xn, w) (+ bias, relu) by Winograd F(2x2, 3x3): the filter's transforms once,
    then the images in parts on the threads (one C call each, the GIL released).
    -> (y, its 2x2 max pooling when `pool` else None)."""
    n, cout = xn.shape[0], w.shape[0]
    out = tuple(L + b + a - 2 for L, (b, a) in zip(xn.shape[2:], pads))
    u = native.winograd_filter(np.ascontiguousarray(w, dtype=np.float32))
    b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
    y = np.empty((n, cout) + out, np.float32)
    pooled = np.empty((n, cout, out[0] // 2, out[1] // 2), np.float32) if pool else None
    parts = min(n, threads or parallel.threads())
    bounds = np.linspace(0, n, parts + 1).astype(int)

    def part(i):
        lo, hi = bounds[i], bounds[i + 1]
        native.winograd_conv(xn[lo:hi], u, b, pads, relu, y[lo:hi],
                             None if pooled is None else pooled[lo:hi])
    if parts <= 1:
        part(0)
    else:
        parallel.run_parts(part, parts)
    return y, pooled


# ---------------------------------------------------------------------------------------
# backward

def conv_vjp(g, s, needs):
    gn = _nchw(g, s.channels_first)
    if needs[0] or not streams.busy():
        needs = worth_side(needs, 2.0 * gn.size * s.x.shape[1] * np.prod(s.w.shape[2:]))
    # else the pass ends at this conv (a first layer) while the side stream still works: its
    # kernel gradient, however small, joins the side's queue, so that the pass returns and the
    # optimizer updates the final gradients meanwhile (VGG: the dense layers' RMSprop beside
    # the second conv's kernel gradient, -0.4..-1.2 ms a step)
    bias = s.has_bias and len(needs) > 2 and needs[2]
    relu = s.relu_y is not None and not _relu_masked(gn, s.relu_y)
    sums = _channel_sums(g, gn, s.channels_first) if bias and not relu else None
    if sums is not None:                # summed by the gradient's maker
        gb = sums
    elif bias is SIDE and not relu:     # the bias sums are a pass of their own: on the side
        gb = Deferred(lambda: _relu_and_bias_grad(gn, s, True, False)[1])
    else:
        gn, gb = _relu_and_bias_grad(gn, s, bias, relu)
    gx = gk = None
    if needs[0] and needs[1] is SIDE:
        # the kernel gradient on the side, the input gradient here: both deferred, so that
        # the tape starts the side's before this thread runs the input gradient (returned
        # computed, the side stayed idle for the whole input gradient: 9.5 ms of VGG's
        # first conv backward)
        return (Deferred(lambda: _from_nchw(_input_grad(gn, s), s.channels_first)),
                _kernel_grad_later(gn, s), gb)
    if not needs[0] and needs[1] is SIDE:
        return None, _kernel_grad_later(gn, s), gb
    if needs[0] and needs[1]:
        gx, gk = _both_grads(gn, s)
    elif needs[0]:
        gx = _input_grad(gn, s)
    elif needs[1]:
        gk = _kernel_grad(gn, s)
    if gx is not None:
        gx = _from_nchw(gx, s.channels_first)
    return gx, gk, gb


def image_channel_sums(g):
    """(N, C) float32 sums over the positions of each image and channel of the NCHW
    float32 array `g`: one GEMV with a ones vector (3x faster than numpy's sum)."""
    rows = g.reshape(g.shape[0] * g.shape[1], -1)
    return (rows @ parallel.ones(rows.shape[1], np.float32)).reshape(g.shape[:2])


def _relu_and_bias_grad(gn, s, bias, relu):
    """(gradient through the fused relu when `relu`, bias gradient or None) in one pass over
    blocks of images on the worker threads (a C pass where the kernels are built:
    64x32x28x28, two threads, 1.68 -> 0.67 ms; 64x64x14x14 0.72 -> 0.40); the per-block sums
    are combined in float64."""
    if not (relu or bias):
        return gn, None
    out = np.empty_like(gn) if relu else gn
    cells = (-1, gn.shape[1], gn[0, 0].size)            # (images, channels, positions)
    fused = (native.takes(gn, *((s.relu_y,) if relu else ()))
             and gn[0, 0].size >= _NATIVE_MIN_POSITIONS)

    def block(lo, hi):
        if fused:                       # one C pass: mask, then sums in float64
            return native.channel_sums(
                gn[lo:hi].reshape(cells), mask3=s.relu_y[lo:hi].reshape(cells) if relu
                else None, masked3=out[lo:hi].reshape(cells) if relu else None)[0]
        gb = gn[lo:hi]
        if relu:
            gb = np.multiply(gb, s.relu_y[lo:hi] > 0, out=out[lo:hi])
        if not bias:
            return None
        return image_channel_sums(gb).sum(axis=0)

    parts = parallel.map_blocks(block, gn.shape[0], gn[0].nbytes)
    if not bias:
        return out, None
    return out, np.sum([p.astype(np.float64) for p in parts], axis=0).astype(np.float32)


def _input_grad(gn, s, threads=None):
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
        if _winograd_applies(gn, wf, s.strides, s.dilation, gpads):
            gx = _winograd(gn, wf, None, gpads, False, threads)[0]
        else:
            gx = _run_conv(gn, wf, None, gpads, s.strides, s.dilation, False,
                           _nchwc_block(wf, len(k)), threads)
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

    gx = session(key, build, threads).run(None, {"x": gn, "w": s.w})[0]
    assert gx.shape == xshape, (gx.shape, xshape)
    return gx


def _both_grads(gn, s):
    """(input gradient, kernel gradient). With several threads the input gradient (one
    single-threaded MLAS call) is the first of the items the threads claim, the kernel
    gradient's image parts the others: the parts' memory-bound im2col copies then overlap
    the input gradient's arithmetic instead of two threads contending for memory."""
    if parallel.threads() == 1 or s.x.shape[0] < 3:
        return _input_grad(gn, s), _kernel_grad(gn, s)
    bounds = _image_parts(s.x.shape[0])
    got = parallel.map_items(
        lambda i: _input_grad(gn, s, 1) if i == 0 else
        _kernel_grad_part(gn, s, bounds[i - 1], bounds[i], 1), len(bounds))
    return got[0], _kernel_layout(sum(got[1:]), gn, s)


def _kernel_grad_later(gn, s):
    """`_kernel_grad` as a `streams.Deferred` for the side stream: its image parts, which
    the side worker runs in order and the main thread shares once it waits for them,
    summed in the same order (the same numbers)."""
    bounds = _image_parts(s.x.shape[0])
    if len(bounds) <= 3:
        return Deferred(lambda: _kernel_grad(gn, s))
    return Deferred.in_parts(
        lambda i: _kernel_grad_part(gn, s, bounds[i], bounds[i + 1], 1), len(bounds) - 1,
        lambda parts: _kernel_layout(sum(parts), gn, s))


def _image_parts(nb):
    """Bounds of the kernel gradient's image parts: `_PARTS_PER_THREAD` per thread, so that
    in `_both_grads` the thread that ran the input gradient and the others end together
    (VGG's convs at 2 threads, 4 -> 8 parts: 11.9 -> 11.3, 6.7 -> 5.8, 11.5 -> 10.7-11.3 ms;
    a part costs ~20 us more, 16 parts gained nothing more); one part on one thread."""
    threads = parallel.threads()
    parts = 1 if threads == 1 else min(_PARTS_PER_THREAD * threads, nb)
    return np.linspace(0, nb, parts + 1).astype(int)


def _kernel_layout(acc, gn, s):
    return acc.reshape(tuple(s.w.shape[2:]) + (s.x.shape[1], gn.shape[1]))


def _kernel_grad(gn, s):
    """dW[*k, i, o] = sum over images and positions of x[i, shifted by k] * g[o]. With
    several threads the images go in parts (`_image_parts`) (each with its own buffers and
    single-threaded GEMMs: the per-block GEMMs are too small to use several cores well),
    claimed as threads come free, so that a core another process holds for a while does
    fewer; the parts are summed in order (the same numbers whichever thread ran them).
    Returns Keras's (*k, C_in, C_out) layout."""
    nb = s.x.shape[0]
    bounds = _image_parts(nb)
    if len(bounds) <= 3:
        acc = _kernel_grad_part(gn, s, 0, nb, parallel.threads())
    else:
        acc = sum(parallel.map_items(
            lambda i: _kernel_grad_part(gn, s, bounds[i], bounds[i + 1], 1), len(bounds) - 1))
    return _kernel_layout(acc, gn, s)


def _kernel_grad_part(gn, s, n0, n1, threads):
    """The kernel gradient summed over images n0..n1 (NCHW x and g) as a (k*C_in, C_out)
    array, by the form `_form` picks for this convolution."""
    return _kernel_form(s).accumulate(gn, n0, n1, threads)


def _kernel_form(s):
    """The kernel gradient's form for `s`, made once for all its image parts (making one
    costs ~70 us of Python, a part of a few images ~1 ms). The form refers back to `s`
    weakly (`_Form`): a reference cycle kept every step's saved activations alive until
    the garbage collector ran (peak RSS of a VGG epoch 394 MiB instead of ~260)."""
    if s.kernel_form is None:
        s.kernel_form = _form(s)(s)
    return s.kernel_form


def _form(s):
    """_PerImage for few input channels, _WinogradGrad where the forward runs Winograd (up
    to WINOGRAD_GRAD_MAX_CHANNELS channels in and out), _Shifted where it applies (stride 1,
    enough channels, few extra positions), else _Windows."""
    if s.x.shape[1] < _FEW_CHANNELS:
        return _PerImage
    if (_winograd_applies(s.x, s.w, s.strides, s.dilation, s.pads)
            and s.x.shape[1] + s.w.shape[0] <= WINOGRAD_GRAD_MAX_CHANNELS):
        return _WinogradGrad
    if _Shifted.applies(s):
        return _Shifted
    return _Windows


def _scratch():
    """This thread's pool of the kernel gradient's chunk buffers (buffers.BufferPool): they
    come back call after call and step after step instead of new pages each time, the
    zero-padded ones with their padding still zero."""
    pool = getattr(_SCRATCH, "pool", None)
    if pool is None:
        pool = _SCRATCH.pool = BufferPool(max_bytes=_SCRATCH_BYTES, per_key=2)
    return pool


def _chunks(n0, n1, most):
    """[(first image, images)] covering n0..n1 in chunks of at most `most` images, as even
    as they go (8 images as 7 + 1 ran the last image's GEMMs at a fraction of their
    speed)."""
    count = -(-(n1 - n0) // max(1, most))
    size = -(-(n1 - n0) // count)
    return [(i, min(size, n1 - i)) for i in range(n0, n1, size)]


class _Form:
    """Base of the kernel gradient's forms: the Saved `s` they were made for, held weakly
    (`s` holds its form, see `_kernel_form`)."""

    def __init__(self, s):
        self._saved = weakref.ref(s)

    @property
    def s(self):
        return self._saved()


class _Windows(_Form):
    """im2col of the output's windows (any strides, dilations), a few images at a time
    (about `_CHUNK_ROWS` output positions): cols (*k, C_in, images, *out) copied from the
    (zero-padded) NCHW input, K-major, and g reordered to (C_out, images, *out); then one
    MLAS GEMM cols @ g.T, (k*C_in, rows) @ (rows, C_out), accumulated. The K-major operands
    are the form MLAS runs fastest for this small-output, long-sum product (measured 75-100
    GFLOP/s on one core against 50-60 for (rows, k*C_in) columns)."""

    def __init__(self, s):
        super().__init__(s)
        self.k = tuple(s.w.shape[2:])
        self.grid = tuple(s.out)
        self.padded = tuple(L + b + a for L, (b, a) in zip(s.x.shape[2:], s.pads))

    def accumulate(self, gn, n0, n1, threads):
        s = self.s
        cin, cout = s.x.shape[1], gn.shape[1]
        kc = int(np.prod(self.k)) * cin
        p = int(np.prod(self.grid))
        chunk = max(1, min(n1 - n0, _CHUNK_ROWS // max(p, 1)))
        buf = self._padded_buffer(chunk)
        cols_buf = _scratch().empty((kc * chunk * p,), np.float32)
        g_buf = _scratch().empty((cout * chunk * p,), np.float32)
        acc = np.zeros((kc, cout), np.float32)
        gemm = _KernelGradGemm(kc, cout, threads)
        for i, c in _chunks(n0, n1, chunk):
            win = self._windows(s.x[i:i + c], buf)
            cols = cols_buf[:kc * c * p].reshape(win.shape)
            np.copyto(cols, win)
            gt = g_buf[:cout * c * p].reshape((cout, c) + self.grid)
            np.copyto(gt, np.swapaxes(gn[i:i + c], 0, 1))
            acc += gemm(cols.reshape(kc, c * p), gt.reshape(cout, c * p))
        return acc

    def _padded_buffer(self, chunk):
        """A zero-padded input buffer of `chunk` images (None when nothing is padded); the
        form is shared by the threads running its parts, so each call gets its own."""
        if self.padded == self.s.x.shape[2:]:
            return None
        return _scratch().zeros((chunk, self.s.x.shape[1]) + self.padded, np.float32,
                                (self.s.x.shape[2:], self.s.pads))

    def _padded(self, x, buf):
        """x copied into the interior of `buf` -> the buffer's first images, or x itself
        when there is no buffer."""
        if buf is None:
            return x
        buf[:x.shape[0]][(slice(None),) * 2 + tuple(
            slice(b, b + L) for L, (b, _) in zip(x.shape[2:], self.s.pads))] = x
        return buf[:x.shape[0]]

    def _windows(self, x, buf):
        s, n = self.s, len(self.k)
        src = self._padded(x, buf)
        st = src.strides
        return as_strided(src, shape=self.k + (x.shape[1], x.shape[0]) + self.grid,
                          strides=tuple(st[2 + j] * s.dilation[j] for j in range(n))
                          + (st[1], st[0]) + tuple(st[2 + j] * s.strides[j] for j in range(n)),
                          writeable=False)


class _PerImage(_Windows):
    """Few input channels (a first layer): the output's windows of a few images at a time
    (about `_PER_IMAGE_BYTES`) as (images, k*C_in, positions), K-major as in _Windows, and
    per image g[n] (C_out, positions) @ windows[n].T, one batched GEMM (numpy's) on the NCHW
    gradient as it is, summed over the images. With k*C_in this small the reorder of the
    large gradient that one long GEMM needs costs more than the GEMM itself (1 -> 32
    channels at 28x28, 64 images, one core: 1.10 ms as _Windows, 0.55 ms here)."""

    def accumulate(self, gn, n0, n1, threads):
        s, n = self.s, len(self.k)
        cin, cout = s.x.shape[1], gn.shape[1]
        kc = int(np.prod(self.k)) * cin
        p = int(np.prod(self.grid))
        chunk = max(1, min(n1 - n0, _PER_IMAGE_BYTES // (4 * kc * p)))
        buf = self._padded_buffer(chunk)
        cols_buf = _scratch().empty((chunk, kc, p), np.float32)
        prod_buf = _scratch().empty((chunk, cout, kc), np.float32)
        acc = np.zeros((cout, kc), np.float32)
        for i, c in _chunks(n0, n1, chunk):
            cols = cols_buf[:c]
            np.copyto(cols.reshape((c,) + self.k + (cin,) + self.grid),
                      np.moveaxis(self._windows(s.x[i:i + c], buf), n + 1, 0))
            prods = np.matmul(gn[i:i + c].reshape(c, cout, p), cols.transpose(0, 2, 1),
                              out=prod_buf[:c])
            acc += prods.sum(axis=0)
        return np.ascontiguousarray(acc.T)


class _Shifted(_Form):
    """Stride 1 without im2col but along the last axis: a few GEMMs on *views* of one copy
    of the input.

    A few images at a time (about `_SHIFTED_CHUNK_BYTES` of input and gradient) are
    copied channel-major into flat buffers, x as (k_last, C_in, images, *grid) and g as
    (C_out, images, *grid). The grid is the input's spatial axes but the last, each
    followed by a gap of max(pad before, pad after) zero rows (the gap is both the
    after-padding of an image and the before-padding of the next), then the output's last
    axis. Plane (t, i) of x is input channel i shifted along the last axis by offset t of
    the kernel's last axis (t*d - pad before; zeros where that reads outside the image:
    im2col along that axis only). Output position p sits at the grid cell of its window's
    first row, so offset j of the kernel's other axes reads x at p + off_j (off_j = sum of
    (i*d - pad before) * grid step, whole rows): the cells one offset sees are the buffer
    *shifted* by off_j, a plain contiguous slice of it, (k_last * C_in, positions), whose
    rows run into the next plane at their end, where they meet only gap rows or g's
    zeros. A read outside the image on those axes lands in a gap, g is zero at the grid
    cells that are no output, so dW[j, t] = x_shifted_j @ g.T exactly: prod(k[:-1]) GEMMs
    (k_last * C_in, rows) @ (rows, C_out) in one MLAS session call per chunk.

    Against one GEMM per kernel offset on a grid with a gap after every axis (the form
    before): 3 GEMMs of M = 3*C_in instead of 9 of C_in (MLAS packs g once per GEMM: 105
    against 98 GFLOP/s), no gap column (positions 3.6% more than the output at 28x28
    instead of 7.3%, 7% at 14x14 instead of 15%), for 3x the input copy, made while it is
    in cache (VGG's kernel gradients, 64 images, one core: 32->32@28 11.6 -> 10.7 ms,
    64->64@14 11.8 -> 10.4, 32->64@14 6.5 -> 5.5)."""

    @staticmethod
    def applies(s):
        if not all(st == 1 for st in s.strides) or s.x.shape[1] < _SHIFTED_MIN_CHANNELS:
            return False
        k = s.w.shape[2:]
        if any(min(b, a) > (kk - 1) * d for kk, d, (b, a) in zip(k, s.dilation, s.pads)):
            return False                  # the output would not fit the grid
        return float(np.prod(_Shifted._grid(s))) <= _SHIFTED_MAX_WASTE * float(np.prod(s.out))

    @staticmethod
    def _grid(s):
        return tuple(L + max(b, a) for L, (b, a) in zip(s.x.shape[2:-1], s.pads[:-1])) + (
            s.out[-1],)

    def __init__(self, s):
        super().__init__(s)
        spatial = s.x.shape[2:]
        self.grid = self._grid(s)
        self.plane = int(np.prod(self.grid))
        steps = [int(np.prod(self.grid[j + 1:])) for j in range(len(spatial) - 1)]
        self.offsets = [sum((i * d - b) * step for i, d, (b, _), step
                            in zip(idx, s.dilation, s.pads, steps))
                        for idx in np.ndindex(*s.w.shape[2:-1])]
        self.lead = max(0, -min(self.offsets))
        self.tail = max(0, max(self.offsets))
        # the last axis: for each of its kernel offsets the output columns that read the
        # image, and the image columns they read
        d, (b, _), L, o = s.dilation[-1], s.pads[-1], spatial[-1], s.out[-1]
        self.columns = tuple((lo, hi, lo + t * d - b) for t in range(s.w.shape[-1])
                             for lo, hi in [(max(0, b - t * d), min(o, L + b - t * d))])
        self.x_rows = tuple(slice(0, L) for L in spatial[:-1])
        self.g_cells = (slice(None),) * 2 + tuple(slice(0, o) for o in s.out)

    def accumulate(self, gn, n0, n1, threads):
        s = self.s
        cin, cout = s.x.shape[1], gn.shape[1]
        m = len(self.columns) * cin                     # GEMM rows: (k_last, C_in)
        # about _SHIFTED_CHUNK_BYTES of x and g, and for a large result (many channels)
        # enough rows that adding each chunk's result up costs little beside its GEMMs
        # (512 -> 512 channels at 14x14: 485 ms with 1 image per chunk, 337 with 4096 rows)
        rows = min(_SHIFTED_MIN_ROWS, len(self.offsets) * m * cout // 64)
        chunk = max(1, _SHIFTED_CHUNK_BYTES // ((m + cout) * self.plane * 4),
                    -(-rows // self.plane))
        chunk = min(chunk, n1 - n0)
        gemms = _ShiftedGemms(len(self.offsets), m, cout, threads)
        bufs = {}
        acc = 0
        for i, c in _chunks(n0, n1, chunk):
            if c not in bufs:             # the gaps are never written: they stay zero
                bufs[c] = (_scratch().zeros((self.lead + m * c * self.plane + self.tail,),
                                            np.float32, ("x", self.lead, m, c, self.grid,
                                                         s.x.shape[2:], self.columns)),
                           _scratch().zeros((cout, c) + self.grid, np.float32, s.out))
            xbuf, gbuf = bufs[c]
            rows = c * self.plane
            self.copy_input(xbuf, s.x[i:i + c])
            np.copyto(gbuf[self.g_cells], np.swapaxes(gn[i:i + c], 0, 1))
            acc = acc + gemms([xbuf[self.lead + off:self.lead + off + m * rows]
                               .reshape(m, rows) for off in self.offsets],
                              gbuf.reshape(cout, rows))
        return acc

    def copy_input(self, xbuf, x):
        """Copy the NCHW images `x` into the flat buffer `xbuf` (k_last planes per channel,
        their gaps and out-of-image columns left as they are: zero)."""
        c = x.shape[0]
        xg = xbuf[self.lead:self.lead + len(self.columns) * x.shape[1] * c * self.plane]
        xg = xg.reshape((len(self.columns), x.shape[1], c) + self.grid)
        xs = np.swapaxes(x, 0, 1)
        for t, (lo, hi, src) in enumerate(self.columns):
            np.copyto(xg[(t, slice(None), slice(None)) + self.x_rows + (slice(lo, hi),)],
                      xs[..., src:src + hi - lo])


class _WinogradGrad(_Form):
    """3x3 stride-1 kernels (where the forward pass runs Winograd): F(3x3, 2x2) in C over
    the images of a part, the 2x2 tiles of g against the 4x4 patches of x summed in the
    transformed domain (native.winograd_kernel_grad). One thread, 64 images (_Shifted ->
    this): 32->32@28 10.80 -> 6.93 ms, 32->64@14 5.47 -> 4.80, 64->64@14 10.36 -> 8.72,
    16->16@32 4.21 -> 2.34."""

    def accumulate(self, gn, n0, n1, threads):
        s = self.s
        dw = native.winograd_kernel_grad(s.x[n0:n1], gn[n0:n1], s.pads)
        return dw.reshape(-1, dw.shape[-1])


class _ShiftedGemms:
    """[a_j @ b.T for each a_j] stacked, (K*M, N), for a_j (M, rows) and b (N, rows): K
    MLAS GEMMs (transB) in one cached session with a symbolic row count."""

    def __init__(self, count, m, n, threads):
        def build(helper):
            nodes = [helper.make_node("Gemm", [f"a{j}", "b"], [f"y{j}"], transB=1)
                     for j in range(count)]
            nodes.append(helper.make_node("Concat", [f"y{j}" for j in range(count)], ["y"],
                                          axis=0))
            return nodes, [(f"a{j}", [m, "rows"]) for j in range(count)] + [("b", [n, "rows"])]
        self.session = session(("gemms_a_bt", count, m, n), build, threads)
        self.names = [f"a{j}" for j in range(count)]

    def __call__(self, a, b):
        feeds = dict(zip(self.names, a))
        feeds["b"] = b
        return self.session.run(None, feeds)[0]


class _KernelGradGemm:
    """cols @ g.T for cols (k, rows), g (n, rows): MLAS's GEMM (transB) in a cached
    session with a symbolic row count."""

    def __init__(self, k, n, threads):
        def build(helper):
            return ([helper.make_node("Gemm", ["a", "b"], ["y"], transB=1)],
                    [("a", [k, "rows"]), ("b", [n, "rows"])])
        self.session = session(("gemm_a_bt", k, n), build, threads)

    def __call__(self, cols, g):
        return self.session.run(None, {"a": cols, "b": g})[0]

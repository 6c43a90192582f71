"""The fused float32 kernels of `_native.c`, through ctypes.

The package build compiles `_native.c` where a C compiler is found (setup.py); where it is
not, or with MODELKIT_NATIVE=0, `available()` is False and the callers make the same update
with numpy. Each kernel is one pass over memory with numpy's float32 operations in numpy's
order, so both ways give the same numbers bit for bit (tests/backend/test_native.py). A
ctypes call releases the GIL: `parallel`'s threads run kernels on row blocks side by side.
SGD's and Adam's dense updates, dropout, tanh's gradient and the batch gather split arrays
of 32768 values (a gather: 128 KiB of rows) and more across the worker threads of `blas_pool`
(numbers unchanged: each value is computed alone).

Kernels: Adam with a row-sparse or a dense gradient; dropout's mask from its random draws;
SGD with momentum (AVX-512, its
multiply-adds fused as OpenBLAS's axpy makes them); one LSTM step's gate arithmetic,
forward (after numpy's tanh) and backward through time (tanh cell, sigmoid gates); a GRU
step's backward (reset_after); tanh's gradient; batch normalization's input gradient; the
2x2 max pooling's gradient; relu masks. The exceptions to the bit-for-bit rule, checked
against float64 instead: batch normalization's statistics and per-channel sums (also a
conv's bias gradient), which add float32 lanes per row in float64, their own order; and
the Winograd convolutions (AVX-512 only: `winograd_available()`), F(2x2, 3x3) for a 3x3
stride-1 conv's forward pass and input gradient and F(3x3, 2x2) for its kernel gradient,
another algorithm than MLAS's direct one and as exact; and the fused LSTM and GRU steps of
`_native_rnn.c` (AVX-512 only: `rnn_fused_available()`), each step's recurrent GEMM with
its gate arithmetic, forward and backward, with their own tanh and sigmoid (and the
GRU's, reset_after).
Measured in isolation, numpy -> kernel (benchmarks/results/vs_torch_cpu_2026-12-05_
session13_main.txt): Adam over the LSTM benchmark's 20000 x 128 embedding table, 4509 rows
in the gradient, 3.78 ms (seven passes in row blocks, two threads) -> 1.45 ms (one thread);
the LSTM op over 64 x 80 x 128, forward 12.02 -> 11.76 ms and backward 23.63 -> 21.31;
batch normalization's backward over 64x16x32x32 1.85 -> 1.48 ms; tanh's gradient over
200 x 500 values 25.8 -> 20.4 us. The loops vectorize only because their pointers are
`restrict` (without it the LSTM kernels ran scalar and slower than numpy).
"""

import ctypes
import importlib.machinery
import os

import numpy as np

_LIBRARY = None                 # the loaded library, False when there is none


def _load():
    here = os.path.dirname(os.path.abspath(__file__))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(here, "_native" + suffix)
        if not os.path.exists(path):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        f32, i32, i64, ptr = ctypes.c_float, ctypes.c_int, ctypes.c_int64, ctypes.c_void_p
        lib.modelkit_adam_rows.argtypes = (ptr, ptr, ptr, i64, i64, i64, ptr, ptr, ptr, i64,
                                           f32, f32, f32, f32)
        lib.modelkit_adam_rows.restype = None
        lib.modelkit_adam_dense.argtypes = (ptr, ptr, ptr, ptr, i64, f32, f32, f32, f32, f32,
                                            f32)
        lib.modelkit_adam_dense.restype = None
        lib.modelkit_lstm_bptt_step.argtypes = (ptr, ptr, ptr, ptr, ptr, ptr, i64, i64)
        lib.modelkit_lstm_bptt_step.restype = None
        lib.modelkit_lstm_cell_step.argtypes = (ptr, ptr, ptr, i64)
        lib.modelkit_lstm_cell_step.restype = None
        lib.modelkit_tanh_grad.argtypes = (ptr, ptr, ptr, i64)
        lib.modelkit_tanh_grad.restype = None
        lib.modelkit_bn_input_grad.argtypes = (ptr, ptr, ptr, ptr, ptr, ptr, i64, i64)
        lib.modelkit_bn_input_grad.restype = None
        lib.modelkit_gru_bptt_step.argtypes = (ptr, ptr, ptr, ptr, ptr, ptr, ptr, i64, i64)
        lib.modelkit_gru_bptt_step.restype = None
        lib.modelkit_bn_row_moments.argtypes = (ptr, i64, i64, ptr, ptr)
        lib.modelkit_bn_row_moments.restype = None
        lib.modelkit_bn_normalize.argtypes = (ptr, i64, i64, i64, ptr, ptr, ptr, ptr)
        lib.modelkit_bn_normalize.restype = None
        lib.modelkit_channel_sums.argtypes = (ptr, ptr, ptr, ptr, i64, i64, i64, ptr, ptr, ptr)
        lib.modelkit_channel_sums.restype = None
        lib.modelkit_max_pool_2x2_grad.argtypes = (ptr, ptr, ptr, i64, i64, i64, ptr)
        lib.modelkit_max_pool_2x2_grad.restype = None
        lib.modelkit_avx512_available.argtypes = ()
        lib.modelkit_avx512_available.restype = ctypes.c_int
        lib.modelkit_winograd_filter.argtypes = (ptr, i64, i64, ptr)
        lib.modelkit_winograd_filter.restype = None
        lib.modelkit_winograd_conv.argtypes = (ptr, i64, i64, i64, i64, ptr, i64, ptr, i64, i64,
                                               i64, i64, ctypes.c_int, ptr, ptr)
        lib.modelkit_winograd_conv.restype = ctypes.c_int
        lib.modelkit_winograd_kernel_grad.argtypes = (ptr, ptr, i64, i64, i64, i64, i64, i64,
                                                       i64, i64, i64, ptr)
        lib.modelkit_winograd_kernel_grad.restype = ctypes.c_int
        lib.modelkit_dropout_apply.argtypes = (ptr, ptr, i64, ctypes.c_int, ctypes.c_uint32, f32,
                                               ptr)
        lib.modelkit_dropout_apply.restype = None
        lib.modelkit_sgd_momentum.argtypes = (ptr, ptr, ptr, i64, f32, f32, ctypes.c_int)
        lib.modelkit_sgd_momentum.restype = ctypes.c_int
        lib.modelkit_take_rows.argtypes = (ptr, i64, ptr, i64, ptr)
        lib.modelkit_take_rows.restype = None
        lib.modelkit_pool_install.argtypes = (ptr, i64)
        lib.modelkit_pool_install.restype = ctypes.c_int
        lib.modelkit_pool_workers.argtypes = ()
        lib.modelkit_pool_workers.restype = ctypes.c_int
        lib.modelkit_pool_set_spin.argtypes = (i64,)
        lib.modelkit_pool_set_spin.restype = None
        lib.modelkit_pool_dispatches.argtypes = ()
        lib.modelkit_pool_dispatches.restype = i64
        lib.modelkit_rnn_pack_forward.argtypes = (ptr, i64, i64, ptr)
        lib.modelkit_rnn_pack_forward.restype = None
        lib.modelkit_rnn_pack_backward.argtypes = (ptr, i64, i64, ptr)
        lib.modelkit_rnn_pack_backward.restype = None
        lib.modelkit_lstm_forward_steps.argtypes = (ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, f32,
                                                    i32, i64, i64, i64, i64, i64)
        lib.modelkit_lstm_forward_steps.restype = ctypes.c_int
        lib.modelkit_lstm_backward_steps.argtypes = (ptr, ptr, ptr, ptr, ptr, ptr, ptr, f32,
                                                     i32, i64, ptr, ptr, ptr, i64, i64, i64,
                                                     i64)
        lib.modelkit_lstm_backward_steps.restype = ctypes.c_int
        lib.modelkit_gru_forward_steps.argtypes = (ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, f32,
                                                   i32, i64, i64, i64, i64, i64)
        lib.modelkit_gru_forward_steps.restype = ctypes.c_int
        lib.modelkit_gru_backward_steps.argtypes = (ptr, ptr, ptr, ptr, ptr, ptr, ptr, f32, i32,
                                                    i64, ptr, ptr, ptr, i64, i64, i64, i64)
        lib.modelkit_gru_backward_steps.restype = ctypes.c_int
        lib.modelkit_gru_before_forward_steps.argtypes = (ptr, ptr, ptr, ptr, ptr, ptr, ptr,
                                                          ptr, f32, i32, i64, i64, i64, i64,
                                                          i64)
        lib.modelkit_gru_before_forward_steps.restype = ctypes.c_int
        lib.modelkit_gru_before_backward_steps.argtypes = (ptr, ptr, ptr, ptr, ptr, ptr, ptr,
                                                           f32, i32, i64, ptr, ptr, i64, i64,
                                                           i64, i64)
        lib.modelkit_gru_before_backward_steps.restype = ctypes.c_int
        return lib
    return False


def _library():
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = _load()
    return _LIBRARY


def available():
    """Whether the kernels were built and are switched on (MODELKIT_NATIVE, default 1)."""
    return os.environ.get("MODELKIT_NATIVE", "1") != "0" and bool(_library())


def takes(*arrays):
    """Whether the kernels are on and can work on these arrays: float32, C-contiguous."""
    return available() and all(a.dtype == np.float32 and a.flags.c_contiguous
                               for a in arrays)


def adam_rows(p, m, v, lo, hi, rows, gm, gv, b1, b2, eps, lr):
    """Adam on rows [lo, hi) of p, m, v (rows first) in place, for a gradient that is zero except
    on the sorted unique int64 `rows`, whose terms gm = g (1 - b1), gv = g g (1 - b2) are
    given row by row: m = m b1 (+ gm), v = v b2 (+ gv), p -= lr m / (sqrt(v) + eps)."""
    width = p.size // p.shape[0]
    _library().modelkit_adam_rows(p.ctypes.data, m.ctypes.data, v.ctypes.data, width, lo, hi,
                                  rows.ctypes.data, gm.ctypes.data, gv.ctypes.data, len(rows),
                                  b1, b2, eps, lr)


def adam_dense(p, m, v, g, b1, b2, eps, lr):
    """Adam on p, m, v in place with the dense gradient g (all of one size):
    m = m b1 + g (1 - b1), v = v b2 + g g (1 - b2), p -= lr m / (sqrt(v) + eps)."""
    _library().modelkit_adam_dense(p.ctypes.data, m.ctypes.data, v.ctypes.data, g.ctypes.data,
                                   p.size, b1, 1.0 - b1, b2, 1.0 - b2, eps, lr)


def dropout_apply(a, raw, bits, below, scale, out):
    """out = a * the dropout mask that the random draws `raw` (uint64) make: value i kept
    (times `scale`) when its bit is set (bits 1, np.unpackbits' order) or its byte or
    16-bit word is below `below` (bits 8, 16), else times 0."""
    _library().modelkit_dropout_apply(a.ctypes.data, raw.ctypes.data, a.size, bits, below,
                                      float(scale), out.ctypes.data)


TAKE_ROWS_BYTES = 1 << 16     # smaller gathers: numpy's indexing, no call overhead


def take_rows(a, index):
    """a[index] for a 1-D integer `index` into the first axis of a numpy array: the rows
    copied by the C kernel (split across blas_pool's workers) where `a` is C-contiguous, not
    of objects, the copy is large and every index is in range (negative ones included),
    else numpy's own indexing. The same array either way."""
    if (type(a) is not np.ndarray or a.ndim == 0 or a.dtype.hasobject or not a.flags.c_contiguous
            or not isinstance(index, np.ndarray) or index.ndim != 1 or index.dtype.kind not in "iu"
            or index.size * (a.nbytes // max(len(a), 1)) < TAKE_ROWS_BYTES or not available()):
        return a[index]
    rows = index.astype(np.int64, copy=False)
    low = rows.min()
    if low < 0:
        rows = np.where(rows < 0, rows + len(a), rows)
        low = rows.min()
    if low < 0 or rows.max() >= len(a):
        return a[index]                     # numpy's IndexError, with its message
    out = np.empty((len(rows),) + a.shape[1:], a.dtype)
    _library().modelkit_take_rows(a.ctypes.data, a.nbytes // len(a), rows.ctypes.data,
                                  len(rows), out.ctypes.data)
    return out


def sgd_momentum_takes(*arrays):
    """Whether `sgd_momentum` runs on these arrays (`takes`, and an AVX-512 CPU)."""
    return takes(*arrays) and avx512_available()


def sgd_momentum(p, v, g, momentum, lr, nesterov):
    """SGD with momentum in place, one pass (AVX-512; see sgd_momentum_takes): v = v m,
    v += -lr g, then p += -lr g, p += m v (nesterov) or p += v; each += one fused
    multiply-add, the numbers of blas.axpy's passes."""
    _library().modelkit_sgd_momentum(p.ctypes.data, v.ctypes.data, g.ctypes.data, p.size,
                                     float(momentum), -float(lr), int(nesterov))


def lstm_bptt_step(z, ac, c, dh, dc, dz):
    """One step of an unmasked LSTM's BPTT (tanh cell, sigmoid gates): from the gate values
    z (4, B, U: i, f, o, g), ac = tanh(c'), the previous cell c and dh (B, U), the gate
    gradients into dz (B, 4U) and dc (B, U) updated in place to the previous step's."""
    B, U = dh.shape
    _library().modelkit_lstm_bptt_step(z.ctypes.data, ac.ctypes.data, c.ctypes.data,
                                       dh.ctypes.data, dc.ctypes.data, dz.ctypes.data, B, U)


def lstm_cell_step(t, c, c_new):
    """One LSTM forward step after tanh of its four gate blocks t (4, B, U: i, f, o, g of
    z / 2 for the sigmoid gates): i, f, o in place to 0.5 t + 0.5 (their sigmoids) and
    c_new = f c + i g."""
    _library().modelkit_lstm_cell_step(t.ctypes.data, c.ctypes.data, c_new.ctypes.data,
                                       c.size)


def tanh_grad(g, y):
    """g (1 - y y), a new array."""
    out = np.empty_like(g)
    _library().modelkit_tanh_grad(g.ctypes.data, y.ctypes.data, out.ctypes.data, g.size)
    return out


def bn_input_grad(g2, x2, srow, crow, krow, out):
    """Rows of batch normalization's input gradient into `out` (all (rows, width), the
    factor rows (width,)): out = g srow + (x crow + krow)."""
    rows, width = g2.shape
    _library().modelkit_bn_input_grad(g2.ctypes.data, x2.ctypes.data, srow.ctypes.data,
                                      crow.ctypes.data, krow.ctypes.data, out.ctypes.data,
                                      rows, width)


def gru_bptt_step(zt, h, rh, e, dh, dz, drec):
    """One step of an unmasked GRU's BPTT (reset_after, tanh candidate, sigmoid gates):
    from the gate values zt (3, B, U: z, r, hh), the previous state h, rh = h R_h + b_rh
    and e = dh' (B, U): dh = e z (the direct path to h) and the gate gradients into the
    step's rows dz, drec (B, 3U)."""
    B, U = h.shape
    _library().modelkit_gru_bptt_step(zt.ctypes.data, h.ctypes.data, rh.ctypes.data,
                                      e.ctypes.data, dh.ctypes.data, dz.ctypes.data,
                                      drec.ctypes.data, B, U)


def _address(a):
    return None if a is None else a.ctypes.data


def bn_row_moments(x2):
    """Per row of the (rows, B) block x2: (sum, the sum of (x - m)^2 with m = float32(sum /
    B)), both float64 (rows,)."""
    rows, b = x2.shape
    total, dev2 = np.empty(rows), np.empty(rows)
    _library().modelkit_bn_row_moments(x2.ctypes.data, rows, b, total.ctypes.data,
                                       dev2.ctypes.data)
    return total, dev2


def bn_normalize(x3, scale, shift, y3, relu3=None):
    """y3 = x3 scale + shift per channel of the (images, C, B) blocks (float32 (C,) factors),
    and relu3 = max(y3, 0) as numpy's maximum makes it (NaN stays, -0.0 becomes 0) when
    given."""
    images, c, b = x3.shape
    _library().modelkit_bn_normalize(x3.ctypes.data, images, c, b, scale.ctypes.data,
                                     shift.ctypes.data, y3.ctypes.data, _address(relu3))


def channel_sums(g3, x3=None, mask3=None, centre=None, masked3=None):
    """Per channel of the (images, C, B) blocks: (sum g, sum g (x - centre) or None without
    x3) in float64 (centre None: sum g x); with `mask3`, g is first g * (mask3 > 0), written
    to masked3."""
    images, c, b = g3.shape
    gsum = np.zeros(c)
    gdot = None if x3 is None else np.zeros(c)
    _library().modelkit_channel_sums(g3.ctypes.data, _address(x3), _address(mask3),
                                     _address(centre), images, c, b, _address(masked3),
                                     gsum.ctypes.data, _address(gdot))
    return gsum, gdot


def max_pool_2x2_grad(x, y, g, dx):
    """dx = the gradient g of the 2x2 (stride 2) max pooling y of x (NC..HW blocks, H and W
    even): each window's g to its first cell equal to its maximum (g * 1), g * 0 elsewhere."""
    h, w = x.shape[-2:]
    _library().modelkit_max_pool_2x2_grad(x.ctypes.data, y.ctypes.data, g.ctypes.data,
                                          x.size // (h * w), h, w, dx.ctypes.data)


def avx512_available():
    """Whether the AVX-512 kernels run here (built, and an AVX-512 CPU)."""
    return available() and bool(_library().modelkit_avx512_available())


def winograd_available():
    """Whether the Winograd convolution runs here (the kernels built, an AVX-512 CPU)."""
    return avx512_available()


def winograd_filter(w):
    """The (16, C_out, C_in) Winograd F(2x2, 3x3) transforms G w G^T of the (C_out, C_in,
    3, 3) float32 kernel w."""
    cout, cin = w.shape[:2]
    u = np.empty((16, cout, cin), np.float32)
    _library().modelkit_winograd_filter(w.ctypes.data, cout, cin, u.ctypes.data)
    return u


def winograd_conv(x, u, bias, pads, relu, y, pooled=None):
    """y = the 3x3 stride-1 convolution of the NCHW float32 x padded by pads ((top, bottom),
    (left, right)), from the filter transforms u (winograd_filter), + bias (or None), relu'd
    when `relu`, into the NCHW y; and its 2x2 max pooling (stride 2) into `pooled` when
    given (y's height and width even)."""
    n, cin, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    if pooled is not None and (y.shape[2] % 2 or y.shape[3] % 2):
        raise ValueError(f"a 2x2 pooling of the Winograd output needs even sizes, not "
                         f"{y.shape[2:]}")
    if _library().modelkit_winograd_conv(x.ctypes.data, n, cin, h, w, u.ctypes.data,
                                         u.shape[1], _address(bias), pt, pb, pl, pr,
                                         int(relu), y.ctypes.data, _address(pooled)):
        raise MemoryError("the Winograd convolution's buffers could not be allocated")


def winograd_kernel_grad(x, g, pads):
    """The (3, 3, C_in, C_out) kernel gradient of the 3x3 stride-1 convolution of the NCHW
    float32 x padded by pads ((top, bottom), (left, right)) whose output gradient is g, by
    Winograd F(3x3, 2x2), summed over the images."""
    n, cin, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    dw = np.empty((3, 3, cin, g.shape[1]), np.float32)
    if _library().modelkit_winograd_kernel_grad(x.ctypes.data, g.ctypes.data, n, cin, h, w,
                                                g.shape[1], pt, pb, pl, pr, dw.ctypes.data):
        raise MemoryError("the Winograd kernel gradient's buffers could not be allocated")
    return dw


def rnn_fused_available():
    """Whether the fused LSTM and GRU steps (`_native_rnn.c`: AVX-512) run here."""
    return avx512_available()


def rnn_pack_forward(r, gates):
    """The forward steps' packing of the (U, gates U) recurrent kernel r (internal gate
    order, the sigmoid gates' columns halved)."""
    U = r.shape[0]
    r = np.ascontiguousarray(r, dtype=np.float32)
    rp = np.empty((U + 15) // 16 * U * 16 * gates, np.float32)
    _library().modelkit_rnn_pack_forward(r.ctypes.data, U, gates, rp.ctypes.data)
    return rp


def rnn_pack_backward(r, gates):
    """The backward steps' packing of r^T for the (U, gates U) recurrent kernel r."""
    U = r.shape[0]
    r = np.ascontiguousarray(r, dtype=np.float32)
    rtp = np.empty((U + 63) // 64 * gates * U * 64, np.float32)
    _library().modelkit_rnn_pack_backward(r.ctypes.data, U, gates, rtp.ctypes.data)
    return rtp


def _run_steps(fn, what, *args):
    """A fused steps function of `_native_rnn.c` on `args`; MemoryError when its buffer
    could not be allocated (`what`: whose steps)."""
    if fn(*args):
        raise MemoryError(f"the {what} steps' buffer could not be allocated")


def lstm_forward_steps(rp, z, h, c, ac, t0, t1, rd=None, hd=None, keep=None, acts=(0.0, False)):
    """LSTM forward steps [t0, t1) in place (tanh cell, sigmoid gates): z (T, 4, B, U) from
    the halved projections to the gate values (i, f, o, g), h, c (T + 1, B, U) row t + 1 from
    row t, ac (T, B, U) = tanh(c'); rp from rnn_pack_forward(., 4). With the recurrent
    dropout's masks rd (4, B, U) the GEMM takes h rd per gate, written to hd (4, T, B, U).
    keep: a masked sequence's (T, B) uint8, 0 where a row's step is masked (its h and c
    stay the previous step's). acts: the cell's (gate_slope, sigmoid_cell): 0 for sigmoid
    gates, else the hard sigmoid's slope (z and rp's columns not halved); the candidate's and
    output's activation sigmoid instead of tanh."""
    T = ac.shape[0]
    B, U = h.shape[1:]
    _run_steps(_library().modelkit_lstm_forward_steps, "LSTM forward", rp.ctypes.data,
               z.ctypes.data, h.ctypes.data, c.ctypes.data, ac.ctypes.data, _address(rd),
               _address(hd), _address(keep), *acts, T, t0, t1, B, U)


def lstm_backward_steps(rtp, z, ac, c, gseq, dh, dc, dz, t0, t1, rd=None, keep=None,
                        acts=(0.0, False)):
    """LSTM BPTT steps t1 - 1 down to t0 in place (tanh cell, sigmoid gates): from the gate
    values z (T, 4, B, U), ac (T, B, U), c (T + 1, B, U) and the output sequence's gradient
    gseq (B, T, U, or None), dh and dc (B, U) from step t1's to step t0's and each step's
    gate gradients into dz (T, B, 4U); rtp from rnn_pack_backward(., 4); rd the recurrent
    dropout's masks (4, B, U) or None. keep, acts: as for lstm_forward_steps (a masked
    row's dh, dc pass its step by, dh plus the step's gseq; its gate gradients are 0)."""
    T = ac.shape[0]
    B, U = dh.shape
    _run_steps(_library().modelkit_lstm_backward_steps, "LSTM backward", rtp.ctypes.data,
               z.ctypes.data, ac.ctypes.data, c.ctypes.data, _address(gseq), _address(rd),
               _address(keep), *acts, T, dh.ctypes.data, dc.ctypes.data, dz.ctypes.data,
               t0, t1, B, U)


def gru_forward_steps(rp, brec, z, h, rh, t0, t1, rd=None, hd=None, keep=None,
                      acts=(0.0, False)):
    """GRU (reset_after, tanh candidate, sigmoid gates) forward steps [t0, t1) in place:
    z (T, 3, B, U) from the projections (z and r halved) to the gate values (z, r, hh),
    h (T + 1, B, U) row t + 1 from row t, rh (T, B, U) = h R_h + b_rh; rp from
    rnn_pack_forward(., 3) of the halved kernel, brec the (3U,) halved recurrent bias or
    None; rd, hd, keep, acts as for lstm_forward_steps (3 gates)."""
    T = rh.shape[0]
    B, U = h.shape[1:]
    _run_steps(_library().modelkit_gru_forward_steps, "GRU forward", rp.ctypes.data,
               _address(brec), z.ctypes.data, h.ctypes.data, rh.ctypes.data, _address(rd),
               _address(hd), _address(keep), *acts, T, t0, t1, B, U)


def gru_backward_steps(rtp, z, h, rh, gseq, dh, dz, drec, t0, t1, rd=None, keep=None,
                       acts=(0.0, False)):
    """GRU BPTT steps t1 - 1 down to t0 in place (reset_after, tanh candidate, sigmoid
    gates): from the gate values z (T, 3, B, U), the states h (T + 1, B, U), rh (T, B, U)
    and the output sequence's gradient gseq (B, T, U, or None), dh (B, U) from step t1's to
    step t0's; each step's gradients of the projection and of h R + b_rec into dz and drec
    (T, B, 3U); rtp from rnn_pack_backward(., 3); rd the recurrent dropout's masks
    (3, B, U) or None; keep, acts as for lstm_backward_steps (a masked row's dz, drec
    0)."""
    T = rh.shape[0]
    B, U = dh.shape
    _run_steps(_library().modelkit_gru_backward_steps, "GRU backward", rtp.ctypes.data,
               z.ctypes.data, h.ctypes.data, rh.ctypes.data, _address(gseq), _address(rd),
               _address(keep), *acts, T, dh.ctypes.data, dz.ctypes.data, drec.ctypes.data,
               t0, t1, B, U)


def gru_before_forward_steps(rp, rp_h, z, h, q, t0, t1, rd=None, hd=None, keep=None,
                             acts=(0.0, False)):
    """GRU forward steps without reset_after [t0, t1) in place (tanh candidate): z
    (T, 3, B, U) from the projections (bias included; z and r halved for sigmoid gates) to
    the gate values (z, r, hh), h (T + 1, B, U) row t + 1 from row t, q (T, B, U) = r h
    (times the candidate's recurrent dropout mask); rp, rp_h from rnn_pack_forward of R's
    z and r columns (halved for sigmoid gates; 2 gates) and of its candidate columns (1).
    rd: the recurrent dropout's masks (3, B, U) or None; hd: with rd, (2, T, B, U) for
    h rd of z and r; keep, acts: as for lstm_forward_steps."""
    T = q.shape[0]
    B, U = h.shape[1:]
    _run_steps(_library().modelkit_gru_before_forward_steps, "GRU forward", rp.ctypes.data,
               rp_h.ctypes.data, z.ctypes.data, h.ctypes.data, q.ctypes.data, _address(rd),
               _address(hd), _address(keep), *acts, T, t0, t1, B, U)


def gru_before_backward_steps(rtp, rtp_h, z, h, gseq, dh, dz, t0, t1, rd=None, keep=None,
                              acts=(0.0, False)):
    """GRU BPTT steps without reset_after t1 - 1 down to t0 in place: from the gate values
    z (T, 3, B, U), the states h (T + 1, B, U) and the output sequence's gradient gseq
    (B, T, U, or None), dh (B, U) from step t1's to step t0's, each step's gradient of the
    projection into dz (T, B, 3U); rtp, rtp_h from rnn_pack_backward of R's z and r columns
    (2 gates) and of its candidate columns (1); rd, keep, acts as for
    gru_before_forward_steps."""
    T = dz.shape[0]
    B, U = dh.shape
    _run_steps(_library().modelkit_gru_before_backward_steps, "GRU backward", rtp.ctypes.data,
               rtp_h.ctypes.data, z.ctypes.data, h.ctypes.data, _address(gseq), _address(rd),
               _address(keep), *acts, T, dh.ctypes.data, dz.ctypes.data, t0, t1, B, U)

"""Pieces shared by the fused recurrent ops: the buffer pool, time-major layout, masks,
input projection and the recurrent GEMMs (forward and backward)."""

import os
import threading

import numpy as np

from ...errors import ShapeError
from .. import native
from .. import parallel as _parallel
from ..blas import single_threaded
from ..buffers import BufferPool
from ..streams import SIDE, Deferred, worth_side

# the large per-call arrays come from one pool
_POOL = BufferPool()
_empty = _POOL.empty


_REC_ROWS = 32        # batch rows per GEMM of the forward's gate-major products (_rec_forward)


def _gemm(a, b, out=None):
    """Every matrix product of the fused ops goes through here (benchmarks profile it)."""
    return np.matmul(a, b, out=out)


def _to_time_major(x, go_backwards):
    """(batch, time, ...) -> contiguous (time, batch, ...) in processing order."""
    xt = _time_major_view(x, go_backwards)
    out = _empty(xt.shape, xt.dtype)
    np.copyto(out, xt)
    return out


def _time_major_view(x, go_backwards):
    """(batch, time, ...) as a (time, batch, ...) view in processing order."""
    xt = np.swapaxes(x, 0, 1)
    return xt[::-1] if go_backwards else xt


def _from_time_major(xt, go_backwards):
    """Inverse of `_to_time_major` (a view)."""
    if go_backwards:
        xt = xt[::-1]
    return np.swapaxes(xt, 0, 1)


def _prepare_mask(mask, go_backwards, shape):
    """(batch, time) mask -> (time, batch, 1) bool "keep" and its negation, or (None, None)
    when nothing is masked."""
    if mask is None:
        return None, None
    m = np.asarray(mask).astype(bool, copy=False)
    if m.shape != tuple(shape):
        raise ShapeError(f"the mask must have shape (batch, time) = {tuple(shape)}, got "
                         f"{m.shape}")
    if m.all():
        return None, None
    keep = _to_time_major(m, go_backwards)[..., None]
    return keep, ~keep


def _gate_masks(drop, gates, per_gate_perm=None):
    """A dropout mask as given: None, (B, n) (shared by all gates) or (G, B, n) (one per
    gate, Keras gate order; reordered by `per_gate_perm`)."""
    if drop is None or drop.ndim == 2:
        return drop
    if drop.ndim != 3 or drop.shape[0] != gates:
        raise ShapeError(f"per-gate dropout masks must have shape ({gates}, batch, n), got "
                         f"{drop.shape}")
    return drop if per_gate_perm is None else drop[per_gate_perm]


def _project(x_tm, kernel, bias, drop, gates, gate_major=False):
    """Input projection of all timesteps: (T, B, I) -> (T, B, G*u) in one GEMM (one per
    gate when each gate has its own dropout mask), or gate-major (T, G, B, u) (a batch of
    per-gate GEMMs, as fast). Returns (projection, saved inputs)."""
    T, B, I = x_tm.shape
    width = kernel.shape[1]
    u = width // gates
    if drop is None or drop.ndim == 2:
        xm = x_tm if drop is None else x_tm * drop
        if gate_major:
            xp = _project_gates(xm, _gate_split(kernel, gates), _empty((T, gates, B, u),
                                                                       x_tm.dtype))
        else:
            xp = _gemm(xm.reshape(T * B, I), kernel, out=_empty((T * B, width), x_tm.dtype))
    else:
        xm = x_tm[None] * drop[:, None]                                 # (G, T, B, I)
        res = _gemm(xm.reshape(gates, T * B, I), _gate_split(kernel, gates))   # (G, T*B, u)
        if gate_major:
            xp = _empty((T, gates, B, u), x_tm.dtype)
            np.copyto(xp, res.reshape(gates, T, B, u).transpose(1, 0, 2, 3))
        else:
            xp = np.ascontiguousarray(res.transpose(1, 0, 2)).reshape(T * B, width)
    if bias is not None:
        xp += bias.reshape(gates, 1, u) if gate_major else bias
    return (xp if gate_major else xp.reshape(T, B, width)), xm


def _halve_leading(n, *arrays):
    """Copies with the first n entries of the last axis halved (None stays None): weights
    whose GEMMs then give z / 2 for the gates in those columns, bit for bit (a
    power-of-two scale), which is what `sigmoid_of_half` takes."""
    out = []
    for a in arrays:
        if a is not None:
            scale = np.ones(a.shape[-1], a.dtype)
            scale[:n] = 0.5
            a = np.multiply(a, scale)           # one pass (a copy + a strided pass: 2-3x slower)
        out.append(a)
    return out


def _gate_blocks(a, order, axis=-1):
    """A contiguous copy of `a` with the len(order) gate blocks along `axis` taken in
    `order`: `a[..., perm]` for the matching column permutation, as one block take
    (a (128, 512) kernel: 7 us instead of 150 us)."""
    axis %= a.ndim
    shape = a.shape
    blocks = a.reshape(shape[:axis] + (len(order), shape[axis] // len(order)) +
                       shape[axis + 1:])
    return np.take(blocks, order, axis=axis).reshape(shape)


def _gate_split(kernel, gates):
    """(n, G*u) -> contiguous (G, n, u): one matrix per gate."""
    n, width = kernel.shape
    return np.ascontiguousarray(kernel.reshape(n, gates, width // gates).transpose(1, 0, 2))


def _project_gates(xm, kernel_gates, out):
    """out (T, G, B, u) = x_t @ kernel_g for every step and gate; batches of 2 * _REC_ROWS
    rows or more by blocks of _REC_ROWS rows, as `_rec_forward` (80 steps of 64 x 128 ->
    4 x 128: 7.9 -> 7.0 ms on one thread)."""
    T, B, I = xm.shape
    n = _REC_ROWS
    if B < 2 * n:
        return _gemm(xm[:, None], kernel_gates, out=out)
    G, u = out.shape[1], out.shape[3]
    full = B - B % n
    # (T, blocks, 1, n, I) @ (G, I, u) -> (T, blocks, G, n, u): views of xm and out (splitting
    # an axis never copies)
    _gemm(xm[:, :full].reshape(T, full // n, 1, n, I), kernel_gates,
          out=out[:, :, :full].reshape(T, G, full // n, n, u).transpose(0, 2, 1, 3, 4))
    if full < B:
        _gemm(xm[:, None, full:], kernel_gates, out=out[:, :, full:])
    return out


def _project_backward(dxp, xm, kernel, drop, gates, need_x, need_w, need_b, dx_out=None):
    """Gradients of `_project` given d(projection) (T, B, G*u); the input gradient goes
    to `dx_out` (contiguous (T, B, I)) when given."""
    T, B, width = dxp.shape
    I = kernel.shape[0]
    d2 = dxp.reshape(T * B, width)
    dx = dw = db = None
    if need_x:
        dx = _empty((T, B, I), d2.dtype) if dx_out is None else dx_out
    if need_b:
        db = d2.sum(axis=0)
    if drop is None or drop.ndim == 2:
        if need_w:
            dw = _gemm(xm.reshape(T * B, I).T, d2)
        if need_x:
            _gemm(d2, kernel.T, out=dx.reshape(T * B, I))
            if drop is not None:
                dx *= drop
    else:
        u = width // gates
        dg = d2.reshape(T * B, gates, u).transpose(1, 0, 2)             # (G, T*B, u)
        if need_w:
            dwg = _gemm(xm.reshape(gates, T * B, I).transpose(0, 2, 1), dg)   # (G, I, u)
            dw = np.ascontiguousarray(dwg.transpose(1, 0, 2)).reshape(I, width)
        if need_x:
            kg = kernel.reshape(I, gates, u).transpose(1, 2, 0)         # (G, u, I)
            dxg = _gemm(dg, kg).reshape(gates, T, B, I)
            dxg *= drop[:, None]
            np.sum(dxg, axis=0, out=dx)
    return dx, dw, db


def _rec_forward(h, rd, Rg, out):
    """out (G, B, u) = [(h * rd_g) @ R_g]_g, gate-major (Rg: (G, U, u), a batch of per-gate
    GEMMs as fast as one (B, U) @ (U, G*u)); returns the dropped h (G, B, U) or None.
    Batches of 2 * _REC_ROWS rows or more go in blocks of _REC_ROWS rows: OpenBLAS runs
    two (32, 128) @ (128, 128) GEMMs per gate 9-13% faster than one of 64 rows (one
    thread; 3-7% at 96-256 rows), and these GEMMs are most of a forward step's time."""
    hd = None if rd is None else h[None] * rd
    src = h if hd is None else hd
    B = h.shape[0]
    if B < 2 * _REC_ROWS:
        _gemm(src, Rg, out=out)
    else:
        for lo in range(0, B, _REC_ROWS):
            _gemm(src[..., lo:lo + _REC_ROWS, :], Rg, out=out[:, lo:lo + _REC_ROWS])
    return hd


def _rec_backward(dz, rd, R, Rg):
    """d h given d(out) of `_rec_forward`."""
    if rd is None:
        return _gemm(dz, R.T)
    B = dz.shape[0]
    G = rd.shape[0]
    dzg = dz.reshape(B, G, -1).transpose(1, 0, 2)                       # (G, B, u)
    dhd = _gemm(dzg, Rg.transpose(0, 2, 1))                             # (G, B, U)
    dhd *= rd
    return dhd.sum(axis=0)


def _rec_weight_grad(hs, dz, rd):
    """d R for all timesteps: hs (T, B, U) (or (G, T, B, U) dropped), dz (T, B, G*u)."""
    T, B, width = dz.shape
    if rd is None:
        U = hs.shape[-1]
        return _gemm(hs.reshape(T * B, U).T, dz.reshape(T * B, width))
    G, U = hs.shape[0], hs.shape[-1]
    u = width // G
    dzg = dz.reshape(T * B, G, u).transpose(1, 0, 2)                    # (G, T*B, u)
    res = _gemm(hs.reshape(G, T * B, U).transpose(0, 2, 1), dzg)        # (G, U, u)
    return np.ascontiguousarray(res.transpose(1, 0, 2)).reshape(U, width)


def _init_state(h0, B, U, dtype):
    if h0 is None:
        return np.zeros((B, U), dtype)
    return h0


def _check(name, x, kernel, recurrent_kernel, h0, extra_states=()):
    if x.ndim != 3:
        raise ShapeError(f"{name}: input must be (batch, time, features), got shape {x.shape}")
    B, _, I = x.shape
    if kernel.shape[0] != I:
        raise ShapeError(f"{name}: kernel expects {kernel.shape[0]} input features, got "
                         f"input of shape {x.shape}")
    U = recurrent_kernel.shape[0]
    for s in (h0,) + tuple(extra_states):
        if s is not None and s.shape != (B, U):
            raise ShapeError(f"{name}: initial state must have shape {(B, U)}, got {s.shape}")
    return B, I, U


def _mask_outputs(out_t, prev_out, drop_rows, zero_output):
    """Masked rows of this step's output repeat the previous output (or are zero)."""
    if zero_output:
        np.copyto(out_t, 0, where=drop_rows)
    else:
        np.copyto(out_t, prev_out, where=drop_rows)


def all_zero(a):
    """Whether every value of `a` is 0: at once for a broadcast single value (the tape's
    gradient of an output nothing used), else one pass."""
    if a.size and not any(a.strides):
        return not a.flat[0]
    return not a.any()


def _seq_grads(gseq):
    """The output-sequence gradient, time-major (a view). Outputs are in processing order
    already, so go_backwards needs no flip here."""
    return np.swapaxes(gseq, 0, 1)


def _apply_mask_step(OUT, H, t, keep, drop_rows, zero_output):
    OUT[t] = H[t + 1]
    _mask_outputs(OUT[t], OUT[t - 1] if t else 0, drop_rows[t], zero_output)
    np.copyto(H[t + 1], H[t], where=drop_rows[t])


def _keep_bytes(keep):
    """A masked sequence's (T, B, 1) bool mask as the fused steps' (T, B) uint8."""
    return np.ascontiguousarray(keep[..., 0]).view(np.uint8)


def _outputs_kept(keep, zero_output):
    """Where a masked sequence's outputs are its states (else 0): at the kept steps
    (zero_output), or from a row's first kept step on (a masked step repeats the previous
    output, which is the state it kept)."""
    return keep if zero_output else np.logical_or.accumulate(keep, axis=0)


def _masked_outputs(OUT, H, keep, zero_output):
    """A masked sequence's outputs after fused steps (whose masked rows kept their states):
    what `_apply_mask_step` makes step by step."""
    np.copyto(OUT, H[1:])
    np.copyto(OUT, 0, where=~_outputs_kept(keep, zero_output))


def _masked_output_grads(gseq, keep, zero_output):
    """The output sequence's gradient (B, T, U) for masked fused steps, or None when it is
    all zero: zero where the output is 0, the state's elsewhere (`_outputs_kept`); at a
    masked step the state passes the step by, and the gradient with it."""
    if all_zero(gseq):
        return None
    kept = np.swapaxes(_outputs_kept(keep, zero_output), 0, 1)        # (B, T, 1)
    return np.ascontiguousarray(np.where(kept, gseq, 0), dtype=np.float32)


def _incoming_grad(gs, t, dh, carry, keep, drop_rows, out):
    """d(new h) of step t from the later steps (dh) and the output sequence (gs, or None
    when it has no gradient); with a mask, also updates dh / carry for the masked part."""
    if gs is None:
        np.copyto(out, dh)
    else:
        np.add(gs[t], dh, out=out)
    if keep is None:
        return out
    if carry is not None:
        out += carry
        if gs is None:
            carry *= drop_rows[t]
        else:
            np.multiply(gs[t] + carry, drop_rows[t], out=carry)
    dh *= drop_rows[t]
    out *= keep[t]
    return out


# -- the all-timestep GEMMs of a backward pass, overlapped with BPTT ---------------------------

_CHUNKS = 10          # a sequence's timesteps split into about this many chunks
_MIN_CHUNK = 4        # timesteps; shorter sequences are not split
_WORKER = []          # [ThreadPoolExecutor(1)], started on first use


def _forget_worker_after_fork():
    _WORKER.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_worker_after_fork)


def _worker():
    if not _WORKER:
        from concurrent.futures import ThreadPoolExecutor
        _WORKER.append(ThreadPoolExecutor(1, thread_name_prefix="modelkit-rnn"))
    return _WORKER[0]


class _TimeChunks:
    """The GEMMs over all timesteps that end a backward pass (input, kernel, recurrent
    kernel and bias gradients), taken chunk by chunk of timesteps on a second thread while
    BPTT (one core's sequential work) goes on; at the end this thread takes the parts the
    worker has not started.

    `fn(lo, hi, part)` handles part `part` (of `parts`) of steps [lo, hi): it writes
    per-timestep gradients (the input's) into their rows itself and returns a tuple of
    weight gradients, None for those another part makes; a chunk's parts together make
    each gradient once, and these are summed over the chunks (None entries stay None).
    The worker takes a chunk's parts one by one, and at the end this thread claims the
    parts not started yet, also of the chunk the worker is in (its three GEMMs: ~0.7 ms
    pieces instead of ~2 ms chunks to share when BPTT ends; MODELKIT_RNN_SPLIT=0 leaves a
    started chunk to the worker). Call `done(t)` once BPTT has finished step t (going down
    from T - 1), then `results()`; or `after(rows, dx)` and `deferred(...)` to hand the
    weight gradients to the backward's side stream (see `weights_on_side`). Chunks are summed in
    a fixed order, so the numbers never depend on timing; with one worker thread
    (MODELKIT_NUM_THREADS=1) or a short sequence there is a single chunk, computed by
    `results()` exactly as without chunking.
    """

    def __init__(self, T, fn, parts=1):
        self.fn, self.hi, self.parts = fn, T, parts
        self.size = _chunk_size(T)
        self.pending = []                           # (_Chunk, future), latest steps first
        self.last = None                            # the chunk of the first steps

    def done(self, t):
        if self.hi - t >= self.size and t > 0:
            chunk = _Chunk(self.fn, t, self.hi, self.parts)
            self.pending.append((chunk, _worker().submit(chunk.run_pinned)))
            self.hi = t

    def results(self):
        """The gradients' sums over the chunks (every part made here or by the worker)."""
        self.share(range(self.parts))
        return _sum_chunks([c.values(range(self.parts)) for c in self._chunks()])

    def _first_steps(self):
        """The chunk of the first steps (made once BPTT is over)."""
        if self.last is None:
            self.last = _Chunk(self.fn, 0, self.hi, self.parts)
        return self.last

    def close(self):
        """BPTT is over and the weight gradients go to the side stream: the chunks the worker
        has not started come off its queue now (the side takes their weight parts)."""
        self._first_steps()
        for chunk, fut in self.pending:
            chunk.started = not fut.cancel()

    def share(self, parts):
        """Parts `parts` of every chunk done on return: the first steps' chunk and, from the
        earliest steps back (the worker goes the other way, on through its queue
        meanwhile), the parts not started yet run here, a chunk the worker has not
        started coming off its queue when this thread gets to it; then wait for those
        another thread runs."""
        split = os.environ.get("MODELKIT_RNN_SPLIT", "1") != "0"
        self._first_steps().take(parts)
        for chunk, fut in reversed(self.pending):
            chunk.started = not fut.cancel()
            if split or not chunk.started:
                chunk.take(parts)
        for chunk, fut in self.pending:
            if not split and chunk.started:
                fut.result()
            chunk.ensure(parts)
        self.last.ensure(parts)

    def after(self, parts, value):
        """A `streams.Deferred` of `value` once parts `parts` of every chunk are done (`share`,
        one BLAS thread): the input gradient, which the tape makes after it has handed the
        `deferred` weight gradients to the side stream, so the side starts on those while
        this thread finishes the input gradient's rows."""
        self.close()

        def finish():
            with single_threaded():
                self.share(parts)
            return value
        return Deferred(finish)

    def deferred(self, parts, indices, post):
        """After `close`: a `streams.Deferred` of post(*sums), the sums over the chunks of
        entries `indices` of the gradients that parts `parts` make, in the order of
        `results()` (the same numbers). Its parts are the chunks, those the worker has not
        started first (the side stream's worker runs them one by one and a thread that
        waits for the result the rest), each part's GEMMs on one BLAS thread."""
        self.close()
        chunks = self._chunks()
        order = sorted(range(len(chunks)), key=lambda k: chunks[k].started)

        def part(j):
            chunk = chunks[order[j]]
            with single_threaded():
                chunk.ensure(parts)
            vals = chunk.values(parts)
            return [vals[i] for i in indices]

        def combine(outs):
            placed = [None] * len(outs)
            for j, k in enumerate(order):
                placed[k] = outs[j]
            return post(*_sum_chunks(placed))

        return Deferred.in_parts(part, len(chunks), combine)

    def _chunks(self):
        """Every chunk, latest steps first (the order of the sums)."""
        return [c for c, _ in self.pending] + [self.last]


def _sum_chunks(per_chunk):
    """The chunks' gradient lists summed entry by entry (into the first chunk's arrays),
    latest steps first; None entries stay None."""
    out = []
    for vals in zip(*per_chunk):
        total = vals[0]
        if total is not None:
            for v in vals[1:]:
                total += v
        out.append(total)
    return out


class _Chunk:
    """The parts of one chunk of `_TimeChunks`, each run once by whichever thread claims
    it first: a part's lock is held while it runs, so `take` skips a part another thread
    runs or ran, and `ensure` waits for it."""

    started = True          # False once taken off the worker's queue before it started

    def __init__(self, fn, lo, hi, parts):
        self.fn, self.lo, self.hi = fn, lo, hi
        self.locks = [threading.Lock() for _ in range(parts)]
        self.ran = [False] * parts
        self.out = [None] * parts
        self.errors = [None] * parts

    def _run(self, j):
        """Part j unless it ran (the caller holds its lock). The last part to end drops
        `fn` (the backward's arrays): a worker's task can outlive the pass by a moment, and
        the buffer pool recycles only arrays nothing refers to."""
        if self.ran[j]:
            return
        try:
            self.out[j] = self.fn(self.lo, self.hi, j)
        except BaseException as e:
            self.errors[j] = e
            raise
        finally:
            self.ran[j] = True
            if all(self.ran):
                self.fn = None

    def take(self, parts):
        """Run those of `parts` that no thread has claimed."""
        for j in parts:
            if self.locks[j].acquire(blocking=False):
                try:
                    self._run(j)
                finally:
                    self.locks[j].release()

    def ensure(self, parts):
        """`parts` done on return: run here unless claimed, else wait for them; a part's
        error is raised here."""
        for j in parts:
            with self.locks[j]:
                self._run(j)
            if self.errors[j] is not None:
                raise self.errors[j]

    def run(self):
        self.take(range(len(self.locks)))

    def run_pinned(self):
        """`run` with OpenBLAS on one thread (the worker: its chunk may outlast the
        backward's own single-threaded block when the weights go to the side stream)."""
        with single_threaded():
            self.run()

    def values(self, parts):
        """The gradients parts `parts` made: each from the part that made it."""
        outs = [self.out[j] for j in parts]
        return [next((v for v in vals if v is not None), None) for vals in zip(*outs)]


def weights_on_side(needs, flops):
    """Whether a recurrent op's weight gradients (`needs`: their entries of the VJP's needs)
    go to the backward's side stream (streams.py) as Deferreds made from the time chunks
    while this thread returns the input gradient: every needed one may (SIDE), their
    GEMMs (`flops`) are worth a handoff (streams.worth_side), and MODELKIT_RNN_SIDE is
    not 0 (the switch for A/B)."""
    needs = worth_side(needs, flops)
    return (any(needs) and all(n is SIDE for n in needs if n)
            and os.environ.get("MODELKIT_RNN_SIDE", "1") != "0")


def _chunk_size(T):
    """Timesteps per chunk: the whole sequence when there is no second thread to use."""
    if _parallel.threads() >= 2 and T >= 2 * _MIN_CHUNK:
        return max(_MIN_CHUNK, -(-T // _CHUNKS))
    return T


def _project_ahead(x, go_backwards, kernel, bias, drop, gates, gate_major=False):
    """`_project` of `_to_time_major(x, go_backwards)`, with the time-major copy (times the
    dropout mask) and the projection of later timesteps made on the worker thread while
    the recurrence runs over earlier ones: -> (projection, saved inputs (time-major),
    ready) where `ready(t)` returns once step t's projection is there (the main thread
    copies only the first chunk: the whole 2.6 MB copy took it ~0.5 ms before the first
    step). Per-gate dropout masks, a mask of another dtype (or no second thread) project
    everything at once."""
    T = x.shape[1]
    size = _chunk_size(T)
    if size >= T or (drop is not None and (drop.ndim == 3 or drop.dtype != x.dtype)):
        P, xm = _project(_to_time_major(x, go_backwards), kernel, bias, drop, gates,
                         gate_major)
        return P, xm, _no_wait
    src = _time_major_view(x, go_backwards)
    _, B, I = src.shape
    xm = _empty(src.shape, x.dtype)
    width = kernel.shape[1]
    u = width // gates
    if gate_major:
        P = _empty((T, gates, B, u), x.dtype)
        kernel = _gate_split(kernel, gates)
        bias = None if bias is None else bias.reshape(gates, 1, u)
    else:
        P = _empty((T, B, width), x.dtype)

    def chunk(lo, hi):
        if drop is None:
            np.copyto(xm[lo:hi], src[lo:hi])
        else:
            np.multiply(src[lo:hi], drop, out=xm[lo:hi])
        if gate_major:
            out = _project_gates(xm[lo:hi], kernel, P[lo:hi])
        else:
            out = P[lo:hi].reshape((hi - lo) * B, -1)
            _gemm(xm[lo:hi].reshape((hi - lo) * B, I), kernel, out=out)
        if bias is not None:
            out += bias

    # the worker starts on the later chunks while this thread makes the first one
    later = [(lo, _worker().submit(chunk, lo, min(lo + size, T)))
             for lo in range(size, T, size)]
    chunk(0, size)

    def ready(t):
        while later and later[0][0] <= t:
            later.pop(0)[1].result()
    return P, xm, ready


def _no_wait(t):
    pass


def _time_slice(a, lo, hi, gate_major):
    """Steps [lo, hi) of a time-major array, or of a gate-major (G, T, ...) one."""
    return a[:, lo:hi] if gate_major else a[lo:hi]


# -- the fused C steps (_native_rnn.c) ----------------------------------------------------------

def fused_steps(*arrays, rdrop=None):
    """Whether `_native_rnn.c`'s fused steps make a recurrence over these arrays (float32,
    C-contiguous, an AVX-512 CPU, MODELKIT_RNN_FUSED not 0) with the recurrent dropout's
    masks `rdrop` (None, or float32); the caller has checked that the cell is one they make
    (`fused_acts`)."""
    return (os.environ.get("MODELKIT_RNN_FUSED", "1") != "0" and native.takes(*arrays)
            and (rdrop is None or rdrop.dtype == np.float32) and native.rnn_fused_available())


FUSED_CELLS = ("tanh", "sigmoid")         # the cell activations the fused steps make


def fused_acts(act, ract):
    """The fused steps' `acts` for a cell of these activations, (gate_slope, sigmoid_cell):
    0 for sigmoid gates, the slope of hard sigmoid ones; whether the cell's activation is
    sigmoid (else tanh). None for a cell they do not make."""
    slope = 0.0 if ract.name == "sigmoid" else ract.hard_slope
    if slope is None or act.name not in FUSED_CELLS:
        return None
    return slope, act.name == "sigmoid"


def _contiguous(rdrop):
    return None if rdrop is None else np.ascontiguousarray(rdrop)


def fused_forward(steps, kernels, T, ready, rdrop=None):
    """A forward recurrence in `_native_rnn.c`'s fused steps: steps(*packed, rd, lo, hi)
    with the recurrent kernels packed (`kernels`: [(R, its gates)], each through
    rnn_pack_forward) and the recurrent dropout's masks (contiguous, or None), chunk by
    chunk of the projection ahead (`ready`)."""
    packed, rd = [native.rnn_pack_forward(r, g) for r, g in kernels], _contiguous(rdrop)
    size = max(1, _chunk_size(T))                   # (an empty sequence: no chunk)
    for lo in range(0, T, size):
        hi = min(lo + size, T)
        ready(hi - 1)
        steps(*packed, rd, lo, hi)


def fused_backward(steps, kernels, gseq, T, size, done, rdrop=None):
    """BPTT in `_native_rnn.c`'s fused steps: steps(*packed, gq, rd, lo, hi) with the
    recurrent kernels' R^T packed (`kernels`: [(R, its gates)], each through
    rnn_pack_backward), the output sequence's gradient (B, T, U) and the recurrent
    dropout's masks (contiguous, or None), `size` timesteps a call from the last down,
    `done(lo)` after each (the steps `_TimeChunks` splits at)."""
    packed, rd = [native.rnn_pack_backward(r, g) for r, g in kernels], _contiguous(rdrop)
    gq = None if gseq is None else np.ascontiguousarray(gseq, dtype=np.float32)
    hi = T
    while hi > 0:
        lo = max(hi - size, 0)
        steps(*packed, gq, rd, lo, hi)
        done(lo)
        hi = lo

"""Numpy work over blocks of rows, on a few threads.

numpy releases the GIL inside its loops, so the blocks of one big elementwise pass or
reduction run in parallel on cores numpy itself leaves idle, and a block sized for the L2
cache lets several passes over it run from cache instead of streaming the whole array
through memory once per pass.

Blocks depend on the array's size only (never on the thread count) and per-block results
come back in block order, so a reduction that combines them in that order gives the same
numbers for any MODELKIT_NUM_THREADS. Threads take the next free block as they finish one,
which keeps both cores busy when another process holds one of them for a while.
"""

import contextlib
import itertools
import os
import threading

import numpy as np

from . import blas

BLOCK_BYTES = 512 << 10      # one block of rows (half an L2 cache)

_POOLS = {}                  # ThreadPoolExecutor by worker count
_LOCAL = threading.local()   # .busy: this thread runs a block (nested calls run inline)


def _forget_pools_after_fork():
    """A forked child inherits the pools but not their threads: start new ones there."""
    _POOLS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


_CORES = os.cpu_count() or 1  # os.cpu_count() reads /sys on every call (~30 us)


def threads():
    """Worker threads for the fast kernels: MODELKIT_NUM_THREADS, default all cores."""
    n = os.environ.get("MODELKIT_NUM_THREADS")
    return max(1, int(n)) if n else _CORES


def pool(workers):
    """The shared ThreadPoolExecutor with `workers` threads."""
    p = _POOLS.get(workers)
    if p is None:
        from concurrent.futures import ThreadPoolExecutor
        p = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="modelkit")
    return p


def blocks(n, row_bytes, block_bytes=None):
    """[(start, stop)] covering range(n) in blocks of about `block_bytes` (BLOCK_BYTES)."""
    per = max(1, int((block_bytes or BLOCK_BYTES) // max(int(row_bytes), 1)))
    return [(i, min(i + per, n)) for i in range(0, n, per)]


_RESERVED = [0]              # cores held by side work (streams.py), not for new blocks


def available():
    """Threads a new parallel call may use: `threads()` less the cores that side work
    holds now (at least one). Only how many threads run changes, never the blocks."""
    return max(1, threads() - _RESERVED[0])


@contextlib.contextmanager
def reserved():
    """Within the block this thread's work holds a core: other threads' parallel calls
    use one thread fewer (the backward pass's side stream; see streams.py)."""
    _RESERVED[0] += 1        # += on a list item is not atomic: the side stream is one thread
    try:
        yield
    finally:
        _RESERVED[0] -= 1


@contextlib.contextmanager
def inline():
    """Within the block, this thread runs the helpers below on itself alone (no pool
    threads); the results are the same numbers (blocks and their order do not change)."""
    before = getattr(_LOCAL, "busy", False)
    _LOCAL.busy = True
    try:
        yield
    finally:
        _LOCAL.busy = before


def map_blocks(fn, n, row_bytes, block_bytes=None):
    """[fn(start, stop) for each of `blocks(n, row_bytes)`], the blocks spread over
    `threads()` threads (the calling one included); results in block order."""
    bounds = blocks(n, row_bytes, block_bytes)
    return _claimed(lambda j: fn(*bounds[j]), len(bounds), threads())


def map_items(fn, count):
    """[fn(i) for i in range(count)], the items claimed one by one by `threads()` threads
    (the calling one included; a thread slowed by another process takes fewer); results in
    item order."""
    return _claimed(fn, count, threads())


def run_parts(fn, parts):
    """[fn(i) for i in range(parts)] on up to `parts` threads (the calling one included)."""
    return _claimed(fn, parts, parts)


_WAITING = []                # claim loops of calls made while side work held a core


def help_waiting():
    """Take items of the calls that started with fewer threads because side work held a
    core (`reserved`): the side stream's worker calls this when it runs out of work, so
    the core comes back to them (the optimizer's row blocks after an LSTM's side-stream
    weight gradients) instead of idling until they end."""
    for join in list(_WAITING):
        join()


def _claimed(item, count, workers):
    """[item(j) for j in range(count)]: the calling thread and up to workers - 1 pool
    threads take the next unclaimed j until none is left. A pool thread that has not
    started when the calling thread runs out of work is cancelled, not waited for (on a
    busy machine its wake-up can take longer than the work). A call that gets fewer
    threads because side work holds a core can be joined by that work's thread when it
    is done (`help_waiting`; MODELKIT_SIDE_JOIN=0 switches that off)."""
    out = [None] * count
    wanted = min(workers, count)
    workers = min(wanted, available())
    if getattr(_LOCAL, "busy", False) or wanted <= 1:
        for j in range(count):
            out[j] = item(j)
        return out
    claim = itertools.count()            # next() is atomic under the GIL

    def work():
        _LOCAL.busy = True
        try:
            for j in iter(claim.__next__, None):
                if j >= count:
                    return
                out[j] = item(j)
        finally:
            _LOCAL.busy = False

    futures = [pool(workers - 1).submit(work) for _ in range(workers - 1)]
    joined = _Joined(work) if workers < wanted and \
        os.environ.get("MODELKIT_SIDE_JOIN", "1") != "0" else None
    if joined is not None:
        _WAITING.append(joined)
    try:
        work()
    finally:
        if joined is not None:
            _WAITING.remove(joined)
            joined.close()
        for f in futures:
            if not f.cancel():
                f.result()
    return out


class _Joined:
    """A claim loop other threads may join until the calling thread closes it; `close`
    waits for the joiners still running an item and raises their error, if any."""

    def __init__(self, work):
        self.work = work
        self.cond = threading.Condition()
        self.active = 0
        self.closed = False
        self.error = None

    def __call__(self):
        with self.cond:
            if self.closed:
                return
            self.active += 1
        try:
            self.work()
        except BaseException as e:          # noqa: BLE001 - raised by the calling thread
            self.error = e
        finally:
            with self.cond:
                self.active -= 1
                self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.wait_for(lambda: self.active == 0)
        if self.error is not None:
            raise self.error


SPLIT_FLOPS = 20e6           # smaller GEMMs are not worth a thread handoff


def matmul(a, b):
    """a @ b for 2-D float arrays. When numpy's BLAS runs on one thread (pinned in the
    training steps of fast-conv models, see blas.py) and `threads()` > 1, a big product is
    split along the output's longer side into one GEMM per thread: numpy releases the GIL
    in the GEMM, so the parts run on separate cores. Otherwise one plain GEMM."""
    m, k = a.shape
    n = b.shape[1]
    if 2.0 * m * n * k < SPLIT_FLOPS or blas.threads() != 1 or threads() == 1:
        return a @ b
    workers = threads()
    out = np.empty((m, n), np.result_type(a, b))
    rows = m >= n
    bounds = np.linspace(0, m if rows else n, workers + 1).astype(int)

    def part(i):
        lo, hi = bounds[i], bounds[i + 1]
        if rows:
            np.matmul(a[lo:hi], b, out=out[lo:hi])
        else:
            np.matmul(a, b[:, lo:hi], out=out[:, lo:hi])

    run_parts(part, workers)
    return out


_CONSTANTS = {}               # (value, dtype) -> read-only array, grown on demand


def zeros(n, dtype):
    """n read-only zeros of `dtype` (a slice of one cached array): an operand for binary
    ufuncs, whose contiguous loops run 2-3x faster than their loops with a scalar."""
    return _constant(0, n, dtype)


def ones(n, dtype):
    """n read-only ones of `dtype` (a slice of one cached array): the vector of a GEMV that
    sums rows or columns (2-3x faster than numpy's sum over an axis)."""
    return _constant(1, n, dtype)


def _constant(value, n, dtype):
    dtype = np.dtype(dtype)
    c = _CONSTANTS.get((value, dtype))
    if c is None or c.size < n:
        c = np.full(max(n, BLOCK_BYTES // dtype.itemsize), value, dtype)
        c.flags.writeable = False
        _CONSTANTS[value, dtype] = c
    return c[:n]


def flat(a):
    """`a`'s values as a 1-D view in memory order, or None when its memory has gaps."""
    v = np.ravel(a, order="K")
    return v if v.size == 0 or np.may_share_memory(v, a) else None   # a copy: new memory


def outer_axis(a):
    """The axis of `a` with the largest stride (its outermost axis in memory)."""
    return max(range(a.ndim), key=lambda i: (abs(a.strides[i]) if a.shape[i] > 1 else -1, -i))


def add(a, b):
    """a + b. Two arrays of one shape, memory layout and dtype, two blocks or more, are
    summed in blocks on the threads (the same numbers); anything else as numpy does."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape
            and a.strides == b.strides and a.dtype == b.dtype
            and a.nbytes >= 2 * BLOCK_BYTES):
        out = np.empty_like(a)
        elementwise(_add_into, out, a, b)
        return out
    return a + b


def _add_into(out, a, b):
    np.add(a, b, out=out)


def elementwise(fn, out, *ins):
    """fn(out_block, *in_blocks) over blocks of `out`'s outermost memory axis (ins: arrays
    of out's shape and memory order, e.g. made with np.empty_like, or None); one call on
    the whole arrays when the orders differ or there is nothing to split."""
    if out.ndim == 0 or out.size == 0 or any(
            a is not None and (a.shape != out.shape or a.strides != out.strides) for a in ins):
        fn(out, *ins)
        return
    axis = outer_axis(out)

    def block(lo, hi):
        sl = (slice(None),) * axis + (slice(lo, hi),)
        fn(out[sl], *[None if a is None else a[sl] for a in ins])

    map_blocks(block, out.shape[axis], out.nbytes // out.shape[axis])

"""A pool that recycles large numpy arrays once nothing else refers to them.

A general helper for code that allocates big scratch arrays call after call (the fused
recurrent ops in `rnn_ops/` use one): `pool.empty(shape, dtype)` behaves like
`np.empty`, but hands back a previously allocated array of the same shape and dtype when
the only references left to it are the pool's own, so reusing it can never overwrite
data someone still holds. Fresh allocations of tens of megabytes cost page faults and
zeroing; recycling them saves that.
"""

import sys

import numpy as np


class BufferPool:
    """Recycles large arrays from call to call (the fused recurrent ops use one).

    Each training step allocates tens of megabytes of activations and gradients; fresh
    allocations of that size come from the kernel as new pages (page faults, zeroing),
    which cost ~15% of an LSTM step. A pooled array is handed out again only when nothing
    but the pool refers to it (the tape has released the saved activations and no output
    view of it is alive), so recycling never overwrites live data. Arrays under 64 KiB are
    left to numpy; the pool holds at most `max_bytes` and `per_key` arrays per
    (shape, dtype); `clear()` empties it.
    """

    def __init__(self, max_bytes=256 << 20, per_key=8):
        self.max_bytes, self.per_key = max_bytes, per_key
        self._bufs = {}
        self._bytes = 0

    def empty(self, shape, dtype):
        return self._get(shape, dtype, None)

    def zeros(self, shape, dtype, cells):
        """Like `empty`, but a new array is zeros, and it is handed out again only to
        callers passing the same hashable `cells`: callers that write only the cells `cells`
        names (a zero-padded buffer's interior) find every other cell still zero."""
        return self._get(shape, dtype, ("zeros", cells))

    def _get(self, shape, dtype, cells):
        shape = tuple(int(d) for d in shape)
        dtype = np.dtype(dtype)
        key = (shape, dtype.str, cells)
        bufs = self._bufs.get(key)
        if bufs:
            for arr in bufs:
                # references: the list, `arr`, getrefcount's argument -> free
                if sys.getrefcount(arr) <= 3:
                    return arr
        arr = np.empty(shape, dtype) if cells is None else np.zeros(shape, dtype)
        if arr.nbytes >= 1 << 16 and self._bytes + arr.nbytes <= self.max_bytes and \
                len(bufs or ()) < self.per_key:
            self._bufs.setdefault(key, []).append(arr)
            self._bytes += arr.nbytes
        return arr

    def clear(self):
        self._bufs.clear()
        self._bytes = 0


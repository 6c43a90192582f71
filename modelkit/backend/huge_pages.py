"""Large long-lived arrays (variables, optimizer slots) on transparent huge pages.

Every training step streams each weight, its optimizer slots and its gradient through the
caches; when other programs keep the shared L3 cache and memory busy, the weights come back
from DRAM each step, and with 4 KiB pages every one of their pages costs a page walk (two
levels deep in a virtual machine). Arrays of HUGE_MIN_BYTES or more are therefore placed
in anonymous memory the kernel is asked to back with 2 MiB pages (madvise MADV_HUGEPAGE,
as PyTorch's CPU allocator does for its allocations of 2 MiB or more, and numpy for its own
of 4 MiB or more); private anonymous memory, as shared memory gets no huge pages. Only
where the values live changes: the same values, dtype and shape. MLP benchmark
(784-500-500-10), two models in one process, alternating epochs: in a slow spell of the
host 0.235 ms a step faster on average (of about 7.3; faster in 20 of 21 rounds), calm
0.07 ms (of about 4.8; in 21 of 30). MODELKIT_HUGE_PAGES=0 switches it off; without
Linux's madvise it never runs.
"""

import mmap
import os

import numpy as np

HUGE_MIN_BYTES = 512 << 10
_HUGE_PAGE = 2 << 20


def enabled():
    return (os.environ.get("MODELKIT_HUGE_PAGES", "1") != "0"
            and hasattr(mmap, "MADV_HUGEPAGE"))


def copy(a):
    """A copy of the array `a` (its layout kept): on huge pages when it is a large
    C-contiguous numeric array and the system allows, else numpy's own."""
    a = np.asarray(a)
    if (a.nbytes < HUGE_MIN_BYTES or not a.flags.c_contiguous or a.dtype.hasobject
            or not enabled()):
        return np.array(a, copy=True)
    size = -(-a.nbytes // _HUGE_PAGE) * _HUGE_PAGE
    try:
        block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        block.madvise(mmap.MADV_HUGEPAGE)
    except (OSError, ValueError):        # no memory map, or madvise refused: numpy's memory
        return np.array(a, copy=True)
    out = np.frombuffer(block, dtype=a.dtype, count=a.size).reshape(a.shape)
    np.copyto(out, a)
    return out

"""Keep freed memory in the process for the next training step (glibc's malloc).

A training step allocates the same large arrays every time (activations, gradients, im2col
blocks). With glibc's defaults, arrays above the mmap threshold (128 KiB, adapting up to
32 MiB) come fresh from the kernel and go back when freed, and freed memory at the heap's
top is returned once more than the trim threshold is free: every step then page-faults its
arrays in again, zero-filling each page (measured on the small ResNet benchmark: 13 000
faults, 35 ms of a 150 ms step). `retain_freed_memory()` raises both thresholds once, so
the arrays of one step are reused by the next; the peak resident memory does not change,
but memory freed after training stays with the process until it exits (for reuse by it).

Called by the training loop; switched off with MODELKIT_MALLOC_TUNING=0; does nothing
where the C library is not glibc.
"""

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20      # glibc's largest: arrays up to this size come from the heap
TRIM_THRESHOLD = 512 << 20     # free memory kept at the heap's top

_SET = None                    # None: not tried yet; else whether the thresholds were set


def retain_freed_memory():
    """Raise glibc's mmap and trim thresholds (tried once per process); True when set."""
    global _SET
    if _SET is None:
        _SET = os.environ.get("MODELKIT_MALLOC_TUNING", "1") != "0" and _mallopt()
    return _SET


def _mallopt():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):          # pragma: no cover - glibc always has it
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    trim = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and trim

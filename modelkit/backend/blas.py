"""numpy's BLAS (OpenBLAS) thread count, lowered to one around the training steps that run
the fast convolution kernels.

After every multithreaded call OpenBLAS's idle worker threads keep spinning for a while
(its thread timeout), taking the cores that onnxruntime's convolution threads and the
backend's worker threads need next: on 2 cores the VGG-like benchmark's dense layers made
a training step 146 ms instead of 91 ms. `single_threaded()` sets OpenBLAS to one thread
for the duration of a block and restores the previous count; the convolution kernels bring
their own threads. Does nothing where numpy's BLAS is not OpenBLAS (found through
/proc/self/maps) or with MODELKIT_PIN_BLAS=0.
"""

import contextlib
import ctypes
import os

_PREFIXES = ("scipy_openblas", "openblas")     # numpy's bundled build, a system build
_SUFFIXES = ("64_", "")
_FUNCTIONS = None                               # (get, set) or False when not found


def _functions():
    global _FUNCTIONS
    if _FUNCTIONS is None:
        _FUNCTIONS = _find() or False
    return _FUNCTIONS


def _find():
    import numpy  # noqa: F401  (loads numpy's BLAS)
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower()
                            and line.split()[-1].startswith("/")})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = (ctypes.c_int,)
                    return get, put
    return None


def threads():
    """OpenBLAS's current thread count, or None when it was not found."""
    fns = _functions()
    return fns[0]() if fns else None


@contextlib.contextmanager
def single_threaded():
    """Run the block with OpenBLAS on one thread (then restore its count)."""
    fns = _functions() if os.environ.get("MODELKIT_PIN_BLAS", "1") != "0" else None
    before = fns[0]() if fns else 1
    if before <= 1:
        yield
        return
    fns[1](1)
    try:
        yield
    finally:
        fns[1](before)

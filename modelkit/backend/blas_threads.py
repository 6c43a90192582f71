"""Run a block of numpy matrix products on one BLAS thread.

A recurrent op makes hundreds of small GEMMs per step ((64, 128) @ (128, 512)): split over
two BLAS threads they run no faster than on one, and on a shared machine a multithreaded
BLAS stalls whenever another process holds one of its cores (measured here: 2-3 GFLOP/s
instead of 80). `one_blas_thread()` sets OpenBLAS's thread count to 1 for the block and
back afterwards (`openblas_set_num_threads_local`, OpenBLAS >= 0.3.27, what numpy wheels
bundle; in their pthreads build the count is process-wide, so GEMMs that other threads run
meanwhile use one thread too: same numbers, fewer threads). Blocks may nest and overlap
across threads; the count comes back when the last one ends. With another BLAS (or an
older OpenBLAS) it does nothing.
"""

import contextlib
import ctypes
import glob
import os
import threading

import numpy as np

_LOCK = threading.Lock()
_STATE = {"depth": 0, "saved": 0}   # open one_blas_thread() blocks, count before them
_FUNCS = []                     # [(setter, getter) or (None, None)], found on first use


def _find_funcs():
    """numpy's bundled OpenBLAS `openblas_set_num_threads_local` and its thread-count
    getter, or (None, None)."""
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libdir, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)          # already loaded by numpy: the same library
        except OSError:
            continue
        fn = getattr(lib, "openblas_set_num_threads_local", None)
        get = next((getattr(lib, name) for name in ("openblas_get_num_threads",
                                                    "scipy_openblas_get_num_threads64_",
                                                    "scipy_openblas_get_num_threads")
                    if hasattr(lib, name)), None)
        if fn is not None and get is not None:
            fn.restype = get.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_int]
            return fn, get
    return None, None


def _setter():
    if not _FUNCS:
        _FUNCS.append(_find_funcs())
    return _FUNCS[0][0]


def current():
    """The BLAS thread count, or None when it cannot be read."""
    _setter()
    get = _FUNCS[0][1]
    return None if get is None else int(get())


def available():
    """Whether `one_blas_thread()` can set the BLAS thread count (else it is a no-op)."""
    return _setter() is not None


@contextlib.contextmanager
def one_blas_thread():
    """numpy GEMMs inside this block use one BLAS thread."""
    fn = _setter()
    if fn is None:
        yield
        return
    with _LOCK:
        if _STATE["depth"] == 0:
            _STATE["saved"] = fn(1)
        _STATE["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0:
                fn(_STATE["saved"])

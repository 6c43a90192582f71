"""numpy's BLAS (OpenBLAS): its thread count, and its axpy for one-pass optimizer updates.

The thread count is lowered to one around the training steps that run
the fast convolution kernels and around the recurrent ops' per-step GEMMs.

After every multithreaded call OpenBLAS's idle worker threads keep spinning for a while
(its thread timeout), taking the cores that onnxruntime's convolution threads and the
backend's worker threads need next: on 2 cores the VGG-like benchmark's dense layers made
a training step 146 ms instead of 91 ms. `single_threaded()` sets OpenBLAS to one thread
for the duration of a block and restores the previous count; the convolution kernels bring
their own threads. The fused recurrent ops (`rnn_ops/`) make hundreds of small GEMMs per
step ((64, 128) @ (128, 512)): two OpenBLAS threads run them no faster than one, and on a
shared machine stall to 2-3 GFLOP/s (instead of 80) whenever another process holds a core.

OpenBLAS's count is process-wide: GEMMs that other threads run inside a block use one
thread too (same numbers). Blocks may nest and overlap across threads; the count comes
back when the last open block ends. Does nothing where numpy's BLAS is not OpenBLAS (found
through /proc/self/maps) or with MODELKIT_PIN_BLAS=0.

`axpy(alpha, x, y)` is y += alpha * x in one pass with one rounding (a fused multiply-add
where the CPU has one) through OpenBLAS's ?axpy; numpy's two passes and two roundings where
OpenBLAS or the layout does not allow it (MODELKIT_BLAS_AXPY=0 too). It runs on OpenBLAS's
threads as they are set: right after a step's GEMMs their workers still spin, and the
MLP's SGD step ran 0.15-0.2 ms faster on them than with the count lowered to one around
each call (same-process A/B, quiet and drifting host alike).
"""

import contextlib
import ctypes
import os
import threading

import numpy as np

_PREFIXES = ("scipy_openblas", "openblas")     # numpy's bundled build, a system build
_SUFFIXES = ("64_", "")
_FUNCTIONS = None                               # (get, set) or False when not found
_LOCK = threading.Lock()
_OPEN = {"blocks": 0, "before": 1}              # open single_threaded() blocks, count before


def _functions():
    global _FUNCTIONS
    if _FUNCTIONS is None:
        _FUNCTIONS = _find() or False
    return _FUNCTIONS


def _find():
    """(get_num_threads, set_num_threads, library, symbol prefix, symbol suffix)."""
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
                    return get, put, lib, prefix, suffix
    return None


_AXPY = {}                                      # numpy dtype -> ctypes function or None


def _axpy_function(dtype):
    fn = _AXPY.get(dtype, 0)
    if fn == 0:
        fn = _AXPY[dtype] = _load_axpy(dtype)
    return fn


def _load_axpy(dtype):
    fns = _functions()
    if not fns:
        return None
    _, _, lib, prefix, suffix = fns
    letter, real = {"float32": ("s", ctypes.c_float), "float64": ("d", ctypes.c_double)}[dtype]
    # numpy's bundled build: scipy_cblas_saxpy64_ (64-bit ints); a system one: cblas_saxpy
    name = f"{prefix[:-len('openblas')]}cblas_{letter}axpy{suffix}"
    fn = getattr(lib, name, None)
    if fn is None:
        return None
    integer = ctypes.c_int64 if suffix == "64_" else ctypes.c_int
    fn.restype = None
    fn.argtypes = (integer, real, ctypes.c_void_p, integer, ctypes.c_void_p, integer)
    return fn


def axpy(alpha, x, y):
    """y += alpha * x, in place (see the module docstring); x and y of one shape."""
    fn = None
    if (y.dtype == x.dtype and y.dtype.name in ("float32", "float64") and x.shape == y.shape
            and x.flags.c_contiguous and y.flags.c_contiguous and y.flags.writeable
            and os.environ.get("MODELKIT_BLAS_AXPY", "1") != "0"):
        fn = _axpy_function(y.dtype.name)
    if fn is None:
        numpy_axpy(alpha, x, y)
    elif y.size:
        fn(y.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)


def fuses(y):
    """Whether `axpy(alpha, x, y)` runs OpenBLAS's axpy for a y like this one (one rounding
    per multiply-add), so a kernel with fused multiply-adds makes the same numbers."""
    return (y.dtype.name in ("float32", "float64") and y.flags.c_contiguous
            and os.environ.get("MODELKIT_BLAS_AXPY", "1") != "0"
            and _axpy_function(y.dtype.name) is not None)


def numpy_axpy(alpha, x, y):
    """y += alpha * x with numpy: a multiply and an add, each rounded."""
    y += np.multiply(x, np.asarray(alpha, y.dtype), dtype=y.dtype)


def threads():
    """OpenBLAS's current thread count, or None when it was not found."""
    fns = _functions()
    return fns[0]() if fns else None


@contextlib.contextmanager
def single_threaded():
    """Run the block with OpenBLAS on one thread (then restore its count; see the module
    docstring for nesting and threads)."""
    fns = _functions() if os.environ.get("MODELKIT_PIN_BLAS", "1") != "0" else None
    if not fns:
        yield
        return
    with _LOCK:
        if _OPEN["blocks"] == 0:
            _OPEN["before"] = fns[0]()
            if _OPEN["before"] > 1:
                fns[1](1)
        _OPEN["blocks"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _OPEN["blocks"] -= 1
            if _OPEN["blocks"] == 0 and _OPEN["before"] > 1:
                fns[1](_OPEN["before"])

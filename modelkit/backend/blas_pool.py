"""numpy's OpenBLAS on modelkit's worker threads, shared with the element-wise kernels.

OpenBLAS 0.3.27 and later let a program run its multithreaded work on the program's own
threads (`openblas_set_threads_callback_function`). `install()` registers the pool of
`_native_pool.c` there: every GEMM of a training step then runs its jobs on the pool's
workers, and the kernels of `_native.c` that stream through memory (SGD's and Adam's
updates, dropout, tanh's gradient, a shuffled batch's gather) split their arrays across
the same workers, which are still awake from the last GEMM. With OpenBLAS's own threads the workers that spin between GEMMs
belong to OpenBLAS, and handing a kernel's half to another thread cost 100+ us (the time a
sleeping thread takes to wake while OpenBLAS's spinner holds the other core), more than
the half saves.

The kernels use as many threads as OpenBLAS is set to (`blas.threads()`; one inside
`blas.single_threaded()` blocks, the fast convolutions' steps) whose workers are awake: a
kernel never wakes a sleeping worker (that costs more than its half saves, and the woken
worker would then spin beside the convolutions' threads). A worker spins for
MODELKIT_POOL_SPIN_US microseconds (default 2000) after its last part, yielding the core
to any other runnable thread, then sleeps. Installed once per process by the training
loop; does nothing where numpy's BLAS is not OpenBLAS 0.3.27+, the C kernels were not
built, or MODELKIT_BLAS_POOL=0.
"""

import ctypes
import os

from . import blas, native

_INSTALLED = None           # None: not tried yet; else whether the pool is OpenBLAS's


def install():
    """Make the pool OpenBLAS's threads (tried once per process); True when it is."""
    global _INSTALLED
    if _INSTALLED is None:
        _INSTALLED = os.environ.get("MODELKIT_BLAS_POOL", "1") != "0" and _register()
    return _INSTALLED


def installed():
    """Whether the pool runs OpenBLAS's threads and the kernels' parts."""
    return bool(_INSTALLED)


def uninstall():
    """OpenBLAS back on its own threads and the kernels on the calling thread (a later
    `install()` registers the pool again)."""
    global _INSTALLED
    if _INSTALLED:
        _, register, library = _parts()
        register(None)
        library.modelkit_pool_install(None, -1)
    _INSTALLED = None


def _parts():
    """(OpenBLAS's get_num_threads, its set_threads_callback_function, the C library), or
    None where one of them is missing."""
    functions = blas._functions()
    library = native._library()
    if not functions or not library:
        return None
    get_threads, _, openblas, prefix, suffix = functions
    register = getattr(openblas, f"{prefix}_set_threads_callback_function{suffix}", None)
    if register is None or getattr(library, "modelkit_pool_blas_callback", None) is None:
        return None                              # OpenBLAS before 0.3.27; no pthreads
    register.argtypes = (ctypes.c_void_p,)
    register.restype = None
    return get_threads, register, library


def _register():
    parts = _parts()
    if parts is None:
        return False
    get_threads, register, library = parts
    library.modelkit_pool_install(ctypes.cast(get_threads, ctypes.c_void_p),
                                  _spin_microseconds())
    register(ctypes.cast(library.modelkit_pool_blas_callback, ctypes.c_void_p))
    return True


def _spin_microseconds():
    try:
        return max(0, int(os.environ.get("MODELKIT_POOL_SPIN_US", "2000")))
    except ValueError:
        return 2000


def set_spin(microseconds):
    """How long a worker stays awake after its last part before it sleeps (the kernels only
    split across awake workers); MODELKIT_POOL_SPIN_US sets it at install."""
    library = native._library()
    if library:
        library.modelkit_pool_set_spin(int(microseconds))


def workers():
    """How many worker threads the pool has started (0 before its first parallel call)."""
    library = native._library()
    return library.modelkit_pool_workers() if library else 0


def dispatches():
    """How many calls (OpenBLAS's and the kernels') the pool has split across its workers."""
    library = native._library()
    return library.modelkit_pool_dispatches() if library else 0

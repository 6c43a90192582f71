"""Which devices onnxruntime can use here, and why not.

onnxruntime-gpu lists CUDAExecutionProvider even on machines with no GPU or without the
CUDA libraries, and then quietly runs on the CPU after printing C++ errors. `cuda_status`
instead checks, once per process and without onnxruntime's noise, that the NVIDIA driver
answers with at least one GPU and that onnxruntime's CUDA provider library loads (after
`onnxruntime.preload_dlls()`, whose messages are captured), and says what is missing.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading

from modelkit.errors import ConfigError

__all__ = ["cuda_status", "parse_device", "DEVICES"]

DEVICES = ("auto", "cpu", "cuda")


_cuda_lock = threading.Lock()
_cuda_problems = None      # None: not checked yet; []: looks usable; else list of reasons


def _ort():
    import onnxruntime
    return onnxruntime


def _check_driver():
    """A reason the NVIDIA driver cannot run CUDA here, or None."""
    import ctypes
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver (libcuda.so.1 cannot be loaded), so this machine has no usable GPU"
    try:
        rc = lib.cuInit(0)
        if rc == 100:
            return "the NVIDIA driver reports no CUDA-capable GPU (cuInit: CUDA_ERROR_NO_DEVICE)"
        if rc != 0:
            return f"the NVIDIA driver failed to initialise (cuInit returned error {rc})"
        count = ctypes.c_int(0)
        rc = lib.cuDeviceGetCount(ctypes.byref(count))
        if rc != 0 or count.value < 1:
            return "the NVIDIA driver reports no CUDA-capable GPU"
    except AttributeError:   # not a real driver library
        return "libcuda.so.1 is not a usable NVIDIA driver library"
    return None


def _check_provider_library(ort):
    """A reason onnxruntime's CUDA provider library cannot be loaded, or None."""
    import ctypes
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    shared = os.path.join(capi, "libonnxruntime_providers_shared.so")
    cuda = os.path.join(capi, "libonnxruntime_providers_cuda.so")
    if not os.path.exists(cuda):
        return None   # not a Linux wheel layout we know; let onnxruntime try
    preload_log = ""
    if hasattr(ort, "preload_dlls"):
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                ort.preload_dlls()
        except Exception:   # preloading is a help, never a requirement
            pass
        preload_log = buf.getvalue()
    try:
        if os.path.exists(shared):
            ctypes.CDLL(shared, mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(cuda)
    except OSError as e:
        missing = sorted({line.split(":", 1)[0].replace("Failed to load ", "").strip()
                          for line in preload_log.splitlines()
                          if line.startswith("Failed to load ")})
        version = getattr(ort, "__version__", "?")
        built = ""
        with contextlib.suppress(Exception):
            from onnxruntime.capi import build_and_package_info as info
            built = f" (built for CUDA {info.cuda_version})"
        msg = (f"onnxruntime {version}{built} cannot load its CUDA provider library: "
               f"{str(e).strip()}")
        if missing:
            msg += f" (missing: {', '.join(missing)})"
        return msg + "; install the CUDA and cuDNN libraries onnxruntime-gpu needs"
    return None


def cuda_status():
    """Why CUDA cannot be used in this process: a list of reasons, empty when it looks usable.

    Checked once per process (the answer cannot change without restarting Python).
    """
    global _cuda_problems
    with _cuda_lock:
        if _cuda_problems is None:
            ort = _ort()
            problems = []
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                problems.append(f"this onnxruntime build ({ort.__version__}) has no "
                                f"CUDAExecutionProvider; install onnxruntime-gpu")
            else:
                for check in (_check_driver, lambda: _check_provider_library(ort)):
                    reason = check()
                    if reason:
                        problems.append(reason)
            _cuda_problems = problems
        return list(_cuda_problems)


def parse_device(device):
    """('auto'|'cpu'|'cuda', GPU index) from 'auto', 'cpu', 'cuda' or 'cuda:N'."""
    if not isinstance(device, str):
        raise ConfigError(f"device must be one of {DEVICES} (or 'cuda:N'), got {device!r}")
    d = device.strip().lower()
    if d.startswith("cuda:"):
        try:
            idx = int(d[5:])
        except ValueError:
            idx = -1
        if idx < 0:
            raise ConfigError(f"device {device!r}: expected 'cuda:N' with N a GPU index")
        return "cuda", idx
    if d not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES} (or 'cuda:N'), got {device!r}")
    return d, 0

"""Atomic file writes: a crash or an exception mid-write leaves the previous file intact.

    with atomic_write("m.h5") as tmp:          # a temporary path next to "m.h5"
        h5py.File(tmp, "w") ...                # write everything there
    # on success: flushed, fsync'ed and renamed over "m.h5" (os.replace)
    # on failure: the temporary file is removed and the exception propagates

    with atomic_write("m.json", mode="w") as f:   # or an open file object
        f.write(text)
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from modelkit.errors import ModelSaveError

__all__ = ["atomic_write"]


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:          # not possible on some platforms (Windows); not fatal
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode=None, encoding=None):
    """Write `path` atomically.

    Yields a temporary path in the same folder (when `mode` is None) or that file opened
    with `mode` ("w", "wb", ...). When the block ends normally the data is flushed and
    fsync'ed and the temporary file replaces `path` with `os.replace`; if the block raises,
    the temporary file is removed and `path` is left as it was. The one atomic writer:
    every file modelkit writes (models, weights, CLI outputs) goes through it.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ModelSaveError(f"Cannot write {path}: folder {folder} does not exist")
    base = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        if mode is None:
            yield tmp
        else:
            if "b" not in mode and encoding is None:
                encoding = "utf-8"
            with open(tmp, mode, encoding=encoding) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
        if mode is None:
            _fsync_path(tmp)
        if os.path.exists(path):
            try:   # keep the old file's permission bits rather than mkstemp's 0600
                os.chmod(tmp, os.stat(path).st_mode & 0o7777)
            except OSError:
                pass
        else:
            umask = os.umask(0)
            os.umask(umask)
            try:
                os.chmod(tmp, 0o666 & ~umask)
            except OSError:
                pass
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

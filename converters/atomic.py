"""Atomic file writes: a crash or an exception mid-write leaves the previous file intact.

    with atomic_write("m.h5") as tmp:          # a temporary path next to "m.h5"
        h5py.File(tmp, "w") ...                # write everything there
    # on success: flushed, fsync'ed and renamed over "m.h5" (os.replace)
    # on failure: the temporary file is removed and the exception propagates

    with atomic_write("m.json", mode="w") as f:   # or an open file object
        f.write(text)

Saves leave no litter: a save killed outright (SIGKILL, power loss) cannot remove its
temporary file, so each save of a target first removes the temporary files that dead
earlier saves of that target left. A save announces itself with a lock file it holds an
exclusive `flock` on while it runs (`.<name>.<pid>-<random>.lock`, created before its
temporary file `.<name>.<pid>-<random>.tmp`); the kernel drops the lock when the process
dies, so a lock that can be taken belongs to a dead save, and one that cannot to a live
one, whose files are never touched. A temporary file without its lock file falls back to
the writer's PID: removed only when no such process exists.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets

try:
    import fcntl
except ImportError:         # Windows: no flock; stale files are then left alone
    fcntl = None

from modelkit.errors import ModelSaveError

__all__ = ["atomic_write", "remove_stale_temporaries"]

_TOKEN = re.compile(r"^(\d+)-[0-9a-f]{8}$")


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


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # EPERM: someone else's live process
        return True
    return True


def _try_lock(lock_path):
    """An fd holding the exclusive lock of `lock_path`, or None if a live save holds it."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_stale_temporaries(path):
    """Remove the temporary and lock files of dead earlier saves of `path`; never those
    of a save still running. Returns the names removed."""
    if fcntl is None:
        return []
    folder = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    tokens = set()
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        if name.startswith(prefix) and name.endswith((".tmp", ".lock")):
            token = name[len(prefix):].rsplit(".", 1)[0]
            if _TOKEN.match(token):
                tokens.add(token)
    removed = []
    for token in sorted(tokens):
        tmp = os.path.join(folder, f"{prefix}{token}.tmp")
        lock = os.path.join(folder, f"{prefix}{token}.lock")
        if os.path.exists(lock):
            fd = _try_lock(lock)
            if fd is None:
                continue                      # a live save: leave it alone
            try:
                for victim in (tmp, lock):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(victim)
                        removed.append(os.path.basename(victim))
            finally:
                os.close(fd)
        elif os.path.exists(tmp) and not _pid_alive(int(_TOKEN.match(token).group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
                removed.append(os.path.basename(tmp))
    return removed


@contextlib.contextmanager
def _save_claim(folder, base):
    """(temporary path) of this save, announced by a held lock file; both removed after."""
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    lock = os.path.join(folder, f".{base}.{token}.lock")
    tmp = os.path.join(folder, f".{base}.{token}.tmp")
    lock_fd = None
    if fcntl is not None:
        lock_fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        yield tmp
    finally:
        if lock_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            os.close(lock_fd)


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
    remove_stale_temporaries(path)
    with _save_claim(folder, base) as tmp:
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
                try:   # keep the old file's permission bits rather than the temporary's 0600
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

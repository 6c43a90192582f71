"""Checks on a model path before anything reads from it.

`require_regular_file(path, what)` refuses, with a `ModelLoadError` naming the path, a path
that does not exist, a folder, and anything that is not a regular file (a FIFO would block a
reader forever, a device such as /dev/urandom reads without end). Symbolic links are followed
and their target is checked.
"""

from __future__ import annotations

import os
import stat

from modelkit.errors import ModelLoadError

__all__ = ["require_regular_file"]

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def require_regular_file(path, what="model file"):
    """Return os.stat of `path` when it is a regular file; raise ModelLoadError otherwise."""
    shown = os.fsdecode(os.fspath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelLoadError(f"{shown}: no such file") from None
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{shown}: cannot read the {what}: {e}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise ModelLoadError(f"{shown}: is {kind}, not a regular {what}; refused before reading")
    return st

"""Download a file once into modelkit's cache, verified, resumable, never hanging.

`get_file(fname, origin, file_hash=None, cache_dir=None, cache_subdir="datasets", timeout=30)`
returns the path of `<cache_dir>/<cache_subdir>/<fname>`, downloading it from `origin`
first when it is not there (or does not match `file_hash`).

- Cache root: `cache_dir` if given, else `$MODELKIT_HOME`, else `~/.modelkit`.
- The download goes to `<file>.part`; a `.part` left by an interrupted download is
  resumed with an HTTP `Range` request (a server that ignores Range sends the whole file
  again, which is fine too). The finished file is renamed into place atomically, so a
  reader never sees half a file under the final name.
- `file_hash` (sha256 hex, or md5 hex: told apart by length, as Keras does) is checked on
  the cached file and on each download. A mismatching file is removed and downloaded once
  more; a second mismatch raises DatasetError.
- Network failures (refused, unreachable, DNS, timeout, HTTP error) raise DatasetError
  naming the URL, the cache path and how to put the file there by hand. Every socket
  operation has `timeout` seconds, so nothing waits forever on a silent server.

Only urllib from the standard library is used.
"""

import hashlib
import http.client
import os
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

from modelkit.errors import ConfigError, ModelkitError

__all__ = ["DatasetError", "get_file", "cache_root", "hash_file"]

_CHUNK = 1 << 16
_USER_AGENT = "modelkit-get-file/1 (urllib)"


class DatasetError(ModelkitError, OSError):
    """A data set could not be downloaded, verified or read; the message says what to do."""


def cache_root():
    """The cache root: $MODELKIT_HOME, else ~/.modelkit."""
    home = os.environ.get("MODELKIT_HOME")
    if home:
        return Path(home).expanduser()
    return Path.home() / ".modelkit"


def hash_file(path, algorithm="sha256"):
    """Hex digest of a file's bytes."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_algorithm(file_hash):
    if len(file_hash) == 64:
        return "sha256"
    if len(file_hash) == 32:
        return "md5"
    raise ConfigError(f"get_file: file_hash must be a sha256 (64 hex digits) or md5 (32) digest, got {file_hash!r}")


def _matches(path, file_hash):
    return file_hash is None or hash_file(path, _hash_algorithm(file_hash)) == file_hash.lower()


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _manual_hint(fname, origin, target):
    return (
        f"To install it by hand, download {origin} on a machine with network access and copy "
        f"it to {target} (set MODELKIT_HOME to use another cache folder than ~/.modelkit)."
    )


def get_file(fname, origin, file_hash=None, cache_dir=None, cache_subdir="datasets", timeout=30):
    """Return the local path of `fname`, downloading it from `origin` unless it is cached.

    Arguments:
        fname: file name inside the cache folder (an absolute path is used as it is).
        origin: the URL to download from (http, https, file).
        file_hash: expected sha256 (or md5) hex digest; None skips the check.
        cache_dir: the cache root; default $MODELKIT_HOME or ~/.modelkit.
        cache_subdir: folder under the cache root.
        timeout: seconds each network operation may take before giving up.

    Raises DatasetError when the file cannot be downloaded or does not match `file_hash`.
    """
    if not fname:
        raise ConfigError("get_file: fname must be a non-empty file name")
    if not origin:
        raise ConfigError(f"get_file: no origin URL given for {fname!r}")
    if file_hash is not None:
        _hash_algorithm(file_hash)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    target = root / cache_subdir / fname
    part = target.with_name(target.name + ".part")

    if target.exists():
        if _matches(target, file_hash):
            return str(target)
        _remove(target)  # stale or corrupt: download it again

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(
            f"Cannot create the cache folder {target.parent} for {fname}: {exc}. "
            "Set MODELKIT_HOME (or pass cache_dir) to a writable folder."
        ) from exc

    for attempt in (1, 2):
        _download(origin, part, target, fname, timeout)
        if _matches(part, file_hash):
            os.replace(part, target)
            return str(target)
        got = hash_file(part, _hash_algorithm(file_hash))
        _remove(part)
        if attempt == 2:
            raise DatasetError(
                f"The file downloaded from {origin} does not match its checksum twice in a row "
                f"(expected {_hash_algorithm(file_hash)} {file_hash}, got {got}); it was removed. "
                "The server may be serving a different or damaged file. "
                + _manual_hint(fname, origin, target)
            )
    raise AssertionError("unreachable")


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _download(origin, part, target, fname, timeout):
    """Fetch `origin` into `part`, resuming an existing `part` with a Range request."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(origin, headers=headers)
    try:
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                # Nothing after `offset`: the .part is either complete or longer than the
                # file. Let the checksum decide; without one, start over to be safe.
                exc.close()
                _remove(part)
                return _download(origin, part, target, fname, timeout)
            raise
        with response:
            status = getattr(response, "status", None) or response.getcode()
            mode = "wb"
            if offset and status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if match and int(match.group(1)) == offset:
                    mode = "ab"
                else:  # a range we did not ask for: start over
                    response.close()
                    _remove(part)
                    return _download(origin, part, target, fname, timeout)
            expected = response.headers.get("Content-Length")
            received = 0
            with open(part, mode) as out:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
            if expected is not None and expected.isdigit() and received < int(expected):
                raise DatasetError(
                    f"The download of {origin} stopped after {received} of {expected} bytes; "
                    f"the partial file {part} is kept and the next call resumes it. "
                    + _manual_hint(fname, origin, target)
                )
    except DatasetError:
        raise
    except urllib.error.HTTPError as exc:
        raise DatasetError(
            f"Cannot download {fname} from {origin}: the server answered HTTP {exc.code} {exc.reason}. "
            f"Expected cache path: {target}. " + _manual_hint(fname, origin, target)
        ) from None
    except (urllib.error.URLError, socket.timeout, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, (socket.timeout, TimeoutError)):
            reason = f"no answer within {timeout}s ({reason})"
        kept = f" The partial file {part} is kept; the next call resumes it." if part.exists() else ""
        raise DatasetError(
            f"Cannot download {fname} from {origin}: {reason}. Expected cache path: {target}."
            f"{kept} " + _manual_hint(fname, origin, target)
        ) from None

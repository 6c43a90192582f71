"""MNIST handwritten digits (28x28 grey images, 60,000 train / 10,000 test), downloaded once.

`load_data(path="mnist.npz")` -> `(x_train, y_train), (x_test, y_test)`, uint8 arrays of
shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,), like `keras.datasets.mnist`.

The file is Keras's `mnist.npz`, downloaded from `MNIST_URL` (or `origin=`, or the
`MODELKIT_MNIST_URL` environment variable) into `~/.modelkit/datasets/` (`$MODELKIT_HOME`
replaces `~/.modelkit`) and checked against its known sha256. Offline, copy `mnist.npz`
to that folder by hand.
"""

import os
import zipfile

import numpy as np

from modelkit.datasets._download import DatasetError, get_file

__all__ = ["load_data", "MNIST_URL", "MNIST_SHA256"]

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
_KEYS = ("x_train", "y_train", "x_test", "y_test")
_DEFAULT = object()


def load_data(path="mnist.npz", origin=None, file_hash=_DEFAULT, cache_dir=None, timeout=30):
    """Load MNIST, downloading `mnist.npz` into the cache first if it is not there.

    Arguments:
        path: file name in the cache folder (`<cache>/datasets/`), or an absolute path.
        origin: URL to download from; default `$MODELKIT_MNIST_URL`, else `MNIST_URL`.
        file_hash: expected sha256 of the file; default the real mnist.npz's
            (`MNIST_SHA256`); None skips the check (for a file of your own).
        cache_dir: cache root instead of `$MODELKIT_HOME` / `~/.modelkit`.
        timeout: seconds each network operation may take.

    Returns `(x_train, y_train), (x_test, y_test)`.
    Raises DatasetError when the file cannot be downloaded, verified or read.
    """
    if origin is None:
        origin = os.environ.get("MODELKIT_MNIST_URL") or MNIST_URL
    if file_hash is _DEFAULT:
        file_hash = MNIST_SHA256

    def fetch():
        return get_file(path, origin, file_hash=file_hash, cache_dir=cache_dir, timeout=timeout)

    local = fetch()
    try:
        return _read(local)
    except DatasetError as first:
        # A cached file that passes the checksum (or has none) but cannot be read: remove
        # it and download once more.
        _remove(local)
        local = fetch()
        try:
            return _read(local)
        except DatasetError as second:
            raise DatasetError(
                f"{second} It was downloaded again from {origin} and is still unreadable "
                f"(first error: {first}); the file was left at {local} for inspection."
            ) from None


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _read(local):
    try:
        with np.load(local, allow_pickle=False) as f:
            missing = [k for k in _KEYS if k not in f.files]
            if missing:
                raise DatasetError(
                    f"{local} is not an MNIST file: it lacks {', '.join(missing)} "
                    f"(has {', '.join(f.files) or 'nothing'})"
                )
            arrays = {k: f[k] for k in _KEYS}
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise DatasetError(f"Cannot read {local} as an .npz file: {exc}.") from None
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        if arrays[x_key].ndim != 3 or arrays[y_key].ndim != 1 or len(arrays[x_key]) != len(arrays[y_key]):
            raise DatasetError(
                f"{local} is not an MNIST file: {x_key} has shape {arrays[x_key].shape} and "
                f"{y_key} has shape {arrays[y_key].shape} (expected (n, 28, 28) and (n,))"
            )
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])

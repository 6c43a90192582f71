"""Reading the CIFAR "python version" archives without running code from them: the batches
are Python pickles, read with an unpickler that only rebuilds numpy arrays (anything else in
the file is refused), straight from the .tar.gz (nothing extracted)."""

import pickle
import tarfile

import numpy as np

from modelkit.datasets._download import DatasetError

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode")}          # how a protocol-2 pickle from Python 3 spells bytes


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise DatasetError(f"CIFAR batch refers to {module}.{name}; only numpy arrays are "
                               "allowed in it")
        return super().find_class(module, name)


def read_batches(archive, members, label_key):
    """(images (N, 32, 32, 3) uint8, labels (N, 1) uint8) of the named members, in order."""
    xs, ys = [], []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in members:
                f = tar.extractfile(member)
                if f is None:
                    raise DatasetError(f"{archive}: {member} is not a file")
                batch = _ArraysOnly(f, encoding="bytes").load()
                batch = {k.decode("utf8") if isinstance(k, bytes) else k: v
                         for k, v in batch.items()}
                xs.append(np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(batch[label_key], np.uint8))
    except DatasetError:
        raise
    except Exception as e:      # noqa: BLE001 - a damaged download, named
        raise DatasetError(f"{archive} is not a readable CIFAR archive: "
                           f"{type(e).__name__}: {e}") from None
    x = np.concatenate(xs).transpose(0, 2, 3, 1)
    return x, np.concatenate(ys).reshape(-1, 1)

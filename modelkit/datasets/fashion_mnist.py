"""Fashion-MNIST (28x28 grey images of clothes, 60,000 train / 10,000 test, 10 classes), as
`keras.datasets.fashion_mnist`: `load_data()` -> uint8 `(x_train, y_train), (x_test, y_test)`
of shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,). Keras's four gzip files are
downloaded once (`get_file`)."""

import gzip

import numpy as np

from modelkit.datasets._download import DatasetError
from modelkit.datasets._keras_files import KERAS_FOLDER, fetch

FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")


def load_data(cache_dir=None, origin_folder=KERAS_FOLDER):
    labels_train, images_train, labels_test, images_test = (
        _read_idx(fetch(f"fashion-mnist/{name}", origin_folder + name, None, None, cache_dir),
                  offset=8 if "labels" in name else 16)
        for name in FILES)
    return ((images_train.reshape(len(labels_train), 28, 28), labels_train),
            (images_test.reshape(len(labels_test), 28, 28), labels_test))


def _read_idx(local, offset):
    try:
        with gzip.open(local, "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)
    except Exception as e:      # noqa: BLE001 - a damaged download, named
        raise DatasetError(f"{local} is not a readable gzip IDX file: {e}") from None

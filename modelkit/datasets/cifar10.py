"""CIFAR-10 (32x32 colour images, 50,000 train / 10,000 test, 10 classes), as
`keras.datasets.cifar10`: `load_data()` -> `(x_train, y_train), (x_test, y_test)`, uint8,
x of shape (N, 32, 32, 3) (channels_last; (N, 3, 32, 32) when the image data format is
channels_first), y of shape (N, 1). The archive is downloaded once (`get_file`)."""

from modelkit.datasets._cifar import read_batches
from modelkit.datasets._keras_files import _DEFAULT, fetch

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


def load_data(cache_dir=None, origin=URL, file_hash=_DEFAULT):
    archive = fetch("cifar-10-python.tar.gz", origin, file_hash, SHA256, cache_dir)
    folder = "cifar-10-batches-py/"
    train = read_batches(archive, [f"{folder}data_batch_{i}" for i in range(1, 6)], "labels")
    test = read_batches(archive, [f"{folder}test_batch"], "labels")
    return tuple(channels_as_configured(x, y) for x, y in (train, test))


def channels_as_configured(x, y):
    from modelkit.backend import config as backend_config
    if backend_config.image_data_format() == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    return x, y

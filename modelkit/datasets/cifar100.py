"""CIFAR-100 (32x32 colour images, 50,000 train / 10,000 test), as
`keras.datasets.cifar100`: `load_data(label_mode="fine")` (100 classes; "coarse": 20
superclasses). Shapes and layout as `cifar10.load_data`; downloaded once (`get_file`)."""

from modelkit.datasets._cifar import read_batches
from modelkit.datasets._keras_files import _DEFAULT, fetch
from modelkit.datasets.cifar10 import channels_as_configured
from modelkit.errors import ConfigError

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"


def load_data(label_mode="fine", cache_dir=None, origin=URL, file_hash=_DEFAULT):
    if label_mode not in ("fine", "coarse"):
        raise ConfigError(f"cifar100.load_data: label_mode must be 'fine' or 'coarse', got "
                          f"{label_mode!r}")
    archive = fetch("cifar-100-python.tar.gz", origin, file_hash, SHA256, cache_dir)
    key = f"{label_mode}_labels"
    train = read_batches(archive, ["cifar-100-python/train"], key)
    test = read_batches(archive, ["cifar-100-python/test"], key)
    return tuple(channels_as_configured(x, y) for x, y in (train, test))

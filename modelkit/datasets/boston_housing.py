"""Boston housing prices (13 features, 404 train / 102 test rows), as `keras.datasets`.

`load_data(path="boston_housing.npz", test_split=0.2, seed=113)` -> `(x_train, y_train),
(x_test, y_test)`; the file is Keras's, downloaded once (see `modelkit.datasets.get_file`)."""

import numpy as np

from modelkit.datasets._keras_files import _DEFAULT, KERAS_FOLDER, fetch, read_npz, shuffled
from modelkit.errors import ConfigError

URL = KERAS_FOLDER + "boston_housing.npz"
SHA256 = "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"


def load_data(path="boston_housing.npz", test_split=0.2, seed=113, cache_dir=None,
              origin=URL, file_hash=_DEFAULT):
    if not 0 <= test_split < 1:
        raise ConfigError(f"boston_housing.load_data: test_split must be in [0, 1), got "
                          f"{test_split!r}")
    data = read_npz(fetch(path, origin, file_hash, SHA256, cache_dir), ("x", "y"))
    x, y = shuffled(np.random.RandomState(seed), data["x"], data["y"])
    n = int(len(x) * (1 - test_split))
    return (x[:n], y[:n]), (x[n:], y[n:])

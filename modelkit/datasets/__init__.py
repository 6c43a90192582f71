"""modelkit.datasets: small data sets with Keras's `load_data()` interface.

- `digits`: UCI optical digits, 8x8, shipped with modelkit (no network).
- `mnist`: MNIST 28x28, downloaded once into `~/.modelkit/datasets` (see `get_file`).
- Keras's other data sets, downloaded from Keras's locations the same way: `fashion_mnist`,
  `cifar10`, `cifar100`, `imdb`, `reuters`, `boston_housing` (`keras.datasets` paths and
  `load_data` arguments).
"""

from modelkit.datasets import (boston_housing, cifar10, cifar100, digits, fashion_mnist, imdb,
                               mnist, reuters)
from modelkit.datasets._download import DatasetError, get_file

__all__ = ["digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "reuters",
           "boston_housing", "get_file", "DatasetError"]

"""modelkit.datasets: small data sets with Keras's `load_data()` interface.

- `digits`: UCI optical digits, 8x8, shipped with modelkit (no network).
- `mnist`: MNIST 28x28, downloaded once into `~/.modelkit/datasets` (see `get_file`).
"""

from modelkit.datasets import digits, mnist
from modelkit.datasets._download import DatasetError, get_file

__all__ = ["digits", "mnist", "get_file", "DatasetError"]

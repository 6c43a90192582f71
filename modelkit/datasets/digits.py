"""The UCI optical-digits data set (8x8 images, 1,797 of them), shipped with modelkit.

`load_data(test_split=0.2, seed=113)` -> `(x_train, y_train), (x_test, y_test)`:
uint8 images of shape (n, 8, 8) with values 0..16 and uint8 labels 0..9. No network
needed: the data lives in `modelkit/datasets/data/digits.npz` (source and licence,
CC BY 4.0, in `modelkit/datasets/data/README.md`).
"""

import numbers
from importlib import resources

import numpy as np

from modelkit.datasets._download import DatasetError
from modelkit.errors import ConfigError

__all__ = ["load_data", "NUM_SAMPLES"]

NUM_SAMPLES = 1797
_RESOURCE = "data/digits.npz"


def _load_all():
    ref = resources.files("modelkit.datasets").joinpath(_RESOURCE)
    try:
        with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except Exception as exc:  # missing or damaged package data
        raise DatasetError(
            f"Cannot read the packaged digits data modelkit/datasets/{_RESOURCE}: {exc}. "
            "Reinstall modelkit (the file is package data)."
        ) from None
    if x.shape != (NUM_SAMPLES, 8, 8) or y.shape != (NUM_SAMPLES,) or x.dtype != np.uint8 or y.dtype != np.uint8:
        raise DatasetError(
            f"The packaged digits data modelkit/datasets/{_RESOURCE} is damaged: got x {x.shape} "
            f"{x.dtype}, y {y.shape} {y.dtype}, expected ({NUM_SAMPLES}, 8, 8) uint8 and ({NUM_SAMPLES},) uint8"
        )
    return x, y


def load_data(test_split=0.2, seed=113):
    """Load the digits, shuffled with `seed` and split into train and test parts.

    Arguments:
        test_split: fraction of the samples kept for the test part (0 <= test_split <= 1);
            the train part is the first `int(n * (1 - test_split))` shuffled samples.
        seed: seed of the shuffle; the same seed gives the same split on every machine.

    Returns `(x_train, y_train), (x_test, y_test)`.
    """
    if isinstance(test_split, bool) or not isinstance(test_split, numbers.Real) or not 0 <= test_split <= 1:
        raise ConfigError(f"digits.load_data: test_split must be a number in [0, 1], got {test_split!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"digits.load_data: seed must be a non-negative integer, got {seed!r}")
    x, y = _load_all()
    order = np.random.RandomState(int(seed)).permutation(len(x))
    x, y = x[order], y[order]
    n_train = int(len(x) * (1 - test_split))
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])

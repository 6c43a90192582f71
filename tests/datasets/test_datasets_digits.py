import numpy as np
import pytest

import modelkit.datasets
from modelkit.datasets import digits
from modelkit.errors import ConfigError


def test_shapes_dtypes_and_values():
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    assert x_train.shape == (1437, 8, 8) and x_test.shape == (360, 8, 8)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8
    x = np.concatenate([x_train, x_test])
    y = np.concatenate([y_train, y_test])
    assert x.min() == 0 and x.max() == 16
    # The real UCI optdigits test set: these class counts and pixel total.
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert int(x.astype(np.int64).sum()) == 561_718


def test_known_first_image_is_a_zero():
    x, y = digits._load_all()
    assert y[0] == 0
    assert x[0].tolist()[0] == [0, 0, 5, 13, 9, 1, 0, 0]


def test_split_is_deterministic_and_seeded():
    a = digits.load_data()
    b = digits.load_data()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u[0], v[0])
        np.testing.assert_array_equal(u[1], v[1])
    c = digits.load_data(seed=1)
    assert not np.array_equal(a[0][1], c[0][1])
    # Fixed forever for seed 113 (RandomState's permutation is stable across numpy versions).
    assert a[0][1][:10].tolist() == [1, 0, 9, 1, 1, 2, 3, 0, 0, 1]


def test_split_is_a_partition():
    (x_train, y_train), (x_test, y_test) = digits.load_data(test_split=0.5, seed=7)
    assert len(x_train) == 898 and len(x_test) == 899
    x, _ = digits._load_all()
    rows = {r.tobytes() for r in x.reshape(len(x), -1)}
    both = np.concatenate([x_train, x_test]).reshape(-1, 64)
    assert {r.tobytes() for r in both} == rows
    (xa, _), (xb, _) = digits.load_data(test_split=0)
    assert len(xa) == 1797 and len(xb) == 0


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.2", None])
def test_bad_test_split(bad):
    with pytest.raises(ConfigError, match="test_split"):
        digits.load_data(test_split=bad)


def test_bad_seed():
    with pytest.raises(ConfigError, match="seed"):
        digits.load_data(seed=-1)


def test_package_exposes_digits_and_kerass_data_sets():
    assert modelkit.datasets.digits is digits
    assert {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "reuters",
            "boston_housing"} <= set(modelkit.datasets.__all__)


def test_data_readme_names_source_and_licence():
    from importlib import resources

    text = resources.files("modelkit.datasets").joinpath("data/README.md").read_text()
    assert "CC BY 4.0" in text and "Alpaydin" in text and "Kaynak" in text

import numpy as np
import pytest

import modelkit.utils
from modelkit.errors import ConfigError, DTypeError, ModelkitError, ShapeError
from modelkit.utils import Sequence, normalize, to_categorical
from modelkit.utils import np_utils


def test_importable_from_both_places():
    assert np_utils.to_categorical is to_categorical
    assert modelkit.utils.normalize is np_utils.normalize


def test_to_categorical_basic():
    out = to_categorical([0, 2, 1, 2])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(3, dtype=np.float32)[[0, 2, 1, 2]])


@pytest.mark.parametrize("y", [np.array([1, 0, 3]), np.array([[1], [0], [3]]), [1.0, 0.0, 3.0], (1, 0, 3)])
def test_to_categorical_shapes_and_label_types(y):
    out = to_categorical(y, num_classes=5)
    assert out.shape == (3, 5)
    np.testing.assert_array_equal(out.argmax(-1), [1, 0, 3])
    assert out.sum() == 3


def test_to_categorical_nd_and_dtype():
    y = np.array([[0, 1], [2, 1]])
    out = to_categorical(y, dtype="int32")
    assert out.shape == (2, 2, 3) and out.dtype == np.int32
    np.testing.assert_array_equal(out.argmax(-1), y)
    assert to_categorical(np.array([[1], [0]], dtype=np.uint8), 2).shape == (2, 2)
    assert to_categorical(np.zeros((0,), int), 4).shape == (0, 4)
    assert to_categorical(2, 3).tolist() == [0, 0, 1]


def test_to_categorical_negative_label_named():
    with pytest.raises(ConfigError, match=r"-1") as info:
        to_categorical([0, -1, 2])
    assert "flat index 1" in str(info.value)
    assert isinstance(info.value, ModelkitError) and isinstance(info.value, ValueError)


def test_to_categorical_too_large_label_named():
    with pytest.raises(ConfigError, match=r"num_classes=3.*\b7\b"):
        to_categorical([0, 7, 2], num_classes=3)
    with pytest.raises(ConfigError, match=r"3"):
        to_categorical(np.array([[3]]), num_classes=3)


def test_to_categorical_bad_values():
    with pytest.raises(ConfigError, match="1.5"):
        to_categorical([0.0, 1.5])
    with pytest.raises(ConfigError, match="finite"):
        to_categorical([0.0, np.nan])
    with pytest.raises(DTypeError):
        to_categorical(["a", "b"])
    with pytest.raises(ShapeError):
        to_categorical([[0, 1], [2]])
    with pytest.raises(ConfigError, match="num_classes"):
        to_categorical([0, 1], num_classes=0)
    with pytest.raises(ConfigError, match="num_classes"):
        to_categorical([0, 1], num_classes=2.5)
    with pytest.raises(ConfigError, match="empty"):
        to_categorical([])


def test_normalize():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(x, axis=0), [[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(np.array([1.0, -3.0]), order=1), [0.25, -0.75])
    with pytest.raises(ConfigError):
        normalize(x, axis=2)


def test_sequence_base_class():
    class Batches(Sequence):
        def __init__(self):
            self.epochs = 0

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.full((2,), i), np.full((2,), -i)

        def on_epoch_end(self):
            self.epochs += 1

    seq = Batches()
    assert len(seq) == 3
    assert [int(x[0]) for x, _ in seq] == [0, 1, 2]
    seq.on_epoch_end()
    assert seq.epochs == 1
    Sequence().on_epoch_end()
    with pytest.raises(NotImplementedError):
        len(Sequence())
    with pytest.raises(NotImplementedError):
        Sequence()[0]

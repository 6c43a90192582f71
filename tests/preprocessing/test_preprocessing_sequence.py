"""modelkit.preprocessing.sequence against keras_preprocessing 1.1 (Keras 2.3) fixtures."""

import json
import os
import random

import numpy as np
import pytest

from modelkit.errors import ConfigError, ModelkitError, ShapeError
from modelkit.preprocessing import sequence
from modelkit.preprocessing.sequence import (TimeseriesGenerator, make_sampling_table,
                                             pad_sequences, skipgrams,
                                             timeseries_generator_from_json)
from modelkit.utils import Sequence

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "preprocessing")

with open(os.path.join(FIXTURES, "sequence.json")) as f:
    REF = json.load(f)

PAD_INPUTS = REF["pad_inputs"]


@pytest.mark.parametrize("case", REF["pad_sequences"], ids=lambda c: f"{c['input']}-{c['kwargs']}")
def test_pad_sequences_equals_keras(case):
    kwargs = {k: (object if v == "object" else v) for k, v in case["kwargs"].items()}
    out = pad_sequences(PAD_INPUTS[case["input"]], **kwargs)
    assert str(out.dtype) == case["dtype"]
    assert out.tolist() == case["output"]


def test_pad_sequences_accepts_arrays_and_generators_of_arrays():
    seqs = [np.array([1, 2, 3]), np.array([4])]
    out = pad_sequences(seqs, maxlen=2, padding="post")
    np.testing.assert_array_equal(out, [[2, 3], [4, 0]])
    np.testing.assert_array_equal(pad_sequences(np.arange(6).reshape(2, 3), maxlen=4),
                                  [[0, 0, 1, 2], [0, 3, 4, 5]])


def test_pad_sequences_errors_are_value_errors_naming_the_problem():
    with pytest.raises(ValueError, match="Padding type \"middle\""):
        pad_sequences([[1]], padding="middle")
    with pytest.raises(ConfigError, match="Truncating type"):
        pad_sequences([[1]], truncating="both")
    with pytest.raises(ValueError, match="dtype=object"):
        pad_sequences([["a"]], value="x")
    with pytest.raises(ValueError, match="non-iterable: 3"):
        pad_sequences([[1], 3])
    with pytest.raises(ValueError, match="must be iterable"):
        pad_sequences(5)
    with pytest.raises(ShapeError, match="position 1"):
        pad_sequences([[[1, 2]], [[1, 2, 3]]])
    with pytest.raises(ModelkitError, match="empty list"):
        pad_sequences([])


def test_pad_sequences_maxlen_zero_and_all_empty():
    assert pad_sequences([[1, 2], []], maxlen=0).shape == (2, 0)
    np.testing.assert_array_equal(pad_sequences([[], []], maxlen=2, value=7), [[7, 7], [7, 7]])


@pytest.mark.parametrize("key", sorted(REF["sampling_tables"]))
def test_make_sampling_table_equals_keras(key):
    size, factor = key.split("_")
    # same formula as Keras; numpy versions' log/sqrt may differ in the last bit
    np.testing.assert_allclose(make_sampling_table(int(size), float(factor)),
                               REF["sampling_tables"][key], rtol=1e-15, atol=0)


@pytest.mark.parametrize("case", REF["skipgrams"], ids=lambda c: str(sorted(c["kwargs"])))
def test_skipgrams_equal_keras_under_the_same_random_seed(case):
    random.seed(123)
    couples, labels = skipgrams(REF["skipgram_sequence"], 10, **case["kwargs"])
    assert couples == case["couples"]
    assert labels == case["labels"]


def test_skipgrams_positive_pairs_are_window_neighbours():
    couples, labels = skipgrams([1, 2, 3], 4, window_size=1, negative_samples=0, shuffle=False)
    assert couples == [[1, 2], [2, 1], [2, 3], [3, 2]]
    assert labels == [1, 1, 1, 1]


def _ts_inputs():
    return np.arange(50).reshape(25, 2), np.arange(25) * 10


@pytest.mark.parametrize("case", REF["timeseries"], ids=lambda c: str(c["kwargs"]))
def test_timeseries_generator_equals_keras(case):
    data, targets = _ts_inputs()
    np.random.seed(5)
    gen = TimeseriesGenerator(data, targets, **case["kwargs"])
    assert isinstance(gen, Sequence)
    assert len(gen) == case["len"]
    for i, (bx, by) in enumerate(case["batches"]):
        x, y = gen[i]
        np.testing.assert_array_equal(x, bx)
        np.testing.assert_array_equal(y, by)


def test_timeseries_generator_keras_doc_example_and_errors():
    data = np.array([[i] for i in range(50)])
    gen = TimeseriesGenerator(data, data, length=10, sampling_rate=2, batch_size=2)
    assert len(gen) == 20
    x, y = gen[0]
    np.testing.assert_array_equal(x, [[[0], [2], [4], [6], [8]], [[1], [3], [5], [7], [9]]])
    np.testing.assert_array_equal(y, [[10], [11]])
    with pytest.raises(ShapeError, match="same length"):
        TimeseriesGenerator(data, data[:3], length=2)
    with pytest.raises(ConfigError, match="end_index"):
        TimeseriesGenerator(data, data, length=60)


def test_timeseries_generator_json_round_trip():
    data, targets = _ts_inputs()
    gen = TimeseriesGenerator(data, targets, length=3, stride=2, start_index=1, batch_size=4)
    config = json.loads(gen.to_json())
    assert config["class_name"] == "TimeseriesGenerator"
    assert config["config"]["start_index"] == 4      # Keras stores start_index + length
    back = timeseries_generator_from_json(gen.to_json())
    assert len(back) == len(gen)
    for i in range(len(gen)):
        for a, b in zip(gen[i], back[i]):
            np.testing.assert_array_equal(a, b)


def test_remove_long_seq_keeps_shorter_pairs():
    seqs, labels = sequence._remove_long_seq(3, [[1], [1, 2, 3], [1, 2]], [7, 8, 9])
    assert seqs == [[1], [1, 2]] and labels == [7, 9]

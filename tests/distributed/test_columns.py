"""Which columns feed which model input, and the prediction column names."""

import numpy as np
import pytest

from modelkit.distributed.columns import (feeds_from_batch, output_columns, plan_columns,
                                          plan_inputs)
from modelkit.errors import ConfigError, ShapeError

ONE, TWO = ["x"], ["a", "b"]


@pytest.mark.parametrize("inputs, columns, given, plan", [
    (ONE, ["x", "id"], None, {"x": "x"}),
    (ONE, ["data"], None, {"x": "data"}),
    (ONE, ["data", "__shard", "__row"], None, {"x": "data"}),      # tags are never inputs
    (TWO, ["id", "b", "a"], None, {"a": "a", "b": "b"}),
    (ONE, ["f0", "f1", "id"], "f1", {"x": "f1"}),
    (ONE, ["f0", "f1", "id"], ["f0", "f1"], {"x": ("f0", "f1")}),
    (ONE, ["f0", "f1"], ["f1"], {"x": "f1"}),
    (TWO, ["p", "q"], ["q", "p"], {"a": "q", "b": "p"}),
    (TWO, ["p", "q", "r"], {"a": ["p", "q"], "b": "r"}, {"a": ("p", "q"), "b": "r"}),
])
def test_plans(inputs, columns, given, plan):
    assert plan_inputs(inputs, columns, given) == plan


@pytest.mark.parametrize("inputs, columns, given, match", [
    (ONE, ["f0", "f1"], None, r"no column for the model input\(s\) \['x'\].*columns: \['f0'"),
    (TWO, ["a"], None, r"input\(s\) \['b'\]"),
    (TWO, ["a", "b"], "a", "give input_columns as a list"),
    (TWO, ["a", "b", "c"], ["a", "b", "c"], "2 inputs .* lists 3 columns"),
    (TWO, ["a", "b"], {"a": "a"}, r"missing \['b'\]"),
    (TWO, ["a", "b"], {"a": "a", "b": "b", "c": "a"}, r"unknown \['c'\]"),
    (ONE, ["f0"], ["f0", "nope"], "no column 'nope'"),
    (ONE, ["f0"], [], "non-empty list"),
    (ONE, ["f0"], 3, "column name or a non-empty list"),
])
def test_plan_errors_name_the_problem(inputs, columns, given, match):
    with pytest.raises(ConfigError, match=match):
        plan_inputs(inputs, columns, given, where="the dataset")


def test_feeds_stack_feature_columns_in_order():
    batch = {"f0": np.array([1.0, 2.0]), "f1": np.array([3.0, 4.0]), "v": np.ones((2, 3))}
    feeds = feeds_from_batch(batch, {"x": ("f1", "f0"), "y": "v"})
    assert np.array_equal(feeds["x"], [[3.0, 1.0], [4.0, 2.0]])
    assert feeds["y"] is batch["v"] or np.array_equal(feeds["y"], batch["v"])
    with pytest.raises(ShapeError, match="column 'v' holds arrays"):
        feeds_from_batch(batch, {"x": ("f0", "v")})
    assert plan_columns({"x": ("f1", "f0"), "y": "f0", "z": "v"}) == ["f1", "f0", "v"]


def test_output_columns():
    assert output_columns(["dense_1"]) == ["pred"]
    assert output_columns(["sum", "prod"], "y") == ["y_sum", "y_prod"]
    with pytest.raises(ConfigError, match="output_prefix"):
        output_columns(["a"], "")

"""`model.layers` in Keras's order, and Keras-written `.weights.h5` files loaded into models
rebuilt in code (fixtures from real tf-keras 2.21 and Keras 3.15: make_weights_into_code.py)."""
import json
import os

import numpy as np
import pytest

from modelkit.layers import Add, Concatenate, Dense, Input
from modelkit.models import Model, model_from_json

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "weights_into_code")
CASES = [f"{w}_{n}" for w in ("tfk", "k3") for n in ("branches", "td_model")]


def _config_layer_names(case):
    with open(os.path.join(HERE, case + ".json")) as f:
        return [la["config"]["name"] for la in json.load(f)["config"]["layers"]]


@pytest.mark.parametrize("case", CASES)
def test_layers_in_keras_order(case):
    with open(os.path.join(HERE, case + ".json")) as f:
        model = model_from_json(f.read())
    assert [la.name for la in model.layers] == _config_layer_names(case)


@pytest.mark.parametrize("case", CASES)
def test_keras_weights_file_into_model_from_json(case):
    with open(os.path.join(HERE, case + ".json")) as f:
        model = model_from_json(f.read())
    model.load_weights(os.path.join(HERE, case + ".weights.h5"))
    z = np.load(os.path.join(HERE, case + ".npz"))
    xs = [z[k] for k in sorted(k for k in z.files if k.startswith("x"))]
    ys = [z[k] for k in sorted(k for k in z.files if k.startswith("y"))]
    pred = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    for got, want in zip(pred if isinstance(pred, list) else [pred], ys):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_order_by_depth_then_first_visit_from_the_outputs():
    """The tf-keras / Keras 3 rule: decreasing depth, ties by a depth-first walk from the
    outputs (here `b` comes after `d0`, and the shallow output `o1` after the deep branch)."""
    a, b = Input((8,), name="a"), Input((4,), name="b")
    h = Concatenate(name="cat")([Dense(6, name="d0")(a), b])
    o1 = Dense(3, name="o1")(h)
    o2 = Dense(1, name="o2")(Add(name="add")([Dense(1, name="d1")(h), Dense(1, name="d2")(h)]))
    model = Model([a, b], [o1, o2])
    assert [la.name for la in model.layers] == ["a", "d0", "b", "cat", "d1", "d2", "add",
                                                "o1", "o2"]
    unused = Input((2,), name="unused")
    model = Model([a, unused], Dense(2, name="d")(a))
    assert [la.name for la in model.layers] == ["a", "unused", "d"]   # depth 0, first

"""ONNX random ops: the draws follow their distributions, a seed makes them repeatable, and
an imported model draws afresh on every call (never folded into a constant)."""

import numpy as np
from onnx import TensorProto, helper

from modelkit.backend.onnx_ops import run_onnx_op
from modelkit.backend.tensor import Tensor
from modelkit.models import import_onnx


def run(op_type, x, **attrs):
    return np.asarray(run_onnx_op(op_type, [Tensor(np.asarray(x))], attrs)[0].value)


def test_distributions_dtypes_and_seeds():
    x = np.zeros((200, 100), np.float32)
    y = run("RandomNormalLike", x, mean=2.0, scale=0.5)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert abs(y.mean() - 2.0) < 0.02 and abs(y.std() - 0.5) < 0.02
    u = run("RandomUniformLike", x, low=-1.0, high=3.0, dtype=TensorProto.DOUBLE)
    assert u.dtype == np.float64 and u.min() >= -1.0 and u.max() < 3.0
    assert abs(u.mean() - 1.0) < 0.03
    p = np.tile(np.array([0.0, 1.0, 0.25], np.float32), (4000, 1))
    b = run("Bernoulli", p)
    assert b.dtype == np.float32 and set(np.unique(b)) <= {0.0, 1.0}
    assert b[:, 0].max() == 0 and b[:, 1].min() == 1 and abs(b[:, 2].mean() - 0.25) < 0.03
    np.testing.assert_array_equal(run("RandomNormalLike", x, seed=3.0),
                                  run("RandomNormalLike", x, seed=3.0))
    assert not np.array_equal(run("RandomNormalLike", x), run("RandomNormalLike", x))


def test_multinomial_follows_the_softmax_of_its_input():
    logits = np.log(np.array([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]], np.float32))
    picks = run("Multinomial", logits, sample_size=20000)
    assert picks.dtype == np.int32 and picks.shape == (2, 20000)
    freq = np.stack([np.bincount(row, minlength=3) / row.size for row in picks])
    np.testing.assert_allclose(freq, np.exp(logits), atol=0.02)


def test_imported_noise_is_drawn_on_every_call():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph([helper.make_node("RandomNormalLike", ["x"], ["n"]),
                               helper.make_node("Add", ["x", "n"], ["y"])], "g", [x], [y])
    model = import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                          ir_version=8))
    v = np.zeros((2, 3), np.float32)
    first, second = model.predict(v, verbose=0), model.predict(v, verbose=0)
    assert first.shape == (2, 3) and not np.array_equal(first, second)


def test_a_draw_from_constants_only_is_refused_not_frozen():
    import pytest
    from onnx import numpy_helper

    from modelkit.errors import UnsupportedError
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph([helper.make_node("RandomNormalLike", ["c"], ["n"], name="rnd"),
                               helper.make_node("Add", ["x", "n"], ["y"])], "g", [x], [y],
                              [numpy_helper.from_array(np.zeros(3, np.float32), "c")])
    with pytest.raises(UnsupportedError, match="RandomNormalLike node 'rnd' draws from constant"):
        import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                      ir_version=8))

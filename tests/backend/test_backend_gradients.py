"""Finite-difference gradient checks (float64) for every differentiable backend op."""

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.backend import onnx_ops  # noqa: F401  (registers the ONNX ops' backend ops)
from modelkit.backend.tape import OPS

rng = np.random.default_rng(42)


def r(*shape, low=None):
    a = rng.standard_normal(shape)
    if low is not None:
        a = np.abs(a) + low
    return a


def away_from_kinks(*shape):
    a = r(*shape)
    return np.where(np.abs(a) < 0.05, 0.3, a)


CASES = {
    # name: (function of variables, input arrays)
    "add": (lambda a, b: a + b, [r(3, 4), r(4)]),
    "add_broadcast_both": (lambda a, b: a + b, [r(3, 1), r(1, 4)]),
    "subtract": (lambda a, b: a - b, [r(2, 3), r(2, 1)]),
    "multiply": (lambda a, b: a * b, [r(2, 3, 4), r(3, 1)]),
    "divide": (lambda a, b: a / b, [r(3, 4), r(4, low=0.5)]),
    "power": (lambda a, b: K.pow(a, b), [r(3, 4, low=0.5), r(4)]),
    "maximum": (lambda a, b: K.maximum(a, b), [r(3, 4), r(3, 4) + 3]),
    "minimum": (lambda a, b: K.minimum(a, b), [r(3, 4), r(1, 4) + 3]),
    "negative": (lambda a: -a, [r(5)]),
    "exp": (K.exp, [r(3, 2)]),
    "log": (K.log, [r(3, 2, low=0.2)]),
    "log1p": (K.log1p, [r(3, 2, low=0.2)]),
    "expm1": (K.expm1, [r(3, 2)]),
    "sqrt": (K.sqrt, [r(3, 2, low=0.2)]),
    "rsqrt": (K.rsqrt, [r(3, 2, low=0.2)]),
    "resize": (lambda a: K.resize(a, (5, 3), "bilinear"), [r(2, 3, 4, 2)]),
    "square": (K.square, [r(3, 2)]),
    "abs": (K.abs, [away_from_kinks(3, 2)]),
    "sin": (K.sin, [r(4)]),
    "cos": (K.cos, [r(4)]),
    "tanh": (K.tanh, [r(3, 4)]),
    "reciprocal": (lambda a: K.l2_normalize(a, axis=-1), [r(3, 4)]),
    "clip": (lambda a: K.clip(a, -0.5, 0.5), [away_from_kinks(4, 4)]),
    "cast": (lambda a: K.cast(a, "float64") * 2, [r(3)]),
    "where": (lambda a, b: K.where(np.array([True, False, True]), a, b), [r(2, 3), r(3)]),
    "sum": (lambda a: K.sum(a, axis=1, keepdims=True), [r(2, 3, 4)]),
    "sum_all": (lambda a: K.sum(a), [r(2, 3)]),
    "mean": (lambda a: K.mean(a, axis=(0, 2)), [r(2, 3, 4)]),
    "max": (lambda a: K.max(a, axis=-1), [r(3, 5)]),
    "min": (lambda a: K.min(a, axis=0, keepdims=True), [r(3, 5)]),
    "prod": (lambda a: K.prod(a, axis=1), [r(3, 4, low=0.3)]),
    "logsumexp": (lambda a: K.logsumexp(a, axis=-1), [r(3, 4)]),
    "var": (lambda a: K.var(a, axis=-1), [r(3, 4)]),
    "matmul": (lambda a, b: K.matmul(a, b), [r(3, 4), r(4, 2)]),
    "matmul_batched": (lambda a, b: K.matmul(a, b), [r(2, 3, 4), r(2, 4, 5)]),
    "matmul_broadcast": (lambda a, b: K.matmul(a, b), [r(2, 3, 4), r(4, 5)]),
    "matmul_vector": (lambda a, b: K.matmul(a, b), [r(4), r(4, 2)]),
    "dense": (lambda x, k, b: K.apply(K.OPS.get("dense"), x, k, b), [r(2, 3, 4), r(4, 5), r(5)]),
    "tensordot": (lambda a, b: K.dot(a, b), [r(2, 3), r(4, 3, 2)]),
    "batch_dot": (lambda a, b: K.batch_dot(a, b, axes=(2, 1)), [r(2, 3, 4), r(2, 4, 5)]),
    "reshape": (lambda a: K.reshape(a, (3, -1)), [r(2, 3, 2)]),
    "transpose": (lambda a: K.permute_dimensions(a, (2, 0, 1)), [r(2, 3, 4)]),
    "broadcast_to": (lambda a: K.apply(K.OPS.get("broadcast_to"), a, shape=(3, 2, 4)), [r(2, 1)]),
    "concatenate": (lambda a, b: K.concatenate([a, b], axis=1), [r(2, 3), r(2, 5)]),
    "stack": (lambda a, b: K.stack([a, b], axis=1), [r(2, 3), r(2, 3)]),
    "getitem": (lambda a: a[1:, ::2], [r(3, 5)]),
    "getitem_advanced": (lambda a: a[[0, 0, 2]], [r(3, 2)]),
    "gather": (lambda a: K.gather(a, np.array([[1, 0], [1, 3]])), [r(4, 3)]),
    "tile": (lambda a: K.tile(a, (2, 3)), [r(2, 3)]),
    "repeat": (lambda a: K.repeat_elements(a, 3, axis=1), [r(2, 3)]),
    "pad": (lambda a: K.pad(a, ((1, 0), (2, 1))), [r(2, 3)]),
    "flip": (lambda a: K.reverse(a, axes=1), [r(2, 3)]),
    "relu": (lambda a: K.relu(a), [away_from_kinks(3, 4)]),
    "relu_leaky_capped": (lambda a: K.relu(a, alpha=0.1, max_value=0.8), [away_from_kinks(4, 4)]),
    "relu_threshold": (lambda a: K.relu(a, threshold=0.5), [away_from_kinks(4, 4) + 0.03]),
    "sigmoid": (K.sigmoid, [r(3, 4) * 3]),
    "hard_sigmoid": (K.hard_sigmoid, [r(3, 4)]),
    "keras3_hard_sigmoid": (lambda a: K.apply(K.OPS.get("keras3_hard_sigmoid"), a), [r(3, 4)]),
    "elu": (lambda a: K.elu(a, alpha=0.7), [away_from_kinks(3, 4)]),
    "selu": (K.selu, [away_from_kinks(3, 4)]),
    "softplus": (K.softplus, [r(3, 4)]),
    "softsign": (K.softsign, [away_from_kinks(3, 4)]),
    "swish": (K.swish, [r(3, 4)]),
    "gelu": (K.gelu, [r(3, 4)]),
    "gelu_tanh": (lambda a: K.gelu(a, approximate=True), [r(3, 4)]),
    "softmax": (lambda a: K.softmax(a, axis=1), [r(2, 3, 4)]),
    "log_softmax": (K.log_softmax, [r(3, 4)]),
    "softmax_cross_entropy": (lambda t, x: K.categorical_crossentropy(t, x, from_logits=True),
                              [np.abs(r(3, 4)), r(3, 4)]),
    "sparse_softmax_cross_entropy": (
        lambda x: K.sparse_categorical_crossentropy(np.array([1, 0, 3]), x, from_logits=True),
        [r(3, 4)]),
    "sigmoid_cross_entropy": (lambda t, x: K.binary_crossentropy(t, x, from_logits=True),
                              [rng.random((3, 4)), r(3, 4)]),
    "dropout": (lambda a: K.dropout(a, 0.3, seed=1), [r(4, 5)]),
    # ops the ONNX importer's OnnxOp layers added (modelkit.backend.onnx_ops.extra_ops)
    "erf": (lambda a: K.apply(OPS.get("erf"), a), [r(3, 4)]),
    "take": (lambda a: K.apply(OPS.get("take"), a, np.array([[2, -1], [0, 0]]), axis=1),
             [r(2, 3, 2)]),
    "take_along": (lambda a: K.apply(OPS.get("take_along"), a, np.array([[2, 0], [1, -1]]),
                                     axis=1), [r(2, 3)]),
    "cumsum": (lambda a: K.apply(OPS.get("cumsum"), a, axis=1, exclusive=True), [r(2, 4)]),
    "einsum": (lambda a, b: K.apply(OPS.get("einsum"), a, b, equation="bij,jk->bk"),
               [r(2, 3, 4), r(4, 5)]),
    "scatter_nd": (lambda a, b: K.apply(OPS.get("scatter_nd"), a, b, indices=np.array([[1]]),
                                        reduction="add"), [r(3, 2), r(1, 2)]),
    "cumprod": (lambda a: K.apply(OPS.get("cumprod"), a, axis=1, reverse=True),
                [np.array([[0.5, 0.0, -1.5, 2.0], [1.2, -0.7, 0.9, 1.1]])]),
    "det": (lambda a: K.apply(OPS.get("det"), a), [r(2, 3, 3)]),
    "diagonal": (lambda a: K.apply(OPS.get("diagonal"), a, spec="bii", out="bi"),
                 [r(2, 3, 3)]),
    **{name: ((lambda n: lambda a: K.apply(OPS.get(n), a))(name), [arr]) for name, arr in (
        ("tan", r(2, 3) * 0.5), ("arctan", r(2, 3)), ("sinh", r(2, 3)), ("cosh", r(2, 3)),
        ("arcsinh", r(2, 3)), ("arcsin", rng.uniform(-0.8, 0.8, (2, 3))),
        ("arccos", rng.uniform(-0.8, 0.8, (2, 3))), ("arctanh", rng.uniform(-0.8, 0.8, (2, 3))),
        ("arccosh", rng.uniform(1.5, 3.0, (2, 3))))},
}


@pytest.fixture(autouse=True)
def float64():
    K.set_floatx("float64")
    yield
    K.set_floatx("float32")


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences(name):
    fn, arrays = CASES[name]
    assert_gradients_close(fn, arrays, rtol=1e-5, atol=1e-6)


def test_every_differentiable_op_has_a_gradient_check():
    """Each registered differentiable op appears (by op name) among the cases above or in
    the layer-op test modules (conv/rnn ops register their own checks)."""
    covered = set(CASES)
    covered |= {"reciprocal"}  # through l2_normalize
    missing = [n for n in OPS.names() if OPS.get(n).differentiable
               and n not in covered and not n.startswith(("conv", "pool", "rnn", "lstm", "gru",
                                                          "simple_rnn", "depthwise", "upsample",
                                                          "batch_norm", "layer_norm", "im2col"))]
    assert not missing, f"ops without a gradient check: {missing}"


def test_fused_softmax_cross_entropy_matches_composed_formula():
    logits = r(5, 4)
    target = np.eye(4)[[0, 1, 2, 3, 1]]
    fused = K.categorical_crossentropy(target, K.softmax(K.constant(logits)))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(fused.value, -(target * np.log(p)).sum(1), rtol=1e-6)


def test_unconnected_source_gets_zero_gradient():
    a, b = K.variable(r(3)), K.variable(r(3))
    with K.GradientTape() as tape:
        y = K.sum(a * 2)
    ga, gb = tape.gradient(y, [a, b])
    np.testing.assert_allclose(ga, 2)
    assert not gb.any()


def test_no_tape_means_nothing_recorded():
    a = K.variable(r(3))
    y = a * 2
    assert isinstance(y, K.Tensor)

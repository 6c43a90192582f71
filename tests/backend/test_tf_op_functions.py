"""K functions behind tf.math.rsqrt / reciprocal / erf, tf.einsum, tf.one_hot and
tf.image.resize (and their keras.ops names): numpy references and float64 gradients."""

import math

import numpy as np
import pytest

from modelkit.backend import functions as F
from modelkit.backend import spatial_functions as S
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.errors import ConfigError, ModelkitError

rng = np.random.default_rng(0)


@pytest.mark.parametrize("fn, ref, low", [
    (F.rsqrt, lambda x: 1 / np.sqrt(x), 0.5),
    (F.reciprocal, lambda x: 1 / x, 0.5),
    (F.erf, np.vectorize(math.erf), -2.0),
])
def test_unary(fn, ref, low):
    x = rng.uniform(low, 3.0, size=(3, 4))
    np.testing.assert_allclose(np.asarray(fn(x)), ref(x), rtol=1e-12)
    assert_gradients_close(fn, [x])


@pytest.mark.parametrize("equation, shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bqhd,bkhd->bhqk", [(2, 3, 2, 4), (2, 5, 2, 4)]),
    ("ij->ji", [(3, 4)]),
    ("ij,j->i", [(3, 4), (4,)]),
    ("ijk->ik", [(2, 3, 4)]),                  # an index only the operand has: summed
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("ij,jk", [(2, 3), (3, 4)]),                # implicit output, as numpy
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),   # ellipsis (broadcast batch dims)
    ("ii,ij->j", [(3, 3), (3, 4)]),             # a repeated letter: the diagonal
])
def test_einsum(equation, shapes):
    xs = [rng.normal(size=s) for s in shapes]
    np.testing.assert_allclose(np.asarray(F.einsum(equation, *xs)), np.einsum(equation, *xs),
                               rtol=1e-12)
    assert_gradients_close(lambda *a: F.einsum(equation, *a), xs)


@pytest.mark.parametrize("equation", ["ij->i,j", "ij,jk->ik->i"])
def test_einsum_refuses_what_it_cannot_differentiate(equation):
    with pytest.raises(ModelkitError, match="(?i)einsum"):
        F.einsum(equation, np.ones((2, 2)), np.ones((2, 2)))


def test_one_hot():
    out = np.asarray(F.one_hot(np.array([[0, 2], [1, 3]]), 4))
    np.testing.assert_array_equal(out, np.eye(4)[[[0, 2], [1, 3]]])


def _tf_bilinear_1d(n_in, n_out):
    """TensorFlow's resize_bilinear kernel (half_pixel_centers) for one axis, written out."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = (o + 0.5) * scale - 0.5
        top = math.floor(src)
        lerp = src - top
        m[o, min(max(top, 0), n_in - 1)] += 1 - lerp
        m[o, min(max(math.ceil(src), 0), n_in - 1)] += lerp
    return m


def _tf_nearest_1d(n_in, n_out):
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        m[o, min(int(math.floor((o + 0.5) * n_in / n_out)), n_in - 1)] = 1
    return m


@pytest.mark.parametrize("interpolation, ref1d", [("bilinear", _tf_bilinear_1d),
                                                  ("nearest", _tf_nearest_1d)])
@pytest.mark.parametrize("size", [(7, 5), (2, 3), (4, 6)])
def test_resize(interpolation, ref1d, size):
    x = rng.normal(size=(2, 4, 6, 3))
    want = np.einsum("oh,bhwc,pw->bopc", ref1d(4, size[0]), x, ref1d(6, size[1]))
    np.testing.assert_allclose(np.asarray(S.resize(x, size, interpolation)), want, rtol=1e-12,
                               atol=1e-12)
    first = np.asarray(S.resize(x.transpose(0, 3, 1, 2), size, interpolation,
                                data_format="channels_first"))
    np.testing.assert_allclose(first, want.transpose(0, 3, 1, 2), atol=1e-12)
    assert_gradients_close(lambda a: S.resize(a, size, interpolation), [x])


def test_resize_refuses_unknown_interpolation():
    with pytest.raises(ConfigError, match="bicubic"):
        S.resize(np.ones((1, 2, 2, 1)), (3, 3), "bicubic")

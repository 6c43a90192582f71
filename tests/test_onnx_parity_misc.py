"""ONNX export parity for the merge, normalization, noise, advanced-activation and legacy
layers: onnxruntime output vs `model.predict`, max abs diff <= 1e-5. One row per layer
configuration; a row is skipped only while the exporter reports the layer unsupported."""

import warnings

import numpy as np
import pytest

from modelkit import layers as L
from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import run
from modelkit.models import Model, Sequential

RNG = np.random.default_rng(51)


def _fn(shapes, build):
    def make():
        ins = [L.Input(shape=s) for s in shapes]
        return Model(ins if len(ins) > 1 else ins[0], build(*ins))
    return make


def _one(layer_factory, shape):
    return _fn([shape], lambda x: layer_factory()(x)), [shape]


def _two(layer_factory, s1, s2, pre=True):
    """Two inputs through their own Dense layers, then the merge layer."""
    def build(a, b):
        if pre:
            a, b = L.Dense(s1[-1])(a), L.Dense(s2[-1])(b)
        return layer_factory()([a, b])
    return _fn([s1, s2], build), [s1, s2]


def _legacy_merge(mode, **kw):
    def make():
        left = Sequential([L.Dense(4, input_dim=5)])
        right = Sequential([L.Dense(4, input_dim=5)])
        model = Sequential()
        model.add(L.Merge([left, right], mode=mode, **kw))
        model.add(L.Dense(3, activation="softmax"))
        return model
    return make, [(5,), (5,)]


def _merge_fn(mode, **kw):
    return _fn([(3, 4), (3, 4)], lambda a, b: L.merge([a, b], mode=mode, **kw)), \
        [(3, 4), (3, 4)]


def _masked_concat():
    def build(a, b):
        x = L.Concatenate()([L.Masking()(a), L.Dense(2)(b)])
        return L.LSTM(3)(x)
    return _fn([(5, 3), (5, 2)], build), [(5, 3), (5, 2)], "masked"


ROWS = {
    # merge layers
    "Add": _two(L.Add, (4,), (4,)),
    "Add_rank_broadcast": _two(L.Add, (3, 4), (4,)),
    "Add_three": (_fn([(4,)] * 3, lambda a, b, c: L.Add()([a, b, c])), [(4,)] * 3),
    "Subtract": _two(L.Subtract, (4,), (4,)),
    "Multiply": _two(L.Multiply, (2, 3), (2, 3)),
    "Average": _two(L.Average, (4,), (4,)),
    "Maximum": _two(L.Maximum, (4,), (4,)),
    "Minimum": _two(L.Minimum, (4,), (4,)),
    "Concatenate": _two(L.Concatenate, (3,), (5,)),
    "Concatenate_axis1": _two(lambda: L.Concatenate(axis=1), (2, 3), (4, 3)),
    "Concatenate_masked": _masked_concat(),
    "Dot": _two(lambda: L.Dot(axes=1), (4,), (4,)),
    "Dot_normalize": _two(lambda: L.Dot(axes=-1, normalize=True), (4,), (4,)),
    "Dot_3d": _two(lambda: L.Dot(axes=(2, 2)), (2, 3), (4, 3)),
    "Dot_3d_2d": _two(lambda: L.Dot(axes=(2, 1)), (2, 3), (3,)),
    # Keras 1 merge / Merge
    "merge_concat": _merge_fn("concat", concat_axis=1),
    "merge_sum": _merge_fn("sum"),
    "merge_cos": _merge_fn("cos", dot_axes=2),
    "merge_dot": _merge_fn("dot", dot_axes=[2, 2]),
    "Merge_concat": _legacy_merge("concat"),
    "Merge_mul": _legacy_merge("mul"),
    "Merge_ave": _legacy_merge("ave"),
    "Merge_max": _legacy_merge("max"),
    "Merge_cos": _legacy_merge("cos"),
    # normalization
    "BatchNormalization": _one(L.BatchNormalization, (4,)),
    "BatchNormalization_3d": _one(lambda: L.BatchNormalization(axis=1), (3, 4)),
    "BatchNormalization_nhwc": _one(L.BatchNormalization, (3, 3, 2)),
    "BatchNormalization_nchw": _one(lambda: L.BatchNormalization(axis=1), (2, 3, 3)),
    "BatchNormalization_no_affine": _one(lambda: L.BatchNormalization(center=False,
                                                                      scale=False), (4,)),
    "BatchNormalization_2axes": _one(lambda: L.BatchNormalization(axis=[1, 2]), (2, 3)),
    "LayerNormalization": _one(L.LayerNormalization, (3, 4)),
    "LayerNormalization_2axes": _one(lambda: L.LayerNormalization(axis=[1, 2]), (3, 4)),
    "LayerNormalization_axis1": _one(lambda: L.LayerNormalization(axis=1), (3, 4)),
    "LayerNormalization_no_scale": _one(lambda: L.LayerNormalization(scale=False), (4,)),
    # noise (identity at inference)
    "GaussianNoise": _one(lambda: L.GaussianNoise(0.5), (4,)),
    "GaussianDropout": _one(lambda: L.GaussianDropout(0.3), (4,)),
    "AlphaDropout": _one(lambda: L.AlphaDropout(0.3), (4,)),
    "SpatialDropout1D": _one(lambda: L.SpatialDropout1D(0.3), (3, 2)),
    "SpatialDropout2D": _one(lambda: L.SpatialDropout2D(0.3), (3, 3, 2)),
    "SpatialDropout2D_cf": _one(lambda: L.SpatialDropout2D(0.3, data_format="channels_first"),
                                (2, 3, 3)),
    "SpatialDropout3D": _one(lambda: L.SpatialDropout3D(0.3), (2, 2, 2, 2)),
    # advanced activations
    "LeakyReLU": _one(lambda: L.LeakyReLU(0.2), (4,)),
    "PReLU": _one(L.PReLU, (4,)),
    "PReLU_shared": _one(lambda: L.PReLU(shared_axes=[1]), (3, 4)),
    "ELU": _one(lambda: L.ELU(0.7), (4,)),
    "ThresholdedReLU": _one(lambda: L.ThresholdedReLU(0.3), (4,)),
    "ReLU": _one(L.ReLU, (4,)),
    "ReLU_max": _one(lambda: L.ReLU(max_value=0.5), (4,)),
    "ReLU_all": _one(lambda: L.ReLU(max_value=1.0, negative_slope=0.1, threshold=0.2), (4,)),
    "Softmax": _one(L.Softmax, (4,)),
    "Softmax_axis1": _one(lambda: L.Softmax(axis=1), (3, 4)),
    "Softmax_2axes": _one(lambda: L.Softmax(axis=[1, 2]), (3, 4)),
    # Keras 1 legacy layers
    "Highway": _one(lambda: L.Highway(activation="relu"), (4,)),
    "Highway_linear": _one(L.Highway, (4,)),
    "Highway_no_bias": _one(lambda: L.Highway(activation="tanh", use_bias=False), (4,)),
    "MaxoutDense": _one(lambda: L.MaxoutDense(3, nb_feature=2), (4,)),
    "MaxoutDense_no_bias": _one(lambda: L.MaxoutDense(2, nb_feature=3, use_bias=False), (4,)),
}


def _inputs(shapes, kind, batch=3):
    xs = [RNG.normal(size=(batch,) + s).astype(np.float32) for s in shapes]
    if kind == "masked":
        xs[0][1, 3:] = 0.0
        xs[0][2, 1:] = 0.0
    return xs


@pytest.mark.parametrize("name", [
    n for n in sorted(ROWS)])
def test_onnx_matches_predict(name):
    factory, shapes, *kind = ROWS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = factory()
    model.set_weights([RNG.uniform(0.2, 1.0, size=np.shape(w)).astype(np.float32)
                       for w in model.get_weights()])
    proto = onnx_conv.export(model)
    xs = _inputs(shapes, kind[0] if kind else "f")
    want = model.predict(xs if len(xs) > 1 else xs[0])
    got = run(proto, xs)
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert np.max(np.abs(g - w)) <= 1e-5

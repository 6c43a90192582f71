"""ONNX export parity with modelkit itself: one row per layer class, onnxruntime output vs
`model.predict` on the same (randomised, non-zero) weights, max abs diff <= 1e-5.

Rows whose layer class does not exist yet are skipped; `test_every_layer_class_has_a_row`
keeps the table complete as layers are added.
"""

import numpy as np
import pytest

from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import run

L = pytest.importorskip("modelkit.layers")
models = pytest.importorskip("modelkit.models")

RNG = np.random.default_rng(2024)


def _seq(*layers, shape):
    return lambda: models.Sequential([L.InputLayer(input_shape=shape)] + [f() for f in layers])


def _fn(build, shapes):
    def make():
        ins = [L.Input(s) for s in shapes]
        out = build(*ins)
        return models.Model(ins if len(ins) > 1 else ins[0], out)
    return make


def lay(name, **kw):
    return lambda: getattr(L, name)(**kw)


ROWS = {   # class name -> (model factory, input shapes (no batch), input kind)
    "OnnxOp": (_seq(lay("OnnxOp", op_type="HardSwish"), shape=(4,)), [(4,)], "f"),
    "Dense": (_seq(lay("Dense", units=3, activation="relu"), shape=(4,)), [(4,)], "f"),
    "Activation": (_seq(lay("Activation", activation="tanh"), shape=(4,)), [(4,)], "f"),
    "Dropout": (_seq(lay("Dropout", rate=0.5), shape=(4,)), [(4,)], "f"),
    "ActivityRegularization": (_seq(lay("ActivityRegularization"), shape=(4,)), [(4,)], "f"),
    "Flatten": (_seq(lay("Flatten"), shape=(2, 3, 2)), [(2, 3, 2)], "f"),
    "Reshape": (_seq(lay("Reshape", target_shape=(3, -1)), shape=(6,)), [(6,)], "f"),
    "Permute": (_seq(lay("Permute", dims=(2, 1)), shape=(3, 4)), [(3, 4)], "f"),
    "RepeatVector": (_seq(lay("RepeatVector", n=3), shape=(4,)), [(4,)], "f"),
    "Masking": (_seq(lay("Masking", mask_value=0.0), lay("LSTM", units=3), shape=(5, 2)),
                [(5, 2)], "masked"),
    "Conv1D": (_seq(lay("Conv1D", filters=3, kernel_size=3, padding="causal"), shape=(6, 2)),
               [(6, 2)], "f"),
    "Conv2D": (_seq(lay("Conv2D", filters=3, kernel_size=3, padding="same", strides=2),
                    shape=(7, 6, 2)), [(7, 6, 2)], "f"),
    "Conv2DTranspose": (_seq(lay("Conv2DTranspose", filters=2, kernel_size=3, strides=2,
                                 padding="same"), shape=(4, 3, 2)), [(4, 3, 2)], "f"),
    "Conv1DTranspose": (_seq(lay("Conv1DTranspose", filters=2, kernel_size=3, strides=2,
                                 padding="same"), shape=(4, 2)), [(4, 2)], "f"),
    "SeparableConv1D": (_seq(lay("SeparableConv1D", filters=3, kernel_size=2, depth_multiplier=2),
                             shape=(5, 2)), [(5, 2)], "f"),
    "DepthwiseConv1D": (_seq(lay("DepthwiseConv1D", kernel_size=2, depth_multiplier=2),
                             shape=(5, 2)), [(5, 2)], "f"),
    "SpatialDropout3D": (_seq(lay("SpatialDropout3D", rate=0.3), shape=(2, 3, 3, 2)),
                         [(2, 3, 3, 2)], "f"),
    "SeparableConv2D": (_seq(lay("SeparableConv2D", filters=3, kernel_size=2),
                             shape=(5, 5, 2)), [(5, 5, 2)], "f"),
    "DepthwiseConv2D": (_seq(lay("DepthwiseConv2D", kernel_size=2, depth_multiplier=2),
                             shape=(5, 5, 2)), [(5, 5, 2)], "f"),
    "ZeroPadding1D": (_seq(lay("ZeroPadding1D", padding=2), shape=(4, 2)), [(4, 2)], "f"),
    "ZeroPadding2D": (_seq(lay("ZeroPadding2D", padding=1), shape=(3, 3, 2)), [(3, 3, 2)], "f"),
    "Cropping1D": (_seq(lay("Cropping1D", cropping=1), shape=(4, 2)), [(4, 2)], "f"),
    "Cropping2D": (_seq(lay("Cropping2D", cropping=1), shape=(4, 4, 2)), [(4, 4, 2)], "f"),
    "UpSampling1D": (_seq(lay("UpSampling1D", size=2), shape=(3, 2)), [(3, 2)], "f"),
    "UpSampling2D": (_seq(lay("UpSampling2D", size=2), shape=(3, 3, 2)), [(3, 3, 2)], "f"),
    "MaxPooling1D": (_seq(lay("MaxPooling1D", pool_size=2), shape=(6, 2)), [(6, 2)], "f"),
    "MaxPooling2D": (_seq(lay("MaxPooling2D", pool_size=2, padding="same"), shape=(5, 5, 2)),
                     [(5, 5, 2)], "f"),
    "AveragePooling1D": (_seq(lay("AveragePooling1D", pool_size=2, padding="same"),
                              shape=(5, 2)), [(5, 2)], "f"),
    "AveragePooling2D": (_seq(lay("AveragePooling2D", pool_size=2, padding="same"),
                              shape=(5, 5, 2)), [(5, 5, 2)], "f"),
    "GlobalMaxPooling1D": (_seq(lay("GlobalMaxPooling1D"), shape=(5, 2)), [(5, 2)], "f"),
    "GlobalAveragePooling1D": (_seq(lay("GlobalAveragePooling1D"), shape=(5, 2)), [(5, 2)], "f"),
    "GlobalMaxPooling2D": (_seq(lay("GlobalMaxPooling2D"), shape=(4, 4, 2)), [(4, 4, 2)], "f"),
    "GlobalAveragePooling2D": (_seq(lay("GlobalAveragePooling2D"), shape=(4, 4, 2)),
                               [(4, 4, 2)], "f"),
    "Embedding": (_seq(lay("Embedding", input_dim=9, output_dim=3), shape=(5,)), [(5,)], "ids"),
    "SimpleRNN": (_seq(lay("SimpleRNN", units=3, return_sequences=True), shape=(5, 2)),
                  [(5, 2)], "f"),
    "GRU": (_seq(lay("GRU", units=3), shape=(5, 2)), [(5, 2)], "f"),
    "LSTM": (_seq(lay("LSTM", units=3, go_backwards=True), shape=(5, 2)), [(5, 2)], "f"),
    "Bidirectional": (_seq(lambda: L.Bidirectional(L.LSTM(3, return_sequences=True)),
                           shape=(5, 2)), [(5, 2)], "f"),
    "TimeDistributed": (_seq(lambda: L.TimeDistributed(L.Dense(3)), shape=(4, 2)),
                        [(4, 2)], "f"),
    "Add": (_fn(lambda a, b: L.Add()([a, b]), [(3,), (3,)]), [(3,), (3,)], "f"),
    "Subtract": (_fn(lambda a, b: L.Subtract()([a, b]), [(3,), (3,)]), [(3,), (3,)], "f"),
    "Multiply": (_fn(lambda a, b: L.Multiply()([a, b]), [(3,), (3,)]), [(3,), (3,)], "f"),
    "Average": (_fn(lambda a, b: L.Average()([a, b]), [(3,), (3,)]), [(3,), (3,)], "f"),
    "Maximum": (_fn(lambda a, b: L.Maximum()([a, b]), [(3,), (3,)]), [(3,), (3,)], "f"),
    "Minimum": (_fn(lambda a, b: L.Minimum()([a, b]), [(3,), (3,)]), [(3,), (3,)], "f"),
    "Concatenate": (_fn(lambda a, b: L.Concatenate()([a, b]), [(3,), (2,)]), [(3,), (2,)], "f"),
    "Dot": (_fn(lambda a, b: L.Dot(axes=1, normalize=True)([a, b]), [(3,), (3,)]),
            [(3,), (3,)], "f"),
    "BatchNormalization": (_seq(lay("BatchNormalization"), shape=(4,)), [(4,)], "f"),
    "LayerNormalization": (_seq(lay("LayerNormalization"), shape=(3, 4)), [(3, 4)], "f"),
    "LeakyReLU": (_seq(lay("LeakyReLU"), shape=(4,)), [(4,)], "f"),
    "PReLU": (_seq(lay("PReLU"), shape=(4,)), [(4,)], "f"),
    "ELU": (_seq(lay("ELU"), shape=(4,)), [(4,)], "f"),
    "ThresholdedReLU": (_seq(lay("ThresholdedReLU"), shape=(4,)), [(4,)], "f"),
    "ReLU": (_seq(lay("ReLU", max_value=1.0), shape=(4,)), [(4,)], "f"),
    "Softmax": (_seq(lay("Softmax"), shape=(4,)), [(4,)], "f"),
    "SpatialDropout1D": (_seq(lay("SpatialDropout1D", rate=0.3), shape=(3, 2)), [(3, 2)], "f"),
    "SpatialDropout2D": (_seq(lay("SpatialDropout2D", rate=0.3), shape=(3, 3, 2)),
                         [(3, 3, 2)], "f"),
    "GaussianNoise": (_seq(lay("GaussianNoise", stddev=0.3), shape=(4,)), [(4,)], "f"),
    "GaussianDropout": (_seq(lay("GaussianDropout", rate=0.3), shape=(4,)), [(4,)], "f"),
    "AlphaDropout": (_seq(lay("AlphaDropout", rate=0.3), shape=(4,)), [(4,)], "f"),
    "Highway": (_seq(lay("Highway", activation="relu"), shape=(4,)), [(4,)], "f"),
    "MaxoutDense": (_seq(lay("MaxoutDense", output_dim=3, nb_feature=2), shape=(4,)),
                    [(4,)], "f"),
}
NOT_LAYERS = {"Layer", "Input", "InputLayer", "Lambda", "BackendOp", "Wrapper", "RNN", "Merge",
              "Conv", "Pooling1D", "Pooling2D"}


def _inputs(shapes, kind, batch=3):
    if kind == "ids":
        return [RNG.integers(1, 9, size=(batch,) + s).astype(np.float32) for s in shapes]
    xs = [RNG.normal(size=(batch,) + s).astype(np.float32) for s in shapes]
    if kind == "masked":
        xs[0][1, 3:] = 0.0
        xs[0][2, 1:] = 0.0
    return xs


@pytest.mark.parametrize("name", sorted(ROWS))
def test_parity_with_predict(name):
    factory, shapes, kind = ROWS[name]
    model = factory()
    model.set_weights([RNG.uniform(0.2, 1.0, size=np.shape(w)).astype(np.float32)
                       for w in model.get_weights()])
    proto = onnx_conv.export(model)
    xs = _inputs(shapes, kind)
    want = model.predict(xs if len(xs) > 1 else xs[0])
    got = run(proto, xs)
    want = want if isinstance(want, list) else [want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)


def test_every_layer_class_has_a_row():
    from modelkit.layers import LAYERS
    names = [n for n in LAYERS.names() if n not in NOT_LAYERS and not n.startswith("_")]
    missing = [n for n in names if n not in ROWS and getattr(L, n, None) is not None
               and n not in ALIASES]
    assert not missing, f"add parity rows for {missing}"


# Keras 1 spellings registered as separate names that build the same layers.
ALIASES = {"Convolution1D", "Convolution2D", "AtrousConvolution1D", "AtrousConvolution2D",
           "Merge", "Deconvolution2D"}


BACKEND_ROWS = {
    "mean+mul+add": lambda K, x: K.mean(x, axis=1, keepdims=True) + x * 2.0,
    "sum-max-min": lambda K, x: K.sum(x, axis=-1) - K.max(x, axis=1) + K.min(x, axis=1),
    "square-sqrt-abs": lambda K, x: K.sqrt(K.abs(x) + 1.0) * K.square(x),
    "softmax-tanh": lambda K, x: K.softmax(K.tanh(x), axis=-1),
    "getitem": lambda K, x: x[:, 1:3],
    "concat-expand": lambda K, x: K.expand_dims(K.concatenate([x, K.exp(x)], axis=-1), 1),
    "clip-l2": lambda K, x: K.l2_normalize(K.clip(x, -0.5, 0.5), axis=-1),
    "reshape-permute": lambda K, x: K.permute_dimensions(K.reshape(x, (-1, 2, 2)), (0, 2, 1)),
}


@pytest.mark.parametrize("name", sorted(BACKEND_ROWS))
def test_backend_op_parity(name):
    from modelkit import backend as K
    inp = L.Input((4,))
    out = BACKEND_ROWS[name](K, L.Dense(4)(inp))
    model = models.Model(inp, out)
    model.set_weights([RNG.uniform(0.2, 1.0, size=np.shape(w)).astype(np.float32)
                       for w in model.get_weights()])
    x = RNG.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(run(onnx_conv.export(model), [x])[0], model.predict(x),
                               atol=1e-5, rtol=0)

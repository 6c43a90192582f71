"""ONNX parity for the conv group: onnxruntime output vs `model.predict`, max abs diff <= 1e-5.

One row per layer configuration (both data formats where the layer has one), plus small
multi-layer nets.
"""

import zlib

import numpy as np
import pytest

from modelkit.layers import (AveragePooling1D, AveragePooling2D, AveragePooling3D, Conv1D,
                             Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose,
                             Cropping1D, Cropping2D, Cropping3D, Dense, DepthwiseConv1D,
                             DepthwiseConv2D, Flatten, GlobalAveragePooling1D,
                             GlobalAveragePooling2D, GlobalAveragePooling3D, GlobalMaxPooling1D,
                             GlobalMaxPooling2D, GlobalMaxPooling3D, Input, Masking,
                             MaxPooling1D, MaxPooling2D, MaxPooling3D, SeparableConv1D,
                             SeparableConv2D, UpSampling1D, UpSampling2D, UpSampling3D,
                             ZeroPadding1D, ZeroPadding2D, ZeroPadding3D)
from modelkit.models import Model

onnx_conv = pytest.importorskip("modelkit.converters.onnx")
ort = pytest.importorskip("onnxruntime")

CF = {"data_format": "channels_first"}


def chain(*layers):
    """A factory: input shape -> Model(Input, layers applied in order)."""
    def build(in_shape):
        inp = Input(shape=in_shape)
        x = inp
        for make in layers:
            x = make()(x)
        return Model(inp, x)
    return build


ROWS = {
    # name: (model factory, input shape without batch)
    "Conv1D_valid": (chain(lambda: Conv1D(4, 3)), (7, 3)),
    "Conv1D_same_stride2_tanh": (chain(lambda: Conv1D(4, 3, strides=2, padding="same",
                                                      activation="tanh")), (7, 3)),
    "Conv1D_causal_dilated": (chain(lambda: Conv1D(4, 3, padding="causal", dilation_rate=2)),
                              (8, 2)),
    "Conv1D_groups": (chain(lambda: Conv1D(4, 2, groups=2, padding="same")), (6, 4)),
    "Conv1D_channels_first": (chain(lambda: Conv1D(3, 3, **CF)), (2, 7)),
    "Conv2D_valid": (chain(lambda: Conv2D(4, 3)), (6, 5, 3)),
    "Conv2D_same_stride2_relu": (chain(lambda: Conv2D(4, (3, 2), strides=2, padding="same",
                                                      activation="relu")), (6, 5, 3)),
    "Conv2D_same_even_kernel": (chain(lambda: Conv2D(2, 4, strides=2, padding="same")),
                                (6, 6, 2)),
    "Conv2D_dilated_same": (chain(lambda: Conv2D(3, 3, dilation_rate=2, padding="same")),
                            (7, 7, 2)),
    "Conv2D_groups": (chain(lambda: Conv2D(6, 3, groups=2)), (5, 6, 4)),
    "Conv2D_no_bias_softmax": (chain(lambda: Conv2D(3, 1, use_bias=False,
                                                    activation="softmax")), (4, 4, 2)),
    "Conv2D_channels_first": (chain(lambda: Conv2D(4, 3, strides=2, padding="same",
                                                   activation="relu", **CF)), (3, 6, 5)),
    "Conv1DTranspose": (chain(lambda: Conv1DTranspose(3, 3, strides=2)), (4, 2)),
    "Conv2DTranspose_same": (chain(lambda: Conv2DTranspose(3, 3, strides=2, padding="same")),
                             (3, 4, 2)),
    "Conv2DTranspose_valid_rect": (chain(lambda: Conv2DTranspose(2, (3, 2), strides=(2, 1))),
                                   (3, 3, 2)),
    "Conv2DTranspose_output_padding": (chain(lambda: Conv2DTranspose(
        3, 3, strides=2, padding="same", output_padding=1)), (3, 3, 2)),
    "Conv2DTranspose_stride_gt_kernel": (chain(lambda: Conv2DTranspose(2, 2, strides=3)),
                                         (2, 2, 2)),
    "Conv2DTranspose_channels_first": (chain(lambda: Conv2DTranspose(2, 3, strides=2,
                                                                     padding="same", **CF)),
                                       (2, 3, 3)),
    "DepthwiseConv1D_causal": (chain(lambda: DepthwiseConv1D(3, depth_multiplier=2,
                                                             padding="causal")), (6, 2)),
    "DepthwiseConv2D": (chain(lambda: DepthwiseConv2D(3, depth_multiplier=2)), (5, 5, 3)),
    "DepthwiseConv2D_same_stride2": (chain(lambda: DepthwiseConv2D(3, strides=2,
                                                                   padding="same")), (5, 6, 2)),
    "DepthwiseConv2D_channels_first": (chain(lambda: DepthwiseConv2D(3, padding="same", **CF)),
                                       (2, 5, 5)),
    "SeparableConv1D": (chain(lambda: SeparableConv1D(3, 3, dilation_rate=2, padding="same")),
                        (8, 2)),
    "SeparableConv2D": (chain(lambda: SeparableConv2D(4, 3, padding="same",
                                                      depth_multiplier=2, activation="relu")),
                        (6, 6, 3)),
    "SeparableConv2D_channels_first": (chain(lambda: SeparableConv2D(4, 3, strides=2, **CF)),
                                       (3, 7, 7)),
    "ZeroPadding1D": (chain(lambda: ZeroPadding1D((1, 3))), (4, 3)),
    "ZeroPadding1D_channels_first": (chain(lambda: ZeroPadding1D((1, 2),
                                                                 data_format="channels_first")),
                                     (3, 4)),
    "ZeroPadding2D": (chain(lambda: ZeroPadding2D(((1, 2), (0, 1)))), (3, 4, 2)),
    "ZeroPadding2D_channels_first": (chain(lambda: ZeroPadding2D(1, **CF)), (2, 3, 3)),
    "Cropping1D": (chain(lambda: Cropping1D((1, 2))), (6, 3)),
    "Cropping2D": (chain(lambda: Cropping2D(((1, 0), (2, 1)))), (5, 6, 2)),
    "Cropping2D_channels_first": (chain(lambda: Cropping2D(1, **CF)), (2, 5, 5)),
    "UpSampling1D": (chain(lambda: UpSampling1D(3)), (3, 2)),
    "UpSampling2D": (chain(lambda: UpSampling2D((2, 3))), (2, 3, 2)),
    "UpSampling2D_channels_first": (chain(lambda: UpSampling2D(2, **CF)), (2, 2, 3)),
    "UpSampling2D_bilinear": (chain(lambda: UpSampling2D((2, 3), interpolation="bilinear")),
                              (3, 4, 2)),
    "MaxPooling1D": (chain(lambda: MaxPooling1D(2)), (7, 3)),
    "MaxPooling1D_same": (chain(lambda: MaxPooling1D(3, strides=1, padding="same")), (5, 2)),
    "MaxPooling1D_channels_first": (chain(lambda: MaxPooling1D(2, **CF)), (3, 6)),
    "AveragePooling1D_same": (chain(lambda: AveragePooling1D(3, strides=2, padding="same")),
                              (6, 2)),
    "MaxPooling2D": (chain(lambda: MaxPooling2D()), (7, 5, 2)),
    "MaxPooling2D_same": (chain(lambda: MaxPooling2D((3, 3), strides=2, padding="same")),
                          (5, 6, 2)),
    "MaxPooling2D_channels_first": (chain(lambda: MaxPooling2D(2, **CF)), (2, 4, 6)),
    "AveragePooling2D": (chain(lambda: AveragePooling2D()), (6, 6, 3)),
    "AveragePooling2D_same": (chain(lambda: AveragePooling2D((3, 2), strides=(2, 3),
                                                             padding="same")), (5, 7, 2)),
    "AveragePooling2D_channels_first": (chain(lambda: AveragePooling2D(2, strides=1, **CF)),
                                        (2, 4, 4)),
    "GlobalMaxPooling1D": (chain(lambda: GlobalMaxPooling1D()), (5, 3)),
    "GlobalAveragePooling1D": (chain(lambda: GlobalAveragePooling1D()), (5, 3)),
    "GlobalAveragePooling1D_channels_first_keepdims": (
        chain(lambda: GlobalAveragePooling1D(keepdims=True, **CF)), (3, 5)),
    "GlobalAveragePooling1D_masked": (chain(lambda: Masking(0.0),
                                            lambda: GlobalAveragePooling1D()), (5, 3)),
    "GlobalMaxPooling2D_channels_first": (chain(lambda: GlobalMaxPooling2D(**CF)), (3, 4, 5)),
    "GlobalAveragePooling2D_keepdims": (chain(lambda: GlobalAveragePooling2D(keepdims=True)),
                                        (4, 5, 3)),
    "Conv3D_same_stride2": (chain(lambda: Conv3D(3, 3, strides=(2, 1, 2), padding="same",
                                                  activation="relu")), (5, 4, 6, 2)),
    "Conv3D_channels_first_dilated": (chain(lambda: Conv3D(2, 2, dilation_rate=2, **CF)),
                                      (2, 4, 5, 4)),
    "Conv3DTranspose_same": (chain(lambda: Conv3DTranspose(2, 3, strides=2, padding="same")),
                             (2, 3, 2, 2)),
    "Conv3DTranspose_channels_first": (chain(lambda: Conv3DTranspose(2, (2, 3, 2),
                                                                     strides=(1, 2, 2), **CF)),
                                       (2, 2, 2, 3)),
    "MaxPooling3D_same": (chain(lambda: MaxPooling3D((3, 2, 2), strides=(2, 1, 2),
                                                     padding="same")), (5, 3, 4, 2)),
    "AveragePooling3D_channels_first": (chain(lambda: AveragePooling3D(2, **CF)), (2, 4, 4, 4)),
    "AveragePooling3D_same": (chain(lambda: AveragePooling3D(2, strides=1, padding="same")),
                              (3, 3, 2, 2)),
    "GlobalMaxPooling3D": (chain(lambda: GlobalMaxPooling3D()), (2, 3, 2, 3)),
    "GlobalAveragePooling3D_channels_first": (chain(lambda: GlobalAveragePooling3D(**CF)),
                                              (3, 2, 3, 2)),
    "ZeroPadding3D": (chain(lambda: ZeroPadding3D(((1, 0), (0, 2), (1, 1)))), (2, 3, 2, 2)),
    "ZeroPadding3D_channels_first": (chain(lambda: ZeroPadding3D(1, **CF)), (2, 2, 3, 2)),
    "Cropping3D": (chain(lambda: Cropping3D(((1, 0), (0, 1), (1, 1)))), (3, 4, 4, 2)),
    "Cropping3D_channels_first": (chain(lambda: Cropping3D(1, **CF)), (2, 3, 4, 5)),
    "UpSampling3D": (chain(lambda: UpSampling3D((2, 1, 3))), (2, 2, 2, 2)),
    "UpSampling3D_channels_first": (chain(lambda: UpSampling3D(2, **CF)), (2, 2, 1, 2)),
    "conv3d_net": (chain(lambda: Conv3D(4, 3, padding="same", activation="relu"),
                         lambda: MaxPooling3D(), lambda: Conv3DTranspose(2, 2, strides=2),
                         lambda: Flatten(), lambda: Dense(3)), (4, 4, 4, 1)),
    "vgg_like_net": (chain(lambda: Conv2D(8, 3, activation="relu", padding="same"),
                           lambda: Conv2D(8, 3, activation="relu", padding="same"),
                           lambda: MaxPooling2D(), lambda: Conv2D(16, 3, activation="relu"),
                           lambda: MaxPooling2D(), lambda: Flatten(),
                           lambda: Dense(10, activation="softmax")), (12, 12, 1)),
    "channels_first_net": (chain(lambda: ZeroPadding2D(1, **CF),
                                 lambda: Conv2D(4, 3, activation="relu", **CF),
                                 lambda: MaxPooling2D(**CF),
                                 lambda: SeparableConv2D(4, 3, padding="same", **CF),
                                 lambda: UpSampling2D(**CF), lambda: Flatten(**CF),
                                 lambda: Dense(3)), (2, 8, 8)),
    "conv1d_net": (chain(lambda: Conv1D(4, 3, padding="causal", dilation_rate=2),
                         lambda: UpSampling1D(2), lambda: ZeroPadding1D(1),
                         lambda: MaxPooling1D(2), lambda: GlobalAveragePooling1D(),
                         lambda: Dense(2)), (10, 2)),
}


def _rng(name):
    """Each row draws from its own stream, so adding a row changes no other row's numbers."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def _input(in_shape, name):
    x = _rng(name + "/x").standard_normal((3,) + in_shape).astype(np.float32)
    if name.endswith("_masked"):
        x[1, 3:] = 0.0
        x[2, 1:] = 0.0
    return x


@pytest.mark.parametrize("name", sorted(ROWS))
def test_onnx_runtime_matches_predict(name):
    factory, in_shape = ROWS[name]
    model = factory(in_shape)
    draw = _rng(name)
    model.set_weights([draw.standard_normal(np.shape(w)).astype(np.float32) * 0.3
                       for w in model.get_weights()])
    proto = onnx_conv.export(model)
    x = _input(in_shape, name)
    want = model.predict(x)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_every_conv_group_layer_has_a_row():
    import modelkit.layers.convolutional as conv
    import modelkit.layers.pooling as pool
    keras1_or_alias = {"Convolution1D", "Convolution2D", "Convolution3D", "AtrousConvolution1D",
                       "AtrousConvolution2D", "Convolution2DTranspose", "Convolution3DTranspose",
                       "SeparableConvolution1D", "SeparableConvolution2D", "MaxPool1D",
                       "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
                       "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D", "GlobalAvgPool1D",
                       "GlobalAvgPool2D", "GlobalAvgPool3D"}
    names = (set(conv.__all__) | set(pool.__all__)) - keras1_or_alias
    covered = {n for n in names if any(r == n or r.startswith(n + "_") for r in ROWS)}
    assert names == covered, f"add ONNX parity rows for {sorted(names - covered)}"

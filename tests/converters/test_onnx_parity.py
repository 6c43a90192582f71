"""ONNX export parity: ONE case table, onnxruntime's output vs `model.predict` on the same
random weights, max abs diff <= 1e-5 for every case.

A case is `group/name`: a model factory, an input maker `(rng, batch) -> [arrays]` and a
weight distribution. Every case draws weights and inputs from its own stream (seeded by its
name), so adding a case changes no other case's numbers. Groups: `layer` (one row per layer
class), `conv` (conv/pool configurations, both data formats, small nets), `misc` (merge,
normalization, noise, advanced activations, Keras 1 layers), `rnn` (recurrent configurations,
masks, initial states, wrappers), and `backend` (K functions on symbolic tensors).
`test_every_layer_class_has_a_case` keeps the table complete as layers are added.
"""

import warnings
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from modelkit import backend as K
from modelkit import layers as L
from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import run
from modelkit.errors import UnsupportedError
from modelkit.layers import (GRU, LSTM, AveragePooling1D, AveragePooling2D, AveragePooling3D,
                             Bidirectional, Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose,
                             Conv3D, Conv3DTranspose, Cropping1D, Cropping2D, Cropping3D, Dense,
                             DepthwiseConv1D, DepthwiseConv2D, Embedding, Flatten,
                             GlobalAveragePooling1D, GlobalAveragePooling2D,
                             GlobalAveragePooling3D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                             GlobalMaxPooling3D, Input, Masking, MaxPooling1D, MaxPooling2D,
                             MaxPooling3D, SeparableConv1D, SeparableConv2D, SimpleRNN,
                             TimeDistributed, UpSampling1D, UpSampling2D, UpSampling3D,
                             ZeroPadding1D, ZeroPadding2D, ZeroPadding3D)
from modelkit.models import Model, Sequential


@dataclass(frozen=True)
class Case:
    build: Callable                      # () -> model
    inputs: Callable                     # (rng, batch) -> list of input arrays
    weights: Callable                    # (rng, shape) -> weight array


def uniform(rng, shape):
    return rng.uniform(0.2, 1.0, size=shape).astype(np.float32)


def normal(scale):
    return lambda rng, shape: (rng.standard_normal(shape) * scale).astype(np.float32)


def feeds(shapes, kind="f"):
    """Input maker for `shapes` (no batch): float normal, float token ids, or float normal
    with trailing zeros (a Masking layer masks them)."""
    def make(rng, batch):
        if kind == "ids":
            return [rng.integers(1, 9, size=(batch,) + s).astype(np.float32) for s in shapes]
        xs = [rng.standard_normal((batch,) + s).astype(np.float32) for s in shapes]
        if kind == "masked":
            xs[0][1, 3:] = 0.0
            xs[0][2, 1:] = 0.0
        return xs
    return make


def functional(shapes, build):
    """A factory: Model(Inputs of `shapes`, build(*inputs))."""
    def make():
        ins = [Input(shape=s) for s in shapes]
        return Model(ins if len(ins) > 1 else ins[0], build(*ins))
    return make


# -- layer: one row per layer class ------------------------------------------------------------

def _seq(*layers, shape):
    return lambda: Sequential([L.InputLayer(input_shape=shape)] + [f() for f in layers])


def lay(name, **kw):
    return lambda: getattr(L, name)(**kw)


LAYER_ROWS = {   # class name -> (model factory, input shapes (no batch), input kind)
    "OnnxOp": (_seq(lay("OnnxOp", op_type="HardSwish"), shape=(4,)), [(4,)], "f"),
    "Dense": (_seq(lay("Dense", units=3, activation="relu"), shape=(4,)), [(4,)], "f"),
    "Activation": (_seq(lay("Activation", activation="tanh"), shape=(4,)), [(4,)], "f"),
    "Dropout": (_seq(lay("Dropout", rate=0.5), shape=(4,)), [(4,)], "f"),
    "ActivityRegularization": (_seq(lay("ActivityRegularization"), shape=(4,)), [(4,)], "f"),
    "Flatten": (_seq(lay("Flatten"), shape=(2, 3, 2)), [(2, 3, 2)], "f"),
    "Reshape": (_seq(lay("Reshape", target_shape=(3, -1)), shape=(6,)), [(6,)], "f"),
    "Permute": (_seq(lay("Permute", dims=(2, 1)), shape=(3, 4)), [(3, 4)], "f"),
    "RepeatVector": (_seq(lay("RepeatVector", n=3), shape=(4,)), [(4,)], "f"),
    "Rescaling": (_seq(lay("Rescaling", scale=[0.5, 2.0, -1.0], offset=0.25), shape=(2, 3)),
                  [(2, 3)], "f"),
    "Identity": (_seq(lay("Identity"), shape=(4,)), [(4,)], "f"),
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
    "Conv3D": (_seq(lay("Conv3D", filters=2, kernel_size=2, padding="same"),
                    shape=(3, 4, 3, 2)), [(3, 4, 3, 2)], "f"),
    "Conv3DTranspose": (_seq(lay("Conv3DTranspose", filters=2, kernel_size=2, strides=2),
                             shape=(2, 3, 2, 2)), [(2, 3, 2, 2)], "f"),
    "MaxPooling3D": (_seq(lay("MaxPooling3D", pool_size=2), shape=(4, 4, 2, 2)),
                     [(4, 4, 2, 2)], "f"),
    "AveragePooling3D": (_seq(lay("AveragePooling3D", pool_size=(2, 1, 2)),
                              shape=(4, 3, 4, 2)), [(4, 3, 4, 2)], "f"),
    "GlobalMaxPooling3D": (_seq(lay("GlobalMaxPooling3D"), shape=(2, 3, 2, 3)),
                           [(2, 3, 2, 3)], "f"),
    "GlobalAveragePooling3D": (_seq(lay("GlobalAveragePooling3D"), shape=(2, 3, 2, 3)),
                               [(2, 3, 2, 3)], "f"),
    "ZeroPadding3D": (_seq(lay("ZeroPadding3D", padding=1), shape=(2, 2, 2, 1)),
                      [(2, 2, 2, 1)], "f"),
    "Cropping3D": (_seq(lay("Cropping3D", cropping=1), shape=(3, 4, 3, 2)), [(3, 4, 3, 2)],
                   "f"),
    "UpSampling3D": (_seq(lay("UpSampling3D", size=2), shape=(2, 2, 1, 2)), [(2, 2, 1, 2)],
                     "f"),
    "ConvLSTM2D": (_seq(lay("ConvLSTM2D", filters=2, kernel_size=3, padding="same",
                            return_sequences=True), shape=(3, 4, 4, 2)), [(3, 4, 4, 2)], "f"),
    "ConvLSTM1D": (_seq(lay("ConvLSTM1D", filters=2, kernel_size=2, strides=2,
                            go_backwards=True), shape=(3, 6, 2)), [(3, 6, 2)], "f"),
    "ConvLSTM3D": (_seq(lay("ConvLSTM3D", filters=2, kernel_size=2, padding="same",
                            return_sequences=True), shape=(2, 3, 2, 3, 1)), [(2, 3, 2, 3, 1)],
                   "f"),
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
    "Add": (functional([(3,), (3,)], lambda a, b: L.Add()([a, b])), [(3,), (3,)], "f"),
    "Subtract": (functional([(3,), (3,)], lambda a, b: L.Subtract()([a, b])), [(3,), (3,)], "f"),
    "Multiply": (functional([(3,), (3,)], lambda a, b: L.Multiply()([a, b])), [(3,), (3,)], "f"),
    "Average": (functional([(3,), (3,)], lambda a, b: L.Average()([a, b])), [(3,), (3,)], "f"),
    "Maximum": (functional([(3,), (3,)], lambda a, b: L.Maximum()([a, b])), [(3,), (3,)], "f"),
    "Minimum": (functional([(3,), (3,)], lambda a, b: L.Minimum()([a, b])), [(3,), (3,)], "f"),
    "Concatenate": (functional([(3,), (2,)], lambda a, b: L.Concatenate()([a, b])), [(3,), (2,)], "f"),
    "Dot": (functional([(3,), (3,)], lambda a, b: L.Dot(axes=1, normalize=True)([a, b])),
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

# -- conv: conv/pool configurations and small nets ---------------------------------------------

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


CONV_ROWS = {   # name -> (model factory of the input shape, input shape without batch)
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
    # image preprocessing (inference) and LocallyConnected
    "Resizing": (chain(lambda: L.Resizing(7, 3)), (5, 6, 2)),
    "Resizing_nearest_crop": (chain(lambda: L.Resizing(3, 5, interpolation="nearest",
                                                       crop_to_aspect_ratio=True)), (6, 7, 2)),
    "Resizing_channels_first": (chain(lambda: L.Resizing(4, 2, **CF)), (2, 5, 6)),
    "CenterCrop": (chain(lambda: L.CenterCrop(3, 4)), (6, 7, 2)),
    "CenterCrop_upsized": (chain(lambda: L.CenterCrop(6, 6)), (4, 5, 2)),
    "RandomCrop": (chain(lambda: L.RandomCrop(3, 5)), (6, 7, 2)),
    **{name: (chain(make), (5, 4, 3)) for name, make in [
        ("RandomFlip", lambda: L.RandomFlip()), ("RandomRotation", lambda: L.RandomRotation(0.2)),
        ("RandomZoom", lambda: L.RandomZoom(0.2)),
        ("RandomTranslation", lambda: L.RandomTranslation(0.1, 0.2)),
        ("RandomContrast", lambda: L.RandomContrast(0.3)),
        ("RandomBrightness", lambda: L.RandomBrightness(0.3))]},
    "LocallyConnected1D": (chain(lambda: L.LocallyConnected1D(3, 2, strides=2,
                                                              activation="relu")), (7, 3)),
    "LocallyConnected2D": (chain(lambda: L.LocallyConnected2D(2, (2, 3), strides=(1, 2))),
                           (4, 6, 3)),
    "LocallyConnected2D_channels_first": (chain(lambda: L.LocallyConnected2D(2, 2, **CF)),
                                          (2, 4, 5)),
}

# -- misc: merge, normalization, noise, advanced activations, Keras 1 layers -------------------


def _one(layer_factory, shape):
    return functional([shape], lambda x: layer_factory()(x)), [shape]


def _two(layer_factory, s1, s2, pre=True):
    """Two inputs through their own Dense layers, then the merge layer."""
    def build(a, b):
        if pre:
            a, b = L.Dense(s1[-1])(a), L.Dense(s2[-1])(b)
        return layer_factory()([a, b])
    return functional([s1, s2], build), [s1, s2]


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
    return functional([(3, 4), (3, 4)], lambda a, b: L.merge([a, b], mode=mode, **kw)), \
        [(3, 4), (3, 4)]


def _masked_concat():
    def build(a, b):
        x = L.Concatenate()([L.Masking()(a), L.Dense(2)(b)])
        return L.LSTM(3)(x)
    return functional([(5, 3), (5, 2)], build), [(5, 3), (5, 2)], "masked"


MISC_ROWS = {   # name -> (model factory, input shapes, [input kind])
    # merge layers
    "Add": _two(L.Add, (4,), (4,)),
    "Add_rank_broadcast": _two(L.Add, (3, 4), (4,)),
    "Add_three": (functional([(4,)] * 3, lambda a, b, c: L.Add()([a, b, c])), [(4,)] * 3),
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
    "GroupNormalization": _one(lambda: L.GroupNormalization(2), (3, 4)),
    "GroupNormalization_axis1": _one(lambda: L.GroupNormalization(3, axis=1, center=False),
                                     (6, 2)),
    "UnitNormalization": _one(lambda: L.UnitNormalization(axis=[1, 2]), (3, 4)),
    "Normalization": _one(lambda: L.Normalization(axis=1), (3, 4)),
    "Normalization_fixed_invert": _one(lambda: L.Normalization(mean=0.5, variance=2.0,
                                                               invert=True), (4,)),
    # attention
    "MultiHeadAttention": _two(lambda: L.MultiHeadAttention(2, 3), (3, 4), (5, 4)),
    "MultiHeadAttention_causal": (functional([(4, 3)], lambda x: L.MultiHeadAttention(
        2, 2, output_shape=5)(x, x, use_causal_mask=True)), [(4, 3)]),
    "Attention": _two(lambda: L.Attention(use_scale=True), (3, 4), (5, 4)),
    "Attention_concat": _two(lambda: L.Attention(score_mode="concat"), (3, 4), (5, 4)),
    "AdditiveAttention": _two(L.AdditiveAttention, (3, 4), (5, 4)),
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

# -- rnn: recurrent configurations -------------------------------------------------------------

T, F_IN = 5, 3


def seq(first_layer, *rest, shape=(T, F_IN)):
    return lambda: Sequential([first_layer(shape)] + [f() for f in rest])


def first(make_layer):
    """The first layer of a Sequential, given its input shape."""
    return lambda shape: make_layer(input_shape=shape)


def with_initial_state(layer_factory, units, n_states):
    def make():
        inp = Input((T, F_IN))
        states = [Input((units,)) for _ in range(n_states)]
        return Model([inp] + states, layer_factory()(inp, initial_state=states))
    return make


def td_model():
    inner = Sequential([Dense(4, activation="tanh", input_shape=(F_IN,)), Dense(2)])
    inp = Input((T, F_IN))
    return Model(inp, TimeDistributed(inner)(inp))


def floats(n_states=0, units=3):
    def make(rng, batch):
        x = rng.standard_normal((batch, T, F_IN)).astype("float32")
        return [x] + [rng.standard_normal((batch, units)).astype("float32")
                      for _ in range(n_states)]
    return make


def right_padded(rng, batch):
    x = rng.standard_normal((batch, T, F_IN)).astype("float32")
    for i in range(batch):
        x[i, T - i % T:] = 0           # sample i ends with i padded steps
    return [x]


def padded_ids(rng, batch):
    ids = rng.integers(1, 9, (batch, T)).astype("int32")
    for i in range(batch):
        ids[i, T - i % T:] = 0
    return [ids]


RNN_ROWS = {   # name -> (model factory, input maker)
    "SimpleRNN": (seq(first(lambda **k: SimpleRNN(3, **k))), floats()),
    "SimpleRNN_seq_back_relu": (seq(first(lambda **k: SimpleRNN(
        3, return_sequences=True, go_backwards=True, activation="relu", **k))), floats()),
    "GRU": (seq(first(lambda **k: GRU(3, **k))), floats()),
    "GRU_reset_before_seq": (seq(first(lambda **k: GRU(3, reset_after=False,
                                                       return_sequences=True, **k))),
                             floats()),
    "GRU_back_seq": (seq(first(lambda **k: GRU(3, go_backwards=True, return_sequences=True,
                                               **k))), floats()),
    "GRU_initial_state": (with_initial_state(lambda: GRU(3, return_state=True), 3, 1),
                          floats(1)),
    "LSTM": (seq(first(lambda **k: LSTM(3, **k))), floats()),
    "LSTM_seq_hard_sigmoid": (seq(first(lambda **k: LSTM(
        3, return_sequences=True, recurrent_activation="hard_sigmoid", **k))), floats()),
    "LSTM_back_seq_nobias": (seq(first(lambda **k: LSTM(3, go_backwards=True, use_bias=False,
                                                        return_sequences=True, **k))),
                             floats()),
    "LSTM_initial_state": (with_initial_state(lambda: LSTM(3, return_state=True), 3, 2),
                           floats(2)),
    "LSTM_stacked": (seq(first(lambda **k: LSTM(4, return_sequences=True, **k)),
                         lambda: LSTM(3)), floats()),
    "Masking_LSTM_seq": (seq(first(lambda **k: Masking(**k)),
                             lambda: LSTM(3, return_sequences=True)), right_padded),
    "Masking_GRU_last": (seq(first(lambda **k: Masking(**k)), lambda: GRU(3)), right_padded),
    "Embedding": (lambda: Sequential([Embedding(9, 3, input_length=T)]), padded_ids),
    "Embedding_mask_LSTM_seq": (lambda: Sequential([Embedding(9, 3, mask_zero=True,
                                                              input_length=T),
                                                    LSTM(3, return_sequences=True), GRU(2)]),
                                padded_ids),
    "Bidirectional_concat_seq": (seq(first(lambda **k: Bidirectional(
        LSTM(3, return_sequences=True), **k))), floats()),
    "Bidirectional_sum": (seq(first(lambda **k: Bidirectional(GRU(3), merge_mode="sum", **k))),
                          floats()),
    "Bidirectional_ave_seq": (seq(first(lambda **k: Bidirectional(
        SimpleRNN(3, return_sequences=True), merge_mode="ave", **k))), floats()),
    "Bidirectional_mul": (seq(first(lambda **k: Bidirectional(LSTM(3), merge_mode="mul", **k))),
                          floats()),
    "Bidirectional_none_state": (lambda: (lambda i: Model(i, Bidirectional(
        LSTM(3, return_state=True), merge_mode=None)(i)))(Input((T, F_IN))), floats()),
    "Bidirectional_mask_last": (seq(first(lambda **k: Masking(**k)),
                                    lambda: Bidirectional(LSTM(3))), right_padded),
    "Bidirectional_mask_seq": (seq(first(lambda **k: Masking(**k)),
                                   lambda: Bidirectional(LSTM(3, return_sequences=True))),
                               right_padded),
    "TimeDistributed_Dense": (seq(first(lambda **k: TimeDistributed(Dense(2), **k))), floats()),
    "TimeDistributed_model": (td_model, floats()),
}

# -- backend: K functions on symbolic tensors --------------------------------------------------

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


def _backend_model(expression):
    def make():
        inp = Input((4,))
        return Model(inp, expression(K, Dense(4)(inp)))
    return make


# -- the one table -----------------------------------------------------------------------------

CASES = {
    **{f"layer/{n}": Case(f, feeds(shapes, kind), uniform)
       for n, (f, shapes, kind) in LAYER_ROWS.items()},
    **{f"conv/{n}": Case(lambda f=f, s=s: f(s), feeds([s], "masked" if n.endswith("_masked")
                                                     else "f"), normal(0.3))
       for n, (f, s) in CONV_ROWS.items()},
    **{f"misc/{n}": Case(f, feeds(shapes, *kind), uniform)
       for n, (f, shapes, *kind) in MISC_ROWS.items()},
    **{f"rnn/{n}": Case(f, inputs, normal(0.6)) for n, (f, inputs) in RNN_ROWS.items()},
    **{f"backend/{n}": Case(_backend_model(e), feeds([(4,)]), uniform)
       for n, e in BACKEND_ROWS.items()},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_runtime_matches_predict(name):
    case = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # Keras 1 spellings
        model = case.build()
    model.set_weights([case.weights(rng, np.shape(w)) for w in model.get_weights()])
    batch = model.inputs[0].shape[0] or 3
    xs = case.inputs(rng, batch)
    want = model.predict(xs if len(xs) > 1 else xs[0], batch_size=batch)
    want = want if isinstance(want, list) else [want]
    got = run(onnx_conv.export(model), xs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)


# Registered names that are not layers of their own, or Keras 1 / short spellings of one.
NOT_LAYERS = {"Layer", "Input", "InputLayer", "Lambda", "BackendOp", "Wrapper", "RNN", "Conv",
              "Pooling1D", "Pooling2D"}
ALIASES = {"Convolution1D", "Convolution2D", "Convolution3D", "AtrousConvolution1D",
           "AtrousConvolution2D", "Deconvolution2D", "Convolution2DTranspose",
           "Convolution3DTranspose", "SeparableConvolution1D", "SeparableConvolution2D",
           "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
           "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D", "GlobalAvgPool1D",
           "GlobalAvgPool2D", "GlobalAvgPool3D"}


def test_every_layer_class_has_a_case():
    rows = {name.split("/", 1)[1] for name in CASES}
    names = {n for n in L.LAYERS.names() if n not in NOT_LAYERS | ALIASES
             and not n.startswith("_") and getattr(L, n, None) is not None}
    missing = sorted(n for n in names if not any(r == n or r.startswith(n + "_") for r in rows))
    assert not missing, f"add ONNX parity cases for {missing}"


def test_stateful_recurrent_layers_are_refused_with_a_clear_error():
    """A stateful RNN carries state between calls, which an ONNX graph cannot hold."""
    model = Sequential([LSTM(3, stateful=True, batch_input_shape=(4, T, F_IN), name="keeper")])
    with pytest.raises(UnsupportedError, match="LSTM layer 'keeper'.*stateful"):
        onnx_conv.export(model)

"""`keras.applications.efficientnet`: `EfficientNetB0` ... `EfficientNetB7(include_top=True,
weights='imagenet', input_tensor=None, input_shape=None, pooling=None, classes=1000,
classifier_activation='softmax')` with tf-keras's layer names and order (`rescaling`,
`normalization`, `stem_conv`, `block1a_dwconv`, ..., `block1a_se_excite`, ...,
`top_activation`, `avg_pool`, `top_dropout`, `predictions`): swish activations,
squeeze-and-excitation, depthwise convolutions and drop-connect before each residual
addition. The model takes pixels in [0, 255] (`preprocess_input` passes them through, as
Keras's does); with weights='imagenet' the normalized input is also divided by the ImageNet
standard deviations, as tf-keras does."""

import math

from modelkit.applications._vgg import (application_function, correct_pad,
                                        finish_application, make_divisible, model_input,
                                        spatial_size)
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401
from modelkit.applications.resnet import channel_axis

URL_FOLDER = "https://storage.googleapis.com/keras-applications/"
# (kernel, repeats, filters in, filters out, expansion, stride) of the 7 stages (B0)
STAGES = ((3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2),
          (3, 3, 40, 80, 6, 2), (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2),
          (3, 1, 192, 320, 6, 1))
SE_RATIO, DROP_CONNECT_RATE = 0.25, 0.2
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
CONV_INIT = {"class_name": "VarianceScaling",
             "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
DENSE_INIT = {"class_name": "VarianceScaling",
              "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}
# name -> (width, depth, default size, dropout, md5 with top, md5 without) as tf-keras
VARIANTS = {
    "b0": (1.0, 1.0, 224, 0.2, "902e53a9f72be733fc0bcb005b3ebbac",
           "50bc09e76180e00e4465e1a485ddc09d"),
    "b1": (1.0, 1.1, 240, 0.2, "1d254153d4ab51201f1646940f018540",
           "74c4e6b3e1f6a1eea24c589628592432"),
    "b2": (1.1, 1.2, 260, 0.3, "b15cce36ff4dcbd00b6dd88e7857a6ad",
           "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "b3": (1.2, 1.4, 300, 0.3, "ffd1fdc53d0ce67064dc6a9c7960ede0",
           "af6d107764bb5b1abb91932881670226"),
    "b4": (1.4, 1.8, 380, 0.4, "18c95ad55216b8f92d7e70b3a046e2fc",
           "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "b5": (1.6, 2.2, 456, 0.4, "ace28f2a6363774853a83a0b21b9421a",
           "38879255a25d3c92d5e44e04ae6cec6f"),
    "b6": (1.8, 2.6, 528, 0.5, "165f6e37dce68623721b423839de8be5",
           "9ecce42647a20130c1f39a5d4cb75743"),
    "b7": (2.0, 3.1, 600, 0.5, "8c03f828fec3ef71311cd463b6759d99",
           "cbcfe4450ddf6f3ad90b1b398090fe4a")}


def preprocess_input(x, data_format=None):
    """EfficientNet rescales and normalizes inside the model: the input passes through."""
    return x


def _conv(filters, kernel, name, **kwargs):
    from modelkit.layers import Conv2D
    return Conv2D(filters, kernel, padding=kwargs.pop("padding", "same"), name=name,
                  kernel_initializer=CONV_INIT, **kwargs)


def _bn_swish(x, name, act_name):
    from modelkit.layers import Activation, BatchNormalization
    x = BatchNormalization(axis=channel_axis(), name=name)(x)
    return Activation("swish", name=act_name)(x)


def block(inputs, prefix, drop_rate, kernel, filters_in, filters_out, expansion, stride):
    """tf-keras's `block`: 1x1 expansion, depthwise convolution, squeeze-and-excitation,
    1x1 projection; a residual addition (after drop-connect) when shapes allow."""
    from modelkit.layers import (BatchNormalization, DepthwiseConv2D, Dropout,
                                 GlobalAveragePooling2D, Reshape, ZeroPadding2D, add, multiply)
    filters = filters_in * expansion
    x = inputs
    if expansion != 1:
        x = _conv(filters, 1, prefix + "expand_conv", use_bias=False)(x)
        x = _bn_swish(x, prefix + "expand_bn", prefix + "expand_activation")
    if stride == 2:
        x = ZeroPadding2D(correct_pad(spatial_size(x), kernel), name=prefix + "dwconv_pad")(x)
    x = DepthwiseConv2D(kernel, strides=stride, padding="valid" if stride == 2 else "same",
                        use_bias=False, name=prefix + "dwconv",
                        depthwise_initializer=CONV_INIT)(x)
    x = _bn_swish(x, prefix + "bn", prefix + "activation")
    se = GlobalAveragePooling2D(name=prefix + "se_squeeze")(x)
    se = Reshape((filters, 1, 1) if channel_axis() == 1 else (1, 1, filters),
                 name=prefix + "se_reshape")(se)
    se = _conv(max(1, int(filters_in * SE_RATIO)), 1, prefix + "se_reduce",
               activation="swish")(se)
    se = _conv(filters, 1, prefix + "se_expand", activation="sigmoid")(se)
    x = multiply([x, se], name=prefix + "se_excite")
    x = _conv(filters_out, 1, prefix + "project_conv", use_bias=False)(x)
    x = BatchNormalization(axis=channel_axis(), name=prefix + "project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=prefix + "drop")(x)
        x = add([x, inputs], name=prefix + "add")
    return x


def build_efficientnet(name, include_top=True, weights="imagenet", input_tensor=None,
                       input_shape=None, pooling=None, classes=1000,
                       classifier_activation="softmax"):
    from modelkit import backend as K
    from modelkit.layers import (Dense, Dropout, GlobalAveragePooling2D, Normalization,
                                 Rescaling, ZeroPadding2D)
    width, depth, size, dropout, top_md5, notop_md5 = VARIANTS[name[-2:]]
    x, inputs = model_input(name, include_top, weights, input_tensor, input_shape, pooling,
                            classes, side=size)
    x = Normalization(axis=channel_axis())(Rescaling(1.0 / 255.0)(x))
    if weights == "imagenet":                  # tf-keras's tf.math.multiply of the file
        shape = [1, 3, 1, 1] if channel_axis() == 1 else [1, 1, 1, 3]
        x = K.multiply(x, K.reshape(K.constant([1.0 / math.sqrt(s) for s in
                                                IMAGENET_STDDEV_RGB]), shape))
    x = ZeroPadding2D(correct_pad(spatial_size(x), 3), name="stem_conv_pad")(x)
    x = _conv(make_divisible(32 * width), 3, "stem_conv", strides=2, padding="valid",
              use_bias=False)(x)
    x = _bn_swish(x, "stem_bn", "stem_activation")
    repeats = [int(math.ceil(depth * stage[1])) for stage in STAGES]
    done, total = 0, float(sum(repeats))
    for i, ((kernel, _, f_in, f_out, expansion, stride), n) in enumerate(zip(STAGES, repeats)):
        f_in, f_out = make_divisible(f_in * width), make_divisible(f_out * width)
        for j in range(n):
            x = block(x, f"block{i + 1}{chr(j + 97)}_", DROP_CONNECT_RATE * done / total,
                      kernel, f_in if j == 0 else f_out, f_out, expansion,
                      stride if j == 0 else 1)
            done += 1
    x = _conv(make_divisible(1280 * width), 1, "top_conv", use_bias=False)(x)
    x = _bn_swish(x, "top_bn", "top_activation")

    def head(x):
        x = GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout > 0:
            x = Dropout(dropout, name="top_dropout")(x)
        return Dense(classes, activation=classifier_activation, name="predictions",
                     kernel_initializer=DENSE_INIT)(x)
    files = {True: (name + ".h5", top_md5), False: (name + "_notop.h5", notop_md5)}
    return finish_application(name, x, inputs, include_top, weights, pooling, classes,
                              classifier_activation, files, flatten=False, head=head,
                              pool_names=("avg_pool", "max_pool"), url_folder=URL_FOLDER)


EfficientNetB0 = application_function(build_efficientnet, "efficientnetb0",
                                      "EfficientNetB0")
EfficientNetB1 = application_function(build_efficientnet, "efficientnetb1",
                                      "EfficientNetB1")
EfficientNetB2 = application_function(build_efficientnet, "efficientnetb2",
                                      "EfficientNetB2")
EfficientNetB3 = application_function(build_efficientnet, "efficientnetb3",
                                      "EfficientNetB3")
EfficientNetB4 = application_function(build_efficientnet, "efficientnetb4",
                                      "EfficientNetB4")
EfficientNetB5 = application_function(build_efficientnet, "efficientnetb5",
                                      "EfficientNetB5")
EfficientNetB6 = application_function(build_efficientnet, "efficientnetb6",
                                      "EfficientNetB6")
EfficientNetB7 = application_function(build_efficientnet, "efficientnetb7",
                                      "EfficientNetB7")

"""`keras.applications.mobilenet_v2`: `MobileNetV2(input_shape=None, alpha=1.0,
include_top=True, weights='imagenet', input_tensor=None, pooling=None, classes=1000,
classifier_activation='softmax')` with tf-keras's layer names (`Conv1`, `bn_Conv1`,
`expanded_conv_depthwise`, `block_1_expand` ... `block_16_project_BN`, `Conv_1`,
`out_relu`, `predictions`), `preprocess_input` (Keras's 'tf' mode) and
`decode_predictions`. weights='imagenet' downloads Keras's file for `alpha` and the input
size (96, 128, 160, 192 or 224; otherwise 224's, as Keras does)."""

from modelkit.applications._vgg import (correct_pad, finish_application,  # noqa: F401
                                        make_divisible, model_input, spatial_size,
                                        weights_side)
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401
from modelkit.applications.imagenet_utils import preprocess_input as _preprocess
from modelkit.errors import ConfigError

ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
SIZES = (96, 128, 160, 192, 224)
# (output filters, stride, expansion) of the inverted residual blocks 0..16
BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6),
          (64, 1, 6), (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6),
          (160, 2, 6), (160, 1, 6), (160, 1, 6), (320, 1, 6))


def preprocess_input(x, data_format=None):
    return _preprocess(x, data_format=data_format, mode="tf")


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights="imagenet",
                input_tensor=None, pooling=None, classes=1000,
                classifier_activation="softmax"):
    from modelkit import backend as K
    from modelkit.backend import config as backend_config
    from modelkit.layers import (Add, BatchNormalization, Conv2D, DepthwiseConv2D, ReLU,
                                 ZeroPadding2D)
    axis = 1 if backend_config.image_data_format() == "channels_first" else -1
    img_input, inputs = model_input("mobilenet_v2", include_top, weights, input_tensor,
                                    input_shape, pooling, classes)
    if weights == "imagenet" and alpha not in ALPHAS:
        raise ConfigError(f"mobilenet_v2: weights='imagenet' needs alpha in {ALPHAS}, "
                          f"got alpha={alpha}")
    rows = weights_side(img_input, weights, SIZES)

    def bn_relu(x, name, bn_name=None, relu=True):
        x = BatchNormalization(axis=axis, epsilon=1e-3, momentum=0.999,
                               name=bn_name or name + "_BN")(x)
        return ReLU(6.0, name=name + "_relu")(x) if relu else x

    def block(inputs, filters, stride, expansion, block_id):
        in_channels = K.int_shape(inputs)[axis]
        filters = make_divisible(int(filters * alpha))
        x, prefix = inputs, f"block_{block_id}_" if block_id else "expanded_conv_"
        if block_id:
            x = Conv2D(expansion * in_channels, 1, padding="same", use_bias=False,
                       name=prefix + "expand")(x)
            x = bn_relu(x, prefix + "expand")
        if stride == 2:
            x = ZeroPadding2D(correct_pad(spatial_size(x)), name=prefix + "pad")(x)
        x = DepthwiseConv2D(3, strides=stride, use_bias=False,
                            padding="same" if stride == 1 else "valid",
                            name=prefix + "depthwise")(x)
        x = bn_relu(x, prefix + "depthwise")
        x = Conv2D(filters, 1, padding="same", use_bias=False, name=prefix + "project")(x)
        x = bn_relu(x, prefix + "project", relu=False)
        if in_channels == filters and stride == 1:
            return Add(name=prefix + "add")([inputs, x])
        return x

    x = Conv2D(make_divisible(32 * alpha), 3, strides=(2, 2), padding="same", use_bias=False,
               name="Conv1")(img_input)
    x = bn_relu(x, "Conv1", bn_name="bn_Conv1")
    for block_id, (filters, stride, expansion) in enumerate(BLOCKS):
        x = block(x, filters, stride, expansion, block_id)
    x = Conv2D(make_divisible(1280 * alpha) if alpha > 1.0 else 1280, 1, use_bias=False,
               name="Conv_1")(x)
    x = BatchNormalization(axis=axis, epsilon=1e-3, momentum=0.999, name="Conv_1_bn")(x)
    x = ReLU(6.0, name="out_relu")(x)
    fname = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}"
    files = {True: (fname + ".h5", None), False: (fname + "_no_top.h5", None)}
    return finish_application(f"mobilenetv2_{alpha:0.2f}_{rows}", x, inputs, include_top,
                              weights, pooling, classes, classifier_activation, files,
                              flatten=False)

"""`keras.applications.xception`: `Xception(include_top=True, weights='imagenet',
input_tensor=None, input_shape=None, pooling=None, classes=1000,
classifier_activation='softmax')` with tf-keras's layer names and order (`block1_conv1`,
..., `block14_sepconv2_act`, `avg_pool`, `predictions`; the residual projections and the
additions unnamed, as Keras leaves them), `preprocess_input` (Keras's 'tf' mode) and
`decode_predictions`."""

from modelkit.applications._vgg import finish_application, keras_weight_files, model_input
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401
from modelkit.applications.imagenet_utils import preprocess_input as _preprocess
from modelkit.applications.resnet import channel_axis

WEIGHT_FILES = keras_weight_files("xception", "0a58e3b7378bc2990ea3b43d5981f1f6",
                                  "b0042744bf5b25fce3cb969f33bebb97")


def preprocess_input(x, data_format=None):
    return _preprocess(x, data_format=data_format, mode="tf")


def _bn(x, name=None):
    from modelkit.layers import BatchNormalization
    return BatchNormalization(axis=channel_axis(), name=name)(x)


def _relu(x, name):
    from modelkit.layers import Activation
    return Activation("relu", name=name)(x)


def _sepconv_bn(x, filters, name):
    from modelkit.layers import SeparableConv2D
    x = SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)(x)
    return _bn(x, name + "_bn")


def _downsampling_block(x, block, filters, first_relu=True):
    """Two separable convolutions and a stride-2 max pooling, added to a strided 1x1
    projection of the block's input (blocks 2-4 and 13)."""
    from modelkit.layers import Conv2D, MaxPooling2D, add
    residual = _bn(Conv2D(filters[1], (1, 1), strides=(2, 2), padding="same",
                          use_bias=False)(x))
    prefix = f"block{block}_sepconv"
    if first_relu:
        x = _relu(x, prefix + "1_act")
    x = _sepconv_bn(x, filters[0], prefix + "1")
    x = _sepconv_bn(_relu(x, prefix + "2_act"), filters[1], prefix + "2")
    x = MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{block}_pool")(x)
    return add([x, residual])


def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax"):
    from modelkit.layers import Conv2D, add
    img_input, inputs = model_input("xception", include_top, weights, input_tensor,
                                    input_shape, pooling, classes, side=299, min_size=71)
    x = Conv2D(32, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(img_input)
    x = _relu(_bn(x, "block1_conv1_bn"), "block1_conv1_act")
    x = Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = _relu(_bn(x, "block1_conv2_bn"), "block1_conv2_act")
    x = _downsampling_block(x, 2, (128, 128), first_relu=False)
    x = _downsampling_block(x, 3, (256, 256))
    x = _downsampling_block(x, 4, (728, 728))
    for block in range(5, 13):                                       # the middle flow
        residual = x
        for i in (1, 2, 3):
            prefix = f"block{block}_sepconv{i}"
            x = _sepconv_bn(_relu(x, prefix + "_act"), 728, prefix)
        x = add([x, residual])
    x = _downsampling_block(x, 13, (728, 1024))
    x = _relu(_sepconv_bn(x, 1536, "block14_sepconv1"), "block14_sepconv1_act")
    x = _relu(_sepconv_bn(x, 2048, "block14_sepconv2"), "block14_sepconv2_act")
    return finish_application("xception", x, inputs, include_top, weights, pooling, classes,
                              classifier_activation, WEIGHT_FILES, flatten=False)

"""`keras.applications.densenet`: `DenseNet121`, `DenseNet169` and `DenseNet201(include_top=
True, weights='imagenet', input_tensor=None, input_shape=None, pooling=None, classes=1000,
classifier_activation='softmax')` with tf-keras's layer names and order (`conv1/conv`,
`conv2_block1_0_bn`, ..., `pool2_conv`, ..., `bn`, `relu`, `avg_pool`, `predictions`),
`preprocess_input` (Keras's 'torch' mode) and `decode_predictions`."""

from modelkit.applications._vgg import (application_function, finish_application,
                                        keras_weight_files, model_input)
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401
from modelkit.applications.imagenet_utils import preprocess_input as _preprocess
from modelkit.applications.resnet import batch_norm, bn_relu, channel_axis

GROWTH_RATE = 32
# name -> (convolution blocks per dense block, md5 with top, md5 without) as tf-keras
BLOCKS = {"densenet121": ((6, 12, 24, 16), "9d60b8095a5708f2dcce2bca79d332c7",
                          "30ee3e1110167f948a6b9946edeeb738"),
          "densenet169": ((6, 12, 32, 32), "d699b8f76981ab1b30698df4c175e90b",
                          "b8c4d4c20dd625c148057b9ff1c1176b"),
          "densenet201": ((6, 12, 48, 32), "1ceb130c1ea1b78c3bf6114dbdfd8807",
                          "c13680b51ded0fb44dff2d8f86ac8bb1")}


def preprocess_input(x, data_format=None):
    return _preprocess(x, data_format=data_format, mode="torch")


def conv_block(x, prefix):
    """BN-ReLU-1x1 conv (4 x growth) and BN-ReLU-3x3 conv (growth), concatenated to x."""
    from modelkit.layers import Concatenate, Conv2D
    x1 = Conv2D(4 * GROWTH_RATE, 1, use_bias=False, name=prefix + "_1_conv")(
        bn_relu(x, prefix + "_0"))
    x1 = Conv2D(GROWTH_RATE, 3, padding="same", use_bias=False, name=prefix + "_2_conv")(
        bn_relu(x1, prefix + "_1"))
    return Concatenate(axis=channel_axis(), name=prefix + "_concat")([x, x1])


def transition_block(x, prefix, reduction=0.5):
    """BN-ReLU, a 1x1 convolution to `reduction` of the channels, 2x2 average pooling."""
    from modelkit import backend as K
    from modelkit.layers import AveragePooling2D, Conv2D
    x = bn_relu(x, prefix)
    x = Conv2D(int(K.int_shape(x)[channel_axis()] * reduction), 1, use_bias=False,
               name=prefix + "_conv")(x)
    return AveragePooling2D(2, strides=2, name=prefix + "_pool")(x)


def build_densenet(name, include_top=True, weights="imagenet", input_tensor=None,
                   input_shape=None, pooling=None, classes=1000,
                   classifier_activation="softmax"):
    from modelkit.layers import Activation, Conv2D, MaxPooling2D, ZeroPadding2D
    blocks, top_md5, notop_md5 = BLOCKS[name]
    x, inputs = model_input(name, include_top, weights, input_tensor, input_shape, pooling,
                            classes)
    x = ZeroPadding2D(((3, 3), (3, 3)))(x)
    x = Conv2D(64, 7, strides=2, use_bias=False, name="conv1/conv")(x)
    x = Activation("relu", name="conv1/relu")(batch_norm(x, "conv1/bn"))
    x = ZeroPadding2D(((1, 1), (1, 1)))(x)
    x = MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, n in enumerate(blocks, start=2):
        for i in range(1, n + 1):
            x = conv_block(x, f"conv{stage}_block{i}")
        if stage < 5:
            x = transition_block(x, f"pool{stage}")
    x = Activation("relu", name="relu")(batch_norm(x, "bn"))
    return finish_application(name, x, inputs, include_top, weights, pooling, classes,
                              classifier_activation,
                              keras_weight_files(name, top_md5, notop_md5), flatten=False,
                              folder="densenet",
                              pool_names=("avg_pool", "max_pool"))


DenseNet121 = application_function(build_densenet, "densenet121", "DenseNet121")
DenseNet169 = application_function(build_densenet, "densenet169", "DenseNet169")
DenseNet201 = application_function(build_densenet, "densenet201", "DenseNet201")

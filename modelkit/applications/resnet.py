"""`keras.applications.resnet`: `ResNet50`, `ResNet101` and `ResNet152(include_top=True,
weights='imagenet', input_tensor=None, input_shape=None, pooling=None, classes=1000,
classifier_activation='softmax')` with tf-keras's layer names (`conv1_pad`, `conv1_conv`,
`conv2_block1_0_conv`, ..., `avg_pool`, `predictions`) and layer order, so Keras's weight
files load; `preprocess_input` (Keras's 'caffe' mode) and `decode_predictions`.
`build_resnet` also builds the pre-activation family (`keras.applications.resnet_v2`)."""

from modelkit.applications._vgg import (application_function, finish_application,
                                        keras_weight_files, model_input)
from modelkit.applications._vgg import preprocess_input  # noqa: F401  (caffe mode)
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401

# name -> (bottleneck blocks per stage conv2..conv5, md5 with top, md5 without) as tf-keras
BLOCKS = {"resnet50": ((3, 4, 6, 3), "2cb95161c43110f7111970584f804107",
                       "4d473c1dd8becc155b73f8504c6f6626"),
          "resnet101": ((3, 4, 23, 3), "f1aeb4b969a6efcfb50fad2f0c20cfc5",
                        "88cf7a10940856eca736dc7b7e228a21"),
          "resnet152": ((3, 8, 36, 3), "100835be76be38e30d865e96f2aaae62",
                        "ee4c566cf9a93f14d82f913c2dc6dd0c"),
          "resnet50v2": ((3, 4, 6, 3), "3ef43a0b657b3be2300d5770ece849e0",
                         "fac2f116257151a9d068a22e544a4917"),
          "resnet101v2": ((3, 4, 23, 3), "6343647c601c52e1368623803854d971",
                          "c0ed64b8031c3730f411d2eb4eea35b5"),
          "resnet152v2": ((3, 8, 36, 3), "a49b44d1979771252814e80f8ec446f9",
                          "ed17cf2e0169df9d443503ef94b23b33")}
BN_EPSILON = 1.001e-5


def channel_axis():
    """The channel axis of an image tensor in the image data format (3 or 1)."""
    from modelkit.backend import config as backend_config
    return 1 if backend_config.image_data_format() == "channels_first" else 3


def batch_norm(x, name, epsilon=BN_EPSILON):
    """tf-keras's BatchNormalization over the channels (ResNet's and DenseNet's epsilon)."""
    from modelkit.layers import BatchNormalization
    return BatchNormalization(axis=channel_axis(), epsilon=epsilon, name=name)(x)


def bn_relu(x, prefix):
    """`{prefix}_bn` then `{prefix}_relu` (a pre-activation)."""
    from modelkit.layers import Activation
    return Activation("relu", name=prefix + "_relu")(batch_norm(x, prefix + "_bn"))


def conv_bn(x, filters, kernel, prefix, strides=1, padding="valid", use_bias=True):
    """`{prefix}_conv` then `{prefix}_bn`."""
    from modelkit.layers import Conv2D
    x = Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=use_bias,
               name=prefix + "_conv")(x)
    return batch_norm(x, prefix + "_bn")


def block1(x, filters, stride, shortcut, prefix):
    """tf-keras's `block1`: a post-activation bottleneck, a projection shortcut (`_0_conv`)
    in the first block of a stage."""
    from modelkit.layers import Activation, Add
    shortcut = conv_bn(x, 4 * filters, 1, prefix + "_0", strides=stride) if shortcut else x
    x = Activation("relu", name=prefix + "_1_relu")(
        conv_bn(x, filters, 1, prefix + "_1", strides=stride))
    x = Activation("relu", name=prefix + "_2_relu")(
        conv_bn(x, filters, 3, prefix + "_2", padding="same"))
    x = conv_bn(x, 4 * filters, 1, prefix + "_3")
    x = Add(name=prefix + "_add")([shortcut, x])
    return Activation("relu", name=prefix + "_out")(x)


def block2(x, filters, stride, shortcut, prefix):
    """tf-keras's `block2`: a pre-activation bottleneck (`_preact_bn`/`_preact_relu`), the
    stride on its 3x3 convolution and, without a projection, a 1x1 max pooling shortcut."""
    from modelkit.layers import Activation, Add, Conv2D, MaxPooling2D, ZeroPadding2D
    preact = bn_relu(x, prefix + "_preact")
    if shortcut:
        shortcut = Conv2D(4 * filters, 1, strides=stride, name=prefix + "_0_conv")(preact)
    else:
        shortcut = MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = Conv2D(filters, 1, use_bias=False, name=prefix + "_1_conv")(preact)
    x = Activation("relu", name=prefix + "_1_relu")(batch_norm(x, prefix + "_1_bn"))
    x = ZeroPadding2D(((1, 1), (1, 1)), name=prefix + "_2_pad")(x)
    x = Conv2D(filters, 3, strides=stride, use_bias=False, name=prefix + "_2_conv")(x)
    x = Activation("relu", name=prefix + "_2_relu")(batch_norm(x, prefix + "_2_bn"))
    x = Conv2D(4 * filters, 1, name=prefix + "_3_conv")(x)
    return Add(name=prefix + "_out")([shortcut, x])


def build_resnet(name, include_top=True, weights="imagenet", input_tensor=None,
                 input_shape=None, pooling=None, classes=1000,
                 classifier_activation="softmax"):
    """tf-keras's `ResNet`: a 7x7 stem and four stages of bottleneck blocks; v1 (`stack1`:
    the stride in each stage's first block, batch norm after the stem) or, for the names
    ending in 'v2', pre-activation (`stack2`: the stride in each stage's last block but
    conv5's, `post_bn`/`post_relu` after the last stage)."""
    from modelkit.layers import Activation, Conv2D, MaxPooling2D, ZeroPadding2D
    preact = name.endswith("v2")
    x, inputs = model_input(name, include_top, weights, input_tensor, input_shape, pooling,
                            classes)
    blocks, top_md5, notop_md5 = BLOCKS[name]
    x = ZeroPadding2D(((3, 3), (3, 3)), name="conv1_pad")(x)
    if preact:
        x = Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    else:
        x = Activation("relu", name="conv1_relu")(conv_bn(x, 64, 7, "conv1", strides=2))
    x = ZeroPadding2D(((1, 1), (1, 1)), name="pool1_pad")(x)
    x = MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (n, filters) in enumerate(zip(blocks, (64, 128, 256, 512)), start=2):
        for i in range(1, n + 1):
            if preact:
                stride = 2 if i == n and stage < 5 else 1
                x = block2(x, filters, stride, i == 1, f"conv{stage}_block{i}")
            else:
                x = block1(x, filters, 1 if stage == 2 or i > 1 else 2, i == 1,
                           f"conv{stage}_block{i}")
    if preact:
        x = Activation("relu", name="post_relu")(batch_norm(x, "post_bn"))
    return finish_application(name, x, inputs, include_top, weights, pooling, classes,
                              classifier_activation,
                              keras_weight_files(name, top_md5, notop_md5), flatten=False,
                              folder="resnet",
                              pool_names=("avg_pool", "max_pool"))


def resnet_application(name, public_name):
    """The Keras-signature function building `name` (a key of BLOCKS)."""
    return application_function(build_resnet, name, public_name)


ResNet50 = resnet_application("resnet50", "ResNet50")
ResNet101 = resnet_application("resnet101", "ResNet101")
ResNet152 = resnet_application("resnet152", "ResNet152")

"""`keras.applications.resnet`: `ResNet50`, `ResNet101` and `ResNet152(include_top=True,
weights='imagenet', input_tensor=None, input_shape=None, pooling=None, classes=1000,
classifier_activation='softmax')` with tf-keras's layer names (`conv1_pad`, `conv1_conv`,
`conv2_block1_0_conv`, ..., `avg_pool`, `predictions`) and layer order, so Keras's weight
files load; `preprocess_input` (Keras's 'caffe' mode) and `decode_predictions`."""

from modelkit.applications._vgg import finish_application, model_input
from modelkit.applications._vgg import preprocess_input  # noqa: F401  (caffe mode)
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401

# name -> (bottleneck blocks per stage conv2..conv5, md5 with top, md5 without) as tf-keras
BLOCKS = {"resnet50": ((3, 4, 6, 3), "2cb95161c43110f7111970584f804107",
                       "4d473c1dd8becc155b73f8504c6f6626"),
          "resnet101": ((3, 4, 23, 3), "f1aeb4b969a6efcfb50fad2f0c20cfc5",
                        "88cf7a10940856eca736dc7b7e228a21"),
          "resnet152": ((3, 8, 36, 3), "100835be76be38e30d865e96f2aaae62",
                        "ee4c566cf9a93f14d82f913c2dc6dd0c")}
BN_EPSILON = 1.001e-5


def build_resnet(name, include_top=True, weights="imagenet", input_tensor=None,
                 input_shape=None, pooling=None, classes=1000,
                 classifier_activation="softmax"):
    """ResNet v1 (tf-keras's `ResNet` with `stack1`/`block1`): a 7x7 stem and four stages
    of bottleneck blocks, the first of each with a projection shortcut (`_0_conv`)."""
    from modelkit.backend import config as backend_config
    from modelkit.layers import (Activation, Add, BatchNormalization, Conv2D, MaxPooling2D,
                                 ZeroPadding2D)
    axis = 1 if backend_config.image_data_format() == "channels_first" else 3
    x, inputs = model_input(name, include_top, weights, input_tensor, input_shape, pooling,
                            classes)

    def conv_bn(x, filters, kernel, prefix, strides=1, padding="valid"):
        x = Conv2D(filters, kernel, strides=strides, padding=padding, name=prefix + "_conv")(x)
        return BatchNormalization(axis=axis, epsilon=BN_EPSILON, name=prefix + "_bn")(x)

    def block(x, filters, stride, shortcut, prefix):
        if shortcut:
            shortcut = conv_bn(x, 4 * filters, 1, prefix + "_0", strides=stride)
        else:
            shortcut = x
        x = Activation("relu", name=prefix + "_1_relu")(
            conv_bn(x, filters, 1, prefix + "_1", strides=stride))
        x = Activation("relu", name=prefix + "_2_relu")(
            conv_bn(x, filters, 3, prefix + "_2", padding="same"))
        x = conv_bn(x, 4 * filters, 1, prefix + "_3")
        x = Add(name=prefix + "_add")([shortcut, x])
        return Activation("relu", name=prefix + "_out")(x)

    blocks, top_md5, notop_md5 = BLOCKS[name]
    x = ZeroPadding2D(((3, 3), (3, 3)), name="conv1_pad")(x)
    x = Activation("relu", name="conv1_relu")(conv_bn(x, 64, 7, "conv1", strides=2))
    x = ZeroPadding2D(((1, 1), (1, 1)), name="pool1_pad")(x)
    x = MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (n, filters) in enumerate(zip(blocks, (64, 128, 256, 512)), start=2):
        for i in range(1, n + 1):
            x = block(x, filters, 1 if stage == 2 or i > 1 else 2, i == 1,
                      f"conv{stage}_block{i}")
    files = {True: (f"{name}_weights_tf_dim_ordering_tf_kernels.h5", top_md5),
             False: (f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5", notop_md5)}
    return finish_application(name, x, inputs, include_top, weights, pooling, classes,
                              classifier_activation, files, flatten=False, folder="resnet",
                              pool_names=("avg_pool", "max_pool"))


def _application(name):
    def application(include_top=True, weights="imagenet", input_tensor=None,
                    input_shape=None, pooling=None, classes=1000,
                    classifier_activation="softmax"):
        return build_resnet(name, include_top, weights, input_tensor, input_shape, pooling,
                            classes, classifier_activation)
    application.__name__ = application.__qualname__ = "ResNet" + name[len("resnet"):]
    return application


ResNet50 = _application("resnet50")
ResNet101 = _application("resnet101")
ResNet152 = _application("resnet152")

"""`keras.applications.inception_v3`: `InceptionV3(include_top=True, weights='imagenet',
input_tensor=None, input_shape=None, pooling=None, classes=1000,
classifier_activation='softmax')` with Keras's layer names (the blocks are `mixed0` ...
`mixed10`, as deep_dream reads them), `preprocess_input` (Keras's 'tf' mode) and
`decode_predictions`. weights='imagenet' downloads Keras's weight file once; a path loads it."""

from modelkit.applications._vgg import finish_application, model_input
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401
from modelkit.applications.imagenet_utils import preprocess_input as _preprocess

WEIGHT_FILES = {True: ("inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                       "9a0d58056eeedaa3f26cb7ebd46da564"),
                False: ("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                        "bcbd6486424b2319ff4ef7d526e38f63")}


def preprocess_input(x, data_format=None):
    return _preprocess(x, data_format=data_format, mode="tf")


def InceptionV3(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax"):
    from modelkit.backend import config as backend_config
    from modelkit.layers import AveragePooling2D, MaxPooling2D, concatenate
    axis = 1 if backend_config.image_data_format() == "channels_first" else 3
    img_input, inputs = model_input("inception_v3", include_top, weights, input_tensor,
                                    input_shape, pooling, classes, side=299, min_size=75)

    def conv_bn(x, filters, rows, cols, padding="same", strides=(1, 1)):
        from modelkit.layers import Activation, BatchNormalization, Conv2D
        x = Conv2D(filters, (rows, cols), strides=strides, padding=padding, use_bias=False)(x)
        x = BatchNormalization(axis=axis, scale=False)(x)
        return Activation("relu")(x)

    def avg_branch(x, filters):
        return conv_bn(AveragePooling2D((3, 3), strides=(1, 1), padding="same")(x), filters, 1, 1)

    def chain(x, *specs):
        for spec in specs:
            x = conv_bn(x, *spec)
        return x

    x = chain(img_input, (32, 3, 3, "valid", (2, 2)), (32, 3, 3, "valid"), (64, 3, 3))
    x = MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = chain(x, (80, 1, 1, "valid"), (192, 3, 3, "valid"))
    x = MaxPooling2D((3, 3), strides=(2, 2))(x)
    for i, pool_filters in enumerate((32, 64, 64)):                  # mixed0-2: 35 x 35
        x = concatenate([conv_bn(x, 64, 1, 1), chain(x, (48, 1, 1), (64, 5, 5)),
                         chain(x, (64, 1, 1), (96, 3, 3), (96, 3, 3)),
                         avg_branch(x, pool_filters)], axis=axis, name=f"mixed{i}")
    x = concatenate([conv_bn(x, 384, 3, 3, "valid", (2, 2)),            # mixed3: 17 x 17
                     chain(x, (64, 1, 1), (96, 3, 3), (96, 3, 3, "valid", (2, 2))),
                     MaxPooling2D((3, 3), strides=(2, 2))(x)], axis=axis, name="mixed3")
    for i, f in enumerate((128, 160, 160, 192)):                      # mixed4-7
        x = concatenate([conv_bn(x, 192, 1, 1), chain(x, (f, 1, 1), (f, 1, 7), (192, 7, 1)),
                         chain(x, (f, 1, 1), (f, 7, 1), (f, 1, 7), (f, 7, 1), (192, 1, 7)),
                         avg_branch(x, 192)], axis=axis, name=f"mixed{4 + i}")
    x = concatenate([chain(x, (192, 1, 1), (320, 3, 3, "valid", (2, 2))),   # mixed8: 8 x 8
                     chain(x, (192, 1, 1), (192, 1, 7), (192, 7, 1),
                           (192, 3, 3, "valid", (2, 2))),
                     MaxPooling2D((3, 3), strides=(2, 2))(x)], axis=axis, name="mixed8")
    for i in range(2):                                                # mixed9-10
        b3 = conv_bn(x, 384, 1, 1)
        b3 = concatenate([conv_bn(b3, 384, 1, 3), conv_bn(b3, 384, 3, 1)], axis=axis,
                         name=f"mixed9_{i}")
        bd = chain(x, (448, 1, 1), (384, 3, 3))
        bd = concatenate([conv_bn(bd, 384, 1, 3), conv_bn(bd, 384, 3, 1)], axis=axis)
        x = concatenate([conv_bn(x, 320, 1, 1), b3, bd, avg_branch(x, 192)], axis=axis,
                        name=f"mixed{9 + i}")
    return finish_application("inception_v3", x, inputs, include_top, weights, pooling,
                              classes, classifier_activation, WEIGHT_FILES, flatten=False)

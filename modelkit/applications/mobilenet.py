"""`keras.applications.mobilenet`: `MobileNet(input_shape=None, alpha=1.0,
depth_multiplier=1, dropout=1e-3, include_top=True, weights='imagenet', input_tensor=None,
pooling=None, classes=1000, classifier_activation='softmax')` (v1) with tf-keras's layer
names (`conv1`, `conv_dw_1` ... `conv_pw_13_relu`, `conv_preds`, `predictions`),
`preprocess_input` (Keras's 'tf' mode) and `decode_predictions`. weights='imagenet'
downloads Keras's file for `alpha` and the input size (128, 160, 192 or 224; otherwise
224's, as Keras does)."""

from modelkit.applications._vgg import finish_application, model_input, weights_side
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401
from modelkit.applications.mobilenet_v2 import preprocess_input  # noqa: F401  (tf mode)
from modelkit.errors import ConfigError

ALPHAS = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}
SIZES = (128, 160, 192, 224)
# (pointwise filters, stride) of the depthwise separable blocks 1..13
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
          (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def MobileNet(input_shape=None, alpha=1.0, depth_multiplier=1, dropout=1e-3,
              include_top=True, weights="imagenet", input_tensor=None, pooling=None,
              classes=1000, classifier_activation="softmax"):
    from modelkit.backend import config as backend_config
    from modelkit.layers import (Activation, BatchNormalization, Conv2D, DepthwiseConv2D,
                                 Dropout, GlobalAveragePooling2D, ReLU, Reshape,
                                 ZeroPadding2D)
    axis = 1 if backend_config.image_data_format() == "channels_first" else -1
    img_input, inputs = model_input("mobilenet", include_top, weights, input_tensor,
                                    input_shape, pooling, classes)
    if weights == "imagenet" and (depth_multiplier != 1 or alpha not in ALPHAS):
        raise ConfigError(f"mobilenet: weights='imagenet' needs depth_multiplier=1 and "
                          f"alpha in {tuple(ALPHAS)}, got depth_multiplier="
                          f"{depth_multiplier}, alpha={alpha}")
    rows = weights_side(img_input, weights, SIZES)

    def bn_relu(x, name):
        x = BatchNormalization(axis=axis, name=name + "_bn")(x)
        return ReLU(6.0, name=name + "_relu")(x)

    x = Conv2D(int(32 * alpha), 3, padding="same", use_bias=False, strides=(2, 2),
               name="conv1")(img_input)
    x = bn_relu(x, "conv1")
    for block_id, (filters, stride) in enumerate(BLOCKS, start=1):
        if stride == 2:
            x = ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
        x = DepthwiseConv2D(3, padding="same" if stride == 1 else "valid",
                            depth_multiplier=depth_multiplier, strides=stride,
                            use_bias=False, name=f"conv_dw_{block_id}")(x)
        x = bn_relu(x, f"conv_dw_{block_id}")
        x = Conv2D(int(filters * alpha), 1, padding="same", use_bias=False,
                   name=f"conv_pw_{block_id}")(x)
        x = bn_relu(x, f"conv_pw_{block_id}")

    def head(x):
        x = GlobalAveragePooling2D(keepdims=True)(x)
        x = Dropout(dropout, name="dropout")(x)
        x = Conv2D(classes, 1, padding="same", name="conv_preds")(x)
        x = Reshape((classes,), name="reshape_2")(x)
        return Activation(classifier_activation, name="predictions")(x)

    alpha_text = ALPHAS.get(alpha)
    files = {True: (f"mobilenet_{alpha_text}_{rows}_tf.h5", None),
             False: (f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5", None)}
    return finish_application(f"mobilenet_{alpha:0.2f}_{rows}", x, inputs, include_top,
                              weights, pooling, classes, classifier_activation, files,
                              flatten=False, folder="mobilenet", head=head)

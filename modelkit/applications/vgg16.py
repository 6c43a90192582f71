"""`keras.applications.vgg16`: `VGG16(include_top=True, weights='imagenet', input_tensor=None,
input_shape=None, pooling=None, classes=1000, classifier_activation='softmax')`,
`preprocess_input` (Keras's 'caffe' mode) and `decode_predictions`. weights='imagenet'
downloads Keras's weight file once (into ~/.modelkit/models); a path loads that file."""

from modelkit.applications._vgg import build_vgg
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401
from modelkit.applications.imagenet_utils import preprocess_input as _preprocess

WEIGHT_FILES = {True: ("vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                       "64373286793e3c8b2b4e3219cbf3544b"),
                False: ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                        "6d6bbae143d832006294945121d1f1fc")}


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax"):
    return build_vgg("vgg16", (2, 2, 3, 3, 3), WEIGHT_FILES, include_top, weights, input_tensor,
                     input_shape, pooling, classes, classifier_activation)


def preprocess_input(x, data_format=None):
    return _preprocess(x, data_format=data_format, mode="caffe")

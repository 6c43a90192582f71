"""`keras.applications.vgg19`: `VGG19(include_top=True, weights='imagenet', input_tensor=None,
input_shape=None, pooling=None, classes=1000, classifier_activation='softmax')`,
`preprocess_input` (Keras's 'caffe' mode) and `decode_predictions`. weights='imagenet'
downloads Keras's weight file once (into ~/.modelkit/models); a path loads that file."""

from modelkit.applications._vgg import build_vgg
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401
from modelkit.applications.imagenet_utils import preprocess_input as _preprocess

WEIGHT_FILES = {True: ("vgg19_weights_tf_dim_ordering_tf_kernels.h5",
                       "cbe5617147190e668d6c5d5026f83318"),
                False: ("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                        "253f8cb515780f3b799900260a226db6")}


def VGG19(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax"):
    return build_vgg("vgg19", (2, 2, 4, 4, 4), WEIGHT_FILES, include_top, weights, input_tensor,
                     input_shape, pooling, classes, classifier_activation)


def preprocess_input(x, data_format=None):
    return _preprocess(x, data_format=data_format, mode="caffe")

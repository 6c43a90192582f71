"""`keras.applications.vgg16`: `VGG16(include_top=True, weights='imagenet', input_tensor=None,
input_shape=None, pooling=None, classes=1000, classifier_activation='softmax')`,
`preprocess_input` (Keras's 'caffe' mode) and `decode_predictions`. weights='imagenet'
downloads Keras's weight file once (into ~/.modelkit/models); a path loads that file."""

from modelkit.applications._vgg import preprocess_input, vgg_application  # noqa: F401
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401

VGG16 = vgg_application("vgg16", (2, 2, 3, 3, 3), top_md5="64373286793e3c8b2b4e3219cbf3544b",
                        notop_md5="6d6bbae143d832006294945121d1f1fc")

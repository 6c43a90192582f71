"""`keras.applications.vgg19`: `VGG19(include_top=True, weights='imagenet', input_tensor=None,
input_shape=None, pooling=None, classes=1000, classifier_activation='softmax')`,
`preprocess_input` (Keras's 'caffe' mode) and `decode_predictions`. weights='imagenet'
downloads Keras's weight file once (into ~/.modelkit/models); a path loads that file."""

from modelkit.applications._vgg import preprocess_input, vgg_application  # noqa: F401
from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401

VGG19 = vgg_application("vgg19", (2, 2, 4, 4, 4), top_md5="cbe5617147190e668d6c5d5026f83318",
                        notop_md5="253f8cb515780f3b799900260a226db6")

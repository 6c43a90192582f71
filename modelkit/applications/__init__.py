"""`keras.applications`: VGG16 and VGG19 (Keras's layer names, so Keras's ImageNet weight
files load), with `imagenet_utils.preprocess_input` / `decode_predictions`."""

from modelkit.applications import imagenet_utils, vgg16, vgg19
from modelkit.applications.vgg16 import VGG16
from modelkit.applications.vgg19 import VGG19

__all__ = ["VGG16", "VGG19", "vgg16", "vgg19", "imagenet_utils"]

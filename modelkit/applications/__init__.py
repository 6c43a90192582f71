"""`keras.applications`: VGG16, VGG19 and InceptionV3 (Keras's layer names, so Keras's
ImageNet weight files load), with `imagenet_utils.preprocess_input` / `decode_predictions`."""

from modelkit.applications import imagenet_utils, inception_v3, vgg16, vgg19
from modelkit.applications.inception_v3 import InceptionV3
from modelkit.applications.vgg16 import VGG16
from modelkit.applications.vgg19 import VGG19

__all__ = ["VGG16", "VGG19", "InceptionV3", "vgg16", "vgg19", "inception_v3",
           "imagenet_utils"]

"""`keras.applications`: VGG16, VGG19, InceptionV3, ResNet50/101/152, MobileNet
and MobileNetV2 (Keras's layer names, so Keras's weight files load), with
`imagenet_utils.preprocess_input` / `decode_predictions`."""

from modelkit.applications import (imagenet_utils, inception_v3, mobilenet, mobilenet_v2,
                                   resnet, resnet50, vgg16, vgg19)
from modelkit.applications.inception_v3 import InceptionV3
from modelkit.applications.mobilenet import MobileNet
from modelkit.applications.mobilenet_v2 import MobileNetV2
from modelkit.applications.resnet import ResNet50, ResNet101, ResNet152
from modelkit.applications.vgg16 import VGG16
from modelkit.applications.vgg19 import VGG19

__all__ = ["VGG16", "VGG19", "InceptionV3", "ResNet50", "ResNet101", "ResNet152",
           "MobileNet", "MobileNetV2", "vgg16", "vgg19", "inception_v3", "resnet", "resnet50",
           "mobilenet", "mobilenet_v2", "imagenet_utils"]

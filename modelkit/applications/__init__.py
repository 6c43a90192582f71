"""`keras.applications`: VGG16, VGG19, InceptionV3, Xception, ResNet50/101/152,
ResNet50V2/101V2/152V2, DenseNet121/169/201, EfficientNetB0-B7, MobileNet and MobileNetV2
(Keras's layer names, so Keras's weight files load), with
`imagenet_utils.preprocess_input` / `decode_predictions`."""

from modelkit.applications import (densenet, efficientnet, imagenet_utils, inception_v3,
                                   mobilenet, mobilenet_v2, resnet, resnet50, resnet_v2, vgg16,
                                   vgg19, xception)
from modelkit.applications.densenet import DenseNet121, DenseNet169, DenseNet201
from modelkit.applications.efficientnet import (EfficientNetB0, EfficientNetB1, EfficientNetB2,
                                                EfficientNetB3, EfficientNetB4, EfficientNetB5,
                                                EfficientNetB6, EfficientNetB7)
from modelkit.applications.inception_v3 import InceptionV3
from modelkit.applications.mobilenet import MobileNet
from modelkit.applications.mobilenet_v2 import MobileNetV2
from modelkit.applications.resnet import ResNet50, ResNet101, ResNet152
from modelkit.applications.resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from modelkit.applications.vgg16 import VGG16
from modelkit.applications.vgg19 import VGG19
from modelkit.applications.xception import Xception

__all__ = ["VGG16", "VGG19", "InceptionV3", "Xception", "ResNet50", "ResNet101", "ResNet152",
           "ResNet50V2", "ResNet101V2", "ResNet152V2", "DenseNet121", "DenseNet169",
           "DenseNet201", "EfficientNetB0", "EfficientNetB1", "EfficientNetB2",
           "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6",
           "EfficientNetB7", "MobileNet", "MobileNetV2", "vgg16", "vgg19", "inception_v3",
           "xception", "resnet", "resnet50", "resnet_v2", "densenet", "efficientnet",
           "mobilenet", "mobilenet_v2", "imagenet_utils"]

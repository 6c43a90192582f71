"""`keras.applications.resnet_v2`: `ResNet50V2`, `ResNet101V2` and `ResNet152V2` (the
pre-activation ResNets, Keras's signature and tf-keras's layer names: `conv2_block1_preact_bn`,
..., `post_bn`, `post_relu`), `preprocess_input` (Keras's 'tf' mode) and
`decode_predictions`."""

from modelkit.applications.imagenet_utils import decode_predictions  # noqa: F401
from modelkit.applications.imagenet_utils import preprocess_input as _preprocess
from modelkit.applications.resnet import resnet_application

ResNet50V2 = resnet_application("resnet50v2", "ResNet50V2")
ResNet101V2 = resnet_application("resnet101v2", "ResNet101V2")
ResNet152V2 = resnet_application("resnet152v2", "ResNet152V2")


def preprocess_input(x, data_format=None):
    return _preprocess(x, data_format=data_format, mode="tf")

"""`keras.applications.resnet50` (Keras 2's module): `ResNet50`, `preprocess_input` (Keras's
'caffe' mode) and `decode_predictions`, the same as `keras.applications.resnet`'s."""

from modelkit.applications.resnet import (ResNet50, decode_predictions,  # noqa: F401
                                          preprocess_input)

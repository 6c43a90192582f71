"""`keras.applications.imagenet_utils`: `preprocess_input` (Keras's 'caffe', 'tf' and 'torch'
modes) and `decode_predictions` (the ImageNet class index, downloaded once)."""

import json

import numpy as np

from modelkit.backend import config as backend_config
from modelkit.errors import ConfigError

CLASS_INDEX_URL = ("https://storage.googleapis.com/download.tensorflow.org/data/"
                   "imagenet_class_index.json")
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_class_index = None


def preprocess_input(x, data_format=None, mode="caffe"):
    """A batch of RGB images in [0, 255] -> what the network was trained on.

    caffe: RGB -> BGR, minus the ImageNet mean per channel (VGG, ResNet50); tf: scaled to
    [-1, 1] (Inception, MobileNet); torch: [0, 1], minus mean, divided by std per channel."""
    if mode not in ("caffe", "tf", "torch"):
        raise ConfigError(f"preprocess_input: mode must be 'caffe', 'tf' or 'torch', got "
                          f"{mode!r}")
    data_format = backend_config.normalize_data_format(data_format)
    x = np.array(x, dtype=np.float32 if not np.issubdtype(np.asarray(x).dtype, np.floating)
                 else np.asarray(x).dtype)
    if mode == "tf":
        return x / 127.5 - 1.0
    axis = 1 if data_format == "channels_first" and x.ndim >= 3 else -1
    if x.shape[axis] != 3:
        raise ConfigError(f"preprocess_input: expected 3 colour channels on axis {axis} "
                          f"({data_format}), got shape {x.shape}")
    shape = [1] * x.ndim
    shape[axis] = 3
    if mode == "torch":
        mean, std = np.array(_TORCH_MEAN), np.array(_TORCH_STD)
        return ((x / 255.0 - mean.reshape(shape)) / std.reshape(shape)).astype(x.dtype)
    x = np.flip(x, axis=axis)                                 # RGB -> BGR
    return (x - np.array(_CAFFE_MEAN_BGR).reshape(shape)).astype(x.dtype)


def decode_predictions(preds, top=5, class_index=None):
    """[(class id, class name, score)] per row of (N, 1000) ImageNet probabilities, best
    first. `class_index`: a dict or JSON path in Keras's format (default: downloaded once)."""
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ConfigError(f"decode_predictions expects a batch of ImageNet predictions of "
                          f"shape (samples, 1000), got {preds.shape}")
    index = _load_class_index(class_index)
    out = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        out.append([tuple(index[str(i)]) + (float(row[i]),) for i in best])
    return out


def _load_class_index(class_index):
    global _class_index
    if isinstance(class_index, dict):
        return class_index
    if class_index is None and _class_index is not None:
        return _class_index
    path = class_index
    if path is None:
        from modelkit.datasets import get_file
        path = get_file("imagenet_class_index.json", CLASS_INDEX_URL,
                        file_hash=CLASS_INDEX_MD5, cache_subdir="models")
    with open(path, encoding="utf-8") as f:
        loaded = json.load(f)
    if class_index is None:
        _class_index = loaded
    return loaded

"""Global backend settings: float dtype, fuzz factor, image data format, learning phase."""

import numpy as np

from ..errors import ConfigError
from .thread_stack import ThreadStack

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"
_LEARNING_PHASE = None  # None: decided by the caller (fit -> 1, predict -> 0)


def floatx():
    """The default float dtype name ('float32' unless changed)."""
    return _FLOATX


def set_floatx(value):
    global _FLOATX
    if value not in ("float16", "float32", "float64"):
        raise ConfigError(f"floatx must be 'float16', 'float32' or 'float64', got {value!r}")
    _FLOATX = str(value)


def epsilon():
    return _EPSILON


def set_epsilon(value):
    global _EPSILON
    _EPSILON = float(value)


def image_data_format():
    return _IMAGE_DATA_FORMAT


def set_image_data_format(data_format):
    global _IMAGE_DATA_FORMAT
    if data_format not in ("channels_last", "channels_first"):
        raise ConfigError("image data format must be 'channels_last' or 'channels_first', "
                          f"got {data_format!r}")
    _IMAGE_DATA_FORMAT = data_format


def image_dim_ordering():
    """Keras 1: 'tf' for channels_last, 'th' for channels_first."""
    return "tf" if _IMAGE_DATA_FORMAT == "channels_last" else "th"


def set_image_dim_ordering(dim_ordering):
    """Keras 1 spelling of set_image_data_format ('th' or 'tf')."""
    set_image_data_format(normalize_data_format(dim_ordering))


def normalize_data_format(value):
    """Map None / 'th' / 'tf' / 'channels_*' to 'channels_last' or 'channels_first'."""
    if value is None:
        return _IMAGE_DATA_FORMAT
    v = str(value).lower()
    if v in ("channels_last", "tf", "nhwc", "default"):
        return "channels_last"
    if v in ("channels_first", "th", "nchw"):
        return "channels_first"
    raise ConfigError(f"data_format must be 'channels_last' or 'channels_first' "
                      f"(Keras 1: 'tf' or 'th'), got {value!r}")


class LearningPhase:
    """What `K.learning_phase()` returns while no phase is set: a placeholder that
    `K.function` takes as an input (feed 1 for training, 0 for inference), as in Keras 2.
    Its truth value is the phase of the model running now (0 outside any run)."""

    def __bool__(self):
        return bool(current_phase())

    def __int__(self):
        return int(current_phase())

    def __repr__(self):
        return "<learning phase placeholder>"


LEARNING_PHASE = LearningPhase()
_RUNNING = ThreadStack()      # the training phases of the models running on each thread


def learning_phase():
    return LEARNING_PHASE if _LEARNING_PHASE is None else _LEARNING_PHASE


def fixed_phase():
    """True/False when `set_learning_phase(1/0)` fixed the phase for every run, else None."""
    return None if _LEARNING_PHASE is None else bool(int(_LEARNING_PHASE))


def current_phase():
    """1 while a model runs in training, 0 otherwise (or the phase set by the user)."""
    if _LEARNING_PHASE is not None:
        return int(_LEARNING_PHASE)
    return int(bool(_RUNNING.top()))


class phase_scope:
    """Marks the training phase of a running model for `K.in_train_phase` and friends."""

    def __init__(self, training):
        self.training = training

    def __enter__(self):
        _RUNNING.items.append(self.training)

    def __exit__(self, *exc):
        _RUNNING.items.pop()
        return False


def set_learning_phase(value):
    """Fix the phase of every run: 1 (training) or 0 (inference); None lets each call decide
    again (fit trains, predict infers), as after Keras's clear_session()."""
    global _LEARNING_PHASE
    if value is not None and value not in (0, 1):
        raise ConfigError(f"set_learning_phase expects 0 or 1, got {value!r}")
    _LEARNING_PHASE = value


def dtype_of(value):
    """numpy dtype for a dtype-like, defaulting to floatx."""
    return np.dtype(value if value is not None else _FLOATX)


_UIDS = {}      # name prefix -> how many names were handed out (Keras 2's K.get_uid)


def get_uid(prefix=""):
    """1 on the first call for `prefix`, then 2, 3, ... until `reset_uids()` (layer names
    are made from it)."""
    _UIDS[prefix] = _UIDS.get(prefix, 0) + 1
    return _UIDS[prefix]


def reset_uids():
    _UIDS.clear()


def clear_session():
    """Keras's `K.clear_session()`: layer names start again, the learning phase is free."""
    set_learning_phase(None)
    reset_uids()

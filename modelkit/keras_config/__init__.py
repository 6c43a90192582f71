"""Keras model configs (`get_config()` dicts, `to_json()`, the `model_config` of files) <-> the IR."""

from .reading import *  # noqa: F401,F403
from .reading import _strip_suffix  # noqa: F401

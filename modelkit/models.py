"""`modelkit.models`: Model, Sequential, loading and (de)serialisation entry points."""

from .engine.functional import Model  # noqa: F401
from .engine.sequential import Sequential  # noqa: F401
from .ir_bridge import from_ir, model_from_json, to_ir  # noqa: F401
from .saving import import_onnx, load_model, save_model  # noqa: F401


def model_from_config(config, custom_objects=None):
    """`{"class_name": "Sequential"|"Functional", "config": {...}}` -> Model."""
    from .ir_bridge import model_from_keras_config
    return model_from_keras_config(config, custom_objects=custom_objects)


def clone_model(model):
    """A new model with the same architecture and freshly initialised weights."""
    return from_ir(to_ir(model, include_weights=False, include_optimizer=False), compile=False)

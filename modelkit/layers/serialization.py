"""The one registry of layer classes, custom objects, safe mode, and function (de)serialisation.

Loading never runs code from a file unless the caller asks: a Lambda's marshalled
bytecode is only unmarshalled inside `safe_mode_scope(False)` (what
`load_model(..., safe_mode=False)` opens). Safe mode and the custom-object scopes are
per call (`contextvars`): a `safe_mode=False` load in one thread (or asyncio task) never
turns safe mode off for a load running concurrently in another.
"""

import base64
import contextlib
import contextvars
import marshal
import types

from ..errors import ConfigError, UnsafeLoadError
from ..registry import Registry

LAYERS = Registry("layer class")

_SAFE_MODE = contextvars.ContextVar("modelkit_safe_mode", default=True)
_CUSTOM_OBJECTS = contextvars.ContextVar("modelkit_custom_objects", default=())  # dicts, outer first


def register_layer(cls=None, *, aliases=()):
    """Class decorator: make a layer class loadable by its name (and Keras 1 aliases)."""
    def decorator(c):
        LAYERS.register(c.__name__, c)
        for a in aliases:
            LAYERS.register(a, c)
        return c
    return decorator(cls) if cls is not None else decorator


@contextlib.contextmanager
def safe_mode_scope(safe_mode=True):
    """Within the block (in this thread / task only), loading may run code iff not safe_mode."""
    token = _SAFE_MODE.set(bool(safe_mode))
    try:
        yield
    finally:
        _SAFE_MODE.reset(token)


def in_safe_mode():
    return _SAFE_MODE.get()


@contextlib.contextmanager
def custom_object_scope(*objects):
    """Within the block (in this thread / task only), these names resolve to these objects."""
    merged = {}
    for o in objects:
        merged.update(o or {})
    token = _CUSTOM_OBJECTS.set(_CUSTOM_OBJECTS.get() + (merged,))
    try:
        yield
    finally:
        _CUSTOM_OBJECTS.reset(token)


CustomObjectScope = custom_object_scope

_GLOBAL_CUSTOM_OBJECTS = {}


def get_custom_objects():
    """Keras's process-wide registry: names added to this dict resolve everywhere (layers,
    activations, losses, ...), e.g. `get_custom_objects()["swish"] = swish`."""
    return _GLOBAL_CUSTOM_OBJECTS


def custom_objects():
    merged = dict(_GLOBAL_CUSTOM_OBJECTS)
    for d in _CUSTOM_OBJECTS.get():
        merged.update(d)
    return merged


def get_layer_class(class_name, layer_name=None, custom=None):
    lookup = {**custom_objects(), **(custom or {})}
    if class_name in lookup:
        return lookup[class_name]
    if class_name in LAYERS:
        return LAYERS.get(class_name)
    where = f" (layer {layer_name!r})" if layer_name else ""
    raise ConfigError(f"Unknown layer class {class_name!r}{where}. Pass it in custom_objects="
                      f"{{{class_name!r}: YourLayerClass}}; known layers: "
                      f"{', '.join(LAYERS.names())}")


def deserialize(config, custom_objects=None):
    """`{"class_name": ..., "config": {...}}` -> a layer instance."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ConfigError(f"A layer config must be a dict with 'class_name' and 'config', "
                          f"got {config!r:.200}")
    cls = get_layer_class(config["class_name"], config.get("config", {}).get("name"),
                          custom_objects)
    inner = dict(config.get("config", {}))
    _resolve_code_activations(inner, config["class_name"], custom_objects)
    with custom_object_scope(custom_objects or {}):
        try:
            return cls.from_config(inner, custom_objects=custom_objects) \
                if _accepts_custom_objects(cls) else cls.from_config(inner)
        except TypeError as e:
            raise ConfigError(f"Layer {inner.get('name')!r} ({config['class_name']}): config "
                              f"does not fit the class: {e}") from None


_ACTIVATION_KEYS = ("activation", "recurrent_activation")


def _resolve_code_activations(config, class_name, custom=None):
    """An activation stored as Python code (Keras 2 bytecode, Keras 3 `__lambda__`) is
    refused in safe mode, naming the layer and the key, as Lambda layers are; with
    safe_mode=False it is decoded into the function."""
    for key in _ACTIVATION_KEYS:
        value = config.get(key)
        code = None
        if isinstance(value, list):
            code = value
        elif isinstance(value, dict) and value.get("class_name") == "__lambda__":
            code = value
        elif isinstance(value, dict) and value.get("class_name") == "function" \
                and isinstance(value.get("config"), dict):
            code = value["config"]
            code = {"class_name": "__lambda__", "config": code}
        if code is None:
            continue
        name = config.get("name")
        if in_safe_mode():
            raise UnsafeLoadError(
                f"Layer {name!r} ({class_name}): {key} is a serialized Python function; "
                f"loading it would run code from the file. If you trust the file, load it "
                f"with safe_mode=False.")
        config[key] = deserialize_function({key: code, f"{key}_type": "lambda"}, key, custom,
                                           layer_name=name)


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _accepts_custom_objects(cls):
    import inspect
    try:
        return "custom_objects" in inspect.signature(cls.from_config).parameters
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------
# functions inside configs (Lambda)

def serialize_function(fn, key):
    """Keras 2 layout: a named function by name, anything else as marshalled bytecode."""
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__name__", None)
    if name and name != "<lambda>" and module and _named_functions().get(name) is fn:
        return {key: name, f"{key}_type": "function", "module": module}
    if isinstance(fn, types.FunctionType):
        code = base64.b64encode(marshal.dumps(fn.__code__)).decode("ascii")
        defaults = list(fn.__defaults__) if fn.__defaults__ else None
        closure = [c.cell_contents for c in fn.__closure__] if fn.__closure__ else None
        return {key: [code, defaults, closure], f"{key}_type": "lambda", "module": module}
    raise ConfigError(f"Cannot serialise {fn!r}: only functions can be stored in a config")


def _named_functions():
    """The functions a config may name: the registered K functions and activations (never
    an attribute of a module looked up by a name from a file)."""
    from ..activations import ACTIVATIONS
    from ..engine.k_functions import K_FUNCTIONS
    names = dict(ACTIVATIONS.items())
    names.update(K_FUNCTIONS.items())
    return names


def deserialize_function(config, key, custom=None, layer_name=None):
    value = config.get(key)
    kind = config.get(f"{key}_type", "function")
    if isinstance(value, dict) and value.get("class_name") == "__lambda__":   # Keras 3
        kind, inner = "lambda", value.get("config", {})
        value = [inner.get("code"), inner.get("defaults"), inner.get("closure")]
    if kind == "lambda":
        if in_safe_mode():
            raise UnsafeLoadError(
                f"Layer {layer_name!r} (Lambda) stores Python bytecode in the file; loading it "
                "would run code from the file. If you trust the file, load it with "
                "safe_mode=False (e.g. load_model(path, safe_mode=False)).")
        code_b64, defaults, closure = (list(value) + [None, None])[:3]
        try:
            code = marshal.loads(base64.b64decode(code_b64))
        except (ValueError, TypeError, EOFError) as e:
            raise ConfigError(f"Layer {layer_name!r}: the stored function bytecode cannot be "
                              f"read by this Python ({e})") from None
        cells = tuple(types.CellType(c) for c in closure) if closure else None
        return types.FunctionType(code, _lambda_globals(), code.co_name,
                                  tuple(defaults) if defaults else None, cells)
    lookup = {**custom_objects(), **(custom or {})}
    if isinstance(value, str):
        if value in lookup:
            return lookup[value]
        named = _named_functions()
        if value in named:
            return named[value]
        raise ConfigError(f"Layer {layer_name!r}: unknown function {value!r}; pass it in "
                          f"custom_objects={{{value!r}: fn}}")
    raise ConfigError(f"Layer {layer_name!r}: cannot read the stored {key} {value!r:.100}")


def _lambda_globals():
    import numpy as np

    from .. import backend as K
    return {"K": K, "np": np, "__builtins__": __builtins__, **custom_objects()}

"""Shared `get` / `serialize` machinery for the Keras-style object modules.

activations, initializers, regularizers, constraints, losses, metrics and optimizers each
keep one `Registry` of names and call the helpers here, so they resolve identifiers the
same way:

- ``None``                                  -> ``None`` (or the module's default)
- ``"name"``                                -> the registered object; a registered *class*
                                               is instantiated with no arguments
- ``{"class_name": ..., "config": {...}}``  -> ``cls.from_config(config)`` (Keras 2 dicts;
                                               Keras 3's extra ``module``/``registered_name``
                                               keys and ``"class_name": "function"`` dicts
                                               are understood too)
- an instance of the module's base class     -> itself
- any other callable                         -> itself

Keras 1 names live in a per-module ``deprecated`` mapping ``{old: new}``: they still work and
raise a `DeprecationWarning` naming the new spelling.
"""

import inspect
import warnings

from ..errors import ConfigError


def warn_deprecated_name(kind, old, new, stacklevel=4):
    warnings.warn(f"The Keras 1 {kind} name {old!r} is deprecated; use {new!r} instead",
                  DeprecationWarning, stacklevel=stacklevel)


def resolve_name(name, registry, kind, deprecated=None, normalize=None):
    """Look `name` up in `registry`, following a Keras 1 rename with a warning."""
    key = normalize(name) if normalize else name
    if deprecated and key in deprecated:
        warn_deprecated_name(kind, name, deprecated[key], stacklevel=5)
        key = deprecated[key]
    return registry.get(key, context=f"{kind} identifier")


def _strip_custom_prefix(name):
    # Keras 3 registered names look like "Custom>MyThing" or "keras.src...>Adam"
    return name.split(">")[-1] if isinstance(name, str) else name


def _registered_custom_objects():
    """get_custom_objects() and the enclosing custom_object_scope blocks' names."""
    from ..layers.serialization import custom_objects
    return custom_objects()


def deserialize(identifier, registry, kind, base_class=None, deprecated=None,
                custom_objects=None, instantiate=True, normalize=None):
    """Turn a string / config dict / instance / callable into the object it names."""
    if identifier is None:
        return None
    if base_class is not None and isinstance(identifier, base_class):
        return identifier
    if isinstance(identifier, str):
        custom_objects = {**_registered_custom_objects(), **(custom_objects or {})}
        if identifier in custom_objects:
            obj = custom_objects[identifier]
        else:
            obj = resolve_name(_strip_custom_prefix(identifier), registry, kind, deprecated,
                               normalize)
        if instantiate and inspect.isclass(obj):
            return obj()
        return obj
    if isinstance(identifier, dict):
        return _from_dict(identifier, registry, kind, deprecated, custom_objects, normalize)
    if inspect.isclass(identifier) and base_class is not None and \
            issubclass(identifier, base_class):
        return identifier() if instantiate else identifier
    if callable(identifier):
        return identifier
    raise ConfigError(f"Could not interpret {kind} identifier {identifier!r}: expected a name, "
                      f"a {{'class_name': ..., 'config': ...}} dict, or a callable")


def _from_dict(d, registry, kind, deprecated, custom_objects, normalize):
    if "class_name" not in d:
        raise ConfigError(f"A {kind} config dict needs a 'class_name' key, got keys {sorted(d)}")
    class_name = d["class_name"]
    config = d.get("config")
    if class_name == "function":          # Keras 3: {"class_name": "function", "config": "relu"}
        return deserialize(config, registry, kind, None, deprecated, custom_objects,
                           instantiate=False, normalize=normalize)
    name = d.get("registered_name") or class_name
    if custom_objects and (name in custom_objects or class_name in custom_objects):
        cls = custom_objects.get(name, custom_objects.get(class_name))
    else:
        try:
            cls = resolve_name(_strip_custom_prefix(class_name), registry, kind, deprecated,
                               normalize)
        except ConfigError:
            if name == class_name:
                raise
            cls = resolve_name(_strip_custom_prefix(name), registry, kind, deprecated,
                               normalize)
    config = dict(config or {}) if not isinstance(config, str) else config
    if not inspect.isclass(cls):
        if config:
            raise ConfigError(f"{kind} {class_name!r} is a function and takes no config; "
                              f"got {config!r}")
        return cls
    if hasattr(cls, "from_config"):
        return cls.from_config(config)
    return cls(**config)


def registered_name(obj, registry):
    """The canonical registered name of a function/class: its own __name__ when registered
    under it, else the first name it is registered under."""
    own = getattr(obj, "__name__", None)
    if own is not None and own in registry and registry.get(own) is obj:
        return own
    for key, value in registry.items():
        if value is obj:
            return key
    return None


def serialize(obj, registry=None):
    """Keras-style serialisation: an object with `get_config` -> {"class_name", "config"};
    a registered function -> its name; an unregistered function -> its __name__."""
    if obj is None:
        return None
    if hasattr(obj, "get_config") and not inspect.isclass(obj) and \
            not inspect.isfunction(obj):
        return {"class_name": getattr(obj, "_keras_class_name", type(obj).__name__),
                "config": obj.get_config()}
    if registry is not None:
        name = registered_name(obj, registry)
        if name is not None:
            return name
    name = getattr(obj, "__name__", None)
    if name is None:
        raise ConfigError(f"Cannot serialize {obj!r}: it has neither get_config nor a name")
    return name


def register_all(registry, mapping):
    """Register {name_or_names: obj} entries."""
    for key, obj in mapping.items():
        registry.register(key, obj)


def check_kwargs(kwargs, allowed, where):
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown argument(s) {unknown}; known: {sorted(allowed)}")

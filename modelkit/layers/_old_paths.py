"""Keras's old module paths for layers that live elsewhere here (`keras.layers.core.Highway`,
`keras.layers.convolutional.MaxPooling2D` / `ZeroPadding2D`, ...): a module `__getattr__`
that imports the name from its home module on first use, so no import cycle arises."""

import importlib


def reexports(module_globals, homes):
    """`__getattr__` for a module: each name in `homes` ({name: '.sibling_module'}) resolves
    to the object of that name in the sibling module."""
    def __getattr__(name):
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module_globals['__name__']!r} has no attribute "
                                 f"{name!r}")
        value = getattr(importlib.import_module(home, module_globals["__package__"]), name)
        module_globals[name] = value
        return value
    return __getattr__

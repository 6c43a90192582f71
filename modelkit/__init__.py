"""modelkit: Keras-style models in numpy; Keras HDF5 and ONNX files; fast inference on onnxruntime.

Importing `modelkit` loads nothing but this file and the version: the trainer (backend, engine,
layers), the converters and the runtime load on first use (PEP 562), so `import modelkit.runtime`
or `import modelkit.converters.onnx` never pulls in the layers or the training loop.
"""

import importlib as _importlib
import os as _os

from ._version import __version__  # noqa: F401

# In a source checkout `converters/`, `runtime/` and `cli/` sit beside this folder (setup.py
# installs them as modelkit.converters, .runtime, .cli): a Python started in the checkout's
# root (`python -c`, a Ray worker) imports this folder first and must find them there too.
_CHECKOUT = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if all(_os.path.isfile(_os.path.join(_CHECKOUT, *p)) for p in
       [("setup.py",), ("converters", "__init__.py"), ("runtime", "__init__.py")]):
    __path__.append(_CHECKOUT)

# Names re-exported at the top level, as in Keras: name -> the submodule that defines it.
_EXPORTS = {"Input": "engine", "Model": "engine", "Sequential": "engine"}

# The public submodules (`dir()`, `import *`); any submodule loads on first attribute access.
_SUBMODULES = frozenset({
    "activations", "backend", "callbacks", "cli", "constraints", "converters", "datasets",
    "engine", "errors", "initializers", "ir", "keras_config", "layers", "legacy", "losses",
    "metrics", "models", "optimizers", "preprocessing", "regularizers", "runtime", "saving",
    "utils",
})

__all__ = ["__version__", *_EXPORTS, *sorted(_SUBMODULES)]   # `import *` loads them all


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name.startswith("_"):
        raise AttributeError(f"module 'modelkit' has no attribute {name!r}")
    else:
        try:
            value = _importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise                       # the submodule exists but an import inside failed
            raise AttributeError(f"module 'modelkit' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)

"""modelkit: Keras-style models in numpy; Keras HDF5 and ONNX files; fast inference on onnxruntime.

Importing `modelkit` loads nothing but this file and the version: the trainer (backend, engine,
layers), the converters and the runtime load on first use (PEP 562), so `import modelkit.runtime`
or `import modelkit.converters.onnx` never pulls in the layers or the training loop.
"""

import importlib

from ._version import __version__  # noqa: F401

# Names re-exported at the top level, as in Keras: name -> the submodule that defines it.
_EXPORTS = {"Input": "engine", "Model": "engine", "Sequential": "engine"}

# Submodules reachable as attributes after a bare `import modelkit` (`modelkit.layers.Dense`).
_SUBMODULES = frozenset({
    "activations", "backend", "callbacks", "cli", "constraints", "converters", "datasets",
    "engine", "errors", "initializers", "ir", "keras_config", "layers", "legacy", "losses",
    "metrics", "models", "optimizers", "regularizers", "runtime", "saving", "utils",
})


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'modelkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)

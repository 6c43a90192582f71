"""modelkit's exceptions: every error a user can cause is one of these.

Each message names the offending thing (layer, input, file, field) and what was expected.
"""


class ModelkitError(Exception):
    """Base class of every modelkit error."""


class ShapeError(ModelkitError, ValueError):
    """A tensor's shape does not fit what a layer, input or op expects."""


class DTypeError(ModelkitError, TypeError):
    """A tensor's dtype cannot be used where it was given."""


class ConfigError(ModelkitError, ValueError):
    """An argument or configuration value is invalid (unknown name, bad value)."""


class NotCompiledError(ModelkitError, RuntimeError):
    """Training or evaluation was asked of a model that has not been compiled."""


class IRError(ModelkitError, ValueError):
    """The intermediate representation is inconsistent; the message names the node."""


class ModelLoadError(ModelkitError, OSError):
    """A model or weights file cannot be read; the message names the path and the piece."""


class KerasConfigError(ModelLoadError):
    """A Keras model config cannot be understood; the message names the layer and field."""


class ModelSaveError(ModelkitError, OSError):
    """A model could not be written; the previous file, if any, is untouched."""


class UnsafeLoadError(ModelLoadError):
    """Loading would execute code stored in a file; pass safe_mode=False to allow it."""


class UnsupportedError(ModelkitError, NotImplementedError):
    """Some layers or ops cannot be converted or run; `items` lists every one of them."""

    def __init__(self, message, items=None):
        super().__init__(message)
        self.items = list(items or [])


class RuntimeSessionError(ModelkitError, RuntimeError):
    """An inference session could not be created or run (device, provider, inputs)."""


class MissingDependencyError(ModelkitError, ImportError):
    """An optional piece (a package of an extra, a program such as Graphviz) is not
    installed; the message names it and how to install it."""


def as_load_error(where, e):
    """Any failure while reading or building a model -> one ModelLoadError naming `where`
    (the file, or "model JSON") and, through the message, the piece. An UnsafeLoadError
    keeps its class; one that already names `where` is returned as it is."""
    if isinstance(e, ModelLoadError) and str(e).startswith(where):
        return e
    msg = str(e) if isinstance(e, ModelkitError) else f"{type(e).__name__}: {e}"
    if isinstance(e, RecursionError):
        msg = "the config nests too deeply"
    cls = type(e) if isinstance(e, UnsafeLoadError) else ModelLoadError
    return cls(f"{where}: {msg}")

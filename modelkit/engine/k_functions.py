"""The K functions a file may name: the one registry `BackendOp` nodes and named-function
`Lambda` layers resolve through.

Only the public, pure tensor functions of `modelkit.backend` (`functions`,
`spatial_functions`) that can become graph nodes
(those made with `k_function`, which carry a `k_name`) are in it, plus indexing and
`zeros_like`/`ones_like`. Nothing is looked up on the backend module by a name read from a
file, so a config cannot reach setters (`set_symbolic_handler`, `set_value`), dunders or
any other attribute, and loading one model can never rebind a function another model uses.
The registry is filled once at import and holds the function objects themselves.
"""

from ..backend import functions as F
from ..backend import spatial_functions
from ..registry import Registry

K_FUNCTIONS = Registry("backend function")

_EXTRA = {"getitem": F.getitem, "zeros_like": F.zeros_like, "ones_like": F.ones_like}


def _fill():
    for module in (F, spatial_functions):
        for name, fn in sorted(vars(module).items()):
            if name.startswith("_") or not callable(fn) or not getattr(fn, "k_name", None):
                continue
            K_FUNCTIONS.register(name, fn)
    for name, fn in _EXTRA.items():
        K_FUNCTIONS.register(name, fn)


_fill()


def k_function_named(name, where):
    """The registered K function `name`; ConfigError naming `where` for anything else."""
    if not isinstance(name, str) or name not in K_FUNCTIONS:
        known = ", ".join(K_FUNCTIONS.names())
        from ..errors import ConfigError
        raise ConfigError(f"{where}: {name!r:.80} is not a backend function a model may "
                          f"name (known: {known})")
    return K_FUNCTIONS.get(name)

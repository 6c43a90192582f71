"""One small registry type, used once per kind of thing (ops, layers, export/import handlers)."""

import difflib

from .errors import ConfigError


class Registry:
    """A named mapping from keys to objects.

    Registering a key twice raises; looking up an unknown key raises `error_type` with a
    message that names the kind, the key, the closest known keys and all of them.
    """

    def __init__(self, kind, error_type=ConfigError):
        self.kind = kind
        self.error_type = error_type
        self._items = {}

    def register(self, key, obj=None):
        """Register `obj` under `key`; usable as a decorator when `obj` is omitted."""
        if obj is None:
            def decorator(o):
                self.register(key, o)
                return o
            return decorator
        keys = key if isinstance(key, (list, tuple)) else [key]
        for k in keys:
            if k in self._items:
                raise ConfigError(f"{self.kind} {k!r} is registered twice")
            self._items[k] = obj
        return obj

    def get(self, key, context=""):
        try:
            return self._items[key]
        except (KeyError, TypeError):
            pass
        where = f" ({context})" if context else ""
        close = difflib.get_close_matches(str(key), [str(k) for k in self._items], n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        known = ", ".join(sorted(map(str, self._items)))
        raise self.error_type(f"Unknown {self.kind} {key!r}{where}.{hint} Known: {known}")

    def __contains__(self, key):
        try:
            return key in self._items
        except TypeError:
            return False

    def __iter__(self):
        return iter(self._items)

    def items(self):
        return self._items.items()

    def names(self):
        return sorted(map(str, self._items))

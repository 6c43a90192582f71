"""The optional packages of `modelkit.distributed`, imported only when a feature needs them.

Ray (Ray Data, Ray Serve) and pyarrow come with the extra: ``pip install 'modelkit[ray]'``.
A missing one is a `MissingDependencyError` naming the feature and that command.
"""

from __future__ import annotations

import importlib

from modelkit.errors import MissingDependencyError

INSTALL = "pip install 'modelkit[ray]'"

# module -> the package pip installs it from
_PACKAGES = {"ray": "ray", "ray.data": "ray[data]", "ray.serve": "ray[serve]",
             "pyarrow": "pyarrow", "pyarrow.parquet": "pyarrow"}


def require(module, feature):
    """Import `module` (one of _PACKAGES) for `feature`, or raise MissingDependencyError."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{feature} needs {_PACKAGES.get(module, module)}, which is not installed "
            f"({e}); install it with `{INSTALL}`") from None


def ray(feature):
    return require("ray", feature)


def ray_data(feature):
    require("ray", feature)
    return require("ray.data", feature)


def ray_serve(feature):
    require("ray", feature)
    return require("ray.serve", feature)


def parquet(feature):
    """(pyarrow, pyarrow.parquet)."""
    return require("pyarrow", feature), require("pyarrow.parquet", feature)

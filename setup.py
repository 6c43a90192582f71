"""Package discovery that honours the package-dir mapping (everything else is in pyproject.toml).

`converters/`, `runtime/` and `cli/` are installed as `modelkit.converters`, `modelkit.runtime`
and `modelkit.cli`; every folder below a root that holds .py files is a package, so a new
subpackage can never be missing from the wheel.
"""

import os

from setuptools import setup

PACKAGE_DIRS = {"modelkit": "modelkit", "modelkit.converters": "converters",
                "modelkit.runtime": "runtime", "modelkit.cli": "cli"}


def find_packages(package_dirs=PACKAGE_DIRS, base="."):
    """Every package under the mapped roots: {package name: folder}."""
    found = {}
    for name, root in package_dirs.items():
        for folder, subdirs, files in os.walk(os.path.join(base, root)):
            subdirs[:] = sorted(d for d in subdirs if d != "__pycache__" and not d.startswith("."))
            if not any(f.endswith(".py") for f in files):
                continue
            rel = os.path.relpath(folder, os.path.join(base, root))
            pkg = name if rel == "." else ".".join([name] + rel.split(os.sep))
            found.setdefault(pkg, folder)
    return found


if __name__ == "__main__":
    setup(packages=sorted(find_packages()), package_dir=PACKAGE_DIRS)

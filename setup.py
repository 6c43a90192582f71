"""Package discovery that honours pyproject.toml's `[tool.setuptools.package-dir]` mapping,
and the optional C kernels.

`converters/`, `runtime/` and `cli/` are installed as `modelkit.converters`, `modelkit.runtime`
and `modelkit.cli`; every folder below a mapped root that holds .py files is a package, so a
new subpackage can never be missing from the wheel. Everything else is in pyproject.toml.

modelkit/backend/_native.c, _native_rnn.c and _native_pool.c (fused float32 kernels and the
worker threads they share with OpenBLAS, loaded through ctypes by modelkit/backend/native.py
and blas_pool.py) are compiled where a C compiler is found; where the build fails
the package installs without it and numpy does that work.
"""

import os

from setuptools import Extension, setup

try:
    import tomllib
except ModuleNotFoundError:                     # Python 3.10
    from setuptools.extern import tomli as tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "pyproject.toml"), "rb") as _f:
    PACKAGE_DIRS = tomllib.load(_f)["tool"]["setuptools"]["package-dir"]


def find_packages(package_dirs=PACKAGE_DIRS, base=HERE):
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


# the same float32 roundings as numpy: no fused multiply-add contraction, no errno from sqrt
NATIVE = Extension("modelkit.backend._native",
                   sources=["modelkit/backend/_native.c", "modelkit/backend/_native_rnn.c",
                            "modelkit/backend/_native_pool.c"],
                   extra_compile_args=[] if os.name == "nt" else
                   ["-O3", "-fno-math-errno", "-ffp-contract=off"],
                   optional=True)


if __name__ == "__main__":
    setup(packages=sorted(find_packages()), ext_modules=[NATIVE])

"""The built package holds every module: setup.py discovers packages under the package-dir
roots (converters/ -> modelkit.converters, ...), and setuptools' own file list agrees."""

import importlib
import os
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup_module():
    return runpy.run_path(str(ROOT / "setup.py"), run_name="modelkit_setup")


def _python_files():
    """Every .py file under the mapped roots, as repository paths."""
    out = set()
    for root in _setup_module()["PACKAGE_DIRS"].values():
        for folder, subdirs, files in os.walk(ROOT / root):
            subdirs[:] = [d for d in subdirs if d != "__pycache__" and not d.startswith(".")]
            out |= {os.path.relpath(os.path.join(folder, f), ROOT) for f in files
                    if f.endswith(".py")}
    return out


def test_pyproject_has_no_hand_written_package_list():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "packages" not in cfg
    assert cfg["package-dir"]["modelkit.converters"] == "converters"


def test_every_python_file_is_in_setuptools_file_list(tmp_path):
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    sources = set((tmp_path / "modelkit.egg-info" / "SOURCES.txt").read_text().split())
    missing = sorted(_python_files() - sources)
    assert not missing, f"not in the built package: {missing}"
    assert len(_python_files()) > 100


def test_every_discovered_package_imports_under_its_mapped_name():
    """Editable or not, each package's folder as installed holds the same modules as here."""
    packages = _setup_module()["find_packages"](base=str(ROOT))
    assert {"modelkit.converters.onnx.handlers", "modelkit.keras_config",
            "modelkit.backend.rnn_ops", "modelkit.cli"} <= set(packages)
    for name, folder in packages.items():
        installed = Path(importlib.import_module(name).__file__).parent
        here = {f for f in os.listdir(folder) if f.endswith(".py")}
        assert here <= set(os.listdir(installed)), f"{name}: {sorted(here - set(os.listdir(installed)))}"


def test_a_python_started_in_the_checkout_root_finds_every_subpackage():
    """`python -c` and Ray workers put the checkout's root first on sys.path, so they import
    this folder's `modelkit/` even when the package is installed elsewhere (CI's wheel)."""
    code = ("import modelkit, modelkit.converters.onnx, modelkit.runtime.server, modelkit.cli.main;"
            "print(modelkit.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, text=True,
                         capture_output=True, timeout=120).stdout
    assert Path(out.strip()) == ROOT / "modelkit" / "__init__.py"

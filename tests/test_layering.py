"""The arrows of DESIGN.md's data flow, checked by reading every import with `ast`.

user code -> layers/models -> IR -> converters -> runtime -> cli. Converters know the IR, never
the layer classes; the runtime knows ONNX and the converters, never the trainer; only
`modelkit/ir_bridge.py` knows both layers and IR, and only `modelkit/saving.py` (and the
thin `Model` persistence methods that call it) reaches down into the converters.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDER_PACKAGE = {"modelkit": "modelkit", "converters": "modelkit.converters",
                  "runtime": "modelkit.runtime", "cli": "modelkit.cli"}

LAYER_SIDE = ("modelkit.layers", "modelkit.engine", "modelkit.models", "modelkit.ir_bridge",
              "modelkit.saving", "modelkit.optimizers", "modelkit.losses", "modelkit.metrics",
              "modelkit.callbacks")
CONVERTERS = ("modelkit.converters",)
RUNTIME = ("modelkit.runtime",)
CLI = ("modelkit.cli",)


def module_name(path):
    rel = path.relative_to(ROOT)
    package = FOLDER_PACKAGE[rel.parts[0]]
    parts = list(rel.parts[1:])
    parts[-1] = parts[-1][:-3]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package] + parts)


def imports_of(path):
    """Absolute names of every module `path` imports (relative imports resolved)."""
    me = module_name(path)
    is_pkg = path.name == "__init__.py"
    base = me.split(".") if is_pkg else me.split(".")[:-1]
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = base[: len(base) - node.level + 1]
                mod = ".".join(prefix + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.append(mod)
            names.extend(f"{mod}.{a.name}" for a in node.names)
    return me, names


def sources(folder):
    return sorted((ROOT / folder).rglob("*.py"))


def offending(folder, forbidden, allowed_modules=()):
    bad = []
    for path in sources(folder):
        me, names = imports_of(path)
        if me in allowed_modules:
            continue
        for n in names:
            if any(n == f or n.startswith(f + ".") for f in forbidden):
                bad.append(f"{me} imports {n}")
    return bad


def test_converters_know_the_ir_not_the_layers():
    assert offending("converters", LAYER_SIDE + RUNTIME + CLI) == []


def test_runtime_knows_onnx_and_converters_not_the_trainer():
    assert offending("runtime", LAYER_SIDE + CLI) == []


def test_layers_and_engine_do_not_reach_into_converters_runtime_or_cli():
    allowed = {"modelkit.saving"}          # the one user-facing module that dispatches to files
    assert offending("modelkit", CONVERTERS + RUNTIME + CLI, allowed_modules=allowed) == []


@pytest.mark.parametrize("folder", ["modelkit", "converters", "runtime", "cli"])
def test_every_source_file_parses(folder):
    for path in sources(folder):
        imports_of(path)

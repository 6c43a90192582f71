"""The arrows of DESIGN.md's data flow, as ONE table over the `ast` import graph, plus what
importing the runtime and the converters really loads.

Every module belongs to one component (the first prefix of COMPONENTS it matches); ALLOWED
says which other components a component may import, lazily inside functions included. A
bare `import modelkit` counts as importing the trainer; `from modelkit import X` imports X.
"""

import ast
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDER_PACKAGE = {"modelkit": "modelkit", "converters": "modelkit.converters",
                  "runtime": "modelkit.runtime", "cli": "modelkit.cli"}

# module prefix -> component, most specific first; any other modelkit module is the trainer
COMPONENTS = [
    ("modelkit.errors", "base"), ("modelkit.registry", "base"), ("modelkit._version", "base"),
    ("modelkit.op_arguments", "base"), ("modelkit.onnx_spec", "base"),
    ("modelkit.image_geometry", "base"), ("modelkit.nesting", "base"),
    ("modelkit.attention_axes", "base"),
    ("modelkit.backend", "backend"),
    ("modelkit.ir_bridge", "ir_bridge"),
    ("modelkit.ir", "ir"),
    ("modelkit.keras_config", "keras_config"),
    ("modelkit.converters", "converters"),
    ("modelkit.runtime.server", "server"),
    ("modelkit.distributed", "distributed"),
    ("modelkit.runtime", "runtime"),
    ("modelkit.cli", "cli"),
    ("modelkit.engine.topology", "trainer"),        # Keras 1/2 module path: re-exports only
    ("modelkit.engine", "engine"),
    ("modelkit.layers", "layers"),
    ("modelkit.saving", "saving"),
]

# component -> the components it may import (besides itself)
ALLOWED = {
    "base": set(),
    "backend": {"base"},                                    # imports nothing above it
    "ir": {"base"},
    "keras_config": {"base", "ir"},                         # IR-level: no converter, no layer
    "converters": {"base", "ir", "keras_config"},           # know the IR, never the layers
    "runtime": {"base", "ir", "converters"},                # never the trainer
    "server": {"base", "ir", "converters", "runtime"},
    "distributed": {"base", "ir", "converters", "runtime", "server"},   # Ray: serving at scale
    "engine": {"base", "backend", "trainer", "ir_bridge", "saving"},
    "layers": {"base", "backend", "engine", "trainer"},
    "ir_bridge": {"base", "ir", "keras_config", "engine", "layers", "trainer"},  # model <-> IR
    "saving": {"base", "converters", "ir_bridge", "layers"},  # the one door to the files
    "trainer": {"base", "backend", "engine", "layers", "ir_bridge", "saving"},
    "cli": {"base", "ir", "keras_config", "converters", "runtime", "server", "distributed", "backend",
            "engine", "layers", "ir_bridge", "saving", "trainer"},          # wiring only
}


def component(module):
    for prefix, name in COMPONENTS:
        if module == prefix or module.startswith(prefix + "."):
            return name
    return "trainer" if module == "modelkit" or module.startswith("modelkit.") else None


def module_name(path):
    rel = path.relative_to(ROOT)
    parts = list(rel.parts[1:])
    parts[-1] = parts[-1][:-3]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([FOLDER_PACKAGE[rel.parts[0]]] + parts)


def sources(folder):
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


MODULES = {module_name(p) for folder in FOLDER_PACKAGE for p in sources(folder)}


def imports_of(path):
    """(module, [absolute names of the modules it imports]) with relative imports resolved;
    `from pkg import sub` names `pkg.sub` when that is a module, else `pkg`."""
    me = module_name(path)
    base = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            prefix = base[: len(base) - node.level + 1] if node.level else []
            mod = ".".join(prefix + ([node.module] if node.module else []))
            for a in node.names:
                names.append(f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod)
    return me, names


def import_graph():
    return {me: names for me, names in
            (imports_of(p) for folder in FOLDER_PACKAGE for p in sources(folder))}


# The arrows allowed against the table, each with its reason (keep this list short).
EXCEPTIONS = {
    ("modelkit.converters.onnx.model_import", "modelkit.saving"):
        "DESIGN's public API onnx_conv.import_model returns a Model: a lazy call up into the "
        "one door to the files, which builds it from the importer's IR",
}


def test_every_module_has_a_component_in_the_table():
    assert {component(m) for m in MODULES} <= set(ALLOWED)
    assert all(deps <= set(ALLOWED) for deps in ALLOWED.values())


def violations(graph):
    bad = []
    for me, names in graph.items():
        mine = component(me)
        for name in names:
            theirs = component(name)
            if theirs not in (None, mine) and theirs not in ALLOWED[mine] \
                    and (me, name) not in EXCEPTIONS:
                bad.append(f"{me} ({mine}) imports {name} ({theirs})")
    return bad


def test_every_import_follows_the_allowed_table():
    assert violations(import_graph()) == []


def test_each_exception_is_still_needed():
    graph = import_graph()
    assert [pair for pair in EXCEPTIONS if pair[1] not in graph.get(pair[0], [])] == []


def test_the_checker_reports_forbidden_arrows():
    assert violations({"modelkit.converters.onnx.export": ["modelkit.layers.core", "numpy"],
                       "modelkit.runtime.session": ["modelkit"],
                       "modelkit.backend.functions": ["modelkit.engine.functional"],
                       "modelkit.keras_config.reading": ["modelkit.converters.hdf5"],
                       "modelkit.runtime.batching": ["modelkit.runtime.server.app"],
                       "modelkit.layers.core": ["modelkit.backend.math_ops"]}) == [
        "modelkit.converters.onnx.export (converters) imports modelkit.layers.core (layers)",
        "modelkit.runtime.session (runtime) imports modelkit (trainer)",
        "modelkit.backend.functions (backend) imports modelkit.engine.functional (engine)",
        "modelkit.keras_config.reading (keras_config) imports modelkit.converters.hdf5 "
        "(converters)",
        "modelkit.runtime.batching (runtime) imports modelkit.runtime.server.app (server)"]


def _loaded_by(statement):
    code = (f"import sys; {statement}; "
            "import json; print(json.dumps(sorted(m for m in sys.modules "
            "if m == 'modelkit' or m.startswith('modelkit.'))))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120, cwd=str(ROOT / "tests")).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", ["import modelkit.runtime",
                                       "import modelkit.converters.onnx",
                                       "import modelkit.converters.hdf5",
                                       "from modelkit.converters import formats",
                                       "import modelkit.keras_config",
                                       "import modelkit.backend"])
def test_importing_leaves_the_trainer_unloaded(statement):
    loaded = _loaded_by(statement)
    trainer = [m for m in loaded if m.startswith(("modelkit.engine", "modelkit.layers"))]
    assert trainer == [], f"{statement} loads {trainer}"
    assert len(loaded) < 50, loaded     # export + import handlers are ~40 small modules


def test_backend_loads_nothing_above_it():
    loaded = _loaded_by("import modelkit.backend")
    assert {component(m) for m in loaded} <= {"base", "backend", "trainer"}
    assert [m for m in loaded if component(m) == "trainer"] == ["modelkit"]   # the lazy package


def test_bare_import_is_lazy_but_complete():
    assert _loaded_by("import modelkit") == ["modelkit", "modelkit._version"]
    loaded = _loaded_by("import modelkit; modelkit.layers.Dense; modelkit.Sequential")
    assert "modelkit.engine.training" in loaded


OP_TABLE = {"OPS", "apply", "defop"}     # the backend's op registry and its runner


def private_backend_uses(path, source=None):
    """`_name`s of the backend that a module outside it imports or reaches through an
    attribute (`F.math_ops._dense`), and the op table (`OPS.get("conv")`, `K.apply`):
    everything above the backend calls its public functions (`K.conv`, `K.max_pool`)."""
    me = module_name(path)
    base = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    bound, bad = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            prefix = base[: len(base) - node.level + 1] if node.level else []
            mod = ".".join(prefix + ([node.module] if node.module else []))
            for a in node.names:
                full = f"{mod}.{a.name}"
                if component(full if full in MODULES else mod) != "backend":
                    continue
                if a.name.startswith("_") or a.name in OP_TABLE:
                    bad.append(f"{me} imports {full}")
                elif full in MODULES:
                    bound.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            bound |= {a.asname for a in node.names if a.asname and component(a.name) == "backend"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (node.attr in OP_TABLE or (
                node.attr.startswith("_") and not node.attr.startswith("__"))):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                bad.append(f"{me} uses {ast.unparse(node)}")
    return bad


def test_the_private_use_checker_catches_the_op_table_and_private_names():
    source = ("from ..backend.tape import OPS, apply\n"
              "from ..backend import functions as F\n"
              "from .. import backend as K\n"
              "_CONV = OPS.get('conv')\n"
              "y = K.apply(K.OPS.get('pool_max'), F.math_ops._dense(x))\n")
    assert sorted(private_backend_uses(ROOT / "modelkit/layers/fake.py", source)) == [
        "modelkit.layers.fake imports modelkit.backend.tape.OPS",
        "modelkit.layers.fake imports modelkit.backend.tape.apply",
        "modelkit.layers.fake uses F.math_ops._dense",
        "modelkit.layers.fake uses K.OPS",
        "modelkit.layers.fake uses K.apply"]


def test_nothing_above_the_backend_uses_its_private_names():
    bad = [b for folder in FOLDER_PACKAGE for p in sources(folder)
           if component(module_name(p)) != "backend" for b in private_backend_uses(p)]
    assert bad == []


@pytest.mark.parametrize("folder", list(FOLDER_PACKAGE))
def test_every_source_file_parses(folder):
    for path in sources(folder):
        imports_of(path)

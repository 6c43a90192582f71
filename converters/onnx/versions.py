"""Which ONNX IR version and opset a file may carry so that an onnxruntime loads it.

The one place that knows the version tables:

* `IR_VERSION_FOR_OPSET`: the IR version each opset was released with (the lowest IR
  version a file of that opset needs; `onnx` would stamp its own newest one, which older
  runtimes refuse);
* `ORT_SUPPORT`: per onnxruntime release, the newest opset it implements and the newest
  IR version it loads (onnxruntime's compatibility table).

    limits = ort_limits()            # the installed onnxruntime's (None: not installed)
    limits = ort_limits("1.17")      # a deployed runtime's: OrtSupport((1, 17), 20, 9)
    opset = choose_opset(None, "1.17")   # the exporter's default, capped for that runtime
    stamp_ir_version(proto)          # the IR version its opset needs

A version newer than the table's last row gets the last row: a newer onnxruntime loads
everything an older one does (checked against the installed runtime by the tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelkit.errors import ConfigError, UnsupportedError

__all__ = ["SUPPORTED_OPSETS", "DEFAULT_OPSET", "IR_VERSION_FOR_OPSET", "ORT_SUPPORT",
           "OrtSupport", "parse_version", "installed_ort_version", "ort_limits",
           "choose_opset", "ir_version_for", "stamp_ir_version", "model_opset",
           "ops_missing_at", "unsupported_for_target", "retarget"]

# Opsets the exporter writes, and the one it writes when none is asked for.
SUPPORTED_OPSETS = tuple(range(13, 27))
DEFAULT_OPSET = 17

# ai.onnx opset -> the IR version of the ONNX release that introduced it.
IR_VERSION_FOR_OPSET = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10,
                        22: 10, 23: 11, 24: 12, 25: 13, 26: 13}


@dataclass(frozen=True)
class OrtSupport:
    """What one onnxruntime release accepts: opsets up to `max_opset`, IR up to `max_ir`."""

    version: tuple
    max_opset: int
    max_ir: int

    @property
    def name(self):
        return ".".join(map(str, self.version))


# onnxruntime release -> newest ai.onnx opset implemented, newest IR version loaded.
# 1.6-1.14: onnxruntime's compatibility table. 1.15-1.32: measured by loading a Relu model
# stamped with each IR version and each opset in every release's CPython 3.11 wheel.
ORT_SUPPORT = tuple(OrtSupport(v, op, ir) for v, op, ir in [
    ((1, 6), 13, 7), ((1, 7), 13, 7), ((1, 8), 14, 7), ((1, 9), 15, 8), ((1, 10), 15, 8),
    ((1, 11), 16, 8), ((1, 12), 17, 8), ((1, 13), 17, 8), ((1, 14), 18, 8),
    ((1, 15), 19, 9), ((1, 16), 19, 9), ((1, 17), 20, 9), ((1, 18), 21, 10),
    ((1, 19), 21, 10), ((1, 20), 21, 10), ((1, 21), 22, 10), ((1, 22), 22, 10),
    ((1, 23), 23, 11), ((1, 24), 25, 13), ((1, 25), 26, 13), ((1, 26), 26, 13),
    ((1, 27), 26, 13), ((1, 28), 26, 13), ((1, 29), 26, 13), ((1, 30), 26, 13),
    ((1, 31), 26, 13), ((1, 32), 26, 13),
])


def parse_version(text):
    """'1.17', '1.17.3', '1.18.0rc1' -> (1, 17); ConfigError for anything else."""
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.\d+)?\S*\s*$", str(text))
    if not m:
        raise ConfigError(f"onnxruntime version {text!r} is not of the form MAJOR.MINOR "
                          f"(e.g. 1.17)")
    return int(m.group(1)), int(m.group(2))


def installed_ort_version():
    """(major, minor) of the installed onnxruntime, or None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return parse_version(onnxruntime.__version__)


def ort_limits(version=None):
    """OrtSupport for onnxruntime `version` ('1.17', a tuple; None: the installed one).
    None when `version` is None and onnxruntime is not installed."""
    if version is None:
        version = installed_ort_version()
        if version is None:
            return None
    v = parse_version(version) if isinstance(version, str) else tuple(version)[:2]
    known = [row for row in ORT_SUPPORT if row.version <= v]
    if not known:
        first = ORT_SUPPORT[0]
        raise ConfigError(f"onnxruntime {'.'.join(map(str, v))} is older than any modelkit "
                          f"can write for: the exporter's lowest opset, {SUPPORTED_OPSETS[0]}, "
                          f"needs onnxruntime >= {first.name}")
    row = known[-1]
    return OrtSupport(v, row.max_opset, row.max_ir)


def choose_opset(requested=None, target=None, default=DEFAULT_OPSET):
    """The opset to export at: `requested` (when None `default`, lowered to what the runtime
    implements) checked against onnxruntime `target` (a version, an OrtSupport, or None for
    the installed one). ConfigError explains a clash."""
    limits = target if isinstance(target, OrtSupport) else ort_limits(target)
    if requested is None:
        opset = default if limits is None else min(default, limits.max_opset)
    else:
        opset = int(requested)
    if opset not in SUPPORTED_OPSETS:
        raise ConfigError(f"ONNX opset {requested!r} is not supported; choose one of "
                          f"{SUPPORTED_OPSETS[0]}..{SUPPORTED_OPSETS[-1]}")
    if limits is not None and opset > limits.max_opset:
        which = "the installed onnxruntime" if target is None else "onnxruntime"
        raise ConfigError(f"{which} {limits.name} implements ONNX opsets up to "
                          f"{limits.max_opset}; opset {opset} files would not load there "
                          f"(export at opset {limits.max_opset} or lower)")
    return opset


def ir_version_for(opset, target=None):
    """The IR version a file of `opset` carries: the one the opset needs. ConfigError when
    onnxruntime `target` (None: the installed one, if any) loads only older IR versions."""
    ir = IR_VERSION_FOR_OPSET.get(int(opset))
    if ir is None:          # an opset newer than the table (an imported file): ask onnx
        import onnx
        try:
            ir = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", int(opset))])
        except Exception:   # noqa: BLE001 - onnx does not know it either
            raise ConfigError(f"no IR version is known for ONNX opset {opset}") from None
    limits = target if isinstance(target, OrtSupport) else ort_limits(target)
    if limits is not None and ir > limits.max_ir:
        raise ConfigError(f"opset {opset} needs ONNX IR version {ir}, but onnxruntime "
                          f"{limits.name} loads IR versions up to {limits.max_ir}")
    return ir


def model_opset(proto):
    """The ai.onnx opset a ModelProto imports (None if it imports none)."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def stamp_ir_version(proto, target=None):
    """Give `proto` an IR version onnxruntime `target` (None: the installed one) loads: the
    one its ai.onnx opset needs when the file's own is newer than the runtime loads (recent
    `onnx` writes its newest) or older than the opset needs; otherwise the file's own."""
    opset = model_opset(proto)
    if opset is None:
        return proto
    need = ir_version_for(opset, target)
    limits = target if isinstance(target, OrtSupport) else ort_limits(target)
    if proto.ir_version < need or (limits is not None and proto.ir_version > limits.max_ir):
        proto.ir_version = need
    return proto


def retarget(proto, target=None, where="model"):
    """`proto` made loadable by onnxruntime `target` (a version, an OrtSupport, None: the
    installed one): an opset newer than it implements is converted down (onnx's version
    converter) and the IR version set to what the opset needs. When nodes use operators
    that do not exist at the runtime's opset, UnsupportedError names every one."""
    limits = target if isinstance(target, OrtSupport) or target is None else ort_limits(target)
    if limits is None:
        limits = ort_limits()
    opset = model_opset(proto)
    if limits is not None and opset is not None and opset > limits.max_opset:
        missing = ops_missing_at(proto, limits.max_opset)
        if missing:
            lines = "\n".join(f"  - {m}" for m in missing)
            raise UnsupportedError(
                f"{where}: onnxruntime {limits.name} implements ONNX opsets up to "
                f"{limits.max_opset}, but the model (opset {opset}) uses operators that need "
                f"a newer opset:\n{lines}", missing)
        from onnx import version_converter
        try:
            proto = version_converter.convert_version(proto, limits.max_opset)
        except Exception as e:  # noqa: BLE001 - the converter's own errors
            raise ConfigError(f"{where}: cannot convert from opset {opset} down to "
                              f"{limits.max_opset} for onnxruntime {limits.name}: "
                              f"{' '.join(str(e).split())}") from None
    return stamp_ir_version(proto, limits)


def ops_missing_at(proto, opset):
    """'OpType (node name, needs opset N)' for each ai.onnx node of `proto` (subgraphs
    included) whose operator does not exist yet at `opset`."""
    import onnx
    missing = []

    def walk(graph):
        for node in graph.node:
            if node.domain in ("", "ai.onnx"):
                try:
                    onnx.defs.get_schema(node.op_type, opset, "")
                except Exception:   # noqa: BLE001 - SchemaError: no such op at that opset
                    since = _since_version(node.op_type)
                    missing.append(f"{node.op_type} (node {node.name or '?'!r}"
                                   + (f", needs opset {since}" if since else "") + ")")
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(proto.graph)
    return missing


def _since_version(op_type):
    """The first ai.onnx opset that has `op_type` (None: not an ai.onnx operator)."""
    import onnx
    versions = [s.since_version for s in onnx.defs.get_all_schemas_with_history()
                if s.name == op_type and s.domain in ("", "ai.onnx")]
    return min(versions) if versions else None


def unsupported_for_target(problems, opset, limits):
    """An UnsupportedError saying which layers need a newer opset than `limits` allows."""
    lines = "\n".join(f"  - {p}" for p in problems)
    return UnsupportedError(
        f"onnxruntime {limits.name} implements ONNX opsets up to {limits.max_opset}; "
        f"{len(problems)} layer(s) cannot be exported at opset {opset} (they need a newer "
        f"opset than that runtime has):\n{lines}", problems)

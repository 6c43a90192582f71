"""`modelkit convert SRC DST`: between Keras HDF5, Keras archives and ONNX, optionally quantized.

Every path goes through the format table (`converters.formats`), never through the layer
classes: SRC is read to the IR (an .onnx SRC stays an ONNX model), DST written from it.

* anything -> .onnx: `converters.onnx.export` (an .onnx SRC round-trips through the IR: it
  is imported and exported again, at `--opset` or its own opset), then `--quantize dynamic`
  (int8 weights, activations quantized at run time: `converters.onnx.quantize_dynamic`).
* anything -> .h5/.hdf5/.keras: the IR written by the Keras writers (.h5 -> .h5 copies the
  graph, its weights and training config without building a model; an .onnx SRC with
  imported ONNX ops Keras cannot express is refused, naming them).

Every conversion then runs SRC and DST on the same random inputs (an .onnx file on
onnxruntime, a Keras file with modelkit's layers) and prints the max difference per output (`modelkit.runtime.parity.check_conversion`); the exit status is 1 when
one exceeds `--tolerance` (default 1e-4, scaled by the output's magnitude). `--no-check`
skips this; quantized outputs are only checked when `--tolerance` is given.
"""

from __future__ import annotations

import os

from modelkit.converters import formats
from .commands import UsageError, register

DEFAULT_OPSET = 17

EXAMPLE = """  modelkit convert model.h5 model.onnx --opset 17
  modelkit convert torch_export.onnx model.h5 --tolerance 1e-5
  modelkit convert model.h5 model.int8.onnx --quantize dynamic
  modelkit convert model.h5 model_ort117.onnx --target-ort 1.17"""


def add_arguments(p):
    p.add_argument("src", metavar="SRC", help=f"model to read ({', '.join(formats.EXTENSIONS)})")
    p.add_argument("dst", metavar="DST", help=f"file to write ({', '.join(formats.EXTENSIONS)})")
    p.add_argument("--opset", type=int, default=None, metavar="N",
                   help=f"ONNX opset of an .onnx DST (default {DEFAULT_OPSET} for exports; "
                        f"an .onnx SRC keeps its own)")
    p.add_argument("--quantize", choices=["dynamic"], default=None,
                   help="quantize the .onnx DST: 'dynamic' = int8 weights "
                        "(onnxruntime.quantization.quantize_dynamic)")
    p.add_argument("--target-ort", default=None, metavar="VERSION",
                   help="onnxruntime version the .onnx DST must load in (e.g. 1.17; default: "
                        "the installed one): opset and IR version are chosen for it, or the "
                        "layers/ops that need a newer opset are named")
    p.add_argument("--tolerance", type=float, default=None, metavar="T",
                   help="largest accepted |SRC - DST| difference per output, scaled by "
                        "max(1, max |output|) (default 1e-4)")
    p.add_argument("--no-check", action="store_true",
                   help="skip running SRC and DST on random inputs to compare them")


def _opset_of(proto):
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _to_onnx(src, fmt, opset, target_ort=None):
    if fmt is not formats.ONNX:
        from modelkit.converters.keras_to_onnx import convert_keras_file
        return convert_keras_file(src, opset=opset or (None if target_ort else DEFAULT_OPSET),
                                  target_ort=target_ort)
    from modelkit.converters import onnx as onnx_conv
    from modelkit.converters.onnx import versions
    graph = fmt.read(src)
    keep = max(graph.metadata.get("onnx_opset", 0), onnx_conv.export_default_opset(graph))
    if opset is None and target_ort:
        keep = min(keep, versions.ort_limits(target_ort).max_opset)
    return onnx_conv.export(graph, opset=opset or min(keep, onnx_conv.SUPPORTED_OPSETS[-1]),
                            target_ort=target_ort)


def _keras_runner(path, fmt):
    """For a Keras file: run it with modelkit's layers (what the Keras model computes), so
    the parity check does not compare an ONNX export with itself. None for an .onnx file."""
    if fmt is formats.ONNX:
        return None
    from modelkit.models import load_model
    model = load_model(path, compile=False)
    names = [t._keras_history[0].name for t in model.inputs]

    def run(feeds):
        xs = [feeds[n] for n in names] if set(names) <= set(feeds) else list(feeds.values())
        out = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        return list(out) if isinstance(out, (list, tuple)) else [out]
    return run


def run(args):
    src, dst = args.src, args.dst
    dst_fmt = formats.format_by_extension(dst)
    if dst_fmt is None:
        raise UsageError(f"DST {dst!r} must end in {', '.join(formats.EXTENSIONS)}")
    if dst_fmt is not formats.ONNX and (args.quantize or args.opset or args.target_ort):
        flag = "--quantize" if args.quantize else "--opset" if args.opset else "--target-ort"
        raise UsageError(f"{flag} applies to an .onnx DST, not {dst!r}")
    if args.opset is not None and args.opset < 1:
        raise UsageError(f"--opset must be a positive integer, got {args.opset}")
    src_fmt = formats.format_of(src)

    if dst_fmt is formats.ONNX:
        from modelkit.converters import onnx as onnx_conv
        from modelkit.converters.onnx import versions
        proto = _to_onnx(src, src_fmt, args.opset, args.target_ort)
        if args.quantize == "dynamic":
            proto = onnx_conv.quantize_dynamic(proto)
        proto = versions.retarget(proto, args.target_ort, where=src)
        onnx_conv.save_proto(proto, dst)
        detail = f"opset {_opset_of(proto) or '?'}" + (
            ", dynamic int8 quantization" if args.quantize else "") + \
            f", IR version {proto.ir_version}"
    else:
        formats.write_graph(src_fmt.read(src), dst)
        detail = dst_fmt.description
    print(f"Converted {src} -> {dst} ({detail}, {os.path.getsize(dst):,} bytes)")
    if args.no_check or (args.quantize and args.tolerance is None):
        return 0
    from modelkit.runtime.parity import check_conversion
    # Keras <-> ONNX: the Keras side runs in modelkit's layers (else the check would compare
    # an ONNX export with itself); Keras -> Keras compares the two files' exports, building
    # no layer (the conversion itself never does)
    across = (src_fmt is formats.ONNX) != (dst_fmt is formats.ONNX)
    report = check_conversion(src, dst, tolerance=args.tolerance,
                              run_source=_keras_runner(src, src_fmt) if across else None,
                              run_converted=_keras_runner(dst, dst_fmt) if across else None)
    print(report)
    return 0 if report.ok else 1


register("convert", add_arguments, run, example=EXAMPLE)

"""`modelkit convert SRC DST`: between Keras HDF5 and ONNX, optionally quantized.

* .h5/.hdf5 -> .onnx: `converters.hdf5.load_graph` then `converters.onnx.export` (the IR
  path: no layer classes involved).
* .onnx -> .onnx: a round trip through the IR (`converters.onnx.import_graph` then
  `export`, at `--opset` or the source's opset), optionally quantized.
* anything else (.h5 -> .h5, .onnx -> .h5, ...): `modelkit.saving.load_model(SRC).save(DST)`
  (a model with imported ONNX ops Keras cannot express is refused for .h5, naming them).

Every conversion then runs SRC and DST on the same random inputs and prints the max
difference per output (`modelkit.runtime.parity.check_conversion`); the exit status is 1 when
one exceeds `--tolerance` (default 1e-4, scaled by the output's magnitude). `--no-check`
skips this; quantized outputs are only checked when `--tolerance` is given.

`--quantize dynamic` runs onnxruntime's `quantize_dynamic` (int8 weights, activations
quantized at run time) on the ONNX model before it is written.
"""

from __future__ import annotations

import os
import tempfile

from modelkit.errors import ModelLoadError

from .arrays import atomic_write
from .commands import UsageError, register

HDF5 = (".h5", ".hdf5")
ONNX = (".onnx",)
KNOWN = HDF5 + ONNX + (".keras",)
DEFAULT_OPSET = 17

EXAMPLE = """  modelkit convert model.h5 model.onnx --opset 17
  modelkit convert torch_export.onnx model.h5 --tolerance 1e-5
  modelkit convert model.h5 model.int8.onnx --quantize dynamic"""


def add_arguments(p):
    p.add_argument("src", metavar="SRC", help="model to read (.h5, .hdf5, .onnx, .keras)")
    p.add_argument("dst", metavar="DST", help="file to write (.onnx, .h5, .hdf5)")
    p.add_argument("--opset", type=int, default=None, metavar="N",
                   help=f"ONNX opset of an .onnx DST (default {DEFAULT_OPSET} for exports; "
                        f"an .onnx SRC keeps its own)")
    p.add_argument("--quantize", choices=["dynamic"], default=None,
                   help="quantize the .onnx DST: 'dynamic' = int8 weights "
                        "(onnxruntime.quantization.quantize_dynamic)")
    p.add_argument("--tolerance", type=float, default=None, metavar="T",
                   help="largest accepted |SRC - DST| difference per output, scaled by "
                        "max(1, max |output|) (default 1e-4)")
    p.add_argument("--no-check", action="store_true",
                   help="skip running SRC and DST on random inputs to compare them")


def _ext(path):
    return os.path.splitext(path)[1].lower()


def quantize_dynamic(proto):
    """An int8 dynamically quantized copy of the ONNX `proto`."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic
    with tempfile.TemporaryDirectory(prefix="modelkit-quant-") as tmp:
        src, dst = os.path.join(tmp, "in.onnx"), os.path.join(tmp, "out.onnx")
        onnx.save(proto, src)
        quant_logger = logging.getLogger()       # quantize_dynamic warns on the root logger
        level = quant_logger.level
        quant_logger.setLevel(logging.ERROR)
        try:
            ort_quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        finally:
            quant_logger.setLevel(level)
        return onnx.load(dst)


def _to_onnx(src, opset):
    ext = _ext(src)
    if ext in HDF5:
        from modelkit.converters import hdf5
        from modelkit.converters import onnx as onnx_conv
        return onnx_conv.export(hdf5.load_graph(src), opset=opset or DEFAULT_OPSET)
    if ext == ".keras":
        from modelkit.converters import hdf5
        from modelkit.converters import onnx as onnx_conv
        return onnx_conv.export(hdf5.load_keras_archive(src), opset=opset or DEFAULT_OPSET)
    from modelkit.converters import onnx as onnx_conv
    graph = onnx_conv.import_graph(src)
    keep = max(graph.metadata.get("onnx_opset", 0), onnx_conv.export_default_opset(graph))
    return onnx_conv.export(graph, opset=opset or min(keep, onnx_conv.SUPPORTED_OPSETS[-1]))


def run(args):
    src, dst = args.src, args.dst
    src_ext, dst_ext = _ext(src), _ext(dst)
    if src_ext not in KNOWN:
        raise UsageError(f"SRC {src!r} must end in {', '.join(KNOWN)}")
    if dst_ext not in HDF5 + ONNX:
        raise UsageError(f"DST {dst!r} must end in {', '.join(HDF5 + ONNX)}")
    if dst_ext not in ONNX and (args.quantize or args.opset):
        flag = "--quantize" if args.quantize else "--opset"
        raise UsageError(f"{flag} applies to an .onnx DST, not {dst!r}")
    if args.opset is not None and args.opset < 1:
        raise UsageError(f"--opset must be a positive integer, got {args.opset}")
    if not os.path.exists(src):
        raise ModelLoadError(f"Model file not found: {src}")

    if dst_ext in ONNX:
        proto = _to_onnx(src, args.opset)
        if args.quantize == "dynamic":
            proto = quantize_dynamic(proto)
        data = proto.SerializeToString()
        atomic_write(dst, lambda f: f.write(data))
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), "?")
        detail = f"opset {opset}" + (", dynamic int8 quantization" if args.quantize else "")
    else:
        from modelkit.saving import load_model
        load_model(src).save(dst)
        detail = "Keras HDF5"
    print(f"Converted {src} -> {dst} ({detail}, {os.path.getsize(dst):,} bytes)")
    if args.no_check or (args.quantize and args.tolerance is None):
        return 0
    from modelkit.runtime.parity import check_conversion
    report = check_conversion(src, dst, tolerance=args.tolerance)
    print(report)
    return 0 if report.ok else 1


register("convert", add_arguments, run, example=EXAMPLE)

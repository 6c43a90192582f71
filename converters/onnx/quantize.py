"""Int8 quantization of an ONNX model (onnxruntime's dynamic quantization)."""

from __future__ import annotations

import logging
import os
import tempfile

__all__ = ["quantize_dynamic"]


def quantize_dynamic(proto):
    """An int8 dynamically quantized copy of the ONNX `proto`: int8 weights, activations
    quantized at run time (`onnxruntime.quantization.quantize_dynamic`, QInt8)."""
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

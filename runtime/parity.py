"""Parity of a conversion: run the source and the converted model on the same random inputs.

    from modelkit.runtime.parity import check_conversion
    report = check_conversion("m.onnx", "m.h5")        # ParityReport
    print(report); assert report.ok

Both models run on onnxruntime through `InferenceSession` (an .h5/.keras file through
modelkit's IR and ONNX exporter) unless a side's runner is given (the CLI runs Keras files
with modelkit's layers), on inputs drawn from the source's input specs: floats from
a standard normal, integer inputs below the smallest table they index (a Gather/Embedding
on a constant table), booleans at random; dynamic dims become small sizes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from modelkit.errors import ConfigError

DEFAULT_TOLERANCE = 1e-4
DEFAULT_DIM = {0: 2}        # dynamic batch -> 2; other dynamic dims -> 5


@dataclass
class ParityReport:
    """Per-output max |source - converted| and the tolerance each was held to."""

    outputs: list = field(default_factory=list)     # (name, max_abs_diff, tolerance)

    @property
    def ok(self):
        return all(d <= tol for _, d, tol in self.outputs)

    @property
    def max_diff(self):
        return max((d for _, d, _ in self.outputs), default=0.0)

    def __str__(self):
        lines = [f"  {name}: max |diff| {d:.3g} (tolerance {tol:.3g}) "
                 f"{'ok' if d <= tol else 'TOO LARGE'}" for name, d, tol in self.outputs]
        return "Parity check:\n" + "\n".join(lines)


def _onnx_proto(path):
    """The ONNX model a model file runs as (read through the format table)."""
    from modelkit.converters import formats
    if formats.format_of(path) is formats.ONNX:
        from modelkit.converters.onnx.reading import read_model
        return read_model(path)
    from modelkit.converters.keras_to_onnx import convert_keras_file
    return convert_keras_file(path)


def index_bounds(proto):
    """graph input name -> exclusive upper bound for its values (Gather on a constant)."""
    if proto is None:
        return {}
    inits = {t.name: t for t in proto.graph.initializer}
    source = {}             # a Cast's output -> its input (Keras float inputs of an Embedding)
    bounds = {}
    for node in proto.graph.node:
        if node.op_type == "Cast" and node.input:
            source[node.output[0]] = source.get(node.input[0], node.input[0])
        if node.op_type == "Gather" and node.input[0] in inits and len(node.input) > 1:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            dims = list(inits[node.input[0]].dims)
            if dims:
                n = dims[axis]
                name = source.get(node.input[1], node.input[1])
                bounds[name] = min(bounds.get(name, n), n)
    return bounds


def random_inputs(session, proto=None, seed=0):
    """{name: array} matching `session`'s inputs (dtypes, fixed dims, index ranges)."""
    rng = np.random.default_rng(seed)
    bounds = index_bounds(proto)
    feeds = {}
    for spec in session.inputs:
        shape = tuple(d if isinstance(d, int) and d > 0 else DEFAULT_DIM.get(i, 5)
                      for i, d in enumerate(spec.shape))
        dtype = np.dtype(spec.dtype)
        if np.issubdtype(dtype, np.floating) and spec.name in bounds:     # float indices
            feeds[spec.name] = rng.integers(0, bounds[spec.name], size=shape).astype(dtype)
        elif np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == bool:
            feeds[spec.name] = rng.random(shape) < 0.5
        else:
            feeds[spec.name] = rng.integers(0, bounds.get(spec.name, 2), size=shape).astype(dtype)
    return feeds


def check_conversion(source, converted, tolerance=None, seed=0, device="cpu",
                     run_source=None, run_converted=None):
    """Run `source` and `converted` (paths, ModelProtos, graphs or models) on the same random
    inputs; -> ParityReport. `tolerance` (default 1e-4) is scaled by max(1, max |output|).

    `run_source` / `run_converted`, when given, compute that side's outputs instead of its
    onnxruntime session (a callable: {input name: array} -> [arrays in output order]); the
    CLI passes modelkit's own layers for Keras files, so a Keras -> ONNX conversion is
    compared with what the Keras model computes, not with its own ONNX export."""
    from .session import InferenceSession
    tolerance = DEFAULT_TOLERANCE if tolerance is None else float(tolerance)
    if tolerance < 0:
        raise ConfigError(f"tolerance must be >= 0, got {tolerance}")
    a, b = InferenceSession(source, device=device), InferenceSession(converted, device=device)
    feeds = random_inputs(a, _onnx_proto(source) if isinstance(source, (str, os.PathLike))
                          else None, seed)
    if sorted(a.input_names) != sorted(b.input_names):
        by_pos = dict(zip(b.input_names, (feeds[n] for n in a.input_names)))
        feeds_b = by_pos
    else:
        feeds_b = feeds
    ya = run_source(feeds) if run_source is not None else a.run(feeds)
    yb = run_converted(feeds_b) if run_converted is not None else b.run(feeds_b)
    ya = list(ya.values()) if isinstance(ya, dict) else list(ya)
    yb = list(yb.values()) if isinstance(yb, dict) else list(yb)
    if len(ya) != len(yb):
        raise ConfigError(f"the source has {len(ya)} output(s), the converted model {len(yb)}")
    report = ParityReport()
    for name, p, q in zip(a.output_names, ya, yb):
        p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
        if p.shape != q.shape:
            report.outputs.append((name, float("inf"), 0.0))
            continue
        scale = max(1.0, float(np.max(np.abs(p)))) if p.size else 1.0
        diff = float(np.max(np.abs(p - q))) if p.size else 0.0
        report.outputs.append((name, diff, tolerance * scale))
    return report


__all__ = ["ParityReport", "check_conversion", "random_inputs", "index_bounds"]

"""ONNX control flow: If, Loop and Scan. Their bodies (subgraphs, stored by the importer as
{"__graph__": ...}, see `modelkit.onnx_spec.is_graph`) run node by node with the same ONNX
ops as everything else, on the tape, so gradients flow through the branch taken and every
iteration. Values the bodies read from enclosing graphs arrive as the node's extra inputs
(after its declared ones, in `outer_names` order)."""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError, UnsupportedError
from ...onnx_spec import GRAPH_KEY, is_graph, outer_names
from ...op_arguments import decode
from ..tensor import Tensor
from . import onnx_op, run_onnx_op
from ._util import const, op, values

MAX_ITERATIONS = 1 << 20        # a Loop running longer is refused, not waited for


def run_graph(graph, feeds, scope, ctx):
    """Run a subgraph: `feeds` for its inputs (in order), `scope` {name: Tensor} for the
    enclosing values it reads. Returns its outputs (Tensors)."""
    g = graph[GRAPH_KEY]
    if len(feeds) != len(g["inputs"]):
        raise ShapeError(f"subgraph {g['name']!r} takes {len(g['inputs'])} input(s), "
                         f"got {len(feeds)}")
    env = dict(scope)
    env.update({k: Tensor(np.asarray(decode(v, []))) for k, v in g["initializers"].items()})
    env.update({spec["name"]: x for spec, x in zip(g["inputs"], feeds)})
    for node in g["nodes"]:
        attrs = {k: (v if is_graph(v) else decode(v, [])) for k, v in
                 node["attributes"].items()}
        args = [env[i] if i else None for i in node["inputs"]] + \
            [env[n] for n in outer_names(attrs)]
        outs = run_onnx_op(node["op_type"], args, attrs, opset=ctx.opset,
                           training=ctx.training, num_outputs=len(node["outputs"]))
        for name, t in zip(node["outputs"], outs):
            if name:
                env[name] = t
    return [env[spec["name"]] for spec in g["outputs"]]


def _split(inputs, attrs):
    """(declared inputs, {outer name: tensor})."""
    names = outer_names(attrs)
    declared = inputs[:len(inputs) - len(names)]
    return declared, dict(zip(names, inputs[len(declared):]))


def _scalar(t, what):
    v = np.asarray(values(t))
    if v.size != 1:
        raise ShapeError(f"{what} must hold one value, not shape {v.shape}")
    return v.reshape(-1)[0]


def _stack(parts, spec, axis=0):
    if parts:
        return op("stack", *parts, axis=axis)
    dtype = spec.get("dtype") or "float32"      # no iteration: an empty scan output
    return const(np.zeros((0,), dtype=dtype))


@onnx_op("If")
def if_(inputs, attrs, ctx):
    declared, scope = _split(inputs, attrs)
    branch = attrs["then_branch"] if bool(_scalar(declared[0], "If's condition")) \
        else attrs["else_branch"]
    return run_graph(branch, [], scope, ctx)


@onnx_op("Loop")
def loop(inputs, attrs, ctx):
    """for i < M while cond: (cond, v...) = body(i, cond, v...); scan outputs stacked."""
    declared, scope = _split(inputs, attrs)
    body = attrs["body"]
    trips = declared[0] if declared else None
    cond = declared[1] if len(declared) > 1 else None
    carried = list(declared[2:])
    n_out = len(body[GRAPH_KEY]["outputs"])
    n_scan = n_out - 1 - len(carried)
    limit = None if trips is None else int(_scalar(trips, "Loop's trip count"))
    going = True if cond is None else bool(_scalar(cond, "Loop's condition"))
    scans = [[] for _ in range(n_scan)]
    i = 0
    while going and (limit is None or i < limit):
        if i >= MAX_ITERATIONS:
            raise UnsupportedError(f"Loop ran {MAX_ITERATIONS} iterations and would run on "
                                   f"(trip count {limit}, condition still true); refused")
        outs = run_graph(body, [const(np.int64(i)), const(np.bool_(going))] + carried,
                         scope, ctx)
        going = bool(_scalar(outs[0], "Loop body's condition"))
        carried = outs[1:1 + len(carried)]
        for k, t in enumerate(outs[1 + len(carried):]):
            scans[k].append(t)
        i += 1
    specs = body[GRAPH_KEY]["outputs"][1 + len(carried):]
    return carried + [_stack(s, spec) for s, spec in zip(scans, specs)]


@onnx_op("Scan")
def scan(inputs, attrs, ctx):
    """States threaded through the body once per slice of the scan inputs (along their
    axes, forward or reverse); per-step outputs stacked along the output axes."""
    declared, scope = _split(inputs, attrs)
    body = attrs["body"]
    m = int(attrs["num_scan_inputs"])
    states, xs = list(declared[:len(declared) - m]), declared[len(declared) - m:]
    in_axes = [int(a) for a in attrs.get("scan_input_axes", [0] * m)]
    in_dirs = [int(d) for d in attrs.get("scan_input_directions", [0] * m)]
    n_scan = len(body[GRAPH_KEY]["outputs"]) - len(states)
    out_axes = [int(a) for a in attrs.get("scan_output_axes", [0] * n_scan)]
    out_dirs = [int(d) for d in attrs.get("scan_output_directions", [0] * n_scan)]
    axes = [a % x.ndim for a, x in zip(in_axes, xs)]
    lengths = {x.shape[a] for x, a in zip(xs, axes)}
    if len(lengths) > 1:
        raise ShapeError(f"Scan inputs have different sequence lengths {sorted(lengths)}")
    steps = lengths.pop() if lengths else 0
    outs = [[] for _ in range(n_scan)]
    for t in range(steps):
        slices = []
        for x, a, d in zip(xs, axes, in_dirs):
            index = [slice(None)] * x.ndim
            index[a] = steps - 1 - t if d else t
            slices.append(op("getitem", x, index=tuple(index)))
        res = run_graph(body, states + slices, scope, ctx)
        states = res[:len(states)]
        for k, y in enumerate(res[len(states):]):
            outs[k].append(y)
    stacked = []
    for parts, a, d, spec in zip(outs, out_axes, out_dirs,
                                 body[GRAPH_KEY]["outputs"][len(states):]):
        parts = parts[::-1] if d else parts
        rank = parts[0].ndim + 1 if parts else 1
        stacked.append(_stack(parts, spec, axis=a % rank))
    return states + stacked

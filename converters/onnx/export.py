"""IR graph -> ONNX ModelProto.

`export(graph_or_model, path=None, opset=17)`:

1. validate the IR and check every node (recursively through nested models and wrappers)
   against the handler registry; every unsupported layer is reported in ONE UnsupportedError;
2. walk the graph in order, calling each layer's handler once per call (shared layers reuse
   their initializers; nested models are inlined once per call);
3. remove back-to-back inverse Transposes (channels_last convs emit NHWC->NCHW->NHWC pairs);
4. name graph inputs after the IR input specs and outputs after the producing layers
   (`dense`, or `lstm_1`, `lstm_2` ... for a layer's later outputs, `layer_call1` for a
   shared layer's second call), with a symbolic batch dim and symbolic unknown dims;
5. set the ir_version the opset needs (onnxruntime rejects newer ones), metadata_props,
   and run `onnx.checker.check_model(full_check=True)`.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from modelkit.errors import ConfigError, IRError, ModelkitError, UnsupportedError
from modelkit.ir import Graph

from ..atomic import atomic_write
from . import handlers  # noqa: F401  (registers every handler)
from .context import ExportContext, LayerUnsupported, Tensor, value_info
from .registry import EXPORT_HANDLERS, check_graph, get_handler
from .versions import (IR_VERSION_FOR_OPSET, SUPPORTED_OPSETS, choose_opset, ir_version_for,
                       ort_limits, unsupported_for_target)



# -- checking ------------------------------------------------------------------------------

def _raise_unsupported(graph, opset, problems):
    lines = "\n".join(f"  - {p}" for p in problems)
    raise UnsupportedError(
        f"Cannot export model {graph.name!r} to ONNX (opset {opset}): "
        f"{len(problems)} unsupported layer(s):\n{lines}", problems)


# -- walking -------------------------------------------------------------------------------

class _Failed:
    """Stands for the outputs of a call that could not be emitted."""


def emit_graph(graph, ctx, feeds):
    """Emit every node of `graph` given Tensors for its inputs; return its output Tensors.

    Handler-time problems (LayerUnsupported) are collected in `ctx.problems`; calls that
    depend on a failed call are skipped, so one export reports them all.
    """
    env = {(name, 0): [t] for name, t in feeds.items()}
    for node, ci in graph.call_order():
        handler = get_handler(node.op)
        ins = [_lookup(env, ref, node) for ref in node.calls[ci]]
        if any(i is _Failed for i in ins):
            env[(node.name, ci)] = _Failed
            continue
        ctx.call_kwargs = node.kwargs_of(ci)        # this call's flags (ir.CALL_FLAGS)
        try:
            outs = list(handler.emit(node, ctx, ins))
        except LayerUnsupported as e:
            scope = "/".join(ctx._prefixes + [node.name])
            msg = str(e)
            head = f"{node.op} layer {scope!r}"
            ctx.problems.append(msg if msg.startswith(head) else f"{head}: {msg}")
            env[(node.name, ci)] = _Failed
            continue
        except ModelkitError:
            raise
        except Exception as e:      # a malformed config: name the layer, keep it modelkit's
            scope = "/".join(ctx._prefixes + [node.name])
            raise IRError(f"{node.op} layer {scope!r}: cannot be exported with this config: "
                          f"{type(e).__name__}: {e}") from None
        if handler.keeps_mask and ins and outs and ins[0].name in ctx.masks:
            ctx.masks.setdefault(outs[0].name, ctx.masks[ins[0].name])
        env[(node.name, ci)] = outs
    return [_lookup(env, ref, None) for ref in graph.outputs]


def _lookup(env, ref, node):
    outs = env.get((ref.node, ref.call_index))
    if outs is None:
        where = f"node {node.name!r}" if node is not None else "graph output"
        raise IRError(f"{where}: input {ref.node!r} call {ref.call_index} was not emitted")
    if outs is _Failed:
        return _Failed
    if not 0 <= ref.tensor_index < len(outs):
        where = f"Node {node.name!r}" if node is not None else "Graph output"
        raise IRError(f"{where}: {ref.node!r} call {ref.call_index} has {len(outs)} "
                      f"output(s), tensor index {ref.tensor_index} is out of range")
    return outs[ref.tensor_index]


# -- graph passes ---------------------------------------------------------------------------

def _perm(node):
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    return None


def remove_inverse_transposes(nodes, outputs):
    """Drop Transpose(Transpose(x, p1), p2) pairs that cancel (p1[p2[i]] == i).

    Consumers of the second Transpose read x directly; Transposes left without consumers are
    removed. `outputs` (graph output tensor names) is updated in place. Returns the new node
    list.
    """
    producer = {o: n for n in nodes for o in n.output}
    replace = {}

    def resolve(name):
        while name in replace:
            name = replace[name]
        return name

    for n in nodes:
        if n.op_type != "Transpose":
            continue
        src = resolve(n.input[0])
        p = producer.get(src)
        if p is None or p.op_type != "Transpose":
            continue
        p1, p2 = _perm(p), _perm(n)
        if p1 is None or p2 is None or len(p1) != len(p2):
            continue
        if all(p1[p2[i]] == i for i in range(len(p2))):
            replace[n.output[0]] = p.input[0]
    if not replace:
        return nodes
    for n in nodes:
        for i, name in enumerate(n.input):
            if name in replace:
                n.input[i] = resolve(name)
    outputs[:] = [resolve(o) for o in outputs]
    return remove_dead_nodes(nodes, outputs)


def node_reads(n):
    """The values a node reads: its inputs and what its subgraphs (If/Loop/Scan bodies) read
    from the enclosing graph."""
    from .importer.subgraph import free_names
    outer = [name for a in n.attribute if a.type == onnx.AttributeProto.GRAPH
             for name in free_names(a.g)]
    return [i for i in list(n.input) + outer if i]


def remove_dead_nodes(nodes, outputs):
    live = set(outputs)
    kept = []
    for n in reversed(nodes):
        if any(o in live for o in n.output if o):
            kept.append(n)
            live.update(node_reads(n))
    return kept[::-1]


def _name_outputs(ctx, nodes, tensors, wanted, input_names):
    """Give output i the name wanted[i]: rename its producer's output, or add an Identity."""
    producer = {o: n for n in nodes for o in n.output}
    claimed = set()
    for i, want in enumerate(wanted):
        t = tensors[i]
        if t == want:
            claimed.add(t)
            continue
        p = producer.get(t)
        if p is None or t in claimed or t in input_names:
            nodes.append(helper.make_node("Identity", [t], [want], name=ctx.unique(f"{want}/Identity")))
        else:
            for n in nodes:
                for k, name in enumerate(n.input):
                    if name == t:
                        n.input[k] = want
                for k, name in enumerate(n.output):
                    if name == t:
                        n.output[k] = want
            tensors[:] = [want if x == t else x for x in tensors]
            producer[want] = p
        claimed.add(want)
    return nodes


def _output_name(ref, input_names):
    name = ref.node
    if ref.node in input_names:
        name += "_out"
    if ref.call_index:
        name += f"_call{ref.call_index}"
    if ref.tensor_index:
        name += f"_{ref.tensor_index}"
    return name


def _input_dims(spec, n_inputs):
    dims = []
    for i, d in enumerate(spec.shape):
        if d is not None:
            dims.append(int(d))
        elif i == 0:
            dims.append("batch")
        elif i == 1 and len(spec.shape) == 3:
            dims.append("sequence" if n_inputs == 1 else f"{spec.name}_sequence")
        else:
            dims.append(f"{spec.name}_dim{i}")
    return dims


def _output_dims(t):
    if t.shape is None:
        return None
    return [d if d is not None else ("batch" if i == 0 else None) for i, d in enumerate(t.shape)]


# -- public ---------------------------------------------------------------------------------

def as_graph(model_or_graph):
    if isinstance(model_or_graph, Graph):
        return model_or_graph
    to_ir = getattr(model_or_graph, "to_ir", None)
    if callable(to_ir):
        g = to_ir()
        if isinstance(g, Graph):
            return g
        raise ConfigError(f"{type(model_or_graph).__name__}.to_ir() returned "
                          f"{type(g).__name__}, not a modelkit.ir.Graph")
    raise ConfigError(f"export() needs a modelkit.ir.Graph or a model with to_ir(), "
                      f"got {type(model_or_graph).__name__}")


def default_opset(graph):
    """17, or the newest opset an imported OnnxOp node of `graph` was written for."""
    found = [int(n.config.get("opset", 17)) for n in _all_nodes(graph) if n.op == "OnnxOp"]
    return max([17] + [o for o in found if o in SUPPORTED_OPSETS])


def _all_nodes(graph):
    for n in graph.nodes:
        yield n
        if n.subgraph is not None:
            yield from _all_nodes(n.subgraph)


def export(model_or_graph, path=None, opset=None, *, optimize=True, check=True, target_ort=None):
    """Convert an IR Graph (or any object with `to_ir()`) to an `onnx.ModelProto`.

    path: also write the model there (atomically). opset: 13..26 (None: 17, or the opset
    imported OnnxOp nodes were written for when newer, lowered to what the target runtime
    implements). target_ort: the onnxruntime version the file is for ("1.17"; None: the
    installed one); the file carries the IR version its opset needs, and an opset or IR
    version that runtime cannot load is refused (`versions.py`). optimize: remove
    back-to-back inverse Transposes. check: run the ONNX checker with full shape inference.
    Raises UnsupportedError listing every layer that cannot be exported.
    """
    graph = as_graph(model_or_graph)
    if opset is not None and not isinstance(opset, (int, np.integer)):
        raise ConfigError(f"ONNX opset {opset!r} is not supported; choose one of "
                          f"{SUPPORTED_OPSETS[0]}..{SUPPORTED_OPSETS[-1]}")
    limits = ort_limits(target_ort)
    requested = opset
    opset = choose_opset(opset, limits if target_ort is not None else None,
                         default=default_opset(graph))
    graph.validate()
    problems = check_graph(graph, opset)
    if problems and requested is None:     # not asked for: a newer opset the runtime has?
        top = min(SUPPORTED_OPSETS[-1], limits.max_opset if limits else SUPPORTED_OPSETS[-1])
        newer = next((o for o in range(opset + 1, top + 1) if not check_graph(graph, o)), None)
        if newer is not None:
            opset, problems = newer, []
    if problems:
        if limits is not None and opset < SUPPORTED_OPSETS[-1] \
                and not check_graph(graph, SUPPORTED_OPSETS[-1]):
            raise unsupported_for_target(problems, opset, limits)
        _raise_unsupported(graph, opset, problems)
    ir_version = ir_version_for(opset, limits)

    input_names = set(graph.input_names())
    wanted = [_output_name(r, input_names) for r in graph.outputs]
    for i, w in enumerate(wanted):          # the same tensor listed twice as an output
        if w in wanted[:i]:
            wanted[i] = f"{w}_{i}"
    ctx = ExportContext(opset, reserved=list(input_names) + wanted, emit_graph=emit_graph)
    ctx.problems = []
    feeds = {s.name: Tensor(s.name, s.shape, s.dtype) for s in graph.inputs}
    with ctx.push_graph(graph):
        outs = emit_graph(graph, ctx, feeds)
    if ctx.problems:
        _raise_unsupported(graph, opset, ctx.problems)

    out_names = [t.name for t in outs]
    nodes = ctx.nodes
    if optimize:
        nodes = remove_inverse_transposes(nodes, out_names)
    nodes = remove_dead_nodes(nodes, out_names)
    nodes = _name_outputs(ctx, nodes, out_names, wanted, input_names)
    used = {i for n in nodes for i in node_reads(n)}
    inits = [t for t in ctx.initializers if t.name in used]

    n_in = len(graph.inputs)
    # sequence / optional inputs and outputs keep the ONNX types they were imported with
    in_types = graph.metadata.get("onnx_input_types") or [None] * n_in
    out_types = graph.metadata.get("onnx_output_types") or [None] * len(outs)
    g_inputs = [value_info(s.name, k, s.dtype, _input_dims(s, n_in))
                for s, k in zip(graph.inputs, in_types)]
    g_outputs = [value_info(w, k, t.dtype, _output_dims(t))
                 for w, t, k in zip(wanted, outs, out_types)]
    onnx_graph = helper.make_graph(nodes, graph.name or "modelkit", g_inputs, g_outputs, inits)
    imports = [helper.make_opsetid("", opset)]
    imports += [helper.make_opsetid(d, v) for d, v in ctx.extra_domains.items()]
    model = helper.make_model(onnx_graph, opset_imports=imports, producer_name="modelkit",
                              producer_version=_modelkit_version())
    model.ir_version = ir_version
    meta = {"modelkit_version": _modelkit_version(),
            "source": str(graph.metadata.get("source", "modelkit")),
            "model_name": graph.name}
    for key in ("keras_version", "backend"):
        if key in graph.metadata:
            meta[key] = str(graph.metadata[key])
    helper.set_model_props(model, meta)
    if any(t.shape is None for t in outs):
        _fill_output_shapes(model)
    if check:
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:      # onnx ValidationError / InferenceError
            raise IRError(f"graph {graph.name!r}: the exported ONNX model fails the ONNX "
                          f"checker: {' '.join(str(e).split())[:2000]}") from None
    if path is not None:
        save_proto(model, path)
    return model


def _fill_output_shapes(model):
    """Outputs of unknown rank (raw OnnxOp nodes): take what ONNX shape inference finds."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for out in model.graph.output:
        if not out.type.tensor_type.HasField("shape") and out.name in types:
            t = types[out.name]
            if t.tensor_type.HasField("shape"):
                out.type.CopyFrom(t)


def _modelkit_version():
    from modelkit._version import __version__
    return __version__


def save_proto(model, path):
    """Write an `onnx.ModelProto` to `path` atomically."""
    with atomic_write(path, mode="wb") as f:
        f.write(model.SerializeToString())


def supported_ops():
    """The IR op names that have an export handler."""
    return EXPORT_HANDLERS.names()


__all__ = ["export", "save_proto", "check_graph", "emit_graph", "supported_ops", "SUPPORTED_OPSETS",
           "IR_VERSION_FOR_OPSET", "remove_inverse_transposes"]

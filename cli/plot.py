"""`modelkit plot MODEL OUT.png|OUT.svg`: draw a model file's graph (pydot + Graphviz).

Keras files (.h5/.hdf5/.keras) are drawn as `modelkit.utils.plot_model` draws the loaded
model (one box per layer, safe loading: Lambda code is refused, not run); ONNX files are
drawn by op: one box per node (`name: OpType`), the graph inputs and outputs, an arrow per
tensor (labelled with its shape under --show-shapes, from ONNX shape inference).
"""

from __future__ import annotations

import os

from .commands import register

EXAMPLE = """  modelkit plot model.h5 model.png --show-shapes
  modelkit plot model.onnx model.svg --rankdir LR"""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="model file (.h5, .hdf5, .keras, .onnx)")
    p.add_argument("out", metavar="OUT", help="picture to write (.png, .svg, .pdf, .dot)")
    p.add_argument("--show-shapes", action="store_true", help="show input/output shapes")
    p.add_argument("--show-dtype", action="store_true", help="show dtypes")
    p.add_argument("--hide-layer-names", action="store_true",
                   help="label boxes with the layer class / op type only")
    p.add_argument("--rankdir", default="TB", choices=("TB", "LR", "BT", "RL"),
                   help="direction of the graph (default TB: top to bottom)")
    p.add_argument("--expand-nested", action="store_true",
                   help="draw the layers of nested models (Keras files)")
    p.add_argument("--dpi", type=int, default=96, help="resolution of a PNG (default 96)")


def run(args):
    from modelkit.converters import formats
    from modelkit.utils import vis_utils
    vis_utils.image_format(args.out)
    vis_utils.require_pydot()
    fmt = formats.format_of(args.model)
    if fmt is formats.ONNX:
        from modelkit.converters.onnx.reading import read_model
        dot = onnx_to_dot(read_model(args.model), show_shapes=args.show_shapes,
                          show_dtype=args.show_dtype, show_names=not args.hide_layer_names,
                          rankdir=args.rankdir, dpi=args.dpi)
        vis_utils.write_dot(dot, args.out)
    else:
        from modelkit.saving import load_model
        model = load_model(args.model, compile=False)
        vis_utils.plot_model(model, to_file=args.out, show_shapes=args.show_shapes,
                             show_dtype=args.show_dtype,
                             show_layer_names=not args.hide_layer_names, rankdir=args.rankdir,
                             expand_nested=args.expand_nested, dpi=args.dpi)
    print(f"Drew {args.model} -> {args.out} ({os.path.getsize(args.out):,} bytes)")
    return 0


register("plot", add_arguments, run, example=EXAMPLE)


def _tensor_types(proto):
    """{tensor name: (shape text, dtype name)} from ONNX shape inference (best effort)."""
    import onnx
    from .summary import _value_info
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:   # noqa: BLE001 - a graph onnx cannot infer is still drawn
        inferred = proto
    g = inferred.graph
    return {vi.name: _value_info(vi) for vi in list(g.input) + list(g.value_info) + list(g.output)}


def onnx_to_dot(proto, show_shapes=False, show_dtype=False, show_names=True, rankdir="TB",
                dpi=96):
    """A pydot graph of an ONNX model drawn by op (subgraphs of If/Loop/Scan stay one box)."""
    from modelkit.utils.vis_utils import dot_quote, require_pydot
    pydot = require_pydot()
    g = proto.graph
    dot = pydot.Dot(graph_type="digraph", graph_name=dot_quote(g.name or "onnx"))
    dot.set("rankdir", rankdir)
    dot.set("dpi", str(dpi))
    dot.set_node_defaults(fontname="Helvetica")
    types = _tensor_types(proto) if (show_shapes or show_dtype) else {}
    initializers = {t.name for t in g.initializer}

    def describe(name):
        shape, dtype = types.get(name, ("?", "?"))
        parts = ([shape] if show_shapes else []) + ([dtype] if show_dtype else [])
        return " ".join(parts)

    producer = {}
    for vi in g.input:
        if vi.name in initializers:
            continue
        label = f"{vi.name}: input" + (f"\n{describe(vi.name)}" if types else "")
        dot.add_node(pydot.Node(dot_quote("in:" + vi.name), label=dot_quote(label),
                                shape="ellipse"))
        producer[vi.name] = "in:" + vi.name
    for i, node in enumerate(g.node):
        node_id = f"node:{i}"
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        label = f"{node.name}: {op}" if show_names and node.name else op
        dot.add_node(pydot.Node(dot_quote(node_id), label=dot_quote(label), shape="box"))
        for name in node.input:
            if name in producer:
                edge = pydot.Edge(dot_quote(producer[name]), dot_quote(node_id))
                if types:
                    edge.set("label", dot_quote(describe(name)))
                dot.add_edge(edge)
        for name in node.output:
            if name:
                producer[name] = node_id
    for vi in g.output:
        out_id = "out:" + vi.name
        dot.add_node(pydot.Node(dot_quote(out_id), label=dot_quote(f"{vi.name}: output"),
                                shape="ellipse"))
        if vi.name in producer:
            edge = pydot.Edge(dot_quote(producer[vi.name]), dot_quote(out_id))
            if types:
                edge.set("label", dot_quote(describe(vi.name)))
            dot.add_edge(edge)
    return dot

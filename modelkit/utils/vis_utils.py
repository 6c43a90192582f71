"""Pictures of models and of training: `plot_model` (Keras's, pydot + Graphviz) and
`plot_history` (matplotlib). Both come with the optional extra ``pip install 'modelkit[plot]'``
(pydot, matplotlib) plus the Graphviz programs (``apt-get install graphviz``, ``brew install
graphviz``, ``conda install graphviz``); a missing piece is a MissingDependencyError naming it.

    from modelkit.utils import plot_model
    plot_model(model, to_file="model.png", show_shapes=True)

The graph is read from the model's IR (`ir_bridge.to_ir`), so what is drawn is exactly what
is saved: one box per layer (and per model input), an arrow per connection, nested models
as one box or, with expand_nested, as a cluster of their own layers.
"""

from __future__ import annotations

import os
import shutil

from modelkit.errors import ConfigError, MissingDependencyError

__all__ = ["plot_model", "model_to_dot", "plot_history", "require_pydot", "require_matplotlib",
           "write_dot", "image_format", "dot_quote", "IMAGE_FORMATS"]

IMAGE_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "gif", "dot")
_INSTALL_GRAPHVIZ = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
                     "install graphviz; conda: conda install graphviz)")


def require_pydot():
    """The pydot module; MissingDependencyError when it is not installed."""
    try:
        import pydot
    except ImportError:
        raise MissingDependencyError(
            "plot_model needs the pydot package, which is not installed: pip install "
            "'modelkit[plot]' (or pip install pydot), and " + _INSTALL_GRAPHVIZ) from None
    return pydot


def require_matplotlib():
    """The matplotlib module; MissingDependencyError when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("plot_history needs matplotlib, which is not installed: "
                                     "pip install 'modelkit[plot]' (or pip install "
                                     "matplotlib)") from None
    return matplotlib


def _require_graphviz():
    if shutil.which("dot") is None:
        raise MissingDependencyError(
            "plot_model needs Graphviz's 'dot' program, which is not on PATH: "
            + _INSTALL_GRAPHVIZ)


def image_format(path):
    """The image format a path's extension names ('png', 'svg', ...); ConfigError if none."""
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if ext not in IMAGE_FORMATS:
        raise ConfigError(f"Cannot tell the image format of {os.fspath(path)!r}: use one of "
                          f"{', '.join('.' + f for f in IMAGE_FORMATS)}")
    return ext


def write_dot(dot, to_file):
    """Render a pydot graph to `to_file` (format from its extension), atomically."""
    from modelkit.saving import atomic_write
    fmt = image_format(to_file)
    if fmt == "dot":
        data = dot.to_string().encode("utf-8")
    else:
        _require_graphviz()
        try:
            data = dot.create(prog="dot", format="jpeg" if fmt == "jpg" else fmt)
        except FileNotFoundError:
            raise MissingDependencyError("Graphviz's 'dot' program could not be run: "
                                         + _INSTALL_GRAPHVIZ) from None
        except Exception as e:      # noqa: BLE001 - pydot wraps dot's own failures
            raise ConfigError(f"Graphviz could not draw {os.fspath(to_file)!r}: "
                              f"{' '.join(str(e).split())[:500]}") from None
    with atomic_write(to_file, mode="wb") as f:
        f.write(data)


# -- model graphs ---------------------------------------------------------------------------

def _shape_text(shape):
    if shape is None:
        return "?"
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_text(s) for s in shape) + "]"
    dims = ["None" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _layer_shapes(layer):
    out = []
    for attr in ("input_shape", "output_shape"):
        try:
            out.append(_shape_text(getattr(layer, attr)))
        except Exception:   # noqa: BLE001 - a shared layer has several: Keras says "multiple"
            out.append("multiple")
    return out


def dot_quote(text):
    """`text` as a quoted DOT identifier or label."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Drawer:
    def __init__(self, pydot, show_shapes, show_dtype, show_layer_names, expand_nested,
                 show_layer_activations, show_trainable):
        self.pydot = pydot
        self.show_shapes = show_shapes
        self.show_dtype = show_dtype
        self.show_layer_names = show_layer_names
        self.expand_nested = expand_nested
        self.show_layer_activations = show_layer_activations
        self.show_trainable = show_trainable
        self.drawn = set()
        self.range_names = None          # top-level layer names within layer_range

    def label(self, name, class_name, layer=None, shapes=None, dtype=None, config=None):
        head = f"{name}: {class_name}" if self.show_layer_names else class_name
        lines = [head]
        activation = (config or {}).get("activation")
        if self.show_layer_activations and isinstance(activation, str):
            lines[0] += f" ({activation})"
        if self.show_dtype:
            lines.append(f"dtype: {dtype or getattr(layer, 'dtype', '?')}")
        if self.show_shapes:
            ins, outs = shapes or _layer_shapes(layer)
            lines.append(f"input: {ins}  |  output: {outs}")
        if self.show_trainable and layer is not None:
            lines.append("trainable: " + ("yes" if getattr(layer, "trainable", True) else "no"))
        return "\n".join(lines)

    def node(self, container, node_id, label):
        self.drawn.add(node_id)
        container.add_node(self.pydot.Node(dot_quote(node_id), label=dot_quote(label), shape="box"))

    def in_range(self, name):
        """Whether a top-level layer is inside `layer_range` (all are without one)."""
        return self.range_names is None or name in self.range_names

    def _nested_model(self, node, layer):
        """The model whose layers an expanded box shows (a nested model, or the model a
        wrapper such as TimeDistributed holds), or None: drawn as one box."""
        if node.subgraph is None or not self.expand_nested:
            return None
        for candidate in (layer, getattr(layer, "layer", None)):
            if candidate is not None and hasattr(candidate, "get_layer"):
                return candidate
        return None

    def edge(self, container, src, dst):
        container.add_edge(self.pydot.Edge(dot_quote(src), dot_quote(dst)))

    def graph(self, container, graph, model, prefix, feeds):
        """Draw `graph` (its nodes' layers are `model`'s); feeds: dot ids standing for the
        graph's inputs (None: draw input boxes). Returns the dot ids of its outputs."""
        ids = {}
        if feeds is None:
            for spec in graph.inputs:
                node_id = prefix + spec.name
                ids[spec.name] = [node_id]
                if not self.in_range(spec.name):
                    continue
                shape = _shape_text(spec.shape)
                self.node(container, node_id, self.label(spec.name, "InputLayer",
                                                         shapes=(shape, shape), dtype=spec.dtype))
        else:
            for spec, src in zip(graph.inputs, feeds):
                ids[spec.name] = [src]
        for node in graph.nodes:
            layer = model.get_layer(node.name)
            sources = [ids[ref.node][min(ref.tensor_index, len(ids[ref.node]) - 1)]
                       for call in node.calls for ref in call if ref.node in ids]
            nested = self._nested_model(node, layer)
            if nested is not None:
                cluster = self.pydot.Cluster(dot_quote(prefix + node.name)[1:-1].replace(" ", "_"),
                                             label=dot_quote(f"{node.name}: {node.op}"),
                                             style="dashed")
                container.add_subgraph(cluster)
                first_call = [ids[r.node][min(r.tensor_index, len(ids[r.node]) - 1)]
                              for r in (node.calls[0] if node.calls else []) if r.node in ids]
                entry = self._entry_boxes(container, cluster, node, prefix, first_call)
                ids[node.name] = self.graph(cluster, node.subgraph, nested,
                                            f"{prefix}{node.name}/", entry)
                continue
            if not self.in_range(node.name):
                continue
            node_id = prefix + node.name
            self.node(container, node_id, self.label(node.name, node.op, layer,
                                                     config=node.config))
            for src in dict.fromkeys(sources):
                if src in self.drawn:
                    self.edge(container, src, node_id)
            ids[node.name] = [node_id]
        return [ids[ref.node][min(ref.tensor_index, len(ids[ref.node]) - 1)]
                for ref in graph.outputs if ref.node in ids]

    def _entry_boxes(self, container, cluster, node, prefix, sources):
        """The nested model's own input boxes (in its cluster), fed by the outer sources."""
        entry = []
        for i, spec in enumerate(node.subgraph.inputs):
            node_id = f"{prefix}{node.name}/{spec.name}"
            shape = _shape_text(spec.shape)
            self.node(cluster, node_id, self.label(spec.name, "InputLayer", shapes=(shape, shape),
                                                   dtype=spec.dtype))
            if i < len(sources) and sources[i] in self.drawn:
                self.edge(container, sources[i], node_id)
            entry.append(node_id)
        return entry


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True,
                 rankdir="TB", expand_nested=False, dpi=96, subgraph=False, layer_range=None,
                 show_layer_activations=False, show_trainable=False):
    """A `pydot.Dot` of the model's layer graph (Keras's `model_to_dot`). layer_range:
    [first, last] layer names (regular expressions, as Keras) bounding what is drawn."""
    pydot = require_pydot()
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ConfigError(f"rankdir must be 'TB', 'LR', 'BT' or 'RL', got {rankdir!r}")
    from modelkit.ir_bridge import to_ir
    graph = to_ir(model, include_weights=False, include_optimizer=False)
    if subgraph:
        dot = pydot.Cluster(style="dashed", graph_name=model.name)
    else:
        dot = pydot.Dot(graph_type="digraph", graph_name=dot_quote(model.name or "model"))
        dot.set("rankdir", rankdir)
        dot.set("dpi", str(dpi))
        dot.set("concentrate", "true")
        dot.set_node_defaults(shape="box", fontname="Helvetica")
    drawer = _Drawer(pydot, show_shapes, show_dtype, show_layer_names, expand_nested,
                     show_layer_activations, show_trainable)
    drawer.range_names = _layer_range(graph, layer_range)
    drawer.graph(dot, graph, model, "", None)
    return dot


def _layer_range(graph, layer_range):
    """The names of the inputs and layers from the first match of layer_range[0] to the
    last match of layer_range[1] (graph order), or None without a range."""
    if layer_range is None:
        return None
    import re
    if not (isinstance(layer_range, (list, tuple)) and len(layer_range) == 2
            and all(isinstance(p, str) for p in layer_range)):
        raise ConfigError(f"layer_range must be [first layer name, last layer name], got "
                          f"{layer_range!r}")
    names = [s.name for s in graph.inputs] + [n.name for n in graph.nodes]
    starts = [i for i, n in enumerate(names) if re.match(layer_range[0], n)]
    ends = [i for i, n in enumerate(names) if re.match(layer_range[1], n)]
    if not starts or not ends or ends[-1] < starts[0]:
        raise ConfigError(f"layer_range {list(layer_range)} matches no run of layers; the "
                          f"model's layers are {names}")
    return set(names[starts[0]:ends[-1] + 1])


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=True, rankdir="TB", expand_nested=False, dpi=96,
               layer_range=None, show_layer_activations=False, show_trainable=False):
    """Draw the model's layer graph to `to_file` (.png, .svg, .pdf, .jpg, .gif, .dot), as
    Keras's `plot_model` does. Returns an `IPython.display.Image` in a notebook, else None."""
    image_format(to_file)
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype,
                       show_layer_names=show_layer_names, rankdir=rankdir,
                       expand_nested=expand_nested, dpi=dpi, layer_range=layer_range,
                       show_layer_activations=show_layer_activations,
                       show_trainable=show_trainable)
    write_dot(dot, to_file)
    return _notebook_image(to_file)


def _notebook_image(path):
    if os.path.splitext(os.fspath(path))[1].lower() not in (".png", ".jpg", ".jpeg", ".gif"):
        return None
    try:
        from IPython import get_ipython
        from IPython.display import Image
    except ImportError:
        return None
    return Image(filename=os.fspath(path)) if get_ipython() is not None else None


# -- training curves --------------------------------------------------------------------------

def plot_history(history, to_file="history.png", title=None):
    """Draw per-epoch curves of a Keras history (`model.fit(...)` result, its `.history`
    dict, or the JSON `modelkit train --history` writes): one panel per quantity, training
    and validation (`val_*`) together. Written atomically; needs matplotlib."""
    history = getattr(history, "history", history)
    if not isinstance(history, dict) or not history:
        raise ConfigError("plot_history needs a non-empty {name: [value per epoch]} history")
    require_matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    ext = os.path.splitext(os.fspath(to_file))[1].lower().lstrip(".")
    if ext not in ("png", "svg", "pdf"):
        raise ConfigError(f"plot_history writes .png, .svg or .pdf, not {os.fspath(to_file)!r}")
    names = [k for k in history if not k.startswith("val_")]
    names += [k[4:] for k in history if k.startswith("val_") and k[4:] not in names]
    fig = Figure(figsize=(5 * len(names), 3.6), dpi=100)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for key, label in ((name, "training"), ("val_" + name, "validation")):
            values = history.get(key)
            if values:
                epochs = range(1, len(values) + 1)
                ax.plot(epochs, [float(v) for v in values], marker="o", markersize=3,
                        label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    from modelkit.saving import atomic_write
    with atomic_write(to_file, mode="wb") as f:
        fig.savefig(f, format=ext)

"""Saving and loading models: dispatch by file extension, atomic writes, safe loading.

The one user-facing module that reaches down into the converters (imported inside the
functions, so the converters stay independent of the layer classes).
"""

import json
import os

from .errors import ConfigError, ModelLoadError, ModelSaveError

_H5 = (".h5", ".hdf5", ".keras_h5")
_ONNX = (".onnx",)
_KERAS = (".keras",)


def _ext(path):
    return os.path.splitext(str(path))[1].lower()


def save_model(model, filepath, overwrite=True, include_optimizer=True, dialect="keras2",
               opset=None):
    """`model.save(path)`: `.h5`/`.hdf5` Keras legacy HDF5, `.keras` archive, `.onnx`."""
    from .ir_bridge import to_ir
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise ModelSaveError(f"{path} exists and overwrite=False")
    ext = _ext(path)
    graph = to_ir(model, include_optimizer=include_optimizer)
    if ext in _H5:
        _refuse_onnx_ops(graph, path)
        from .converters import hdf5
        hdf5.save_graph(graph, path, dialect=dialect, include_optimizer=include_optimizer)
    elif ext in _KERAS:
        from .converters import hdf5
        hdf5.save_keras_archive(graph, path)
    elif ext in _ONNX:
        from .converters import onnx as onnx_conv
        onnx_conv.export(graph, path=path, **({} if opset is None else {"opset": opset}))
    else:
        raise ModelSaveError(f"Cannot tell the format of {path!r} from its extension; use "
                             ".h5/.hdf5 (Keras HDF5), .keras or .onnx")


def _refuse_onnx_ops(graph, path):
    """Keras HDF5 has no form for imported ONNX ops: name every one of them."""
    from .errors import UnsupportedError

    def walk(g, prefix=""):
        for n in g.nodes:
            if n.op == "OnnxOp":
                yield f"{prefix}{n.name} ({n.config.get('op_type')})"
            if n.subgraph is not None:
                yield from walk(n.subgraph, f"{prefix}{n.name}/")
    found = list(walk(graph))
    if found:
        raise UnsupportedError(
            f"Cannot save {path} as Keras HDF5: {len(found)} imported ONNX op(s) have no Keras "
            f"layer form: {', '.join(found)}. Save as .onnx instead (it runs and trains in "
            "modelkit either way).", found)


def load_graph(filepath):
    """Any supported model file -> IR Graph."""
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file")
    ext = _ext(path)
    from .converters import hdf5
    if ext in _KERAS:
        return hdf5.load_keras_archive(path)
    if ext in _ONNX:
        from .converters import onnx as onnx_conv
        importer = getattr(onnx_conv, "import_graph", None)
        if importer is None:
            raise ModelLoadError(f"{path}: importing ONNX files is not supported yet")
        return importer(path)
    return hdf5.load_graph(path)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Load a model saved by modelkit or by Keras 2 / Keras 3 (.h5, .keras)."""
    from .ir_bridge import from_ir
    from .layers.serialization import safe_mode_scope
    graph = load_graph(filepath)
    with safe_mode_scope(safe_mode):
        try:
            return from_ir(graph, custom_objects=custom_objects, compile=compile)
        except ModelLoadError:
            raise
        except ConfigError as e:
            raise ModelLoadError(f"{os.fspath(filepath)}: {e}") from None


def save_weights(model, filepath, overwrite=True):
    from .converters import hdf5
    from .ir_bridge import to_ir
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise ModelSaveError(f"{path} exists and overwrite=False")
    hdf5.save_weights(to_ir(model, include_optimizer=False), path)


def load_weights(model, filepath, by_name=False, skip_mismatch=False):
    from .converters import hdf5
    from .ir_bridge import to_ir
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise ModelLoadError(f"{path}: no such file")
    graph = hdf5.load_weights_into(to_ir(model, include_optimizer=False), path, by_name=by_name,
                                   skip_mismatch=skip_mismatch)
    _set_from_graph(model, graph)


def _set_from_graph(model, graph):
    for node in graph.nodes:
        layer = model.get_layer(node.name)
        if node.subgraph is not None:
            _set_from_graph(layer, node.subgraph)
        elif node.weights:
            layer.set_weights([graph.weights[k] for k in node.weights])


def keras_config_of(model):
    """`model.get_config()`: the Keras 2 functional/sequential config dict."""
    from .converters import hdf5
    from .ir_bridge import to_ir
    return hdf5.graph_to_keras_config(to_ir(model, include_weights=True,
                                            include_optimizer=False))["config"]


def graph_from_keras_config(config):
    from .converters import hdf5
    if "class_name" not in config:
        kind = "Functional" if "input_layers" in config else "Sequential"
        config = {"class_name": kind, "config": config}
    return hdf5.keras_config_to_graph(config)


def model_to_json(model, **kwargs):
    from .converters import hdf5
    from .ir_bridge import to_ir
    cfg = hdf5.graph_to_keras_config(to_ir(model, include_optimizer=False))
    from . import __version__
    cfg.setdefault("keras_version", "2.15.0")
    cfg.setdefault("backend", "tensorflow")
    cfg["modelkit_version"] = __version__
    return json.dumps(cfg, **kwargs)


def model_from_json(json_string, custom_objects=None, safe_mode=True):
    from .converters import hdf5
    from .ir_bridge import from_ir
    from .layers.serialization import safe_mode_scope
    try:
        cfg = json.loads(json_string)
    except (json.JSONDecodeError, TypeError) as e:
        raise ModelLoadError(f"model JSON is not valid JSON: {e}") from None
    graph = hdf5.keras_config_to_graph(cfg, keras_version=cfg.get("keras_version"))
    with safe_mode_scope(safe_mode):
        return from_ir(graph, custom_objects=custom_objects, compile=False)

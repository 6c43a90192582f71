"""Saving and loading models through the format table (`converters.formats`), safe loading.

The one user-facing module that reaches down into the converters (imported inside the
functions, so the converters stay independent of the layer classes).
"""

import os

from .errors import ModelLoadError, ModelSaveError, UnsupportedError, as_load_error


def save_model(model, filepath, overwrite=True, include_optimizer=True, dialect="keras2",
               opset=None):
    """`model.save(path)`: `.h5`/`.hdf5` Keras legacy HDF5, `.keras` archive, `.onnx`."""
    from .converters import formats
    from .ir_bridge import to_ir
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise ModelSaveError(f"{path} exists and overwrite=False")
    formats.format_for_writing(path)          # a bad extension fails before converting
    graph = to_ir(model, include_optimizer=include_optimizer)
    formats.write_graph(graph, path, dialect=dialect, include_optimizer=include_optimizer,
                        opset=opset)


def load_graph(filepath):
    """Any supported model file -> IR Graph."""
    from .converters import formats
    return formats.read_graph(filepath)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Load a model saved by modelkit or by Keras 2 / Keras 3 (.h5, .keras), or any ONNX
    model (.onnx: imported as Keras layers where a pattern fits, `OnnxOp` layers elsewhere)."""
    return _model_from(load_graph, filepath, os.fsdecode(os.fspath(filepath)), custom_objects,
                       compile, safe_mode)


def import_onnx(source, custom_objects=None, compile=False, safe_mode=True):
    """An ONNX model (a path, serialized bytes or an `onnx.ModelProto`) -> trainable Model.

    A path goes through the format table like `load_model`; bytes and protos through the
    ONNX importer (`converters.onnx.import_graph`) directly."""
    if isinstance(source, (str, os.PathLike)):
        return load_model(source, custom_objects=custom_objects, compile=compile,
                          safe_mode=safe_mode)
    from .converters import onnx as onnx_conv
    where = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else "<ModelProto>"
    return _model_from(onnx_conv.import_graph, source, where, custom_objects, compile, safe_mode)


def _model_from(read_graph, source, where, custom_objects, compile, safe_mode):
    from .ir_bridge import from_ir
    from .layers.serialization import safe_mode_scope
    try:
        graph = read_graph(source)
        with safe_mode_scope(safe_mode):
            return from_ir(graph, custom_objects=custom_objects, compile=compile,
                           require_weights=True)
    except UnsupportedError as e:       # the importer's list of every unsupported op
        if where not in str(e):
            raise as_load_error(where, e) from None
        raise
    except Exception as e:      # noqa: BLE001 - every failure is modelkit's, named
        raise as_load_error(where, e) from None


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
        if node.subgraph is not None:       # a nested model, or a wrapper of one
            _set_from_graph(layer if hasattr(layer, "get_layer") else layer.layer,
                            node.subgraph)
        elif node.weights:
            layer.set_weights([graph.weights[k] for k in node.weights])


def atomic_write(path, mode=None):
    """The one atomic writer (`converters.atomic.atomic_write`), for the files the trainer
    side writes besides models (plots)."""
    from .converters.atomic import atomic_write as _atomic_write
    return _atomic_write(path, mode=mode)

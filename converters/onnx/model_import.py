"""`onnx_conv.import_model`: the public API's ONNX -> trainable Model in one call.

The converters know the IR, not the layer classes; building a Model from the imported IR is
the job of `modelkit.saving` (the one door to the files). This function is that door's
entry point reached from the converter package, imported lazily so that importing
`modelkit.converters.onnx` still leaves the trainer unloaded (tests/test_layering.py lists
this as its one exception arrow)."""


def import_model(path_or_proto, custom_objects=None, compile=False, safe_mode=True):
    """An ONNX model (a path, serialized bytes or an `onnx.ModelProto`) -> trainable Model.

    Same as `modelkit.models.import_onnx`; use `import_graph` for the IR alone."""
    from modelkit.saving import import_onnx
    return import_onnx(path_or_proto, custom_objects=custom_objects, compile=compile,
                       safe_mode=safe_mode)

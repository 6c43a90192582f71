"""`run_layer_test`: the checks every layer owes, in one place.

    model, y = run_layer_test(lambda: ELU(0.7), (3, 4), tmp_path,
                              reference=lambda x, layer: np.where(x > 0, x, 0.7 * np.expm1(x)))

One call checks, for a layer built by `factory` on inputs of `input_shape` (no batch; a
list of shapes for a layer called on a list of tensors, such as a merge layer):
the symbolic output shape(s) against `compute_output_shape`; `model.predict` against a
numpy `reference(x, layer)` (when given; every output of a layer with several); the config
round trip (`from_config`, `serialize` / `deserialize`); the IR round trip (`to_ir` /
`from_ir`); the HDF5 and `.keras` round trips (`save` / `load_model`); onnxruntime on the exported ONNX model (max abs diff <= 1e-5); and
the float64 finite-difference gradient w.r.t. the input and every trainable weight (the
weights only for integer inputs, such as an Embedding's indices).
"""

import warnings

import numpy as np

from modelkit.backend.gradcheck import assert_layer_gradients_close
from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import run
from modelkit.keras_config import normalise_layer_config
from modelkit.layers import Input, deserialize, serialize
from modelkit.models import Model, from_ir, load_model
from modelkit.nesting import flatten_structure


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)       # Keras 1 spellings
        return fn()


def run_layer_test(factory, input_shape, tmp_path, *, reference=None, x=None, weights=None,
                   rtol=1e-5, atol=1e-6, onnx=True, gradients=True, seed=0,
                   input_dtype=None, output_shape=None, keras3_drops=(),
                   formats=(".h5", ".keras")):
    """Run every standard check on `factory()`; returns (model, its prediction on x).

    x: the input batch (default: 4 standard-normal rows). weights(rng, shape): the weight
    values to set (default: uniform in [0.1, 0.9]). onnx / gradients: False for a layer that
    has no ONNX export or no gradient (say why at the call site). input_dtype: the Input's
    dtype (an integer one for indices; then pass x). output_shape: the expected output shape
    without the batch axis (a list of them for several outputs, as an RNN's return_state
    gives; `reference` then returns a list too), checked before anything else.
    keras3_drops: config keys the Keras 3 `.keras` format has no place for (Embedding's
    input_length), left out of the `.keras` config comparison. formats: the file formats to
    round-trip through (leave one out for a layer it cannot hold, and say why)."""
    rng = np.random.default_rng(seed)
    several = isinstance(input_shape, list)
    shapes = [tuple(s) for s in input_shape] if several else [tuple(input_shape)]
    if x is None:
        xs = [rng.standard_normal((4,) + s).astype(np.float32) for s in shapes]
        x = xs if several else xs[0]
    xs = x if several else [x]
    draw = weights or (lambda r, shape: r.uniform(0.1, 0.9, size=shape).astype(np.float32))

    layer = _quiet(factory)
    inputs = [Input(shape=s, dtype=input_dtype) for s in shapes]
    out = layer(inputs if several else inputs[0])
    outs = _as_list(out)                          # several for an RNN's return_state
    if output_shape is not None:
        assert [o.shape for o in outs] == [(None,) + s for s in _shapes(output_shape)], \
            f"output shapes {[o.shape for o in outs]}"
    batched = [(None,) + s for s in shapes]
    assert [o.shape for o in outs] == _shapes(
        layer.compute_output_shape(batched if several else batched[0])), \
        f"symbolic shapes {[o.shape for o in outs]} != compute_output_shape"
    model = Model(inputs if several else inputs[0], out)
    model.set_weights([draw(rng, np.shape(w)) for w in model.get_weights()])
    got = model.predict(x)
    for g, o in zip(_as_list(got), outs):
        assert g.shape == (len(xs[0]),) + tuple(o.shape[1:])
    if reference is not None:
        want = _as_list(reference(x, layer))
        assert len(want) == len(outs)
        for g, w in zip(_as_list(got), want):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol,
                                       err_msg="predict differs from the numpy reference")

    config = layer.get_config()
    assert _quiet(lambda: type(layer).from_config(config)).get_config() == config
    assert _quiet(lambda: deserialize(serialize(layer))).get_config() == config
    _assert_same(_quiet(lambda: from_ir(model.to_ir())).predict(x), got, "IR round trip")
    for ext in formats:
        path = tmp_path / f"{type(layer).__name__}{ext}"
        model.save(path)
        again = _quiet(lambda: load_model(path))
        _assert_same(again.predict(x), got, f"{ext} round trip")
        op = type(layer).__name__          # equal in the canonical Keras spelling files use
        drops = set(keras3_drops) if ext == ".keras" else set()
        assert _without(normalise_layer_config(op, again.layers[-1].get_config()), drops) == \
            _without(normalise_layer_config(op, config), drops), \
            f"{ext} round trip changes the config"

    if onnx:
        ran = run(onnx_conv.export(model), xs)
        assert len(ran) == len(outs)
        for r, g in zip(ran, _as_list(got)):
            np.testing.assert_allclose(r, g, atol=1e-5, rtol=0,
                                       err_msg="onnxruntime differs from predict")
    if gradients:
        assert not several, "gradients of several inputs: check the K function instead"
        _check_gradients(layer, x, shapes[0], input_dtype)
    return model, got


def _as_list(value):
    """The outputs flat (an RNN over a stack of cells nests its states per cell)."""
    return flatten_structure(value)


def _shapes(shape):
    """One shape or a list of shapes (a layer with several outputs) -> a list of tuples."""
    return [tuple(s) for s in shape] if shape and isinstance(shape[0], (tuple, list)) else \
        [tuple(shape)]


def _assert_same(a, b, what):
    for x, y in zip(_as_list(a), _as_list(b), strict=True):
        np.testing.assert_array_equal(x, y, err_msg=what)


def _without(config, keys):
    return {k: v for k, v in config.items() if k not in keys}


def _float64(config):
    """The config with every dtype float64, nested ones too (an RNN's cell, a wrapped layer)."""
    if isinstance(config, dict):
        return {k: "float64" if k == "dtype" else _float64(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_float64(v) for v in config]
    return config


def _check_gradients(layer, x, input_shape, input_dtype):
    """The same layer in float64 with the same weights, against finite differences."""
    twin = _quiet(lambda: type(layer).from_config(_float64(layer.get_config())))
    twin(Input(shape=input_shape, dtype="float64"))
    twin.set_weights([np.asarray(w, np.float64) for w in layer.get_weights()])
    floats = input_dtype is None or np.issubdtype(np.dtype(input_dtype), np.floating)
    assert_layer_gradients_close(twin, np.asarray(x[:2], np.float64), wrt_input=floats)

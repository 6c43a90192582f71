"""Merge layers (Add ... Dot, functional forms) and Keras 1's Merge layer / merge function:
shapes, numpy references, float64 gradients, masks, configs, IR/HDF5 round trips, errors,
real Keras fixtures and the spec's Merge samples."""

import pathlib
import re
import warnings

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.backend.gradcheck import assert_gradients_close
from modelkit.backend.tensor import Tensor
from modelkit.errors import ConfigError, ShapeError, UnsafeLoadError
from modelkit.layers import (Add, Average, Concatenate, Dense, Dot, Input, Masking, Maximum,
                             Merge, Minimum, Multiply, Subtract, add, average, concatenate,
                             deserialize, dot, maximum, merge, minimum, multiply, serialize,
                             subtract)
from modelkit.models import Model, Sequential, from_ir, load_model

from layer_testing import run_layer_test

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
rng = np.random.default_rng(7)


def r(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def batch_dot_reference(x, y, ax, ay):
    """Per sample: contract x's axis ax with y's axis ay (explicit loop over samples)."""
    out = []
    for n in range(x.shape[0]):
        out.append(np.tensordot(x[n], y[n], axes=([ax - 1], [ay - 1])))
    out = np.stack(out)
    return out.reshape(-1, 1) if out.ndim == 1 else out


def l2n(x, axis):
    return x / np.sqrt(np.maximum((x * x).sum(axis=axis, keepdims=True), 1e-12))


# -- shapes ------------------------------------------------------------------------------------

SHAPES = [   # (layer factory, input shapes without batch, expected output shape without batch)
    (Add, [(3,), (3,)], (3,)),
    (Add, [(4, 3), (3,)], (4, 3)),            # lower rank expanded at axis 1
    (Add, [(4, 1), (1, 5)], (4, 5)),          # broadcasting
    (Subtract, [(2, 3), (2, 3)], (2, 3)),
    (Multiply, [(3,), (3,), (3,)], (3,)),
    (Average, [(2, 3), (2, 3)], (2, 3)),
    (Maximum, [(3,), (3,)], (3,)),
    (Minimum, [(5,), (5,), (5,)], (5,)),
    (Concatenate, [(3,), (5,)], (8,)),
    (lambda: Concatenate(axis=1), [(2, 3), (4, 3)], (6, 3)),
    (lambda: Concatenate(axis=-2), [(2, 3), (4, 3)], (6, 3)),
    (lambda: Dot(axes=1), [(4,), (4,)], (1,)),
    (lambda: Dot(axes=-1), [(2, 4), (3, 4)], (2, 3)),
    (lambda: Dot(axes=(2, 1)), [(2, 4), (4, 5)], (2, 5)),
    (lambda: Dot(axes=[1, 1], normalize=True), [(3, 2), (3, 5)], (2, 5)),
    (lambda: Dot(axes=2), [(3, 4), (2, 4)], (3, 2)),
]


@pytest.mark.parametrize("factory,shapes,expected", SHAPES)
def test_symbolic_shape_and_compute_output_shape(factory, shapes, expected):
    layer = factory()
    ins = [Input(shape=s) for s in shapes]
    out = layer(ins)
    assert out.shape == (None,) + expected
    assert layer.compute_output_shape([(None,) + s for s in shapes]) == (None,) + expected
    assert layer.compute_output_shape([(7,) + s for s in shapes]) == (7,) + expected


def test_unknown_dims_stay_unknown():
    assert Concatenate(axis=1).compute_output_shape([(None, None, 3), (None, 4, 3)]) == \
        (None, None, 3)
    assert Add().compute_output_shape([(None, None, 3), (None, 5, 3)]) == (None, None, 3)


# -- numerics against numpy --------------------------------------------------------------------

A, B, C = r(4, 3), r(4, 3), r(4, 3)
X3 = r(4, 2, 3)
NUMERIC = [
    ("add", Add, [A, B, C], A + B + C),
    ("add_rank", Add, [A, X3], A[:, None, :] + X3),
    ("subtract", Subtract, [A, B], A - B),
    ("multiply", Multiply, [A, B, C], A * B * C),
    ("average", Average, [A, B, C], (A + B + C) / 3),
    ("maximum", Maximum, [A, B, C], np.maximum(np.maximum(A, B), C)),
    ("minimum", Minimum, [A, B], np.minimum(A, B)),
    ("concat", Concatenate, [A, r(4, 2)], None),
    ("concat_axis1", lambda: Concatenate(axis=1), [X3, r(4, 5, 3)], None),
]


@pytest.mark.parametrize("name,factory,xs,expected", NUMERIC, ids=[n[0] for n in NUMERIC])
def test_elementwise_and_concat_match_numpy(name, factory, xs, expected):
    layer = factory()
    if expected is None:
        expected = np.concatenate(xs, axis=layer.axis)
    got = layer([Tensor(x) for x in xs]).value
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    ins = [Input(shape=x.shape[1:]) for x in xs]
    model = Model(ins, factory()(ins))
    np.testing.assert_allclose(model.predict(xs), expected, rtol=1e-6, atol=1e-6)


DOTS = [
    ((4,), (4,), 1, False),
    ((2, 4), (3, 4), -1, False),
    ((2, 4), (4, 5), (2, 1), False),
    ((3, 2), (3, 5), (1, 1), True),
    ((2, 3, 4), (4, 2), (3, 1), False),
    ((4,), (4,), -1, True),
]


@pytest.mark.parametrize("s1,s2,axes,normalize", DOTS)
def test_dot_matches_reference(s1, s2, axes, normalize):
    x, y = r(3, *s1), r(3, *s2)
    ax, ay = (axes, axes) if isinstance(axes, int) else axes
    ax, ay = ax % (len(s1) + 1), ay % (len(s2) + 1)
    xr, yr = (l2n(x, ax), l2n(y, ay)) if normalize else (x, y)
    expected = batch_dot_reference(xr, yr, ax, ay)
    got = Dot(axes=axes, normalize=normalize)([Tensor(x), Tensor(y)]).value
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert got.shape[1:] == Dot(axes=axes).compute_output_shape([(None,) + s1,
                                                                  (None,) + s2])[1:]


def test_functional_forms_build_the_layers():
    a, b = Input((3,)), Input((3,))
    for fn, cls in [(add, Add), (subtract, Subtract), (multiply, Multiply), (average, Average),
                    (maximum, Maximum), (minimum, Minimum), (concatenate, Concatenate)]:
        out = fn([a, b], name=f"f_{cls.__name__.lower()}")
        layer = out._keras_history[0]
        assert type(layer) is cls and layer.name == f"f_{cls.__name__.lower()}"
    out = dot([a, b], axes=1, normalize=True)
    assert type(out._keras_history[0]) is Dot and out._keras_history[0].normalize
    assert concatenate([Input((2, 3)), Input((2, 4))], axis=-1).shape == (None, 2, 7)


# -- gradients ---------------------------------------------------------------------------------

GRADS = [
    ("add", lambda a, b: Add()([a, b]), [(3, 4), (3, 4)]),
    ("add_rank", lambda a, b: Add()([a, b]), [(3, 4), (3, 2, 4)]),
    ("subtract", lambda a, b: Subtract()([a, b]), [(3, 4), (3, 4)]),
    ("multiply", lambda a, b, c: Multiply()([a, b, c]), [(2, 3), (2, 3), (2, 3)]),
    ("average", lambda a, b: Average()([a, b]), [(2, 3), (2, 3)]),
    ("maximum", lambda a, b: Maximum()([a, b]), [(3, 4), (3, 4)]),
    ("minimum", lambda a, b: Minimum()([a, b]), [(3, 4), (3, 4)]),
    ("concat", lambda a, b: Concatenate(axis=1)([a, b]), [(2, 3, 2), (2, 1, 2)]),
    ("dot", lambda a, b: Dot(axes=(2, 1))([a, b]), [(2, 3, 4), (2, 4, 2)]),
    ("dot_normalize", lambda a, b: Dot(axes=1, normalize=True)([a, b]), [(3, 4), (3, 4)]),
]


@pytest.mark.parametrize("name,fn,shapes", GRADS, ids=[g[0] for g in GRADS])
def test_float64_gradients(name, fn, shapes):
    g = np.random.default_rng(3)
    arrays = [g.standard_normal(s) for s in shapes]
    if name in ("maximum", "minimum"):       # keep the inputs apart (no ties at the kink)
        arrays[1] = arrays[0] + np.where(g.random(shapes[0]) > 0.5, 0.5, -0.5)
    assert_gradients_close(fn, arrays)


# -- masks -------------------------------------------------------------------------------------

def test_elementwise_merge_masks_are_anded():
    m1 = np.array([[1, 1, 0], [1, 0, 0]], bool)
    m2 = np.array([[1, 0, 1], [1, 1, 1]], bool)
    x = [Tensor(r(2, 3, 4)), Tensor(r(2, 3, 4))]
    np.testing.assert_array_equal(Add().compute_mask(x, [m1, m2]), m1 & m2)
    np.testing.assert_array_equal(Multiply().compute_mask(x, [m1, None]), m1)
    assert Add().compute_mask(x, [None, None]) is None
    assert Add().compute_mask(x, None) is None
    assert Dot(axes=2).compute_mask(x, [m1, m2]) is None


def test_concatenate_masks_as_keras():
    m1 = np.array([[1, 1, 0], [1, 0, 0]], bool)
    x = [Tensor(r(2, 3, 4)), Tensor(r(2, 3, 5))]
    # features axis: an unmasked input counts as all-true; the result is m1
    np.testing.assert_array_equal(Concatenate().compute_mask(x, [m1, None]), m1)
    # time axis: masks are concatenated along time
    x2 = [Tensor(r(2, 3, 4)), Tensor(r(2, 2, 4))]
    m2 = np.array([[0, 1], [1, 1]], bool)
    got = Concatenate(axis=1).compute_mask(x2, [m1, m2])
    np.testing.assert_array_equal(got, np.concatenate([m1, m2], axis=1))
    got = Concatenate(axis=1).compute_mask(x2, [m1, None])
    np.testing.assert_array_equal(got, np.concatenate([m1, np.ones((2, 2), bool)], axis=1))
    assert Concatenate().compute_mask(x, [None, None]) is None


def test_masks_flow_through_a_model():
    a, b = Input((3, 2)), Input((3, 2))
    out = Concatenate()([Masking()(a), Masking()(b)])
    s = Add()([Masking()(a), b])
    model = Model([a, b], [out, s])
    xa, xb = r(2, 3, 2), r(2, 3, 2)
    xa[0, 2] = 0.0
    xb[1, 0] = 0.0
    _, masks = model._run_graph([Tensor(xa), Tensor(xb)])
    np.testing.assert_array_equal(masks[0], [[1, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(masks[1], [[1, 1, 0], [1, 1, 1]])


# -- configs, IR, HDF5 -------------------------------------------------------------------------

CONFIG_LAYERS = [Add, Subtract, Multiply, Average, Maximum, Minimum,
                 lambda: Concatenate(axis=1), lambda: Dot(axes=(1, 2), normalize=True),
                 lambda: Dot(axes=-1)]


@pytest.mark.parametrize("factory", CONFIG_LAYERS)
def test_config_round_trip(factory):
    layer = factory()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    again = deserialize(serialize(layer))
    assert type(again) is type(layer) and again.get_config() == config


ROUND_TRIP = [(Add, [(3,), (3,)]), (Subtract, [(3,), (3,)]), (Multiply, [(3,), (3,)]),
              (Average, [(3,), (3,), (3,)]), (Maximum, [(3,), (3,)]), (Minimum, [(3,), (3,)]),
              (Concatenate, [(3,), (4,)]), (lambda: Dot(axes=1, normalize=True), [(3,), (3,)]),
              (lambda: Dot(axes=(2, 2)), [(2, 3), (4, 3)])]


@pytest.mark.parametrize("factory,shapes", ROUND_TRIP)
def test_layer(factory, shapes, tmp_path):
    """Shapes and config/IR/.h5/.keras/ONNX round trips (gradients: test_float64_gradients)."""
    run_layer_test(factory, shapes, tmp_path, gradients=False)


# -- bad input ---------------------------------------------------------------------------------

def test_bad_inputs_raise_modelkit_errors_naming_the_layer():
    with pytest.raises(ShapeError, match=r"Add 'bad_add'.*\(3,\) and \(4,\)"):
        Add(name="bad_add")([Input((3,)), Input((4,))])
    with pytest.raises(ShapeError, match="Subtract 'bad_sub'.*exactly 2 inputs, got 3"):
        Subtract(name="bad_sub")([Input((3,))] * 3)
    with pytest.raises(ShapeError, match="Multiply 'bad_mul'.*list of input tensors"):
        Multiply(name="bad_mul")(Input((3,)))
    with pytest.raises(ShapeError, match="Concatenate 'bad_cat'.*matching shapes"):
        Concatenate(axis=-1, name="bad_cat")([Input((2, 3)), Input((4, 3))])
    with pytest.raises(ShapeError, match="Concatenate 'bad_rank'.*same rank"):
        Concatenate(name="bad_rank")([Input((2, 3)), Input((3,))])
    with pytest.raises(ShapeError, match="Concatenate 'bad_axis'.*axis 3 is out of range"):
        Concatenate(axis=3, name="bad_axis")([Input((2, 3)), Input((2, 3))])
    with pytest.raises(ShapeError, match=r"Dot 'bad_dot'.*size 3.*size 4"):
        Dot(axes=-1, name="bad_dot")([Input((3,)), Input((4,))])
    with pytest.raises(ShapeError, match="Dot 'dot_batch'.*batch axis"):
        Dot(axes=0, name="dot_batch")([Input((3,)), Input((3,))])
    with pytest.raises(ShapeError, match="Dot 'dot_three'.*exactly 2"):
        Dot(axes=1, name="dot_three")([Input((3,))] * 3)
    with pytest.raises(ConfigError, match="Dot 'dot_axes'.*pair of ints"):
        Dot(axes=(1, 2, 3), name="dot_axes")
    with pytest.raises(ConfigError, match="Concatenate 'cat_cfg'.*integer"):
        Concatenate(axis="1", name="cat_cfg")
    with pytest.raises(ShapeError, match="Add 'add_batch'.*different batch sizes"):
        Add(name="add_batch")([Tensor(r(2, 3)), Tensor(r(3, 3))])
    with pytest.raises(ShapeError, match="Add 'add_eager'.*incompatible shapes"):
        Add(name="add_eager")([Tensor(r(2, 3)), Tensor(r(2, 4))])


# -- Keras 1: merge() and Merge ----------------------------------------------------------------

def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("mode,replacement", [
    ("sum", "Add()"), ("mul", "Multiply()"), ("ave", "Average()"), ("max", "Maximum()"),
    ("concat", "Concatenate(axis=-1)"), ("dot", "Dot(axes=-1)"),
    ("cos", "Dot(axes=-1, normalize=True)")])
def test_merge_function_modes_match_numpy_and_warn(mode, replacement):
    a, b = Input((4,)), Input((4,))
    with pytest.warns(DeprecationWarning, match=r"merge.*deprecated.*" + re.escape(replacement)):
        out = merge([a, b], mode=mode)
    model = Model([a, b], out)
    x, y = r(3, 4), r(3, 4)
    expected = {
        "sum": x + y, "mul": x * y, "ave": (x + y) / 2, "max": np.maximum(x, y),
        "concat": np.concatenate([x, y], -1), "dot": (x * y).sum(-1, keepdims=True),
        "cos": (x * y).sum(-1, keepdims=True) / (np.linalg.norm(x, axis=-1, keepdims=True)
                                                 * np.linalg.norm(y, axis=-1, keepdims=True)),
    }[mode]
    np.testing.assert_allclose(model.predict([x, y]), expected, rtol=1e-5, atol=1e-6)


def test_merge_function_concat_axis_dot_axes_and_name():
    a, b = Input((2, 3)), Input((2, 4))
    out = _quiet(merge, [a, b], mode="concat", concat_axis=-1, name="joined")
    assert out.shape == (None, 2, 7) and out._keras_history[0].name == "joined"
    c, d = Input((2, 3)), Input((5, 3))
    out = _quiet(merge, [c, d], mode="dot", dot_axes=[[2], [2]])
    assert out.shape == (None, 2, 5)
    x, y = r(3, 2, 3), r(3, 5, 3)
    np.testing.assert_allclose(Model([c, d], out).predict([x, y]),
                               batch_dot_reference(x, y, 2, 2), rtol=1e-5, atol=1e-6)


def test_merge_function_callable_mode_infers_or_takes_output_shape():
    a, b = Input((4,)), Input((4,))
    out = _quiet(merge, [a, b], mode=lambda t: K.concatenate([t[0] * t[1], t[0]], axis=-1))
    assert out.shape == (None, 8)                     # inferred by running the function
    out2 = _quiet(merge, [a, b], mode=lambda t: t[0] - t[1], output_shape=(4,))
    out3 = _quiet(merge, [a, b], mode=lambda t: t[0] + t[1],
                  output_shape=lambda shapes: shapes[0])
    assert out2.shape == (None, 4) and out3.shape == (None, 4)
    x, y = r(2, 4), r(2, 4)
    got = Model([a, b], [out, out2, out3]).predict([x, y])
    np.testing.assert_allclose(got[0], np.concatenate([x * y, x], -1), rtol=1e-6)
    np.testing.assert_allclose(got[1], x - y, rtol=1e-6)
    np.testing.assert_allclose(got[2], x + y, rtol=1e-6)


def test_merge_function_errors():
    a, b = Input((4,)), Input((4,))
    with pytest.raises(ConfigError, match="unknown merge mode 'avg'"):
        _quiet(merge, [a, b], mode="avg")
    with pytest.raises(ShapeError, match="at least 2 tensors"):
        _quiet(merge, [a], mode="sum")
    with pytest.raises(ConfigError, match="output_shape is only used with a callable"):
        _quiet(merge, [a, b], mode="sum", output_shape=(4,))


def _branches(n_in=6, units=4):
    left = Sequential()
    left.add(Dense(units, input_dim=n_in))
    right = Sequential()
    right.add(Dense(units, input_dim=n_in))
    return left, right


@pytest.mark.parametrize("mode", ["sum", "mul", "ave", "max", "concat", "dot", "cos"])
def test_merge_layer_of_models_round_trips(mode, tmp_path):
    left, right = _branches()
    with pytest.warns(DeprecationWarning, match="Merge layer is deprecated.*use"):
        merged = Merge([left, right], mode=mode)
    model = Sequential()
    model.add(merged)
    model.add(Dense(3))
    xs = [r(5, 6), r(5, 6)]
    a, b = left.predict(xs[0]), right.predict(xs[1])
    merged_ref = {"sum": a + b, "mul": a * b, "ave": (a + b) / 2, "max": np.maximum(a, b),
                  "concat": np.concatenate([a, b], -1), "dot": (a * b).sum(-1, keepdims=True),
                  "cos": (a * b).sum(-1, keepdims=True) / np.linalg.norm(a, axis=-1,
                                                                         keepdims=True)
                  / np.linalg.norm(b, axis=-1, keepdims=True)}[mode]
    w, bias = model.layers[-1].get_weights()
    want = model.predict(xs)
    np.testing.assert_allclose(want, merged_ref @ w + bias, rtol=1e-4, atol=1e-5)
    assert model.input_shape == [(None, 6), (None, 6)]
    assert len(model.weights) == 6
    np.testing.assert_array_equal(from_ir(model.to_ir()).predict(xs), want)
    model.save(tmp_path / "m.h5")
    np.testing.assert_array_equal(load_model(tmp_path / "m.h5").predict(xs), want)
    model.save_weights(tmp_path / "w.h5")
    fresh = [np.zeros_like(v) for v in model.get_weights()]
    model.set_weights(fresh)
    model.load_weights(tmp_path / "w.h5")
    np.testing.assert_array_equal(model.predict(xs), want)


def test_merge_layer_callable_mode_serialises_only_as_bytecode(tmp_path):
    left, right = _branches()
    model = Sequential()
    model.add(_quiet(Merge, [left, right], mode=lambda x: x[0] - x[1]))
    model.add(Dense(2))
    xs = [r(3, 6), r(3, 6)]
    want = model.predict(xs)
    w, b = model.layers[-1].get_weights()
    np.testing.assert_allclose(want, (left.predict(xs[0]) - right.predict(xs[1])) @ w + b,
                               rtol=1e-4, atol=1e-5)
    model.save(tmp_path / "m.h5")
    with pytest.raises(UnsafeLoadError, match="safe_mode=False"):
        load_model(tmp_path / "m.h5")
    again = load_model(tmp_path / "m.h5", safe_mode=False)
    np.testing.assert_allclose(again.predict(xs), want, rtol=1e-6)


def test_merge_layer_called_on_tensors_and_its_errors():
    a, b = Input((3,)), Input((3,))
    layer = _quiet(Merge, mode="concat", concat_axis=-1, name="m_cat")
    out = layer([a, b])
    assert out.shape == (None, 6) and type(out._keras_history[0]) is Concatenate
    with pytest.raises(ConfigError, match="unknown merge mode 'plus'"):
        _quiet(Merge, mode="plus")
    with pytest.raises(ConfigError, match="layers\\[0\\] is a Dense, not a model"):
        _quiet(Merge, [Dense(3), Dense(3)], mode="sum")
    with pytest.raises(ConfigError, match="branch model 'no_shape' has no input shape"):
        _quiet(Merge, [Sequential([Dense(2)], name="no_shape"), _branches()[0]])
    with pytest.raises(ConfigError, match="at least 2 models"):
        _quiet(Merge, [_branches()[0]])
    left, right = _branches()
    built = _quiet(Merge, [left, right], mode="concat")
    with pytest.raises(ConfigError, match="first layer"):
        built([a, b])
    with pytest.raises(ShapeError, match="Add .merge.*incompatible shapes"):
        _quiet(Merge, [left, Sequential([Dense(5, input_dim=6)])], mode="sum")


# -- real Keras files --------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["keras2", "keras3"])
@pytest.mark.parametrize("name,cls", [("functional_multi", Concatenate), ("shared_nested", Add)])
def test_real_keras_fixtures(version, name, cls):
    path = FIXTURES / version / f"{name}.h5"
    data = np.load(FIXTURES / version / f"{name}.npz")
    model = load_model(path, compile=False)
    assert any(type(la) is cls for la in model.layers)
    xs = [data[f"x{i}"] for i in range(len(model.inputs))]
    got = model.predict(xs if len(xs) > 1 else xs[0])
    got = got if isinstance(got, list) else [got]
    for i, g in enumerate(got):
        np.testing.assert_allclose(g, data[f"y{i}"], atol=1e-5, rtol=0)


# -- Keras 1 files: merge nodes in a model config ---------------------------------------------

def _keras1_merge_json(merge_config):
    import json

    def inp(name):
        return {"name": name, "class_name": "InputLayer", "inbound_nodes": [],
                "config": {"batch_input_shape": [None, 3], "input_dtype": "float32",
                           "sparse": False, "name": name}}
    merge_config = {"name": "merge_1", "concat_axis": -1, "dot_axes": -1, "output_shape": None,
                    "output_shape_type": "raw", "output_mask": None, "output_mask_type": "raw",
                    "arguments": {}, **merge_config}
    config = {"class_name": "Model", "keras_version": "1.2.2", "config": {
        "name": "model_1",
        "layers": [inp("input_1"), inp("input_2"),
                   {"name": "merge_1", "class_name": "Merge", "config": merge_config,
                    "inbound_nodes": [[["input_1", 0, 0], ["input_2", 0, 0]]]}],
        "input_layers": [["input_1", 0, 0], ["input_2", 0, 0]],
        "output_layers": [["merge_1", 0, 0]]}}
    return json.dumps(config)


def _keras1_diff(t):
    return t[0] - 2 * t[1]


@pytest.mark.parametrize("merge_config,cls,reference", [
    ({"mode": "sum", "mode_type": "raw"}, Add, lambda x, y: x + y),
    ({"mode": "concat", "mode_type": "raw", "concat_axis": 1}, Concatenate,
     lambda x, y: np.concatenate([x, y], 1)),
    ({"mode": "cos", "mode_type": "raw", "dot_axes": [1, 1]}, Dot,
     lambda x, y: (x * y).sum(1, keepdims=True) / np.linalg.norm(x, axis=1, keepdims=True)
     / np.linalg.norm(y, axis=1, keepdims=True)),
])
def test_keras1_model_config_with_merge_nodes_loads(merge_config, cls, reference):
    from modelkit.models import model_from_json
    model = _quiet(model_from_json, _keras1_merge_json(merge_config))
    layer = model.get_layer("merge_1")
    assert type(layer) is cls
    x, y = r(2, 3), r(2, 3)
    np.testing.assert_allclose(model.predict([x, y]), reference(x, y), rtol=1e-5, atol=1e-6)


def test_keras1_merge_function_modes_follow_safe_mode():
    from modelkit.layers import custom_object_scope
    from modelkit.models import model_from_json
    named = _keras1_merge_json({"mode": "_keras1_diff", "mode_type": "function",
                                "output_shape": [3], "output_shape_type": "raw"})
    with custom_object_scope({"_keras1_diff": _keras1_diff}):
        model = _quiet(model_from_json, named)
    x, y = r(2, 3), r(2, 3)
    np.testing.assert_allclose(model.predict([x, y]), x - 2 * y, rtol=1e-5)
    stored_code = _keras1_merge_json({"mode": ["AAAA", None, None], "mode_type": "lambda"})
    with pytest.raises(UnsafeLoadError, match="merge_1.*safe_mode=False"):
        _quiet(model_from_json, stored_code)
    with pytest.raises(ConfigError, match="Merge 'merge_2'.*Keras 1 Merge of whole models"):
        _quiet(Merge.from_config, {"name": "merge_2", "layers": [{"class_name": "Sequential"}],
                                   "mode": "sum"})

"""Model-level persistence: IR, HDF5, JSON, .keras and weights round trips for every model
kind; real Keras files predict what Keras predicted; safe mode; custom objects."""

import json
import pathlib

import numpy as np
import pytest

from modelkit import backend as K
from modelkit.errors import ModelLoadError, UnsafeLoadError
from modelkit.layers import Activation, Dense, Dropout, Input, Lambda, Layer
from modelkit.models import (Model, Sequential, from_ir, load_model, model_from_json,
                             model_from_config)

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
rng = np.random.default_rng(3)


def sequential():
    model = Sequential([Dense(4, input_dim=3, activation="relu"), Dropout(0.2), Dense(2)])
    model.compile("adam", "mse", metrics=["mae"])
    return model, [rng.random((5, 3)).astype("float32")]


def functional_multi():
    a, b = Input(shape=(3,), name="a"), Input(shape=(2,), name="b")
    h = Dense(4, name="ha")(a)
    out1 = Dense(1, name="o1")(h)
    out2 = Dense(2, activation="softmax", name="o2")(K.concatenate([h, b], axis=-1))
    model = Model([a, b], [out1, out2])
    model.compile("sgd", ["mse", "categorical_crossentropy"], loss_weights=[1.0, 0.5])
    return model, [rng.random((5, 3)).astype("float32"), rng.random((5, 2)).astype("float32")]


def shared_layer():
    a, b = Input(shape=(3,)), Input(shape=(3,))
    shared = Dense(2, name="shared")
    model = Model([a, b], Activation("tanh")(shared(a) - shared(b)))
    return model, [rng.random((5, 3)).astype("float32"), rng.random((5, 3)).astype("float32")]


def nested():
    inner_in = Input(shape=(3,))
    inner = Model(inner_in, Dense(2, activation="relu", name="inner_dense")(inner_in),
                  name="inner")
    x1, x2 = Input(shape=(3,), name="x1"), Input(shape=(3,), name="x2")
    out = Dense(1, name="head")(K.concatenate([inner(x1), inner(x2)]))
    return Model([x1, x2], out, name="outer"), [rng.random((4, 3)).astype("float32"),
                                                   rng.random((4, 3)).astype("float32")]


def nested_sequential():
    branch = Sequential([Dense(3, input_dim=2, name="b1")], name="branch")
    inp = Input(shape=(2,), name="inp")
    return Model(inp, Dense(1, name="top")(branch(inp))), [rng.random((4, 2)).astype("float32")]


KINDS = {"sequential": sequential, "functional_multi": functional_multi,
         "shared_layer": shared_layer, "nested": nested, "nested_sequential": nested_sequential}


def assert_same_predictions(a, b, xs):
    pa, pb = a.predict(xs), b.predict(xs)
    for u, v in zip(pa if isinstance(pa, list) else [pa], pb if isinstance(pb, list) else [pb]):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_ir_round_trip_is_exact(kind):
    model, xs = KINDS[kind]()
    clone = from_ir(model.to_ir())
    assert_same_predictions(model, clone, xs)
    assert clone.get_config() == model.get_config()
    for u, v in zip(model.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert [la.name for la in clone.layers] == [la.name for la in model.layers]


@pytest.mark.parametrize("suffix", [".h5", ".hdf5", ".keras"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_file_round_trip_keeps_predictions(kind, suffix, tmp_path):
    model, xs = KINDS[kind]()
    path = tmp_path / f"m{suffix}"
    model.save(path)
    loaded = load_model(path)
    assert_same_predictions(model, loaded, xs)
    assert type(loaded).__name__ == type(model).__name__


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_json_and_weights_round_trip(kind, tmp_path):
    model, xs = KINDS[kind]()
    text = model.to_json()
    assert json.loads(text)["class_name"] in ("Sequential", "Functional")
    clone = model_from_json(text)
    model.save_weights(tmp_path / "w.h5")
    clone.load_weights(tmp_path / "w.h5")
    assert_same_predictions(model, clone, xs)
    again = model_from_config({"class_name": type(model).__name__, "config": model.get_config()})
    assert again.count_params() == model.count_params()


def test_compiled_model_keeps_its_training_config(tmp_path):
    model, xs = functional_multi()
    model.fit(xs, [rng.random((5, 1)), np.eye(2)[[0, 1, 0, 1, 1]]], epochs=1, verbose=0)
    model.save(tmp_path / "m.h5")
    loaded = load_model(tmp_path / "m.h5")
    assert loaded.optimizer.get_config()["name"] == "SGD"
    assert loaded.compiled_loss.weights == [1.0, 0.5]
    assert loaded.optimizer.iterations == model.optimizer.iterations
    uncompiled = load_model(tmp_path / "m.h5", compile=False)
    assert uncompiled.optimizer is None


def test_lambda_is_refused_by_default_and_loads_with_safe_mode_off(tmp_path):
    inp = Input(shape=(3,))
    model = Model(inp, Lambda(lambda t: t * 2 + 1, name="double")(inp))
    model.save(tmp_path / "lam.h5")
    with pytest.raises(UnsafeLoadError, match="'double'.*safe_mode=False"):
        load_model(tmp_path / "lam.h5")
    loaded = load_model(tmp_path / "lam.h5", safe_mode=False)
    x = rng.random((2, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x), x * 2 + 1, rtol=1e-6)


def test_real_keras_lambda_file_is_refused(tmp_path):
    for version in ("keras2", "keras3"):
        with pytest.raises(UnsafeLoadError, match="safe_mode=False"):
            load_model(FIXTURES / version / "lambda.h5")


def test_custom_layer_needs_custom_objects(tmp_path):
    class Scale(Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    inp = Input(shape=(2,))
    model = Model(inp, Scale(3.0, name="scale")(inp))
    model.save(tmp_path / "c.h5")
    with pytest.raises(ModelLoadError, match="'Scale'.*'scale'.*custom_objects"):
        load_model(tmp_path / "c.h5")
    loaded = load_model(tmp_path / "c.h5", custom_objects={"Scale": Scale})
    np.testing.assert_allclose(loaded.predict(np.ones((1, 2))), 3.0)


def test_missing_file_and_wrong_extension():
    with pytest.raises(ModelLoadError, match="Model file not found"):
        load_model("/nonexistent/m.h5")
    model, _ = sequential()
    with pytest.raises(Exception, match="extension"):
        model.save("/tmp/model.unknown_ext")


def _fixture_names(version):
    manifest = json.loads((FIXTURES / version / "manifest.json").read_text())
    return sorted(n for n, e in manifest["fixtures"].items()
                  if n != "lambda" and "skipped" not in e)


def _inputs_outputs(version, name):
    data = np.load(FIXTURES / version / f"{name}.npz")
    xs = [data[k] for k in sorted(k for k in data.files if k.startswith("x"))]
    ys = [data[k] for k in sorted(k for k in data.files if k.startswith("y"))]
    return xs, ys


@pytest.mark.parametrize("version,name", [(v, n) for v in ("keras2", "keras3")
                                          for n in _fixture_names(v)])
def test_real_keras_files_predict_what_keras_predicted(version, name, tmp_path):
    xs, ys = _inputs_outputs(version, name)
    model = load_model(FIXTURES / version / f"{name}.h5")
    preds = model.predict(xs if len(xs) > 1 else xs[0])
    preds = preds if isinstance(preds, list) else [preds]
    for p, y in zip(preds, ys):
        np.testing.assert_allclose(p, y, atol=1e-5, rtol=1e-5)
    # and what modelkit writes back predicts the same after reloading
    model.save(tmp_path / "again.h5")
    again = load_model(tmp_path / "again.h5").predict(xs if len(xs) > 1 else xs[0])
    for p, y in zip(again if isinstance(again, list) else [again], ys):
        np.testing.assert_allclose(p, y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "functional_multi", "cnn", "lstm", "shared_nested"])
def test_real_keras3_archives_and_weight_files(name):
    xs, ys = _inputs_outputs("keras3", name)
    x = xs if len(xs) > 1 else xs[0]
    archive = load_model(FIXTURES / "keras3" / f"{name}.keras")
    preds = archive.predict(x)
    for p, y in zip(preds if isinstance(preds, list) else [preds], ys):
        np.testing.assert_allclose(p, y, atol=1e-5, rtol=1e-5)
    for version in ("keras2", "keras3"):
        model = model_from_json((FIXTURES / version / f"{name}.json").read_text())
        model.load_weights(FIXTURES / version / f"{name}.weights.h5")
        xs2, ys2 = _inputs_outputs(version, name)
        preds = model.predict(xs2 if len(xs2) > 1 else xs2[0])
        for p, y in zip(preds if isinstance(preds, list) else [preds], ys2):
            np.testing.assert_allclose(p, y, atol=1e-5, rtol=1e-5)





def test_layer_applied_to_its_own_output_survives_every_round_trip(tmp_path):
    """d(d(x)): the second call of a shared layer depends on its first call."""
    from modelkit.converters import onnx as onnx_conv
    import onnxruntime as ort
    inp = Input(shape=(3,), name="x")
    d = Dense(3, activation="tanh", name="d")
    head = Dense(2, name="head")
    out = head(d(head(d(inp)) @ np.ones((2, 3), "float32")))
    model = Model(inp, out)
    x = rng.random((4, 3)).astype("float32")
    expected = model.predict(x)
    np.testing.assert_allclose(from_ir(model.to_ir()).predict(x), expected, rtol=1e-6)
    model.save(tmp_path / "m.h5")
    np.testing.assert_allclose(load_model(tmp_path / "m.h5").predict(x), expected, rtol=1e-6)
    proto = onnx_conv.export(model)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected, rtol=1e-5, atol=1e-6)


def test_written_configs_use_the_spellings_both_keras_versions_read(tmp_path):
    """Wrapped layers carry Keras's `module` key (Keras 3 needs it to find the class) and
    short loss names are written long ('mse' cannot be compiled by Keras 3)."""
    import h5py
    from modelkit.layers import LSTM, Bidirectional
    model = Sequential([Bidirectional(LSTM(2), input_shape=(3, 2)), Dense(1)])
    model.compile("sgd", "mse")
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
        training = json.loads(f.attrs["training_config"])
    inner = config["config"]["layers"][1]["config"]["layer"]
    assert inner["class_name"] == "LSTM" and inner["module"] == "keras.layers"
    assert training["loss"] == "mean_squared_error"
    assert load_model(tmp_path / "m.h5").compiled_loss.fn_names == ["mean_squared_error"]


def test_time_distributed_model_converts_straight_from_the_h5_file(tmp_path):
    """`modelkit convert m.h5 m.onnx` works on the IR read from the file alone."""
    import onnxruntime as ort
    from modelkit.converters import hdf5, onnx as onnx_conv
    from modelkit.layers import TimeDistributed
    frame = Input(shape=(4,))
    per_frame = Model(frame, Dense(3, activation="tanh", name="per_frame")(frame), name="frame_model")
    seq = Input(shape=(5, 4), name="frames")
    model = Model(seq, TimeDistributed(per_frame, name="td")(seq))
    model.save(tmp_path / "td.h5")
    graph = hdf5.load_graph(tmp_path / "td.h5")
    assert graph.node("td").subgraph is not None
    x = rng.random((2, 5, 4)).astype("float32")
    sess = ort.InferenceSession(onnx_conv.export(graph).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"frames": x})[0], model.predict(x), atol=1e-6)

"""TimeDistributed wrapping a whole model survives every file format, as Keras writes it.

tf-keras 2.x (and Keras 3) store the wrapped model's weights in the wrapper's group, named
after the inner layers (`td/frame_dense/kernel:0`); the config keeps the wrapper with the
model config as its `layer`. The inner model here flattens each step, so dropping the
wrapper (running the model on the whole sequence) could not give the same numbers."""

import os

import numpy as np
import pytest

from modelkit.converters import hdf5
from modelkit.converters import onnx as onnx_conv
from modelkit.converters.onnx.testing import run
from modelkit.layers import Dense, Flatten, Input, TimeDistributed
from modelkit.models import Model, Sequential, from_ir, load_model

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def step_model():
    inner = Sequential([Flatten(input_shape=(2, 3)), Dense(4, activation="tanh"), Dense(2)],
                       name="per_step")
    inp = Input((5, 2, 3))
    h = TimeDistributed(inner, name="td")(inp)
    return Model(inp, Dense(1, name="head")(Flatten()(h)))


def check_wrapper(model):
    td = model.get_layer("td")
    assert isinstance(td, TimeDistributed)
    assert [type(la).__name__ for la in td.layer.layers] == ["Flatten", "Dense", "Dense"]


@pytest.mark.parametrize("version,ext", [("keras2", ".h5"), ("keras3", ".h5"),
                                         ("keras3", ".keras")])
def test_real_keras_time_distributed_model_loads_with_keras_numbers(version, ext):
    base = os.path.join(FIXTURES, version, "td_model")
    model = load_model(base + ext)
    data = np.load(base + ".npz")
    td = model.get_layer("td")
    assert isinstance(td, TimeDistributed) and td.layer.name == "frame_model"
    assert [la.name for la in td.layer.layers if la.weights] == ["frame_dense", "frame_out"]
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5, rtol=1e-5)
    got = run(onnx_conv.export(hdf5.load_graph(base + ".h5")), [data["x0"]])[0]
    assert np.abs(got - data["y0"]).max() <= 1e-5


@pytest.mark.parametrize("version", ["keras2", "keras3"])
@pytest.mark.parametrize("name", ["td_seq_bn", "nested_td_mask"])
def test_real_keras_wrapped_models_in_odd_places(version, name):
    """A wrapped Sequential with BatchNormalization; a wrapped model inside a nested model
    (whose group then holds the wrapped model's weights) behind a mask: Keras's numbers in
    modelkit and in ONNX, and the Adam state restored."""
    base = os.path.join(FIXTURES, version, name)
    data = np.load(base + ".npz")
    model = load_model(base + ".h5")
    np.testing.assert_allclose(model.predict(data["x0"]), data["y0"], atol=1e-5, rtol=1e-5)
    assert model.optimizer.get_state()["iterations"] == 1
    got = run(onnx_conv.export(model), [data["x0"]])[0]
    assert np.abs(got - data["y0"]).max() <= 1e-5


@pytest.mark.parametrize("dialect", ["keras2", "keras3"])
def test_time_distributed_model_round_trips_through_h5(dialect, tmp_path):
    model = step_model()
    x = np.random.default_rng(0).random((4, 5, 2, 3)).astype("float32")
    want = model.predict(x)
    path = tmp_path / "td.h5"
    hdf5.save_graph(model.to_ir(), path, dialect=dialect)
    back = load_model(path)
    check_wrapper(back)
    np.testing.assert_allclose(back.predict(x), want, atol=1e-6)
    # the wrapped model's weights sit in the wrapper's group, named after its layers
    import h5py
    inner = [la.name for la in model.get_layer("td").layer.layers if la.weights]
    with h5py.File(path) as f:
        names = [n if isinstance(n, str) else n.decode()
                 for n in f["model_weights/td"].attrs["weight_names"]]
    assert names == [f"{n}/{v}:0" for n in inner for v in ("kernel", "bias")]


def test_time_distributed_model_round_trips_through_a_keras_archive(tmp_path):
    """As Keras 3 lays it out: the wrapped model's weights under `layers/<wrapper>/layer`."""
    import io
    import zipfile

    import h5py
    model = step_model()
    x = np.random.default_rng(2).random((3, 5, 2, 3)).astype("float32")
    model.save(tmp_path / "td.keras")
    back = load_model(tmp_path / "td.keras")
    check_wrapper(back)
    np.testing.assert_allclose(back.predict(x), model.predict(x), atol=1e-6)
    with zipfile.ZipFile(tmp_path / "td.keras") as z:
        with h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
            assert "layers/time_distributed/layer/layers/dense/vars/0" in f


def test_time_distributed_model_round_trips_through_ir_and_onnx():
    model = step_model()
    x = np.random.default_rng(1).random((3, 5, 2, 3)).astype("float32")
    want = model.predict(x)
    again = from_ir(model.to_ir())
    check_wrapper(again)
    np.testing.assert_allclose(again.predict(x), want, atol=1e-6)
    assert np.abs(run(onnx_conv.export(model), [x])[0] - want).max() <= 1e-5


def test_a_wrapped_model_weight_naming_no_inner_layer_is_refused(tmp_path):
    import h5py
    from modelkit.errors import ModelLoadError
    path = tmp_path / "td.h5"
    hdf5.save_graph(step_model().to_ir(), path)
    with h5py.File(path, "a") as f:
        g = f["model_weights/td"]
        names = [n if isinstance(n, str) else n.decode() for n in g.attrs["weight_names"]]
        g.move(names[0], "nowhere/kernel:0")
        names[0] = "nowhere/kernel:0"
        g.attrs["weight_names"] = [n.encode() for n in names]
    with pytest.raises(ModelLoadError, match="td.*nowhere"):
        load_model(path)


def _frame_model():
    fi = Input((6,), name="frame_in")
    return Model(fi, Dense(3, name="frame_out")(Dense(4, name="frame_dense")(fi)),
                 name="frame_model")


def _td_of_model():
    inp = Input((5, 6))
    return Model(inp, Dense(2, name="head")(Flatten()(TimeDistributed(_frame_model(),
                                                                      name="td")(inp))))


def _nested_model():
    inp = Input((6,))
    return Model(inp, Dense(2, name="head")(_frame_model()(inp)))


def _drop_from_archive(src, dst, group):
    """Copy a .keras archive without one group of its model.weights.h5."""
    import io
    import zipfile

    import h5py
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "model.weights.h5":
                buf = io.BytesIO(data)
                with h5py.File(buf, "r+") as f:
                    assert group in f
                    del f[group]
                data = buf.getvalue()
            zout.writestr(item, data)


@pytest.mark.parametrize("build,group,named", [
    (_td_of_model, "layers/time_distributed/layer/layers/dense", "'td'.*'frame_dense'"),
    (_td_of_model, "layers/time_distributed/layer/layers/dense_1", "'td'.*'frame_out'"),
    (_nested_model, "layers/functional/layers/dense", "'frame_model'.*'frame_dense'"),
    (_td_of_model, "layers/dense", "'head'"),
])
def test_a_keras_archive_missing_a_layers_weights_is_refused(build, group, named, tmp_path):
    """A layer whose weights group is missing would keep fresh random weights: the load
    fails naming the layer (and the model or wrapper it sits in)."""
    from modelkit.errors import ModelLoadError
    build().save(tmp_path / "full.keras")
    load_model(tmp_path / "full.keras")                     # the intact archive loads
    _drop_from_archive(tmp_path / "full.keras", tmp_path / "holed.keras", group)
    with pytest.raises(ModelLoadError, match=f"holed.keras.*{named}.*stores none"):
        load_model(tmp_path / "holed.keras")


@pytest.mark.parametrize("source", ["modelkit", "tf-keras"])
def test_an_h5_missing_a_wrapped_models_layer_is_refused(source, tmp_path):
    """The same hole in the tf-keras layout: the wrapper's group lacks one inner layer."""
    import shutil

    import h5py
    from modelkit.errors import ModelLoadError
    path = tmp_path / "td.h5"
    if source == "tf-keras":
        shutil.copy(os.path.join(FIXTURES, "keras2", "td_model.h5"), path)
    else:
        hdf5.save_graph(_td_of_model().to_ir(), path)
    with h5py.File(path, "a") as f:
        g = f["model_weights/td"]
        names = [n if isinstance(n, str) else n.decode() for n in g.attrs["weight_names"]]
        del g["frame_dense"]
        g.attrs["weight_names"] = [n.encode() for n in names if not n.startswith("frame_dense/")]
    with pytest.raises(ModelLoadError, match="'td'.*'frame_dense'.*stores none"):
        load_model(path)

"""ONNX -> Keras HDF5: PyTorch exports converted by modelkit load in real tf-keras 2.21 and
predict what PyTorch/onnxruntime predict (recorded by tests/fixtures/onnx/verify_h5_in_tf_keras.py
in tests/fixtures/onnx/h5/); the conversion's parity report; OnnxOp models refused."""

import importlib.util
import os

import numpy as np
import onnx
import pytest

from modelkit.cli.main import main as cli_main
from modelkit.converters import onnx as onnx_conv
from modelkit.errors import UnsupportedError
from modelkit.models import import_onnx, load_model
from modelkit.runtime.parity import check_conversion

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "onnx")
H5 = os.path.join(HERE, "h5")
def _verify_script():
    spec = importlib.util.spec_from_file_location("verify_h5_in_tf_keras",
                                                  os.path.join(HERE, "verify_h5_in_tf_keras.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NAMES = _verify_script().NAMES        # the files the tf-keras check recorded


def inputs(name):
    data = np.load(os.path.join(HERE, name.split(".")[0] + ".npz"))
    xs = [data[k] for k in sorted(data) if k.startswith("in_")]
    return xs if len(xs) > 1 else xs[0]


def tf_keras_outputs(name):
    data = np.load(os.path.join(H5, name + ".tf_keras.npz"))
    return [data[k] for k in sorted(data)]


def as_list(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def test_recorded_tf_keras_results_cover_every_file():
    with open(os.path.join(H5, "RESULTS.txt")) as f:
        text = f.read()
    for name in NAMES:
        assert f"{name}: loads" in text


@pytest.mark.parametrize("name", NAMES)
def test_onnx_to_h5_predicts_what_tf_keras_predicted(name, tmp_path):
    path = tmp_path / "m.h5"
    import_onnx(os.path.join(HERE, name + ".onnx")).save(path)
    for model in (load_model(path), load_model(os.path.join(H5, name + ".h5"))):
        got = as_list(model.predict(inputs(name), verbose=0))
        for g, want in zip(got, tf_keras_outputs(name)):
            np.testing.assert_allclose(g, want, atol=1e-5, rtol=1e-4)


def test_onnx_ops_refuse_h5_naming_them(tmp_path):
    model = import_onnx(os.path.join(HERE, "bilstm.ts.onnx"))
    with pytest.raises(UnsupportedError, match=r"1 imported ONNX op\(s\).*\(Gather\)") as e:
        model.save(tmp_path / "m.h5")
    assert len(e.value.items) == 1
    assert not os.path.exists(tmp_path / "m.h5")
    with pytest.raises(UnsupportedError, match=r"as a Keras archive: 1 imported ONNX op"):
        model.save(tmp_path / "m.keras")
    assert not os.path.exists(tmp_path / "m.keras")
    model.save(tmp_path / "m.onnx")                       # .onnx still works
    assert cli_main(["convert", str(tmp_path / "m.onnx"), str(tmp_path / "c.h5")]) != 0
    assert not os.path.exists(tmp_path / "c.h5")          # the CLI goes through the same door


def test_convert_cli_prints_parity_and_fails_over_tolerance(tmp_path, capsys):
    src = os.path.join(HERE, "cnn_bn.ts.onnx")
    assert cli_main(["convert", src, str(tmp_path / "a.h5")]) == 0
    out = capsys.readouterr().out
    assert "Parity check:" in out and "out_0: max |diff|" in out and "ok" in out
    assert cli_main(["convert", src, str(tmp_path / "b.h5"), "--tolerance", "0"]) == 1
    assert "TOO LARGE" in capsys.readouterr().out
    assert cli_main(["convert", src, str(tmp_path / "c.onnx"), "--no-check"]) == 0
    assert "Parity" not in capsys.readouterr().out


def test_onnx_to_onnx_round_trips_through_the_ir(tmp_path, capsys):
    src = os.path.join(HERE, "resnet_block.dynamo.onnx")
    assert cli_main(["convert", src, str(tmp_path / "m.onnx")]) == 0
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.producer_name == "modelkit"
    assert check_conversion(src, str(tmp_path / "m.onnx")).ok


def test_check_conversion_api_reports_a_real_difference(tmp_path):
    src = os.path.join(HERE, "mlp.ts.onnx")
    proto = onnx.load(src)
    w = onnx.numpy_helper.to_array(proto.graph.initializer[0]).copy()
    w += 0.05
    proto.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(w, proto.graph.initializer[0].name))
    onnx.save(proto, str(tmp_path / "changed.onnx"))
    report = check_conversion(src, str(tmp_path / "changed.onnx"))
    assert not report.ok and report.max_diff > 1e-3
    assert check_conversion(src, str(tmp_path / "changed.onnx"), tolerance=10.0).ok
    same = check_conversion(src, os.path.join(HERE, "mlp.dynamo.onnx"))
    assert same.ok and same.max_diff < 1e-6


def test_random_inputs_respect_index_ranges():
    from modelkit.runtime import InferenceSession
    from modelkit.runtime.parity import random_inputs
    path = os.path.join(HERE, "embed_lstm.ts.onnx")
    feeds = random_inputs(InferenceSession(path, device="cpu"), onnx.load(path), seed=1)
    (tokens,) = feeds.values()
    assert tokens.dtype == np.int64 and tokens.max() < 20 and tokens.max() >= 10


def test_keras_side_of_a_conversion_runs_in_modelkits_layers(tmp_path, monkeypatch, capsys):
    """An .h5 SRC is compared as modelkit's layers compute it, not as its own ONNX export:
    a difference between the two (here a planted +1 in the layers' predict) is reported."""
    from modelkit.layers import Dense, Embedding, Flatten, Input
    from modelkit.models import Model
    x = Input((4,))                     # a float input feeding an Embedding (Keras's default)
    model = Model(x, Dense(2)(Flatten()(Embedding(7, 3)(x))))
    model.save(tmp_path / "m.h5")
    assert cli_main(["convert", str(tmp_path / "m.h5"), str(tmp_path / "m.onnx")]) == 0
    assert "ok" in capsys.readouterr().out          # float indices drawn inside [0, 7)
    real_predict = Model.predict
    monkeypatch.setattr(Model, "predict", lambda self, *a, **k: real_predict(self, *a, **k) + 1)
    assert cli_main(["convert", str(tmp_path / "m.h5"), str(tmp_path / "n.onnx")]) == 1
    assert "TOO LARGE" in capsys.readouterr().out
    assert cli_main(["convert", str(tmp_path / "m.onnx"), str(tmp_path / "back.h5")]) == 1

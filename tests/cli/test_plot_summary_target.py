"""`modelkit plot`, `modelkit summary --json` and `modelkit convert --target-ort`, run as a
user runs them (the real console script in a subprocess) on real files."""

import json
import re
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_cli import mk, one_error_line

from modelkit.layers import Conv1D, Dense, Flatten, GlobalAveragePooling1D, Input
from modelkit.models import Model

needs_plot = pytest.mark.skipif(
    shutil.which("dot") is None or not __import__("importlib").util.find_spec("pydot"),
    reason="needs pydot and Graphviz's 'dot' program (pip install 'modelkit[plot]'; "
           "apt-get install graphviz)")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    x = Input((6, 3), name="seq")
    h = Conv1D(4, 3, padding="same", activation="gelu", name="conv")(x)
    y = Dense(2, activation="softmax", name="probs")(GlobalAveragePooling1D(name="pool")(h))
    model = Model(x, y, name="tiny")
    model.compile("adam", "categorical_crossentropy")
    model.save(d / "m.h5")
    model.save(d / "m.keras")
    model.save(d / "m.onnx")
    model.save(d / "m21.onnx", opset=21)     # ReduceMean in its opset-18 form (axes input)
    flat = Model(x, Dense(2, name="flat_probs")(Flatten(name="flat")(h)), name="flat")
    flat.save(d / "m19.onnx", opset=19)
    return d


@needs_plot
def test_plot_keras_and_onnx_files(files, tmp_path):
    proc = mk("plot", files / "m.h5", tmp_path / "h5.svg", "--show-shapes", check_rc=0)
    assert proc.stdout.startswith("Drew ")
    svg = (tmp_path / "h5.svg").read_text()
    for label in ("seq: InputLayer", "conv: Conv1D", "pool: GlobalAveragePooling1D",
                  "probs: Dense", "output: (None, 6, 4)"):
        assert label in svg.replace("&#160;", " "), label
    mk("plot", files / "m.keras", tmp_path / "k.png", "--rankdir", "LR", check_rc=0)
    data = (tmp_path / "k.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 2 * height                                  # left to right
    mk("plot", files / "m.onnx", tmp_path / "o.svg", "--show-shapes", check_rc=0)
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", (tmp_path / "o.svg").read_text())
    ops = {t.split(": ")[-1] for t in texts}
    assert {"Conv", "Transpose", "MatMul", "Softmax", "ReduceMean"} & ops >= {"Conv", "Softmax"}
    assert "seq: input" in texts and "probs: output" in texts and "(batch, 2)" in texts


def test_summary_json_from_every_format(files):
    infos = {}
    for name in ("m.h5", "m.keras", "m.onnx"):
        infos[name] = json.loads(mk("summary", files / name, "--json", check_rc=0).stdout)
    h5, keras, onnx_ = infos["m.h5"], infos["m.keras"], infos["m.onnx"]
    assert (h5["format"], keras["format"], onnx_["format"]) == ("hdf5", "keras", "onnx")
    for info in (h5, keras):
        assert info["inputs"] == [{"name": "seq", "shape": [None, 6, 3], "dtype": "float32"}]
        assert info["outputs"] == [{"name": "probs", "shape": [None, 2], "dtype": "float32"}]
        assert [(la["name"], la["class_name"], la["output_shape"], la["parameters"])
                for la in info["layers"]] == [
            ("seq", "InputLayer", [None, 6, 3], 0), ("conv", "Conv1D", [None, 6, 4], 40),
            ("pool", "GlobalAveragePooling1D", [None, 4], 0), ("probs", "Dense", [None, 2], 10)]
        assert info["layers"][1]["inbound"] == ["seq"]
        assert info["parameters"] == {"total": 50, "trainable": 50, "non_trainable": 0}
    assert onnx_["inputs"] == [{"name": "seq", "shape": ["batch", 6, 3], "dtype": "float32"}]
    assert onnx_["outputs"][0]["shape"] == ["batch", 2]
    assert onnx_["parameters"]["total"] >= 50 and onnx_["opsets"] == {"ai.onnx": 17}
    assert onnx_["ir_version"] == 8 and onnx_["ops"]["Conv"] == 1
    assert sum(onnx_["ops"].values()) == onnx_["nodes"]


def test_convert_for_an_older_onnxruntime(files, tmp_path):
    proc = mk("convert", files / "m.h5", tmp_path / "old.onnx", "--target-ort", "1.10",
              check_rc=0)
    assert "(opset 15, IR version 8," in proc.stdout
    m = onnx.load(tmp_path / "old.onnx")
    assert (m.opset_import[0].version, m.ir_version) == (15, 8)
    ort.InferenceSession(str(tmp_path / "old.onnx"), providers=["CPUExecutionProvider"])
    proc = mk("convert", files / "m.h5", tmp_path / "x.onnx", "--opset", "21", "--target-ort",
              "1.17")
    assert "onnxruntime 1.17 implements ONNX opsets up to 20" in one_error_line(proc, 1, "")
    proc = mk("convert", files / "m21.onnx", tmp_path / "y.onnx", "--target-ort", "1.13")
    line = one_error_line(proc, 1, "")      # ReduceMean's opset-18 form has no opset-17 twin
    assert "onnxruntime 1.13 implements ONNX opsets up to 17" in line
    assert re.search(r"OnnxOp layer '[^']*ReduceMean[^']*'.*imported from opset 21", line), line
    assert not (tmp_path / "y.onnx").exists()
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)
    for src, target, opset, ir in (("m21.onnx", "1.17", 20, 9), ("m19.onnx", "1.14", 18, 8)):
        dst = tmp_path / f"{target}.onnx"        # written down, and SRC/DST agree
        proc = mk("convert", files / src, dst, "--target-ort", target, check_rc=0)
        assert f"(opset {opset}, IR version {ir}," in proc.stdout, proc.stdout
        runs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(
            None, {"seq": x})[0] for p in (files / src, dst)]
        np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)
    proc = mk("convert", files / "m.h5", tmp_path / "c.h5", "--target-ort", "1.17")
    assert "--target-ort applies to an .onnx DST" in one_error_line(proc, 2, "")

"""The one format table (`modelkit.converters.formats`): detection, IR round trips, and the
same formats accepted by load_model, InferenceSession and the CLI."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelkit.converters import formats
from modelkit.errors import ModelLoadError, ModelSaveError
from modelkit.runtime import InferenceSession
from modelkit.saving import load_model

from test_hdf5_roundtrip import dense_chain

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
KERAS_FILES = [FIXTURES / "keras3" / "mlp.keras", FIXTURES / "keras3" / "mlp.h5",
               FIXTURES / "keras2" / "mlp.h5"]


@pytest.mark.parametrize("ext", [".h5", ".hdf5", ".keras"])
def test_keras_formats_round_trip_the_graph(tmp_path, ext):
    g = dense_chain()
    path = tmp_path / f"m{ext}"
    assert formats.write_graph(g, path) is formats.format_by_extension(path)
    back = formats.read_graph(path)
    assert [n.name for n in back.nodes] == [n.name for n in g.nodes]
    for key, arr in g.weights.items():
        np.testing.assert_array_equal(back.weights[key], arr)


def test_leading_bytes_decide_over_the_extension(tmp_path):
    g = dense_chain()
    formats.write_graph(g, tmp_path / "m.keras")
    formats.write_graph(g, tmp_path / "m.h5")
    shutil.copy(tmp_path / "m.keras", tmp_path / "archive.bin")
    shutil.copy(tmp_path / "m.h5", tmp_path / "really_hdf5.keras")
    assert formats.format_of(tmp_path / "archive.bin") is formats.KERAS
    assert formats.format_of(tmp_path / "really_hdf5.keras") is formats.HDF5
    np.testing.assert_array_equal(formats.read_graph(tmp_path / "archive.bin").weights["dense/kernel"],
                                  g.weights["dense/kernel"])


def test_unknown_and_missing_files_name_the_path(tmp_path):
    (tmp_path / "m.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match=r"m\.txt.*unknown model file extension '\.txt'"):
        formats.read_graph(tmp_path / "m.txt")
    with pytest.raises(ModelLoadError, match="Model file not found: .*nope.h5"):
        formats.read_graph(tmp_path / "nope.h5")
    with pytest.raises(ModelLoadError, match="directory"):
        formats.format_of(tmp_path)
    with pytest.raises(ModelSaveError, match=r"m\.bin.*\.h5, \.hdf5"):
        formats.write_graph(dense_chain(), tmp_path / "m.bin")
    with pytest.raises(ModelSaveError, match="does not exist"):
        formats.write_graph(dense_chain(), tmp_path / "no" / "m.h5")
    assert sorted(os.listdir(tmp_path)) == ["m.txt"]


@pytest.mark.parametrize("path", KERAS_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_entry_point_accepts_every_keras_format(path, tmp_path):
    """load_model, InferenceSession and `modelkit predict` agree on .h5 and .keras alike."""
    data = np.load(path.with_suffix(".npz"))
    x, want = data["x0"], data["y0"]
    np.testing.assert_allclose(load_model(path).predict(x), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(InferenceSession(path, device="cpu").predict(x), want,
                               rtol=1e-5, atol=1e-5)
    np.save(tmp_path / "x.npy", x)
    cli = Path(sys.executable).with_name("modelkit")
    subprocess.run([str(cli), "predict", str(path), "-i", str(tmp_path / "x.npy"),
                    "-o", str(tmp_path / "y.npy")], check=True, capture_output=True, timeout=120)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5, atol=1e-5)


def test_cli_convert_between_keras_formats_without_building_layers(tmp_path):
    """.h5 -> .keras -> .h5 through the IR only: no layer class is ever imported."""
    src = FIXTURES / "keras2" / "mlp.h5"
    mid, dst, copy = tmp_path / "m.keras", tmp_path / "m.h5", tmp_path / "copy.h5"
    code = ("import sys; from modelkit.cli.main import main; "
            f"assert main(['convert', {str(src)!r}, {str(mid)!r}]) == 0; "
            f"assert main(['convert', {str(mid)!r}, {str(dst)!r}]) == 0; "
            f"assert main(['convert', {str(src)!r}, {str(copy)!r}]) == 0; "
            "print(sorted(m for m in sys.modules if m.startswith(('modelkit.layers', "
            "'modelkit.engine'))))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120, cwd=tmp_path).stdout     # not the source tree
    assert out.strip().splitlines()[-1] == "[]"
    data = np.load(src.with_suffix(".npz"))
    np.testing.assert_allclose(load_model(dst).predict(data["x0"]), data["y0"], rtol=1e-5,
                               atol=1e-5)
    kept, orig = formats.read_graph(copy).training, formats.read_graph(src).training
    assert kept.optimizer == orig.optimizer and kept.loss == orig.loss     # .h5 -> .h5 keeps it

"""The README's main job, run as a user runs it: `modelkit quickstart`."""

import importlib.util
import json
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np


def test_quickstart_trains_saves_converts_and_agrees(tmp_path):
    script = pathlib.Path(sys.executable).parent / "modelkit"     # the installed console script
    command = [str(script)] if script.exists() else [sys.executable, "-m", "modelkit.cli.main"]
    proc = subprocess.run(command + ["quickstart", "--verbose", "2", "--out", str(tmp_path / "qs")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Epoch 20/20" in out
    acc = float(re.search(r"test accuracy (\d\.\d+)", out).group(1))
    assert acc >= 0.95
    agreement = float(re.search(r"class agreement (\d\.\d+)", out).group(1))
    assert agreement == 1.0
    diff = float(re.search(r"max abs diff ([0-9.e+-]+)", out).group(1))
    assert diff <= 1e-5
    q_acc = float(re.search(r"int8 dynamic quantization: test accuracy (\d\.\d+)", out).group(1))
    assert q_acc >= 0.9
    out_dir = tmp_path / "qs"
    for name in ("digits_mlp.h5", "digits_mlp.onnx", "digits_mlp.int8.onnx"):
        assert (out_dir / name).stat().st_size > 0
    history = json.loads((out_dir / "history.json").read_text())
    assert len(history["loss"]) == 20 and history["loss"][-1] < history["loss"][0]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert np.load(out_dir / "digits_sample.npy").shape == (5, 64)
    plots = importlib.util.find_spec("pydot") and importlib.util.find_spec("matplotlib") \
        and shutil.which("dot")
    if plots:       # the plot extra and Graphviz: the two pictures are kept
        for name in ("model.png", "history.png"):
            assert (out_dir / name).read_bytes()[:4] == b"\x89PNG"
    next_steps = out.split("next:")[1]
    for command in (f"modelkit summary {out_dir}/digits_mlp.h5",
                    f"modelkit predict {out_dir}/digits_mlp.onnx --input {out_dir}/digits_sample.npy",
                    f"modelkit serve {out_dir}/digits_mlp.onnx"):
        assert command in next_steps


def test_quickstart_default_folder_is_new(tmp_path, monkeypatch):
    from modelkit.cli.quickstart import _out_dir
    monkeypatch.chdir(tmp_path)
    assert _out_dir(None) == "modelkit-quickstart"
    assert _out_dir(None) == "modelkit-quickstart-2"
    assert (tmp_path / "modelkit-quickstart-2").is_dir()

"""The README's main job, run as a user runs it: `modelkit quickstart`."""

import pathlib
import re
import subprocess
import sys


def test_quickstart_trains_saves_converts_and_agrees(tmp_path):
    script = pathlib.Path(sys.executable).parent / "modelkit"     # the installed console script
    command = [str(script)] if script.exists() else [sys.executable, "-m", "modelkit.cli.main"]
    proc = subprocess.run(command + ["quickstart", "--verbose", "2", "--output-dir", str(tmp_path)],
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
    for name in ("digits_mlp.h5", "digits_mlp.onnx", "digits_mlp.int8.onnx"):
        assert (tmp_path / name).stat().st_size > 0

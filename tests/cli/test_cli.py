"""The real `modelkit` console script, run with subprocess."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelkit.cli.commands import COMMAND_MODULES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RNG = np.random.default_rng(1)
W = RNG.standard_normal((4, 3)).astype(np.float32)
B = RNG.standard_normal(3).astype(np.float32)
OWN_COMMANDS = ["convert", "predict", "summary", "bench", "train", "plot"]


def _exe():
    local = Path(sys.executable).parent / "modelkit"
    if local.exists():
        return [str(local)]
    found = shutil.which("modelkit")
    return [found] if found else [sys.executable, "-m", "modelkit.cli.main"]


def mk(*args, stdin=None, check_rc=None):
    proc = subprocess.run(_exe() + [str(a) for a in args], input=stdin, capture_output=True,
                          text=True, timeout=120)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def _save(model, path):
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    vi = helper.make_tensor_value_info
    mlp = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["z"]),
         helper.make_node("Relu", ["z"], ["y"])], "mlp",
        [vi("x", TensorProto.FLOAT, ["N", 4])], [vi("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "b")]),
        opset_imports=[helper.make_opsetid("", 17)])
    two = helper.make_model(helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"], ["prod"])],
        "two_io", [vi("a", TensorProto.FLOAT, ["N", 3]), vi("b", TensorProto.FLOAT, ["N", 3])],
        [vi("sum", TensorProto.FLOAT, ["N", 3]), vi("prod", TensorProto.FLOAT, ["N", 3])]),
        opset_imports=[helper.make_opsetid("", 17)])
    return {"mlp": _save(mlp, d / "mlp.onnx"), "two": _save(two, d / "two.onnx"), "dir": d}


def ref(x):
    return np.maximum(np.asarray(x, np.float32) @ W + B, 0)


def one_error_line(proc, code, start):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("modelkit: error: " + start), lines[0]
    return lines[0]


# -- help ---------------------------------------------------------------------------------

def test_help_lists_every_command():
    proc = mk("--help", check_rc=0)
    for name in COMMAND_MODULES:
        assert name in proc.stdout
    assert "example" in proc.stdout


@pytest.mark.parametrize("name", OWN_COMMANDS)
def test_subcommand_help_has_an_example(name):
    proc = mk(name, "--help", check_rc=0)
    assert f"usage: modelkit {name}" in proc.stdout
    assert "example:\n  modelkit " + name in proc.stdout


@pytest.mark.parametrize("name", [n for n in COMMAND_MODULES if n not in OWN_COMMANDS])
def test_other_commands_help_or_say_they_are_missing(name):
    proc = mk(name, "--help")
    if proc.returncode == 0:
        assert f"usage: modelkit {name}" in proc.stdout
    else:
        one_error_line(proc, 1, f"the '{name}' command is not available")


def test_usage_errors_are_one_line_exit_2(models):
    one_error_line(mk(), 2, "no command given")
    one_error_line(mk("frobnicate"), 2, "argument COMMAND: invalid choice: 'frobnicate'")
    line = one_error_line(mk("predict", models["mlp"]), 2,
                          "the following arguments are required: -i/--input")
    assert line.endswith("(see 'modelkit predict --help')")
    one_error_line(mk("bench", models["mlp"], "--iterations", "x"), 2,
                   "argument --iterations: invalid int value: 'x'")
    one_error_line(mk("predict", models["mlp"], "-i", "x.csv"), 2, "input file 'x.csv' must end in")


# -- errors -------------------------------------------------------------------------------

def test_missing_file_one_line_and_debug_traceback(tmp_path):
    missing = tmp_path / "nope.onnx"
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 4), np.float32))
    proc = mk("predict", missing, "--input", x)
    assert one_error_line(proc, 1, "Model file not found:").endswith("nope.onnx")
    assert proc.stdout == ""
    proc = mk("--debug", "predict", missing, "--input", x)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ModelLoadError" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("modelkit: error: Model file not found")
    proc = mk("summary", missing, "--debug")          # --debug after the command works too
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_bad_inputs_are_one_line_errors(models, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 5), np.float32))
    one_error_line(mk("predict", models["mlp"], "-i", bad), 1,
                   "Input 'x' dimension 1 must be 4 (expected shape (None, 4)), got 5")
    ints = tmp_path / "f.json"
    ints.write_text('{"instances": [{"a": [1, 2, 3]}]}')
    one_error_line(mk("predict", models["two"], "-i", ints), 1,
                   f"input file {ints}: instance 0 has no input 'b'")
    one_error_line(mk("predict", models["two"], "-i", "-", stdin="not json"), 1,
                   "stdin is not valid JSON")
    np.savez(tmp_path / "ab.npz", a=np.ones((2, 3)), b=np.ones((2, 3)))
    one_error_line(mk("predict", models["two"], "-i", tmp_path / "ab.npz", "-o", tmp_path / "y.npy"),
                   2, "The model has 2 outputs ['sum', 'prod']; a .npy file holds one array")


# -- predict ------------------------------------------------------------------------------

def test_predict_npy_to_npy(models, tmp_path):
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = mk("predict", models["mlp"], "--input", tmp_path / "x.npy", "--output",
              tmp_path / "y.npy", "--device", "cpu", check_rc=0)
    assert proc.stdout == "" and proc.stderr == ""
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref(x), rtol=1e-6, atol=1e-6)
    mk("predict", models["mlp"], "-i", tmp_path / "x.npy", "-o", tmp_path / "y2.npy",
       "--batch-size", "2", check_rc=0)
    np.testing.assert_array_equal(np.load(tmp_path / "y2.npy"), y)


def test_predict_npz_by_name_and_by_order(models, tmp_path):
    a = RNG.standard_normal((3, 3)).astype(np.float32)
    b = RNG.standard_normal((3, 3)).astype(np.float32)
    np.savez(tmp_path / "named.npz", b=b, a=a)
    np.savez(tmp_path / "ordered.npz", a, b)
    for src in ("named.npz", "ordered.npz"):
        mk("predict", models["two"], "-i", tmp_path / src, "-o", tmp_path / "out.npz", check_rc=0)
        with np.load(tmp_path / "out.npz") as z:
            assert z.files == ["sum", "prod"]
            np.testing.assert_allclose(z["sum"], a + b, rtol=1e-6)
            np.testing.assert_allclose(z["prod"], a * b, rtol=1e-6)


@pytest.mark.parametrize("payload", [
    lambda x: x.tolist(),
    lambda x: {"inputs": x.tolist()},
    lambda x: {"inputs": {"x": x.tolist()}},
    lambda x: {"instances": x.tolist()},
    lambda x: {"instances": [{"x": row} for row in x.tolist()]},
])
def test_predict_json_file_forms(models, tmp_path, payload):
    x = np.round(RNG.standard_normal((2, 4)), 3)
    (tmp_path / "x.json").write_text(json.dumps(payload(x)))
    mk("predict", models["mlp"], "-i", tmp_path / "x.json", "-o", tmp_path / "y.json", check_rc=0)
    out = json.loads((tmp_path / "y.json").read_text())
    assert list(out) == ["outputs"] and list(out["outputs"]) == ["y"]
    np.testing.assert_allclose(out["outputs"]["y"], ref(x), rtol=1e-5, atol=1e-6)


def test_predict_stdin_to_stdout(models):
    a = [[1.0, 2.0, 3.0]]
    b = [[0.5, 0.5, 2.0]]
    proc = mk("predict", models["two"], "--input", "-", stdin=json.dumps({"inputs": {"a": a, "b": b}}),
              check_rc=0)
    out = json.loads(proc.stdout)
    assert out == {"outputs": {"sum": [[1.5, 2.5, 5.0]], "prod": [[0.5, 1.0, 6.0]]}}
    assert proc.stderr == ""
    proc = mk("predict", models["two"], "-i", "-", "-o", "-", stdin=json.dumps([a, b]), check_rc=0)
    assert json.loads(proc.stdout)["outputs"]["sum"] == [[1.5, 2.5, 5.0]]


# -- summary, bench, convert --------------------------------------------------------------

def test_summary_onnx(models):
    out = mk("summary", models["mlp"], check_rc=0).stdout
    assert 'Model: "mlp"' in out
    assert "IR version: 8" in out and "ai.onnx 17" in out
    assert "x  (N, 4)  float32" in out and "y  (N, 3)  float32" in out
    assert "Ops (3 nodes):" in out
    for op in ("MatMul  1", "Add     1", "Relu    1"):
        assert op in out
    assert "Parameters: 15" in out


def test_summary_h5_layer_table():
    out = mk("summary", FIXTURES / "keras2" / "cnn.h5", check_rc=0).stdout
    assert 'Model: "cnn"' in out
    assert "Layer (type)" in out and "Output Shape" in out and "Param #" in out
    for row in ("conv2d (Conv2D)", "(None, 8, 8, 4)", "112", "max_pooling2d (MaxPooling2D)",
                "(None, 4, 4, 4)", "flatten (Flatten)", "dense (Dense)", "(None, 3)"):
        assert row in out
    assert "Total params: 335" in out and "Non-trainable params: 10" in out
    multi = mk("summary", FIXTURES / "keras2" / "functional_multi.h5", check_rc=0).stdout
    concat = multi[multi.index("concat (Concatenate)"):multi.index("out_reg (Dense)")]
    assert "Connected to" in multi and "dense_a[0][0]" in concat and "dense_b[0][0]" in concat


def test_summary_keras_archive_and_lambda_file():
    out = mk("summary", FIXTURES / "keras3" / "mlp.keras", check_rc=0).stdout
    assert "Layer (type)" in out and "(Dense)" in out and "Total params:" in out
    lam = FIXTURES / "keras2" / "lambda.h5"
    line = one_error_line(mk("summary", lam), 1, f"{lam}: Layer 'lambda'")
    assert "safe_mode=False" in line


def test_bench(models):
    proc = mk("bench", models["mlp"], "--iterations", "5", "--warmup", "1", "--batch-size", "4",
              "--device", "cpu", check_rc=0)
    out = proc.stdout
    assert "device:     cpu (CPUExecutionProvider)" in out
    assert "x (4, 4) float32" in out
    assert "p50" in out and "p90" in out and "p99" in out and " ms" in out
    assert "samples/s" in out
    one_error_line(mk("bench", models["mlp"], "--iterations", "0"), 2,
                   "--iterations must be at least 1")


def test_convert_onnx_quantize_dynamic(models, tmp_path):
    dst = tmp_path / "q.onnx"
    proc = mk("convert", models["mlp"], dst, "--quantize", "dynamic", check_rc=0)
    assert proc.stdout.startswith(f"Converted {models['mlp']} -> {dst} (opset")
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mk("predict", dst, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy", check_rc=0)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref(x), atol=0.1)


def test_convert_usage_errors(models, tmp_path):
    one_error_line(mk("convert", models["mlp"], tmp_path / "m.txt"), 2, "DST")
    one_error_line(mk("convert", models["mlp"], tmp_path / "m.h5", "--quantize", "dynamic"), 2,
                   "--quantize applies to an .onnx DST")
    one_error_line(mk("convert", tmp_path / "none.h5", tmp_path / "m.onnx"), 1,
                   "Model file not found")


def test_h5_to_onnx_then_predict_matches_fixture(tmp_path):
    src = FIXTURES / "keras2" / "mlp.h5"
    mk("convert", src, tmp_path / "mlp.onnx", check_rc=0)
    with np.load(FIXTURES / "keras2" / "mlp.npz") as z:
        data = dict(z)
    xs = [k for k in data if k.startswith("x")]
    ys = [k for k in data if k.startswith("y")]
    assert xs and ys, f"fixture arrays {sorted(data)} have no x/y"
    np.save(tmp_path / "x.npy", data[xs[0]])
    for model in (tmp_path / "mlp.onnx", src):     # the .h5 runs through load_graph + export
        mk("predict", model, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy", check_rc=0)
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), data[ys[0]], rtol=1e-4, atol=1e-5)


def test_convert_h5_to_h5_and_quantized_onnx(tmp_path):
    src = FIXTURES / "keras2" / "mlp.h5"
    with np.load(FIXTURES / "keras2" / "mlp.npz") as z:
        x, y = z["x0"], z["y0"]
    np.save(tmp_path / "x.npy", x)
    proc = mk("convert", src, tmp_path / "copy.h5", check_rc=0)
    assert "(Keras HDF5," in proc.stdout
    mk("predict", tmp_path / "copy.h5", "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy", check_rc=0)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), y, rtol=1e-4, atol=1e-5)
    proc = mk("convert", src, tmp_path / "q.onnx", "--quantize", "dynamic", "--opset", "13", check_rc=0)
    assert "(opset 13, dynamic int8 quantization," in proc.stdout
    mk("predict", tmp_path / "q.onnx", "-i", tmp_path / "x.npy", "-o", tmp_path / "yq.npy", check_rc=0)
    np.testing.assert_allclose(np.load(tmp_path / "yq.npy"), y, atol=0.1)

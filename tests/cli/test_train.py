"""`modelkit train`, run as a user runs it: the real console script in a subprocess."""

import importlib.util
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from test_cli import _exe, mk, one_error_line

from modelkit.errors import ShapeError
from modelkit.layers import Dense, Dropout, Embedding, Flatten, Input
from modelkit.models import Model, Sequential
from modelkit.saving import load_graph, load_model

COMMON = ["--loss", "categorical_crossentropy", "--optimizer", "adam", "--learning-rate", "0.01",
          "--batch-size", "16", "--verbose", "0"]


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    w = np.random.default_rng(99).normal(size=(4, 3))
    return x, np.eye(3, dtype=np.float32)[np.argmax(x @ w, 1)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    x, y = _data(160, 0)
    np.savez(d / "train.npz", x=x, y=y)
    np.savez(d / "val.npz", x=_data(40, 1)[0], y=_data(40, 1)[1])
    np.random.seed(3)
    model = Sequential([Dense(16, activation="relu", input_shape=(4,), name="hidden"),
                        Dropout(0.2, name="drop"), Dense(3, activation="softmax", name="probs")])
    model.save(d / "model.h5")
    (d / "model.json").write_text(model.to_json())
    return d


def _weights(path):
    g = load_graph(path)
    return g, {k: np.asarray(v) for k, v in g.weights.items()}


def _state(folder):
    return json.loads((folder / "checkpoint.json").read_text())


def test_train_lowers_the_loss_with_progress_bar_checkpoints_and_history(files, tmp_path):
    out, ckpt, hist = tmp_path / "trained.keras", tmp_path / "ckpt", tmp_path / "h.json"
    plot = ["--plot-history", tmp_path / "h.png"] if importlib.util.find_spec("matplotlib") else []
    proc = mk("train", files / "model.h5", "--data", files / "train.npz", "--validation-data",
              files / "val.npz", *COMMON[:-2], "--epochs", "4", "--metrics", "accuracy",
              "--out", out, "--checkpoint-dir", ckpt, "--history", hist, *plot, check_rc=0)
    if plot:        # the plot extra: loss and accuracy panels, training and validation curves
        png = (tmp_path / "h.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1000
    assert "Epoch 4/4" in proc.stdout and "10/10 [====" in proc.stdout      # the Keras progbar
    assert "val_accuracy" in proc.stdout and "saved" in proc.stdout
    history = json.loads(hist.read_text())
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history["loss"]) == 4 and history["loss"][-1] < history["loss"][0] * 0.8
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "checkpoint.json", "epoch-001.h5", "epoch-002.h5", "epoch-003.h5", "epoch-004.h5"]
    state = _state(ckpt)
    assert state["epoch"] == 4 and state["model"] == "epoch-004.h5" and not state["interrupted"]
    assert state["history"] == history
    trained = load_model(out)
    trained.compile(loss="categorical_crossentropy", optimizer="adam")   # .keras: no training config
    x, y = _data(40, 1)
    loss = trained.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(history["val_loss"][-1], rel=1e-5)
    for a, b in zip(trained.get_weights(), load_model(ckpt / "epoch-004.h5").get_weights()):
        np.testing.assert_array_equal(a, b)                 # OUT is the last epoch's model
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []    # no temp litter


def test_resume_equals_uninterrupted_training(files, tmp_path):
    data = ["--data", files / "train.npz", "--validation-split", "0.25", *COMMON, "--seed", "7"]
    full, part = tmp_path / "full", tmp_path / "part"
    mk("train", files / "model.h5", *data, "--epochs", "4", "--out", tmp_path / "a.h5",
       "--checkpoint-dir", full, "--save-best-only", check_rc=0)
    mk("train", files / "model.h5", *data, "--epochs", "2", "--out", tmp_path / "b2.h5",
       "--checkpoint-dir", part, "--save-best-only", check_rc=0)
    assert _state(part)["epoch"] == 2
    mk("train", "--resume", part, *data, "--epochs", "4", "--out", tmp_path / "b.h5", check_rc=0)
    ga, wa = _weights(tmp_path / "a.h5")
    gb, wb = _weights(tmp_path / "b.h5")
    assert wa.keys() == wb.keys()
    assert max(np.abs(wa[k] - wb[k]).max() for k in wa) <= 1e-6
    sa, sb = ga.training.optimizer_state, gb.training.optimizer_state
    assert sa["iterations"] == sb["iterations"] == 4 * 8
    assert sa["weights"].keys() == sb["weights"].keys() and len(sa["weights"]) >= 8
    assert max(np.abs(np.asarray(sa["weights"][k]) - np.asarray(sb["weights"][k])).max()
               for k in sa["weights"]) <= 1e-6
    assert _state(full)["history"] == _state(part)["history"]
    for folder in (full, part):      # best-only: best.h5 plus the newest epoch (for --resume)
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["best.h5", "checkpoint.json", "epoch-004.h5"], names
        state = _state(folder)
        val = state["history"]["val_loss"]
        assert state["best"]["value"] == pytest.approx(min(val))
        assert state["best"]["epoch"] == 1 + int(np.argmin(val))


def test_early_stopping_from_a_json_config_to_onnx(files, tmp_path):
    out, hist = tmp_path / "m.onnx", tmp_path / "h.json"
    # a learning rate too small to change a float32 weight: val_loss never improves
    proc = mk("train", files / "model.json", "--data", files / "train.npz", "--validation-split",
              "0.25", "--loss", "mse", "--optimizer", "sgd", "--learning-rate", "1e-30",
              "--epochs", "20", "--early-stopping-patience", "2", "--out", out,
              "--history", hist, "--verbose", "2", check_rc=0)
    history = json.loads(hist.read_text())
    assert len(history["loss"]) == 3, history
    assert "Epoch 3: early stopping" in proc.stdout
    import onnxruntime as ort
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.run(None, {sess.get_inputs()[0].name: _data(5, 2)[0]})[0].shape == (5, 3)


def test_ctrl_c_stops_after_the_batch_and_leaves_a_loadable_checkpoint(files, tmp_path):
    x = np.repeat(_data(160, 0)[0], 25, axis=0)
    np.savez(tmp_path / "big.npz", x=x, y=np.repeat(_data(160, 0)[1], 25, axis=0))
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.h5"
    proc = subprocess.Popen(_exe() + ["train", str(files / "model.h5"), "--data",
                                      str(tmp_path / "big.npz"), *COMMON, "--epochs", "500",
                                      "--checkpoint-dir", str(ckpt), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (ckpt / "checkpoint.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (ckpt / "checkpoint.json").exists(), proc.stderr
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert "Ctrl-C: stopping after this batch" in stderr and "interrupted in epoch" in stderr
    state = _state(ckpt)
    assert state["interrupted"] is True and state["model"] == "interrupted.h5"
    assert state["epoch"] == len(state["history"]["loss"]) >= 1
    assert 1 <= state["stopped_at"]["batches"] <= 250
    interrupted = load_model(ckpt / "interrupted.h5")
    np.testing.assert_array_equal(interrupted.get_weights()[0], load_model(out).get_weights()[0])
    assert interrupted.optimizer.iterations == load_graph(out).training.optimizer_state[
        "iterations"] > 0


def test_bad_data_is_one_error_naming_the_array_before_training(files, tmp_path):
    np.savez(tmp_path / "wide.npz", x=np.zeros((8, 5), np.float32), y=np.zeros((8, 3)))
    proc = mk("train", files / "model.h5", "--data", tmp_path / "wide.npz", *COMMON,
              "--out", tmp_path / "o.h5")
    line = one_error_line(proc, 1, "")
    assert "array 'x' has shape (8, 5)" in line and "input 'hidden_input' expects (None, 4)" in line
    assert "Epoch" not in proc.stdout and not (tmp_path / "o.h5").exists()
    np.savez(tmp_path / "short.npz", x=np.zeros((8, 4), np.float32), y=np.zeros((7, 3)))
    proc = mk("train", files / "model.h5", "--data", files / "train.npz", "--validation-data",
              tmp_path / "short.npz", *COMMON, "--out", tmp_path / "o.h5")
    line = one_error_line(proc, 1, "")
    assert "short.npz" in line and "'x' has 8 samples but 'y' has 7" in line
    proc = mk("train", files / "model.json", "--data", files / "train.npz", "--out",
              tmp_path / "o.h5")
    assert "has no training config, so --loss and --optimizer must be given" in \
        one_error_line(proc, 2, "")
    proc = mk("train", files / "model.h5", "--data", files / "train.npz", *COMMON,
              "--monitor", "val_loss", "--out", tmp_path / "o.h5")
    assert "--monitor val_loss needs --validation-data" in one_error_line(proc, 2, "")


def test_resume_refuses_what_is_not_a_checkpoint(tmp_path):
    from modelkit.cli.train_checkpoint import read_state
    from modelkit.errors import ModelLoadError
    with pytest.raises(ModelLoadError, match=r"checkpoint.json not found"):
        read_state(str(tmp_path))
    (tmp_path / "checkpoint.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelLoadError, match="not a modelkit training checkpoint"):
        read_state(str(tmp_path))
    state = {"format": "modelkit-train-checkpoint", "epoch": 2, "model": "../../etc/x.h5",
             "seed": 0, "history": {}}
    (tmp_path / "checkpoint.json").write_text(json.dumps(state))
    with pytest.raises(ModelLoadError, match="must name an epoch-NNN.h5"):
        read_state(str(tmp_path))
    state["model"] = "epoch-002.h5"
    (tmp_path / "checkpoint.json").write_text(json.dumps(state))
    with pytest.raises(ModelLoadError, match=r"epoch-002.h5 .* is missing"):
        read_state(str(tmp_path / "checkpoint.json"))


# -- the data checks, in process ------------------------------------------------------------

def _read(tmp_path, model, sparse=(), **arrays):
    from modelkit.cli.train_data import read_arrays
    np.savez(tmp_path / "d.npz", **arrays)
    return read_arrays(str(tmp_path / "d.npz"), model, sparse)


def _two_io():
    a, b = Input((3,), name="a"), Input((2, 2), name="b")
    h = Dense(4)(a)
    return Model([a, b], [Dense(2, name="p")(h), Dense(1, name="q")(Flatten()(b))])


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 3)), "y": np.zeros(4)}, r"no array 'x_a'.*inputs \['a', 'b'\]"),
    ({"x_a": np.zeros((4, 3)), "x_b": np.zeros((4, 2, 2)), "y_p": np.zeros((4, 2))},
     r"no array 'y_q'.*holds \['x_a', 'x_b', 'y_p'\]"),
    ({"x_a": np.zeros((4, 3)), "x_b": np.zeros((4, 2, 3)), "y_p": np.zeros((4, 2)),
      "y_q": np.zeros((4, 1))}, r"array 'x_b' has shape \(4, 2, 3\).*input 'b' expects "
                                r"\(None, 2, 2\)"),
    ({"x_a": np.array([["a", "b", "c"]] * 4), "x_b": np.zeros((4, 2, 2)), "y_p": np.zeros((4, 2)),
      "y_q": np.zeros((4, 1))}, r"array 'x_a' has dtype <U1.*input 'a' expects numbers"),
    ({"x_a": np.zeros((4, 3)), "x_b": np.zeros((4, 2, 2)), "y_p": np.zeros((4, 2)),
      "y_q": np.zeros((5, 1))}, r"'x_a' has 4 samples but 'y_q' has 5"),
    ({"x_a": np.zeros((4, 3)), "x_b": np.zeros((4, 2, 2)), "y_p": np.zeros((4, 3)),
      "y_q": np.zeros(4)}, r"array 'y_p' has shape \(4, 3\).*output 'p' gives \(None, 2\)"),
])
def test_data_errors_name_the_array_and_what_the_model_expects(tmp_path, arrays, message):
    with pytest.raises(ShapeError, match=message):
        _read(tmp_path, _two_io(), **arrays)


def test_data_forms_that_fit(tmp_path):
    got = _read(tmp_path, _two_io(), x_a=np.ones((4, 3)), x_b=np.ones((4, 2, 2)),
                y_p=np.ones((4, 2)), y_q=np.ones(4))
    assert [a.dtype for a in got.x] == [np.float32, np.float32] and len(got) == 4
    emb = Sequential([Embedding(10, 2, input_length=5), Flatten(), Dense(3, activation="softmax")])
    emb.build((None, 5))
    got = _read(tmp_path, emb, {emb.output_names[0]}, x=np.ones((6, 5)), y=np.arange(6) % 3)
    assert got.x[0].dtype == np.int32
    with pytest.raises(ShapeError, match="non-integer values.*int32 indices"):
        _read(tmp_path, emb, x=np.full((6, 5), 0.5), y=np.zeros((6, 3)))
    with pytest.raises(ShapeError, match="sparse_categorical_crossentropy"):
        _read(tmp_path, emb, x=np.ones((6, 5)), y=np.arange(6) % 3)


def test_imported_onnx_ops_refuse_keras_outputs_before_training(tmp_path):
    import argparse

    from modelkit.cli.commands import UsageError
    from modelkit.cli.train import _check_writable
    from modelkit.converters import onnx as onnx_conv
    from modelkit.layers import GlobalAveragePooling1D
    x = Input((6, 3), name="seq")
    Model(x, GlobalAveragePooling1D(name="pool")(x)).save(tmp_path / "m.onnx", opset=21)
    model = onnx_conv.import_model(tmp_path / "m.onnx")     # ReduceMean stays an ONNX op

    def args(out, ckpt=None):
        return argparse.Namespace(out=str(tmp_path / out), checkpoint_dir=ckpt)
    _check_writable(model, args("ok.onnx"))
    with pytest.raises(UsageError, match=r"--out .*o\.h5 cannot hold .*ReduceMean"):
        _check_writable(model, args("o.h5"))
    with pytest.raises(UsageError, match=r"--checkpoint-dir .*ReduceMean"):
        _check_writable(model, args("ok.onnx", str(tmp_path / "ck")))

"""`predict_files` and `modelkit predict ... --output DIR/` on the local engine: one output
shard per input shard, equal to a direct InferenceSession run; resume; refusals."""

import os

import numpy as np
import pytest
from distributed_kit import mlp_model, npy_shards, parquet_shards, read_output, two_io_path

from modelkit.cli.main import main
from modelkit.distributed import predict_files
from modelkit.errors import ConfigError
from modelkit.runtime import InferenceSession


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return mlp_model(tmp_path_factory.mktemp("m") / "mlp.onnx")


def test_npy_shards_equal_a_direct_run_and_resume(mlp, tmp_path):
    xs = npy_shards(tmp_path / "in", [300, 0, 1025, 7])
    seen = []
    report = predict_files(mlp, str(tmp_path / "in/*.npy"), str(tmp_path / "out"),
                           batch_size=64, progress=lambda r, s, p: seen.append((s.index, p)))
    sess = InferenceSession(mlp, device="cpu")
    names = [f"part-{i:02d}.npy" for i in range(4)]
    assert [os.path.basename(p) for _, p in seen] == names and [i for i, _ in seen] == [0, 1, 2, 3]
    assert (report.rows, report.skipped) == (1332, [])
    for name, x in zip(names, xs):
        y = np.load(tmp_path / "out" / name)
        assert y.shape == (len(x), 3) and y.dtype == np.float32
        if len(x):
            np.testing.assert_array_equal(y, sess.predict(x, batch_size=64))
    # resume: only the missing shard is computed; the others are not rewritten
    os.remove(tmp_path / "out" / names[2])
    stamps = {n: os.stat(tmp_path / "out" / n).st_mtime_ns for n in names if n != names[2]}
    again = predict_files(mlp, str(tmp_path / "in"), str(tmp_path / "out"), batch_size=64)
    assert [os.path.basename(p) for p in again.written] == [names[2]]
    assert len(again.skipped) == 3 and again.rows == 1025
    assert stamps == {n: os.stat(tmp_path / "out" / n).st_mtime_ns for n in stamps}
    np.testing.assert_array_equal(np.load(tmp_path / "out" / names[2]), sess.predict(xs[2]))


def test_an_interrupted_run_leaves_whole_shards_and_resumes(mlp, tmp_path, monkeypatch):
    xs = npy_shards(tmp_path / "in", [50, 60, 70])
    from modelkit.distributed import shards
    real = shards.write_shard

    def dying(path, outputs):
        if path.endswith("part-01.npy"):
            raise KeyboardInterrupt
        real(path, outputs)
    monkeypatch.setattr(shards, "write_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        predict_files(mlp, str(tmp_path / "in"), str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["_modelkit_predict.json", "part-00.npy"]
    monkeypatch.setattr(shards, "write_shard", real)
    report = predict_files(mlp, str(tmp_path / "in"), str(tmp_path / "out"))
    assert [os.path.basename(p) for p in report.written] == ["part-01.npy", "part-02.npy"]
    sess = InferenceSession(mlp, device="cpu")
    for i, x in enumerate(xs):
        np.testing.assert_array_equal(np.load(tmp_path / f"out/part-{i:02d}.npy"), sess.predict(x))


def test_multi_input_npz_and_parquet_shards(tmp_path):
    two = two_io_path(str(tmp_path))
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 40, 3)).astype(np.float32)
    os.makedirs(tmp_path / "z")
    np.savez(tmp_path / "z/s.npz", b=b, a=a)                # named after the inputs
    predict_files(two, str(tmp_path / "z/*.npz"), str(tmp_path / "zo"))
    got = read_output(str(tmp_path / "zo/s.npz"))
    np.testing.assert_array_equal(got["sum"], a + b)
    np.testing.assert_array_equal(got["prod"], a * b)
    pairs = parquet_shards(tmp_path / "p", [120, 33])
    predict_files(two, str(tmp_path / "p"), str(tmp_path / "po"), batch_size=16)
    for i, (a, b) in enumerate(pairs):
        got = read_output(str(tmp_path / f"po/part-{i:02d}.parquet"))
        assert sorted(got) == ["prod", "sum"]
        np.testing.assert_array_equal(got["sum"], a + b)
        np.testing.assert_array_equal(got["prod"], a * b)


def test_another_models_folder_and_missing_columns_are_refused(mlp, tmp_path):
    npy_shards(tmp_path / "in", [5])
    predict_files(mlp, str(tmp_path / "in"), str(tmp_path / "out"))
    other = mlp_model(tmp_path / "other.onnx", width=8)
    with pytest.raises(ConfigError, match="holds predictions of another model"):
        predict_files(other, str(tmp_path / "in"), str(tmp_path / "out"))
    two = two_io_path(str(tmp_path))
    parquet_shards(tmp_path / "p", [5])
    with pytest.raises(ConfigError, match=r"part-00.parquet has no column 'x' \(columns: "):
        predict_files(two, str(tmp_path / "p"), str(tmp_path / "o2"), input_columns=["a", "x"])
    with pytest.raises(ConfigError, match=r"part-00.npy has no column for the model "
                                          r"input\(s\) \['a', 'b'\]"):
        predict_files(two, str(tmp_path / "in"), str(tmp_path / "o2"))
    with pytest.raises(ConfigError, match="engine must be one of"):
        predict_files(mlp, str(tmp_path / "in"), str(tmp_path / "o3"), engine="spark")


def test_cli_shards_with_progress_and_resume(mlp, tmp_path, capsys):
    npy_shards(tmp_path / "in", [20, 30])
    args = ["predict", mlp, "--input", str(tmp_path / "in/*.npy"), "--output",
            str(tmp_path / "out") + "/", "--batch-size", "8"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "[1/2]" in err and "part-00.npy: 20 rows" in err and "[2/2]" in err
    assert "wrote 2 shards (50 rows)" in err
    os.remove(tmp_path / "out/part-01.npy")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "resuming: 1 of 2 shards already done" in err and "wrote 1 shard (30 rows)" in err
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().err


@pytest.mark.parametrize("extra, match", [
    (["--output", "y.npy"], "--output must be a folder"),
    (["--output", "-"], "--output must be a folder"),
    (["--num-workers", "0", "--output", "o/"], "--num-workers must be a positive integer"),
    (["--num-workers", "2", "--output", "o/"], "--address and --num-workers need --engine ray"),
    (["--address", "auto", "--output", "o/"], "--address and --num-workers need --engine ray"),
])
def test_cli_shard_usage_errors(mlp, tmp_path, capsys, extra, match):
    npy_shards(tmp_path / "in", [2])
    assert main(["predict", mlp, "--input", str(tmp_path / "in/*.npy"), *extra]) == 2
    assert match in capsys.readouterr().err


def test_cli_ray_options_need_shards(mlp, tmp_path, capsys):
    npy_shards(tmp_path, [2])
    x = str(tmp_path / "part-00.npy")
    assert main(["predict", mlp, "-i", x, "-o", str(tmp_path / "y.npy"), "--engine", "ray"]) == 2
    assert "work on shards" in capsys.readouterr().err
    # a single .npy file into a folder is one shard
    assert main(["predict", mlp, "-i", x, "-o", str(tmp_path / "o") + "/"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "o/part-00.npy"),
                                  InferenceSession(mlp, device="cpu").predict(np.load(x)))


def test_a_later_shard_without_a_needed_column_is_refused_before_any_work(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    two = two_io_path(str(tmp_path))
    parquet_shards(tmp_path / "p", [4])
    pq.write_table(pa.table({"a": pa.array([[1.0, 2.0, 3.0]])}), tmp_path / "p/part-01.parquet")
    with pytest.raises(ConfigError, match=r"part-01.parquet has no column 'b' \(columns: \['a'\]\)"):
        predict_files(two, str(tmp_path / "p"), str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")

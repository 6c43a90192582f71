"""Batch inference on Ray Data (a local Ray, 2 CPUs): predictions equal a local run row for
row on numpy and parquet shards, resume skips finished shards, and a worker killed mid-run
loses and repeats no row."""

import os
import signal
import time

import numpy as np
import pytest
from distributed_kit import (assert_same_outputs, mlp_model, npy_shards, parquet_shards,
                             two_io_path)

from modelkit.cli.main import main
from modelkit.distributed import predict_dataset, predict_files
from modelkit.errors import ConfigError
from modelkit.runtime import InferenceSession

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return mlp_model(tmp_path_factory.mktemp("m") / "mlp.onnx")


def test_predict_dataset_numpy_and_tabular(ray_session, mlp):
    import pandas as pd
    import ray.data
    x = np.random.default_rng(3).standard_normal((1000, 4)).astype(np.float32)
    expected = InferenceSession(mlp, device="cpu").predict(x, batch_size=100)
    ds = ray.data.from_numpy(np.array_split(x, 4))           # 4 blocks for 2 actors
    ds.context.execution_options.preserve_order = True
    out = predict_dataset(mlp, ds, batch_size=100, num_workers=2)
    got = np.concatenate([b["pred"] for b in out.iter_batches(batch_format="numpy")])
    np.testing.assert_array_equal(got, expected)
    # tabular: feature columns stacked, other columns passed through, any order back
    frame = pd.DataFrame({"id": np.arange(1000), **{f"f{i}": x[:, i] for i in range(4)}})
    out = predict_dataset(mlp, ray.data.from_pandas([frame[i:i + 250] for i in range(0, 1000, 250)]),
                          input_columns=["f0", "f1", "f2", "f3"],
                          output_prefix="y", batch_size=100, num_workers=2).to_pandas()
    assert set(out.columns) == {"id", "f0", "f1", "f2", "f3", "y"}
    out = out.sort_values("id")
    np.testing.assert_array_equal(np.stack(out["y"].to_numpy()), expected)
    with pytest.raises(ConfigError, match="already has a column 'f0'"):
        predict_dataset(mlp, ray.data.from_pandas(frame), input_columns=["f1", "f2", "f3", "id"],
                        output_prefix="f0")
    with pytest.raises(ConfigError, match="must be a ray.data.Dataset, got list"):
        predict_dataset(mlp, [x])


def test_npy_shards_equal_local_and_resume(ray_session, mlp, tmp_path):
    npy_shards(tmp_path / "in", [700, 0, 1300, 64, 9])
    local = predict_files(mlp, str(tmp_path / "in"), str(tmp_path / "local"), batch_size=64)
    ray_run = predict_files(mlp, str(tmp_path / "in/*.npy"), str(tmp_path / "ray"),
                            engine="ray", batch_size=64, num_workers=2)
    assert [os.path.basename(p) for p in ray_run.written] == \
        [os.path.basename(p) for p in local.written]
    assert assert_same_outputs(str(tmp_path / "local"), str(tmp_path / "ray")) == \
        [f"part-{i:02d}.npy" for i in range(5)]
    for name in ("part-00.npy", "part-03.npy"):
        os.remove(tmp_path / "ray" / name)
    stamps = {n: os.stat(tmp_path / "ray" / n).st_mtime_ns
              for n in ("part-01.npy", "part-02.npy", "part-04.npy")}
    again = predict_files(mlp, str(tmp_path / "in"), str(tmp_path / "ray"), engine="ray",
                          batch_size=64, num_workers=2)
    assert [os.path.basename(p) for p in again.written] == ["part-00.npy", "part-03.npy"]
    assert again.rows == 764 and len(again.skipped) == 3
    assert stamps == {n: os.stat(tmp_path / "ray" / n).st_mtime_ns for n in stamps}
    assert_same_outputs(str(tmp_path / "local"), str(tmp_path / "ray"))


def test_cli_parquet_shards_equal_local(ray_session, tmp_path, capsys):
    two = two_io_path(str(tmp_path))
    pairs = parquet_shards(tmp_path / "in", [500, 77, 260])
    base = ["predict", two, "--input", str(tmp_path / "in/*.parquet"), "--batch-size", "32"]
    assert main(base + ["--output", str(tmp_path / "local") + "/"]) == 0
    assert main(base + ["--output", str(tmp_path / "ray") + "/", "--engine", "ray",
                        "--num-workers", "2"]) == 0
    assert "[3/3]" in capsys.readouterr().err
    assert_same_outputs(str(tmp_path / "local"), str(tmp_path / "ray"))
    from distributed_kit import read_output
    for i, (a, b) in enumerate(pairs):
        got = read_output(str(tmp_path / f"ray/part-{i:02d}.parquet"))
        np.testing.assert_array_equal(got["sum"], a + b)
        np.testing.assert_array_equal(got["prod"], a * b)


def _worker_pids():
    """PIDs of the Ray Data actors running ShardPredictor (from their process titles)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    title = f.read()
            except OSError:
                continue
            if b"MapBatches(ShardPredictor)" in title:
                pids.add(int(entry))
    return pids


def test_a_killed_worker_loses_and_repeats_no_row(ray_session, mlp, tmp_path):
    npy_shards(tmp_path / "in", [400] * 40, seed=5)
    predict_files(mlp, str(tmp_path / "in"), str(tmp_path / "local"), batch_size=25)
    killed, seen_after = [], set()

    def kill_first_worker(report, shard, path):
        if not killed:
            deadline = time.monotonic() + 30
            while len(pids := _worker_pids()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(pids) == 2
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            killed.append((victim, len(report.written)))
        else:
            seen_after.update(_worker_pids())

    report = predict_files(mlp, str(tmp_path / "in"), str(tmp_path / "ray"), engine="ray",
                           batch_size=25, num_workers=2, progress=kill_first_worker)
    # killed with 39 of 40 shards (about 310 of 320 pieces) to go: Ray Data keeps 2 tasks in
    # flight per actor, so most of the work ran after the kill, on the survivor and the
    # restarted actor, and the killed actor's in-flight pieces were retried
    victim, written_before = killed[0]
    assert written_before == 1 and len(report.written) == 40
    assert seen_after and victim not in seen_after
    # no row lost or repeated: every shard complete, bit-identical to the local engine
    assert_same_outputs(str(tmp_path / "local"), str(tmp_path / "ray"))

"""Shard files: finding, describing, reading row ranges, writing atomically, resuming."""

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed_kit import npy_shards, parquet_shards

from modelkit.distributed import shards
from modelkit.errors import ConfigError, ModelLoadError, ShapeError


def test_find_paths_sorts_globs_and_folders_and_keeps_list_order(tmp_path):
    npy_shards(tmp_path / "d", [2, 2, 2])
    names = [os.path.basename(p) for p in shards.find_paths(str(tmp_path / "d" / "*.npy"))]
    assert names == ["part-00.npy", "part-01.npy", "part-02.npy"]
    assert shards.find_paths(str(tmp_path / "d")) == shards.find_paths(str(tmp_path / "d/*.npy"))
    listed = [str(tmp_path / "d/part-02.npy"), str(tmp_path / "d/part-00.npy")]
    assert shards.find_paths(listed) == listed


@pytest.mark.parametrize("make, error, match", [
    (lambda d: str(d / "none-*.npy"), ModelLoadError, "no input file matches"),
    (lambda d: str(d / "missing.npy"), ModelLoadError, "not found"),
    (lambda d: (d / "x.csv").write_text("1") and str(d / "x.csv"), ConfigError, "must end in"),
    (lambda d: [str(d / "d/part-00.npy"), str(d / "e/part-00.npy")], ConfigError,
     "would write the same output file"),
])
def test_find_paths_errors_name_the_input(tmp_path, make, error, match):
    npy_shards(tmp_path / "d", [2])
    npy_shards(tmp_path / "e", [2])
    with pytest.raises(error, match=match):
        shards.find_paths(make(tmp_path))


def test_npy_and_npz_rows_from_headers_and_row_ranges(tmp_path):
    (x,) = npy_shards(tmp_path, [10])
    s = shards.describe(0, str(tmp_path / "part-00.npy"))
    assert (s.rows, s.columns) == (10, ("data",))
    assert np.array_equal(shards.read_rows(s, 3, 7)["data"], x[3:7])
    np.savez(tmp_path / "ab.npz", a=x, b=x * 2)
    z = shards.describe(1, str(tmp_path / "ab.npz"))
    assert (z.rows, z.columns, z.splittable) == (10, ("a", "b"), False)
    got = shards.read_rows(z, columns=["b"])
    assert list(got) == ["b"] and np.array_equal(got["b"], x * 2)
    np.savez(tmp_path / "bad.npz", a=x, b=x[:3])
    with pytest.raises(ShapeError, match="different row counts"):
        shards.describe(0, str(tmp_path / "bad.npz"))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ModelLoadError, match="junk.npy"):
        shards.describe(0, str(tmp_path / "junk.npy"))


def test_parquet_columns_become_arrays_across_row_groups(tmp_path):
    ((a, b),) = parquet_shards(tmp_path, [250], row_group_size=100)
    s = shards.describe(0, str(tmp_path / "part-00.parquet"))
    assert (s.rows, s.columns) == (250, ("id", "a", "b"))
    got = shards.read_rows(s, 90, 210)            # spans three row groups
    assert np.array_equal(got["id"], np.arange(90, 210))
    assert np.array_equal(got["a"], a[90:210]) and got["a"].dtype == np.float32
    tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(np.arange(24, dtype=np.float64)
                                                         .reshape(4, 2, 3))
    pq.write_table(pa.table({"t": tensor, "ragged": pa.array([[1.0], [1.0, 2.0], [], [3.0]]),
                             "s": pa.array(["a", "b", "c", "d"]),
                             "holes": pa.array([1.0, None, 2.0, 3.0])}), tmp_path / "t.parquet")
    t = shards.describe(0, str(tmp_path / "t.parquet"))
    assert np.array_equal(shards.read_rows(t, columns=["t"])["t"],
                          np.arange(24.0).reshape(4, 2, 3))
    for column, match in [("ragged", "lists of different lengths"), ("s", "need numbers"),
                          ("holes", "1 missing values")]:
        with pytest.raises(ShapeError, match=f"column '{column}' .*{match}|{match}"):
            shards.read_rows(t, columns=[column])


@pytest.mark.parametrize("ext", [".npy", ".npz", ".parquet"])
def test_written_shards_read_back_and_count_as_finished(tmp_path, ext):
    outs = {"y": np.arange(12, dtype=np.float32).reshape(4, 3)}
    if ext != ".npy":
        outs["z"] = np.arange(4, dtype=np.int64)
        outs["w"] = np.arange(16, dtype=np.float64).reshape(4, 2, 2)
    path = str(tmp_path / f"out{ext}")
    shards.write_shard(path, outs)
    assert sorted(os.listdir(tmp_path)) == [f"out{ext}"]      # no temporary file left
    back = shards.read_rows(shards.describe(0, path))
    for k, v in outs.items():
        got = back["data" if ext == ".npy" else k]
        assert got.dtype == v.dtype and np.array_equal(got, v)
    assert shards.is_finished(path, 4, list(outs))
    assert not shards.is_finished(path, 5, list(outs))
    assert not shards.is_finished(str(tmp_path / f"other{ext}"), 4, list(outs))
    if ext != ".npy":
        assert not shards.is_finished(path, 4, ["y"])          # another model's outputs


def test_a_failed_write_keeps_the_previous_shard(tmp_path):
    path = str(tmp_path / "out.npz")
    shards.write_shard(path, {"y": np.ones(3)})

    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")
    with pytest.raises(RuntimeError, match="disk full"):
        shards.write_shard(path, {"y": np.zeros(3), "z": Boom()})
    assert os.listdir(tmp_path) == ["out.npz"]
    assert np.array_equal(np.load(path)["y"], np.ones(3))


@pytest.mark.parametrize("rows, batch, workers", [(1000, 64, 2), (10, 64, 2), (5000, 7, 1),
                                                 (10 ** 6, 256, 4), (0, 8, 2)])
def test_pieces_cover_every_row_once_on_batch_boundaries(tmp_path, rows, batch, workers):
    s = shards.Shard(0, "x.npy", rows, ("data",))
    ranges = shards.pieces(s, batch, workers)
    assert ranges[0][0] == 0 and ranges[-1][1] == rows
    assert all(a == b for (_, a), (b, _) in zip(ranges, ranges[1:]))     # contiguous
    assert all(a % batch == 0 for a, _ in ranges)                       # the local grid
    assert all(b - a <= max(batch, shards.PIECE_ROWS) for a, b in ranges)
    if rows >= 8 * batch * workers:
        assert len(ranges) >= 2 * workers

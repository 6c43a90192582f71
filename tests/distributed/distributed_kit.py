"""Helpers for the modelkit.distributed tests: small models and shard folders."""

from __future__ import annotations

import os

import numpy as np
import onnx


def mlp_model(path, width=16, inputs=4, outputs=3):
    """A relu MLP saved at `path` (.onnx or .h5): input 'hidden_input', output 'out'."""
    from modelkit.layers import Dense
    from modelkit.models import Sequential
    model = Sequential([Dense(width, activation="relu", input_shape=(inputs,), name="hidden"),
                        Dense(outputs, name="out")])
    model.save(str(path))
    return str(path)


def two_io_path(folder):
    """The two-input, two-output ONNX model (sum = a + b, prod = a * b) at folder/two.onnx."""
    from test_runtime_session import two_io_model
    path = os.path.join(folder, "two.onnx")
    onnx.save(two_io_model(), path)
    return path


def npy_shards(folder, sizes, features=4, seed=0):
    """One .npy shard per size (part-00.npy, ...) of float32 rows; returns the arrays."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = []
    for i, n in enumerate(sizes):
        x = rng.standard_normal((n, features)).astype(np.float32)
        np.save(os.path.join(folder, f"part-{i:02d}.npy"), x)
        arrays.append(x)
    return arrays


def parquet_shards(folder, sizes, seed=0, row_group_size=100):
    """Parquet shards with an 'id' column and list columns 'a' and 'b' (3 floats per row,
    as fixed-size lists in even shards and plain lists in odd ones); returns [(a, b)]."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        a, b = (rng.standard_normal((n, 3)).astype(np.float32) for _ in range(2))

        def col(x, fixed=(i % 2 == 0)):
            flat = pa.array(x.reshape(-1))
            if fixed:
                return pa.FixedSizeListArray.from_arrays(flat, 3)
            return pa.ListArray.from_arrays(pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32)),
                                            flat)
        table = pa.table({"id": np.arange(n), "a": col(a), "b": col(b)})
        pq.write_table(table, os.path.join(folder, f"part-{i:02d}.parquet"),
                       row_group_size=row_group_size)
        out.append((a, b))
    return out


def read_output(path):
    """{name: array} of an output shard (.npy -> {'': array})."""
    if path.endswith(".npy"):
        return {"": np.load(path)}
    if path.endswith(".npz"):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    from modelkit.distributed.shards import describe, read_rows
    return read_rows(describe(0, path))


def assert_same_outputs(dir_a, dir_b):
    """Both folders hold the same output shards with bit-identical arrays."""
    names = sorted(n for n in os.listdir(dir_a) if not n.startswith(("_", ".")))
    assert names == sorted(n for n in os.listdir(dir_b) if not n.startswith(("_", ".")))
    assert names
    for name in names:
        a, b = read_output(os.path.join(dir_a, name)), read_output(os.path.join(dir_b, name))
        assert a.keys() == b.keys(), name
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, (name, k)
            assert np.array_equal(a[k], b[k]), (name, k)
    return names

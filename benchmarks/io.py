"""HDF5 save/load throughput of modelkit's Keras converter vs bare h5py on the same arrays.

    python benchmarks/io.py [--params 50e6] [--repeats 3]

Builds an IR Graph of ~50M float32 parameters (a few big Dense nodes), then times
`save_graph` + `load_graph` against h5py writing/reading the same arrays with no layout
or bookkeeping, in the same process and folder. Prints MB/s and the ratio (goal >= 0.8). modelkit's save is atomic (fsync +
rename), so its fair baseline is h5py + fsync; the non-durable ratio is printed too.
"""

import argparse
import os
import sys
import tempfile
import time

import h5py
import numpy as np

from modelkit.converters import hdf5
from modelkit.ir import Graph, Node, TensorRef, TensorSpec


def build(params):
    width = int((params / 4) ** 0.5)          # four width x width Dense layers
    rng = np.random.default_rng(0)
    nodes, weights, prev = [], {}, TensorRef("x")
    for i in range(4):
        name = f"dense_{i}"
        weights[f"{name}/kernel"] = rng.standard_normal((width, width), dtype=np.float32)
        weights[f"{name}/bias"] = rng.standard_normal((width,), dtype=np.float32)
        nodes.append(Node(name, "Dense", {"name": name, "units": width, "activation": "relu",
                                          "use_bias": True, "dtype": "float32"},
                          [[prev]], [f"{name}/kernel", f"{name}/bias"]))
        prev = TensorRef(name)
    return Graph("big", [TensorSpec("x", (None, width))], [prev], nodes, weights,
                 metadata={"model_class": "Sequential"}).validate()


def bare_save(weights, path):
    with h5py.File(path, "w") as f:
        for k, v in weights.items():
            f.create_dataset(k, data=v)


def bare_save_durable(weights, path):
    """The same into a fresh file, plus the fsync an atomic save needs (the fair baseline)."""
    if os.path.exists(path):
        os.unlink(path)
    bare_save(weights, path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bare_load(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def best(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=float, default=50e6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="folder for the temporary files")
    a = ap.parse_args(argv)
    g = build(int(a.params))
    mb = sum(v.nbytes for v in g.weights.values()) / 1e6
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        ours, bare = os.path.join(d, "ours.h5"), os.path.join(d, "bare.h5")
        t_ours = best(lambda: hdf5.save_graph(g, ours), a.repeats)
        rows = [("save (vs h5py, no fsync)", best(lambda: bare_save(g.weights, bare), a.repeats), t_ours),
                ("save (vs h5py + fsync)", best(lambda: bare_save_durable(g.weights, bare), a.repeats), t_ours),
                ("load", best(lambda: bare_load(bare), a.repeats),
                 best(lambda: hdf5.load_graph(ours), a.repeats))]
    print(f"{sum(v.size for v in g.weights.values()) / 1e6:.1f}M float32 parameters, {mb:.0f} MB")
    print(f"{'':26}{'h5py MB/s':>12}{'modelkit MB/s':>15}{'ratio':>8}")
    ratios = []
    for name, tb, to in rows:
        ratios.append(tb / to)
        print(f"{name:26}{mb / tb:12.0f}{mb / to:15.0f}{tb / to:8.2f}")
    print(f"ratio, durable save: {ratios[1]:.2f}, load: {ratios[2]:.2f} (goal >= 0.8); "
          f"save vs a non-durable h5py write: {ratios[0]:.2f} (the difference is the fsync "
          f"an atomic save needs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rows/s of `predict_files` (the `modelkit predict --input 'data/*.npy' --output DIR/`
job): the local engine (one process, onnxruntime on every core) against the Ray engine with
N worker actors (one onnxruntime thread per core each) on a local Ray, same shards, same
model, alternating runs; prints the best of each and the ratio Ray / local.

Ray's one-off start (`ray.init`) is timed separately; each Ray run includes starting its
actors and opening the model in each. Outputs are checked equal to the local run's.

    python benchmarks/distributed.py [--rows 1000000] [--shards 16] [--workers 2] [--repeats 2]
        [--width 256] [--address ADDR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np


def build(folder, rows, shards, width, features=32):
    from modelkit.layers import Dense
    from modelkit.models import Sequential
    model = Sequential([Dense(width, activation="relu", input_shape=(features,)),
                        Dense(width, activation="relu"), Dense(8)])
    path = os.path.join(folder, "mlp.onnx")
    model.save(path)
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(folder, "in"))
    for i, n in enumerate(np.full(shards, rows // shards)):
        np.save(os.path.join(folder, "in", f"part-{i:03d}.npy"),
                rng.standard_normal((n, features)).astype(np.float32))
    return path


def timed(run, out):
    """(rows/s overall, rows/s from the first written shard to the last: steady state)."""
    shutil.rmtree(out, ignore_errors=True)
    marks = []

    def progress(report, shard, path):
        marks.append((time.perf_counter(), report.rows))
    start = time.perf_counter()
    report = run(out, progress)
    overall = report.rows / (time.perf_counter() - start)
    (t0, r0), (t1, r1) = marks[0], marks[-1]
    return overall, (r1 - r0) / (t1 - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--address", default=None)
    args = p.parse_args(argv)

    from modelkit.distributed import predict_files
    from modelkit.distributed.cluster import connect
    folder = tempfile.mkdtemp(prefix="mk-dist-bench-")
    try:
        model = build(folder, args.rows, args.shards, args.width)
        inputs = os.path.join(folder, "in")
        start = time.perf_counter()
        ray = connect(args.address)
        print(f"ray.init: {time.perf_counter() - start:.1f} s "
              f"({ray.cluster_resources().get('CPU', 0):g} CPUs)")

        def local(out, progress):
            return predict_files(model, inputs, out, batch_size=args.batch_size, device="cpu",
                                 progress=progress)

        def on_ray(out, progress):
            return predict_files(model, inputs, out, engine="ray", batch_size=args.batch_size,
                                 num_workers=args.workers, device="cpu", progress=progress)
        best = {"local": (0.0, 0.0), "ray": (0.0, 0.0)}
        for _ in range(args.repeats):
            for name, run in (("local", local), ("ray", on_ray)):
                got = timed(run, os.path.join(folder, name))
                best[name] = tuple(max(a, b) for a, b in zip(best[name], got))
        for name in sorted(os.listdir(os.path.join(folder, "local"))):
            if name.endswith(".npy"):
                assert np.array_equal(np.load(os.path.join(folder, "local", name)),
                                      np.load(os.path.join(folder, "ray", name))), name
        print(f"{args.rows} rows in {args.shards} shards, MLP 32-{args.width}-{args.width}-8, "
              f"batch {args.batch_size}; outputs equal")
        print(f"{'':28}{'overall':>12}{'steady':>12}  (rows/s; steady: first to last "
              f"shard written)")
        for name, label in (("local", "local engine (1 process)"),
                            ("ray", f"ray engine ({args.workers} workers)")):
            print(f"{label:28}{best[name][0]:>12,.0f}{best[name][1]:>12,.0f}")
        print(f"ratio ray / local: overall {best['ray'][0] / best['local'][0]:.2f}, "
              f"steady {best['ray'][1] / best['local'][1]:.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

"""`modelkit bench MODEL`: latency percentiles and throughput on random inputs."""

from __future__ import annotations

import time

import numpy as np

from .commands import UsageError, register

EXAMPLE = "  modelkit bench model.onnx --batch-size 32 --iterations 200 --device cpu"


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="model file (.onnx, .h5, .hdf5, .keras)")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="rows per run (default 1; used for dynamic batch dims)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to run (default auto)")
    p.add_argument("--iterations", type=int, default=100, metavar="N",
                   help="timed runs (default 100)")
    p.add_argument("--warmup", type=int, default=10, metavar="N",
                   help="untimed runs first (default 10)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="onnxruntime intra-op threads (default: onnxruntime's choice)")


def random_inputs(specs, batch_size, seed=0):
    """Random arrays for IOSpecs: floats ~ N(0, 1), ints in [0, 10), bools at random.

    A dynamic leading dim takes `batch_size`; other dynamic dims take 1.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = tuple((batch_size if i == 0 else 1) if d is None else d
                      for i, d in enumerate(spec.shape))
        dt = spec.dtype
        if dt is None or dt.kind == "O":
            raise UsageError(f"Cannot make random data for input {spec.name!r} of type "
                             f"{spec.onnx_type}")
        if dt.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dt)
        elif dt.kind in "iu":
            feeds[spec.name] = rng.integers(0, 10, size=shape).astype(dt)
        elif dt.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise UsageError(f"Cannot make random data for input {spec.name!r} of dtype {dt}")
    return feeds


def run(args):
    for flag, value, low in (("--batch-size", args.batch_size, 1), ("--iterations", args.iterations, 1),
                             ("--warmup", args.warmup, 0)):
        if value < low:
            raise UsageError(f"{flag} must be at least {low}, got {value}")
    from modelkit.runtime import InferenceSession
    sess = InferenceSession(args.model, device=args.device, intra_op_threads=args.threads)
    feeds = random_inputs(sess.inputs, args.batch_size)
    rows = next(iter(feeds.values())).shape[0] if feeds and next(iter(feeds.values())).ndim else 1
    for _ in range(args.warmup):
        sess.run(feeds)
    times = np.empty(args.iterations)
    clock = time.perf_counter
    start = clock()
    for i in range(args.iterations):
        t0 = clock()
        sess.run(feeds)
        times[i] = clock() - t0
    total = clock() - start
    ms = times * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    shapes = ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in feeds.items())
    print(f"model:      {args.model}")
    print(f"device:     {sess.device} ({', '.join(sess.providers)})")
    print(f"inputs:     {shapes}")
    print(f"runs:       {args.iterations} timed after {args.warmup} warm-up, batch {rows}")
    print(f"latency:    p50 {p50:.3f} ms   p90 {p90:.3f} ms   p99 {p99:.3f} ms   "
          f"mean {ms.mean():.3f} ms")
    print(f"throughput: {rows * args.iterations / total:,.1f} samples/s")
    return 0


register("bench", add_arguments, run, example=EXAMPLE)

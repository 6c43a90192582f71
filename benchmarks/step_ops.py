"""Where a training step's time goes, op by op, and same-process A/B of a switch.

`--table`: wall and CPU time (all threads of the process) of every op's forward and VJP in
a training step of the VGG-like CNN or the small ResNet of train_cnn.py (or the
Embedding + LSTM / GRU text classifier of train_lstm.py: --model lstm|gru), per step, with
CPU/wall: an op near 1.0 at 2 threads runs on one core. The time outside the ops (tape,
layers, optimizer, waiting for the backward pass's side stream) is the last line.

`--ab NAME=A,B`: two identical models (same initial weights, data), trained in alternating
epochs in this process with the environment variable NAME set to A for one and B for the
other (a switch the backend reads at each call, e.g. MODELKIT_SIDE_STREAM=0,1); prints the
median wall and CPU ms per step of each and whether the two models' weights are still
bit-identical after every epoch (a switch that must not change the numbers).

    python benchmarks/step_ops.py [--model resnet|vgg|lstm|gru] [--channels-first] [--table]
                                  [--ab NAME=A,B] [--rounds 6] [--steps 20]
"""

import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_cnn  # noqa: E402
import train_lstm  # noqa: E402

import numpy as np  # noqa: E402


RNNS = ("lstm", "gru")


def build(model, fmt, dropout=True):
    if model in RNNS:
        return train_lstm.build_model(model)
    return (train_cnn.build_resnet(fmt) if model == "resnet"
            else train_cnn.build_model(fmt, dropout=dropout))


def data(model, steps, fmt):
    if model in RNNS:
        return train_lstm.RnnBench(model, steps).data(train_cnn.BATCH * steps)
    rng = np.random.default_rng(0)
    h, c = (train_cnn.RES_H, 3) if model == "resnet" else (train_cnn.H, 1)
    shape = (h, h, c) if fmt == "channels_last" else (c, h, h)
    x = rng.random((train_cnn.BATCH * steps,) + shape, dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(x))]
    return x, y


def epoch(model, x, y):
    """(wall ms, CPU ms) per step of one epoch of `model.fit`."""
    steps = len(x) // train_cnn.BATCH
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=train_cnn.BATCH, epochs=1, verbose=0, shuffle=False)
    return ((time.perf_counter() - t0) / steps * 1e3, (time.process_time() - c0) / steps * 1e3)


def timed_ops():
    """Wrap every op's forward and VJP (outermost calls only) to add up wall and CPU time;
    returns the {(op, phase): [wall s, CPU s, calls]} table they fill."""
    from modelkit.backend.tape import OPS
    table = collections.defaultdict(lambda: [0.0, 0.0, 0])
    depth = [0]

    def wrap(name, phase, fn):
        def timed(*args, **kwargs):
            if depth[0]:
                return fn(*args, **kwargs)
            depth[0] += 1
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                row = table[(name, phase)]
                row[0] += time.perf_counter() - t0
                row[1] += time.process_time() - c0
                row[2] += 1
                depth[0] -= 1
        return timed

    for name in OPS.names():
        op = OPS.get(name)
        op.forward = wrap(name, "fwd", op.forward)
        if op.vjp is not None:
            op.vjp = wrap(name, "bwd", op.vjp)
    return table


def print_table(args):
    table = timed_ops()
    model = build(args.model, args.format)
    x, y = data(args.model, args.steps, args.format)
    epoch(model, x, y)                               # warm up: sessions, buffers
    table.clear()
    runs = [epoch(model, x, y) for _ in range(args.rounds)]
    wall, cpu = (sum(r[i] for r in runs) / len(runs) for i in (0, 1))
    n = args.steps * args.rounds
    print(f"{args.model} {args.format}, MODELKIT_NUM_THREADS={os.environ.get('MODELKIT_NUM_THREADS')}"
          f": step wall {wall:.2f} ms, CPU {cpu:.2f} ms (CPU/wall {cpu / wall:.2f})")
    print(f"  {'op':26s} {'phase':5s} {'wall ms':>8s} {'CPU ms':>8s} {'CPU/wall':>8s} calls/step")
    ops_wall = ops_cpu = 0.0
    for (name, phase), (w, c, calls) in sorted(table.items(), key=lambda kv: -kv[1][0]):
        ops_wall += w
        ops_cpu += c
        if w / n * 1e3 >= 0.01:
            print(f"  {name:26s} {phase:5s} {w / n * 1e3:8.2f} {c / n * 1e3:8.2f} "
                  f"{c / max(w, 1e-12):8.2f} {calls / n:6.1f}")
    print(f"  {'outside the ops':32s} {wall - ops_wall / n * 1e3:8.2f} "
          f"{cpu - ops_cpu / n * 1e3:8.2f}")


def print_ab(args):
    name, values = args.ab.split("=", 1)
    a, b = values.split(",")
    x, y = data(args.model, args.steps, args.format)
    np.random.seed(0)
    # no dropout: the two models would draw different masks from the one random state
    models = {v: build(args.model, args.format, dropout=False) for v in (a, b)}
    models[b].set_weights(models[a].get_weights())
    times = {a: [], b: []}
    identical = True
    for r in range(args.rounds + 1):
        for v in (a, b) if r % 2 == 0 else (b, a):
            os.environ[name] = v
            t = epoch(models[v], x, y)
            if r:                                    # round 0 warms up
                times[v].append(t)
        identical &= all(np.array_equal(p, q) for p, q in
                         zip(models[a].get_weights(), models[b].get_weights()))
    print(f"{args.model} {args.format}, MODELKIT_NUM_THREADS={os.environ.get('MODELKIT_NUM_THREADS')}"
          f", {args.rounds} alternating epochs of {args.steps} steps each:")
    for v in (a, b):
        w = sorted(t[0] for t in times[v])
        c = sorted(t[1] for t in times[v])
        print(f"  {name}={v}: wall median {w[len(w) // 2]:7.2f} ms/step (min {w[0]:7.2f}), "
              f"CPU median {c[len(c) // 2]:7.2f} ms/step")
    print(f"  weights bit-identical after every epoch: {identical}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("vgg", "resnet") + RNNS, default="resnet")
    parser.add_argument("--channels-first", action="store_true")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--ab", help="NAME=A,B: an environment switch to compare")
    args = parser.parse_args()
    args.format = "channels_first" if args.channels_first else "channels_last"
    if args.ab:
        print_ab(args)
    if args.table or not args.ab:
        print_table(args)


if __name__ == "__main__":
    main()
